// Package signer is payflow-signer: the one process that reaches key
// material. It signs one transaction for one workflow step at a time, only
// when the transaction pays out a held ledger reservation exactly (or
// replaces such a transaction with other fees), stores each signed attempt
// before answering, and appends every request and its verdict to an audit
// log. Keys are KMS keys, keys sealed under KMS data keys, or children of a
// mnemonic sealed the same way; on a Bitcoin chain, children of the
// mnemonic's BIP84 account. It owns the tables signer_keys, signer_state,
// signer_steps, signer_btc_steps, signer_btc_inputs and signer_audit; the
// ledger's reservations and wallets it reads through the ledger package.
package signer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"

	"payflow/audit"
	"payflow/config"
	"payflow/custody/hd"
	custodykms "payflow/custody/kms"
	"payflow/custody/signerapi"
	"payflow/ledger"
	"payflow/risk/denylist"
)

// Config is what New needs besides the database.
type Config struct {
	// Chains are the chains the signer signs for (config.json's chains):
	// chain id, native coin, tokens and maximum fee. A request for another
	// chain is refused.
	Chains map[string]config.ChainConfig
	// BTCChains are the Bitcoin chains the signer signs for (config.json's
	// btc_chains): network, coin and maximum fee rate.
	BTCChains map[string]config.BTCChain
	// KMS reaches the KMS; KMSName (its endpoint or region) is shown in the
	// status.
	KMS     KMS
	KMSName string
	// EnvelopeKeyID is the KMS key whose data keys seal key material, used
	// when the signer's state is first created; empty: a new one is
	// created. Once the state exists, the key it was sealed under is used.
	EnvelopeKeyID string
	// Reload, when set, reads the configuration again (config.json
	// rewritten) and the signer takes its chains and btc_chains from it: it
	// is called when a request names a chain the signer does not know, at
	// most once per reloadEvery, so a signer started before its chains were
	// configured serves them without a restart.
	Reload func() (config.Config, error)
	// Log receives one line per request (never key material); nil: none.
	Log *slog.Logger
	// DenyList is screened on every first attempt: a transfer to a listed
	// address is refused (recipient_blocked), unless it returns a held
	// deposit to its sender by spending that deposit's hold. Nil: no list.
	DenyList *denylist.Screen
}

// reloadEvery spaces the reloads of the chains.
const reloadEvery = 5 * time.Second

// Signer signs payments for payflow's workers. Safe for concurrent use.
type Signer struct {
	store  *store
	ledger *ledger.Ledger
	// approvals is the operator audit trail, where a held payment's
	// approval is recorded.
	approvals *audit.Log
	keys      *keys
	kmsName   string

	reload     func() (config.Config, error)
	mu         sync.Mutex
	chains     map[string]config.ChainConfig
	btcChains  map[string]config.BTCChain
	lastReload time.Time

	metrics  *Metrics
	log      *slog.Logger
	denyList *denylist.Screen
}

// New opens the signer on db (migrated by ledger.Migrate). On a database
// with no signer state it creates it: the envelope key (cfg.EnvelopeKeyID,
// or a new KMS key), a new 24-word mnemonic sealed under it, and the account
// xpub. On one with state it opens the mnemonic and checks it derives the
// stored xpub, so a KMS that cannot open it fails the start, not the first
// HD signature.
func New(ctx context.Context, db *sql.DB, cfg Config) (*Signer, error) {
	if cfg.KMS == nil {
		return nil, errors.New("the signer needs a KMS")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &store{db: db}
	s := &Signer{store: st, ledger: ledger.NewUnbatched(db), approvals: audit.New(db), chains: upperKeys(cfg.Chains),
		btcChains: upperKeys(cfg.BTCChains), reload: cfg.Reload,
		kmsName: cfg.KMSName, log: log, denyList: cfg.DenyList}
	state, err := bootstrap(ctx, st, cfg.KMS, cfg.EnvelopeKeyID, log)
	if err != nil {
		return nil, err
	}
	s.keys = &keys{kms: cfg.KMS, envelope: custodykms.NewEnvelope(cfg.KMS, state.EnvelopeKeyID), store: st,
		wallets: ledger.NewWallets(db, nil), state: state, kmsSigners: map[string]*custodykms.Signer{}}
	s.metrics = newMetrics(st, s.chainNames())
	return s, nil
}

func upperKeys[C any](in map[string]C) map[string]C {
	out := make(map[string]C, len(in))
	for name, ch := range in {
		out[strings.ToUpper(name)] = ch
	}
	return out
}

// chainNames lists the chains of both families, sorted.
func (s *Signer) chainNames() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for name := range s.chains {
			if !yield(name) {
				return
			}
		}
		for name := range s.btcChains {
			if !yield(name) {
				return
			}
		}
	})
}

// chain returns the configuration of EVM chain name; an unknown name
// reloads the chains first (see Config.Reload).
func (s *Signer) chain(name string) (config.ChainConfig, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.chains[name]; !ok {
		s.reloadLocked()
	}
	ch, ok := s.chains[name]
	return ch, ok
}

// btcChain returns the configuration of Bitcoin chain name; an unknown
// name reloads the chains first.
func (s *Signer) btcChain(name string) (config.BTCChain, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.btcChains[name]; !ok {
		s.reloadLocked()
	}
	ch, ok := s.btcChains[name]
	return ch, ok
}

// reloadLocked reads the chains again, at most once per reloadEvery. The
// caller holds s.mu.
func (s *Signer) reloadLocked() {
	if s.reload == nil || time.Since(s.lastReload) < reloadEvery {
		return
	}
	s.lastReload = time.Now()
	cfg, err := s.reload()
	if err != nil {
		s.log.Warn("reloading the chains failed; keeping those loaded", "err", err)
		return
	}
	s.chains, s.btcChains = upperKeys(cfg.Chains), upperKeys(cfg.BTCChains)
	names := s.chainNames()
	s.metrics.initChains(names)
	s.log.Info("reloaded the chains", "chains", names)
}

// known says whether chain name is configured, of either family (for the
// metric's label).
func (s *Signer) known(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, evm := s.chains[name]
	_, btc := s.btcChains[name]
	return evm || btc
}

// bootstrap reads the signer's state, creating it on first start.
func bootstrap(ctx context.Context, st *store, api KMS, envelopeKeyID string, log *slog.Logger) (state, error) {
	s, ok, err := st.state(ctx)
	if err != nil {
		return state{}, err
	}
	if !ok {
		if envelopeKeyID == "" {
			if envelopeKeyID, err = custodykms.CreateEnvelopeKey(ctx, api, "payflow-signer envelope key"); err != nil {
				return state{}, err
			}
			log.Info("created the envelope key", "kms_key_id", envelopeKeyID)
		}
		words, err := hd.NewMnemonic(256)
		if err != nil {
			return state{}, err
		}
		plain := []byte(words)
		sealed, err := custodykms.NewEnvelope(api, envelopeKeyID).Seal(ctx, plain, mnemonicAAD)
		if err != nil {
			clear(plain)
			return state{}, fmt.Errorf("sealing the new mnemonic: %w", err)
		}
		account, err := derive(plain, hd.AccountPath)
		if err != nil {
			return state{}, err
		}
		xpub := account.XPub()
		account.Zero()
		b, err := sealed.MarshalBinary()
		if err != nil {
			return state{}, err
		}
		if err := st.insertState(ctx, state{EnvelopeKeyID: envelopeKeyID, SealedMnemonic: b, AccountXPub: xpub}); err != nil {
			return state{}, err
		}
		if s, ok, err = st.state(ctx); err != nil || !ok {
			return state{}, fmt.Errorf("reading the signer's state back: %v", err)
		}
		if s.AccountXPub == xpub {
			log.Info("created the signer's mnemonic (sealed) and account", "account_xpub", xpub)
		}
	} else if envelopeKeyID != "" && envelopeKeyID != s.EnvelopeKeyID {
		log.Warn("custody.kms.envelope_key_id differs from the key the signer's state is sealed under; using the latter",
			"configured", envelopeKeyID, "kms_key_id", s.EnvelopeKeyID)
	}
	// Opening the mnemonic proves the KMS reaches the envelope key.
	sealed, err := custodykms.UnmarshalSealed(s.SealedMnemonic)
	if err != nil {
		return state{}, fmt.Errorf("%w: reading the sealed mnemonic: %v", ErrState, err)
	}
	words, err := custodykms.NewEnvelope(api, s.EnvelopeKeyID).Open(ctx, sealed, mnemonicAAD)
	if err != nil {
		return state{}, fmt.Errorf("opening the signer's mnemonic: %w", err)
	}
	account, err := derive(words, hd.AccountPath)
	if err != nil {
		return state{}, err
	}
	defer account.Zero()
	if account.XPub() != s.AccountXPub {
		return state{}, fmt.Errorf("%w: the sealed mnemonic does not derive the stored account xpub", ErrState)
	}
	return s, nil
}

// AccountXPub is the HD account's xpub, m/44'/60'/0' (public).
func (s *Signer) AccountXPub() string { return s.keys.state.AccountXPub }

// EnvelopeKeyID is the KMS key whose data keys seal the signer's key
// material.
func (s *Signer) EnvelopeKeyID() string { return s.keys.state.EnvelopeKeyID }

// Metrics are the signer's Prometheus collectors.
func (s *Signer) Metrics() *Metrics { return s.metrics }

// Sign signs one attempt of one workflow step (see signerapi.SignRequest),
// or refuses it. The signed attempt and its audit entry are stored before
// Sign returns; a refusal is audited before it is returned. Errors:
// *Refusal (never signed, also on a retry), a bad request or an unknown key
// (both also audited as refused), or the signer's own trouble (its
// database, its KMS), which a retry may cure.
func (s *Signer) Sign(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error) {
	st, tx, err := parseRequest(req)
	var resp signerapi.SignResponse
	verdict, backend := signerapi.VerdictRefused, ""
	if err == nil {
		resp, verdict, backend, err = s.sign(ctx, st, tx)
	}
	if err := s.conclude(ctx, st, strings.ToLower(strings.TrimSpace(req.From)), resp.TxHash, verdict, backend, err); err != nil {
		return signerapi.SignResponse{}, err
	}
	return resp, nil
}

// conclude records the answer to a sign request of either family and
// returns the error to answer with (nil: the signature). A refusal (a bad
// request and an unknown key included) is audited, counted by reason and
// logged, and answered with err; an audit that fails turns it into the
// signer's own trouble. Any other error is logged and answered as it is. A
// signature or a replay is counted and logged (its audit entry was written
// with it).
func (s *Signer) conclude(ctx context.Context, st step, from, txHash, verdict, backend string, err error) error {
	chainLabel := st.Chain
	if !s.known(st.Chain) {
		chainLabel = "unknown"
	}
	reason := refusalReason(err)
	if reason != "" {
		if aerr := s.store.audit(context.WithoutCancel(ctx), auditEntry{step: st, From: from, Verdict: signerapi.VerdictRefused,
			Reason: reason + ": " + err.Error()}); aerr != nil {
			s.log.Error("could not audit a refusal; answering unavailable", "chain", st.Chain, "workflow_id", st.WorkflowID,
				"step", st.Step, "attempt", st.Attempt, "err", aerr)
			return aerr
		}
		s.metrics.refused(chainLabel, reason)
		s.log.Warn("refused", "chain", st.Chain, "workflow_id", st.WorkflowID, "step", st.Step, "attempt", st.Attempt,
			"reservation", st.Reservation, "address", from, "reason", reason, "err", err.Error())
		return err
	}
	if err != nil {
		s.log.Error("signing failed", "chain", st.Chain, "workflow_id", st.WorkflowID, "step", st.Step, "attempt", st.Attempt,
			"address", from, "err", err)
		return err
	}
	s.metrics.answered(chainLabel, verdict)
	s.log.Info(verdict, "chain", st.Chain, "workflow_id", st.WorkflowID, "step", st.Step, "attempt", st.Attempt,
		"reservation", st.Reservation, "address", from, "tx_hash", txHash, "backend", backend)
	return nil
}

// refusalReason is the reason label of an error the signer answers as a
// refusal, or "" for its own trouble.
func refusalReason(err error) string {
	var r *Refusal
	var b *badRequest
	var u *unknownKey
	switch {
	case err == nil:
		return ""
	case errors.As(err, &r):
		return r.Reason
	case errors.As(err, &b):
		return reasonBadRequest
	case errors.As(err, &u):
		return reasonUnknownKey
	}
	return ""
}

// sign applies the rules to one parsed request and signs it.
func (s *Signer) sign(ctx context.Context, st step, tx unsignedTx) (signerapi.SignResponse, string, string, error) {
	// The same attempt again: the stored transaction, or a refusal.
	if prev, ok, err := s.store.step(ctx, st.Chain, st.WorkflowID, st.Step, st.Attempt); err != nil {
		return signerapi.SignResponse{}, "", "", err
	} else if ok {
		resp, err := s.replay(ctx, st, tx, prev)
		return resp, signerapi.VerdictReplayed, "", err
	}

	ch, ok := s.chain(st.Chain)
	if !ok {
		return fail(refuse(reasonUnknownChain, "payflow-signer signs for no chain %s (it signs for %s)", st.Chain, s.chainList(false)))
	}
	if tx.ChainID != ch.ChainID {
		return fail(refuse(reasonChainID, "chain id %d is not %s's (%d)", tx.ChainID, st.Chain, ch.ChainID))
	}
	if max := ch.MaxFeeWei(); tx.FeeCap.Cmp(max) > 0 {
		return fail(refuse(reasonFeeCap, "fee cap %s gwei is above %s's maximum of %d gwei", gwei(tx.FeeCap), st.Chain, ch.MaxFeeGwei))
	}
	var err error
	switch {
	case gapFiller(st, tx):
		// Moves no money: a self-transfer of nothing that uses up one
		// nonce, its gas bounded by the fee cap above.
	case st.Attempt == 0:
		err = s.checkFirst(ctx, ch, st, tx)
	default:
		st.Reservation, err = s.checkReplacement(ctx, st, tx)
	}
	if err != nil {
		return fail(err)
	}

	key, err := s.keys.find(ctx, st.Chain, tx.From)
	if err != nil {
		return fail(err)
	}
	signer := types.LatestSignerForChainID(big.NewInt(tx.ChainID))
	start := time.Now()
	signed, err := key.sign(ctx, tx.transaction(), signer)
	if err != nil {
		return fail(fmt.Errorf("signing %s with the %s key of %s: %w", st, key.Backend, addr(tx.From), err))
	}
	s.metrics.signSecondsObserve(key.Backend, time.Since(start))
	if sender, err := types.Sender(signer, signed); err != nil || sender != tx.From {
		return fail(fmt.Errorf("the %s key of %s signed %s as another sender", key.Backend, addr(tx.From), st))
	}
	raw, err := signed.MarshalBinary()
	if err != nil {
		return fail(err)
	}
	row := signedStep{step: st, Tx: tx, TxHash: signed.Hash().Hex(), Raw: raw}
	switch err := s.store.insertSigned(ctx, row); {
	case errors.Is(err, errDuplicateStep):
		// A concurrent request stored this attempt first: answer with its
		// transaction, as a replay, if it is this one.
		prev, ok, err := s.store.step(ctx, st.Chain, st.WorkflowID, st.Step, st.Attempt)
		if err != nil || !ok {
			return fail(fmt.Errorf("reading %s back after a concurrent signature: %v", st, err))
		}
		resp, err := s.replay(ctx, st, tx, prev)
		return resp, signerapi.VerdictReplayed, "", err
	case errors.Is(err, errReservationTaken):
		// Another step stored its first attempt with this reservation
		// between the check and the insert.
		if err := s.reservationUsed(ctx, st); err != nil {
			return fail(err)
		}
		return fail(refuse(reasonReservationUsed, "reservation %s already pays for another step: a reservation pays for one step", st.Reservation))
	case err != nil:
		return fail(err)
	}
	return signerapi.SignResponse{Raw: hexutil.Encode(raw), TxHash: row.TxHash}, signerapi.VerdictSigned, key.Backend, nil
}

func fail(err error) (signerapi.SignResponse, string, string, error) {
	return signerapi.SignResponse{}, signerapi.VerdictRefused, "", err
}

// replay answers a request for an attempt signed before: the stored raw
// transaction when the request is the same, else a refusal. The replay is
// audited.
func (s *Signer) replay(ctx context.Context, st step, tx unsignedTx, prev signedStep) (signerapi.SignResponse, error) {
	diff := differences(prev.Tx, tx, true)
	if st.Reservation != prev.Reservation && (st.Attempt == 0 || st.Reservation != "") {
		diff = append(diff, fmt.Sprintf("reservation %s, not %s", prev.Reservation, st.Reservation))
	}
	if len(diff) > 0 {
		return signerapi.SignResponse{}, refuse(reasonStepConflict, "%s was signed for another transaction (%s): it is signed once; a new transaction is a new attempt",
			st, strings.Join(diff, "; "))
	}
	if err := s.store.audit(ctx, auditEntry{step: prev.step, From: addr(prev.Tx.From), TxHash: prev.TxHash, Verdict: signerapi.VerdictReplayed}); err != nil {
		return signerapi.SignResponse{}, err
	}
	return signerapi.SignResponse{Raw: hexutil.Encode(prev.Raw), TxHash: prev.TxHash, Replayed: true}, nil
}

// The healer fills a nonce its wallet can no longer use any other way with
// a gap filler: workflow "nonce-gap-<from>", step "nonce-<n>", attempt
// gapFillerAttempt (chain/evm's GapFiller names them so).
const (
	gapFillerAttempt = 1000
	gapFillerGas     = 21000
)

// gapFiller says whether st is a gap filler and tx exactly the one it may
// be: from the wallet to itself, at the step's nonce, no value, no data, the
// gas of a plain transfer. It needs no reservation.
func gapFiller(st step, tx unsignedTx) bool {
	return st.Attempt == gapFillerAttempt && st.WorkflowID == "nonce-gap-"+addr(tx.From) &&
		st.Step == fmt.Sprintf("nonce-%d", tx.Nonce) && tx.To == tx.From && tx.Value != nil && tx.Value.Sign() == 0 && len(tx.Data) == 0 &&
		tx.Gas == gapFillerGas
}

// checkFirst checks attempt 0 against its reservation (see
// reservationOf and checkPayout).
func (s *Signer) checkFirst(ctx context.Context, ch config.ChainConfig, st step, tx unsignedTx) error {
	r, v, err := s.reservationOf(ctx, st, addr(tx.From))
	if err != nil {
		return err
	}
	p, err := decodePayment(ch, tx)
	if err != nil {
		return err
	}
	return s.checkPayout(ctx, ch, r, v, p, func() error { return s.reservationUsed(ctx, st) })
}

// reservationOf reads the reservation a first attempt names and refuses
// it unless it is held, on the step's chain, for wallet from, and names a
// recipient. from is in the chain's canonical form (lowercase).
func (s *Signer) reservationOf(ctx context.Context, st step, from string) (ledger.Reservation, ledger.PayoutCheck, error) {
	if st.Reservation == "" {
		return ledger.Reservation{}, ledger.PayoutCheck{}, refuse(reasonNoReservation,
			"%s names no reservation: a first attempt pays out a held reservation", st)
	}
	r, v, err := s.heldReservation(ctx, st.Reservation)
	if err != nil {
		return r, v, err
	}
	if !strings.EqualFold(r.Chain, st.Chain) {
		return r, v, refuse(reasonReservationMismatch, "reservation %s holds money on %s, not on %s", r.QueueID, r.Chain, st.Chain)
	}
	if r.Address != from {
		return r, v, refuse(reasonReservationMismatch, "reservation %s holds money of wallet %s, not of %s", r.QueueID, r.Address, from)
	}
	if r.Recipient == "" {
		return r, v, refuse(reasonNoRecipient, "the reservation names no recipient: reservation %s cannot be paid out by the signer", r.QueueID)
	}
	return r, v, nil
}

// checkPayout is the policy of a first attempt, the same on every chain
// family: p, what the transaction pays (its asset, amount and recipient,
// in the ledger's terms), is exactly what reservation r holds; its
// recipient is not on the deny list (unless r is a held deposit returned to
// its sender); used, the family's own record, says no other step paid with
// r; and the approval and velocity policy of checkHeld allows it.
func (s *Signer) checkPayout(ctx context.Context, ch config.ChainConfig, r ledger.Reservation, v ledger.PayoutCheck, p payment,
	used func() error) error {
	if e, listed := s.denyList.Check(p.Recipient); listed &&
		!(ledger.IsHoldKey(r.QueueID) && strings.EqualFold(r.Recipient, p.Recipient)) {
		return refuse(reasonRecipientBlocked, "recipient is blocked: %s is on the deny list (%s)", p.Recipient, e.Source)
	}
	if !strings.EqualFold(p.Symbol, r.Symbol) || !p.Amount.Equal(r.Amount) || !strings.EqualFold(p.Recipient, r.Recipient) {
		held := payment{Symbol: r.Symbol, Amount: r.Amount, Recipient: r.Recipient}
		return refuse(reasonReservationMismatch, "reservation %s holds %s, not %s", r.QueueID, held, p)
	}
	if err := used(); err != nil {
		return err
	}
	return s.checkHeld(ctx, ch, r, v)
}

// checkHeld applies the approval and velocity policy to the payment that
// reservation r pays out, unless its recipient is a wallet payflow holds
// the key of (a sweep, a gas top-up, a payment between managed wallets:
// the money stays in custody) or the chain's cold address (a treasury
// sweep), or r is a held deposit's (its return to its sender, an
// operator's audited action). It refuses:
//   - a reservation without a velocity decision when its asset has
//     velocity limits (a worker that skipped its checks);
//   - one whose decision says it fits while the sums recomputed the same
//     way, against the signer's own limits, say it is over (a wrong
//     decision);
//   - one above the asset's approval threshold, or whose decision is over
//     a limit, without an approval recorded in the audit trail by the
//     payment's workflow (the reservation's key is its workflow id).
//
// v is what the ledger holds of r's payout (its recipient's wallet, its
// decision and the sums recomputed), read with r.
func (s *Signer) checkHeld(ctx context.Context, ch config.ChainConfig, r ledger.Reservation, v ledger.PayoutCheck) error {
	if ledger.IsHoldKey(r.QueueID) || (ch.ColdAddress != "" && strings.EqualFold(r.Recipient, ch.ColdAddress)) {
		return nil
	}
	if v.RecipientHasKey {
		return nil
	}
	asset, _ := ch.Asset(r.Symbol)
	wl, rl := asset.VelocityLimits()
	limits := ledger.VelocityLimits{Wallet: wl, Recipient: rl}
	var held []string
	if t, err := decimal.NewFromString(asset.ApprovalThreshold); err == nil && r.Amount.GreaterThan(t) {
		held = append(held, fmt.Sprintf("%s %s is above the approval threshold %s", r.Amount, r.Symbol, asset.ApprovalThreshold))
	}
	d := v.Decision
	switch {
	case !v.Decided && asset.HasVelocityLimit():
		return refuse(reasonNoVelocityDecision, "reservation %s has no velocity decision, and %s on %s has velocity limits: "+
			"a payment's decision is taken before its transfer is signed", r.QueueID, r.Symbol, r.Chain)
	case v.Decided && asset.HasVelocityLimit():
		ws, rs := v.WalletSum, v.RecipientSum
		overW, overR := ledger.VelocityOver(ws, rs, r.Amount, d.Recipient, limits)
		if overW && !d.OverWallet {
			return refuse(reasonVelocityMismatch, "reservation %s was decided within the velocity limits, but wallet %s sent %s %s "+
				"in the 24 h before it, and %s more is above its limit %s", r.QueueID, d.Wallet, ws, r.Symbol, r.Amount, wl)
		}
		if overR && !d.OverRecipient {
			return refuse(reasonVelocityMismatch, "reservation %s was decided within the velocity limits, but recipient %s received %s %s "+
				"in the 24 h before it, and %s more is above its limit %s", r.QueueID, d.Recipient, rs, r.Symbol, r.Amount, rl)
		}
	}
	if d.OverWallet {
		held = append(held, "its wallet is over its 24 h velocity limit")
	}
	if d.OverRecipient {
		held = append(held, "its recipient is over its 24 h velocity limit")
	}
	if len(held) == 0 {
		return nil
	}
	approved, err := s.approvals.Approved(ctx, r.QueueID)
	if err != nil || approved {
		return err
	}
	return refuse(reasonNotApproved, "reservation %s waits for an operator (%s), and no approval of payment %s is recorded in the audit trail",
		r.QueueID, strings.Join(held, "; "), r.QueueID)
}

// reservationUsed refuses st when another step's first attempt paid with
// its reservation (nil when none did).
func (s *Signer) reservationUsed(ctx context.Context, st step) error {
	other, ok, err := s.store.paidBy(ctx, st.Chain, st.Reservation)
	if err != nil || !ok {
		return err
	}
	if other.WorkflowID == st.WorkflowID && other.Step == st.Step {
		return nil
	}
	return refuse(reasonReservationUsed, "reservation %s already pays for step %s of workflow %s (transaction %s): a reservation pays for one step",
		st.Reservation, other.Step, other.WorkflowID, other.TxHash)
}

// heldReservation reads a reservation with its payout check (one
// statement), and refuses unless it is held.
func (s *Signer) heldReservation(ctx context.Context, key string) (ledger.Reservation, ledger.PayoutCheck, error) {
	r, v, err := s.ledger.GetPayoutCheck(ctx, key)
	if errors.Is(err, ledger.ErrReservationNotFound) {
		return r, v, refuse(reasonReservationNotFound, "reservation %s does not exist", key)
	}
	if err != nil {
		return r, v, err
	}
	if r.State != "held" {
		return r, v, refuse(reasonReservationClosed, "reservation %s is %s, not held: its money is no longer there to pay", key, r.State)
	}
	r.Address = strings.ToLower(r.Address)
	return r, v, nil
}

// checkReplacement checks attempt n > 0 against attempts n-1 and 0: the same
// transaction but its fees, and attempt 0's reservation still held. It
// returns that reservation.
func (s *Signer) checkReplacement(ctx context.Context, st step, tx unsignedTx) (string, error) {
	prev, ok, err := s.store.step(ctx, st.Chain, st.WorkflowID, st.Step, st.Attempt-1)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", refuse(reasonReplacement, "%s replaces attempt %d, which the signer never signed", st, st.Attempt-1)
	}
	first := prev
	if st.Attempt > 1 {
		if first, ok, err = s.store.step(ctx, st.Chain, st.WorkflowID, st.Step, 0); err != nil {
			return "", err
		} else if !ok {
			return "", refuse(reasonReplacement, "%s replaces a step whose attempt 0 the signer never signed", st)
		}
	}
	for _, p := range []signedStep{prev, first} {
		if diff := differences(p.Tx, tx, false); len(diff) > 0 {
			return "", refuse(reasonReplacement, "%s is no replacement of attempt %d: only the fees may change, and it has %s",
				st, p.Attempt, strings.Join(diff, "; "))
		}
	}
	if st.Reservation != "" && st.Reservation != first.Reservation {
		return "", refuse(reasonReplacement, "%s names reservation %s, but attempt 0 paid out reservation %s", st, st.Reservation, first.Reservation)
	}
	if _, _, err := s.heldReservation(ctx, first.Reservation); err != nil {
		return "", err
	}
	return first.Reservation, nil
}

// chainList names the chains of one family, for a refusal's message.
func (s *Signer) chainList(btc bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := slices.Sorted(maps.Keys(s.chains))
	if btc {
		names = slices.Sorted(maps.Keys(s.btcChains))
	}
	if len(names) == 0 {
		return "none yet"
	}
	return strings.Join(names, ", ")
}

// gwei writes wei as gwei.
func gwei(w *big.Int) string {
	q, r := new(big.Int).QuoRem(w, big.NewInt(1_000_000_000), new(big.Int))
	if r.Sign() == 0 {
		return q.String()
	}
	return strings.TrimRight(fmt.Sprintf("%s.%09s", q, r), "0")
}

// NewKey creates a key on backend (signerapi.BackendKMS or
// BackendEnvelope) and returns it.
func (s *Signer) NewKey(ctx context.Context, backend string) (signerapi.KeyInfo, error) {
	row, err := s.keys.newKey(ctx, backend)
	if err != nil {
		return signerapi.KeyInfo{}, err
	}
	s.log.Info("created a key", "address", row.Address, "backend", row.Backend, "kms_key_id", row.KMSKeyID)
	return keyInfo(row), nil
}

// Import seals a legacy private key (hex) under a data key of the envelope
// key and returns it. A key imported before is returned as it was stored.
// Errors never quote the key.
func (s *Signer) Import(ctx context.Context, privateKeyHex string) (signerapi.KeyInfo, error) {
	row, err := s.keys.importKey(ctx, privateKeyHex)
	if err != nil {
		return signerapi.KeyInfo{}, err
	}
	s.log.Info("imported a key", "address", row.Address, "backend", row.Backend)
	return keyInfo(row), nil
}

// statusEntries is how many audit entries Status shows.
const statusEntries = 20

// Status describes the signer: its KMS, envelope key, account xpub, keys
// and the last audit entries.
func (s *Signer) Status(ctx context.Context) (signerapi.Status, error) {
	rows, err := s.store.keys(ctx)
	if err != nil {
		return signerapi.Status{}, err
	}
	last, err := s.store.lastAudit(ctx, statusEntries)
	if err != nil {
		return signerapi.Status{}, err
	}
	out := signerapi.Status{KMS: s.kmsName, EnvelopeKeyID: s.keys.state.EnvelopeKeyID, AccountXPub: s.keys.state.AccountXPub,
		Keys: make([]signerapi.KeyInfo, 0, len(rows)), Last: last}
	for _, r := range rows {
		out.Keys = append(out.Keys, keyInfo(r))
	}
	if out.Last == nil {
		out.Last = []signerapi.AuditEntry{}
	}
	return out, nil
}

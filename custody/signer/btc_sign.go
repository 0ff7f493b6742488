package signer

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/shopspring/decimal"

	"payflow/chain/btc"
	"payflow/config"
	"payflow/custody/hd"
	"payflow/custody/signerapi"
	"payflow/ledger"
)

// maxBTCAddress is the widest address signer_btc_steps stores (bech32
// addresses are at most 90 characters).
const maxBTCAddress = 90

// btcRequest is a BTCSignRequest that reads: its step, its paying wallet
// and its transaction.
type btcRequest struct {
	step
	// From is the paying wallet as given, trimmed and in lowercase (bech32
	// is case-insensitive, and payflow writes it in lowercase).
	From string
	// Packet is the request's transaction as the signer signs it: the
	// unsigned transaction and each input's witness UTXO, nothing else the
	// request's PSBT carried.
	Packet *psbt.Packet
	// TxID is the transaction's id, which its signatures do not change
	// (segwit): the same id is the same transaction.
	TxID string
	// Inputs are the outputs it spends, in its order, with what the
	// request says they hold.
	Inputs []outpoint
	// In and Out are the sums of the inputs and the outputs, in satoshis.
	In, Out int64
}

// parseBTCRequest checks the request's shape and returns it parsed, or a
// bad-request error saying which field is wrong. The chain's network is
// not known yet: addresses are checked later.
func parseBTCRequest(req signerapi.BTCSignRequest) (btcRequest, error) {
	st, err := parseStep(req.Chain, req.WorkflowID, req.Step, req.Attempt, req.Reservation)
	r := btcRequest{step: st, From: strings.ToLower(strings.TrimSpace(req.From))}
	if err != nil {
		return r, err
	}
	bad := func(format string, args ...any) (btcRequest, error) {
		return r, &badRequest{msg: fmt.Sprintf(format, args...)}
	}
	if r.From == "" || len(r.From) > maxBTCAddress || !utf8.ValidString(r.From) {
		return bad("from %q is not a Bitcoin address", clip(r.From))
	}
	p, err := psbt.NewFromRawBytes(strings.NewReader(strings.TrimSpace(req.PSBT)), true)
	if err != nil {
		return bad("psbt is not a base64 BIP174 packet: %v", err)
	}
	tx := p.UnsignedTx
	if len(tx.TxIn) == 0 || len(tx.TxOut) == 0 {
		return bad("psbt's transaction has %d inputs and %d outputs: a payment has at least one of each", len(tx.TxIn), len(tx.TxOut))
	}
	seen := map[wire.OutPoint]bool{}
	for i, in := range p.Inputs {
		op := tx.TxIn[i].PreviousOutPoint
		if seen[op] {
			return bad("psbt's inputs %s twice", op)
		}
		seen[op] = true
		u := in.WitnessUtxo
		if u == nil {
			return bad("psbt's input %d (%s) carries no witness UTXO: the signature commits to the amount it spends", i, op)
		}
		if u.Value <= 0 || u.Value > btcutil.MaxSatoshi {
			return bad("psbt's input %d (%s) holds %d satoshis", i, op, u.Value)
		}
		r.Inputs = append(r.Inputs, outpoint{TxID: op.Hash.String(), Vout: op.Index, Sats: u.Value})
		r.In += u.Value
	}
	for i, out := range tx.TxOut {
		if out.Value < 0 || out.Value > btcutil.MaxSatoshi {
			return bad("psbt's output %d pays %d satoshis", i, out.Value)
		}
		r.Out += out.Value
	}
	// The packet signed is built anew from the transaction and the witness
	// UTXOs: scripts, derivation paths or signatures the request carried
	// are not the signer's to trust.
	if r.Packet, err = psbt.NewFromUnsignedTx(tx.Copy()); err != nil {
		return bad("psbt's transaction does not read as unsigned: %v", err)
	}
	for i := range r.Packet.Inputs {
		u := p.Inputs[i].WitnessUtxo
		r.Packet.Inputs[i].WitnessUtxo = wire.NewTxOut(u.Value, bytes.Clone(u.PkScript))
		r.Packet.Inputs[i].SighashType = txscript.SigHashAll
	}
	r.TxID = tx.TxHash().String()
	return r, nil
}

// SignBTC signs one attempt of one workflow step on a Bitcoin chain (see
// signerapi.BTCSignRequest), or refuses it. As Sign, the signed attempt and
// its audit entry are stored before it returns, and a refusal is audited
// before it is returned. Errors: *Refusal, a bad request (an unknown chain,
// a PSBT that does not read), an unknown key (From is no HD wallet of the
// chain, or the signer's account does not derive it), or the signer's own
// trouble, which a retry may cure.
func (s *Signer) SignBTC(ctx context.Context, req signerapi.BTCSignRequest) (signerapi.BTCSignResponse, error) {
	r, err := parseBTCRequest(req)
	var resp signerapi.BTCSignResponse
	verdict, backend := signerapi.VerdictRefused, ""
	if err == nil {
		resp, verdict, backend, err = s.signBTC(ctx, r)
	}
	if err := s.conclude(ctx, r.step, r.From, resp.TxID, verdict, backend, err); err != nil {
		return signerapi.BTCSignResponse{}, err
	}
	return resp, nil
}

func failBTC(err error) (signerapi.BTCSignResponse, string, string, error) {
	return signerapi.BTCSignResponse{}, signerapi.VerdictRefused, "", err
}

// signBTC applies the rules to one parsed request and signs it.
func (s *Signer) signBTC(ctx context.Context, r btcRequest) (signerapi.BTCSignResponse, string, string, error) {
	// The same attempt again: the stored transaction, or a refusal.
	if prev, ok, err := s.store.btcStep(ctx, r.Chain, r.WorkflowID, r.Step, r.Attempt); err != nil {
		return failBTC(err)
	} else if ok {
		resp, err := s.replayBTC(ctx, r, prev)
		return resp, signerapi.VerdictReplayed, "", err
	}

	bc, ok := s.btcChain(r.Chain)
	if !ok {
		return failBTC(&badRequest{msg: fmt.Sprintf("payflow-signer signs for no Bitcoin chain %s (it signs for %s)", r.Chain, s.chainList(true))})
	}
	params, err := btc.Params(bc.Network)
	if err != nil {
		return failBTC(fmt.Errorf("btc_chains.%s: %w", r.Chain, err))
	}
	from, fromScript, err := btc.ParseAddress(r.From, params)
	if err != nil {
		return failBTC(&badRequest{msg: fmt.Sprintf("from %q is not a native segwit address of %s's network %s", clip(r.From), r.Chain, bc.Network)})
	}
	r.From = from.EncodeAddress()
	index, err := s.btcWallet(ctx, r.Chain, r.From)
	if err != nil {
		return failBTC(err)
	}
	for i, in := range r.Inputs {
		if script := r.Packet.Inputs[i].WitnessUtxo.PkScript; !bytes.Equal(script, fromScript) {
			return failBTC(refuse(reasonNotOurInput, "input %d spends %s, an output of %s, not of %s: the signer signs the paying wallet's outputs only",
				i, in, scriptAddress(script, params), r.From))
		}
	}
	fee := r.In - r.Out
	if fee <= 0 {
		return failBTC(&badRequest{msg: fmt.Sprintf("the outputs pay %d satoshis and the inputs hold %d: a transaction pays a fee above 0", r.Out, r.In)})
	}
	vsize := int64(btc.P2WPKHVSize(len(r.Inputs), len(r.Packet.UnsignedTx.TxOut)))
	if fee > bc.MaxFeeRate*vsize {
		return failBTC(refuse(reasonFeeCap, "fee %d satoshis for %d virtual bytes is %s sat/vB, above %s's maximum of %d sat/vB",
			fee, vsize, decimal.New(fee, 0).DivRound(decimal.New(vsize, 0), 2), r.Chain, bc.MaxFeeRate))
	}
	row := btcSigned{step: r.step, From: r.From, FeeSats: fee, TxID: r.TxID}
	if r.Attempt == 0 {
		err = s.checkFirstBTC(ctx, bc, params, fromScript, r, &row)
	} else {
		err = s.checkReplacementBTC(ctx, params, fromScript, r, &row)
	}
	if err != nil {
		return failBTC(err)
	}

	start := time.Now()
	tx, err := s.keys.signBTC(ctx, params, index, from, r)
	if err != nil {
		return failBTC(err)
	}
	s.metrics.signSecondsObserve(signerapi.BackendHD, time.Since(start))
	if got := tx.TxHash().String(); got != r.TxID {
		return failBTC(fmt.Errorf("signing %s gave transaction %s, not %s", r.step, got, r.TxID))
	}
	var raw bytes.Buffer
	if err := tx.Serialize(&raw); err != nil {
		return failBTC(fmt.Errorf("encoding the signed %s: %w", r.step, err))
	}
	row.Raw = raw.Bytes()
	switch err := s.store.insertBTCSigned(ctx, row, r.Inputs); {
	case errors.Is(err, errDuplicateStep):
		// A concurrent request stored this attempt first: answer with its
		// transaction, as a replay, if it is this one.
		prev, ok, err := s.store.btcStep(ctx, r.Chain, r.WorkflowID, r.Step, r.Attempt)
		if err != nil || !ok {
			return failBTC(fmt.Errorf("reading %s back after a concurrent signature: %v", r.step, err))
		}
		resp, err := s.replayBTC(ctx, r, prev)
		return resp, signerapi.VerdictReplayed, "", err
	case errors.Is(err, errReservationTaken):
		if err := s.btcReservationUsed(ctx, r.step); err != nil {
			return failBTC(err)
		}
		return failBTC(refuse(reasonReservationUsed, "reservation %s already pays for another step: a reservation pays for one step", r.Reservation))
	case errors.Is(err, errInputTaken):
		if err := s.btcInputsUsed(ctx, r); err != nil {
			return failBTC(err)
		}
		return failBTC(refuse(reasonInputUsed, "an input of %s is spent by another step: an output pays for one step", r.step))
	case err != nil:
		return failBTC(err)
	}
	return signerapi.BTCSignResponse{Raw: hex.EncodeToString(row.Raw), TxID: row.TxID}, signerapi.VerdictSigned, signerapi.BackendHD, nil
}

// replayBTC answers a request for an attempt signed before: the stored raw
// transaction when the request is the same (the same transaction, wallet
// and reservation), else a refusal. The replay is audited.
func (s *Signer) replayBTC(ctx context.Context, r btcRequest, prev btcSigned) (signerapi.BTCSignResponse, error) {
	var diff []string
	if r.TxID != prev.TxID {
		diff = append(diff, fmt.Sprintf("transaction %s, not %s", prev.TxID, r.TxID))
	}
	if r.From != prev.From {
		diff = append(diff, fmt.Sprintf("from %s, not %s", prev.From, clip(r.From)))
	}
	if r.Reservation != prev.Reservation && (r.Attempt == 0 || r.Reservation != "") {
		diff = append(diff, fmt.Sprintf("reservation %s, not %s", prev.Reservation, r.Reservation))
	}
	if len(diff) > 0 {
		return signerapi.BTCSignResponse{}, refuse(reasonStepConflict, "%s was signed for another transaction (%s): it is signed once; a new transaction is a new attempt",
			r.step, strings.Join(diff, "; "))
	}
	if err := s.store.audit(ctx, auditEntry{step: prev.step, From: prev.From, TxHash: prev.TxID, Verdict: signerapi.VerdictReplayed}); err != nil {
		return signerapi.BTCSignResponse{}, err
	}
	return signerapi.BTCSignResponse{Raw: hex.EncodeToString(prev.Raw), TxID: prev.TxID, Replayed: true}, nil
}

// btcWallet returns the HD index of chain's managed wallet address: a
// wallet of the ledger with an hd_index, whose key is the signer's child
// m/84'/coin'/0'/0/index (checked when it signs). Anything else is an
// unknown key.
func (s *Signer) btcWallet(ctx context.Context, chain, address string) (uint32, error) {
	w, err := s.keys.wallets.Get(ctx, chain, address)
	if errors.Is(err, ledger.ErrWalletNotFound) {
		return 0, &unknownKey{msg: fmt.Sprintf("%s has no wallet %s: the signer signs for the managed wallets of its Bitcoin account", chain, address)}
	}
	if err != nil {
		return 0, err
	}
	if w.HDIndex == nil || !w.HasKey {
		return 0, &unknownKey{msg: fmt.Sprintf("wallet %s (%q) on %s is no child of the signer's Bitcoin account: it holds no key for it", address, w.Label, chain)}
	}
	return *w.HDIndex, nil
}

// checkFirstBTC checks attempt 0 against its reservation and the policy of
// a payment (checkPayout, as on an EVM chain), and that no other step
// spends any of its inputs. It fills row's recipient and amount.
func (s *Signer) checkFirstBTC(ctx context.Context, bc config.BTCChain, params *chaincfg.Params, fromScript []byte, r btcRequest, row *btcSigned) error {
	res, check, err := s.reservationOf(ctx, r.step, r.From)
	if err != nil {
		return err
	}
	recipient, recipientScript, err := btc.ParseAddress(res.Recipient, params)
	if err != nil {
		return refuse(reasonReservationMismatch, "reservation %s pays %s, which is not a native segwit address of %s's network %s",
			res.QueueID, clip(res.Recipient), r.Chain, bc.Network)
	}
	if bytes.Equal(recipientScript, fromScript) {
		return &badRequest{msg: fmt.Sprintf("reservation %s pays wallet %s to itself: that is no payment", res.QueueID, r.From)}
	}
	sats, change, err := paymentOutput(r.Packet.UnsignedTx, recipient.EncodeAddress(), recipientScript, r.From, fromScript, params)
	if err != nil {
		return err
	}
	// What the transaction takes of the reservation: its output, or, when
	// it spends the reservation whole, its output and its fee.
	taken := sats
	if spendsWhole(r, change, res) {
		if err := s.managedRecipient(ctx, r.Chain, res); err != nil {
			return err
		}
		taken = r.In
	}
	p := payment{Symbol: bc.Native.Symbol, Amount: decimal.New(taken, -btc.Decimals), Recipient: recipient.EncodeAddress()}
	if err := s.checkPayout(ctx, bc.Assets(), res, check, p, func() error {
		if err := s.btcReservationUsed(ctx, r.step); err != nil {
			return err
		}
		return s.btcInputsUsed(ctx, r)
	}); err != nil {
		return err
	}
	row.Recipient, row.AmountSats = p.Recipient, sats
	return nil
}

// spendsWhole says whether r spends the reservation res whole: no change,
// and inputs worth exactly what res holds, so its one output pays the
// recipient that less the fee (a sweep, whose fee comes from the coins it
// sweeps). A payment's reservation holds its output alone, never its inputs
// (the fee is above zero), so the two cannot be taken for each other.
func spendsWhole(r btcRequest, change int, res ledger.Reservation) bool {
	return change == 0 && res.Amount.Equal(decimal.New(r.In, -btc.Decimals))
}

// managedRecipient refuses a transaction that pays its fee out of reservation
// res unless res's recipient is a wallet payflow holds the key of: money
// that stays in custody (a sweep into the collection wallet). Anyone else
// receives exactly what is reserved for them.
func (s *Signer) managedRecipient(ctx context.Context, chain string, res ledger.Reservation) error {
	w, err := s.keys.wallets.Get(ctx, chain, res.Recipient)
	switch {
	case err == nil && w.HasKey:
		return nil
	case err != nil && !errors.Is(err, ledger.ErrWalletNotFound):
		return err
	}
	return refuse(reasonReservationMismatch, "reservation %s holds %s for %s, and the transaction pays its fee out of it: only a sweep into a wallet payflow holds the key of may",
		res.QueueID, res.Amount, res.Recipient)
}

// paymentOutput reads tx's outputs as a payment to recipient with change
// to from, and returns what it pays recipient and how many outputs return
// change (0 or 1): exactly one output pays recipient, at most one pays
// from, none pays anyone else.
func paymentOutput(tx *wire.MsgTx, recipient string, recipientScript []byte, from string, fromScript []byte, params *chaincfg.Params) (int64, int, error) {
	var sats int64
	paid, change := 0, 0
	for i, out := range tx.TxOut {
		switch {
		case bytes.Equal(out.PkScript, recipientScript):
			paid++
			sats = out.Value
		case bytes.Equal(out.PkScript, fromScript):
			change++
		default:
			return 0, 0, refuse(reasonNotPayment, "output %d pays %d satoshis to %s, which is neither the recipient %s nor change to %s",
				i, out.Value, scriptAddress(out.PkScript, params), recipient, from)
		}
	}
	if paid != 1 {
		return 0, 0, refuse(reasonReservationMismatch, "the transaction pays the recipient %s in %d outputs: a payment pays it in one", recipient, paid)
	}
	if change > 1 {
		return 0, 0, refuse(reasonNotPayment, "the transaction returns change to %s in %d outputs: a payment has one change output at most", from, change)
	}
	return sats, change, nil
}

// checkReplacementBTC checks attempt n > 0 against attempts n-1 and 0: it
// spends exactly the step's inputs (so only one attempt can be mined),
// pays attempt 0's recipient the same amount (less, by the higher fee, when
// it spends its reservation whole: a sweep), pays a higher fee than
// attempt n-1, and attempt 0's reservation is still held. It fills row's
// reservation and recipient with attempt 0's, its amount with what it
// pays.
func (s *Signer) checkReplacementBTC(ctx context.Context, params *chaincfg.Params, fromScript []byte, r btcRequest, row *btcSigned) error {
	prev, ok, err := s.store.btcStep(ctx, r.Chain, r.WorkflowID, r.Step, r.Attempt-1)
	if err != nil {
		return err
	}
	if !ok {
		return refuse(reasonReplacement, "%s replaces attempt %d, which the signer never signed", r.step, r.Attempt-1)
	}
	first := prev
	if r.Attempt > 1 {
		if first, ok, err = s.store.btcStep(ctx, r.Chain, r.WorkflowID, r.Step, 0); err != nil {
			return err
		} else if !ok {
			return refuse(reasonReplacement, "%s replaces a step whose attempt 0 the signer never signed", r.step)
		}
	}
	if r.Reservation != "" && r.Reservation != first.Reservation {
		return refuse(reasonReplacement, "%s names reservation %s, but attempt 0 paid out reservation %s", r.step, r.Reservation, first.Reservation)
	}
	if r.From != first.From {
		return refuse(reasonReplacement, "%s pays from %s, but attempt 0 paid from %s", r.step, r.From, first.From)
	}
	stored, err := s.store.btcInputsOf(ctx, r.Chain, r.WorkflowID, r.Step)
	if err != nil {
		return err
	}
	if got := sortedOutpoints(r.Inputs); !slices.Equal(got, stored) {
		return refuse(reasonReplacement, "%s spends %s, but the step's attempt 0 spent %s: a replacement spends exactly the same outputs",
			r.step, outpointList(got), outpointList(stored))
	}
	_, recipientScript, err := btc.ParseAddress(first.Recipient, params)
	if err != nil {
		return fmt.Errorf("attempt 0 of %s paid %q, which does not read as an address: %w", r.step, first.Recipient, err)
	}
	sats, change, err := paymentOutput(r.Packet.UnsignedTx, first.Recipient, recipientScript, r.From, fromScript, params)
	if err != nil {
		return err
	}
	var res ledger.Reservation
	if sats != first.AmountSats {
		// Only a step that spends its reservation whole (signed so at
		// attempt 0 into a managed wallet only) pays its higher fee from
		// the output.
		if res, _, err = s.heldReservation(ctx, first.Reservation); err != nil {
			return err
		}
		if !spendsWhole(r, change, res) {
			return refuse(reasonReplacement, "%s pays %s %d satoshis, but attempt 0 paid %d: a replacement changes the fee only",
				r.step, first.Recipient, sats, first.AmountSats)
		}
	}
	if row.FeeSats <= prev.FeeSats {
		return refuse(reasonReplacement, "%s pays a fee of %d satoshis, not above attempt %d's %d: a replacement pays more",
			r.step, row.FeeSats, prev.Attempt, prev.FeeSats)
	}
	if res.QueueID == "" {
		if _, _, err := s.heldReservation(ctx, first.Reservation); err != nil {
			return err
		}
	}
	row.Reservation, row.Recipient, row.AmountSats = first.Reservation, first.Recipient, sats
	return nil
}

// btcReservationUsed refuses st when another step's first attempt paid
// with its reservation (nil when none did).
func (s *Signer) btcReservationUsed(ctx context.Context, st step) error {
	other, ok, err := s.store.btcPaidBy(ctx, st.Chain, st.Reservation)
	if err != nil || !ok {
		return err
	}
	if other.WorkflowID == st.WorkflowID && other.Step == st.Step {
		return nil
	}
	return refuse(reasonReservationUsed, "reservation %s already pays for step %s of workflow %s (transaction %s): a reservation pays for one step",
		st.Reservation, other.Step, other.WorkflowID, other.TxID)
}

// btcInputsUsed refuses r when another step's transactions spend any of
// its inputs (nil when none do): a signed transaction stays valid as long
// as its inputs are unspent, so a second spender could conflict with it or
// pay twice for one output.
func (s *Signer) btcInputsUsed(ctx context.Context, r btcRequest) error {
	spenders, err := s.store.btcSpenders(ctx, r.Chain, r.Inputs)
	if err != nil {
		return err
	}
	for _, o := range spenders {
		if o.WorkflowID != r.WorkflowID || o.Step != r.Step {
			return refuse(reasonInputUsed, "input %s is spent by step %s of workflow %s: an output pays for one step, whose replacements spend it again",
				o.outpoint, o.Step, o.WorkflowID)
		}
	}
	return nil
}

// sortedOutpoints is outs ordered as the store reads them: by txid, then
// vout.
func sortedOutpoints(outs []outpoint) []outpoint {
	out := slices.Clone(outs)
	slices.SortFunc(out, func(a, b outpoint) int {
		if c := strings.Compare(a.TxID, b.TxID); c != 0 {
			return c
		}
		return int(a.Vout) - int(b.Vout)
	})
	return out
}

// outpointList writes outputs and their amounts, for a refusal.
func outpointList(outs []outpoint) string {
	parts := make([]string, len(outs))
	for i, o := range outs {
		parts[i] = fmt.Sprintf("%s (%d sats)", o, o.Sats)
	}
	return strings.Join(parts, ", ")
}

// scriptAddress names an output script by its address on params' network,
// or by its hex when it has none.
func scriptAddress(script []byte, params *chaincfg.Params) string {
	if _, addrs, _, err := txscript.ExtractPkScriptAddrs(script, params); err == nil && len(addrs) == 1 {
		return addrs[0].EncodeAddress()
	}
	return fmt.Sprintf("script %x", clipBytes(script))
}

// signBTC derives the child index of the mnemonic's BIP84 account on
// params' network, checks it is from, signs every input of r's packet with
// it, finalizes the transaction and verifies each input's witness against
// the output it spends before returning it.
func (k *keys) signBTC(ctx context.Context, params *chaincfg.Params, index uint32, from btcutil.Address, r btcRequest) (*wire.MsgTx, error) {
	path := append(hd.Path(btc.AccountPath(params)), 0, index)
	child, err := k.child(ctx, path)
	if err != nil {
		return nil, err
	}
	defer child.Zero()
	ecdsaKey, err := child.PrivateKey()
	if err != nil {
		return nil, err
	}
	plain := crypto.FromECDSA(ecdsaKey)
	zeroKey(ecdsaKey)
	priv, _ := btcec.PrivKeyFromBytes(plain)
	clear(plain)
	defer priv.Zero()
	got, err := btc.KeyAddress(priv.PubKey(), params)
	if err != nil {
		return nil, err
	}
	if got.EncodeAddress() != from.EncodeAddress() {
		return nil, &unknownKey{msg: fmt.Sprintf("wallet %s on %s has hd_index %d, but the signer's child %s is %s: the wallet was derived from another account",
			from.EncodeAddress(), r.Chain, index, path, got.EncodeAddress())}
	}
	all := make([]int, len(r.Packet.Inputs))
	for i := range all {
		all[i] = i
	}
	if err := btc.SignPSBT(r.Packet, priv, all, params); err != nil {
		return nil, fmt.Errorf("signing %s: %w", r.step, err)
	}
	tx, err := btc.Finalize(r.Packet)
	if err != nil {
		return nil, fmt.Errorf("finalizing %s: %w", r.step, err)
	}
	if err := verifyWitnesses(tx, r.Packet); err != nil {
		return nil, fmt.Errorf("the signed %s does not verify: %w", r.step, err)
	}
	return tx, nil
}

// verifyWitnesses runs each input's script against the output it spends
// (the packet's witness UTXOs), as a node will.
func verifyWitnesses(tx *wire.MsgTx, p *psbt.Packet) error {
	prev := txscript.NewMultiPrevOutFetcher(nil)
	for i, in := range p.Inputs {
		prev.AddPrevOut(tx.TxIn[i].PreviousOutPoint, in.WitnessUtxo)
	}
	hashes := txscript.NewTxSigHashes(tx, prev)
	for i, in := range p.Inputs {
		vm, err := txscript.NewEngine(in.WitnessUtxo.PkScript, tx, i, txscript.StandardVerifyFlags, nil, hashes, in.WitnessUtxo.Value, prev)
		if err != nil {
			return fmt.Errorf("input %d: %w", i, err)
		}
		if err := vm.Execute(); err != nil {
			return fmt.Errorf("input %d: %w", i, err)
		}
	}
	return nil
}

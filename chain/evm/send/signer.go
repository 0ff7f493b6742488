package send

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"
	"payflow/custody/signerapi"

	"payflow/chain/evm"
)

// TxSigner signs transactions for the sending wallets: payflow-signer,
// which alone reaches their keys (*signerapi.Client). It signs a step's
// attempt 0 only for the money of the reservation the request names, and
// answers the same request again with the same transaction.
type TxSigner interface {
	Sign(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error)
}

// SignerConfig configures a Signer.
type SignerConfig struct {
	Chain   string   // protocol chain name, e.g. "ETH"; the signer is asked for this chain's transactions
	ChainID *big.Int // EIP-155 chain id
}

// TransferRequest is one token transfer to sign.
type TransferRequest struct {
	WorkflowID string
	Step       string // e.g. "transfer"; unique within the workflow
	// Reservation is the held ledger reservation whose money the transfer
	// moves (see signerapi.SignRequest).
	Reservation string
	From        common.Address
	To          common.Address
	Token       common.Address
	Units       *big.Int // token base units
	// Simulated: the caller ran this transfer on the node's latest state
	// just before (FeeOracle.SimulateTransfer) and it succeeded, so the
	// sender's token balance is not read again.
	Simulated bool
}

// NativeTransferRequest is one transfer of the chain's native coin (ETH), such
// as a gas top-up of a deposit wallet before it sweeps its tokens.
type NativeTransferRequest struct {
	WorkflowID string
	Step       string // unique within the workflow, e.g. "gas-topup"
	// Reservation: see TransferRequest.
	Reservation string
	From        common.Address
	To          common.Address
	Wei         *big.Int
}

// Signer signs each transfer exactly once per (workflow id, step) and stores
// it before anything is sent. It checks first that the sender can pay
// (tokens, and ether for the most the gas may cost); then, in this order:
// the step's intent (the unsigned transaction) takes its nonce from the
// NonceAllocator and is stored with it; the TxSigner is asked for exactly
// the intent's transaction, outside the nonce lane; what comes back is
// stored only if it is that transaction, signed by the sender. A call that
// dies (or whose signer is unavailable) after the intent was stored is
// finished by the next call for the step, which asks for the same
// transaction again. It holds no key. Sending is the Sender's.
type Signer struct {
	cfg      SignerConfig
	signer   types.Signer
	store    *evm.TxStore
	intents  *evm.Intents // the store's
	nonces   NonceAllocator
	fees     *FeeOracle
	balances *evm.Balances
	txs      TxSigner
	log      *slog.Logger
}

// NewSigner wires a Signer. ChainID is required. txs nil makes a Signer
// that signs nothing (every signature fails): for a process that only
// reads and sends what is stored.
func NewSigner(cfg SignerConfig, store *evm.TxStore, nonces NonceAllocator, fees *FeeOracle, balances *evm.Balances, txs TxSigner,
	log *slog.Logger) (*Signer, error) {
	if cfg.ChainID == nil || cfg.ChainID.Sign() <= 0 {
		return nil, errors.New("signer: chain id is required")
	}
	if store == nil || nonces == nil || fees == nil || balances == nil {
		return nil, errors.New("signer: store, nonce allocator, fee oracle and balances are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Signer{cfg: cfg, signer: types.LatestSignerForChainID(cfg.ChainID), store: store, intents: evm.IntentsOf(store),
		nonces: nonces, fees: fees, balances: balances, txs: txs, log: log}, nil
}

// SignTransfer signs the transfer once and stores it before anything is sent.
// Called again for the same (WorkflowID, Step) it returns the stored
// transaction with Replayed=true and signs nothing: a retry, a crashed worker
// or a Temporal reset can never produce a second transfer. A sender short of
// tokens fails with ErrInsufficientToken (read unless the request says the
// transfer was just simulated), short of ether for the most the gas
// may cost with ErrInsufficientGas, a network fee above the cap with
// ErrFeeCapExceeded: nothing is stored, nothing asked of the signer. A
// refusal of the signer is chain.ErrSignerRefused (with its reason): the
// step's intent keeps its nonce, which the Healer fills. A step begun by an
// earlier call (its intent stored, nothing signed stored) is finished as it
// was begun: the same nonce, fees and reservation, no check repeated.
func (s *Signer) SignTransfer(ctx context.Context, req TransferRequest) (evm.SignedTx, error) {
	if stx, ok, err := s.resume(ctx, req.WorkflowID, req.Step, req.From); ok || err != nil {
		return stx, err
	}
	data, err := evm.ERC20.Pack("transfer", req.To, req.Units)
	if err != nil {
		return evm.SignedTx{}, fmt.Errorf("packing transfer: %w", err)
	}
	if !req.Simulated {
		if err := s.balances.RequireToken(ctx, req.Token, req.From, req.Units); err != nil {
			return evm.SignedTx{}, err
		}
	}
	gas, err := s.fees.TransferGas(ctx, req.Token, req.From, req.To, req.Units)
	if err != nil {
		return evm.SignedTx{}, err
	}
	tip, maxFee, err := s.fees.Fees(ctx)
	if err != nil {
		return evm.SignedTx{}, err
	}
	if err := s.balances.RequireNative(ctx, req.From, gasCost(maxFee, gas), "gas"); err != nil {
		return evm.SignedTx{}, err
	}
	return s.signAndStore(ctx, req.WorkflowID, req.Step, req.Reservation, req.From,
		&types.DynamicFeeTx{GasTipCap: tip, GasFeeCap: maxFee, Gas: gas, To: &req.Token, Value: new(big.Int), Data: data})
}

// SignNative signs a native transfer once and stores it before anything is
// sent, exactly like SignTransfer: called again for the same (WorkflowID,
// Step) it returns the stored transaction with Replayed=true and signs
// nothing. It draws its nonce from From's own lane, so it never waits behind
// (or holds up) another wallet's transfers. A sender that cannot pay Wei plus
// the most the gas may cost fails with ErrInsufficientGas; Wei ≤ 0 fails with
// ErrBadAmount.
func (s *Signer) SignNative(ctx context.Context, req NativeTransferRequest) (evm.SignedTx, error) {
	if stx, ok, err := s.resume(ctx, req.WorkflowID, req.Step, req.From); ok || err != nil {
		return stx, err
	}
	if req.Wei == nil || req.Wei.Sign() <= 0 {
		return evm.SignedTx{}, fmt.Errorf("sending %v wei: %w", req.Wei, chain.ErrBadAmount)
	}
	gas, err := s.fees.NativeGas(ctx, req.From, req.To, req.Wei)
	if err != nil {
		return evm.SignedTx{}, err
	}
	tip, maxFee, err := s.fees.Fees(ctx)
	if err != nil {
		return evm.SignedTx{}, err
	}
	need := new(big.Int).Add(req.Wei, gasCost(maxFee, gas))
	if err := s.balances.RequireNative(ctx, req.From, need, "sending "+req.Wei.String()+" wei with gas"); err != nil {
		return evm.SignedTx{}, err
	}
	to := req.To
	return s.signAndStore(ctx, req.WorkflowID, req.Step, req.Reservation, req.From,
		&types.DynamicFeeTx{GasTipCap: tip, GasFeeCap: maxFee, Gas: gas, To: &to, Value: new(big.Int).Set(req.Wei)})
}

// storedReplay returns the step's stored transaction with Replayed=true, or
// ErrNotSigned (wrapped) when there is none yet.
func (s *Signer) storedReplay(ctx context.Context, workflowID, step string) (evm.SignedTx, error) {
	stx, err := s.store.Stored(ctx, workflowID, step)
	if err != nil {
		return evm.SignedTx{}, err
	}
	stx.Replayed = true
	return stx, nil
}

// resume finishes what an earlier call for the step began: its stored
// transaction (Replayed), or, when only its intent is stored (that call
// died, or the signer could not answer it), the intent signed and stored,
// asked for exactly as before. ok is false when the step has neither.
func (s *Signer) resume(ctx context.Context, workflowID, step string, from common.Address) (stx evm.SignedTx, ok bool, err error) {
	stx, signed, in, begun, err := s.intents.Begun(ctx, workflowID, step) // one read for both
	switch {
	case err != nil:
		return evm.SignedTx{}, false, err
	case signed:
		stx.Replayed = true
		return stx, true, nil
	case !begun:
		return evm.SignedTx{}, false, nil
	}
	if in.From != from {
		return evm.SignedTx{}, false, fmt.Errorf("step %s/%s was begun from %s, not %s", workflowID, step,
			evm.Lower(in.From), evm.Lower(from))
	}
	stx, err = s.signIntent(ctx, in)
	return stx, err == nil, err
}

// oneStatementAllocator is a NonceAllocator that spares work for a use of
// one statement; NonceLanes is one.
type oneStatementAllocator interface {
	withNonceOneStatement(ctx context.Context, from common.Address, use func(tx *sql.Tx, nonce uint64) error) error
}

// signAndStore has inner signed as attempt 0 of a step, for the money of
// reservation, and stores it, in three moves: the intent (inner, its
// nonce, the reservation) is stored by the nonce's use, in the lane's
// transaction, and takes the nonce when that commits; then, outside the
// lane, the signer is asked for exactly the intent's transaction; then
// what it answers is stored. The lane is never held while the signer is
// asked. A call that dies between the moves leaves the intent, which the
// next call for the step asks for again (see resume).
func (s *Signer) signAndStore(ctx context.Context, workflowID, step, reservation string, from common.Address,
	inner *types.DynamicFeeTx) (evm.SignedTx, error) {
	if s.txs == nil { // take no nonce for a signature that cannot be asked
		return evm.SignedTx{}, fmt.Errorf("signing %s/%s: this process has no signer", workflowID, step)
	}
	in := evm.IntentOf(workflowID, step, reservation, from, inner)
	withNonce := s.nonces.WithNonce
	if a, ok := s.nonces.(oneStatementAllocator); ok {
		withNonce = a.withNonceOneStatement // use below writes with one statement
	}
	err := withNonce(ctx, from, func(tx *sql.Tx, nonce uint64) error {
		in.Nonce = nonce
		return s.intents.Insert(ctx, tx, in)
	})
	if errors.Is(err, evm.ErrAttemptExists) {
		// A concurrent call for the same step stored its intent first (the
		// rollback returned this nonce): sign that one.
		if in, err = s.intents.Get(ctx, workflowID, step); err != nil {
			return evm.SignedTx{}, err
		}
		if in.From != from {
			return evm.SignedTx{}, fmt.Errorf("step %s/%s was begun from %s, not %s", workflowID, step,
				evm.Lower(in.From), evm.Lower(from))
		}
	} else if err != nil {
		return evm.SignedTx{}, err
	}
	return s.signIntent(ctx, in)
}

// signIntent has the signer sign in's transaction as attempt 0 of its step
// and stores it. A refusal marks the intent refused (its nonce is the
// healer's to fill) and is chain.ErrSignerRefused; any other failure leaves
// the intent as it is, for a retry to ask again. An intent whose nonce the
// healer gave to a gap filler cannot be signed any more: chain.ErrNonceTooLow.
func (s *Signer) signIntent(ctx context.Context, in evm.SignIntent) (evm.SignedTx, error) {
	if in.State == evm.IntentFilled {
		return evm.SignedTx{}, fmt.Errorf("step %s/%s: its nonce %d went to a gap filler: %w", in.WorkflowID, in.Step,
			in.Nonce, chain.ErrNonceTooLow)
	}
	signed, err := s.sign(ctx, in.WorkflowID, in.Step, 0, in.Reservation, in.From, in.Tx())
	if errors.Is(err, chain.ErrSignerRefused) {
		// The step may have its transfer all the same: one stored meanwhile
		// by a call of another nonce (signed before intents were stored),
		// which the signer holds this request against.
		if stx, serr := s.storedReplay(ctx, in.WorkflowID, in.Step); serr == nil {
			return stx, nil
		}
		if rerr := s.intents.Refuse(ctx, in.WorkflowID, in.Step, err.Error()); rerr != nil {
			// The healer still fills the nonce once the workflow ends.
			s.log.Warn("recording a refused intent", "workflow_id", in.WorkflowID, "step", in.Step, "err", rerr)
		}
		s.log.Warn("the signer refused a transfer; its nonce is left to the healer", "workflow_id", in.WorkflowID,
			"step", in.Step, "address", evm.Lower(in.From), "nonce", in.Nonce, "err", err)
		return evm.SignedTx{}, err
	}
	if err != nil {
		return evm.SignedTx{}, err
	}
	stored, err := s.store.Insert(ctx, nil, in.WorkflowID, in.Step, 0, in.From, signed)
	if errors.Is(err, evm.ErrAttemptExists) {
		// A concurrent call for the same step stored the same answer first.
		return s.storedReplay(ctx, in.WorkflowID, in.Step)
	}
	if err != nil {
		return evm.SignedTx{}, err
	}
	s.log.Info("signed transfer", "workflow_id", in.WorkflowID, "step", in.Step, "tx_hash", stored.Hash.Hex(),
		"address", evm.Lower(in.From), "nonce", stored.Nonce)
	return stored, nil
}

// signNext signs and stores the next attempt of a step whose latest attempt
// is latest: the same nonce, recipient, value, data and gas, at
// FeeOracle.ReplacementFees, if the sender holds the ether for it. Two calls
// that read the same latest race for one (workflow_id, step, attempt) key:
// one stores it, the other returns it with Replayed=true.
func (s *Signer) signNext(ctx context.Context, latest evm.SignedTx) (evm.SignedTx, error) {
	var prev types.Transaction
	if err := prev.UnmarshalBinary(latest.Raw); err != nil {
		return evm.SignedTx{}, fmt.Errorf("decoding stored transaction %s: %w", latest.Hash.Hex(), err)
	}
	tip, feeCap, err := s.fees.ReplacementFees(ctx, &prev)
	if err != nil {
		return evm.SignedTx{}, fmt.Errorf("replacing %s/%s: %w", latest.WorkflowID, latest.Step, err)
	}
	need := new(big.Int).Add(gasCost(feeCap, prev.Gas()), prev.Value())
	if err := s.balances.RequireNative(ctx, latest.From, need, "the replacement"); err != nil {
		return evm.SignedTx{}, err
	}
	// No reservation: the signer holds this attempt to attempt 0's.
	signed, err := s.sign(ctx, latest.WorkflowID, latest.Step, latest.Attempt+1, "", latest.From,
		&types.DynamicFeeTx{Nonce: prev.Nonce(), GasTipCap: tip, GasFeeCap: feeCap, Gas: prev.Gas(), To: prev.To(),
			Value: prev.Value(), Data: prev.Data()})
	if err != nil {
		return evm.SignedTx{}, err
	}
	next, err := s.store.Insert(ctx, nil, latest.WorkflowID, latest.Step, latest.Attempt+1, latest.From, signed)
	if errors.Is(err, evm.ErrAttemptExists) {
		return s.storedReplay(ctx, latest.WorkflowID, latest.Step)
	}
	if err != nil {
		return evm.SignedTx{}, fmt.Errorf("storing replacement of %s/%s: %w", latest.WorkflowID, latest.Step, err)
	}
	s.log.Info("signed replacement", "workflow_id", next.WorkflowID, "step", next.Step, "tx_hash", next.Hash.Hex(),
		"replaces", latest.Hash.Hex(), "address", evm.Lower(next.From), "nonce", next.Nonce, "attempt", next.Attempt,
		"tip_wei", tip.String(), "max_fee_wei", feeCap.String())
	return next, nil
}

// sign has the TxSigner sign inner (its chain id set here) as attempt
// attempt of (workflowID, step), for the money of reservation ("" for a
// replacement), and returns it only when it is inner, signed by from (see
// verify). A refusal is chain.ErrSignerRefused with the signer's reason; an
// unavailable signer (signerapi.ErrUnavailable) is returned as it is, for a
// retry.
func (s *Signer) sign(ctx context.Context, workflowID, step string, attempt int, reservation string, from common.Address,
	inner *types.DynamicFeeTx) (*types.Transaction, error) {
	if s.txs == nil {
		return nil, fmt.Errorf("signing %s/%s: this process has no signer", workflowID, step)
	}
	inner.ChainID = s.cfg.ChainID
	if inner.Value == nil {
		inner.Value = new(big.Int)
	}
	req := signerapi.SignRequest{Chain: s.cfg.Chain, ChainID: s.cfg.ChainID.Int64(), WorkflowID: workflowID, Step: step,
		Attempt: attempt, Reservation: reservation, From: evm.Lower(from), Tx: unsignedTx(inner)}
	resp, err := s.txs.Sign(ctx, req)
	if err != nil {
		return nil, signerError(workflowID, step, attempt, err)
	}
	signed, err := s.verify(resp, from, inner)
	if err != nil {
		return nil, fmt.Errorf("signing %s/%s attempt %d: %w", workflowID, step, attempt, err)
	}
	return signed, nil
}

// unsignedTx is inner as the signer's API spells it.
func unsignedTx(inner *types.DynamicFeeTx) signerapi.UnsignedTx {
	u := signerapi.UnsignedTx{Nonce: inner.Nonce, Value: inner.Value.String(), Gas: inner.Gas,
		TipCap: inner.GasTipCap.String(), FeeCap: inner.GasFeeCap.String()}
	if inner.To != nil {
		u.To = evm.Lower(*inner.To)
	}
	if len(inner.Data) > 0 {
		u.Data = hexutil.Encode(inner.Data)
	}
	return u
}

// signerError maps the signer's refusals (signerapi.ErrRefused,
// ErrUnknownKey, ErrBadRequest: asking again changes nothing) to
// chain.ErrSignerRefused, keeping its reason; anything else (the signer
// unavailable, the call cancelled) stays as it is, to be retried.
func signerError(workflowID, step string, attempt int, err error) error {
	if !errors.Is(err, signerapi.ErrRefused) && !errors.Is(err, signerapi.ErrUnknownKey) &&
		!errors.Is(err, signerapi.ErrBadRequest) {
		return fmt.Errorf("signing %s/%s attempt %d: %w", workflowID, step, attempt, err)
	}
	reason := err.Error()
	var e *signerapi.Error
	if errors.As(err, &e) && e.Message != "" {
		reason = e.Message
	}
	return fmt.Errorf("%w: %s", chain.ErrSignerRefused, reason)
}

// errNotAsked: the signer answered with a transaction other than the one
// asked for. Nothing is stored; the step is retried (and shows as failing
// while the signer keeps answering so).
var errNotAsked = errors.New("the signer returned a transaction other than the one asked for")

// verify decodes the signer's answer and checks that it is inner, every
// field, on this chain, signed by from: the signer is trusted with the
// keys, not with what the worker stores and sends.
func (s *Signer) verify(resp signerapi.SignResponse, from common.Address, inner *types.DynamicFeeTx) (*types.Transaction, error) {
	raw, err := hexutil.Decode(resp.Raw)
	if err != nil {
		return nil, fmt.Errorf("%w: its raw transaction is not 0x hex", errNotAsked)
	}
	var tx types.Transaction
	if err := tx.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("%w: it does not decode: %v", errNotAsked, err)
	}
	differs := func(field string, got, want any) error {
		return fmt.Errorf("%w: its %s is %v, not %v", errNotAsked, field, got, want)
	}
	to := func(a *common.Address) string {
		if a == nil {
			return "none"
		}
		return evm.Lower(*a)
	}
	switch {
	case tx.Type() != types.DynamicFeeTxType:
		return nil, differs("type", tx.Type(), types.DynamicFeeTxType)
	case tx.ChainId().Cmp(inner.ChainID) != 0:
		return nil, differs("chain id", tx.ChainId(), inner.ChainID)
	case tx.Nonce() != inner.Nonce:
		return nil, differs("nonce", tx.Nonce(), inner.Nonce)
	case to(tx.To()) != to(inner.To):
		return nil, differs("recipient", to(tx.To()), to(inner.To))
	case tx.Value().Cmp(inner.Value) != 0:
		return nil, differs("value", tx.Value(), inner.Value)
	case !bytes.Equal(tx.Data(), inner.Data):
		return nil, differs("data", hexutil.Encode(tx.Data()), hexutil.Encode(inner.Data))
	case tx.Gas() != inner.Gas:
		return nil, differs("gas", tx.Gas(), inner.Gas)
	case tx.GasTipCap().Cmp(inner.GasTipCap) != 0:
		return nil, differs("tip cap", tx.GasTipCap(), inner.GasTipCap)
	case tx.GasFeeCap().Cmp(inner.GasFeeCap) != 0:
		return nil, differs("fee cap", tx.GasFeeCap(), inner.GasFeeCap)
	case len(tx.AccessList()) != 0:
		return nil, differs("access list", tx.AccessList(), "none")
	}
	sender, err := types.Sender(s.signer, &tx)
	if err != nil {
		return nil, fmt.Errorf("%w: its signature does not recover: %v", errNotAsked, err)
	}
	if sender != from {
		return nil, differs("sender", evm.Lower(sender), evm.Lower(from))
	}
	if resp.TxHash != "" && !strings.EqualFold(resp.TxHash, tx.Hash().Hex()) {
		return nil, differs("hash", resp.TxHash, tx.Hash().Hex())
	}
	return &tx, nil
}

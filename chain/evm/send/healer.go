package send

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/params"

	"payflow/chain"

	"payflow/chain/evm"
)

// GapReport says what HealGaps did for one wallet.
type GapReport struct {
	Address common.Address
	Nonce   uint64
	// Action: "resent" (a broadcast transaction the node had dropped, or a
	// signed one whose workflow still runs, was sent), "filled" (a
	// transaction signed but never sent, or an intent the signer refused or
	// whose workflow ended, was cancelled by a 0-value self-transfer on its
	// nonce), "foreign" (the nonce belongs to
	// no transaction payflow signed: left for an operator) or "refused" (the
	// signer would not sign the filler: left for an operator).
	Action string
	TxHash common.Hash
}

// LaneLister lists the sending wallets with the next nonce of each.
// NonceLanes satisfies it.
type LaneLister interface {
	Lanes(ctx context.Context) ([]evm.NonceLane, error)
}

// Healer unblocks wallets whose transactions wait behind a nonce gap (see
// HealGaps). It never cancels a transfer whose workflow still runs.
type Healer struct {
	lanes   LaneLister
	store   *evm.TxStore
	fees    *FeeOracle
	signer  *Signer
	sender  *Sender
	backend evm.Backend
	log     *slog.Logger
}

// NewHealer wires a Healer.
func NewHealer(lanes LaneLister, store *evm.TxStore, fees *FeeOracle, signer *Signer, sender *Sender, backend evm.Backend, log *slog.Logger) (*Healer, error) {
	if lanes == nil || store == nil || fees == nil || signer == nil || sender == nil {
		return nil, errors.New("healer: lanes, store, fee oracle, signer and sender are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Healer{lanes: lanes, store: store, fees: fees, signer: signer, sender: sender, backend: backend, log: log}, nil
}

// HealGaps finds wallets whose transactions wait behind a nonce that the node
// has no transaction for — a nonce gap: one signed transaction was never
// broadcast (its workflow was terminated between signing and sending, or is
// still retrying its broadcast) or was dropped by the node — and unblocks them:
//
//   - dropped after broadcast (state 'sent'), or a gap filler: its stored
//     bytes are sent again; its workflow is still waiting for it.
//   - only intended (its nonce taken, nothing signed stored): refused by
//     the signer (final, whatever its age), or older than minAge and its
//     workflow closed or unknown, the nonce is used by a 0-value
//     self-transfer; a running workflow's is left to it (it signs on its
//     retry).
//   - signed but never sent, and older than minAge: owners is asked whether
//     its workflow still runs. If it does, the stored bytes are sent (the
//     workflow would send the same bytes; it must never find its nonce
//     cancelled under it). If the workflow is closed or unknown, the nonce is
//     used by a 0-value self-transfer instead, so the abandoned intent can
//     never move money without a workflow to settle it. If owners fails (or
//     is nil), that wallet is left for the next pass and the error returned.
//
// minAge keeps HealGaps away from transfers that are between signing and
// broadcast right now.
func (h *Healer) HealGaps(ctx context.Context, minAge time.Duration, owners chain.OwnerChecker) ([]GapReport, error) {
	lanes, err := h.lanes.Lanes(ctx)
	if err != nil {
		return nil, err
	}
	var reports []GapReport
	var errs []error
	for _, l := range lanes {
		r, err := h.healLane(ctx, l, minAge, owners)
		reports = append(reports, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return reports, errors.Join(errs...)
}

// Run calls HealGaps every interval until ctx ends.
func (h *Healer) Run(ctx context.Context, interval, minAge time.Duration, owners chain.OwnerChecker) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := h.HealGaps(ctx, minAge, owners); err != nil && ctx.Err() == nil {
				h.log.Warn("healing nonce gaps", "err", err)
			}
		}
	}
}

// healLane heals gap after gap of one wallet: once a gap is filled the pool's
// pending nonce moves up to the next one (terminated workflows can leave many).
func (h *Healer) healLane(ctx context.Context, l evm.NonceLane, minAge time.Duration, owners chain.OwnerChecker) ([]GapReport, error) {
	pending, err := h.backend.PendingNonceAt(ctx, l.Address)
	if err != nil {
		return nil, fmt.Errorf("pending nonce of %s: %w", evm.Lower(l.Address), err)
	}
	var reports []GapReport
	for healed := 0; pending < l.Next && healed < 1000; healed++ {
		r, err := h.healGap(ctx, l.Address, pending, minAge, owners)
		if err != nil {
			return reports, err
		}
		if r == nil || r.Action == "foreign" || r.Action == "refused" {
			if r != nil && r.Action == "refused" {
				reports = append(reports, *r)
			}
			return reports, nil // too young to touch, or an operator's case
		}
		reports = append(reports, *r)
		next, err := h.backend.PendingNonceAt(ctx, l.Address)
		if err != nil {
			return reports, fmt.Errorf("pending nonce of %s: %w", evm.Lower(l.Address), err)
		}
		if next <= pending { // the node did not take the filler: try next pass
			return reports, nil
		}
		pending = next
	}
	return reports, nil
}

// healGap resends or cancels what payflow stored on from's nonce; nil when
// it is too young to touch.
func (h *Healer) healGap(ctx context.Context, from common.Address, nonce uint64, minAge time.Duration, owners chain.OwnerChecker) (*GapReport, error) {
	holder, err := h.store.AtNonce(ctx, from, nonce)
	if errors.Is(err, chain.ErrNotSigned) {
		h.log.Error("nonce gap with no payflow transaction: operator needed", "address", evm.Lower(from), "nonce", nonce)
		return &GapReport{Address: from, Nonce: nonce, Action: "foreign"}, nil
	}
	if err != nil {
		return nil, err
	}
	if holder.State == "refused" {
		// Final: no call for the step stores a transaction on it, so there
		// is no age to wait for; the wallet's later transfers wait on it.
		return h.fill(ctx, from, nonce, holder)
	}
	if holder.Age < minAge {
		return nil, nil // may be on its way to the node right now
	}
	if holder.State == "intent" {
		return h.healIntent(ctx, from, nonce, holder, owners)
	}
	resend := holder.State == "sent" || holder.Filler
	if !resend {
		if owners == nil {
			return nil, fmt.Errorf("nonce %d of %s: no owner checker to ask about %s", nonce, evm.Lower(from), holder.WorkflowID)
		}
		running, err := owners.OwnerRunning(ctx, holder.WorkflowID)
		if err != nil {
			return nil, fmt.Errorf("asking whether %s, owner of nonce %d of %s, runs: %w", holder.WorkflowID, nonce, evm.Lower(from), err)
		}
		resend = running
	}
	if !resend {
		return h.fill(ctx, from, nonce, holder)
	}
	s, err := h.store.Stored(ctx, holder.WorkflowID, holder.Step)
	if err != nil {
		return nil, err
	}
	if _, err := h.sender.send(ctx, s); err != nil && !errors.Is(err, chain.ErrNonceTooLow) {
		return nil, fmt.Errorf("re-sending %s: %w", s.Hash.Hex(), err)
	}
	h.log.Warn("nonce gap: re-sent a signed transaction", "state", holder.State, "address", evm.Lower(from), "nonce", nonce,
		"tx_hash", s.Hash.Hex(), "workflow_id", holder.WorkflowID)
	return &GapReport{Address: from, Nonce: nonce, Action: "resent", TxHash: s.Hash}, nil
}

// healIntent heals a nonce taken by an open signing intent with nothing
// signed stored: its call died before storing the signer's answer, or keeps
// failing to get one. It is its workflow's while that runs (the next retry
// asks the signer again and stores the answer): left alone; once the
// workflow has ended, filled. If owners fails (or is nil), it is left for
// the next pass and the error returned.
func (h *Healer) healIntent(ctx context.Context, from common.Address, nonce uint64, holder evm.NonceHolder,
	owners chain.OwnerChecker) (*GapReport, error) {
	if owners == nil {
		return nil, fmt.Errorf("nonce %d of %s: no owner checker to ask about %s", nonce, evm.Lower(from), holder.WorkflowID)
	}
	running, err := owners.OwnerRunning(ctx, holder.WorkflowID)
	if err != nil {
		return nil, fmt.Errorf("asking whether %s, owner of nonce %d of %s, runs: %w", holder.WorkflowID, nonce, evm.Lower(from), err)
	}
	if running {
		return nil, nil // its activity signs it
	}
	return h.fill(ctx, from, nonce, holder)
}

// fill cancels holder, signed and never sent (or only intended) and its
// workflow gone, with a 0-value self-transfer on its nonce.
func (h *Healer) fill(ctx context.Context, from common.Address, nonce uint64, holder evm.NonceHolder) (*GapReport, error) {
	tip, maxFee, err := h.fees.Fees(ctx)
	if err != nil {
		return nil, err
	}
	// Outbid the abandoned transaction's fees, in case the node has it after all.
	var prev types.Transaction
	if prev.UnmarshalBinary(holder.Raw) == nil {
		tip = maxWei(tip, bumpFee(prev.GasTipCap()))
		maxFee = maxWei(maxFee, bumpFee(prev.GasFeeCap()))
	}
	// It moves no money: no reservation pays for it.
	wf, step, attempt := evm.GapFiller(from, nonce)
	signed, err := h.signer.sign(ctx, wf, step, attempt, "", from, &types.DynamicFeeTx{Nonce: nonce, GasTipCap: tip,
		GasFeeCap: maxFee, Gas: params.TxGas, To: &from, Value: new(big.Int)})
	if errors.Is(err, chain.ErrSignerRefused) {
		// Asking again each pass changes nothing: the wallet's later
		// transfers wait behind the gap until an operator acts.
		h.log.Error("nonce gap: the signer refused the gap filler; operator needed", "address", evm.Lower(from),
			"nonce", nonce, "abandoned_workflow_id", holder.WorkflowID, "err", err)
		return &GapReport{Address: from, Nonce: nonce, Action: "refused"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signing gap filler: %w", err)
	}
	s, err := h.store.Cancel(ctx, holder.WorkflowID, holder.Step, from, signed)
	if err != nil {
		return nil, err
	}
	if _, err := h.sender.send(ctx, s); err != nil {
		return nil, fmt.Errorf("sending gap filler: %w", err)
	}
	h.log.Warn("nonce gap: cancelled a transaction signed (or intended) but never sent", "address", evm.Lower(from),
		"nonce", nonce, "abandoned_workflow_id", holder.WorkflowID, "holder", holder.State, "tx_hash", s.Hash.Hex())
	return &GapReport{Address: from, Nonce: nonce, Action: "filled", TxHash: s.Hash}, nil
}

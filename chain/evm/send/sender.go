package send

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"

	"payflow/chain/evm"
)

// SenderConfig configures a Sender.
type SenderConfig struct {
	// MaxAttempts caps the signed attempts of one step, the original
	// included: Replace fails with ErrTooManyAttempts once a step has this
	// many. Zero means DefaultMaxAttempts.
	MaxAttempts int
}

// DefaultMaxAttempts is SenderConfig.MaxAttempts when unset: the original
// and four replacements, each at least 12.5% dearer.
const DefaultMaxAttempts = 5

// Sender puts stored transactions on the chain and follows a step's attempts
// there: it sends the stored bytes as often as asked, replaces a stuck
// attempt through the Signer, and inspects what the chain proves. It never
// signs an original transfer.
type Sender struct {
	cfg     SenderConfig
	store   *evm.TxStore
	signer  *Signer
	backend evm.Backend
	poster  txPoster
	log     *slog.Logger
	recent  recentReceipts // what Inspect found, for the gas charge that follows
}

// Close waits until every send already queued has been put on the node and
// recorded, and refuses later sends. Call it after the last caller has
// returned and before the database closes.
func (s *Sender) Close() { s.poster.close() }

// NewSender wires a Sender.
func NewSender(cfg SenderConfig, store *evm.TxStore, signer *Signer, backend evm.Backend, log *slog.Logger) (*Sender, error) {
	if cfg.MaxAttempts < 0 {
		return nil, errors.New("sender: max attempts must not be negative")
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if store == nil || signer == nil {
		return nil, errors.New("sender: store and signer are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Sender{cfg: cfg, store: store, signer: signer, backend: backend,
		poster: newPoster(store, backend), log: log}, nil
}

// Send broadcasts the stored bytes of a step's latest attempt. Sending again
// is harmless: a node that already has the transaction, or has mined it,
// counts as success. When the node says the nonce is used and an attempt of
// the step is the one mined, Send returns that attempt with Mined=true; when
// none is, ErrNonceTooLow (wrapped): another transaction took the nonce, and
// the caller resolves it with Inspect (TransferDropped once that transaction
// is confirmations deep). With nothing stored: ErrNotSigned.
func (s *Sender) Send(ctx context.Context, workflowID, step string) (evm.SignedTx, error) {
	stx, err := s.store.Stored(ctx, workflowID, step)
	if err != nil {
		return evm.SignedTx{}, err
	}
	return s.send(ctx, stx)
}

// SendStored is Send for a caller that has just read the step's latest
// attempt (stx, from TxStore.Stored): it sends those bytes without reading
// them again.
func (s *Sender) SendStored(ctx context.Context, stx evm.SignedTx) (evm.SignedTx, error) {
	return s.send(ctx, stx)
}

// Replace makes sure attempt number attempt of a step exists and is sent:
// the original is attempt 0, so the first replacement is attempt 1. It is
// idempotent per attempt number, so a retry of the same logical replacement
// (a Temporal retry after a send error, a replay, a reset) signs nothing new.
//
// When an attempt numbered attempt or higher is already stored, nothing is
// signed: the stored attempt attempt is sent again (the same bytes) and
// returned with Replayed=true. Otherwise attempt latest+1 is signed, stored
// and sent: the same nonce, recipient, data and gas, and a tip and fee cap
// each at least 12.5% above the latest attempt's (geth's pool replaces on
// 10%) and at least what the network suggests now, the fee cap held to
// MaxFeeWei. As with SignTransfer the replacement is stored before it is
// sent; the signer is asked for it as attempt latest+1 of the step, with no
// reservation (it holds it to attempt 0's). A signer's refusal is
// chain.ErrSignerRefused: the earlier attempts stay in flight.
//
// Edge cases:
//   - No attempt stored: ErrNotSigned.
//   - An attempt already has a receipt (mined, reverted included): that
//     attempt is returned with Mined=true and nothing is signed.
//   - The nonce was used on chain by a transaction that is none of the
//     step's attempts: ErrNonceTooLow (wrapped), nothing signed. This is not
//     yet proof of failure (the chain may still reorganise); the caller
//     resolves it with Inspect, which reports TransferDropped once the
//     stranger is confirmations deep.
//   - The step has MaxAttempts attempts: ErrTooManyAttempts.
//   - Even the minimal bump is above MaxFeeWei: ErrFeeCapExceeded; not
//     enough ether for the new fee cap: ErrInsufficientGas. Nothing stored.
//   - Two Replace calls that read the same latest attempt race for one
//     (workflow_id, step, attempt) key: one stores it, the other returns it
//     with Replayed=true. Both send it.
//   - Storing succeeded but sending failed: the new attempt stays stored and
//     is the latest; calling Replace again with the same attempt re-sends it.
//   - A replayed attempt lower than the latest (the caller was reset to an
//     earlier point) is refused by a pool holding a dearer attempt: the
//     latest attempt is sent instead, and the requested one returned.
//
// Until one attempt is mined, any of them may be; the caller tracks them all
// (see TxStore.Attempts).
func (s *Sender) Replace(ctx context.Context, workflowID, step string, attempt int) (evm.SignedTx, error) {
	attempts, err := s.store.Attempts(ctx, workflowID, step)
	if err != nil {
		return evm.SignedTx{}, err
	}
	latest := attempts[len(attempts)-1]
	if latest.Attempt >= attempt {
		return s.resendAttempt(ctx, attempts, max(attempt, 0))
	}
	// Nonce before receipts: an attempt mined between the two reads then
	// shows as mined, not as a stranger holding the nonce.
	used, err := s.backend.NonceAt(ctx, latest.From, nil)
	if err != nil {
		return evm.SignedTx{}, fmt.Errorf("reading nonce of %s: %w", evm.Lower(latest.From), err)
	}
	if mined, ok, err := s.minedAttempt(ctx, attempts); err != nil || ok {
		return mined, err
	}
	if used > latest.Nonce {
		return latest, fmt.Errorf("replacing %s/%s: nonce %d of %s: %w", workflowID, step, latest.Nonce,
			evm.Lower(latest.From), chain.ErrNonceTooLow)
	}
	if len(attempts) >= s.cfg.MaxAttempts {
		return latest, fmt.Errorf("replacing %s/%s after %d attempts: %w", workflowID, step, len(attempts), chain.ErrTooManyAttempts)
	}
	next, err := s.signer.signNext(ctx, latest)
	if err != nil {
		return evm.SignedTx{}, err
	}
	return s.send(ctx, next)
}

// Receipt returns the receipt of hash, or ethereum.NotFound.
func (s *Sender) Receipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	r, err := s.backend.TransactionReceipt(ctx, hash)
	if err == nil && r == nil {
		return nil, ethereum.NotFound
	}
	return r, err
}

// send broadcasts stx and marks it sent, with other concurrent sends in one
// JSON-RPC batch.
func (s *Sender) send(ctx context.Context, stx evm.SignedTx) (evm.SignedTx, error) {
	var tx types.Transaction
	if err := tx.UnmarshalBinary(stx.Raw); err != nil {
		return evm.SignedTx{}, fmt.Errorf("decoding stored transaction %s: %w", stx.Hash.Hex(), err)
	}
	accepted, err := s.poster.post(ctx, stx, &tx)
	switch {
	case accepted:
		if err != nil { // not recorded sent; sending again is harmless
			return stx, err
		}
	case isNonceTooLow(err):
		// Either one of the step's attempts was mined already (success) or
		// another transaction took the nonce: not a retry's business;
		// Inspect proves the drop.
		attempts, aerr := s.store.Attempts(ctx, stx.WorkflowID, stx.Step)
		if aerr != nil {
			return stx, aerr
		}
		mined, ok, merr := s.minedAttempt(ctx, attempts)
		if merr != nil {
			return stx, merr
		}
		if !ok {
			return stx, fmt.Errorf("sending %s (nonce %d): %w", stx.Hash.Hex(), stx.Nonce, chain.ErrNonceTooLow)
		}
		if err := s.store.MarkSent(ctx, mined.Hash); err != nil {
			return stx, err
		}
		stx = mined
	default:
		return stx, fmt.Errorf("sending %s: %w", stx.Hash.Hex(), err)
	}
	s.log.Info("broadcast transfer", "workflow_id", stx.WorkflowID, "step", stx.Step, "tx_hash", stx.Hash.Hex(),
		"nonce", stx.Nonce, "attempt", stx.Attempt)
	return stx, nil
}

// resendAttempt sends the stored attempt numbered n again and returns it
// with Replayed=true (or the mined attempt, with Mined=true, as send does).
func (s *Sender) resendAttempt(ctx context.Context, attempts []evm.SignedTx, n int) (evm.SignedTx, error) {
	var want *evm.SignedTx
	for i := range attempts {
		if attempts[i].Attempt == n {
			want = &attempts[i]
		}
	}
	latest := attempts[len(attempts)-1]
	if want == nil { // attempt numbers have no holes; a gap filler row is no replacement
		return evm.SignedTx{}, fmt.Errorf("%s/%s has no attempt %d: %w", latest.WorkflowID, latest.Step, n, chain.ErrNotSigned)
	}
	got, err := s.send(ctx, *want)
	if err != nil && isUnderpriced(err) && latest.Attempt > n {
		// The pool holds a dearer attempt of ours (or a stranger's): keep the latest in it.
		if _, err = s.send(ctx, latest); err == nil {
			got = *want
		}
	}
	if err != nil {
		return got, err
	}
	got.Replayed = true
	return got, nil
}

// minedAttempt returns the attempt that has a receipt, with Mined=true.
// They share a nonce, so at most one can.
func (s *Sender) minedAttempt(ctx context.Context, attempts []evm.SignedTx) (evm.SignedTx, bool, error) {
	for _, a := range attempts {
		r, err := evm.ReceiptOf(ctx, s.backend, a.Hash)
		if err != nil {
			return evm.SignedTx{}, false, err
		}
		if r != nil {
			a.Mined = true
			return a, true, nil
		}
	}
	return evm.SignedTx{}, false, nil
}

func isKnown(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "already known") || strings.Contains(m, "known transaction")
}

func isUnderpriced(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "underpriced")
}

func isNonceTooLow(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "nonce too low")
}

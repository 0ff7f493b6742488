package chain

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/params"
	"github.com/shopspring/decimal"
)

// gapFillerAttempt numbers a gap filler's row in signed_txs: far above any
// fee-bump attempt, so (chain, from, nonce, attempt) stays unique.
const gapFillerAttempt = 1000

// GapReport says what HealGaps did for one wallet.
type GapReport struct {
	Address common.Address
	Nonce   uint64
	// Action: "resent" (a broadcast transaction the node had dropped, or a
	// signed one whose workflow still runs, was sent), "filled" (a transaction signed but never sent was cancelled by a
	// 0-value self-transfer on its nonce), or "foreign" (the nonce belongs to
	// no transaction payflow signed: left for an operator).
	Action string
	TxHash common.Hash
}

// OwnerChecker tells whether the workflow that owns a signed transaction
// still runs. In payflow it asks Temporal; a workflow that does not exist is
// not running.
type OwnerChecker interface {
	OwnerRunning(ctx context.Context, workflowID string) (bool, error)
}

// HealGaps finds wallets whose transactions wait behind a nonce that the node
// has no transaction for — a nonce gap: one signed transaction was never
// broadcast (its workflow was terminated between signing and sending, or is
// still retrying its broadcast) or was dropped by the node — and unblocks them:
//
//   - dropped after broadcast (state 'sent'), or a gap filler: its stored
//     bytes are sent again; its workflow is still waiting for it.
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
func (b *Broadcaster) HealGaps(ctx context.Context, minAge time.Duration, owners OwnerChecker) ([]GapReport, error) {
	rows, err := b.db.QueryContext(ctx, "SELECT address, next_nonce FROM nonces WHERE chain=?", b.cfg.Chain)
	if err != nil {
		return nil, fmt.Errorf("listing nonce lanes: %w", err)
	}
	type lane struct {
		addr common.Address
		next uint64
	}
	var lanes []lane
	for rows.Next() {
		var a string
		var l lane
		if err := rows.Scan(&a, &l.next); err != nil {
			rows.Close()
			return nil, err
		}
		l.addr = common.HexToAddress(a)
		lanes = append(lanes, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var reports []GapReport
	var errs []error
	for _, l := range lanes {
		pending, err := b.backend.PendingNonceAt(ctx, l.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("pending nonce of %s: %w", Lower(l.addr), err))
			continue
		}
		// Heal gap after gap: once a gap is filled the pool's pending nonce
		// moves up to the next one (terminated workflows can leave many).
		for healed := 0; pending < l.next && healed < 1000; healed++ {
			r, err := b.healGap(ctx, l.addr, pending, minAge, owners)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if r == nil || r.Action == "foreign" {
				break // too young to touch, or an operator's case
			}
			reports = append(reports, *r)
			next, err := b.backend.PendingNonceAt(ctx, l.addr)
			if err != nil {
				errs = append(errs, fmt.Errorf("pending nonce of %s: %w", Lower(l.addr), err))
				break
			}
			if next <= pending { // the node did not take the filler: try next pass
				break
			}
			pending = next
		}
	}
	return reports, errors.Join(errs...)
}

func (b *Broadcaster) healGap(ctx context.Context, from common.Address, nonce uint64, minAge time.Duration, owners OwnerChecker) (*GapReport, error) {
	var wf, step, state string
	var attempt int
	var age float64
	err := b.db.QueryRowContext(ctx, `SELECT workflow_id, step, state, attempt, TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6))/1e6
		FROM signed_txs WHERE chain=? AND from_address=? AND nonce=? ORDER BY attempt DESC LIMIT 1`,
		b.cfg.Chain, Lower(from), nonce).Scan(&wf, &step, &state, &attempt, &age)
	if errors.Is(err, sql.ErrNoRows) {
		b.log.Error("nonce gap with no payflow transaction: operator needed", "address", Lower(from), "nonce", nonce)
		return &GapReport{Address: from, Nonce: nonce, Action: "foreign"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading nonce %d of %s: %w", nonce, Lower(from), err)
	}
	if time.Duration(age*float64(time.Second)) < minAge {
		return nil, nil // may be on its way to the node right now
	}
	resend := state == "sent" || attempt >= gapFillerAttempt
	if !resend {
		if owners == nil {
			return nil, fmt.Errorf("nonce %d of %s: no owner checker to ask about %s", nonce, Lower(from), wf)
		}
		running, err := owners.OwnerRunning(ctx, wf)
		if err != nil {
			return nil, fmt.Errorf("asking whether %s, owner of nonce %d of %s, runs: %w", wf, nonce, Lower(from), err)
		}
		resend = running
	}
	if resend {
		s, err := b.Stored(ctx, wf, step)
		if err != nil {
			return nil, err
		}
		if _, err := b.send(ctx, s); err != nil && !errors.Is(err, ErrNonceTooLow) {
			return nil, fmt.Errorf("re-sending %s: %w", s.Hash.Hex(), err)
		}
		b.log.Warn("nonce gap: re-sent a signed transaction", "state", state, "address", Lower(from), "nonce", nonce, "tx_hash", s.Hash.Hex(),
			"workflow_id", wf)
		return &GapReport{Address: from, Nonce: nonce, Action: "resent", TxHash: s.Hash}, nil
	}
	// Signed, never sent, its workflow gone: cancel it with a self-transfer.
	tip, maxFee, err := b.fees(ctx)
	if err != nil {
		return nil, err
	}
	key, err := b.keys.Key(ctx, b.cfg.Chain, Lower(from))
	if err != nil {
		return nil, fmt.Errorf("opening key of %s: %w", Lower(from), err)
	}
	defer key.D.SetInt64(0)
	// Outbid the abandoned transaction's fees, in case the node has it after all.
	var prev types.Transaction
	var raw []byte
	if err := b.db.QueryRowContext(ctx, "SELECT raw FROM signed_txs WHERE chain=? AND from_address=? AND nonce=? ORDER BY attempt DESC LIMIT 1",
		b.cfg.Chain, Lower(from), nonce).Scan(&raw); err == nil && prev.UnmarshalBinary(raw) == nil {
		tip = maxWei(tip, bumpFee(prev.GasTipCap()))
		maxFee = maxWei(maxFee, bumpFee(prev.GasFeeCap()))
	}
	signed, err := types.SignNewTx(key, b.signer, &types.DynamicFeeTx{ChainID: b.cfg.ChainID, Nonce: nonce,
		GasTipCap: tip, GasFeeCap: maxFee, Gas: params.TxGas, To: &from, Value: new(big.Int)})
	if err != nil {
		return nil, fmt.Errorf("signing gap filler: %w", err)
	}
	fill, err := signed.MarshalBinary()
	if err != nil {
		return nil, err
	}
	fillWF, fillStep := "nonce-gap-"+Lower(from), fmt.Sprintf("nonce-%d", nonce)
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO signed_txs
		(workflow_id, step, attempt, chain, from_address, to_address, nonce, tx_hash, raw, max_fee_wei, tip_wei)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)`, fillWF, fillStep, gapFillerAttempt, b.cfg.Chain, Lower(from), Lower(from), nonce,
		signed.Hash().Hex(), fill, decimal.NewFromBigInt(maxFee, 0), decimal.NewFromBigInt(tip, 0)); err != nil {
		return nil, fmt.Errorf("storing gap filler: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE signed_txs SET state='failed' WHERE workflow_id=? AND step=?", wf, step); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s, err := b.Stored(ctx, fillWF, fillStep)
	if err != nil {
		return nil, err
	}
	if _, err := b.send(ctx, s); err != nil {
		return nil, fmt.Errorf("sending gap filler: %w", err)
	}
	b.log.Warn("nonce gap: cancelled a transaction signed but never sent", "address", Lower(from), "nonce", nonce,
		"abandoned_workflow_id", wf, "tx_hash", s.Hash.Hex())
	return &GapReport{Address: from, Nonce: nonce, Action: "filled", TxHash: s.Hash}, nil
}

// RunGapHealer calls HealGaps every interval until ctx ends.
func (b *Broadcaster) RunGapHealer(ctx context.Context, interval, minAge time.Duration, owners OwnerChecker) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := b.HealGaps(ctx, minAge, owners); err != nil && ctx.Err() == nil {
				b.log.Warn("healing nonce gaps", "err", err)
			}
		}
	}
}

package chain

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/ethereum/go-ethereum/common"
)

// The tracker's algorithm before issue 13 (TrackerConfig.PerTransfer), kept
// for the bench's comparison, and what both algorithms share: retiring a
// transaction that can never be mined. One tracked row's way: seen in a
// block, confirmed when it is Confirmations deep and still canonical, reorged
// when its block is gone, dropped when its nonce went to another transaction.

// pass is what one checkPerTransfer learns once and shares between rows: each
// sender's nonce at confirmed depth.
type pass struct {
	head uint64
	mu   sync.Mutex
	used map[common.Address]uint64
}

// nonceConsumed reports whether from's nonce is used at confirmed depth
// (at block head-Confirmations+1).
func (t *Tracker) nonceConsumed(ctx context.Context, p *pass, from common.Address, nonce uint64) (bool, error) {
	if p.head+1 < t.cfg.Confirmations {
		return false, nil
	}
	p.mu.Lock()
	used, ok := p.used[from]
	p.mu.Unlock()
	if !ok {
		at := p.head + 1 - t.cfg.Confirmations
		n, err := t.backend.NonceAt(ctx, from, new(big.Int).SetUint64(at))
		if err != nil {
			return false, fmt.Errorf("reading nonce of %s at block %d: %w", Lower(from), at, err)
		}
		p.mu.Lock()
		p.used[from], used = n, n
		p.mu.Unlock()
	}
	return used > nonce, nil
}

func (t *Tracker) advance(ctx context.Context, p *pass, r trackedTx) error {
	head := p.head
	hash := common.HexToHash(r.hash)
	rcpt, err := receiptOf(ctx, t.backend, hash)
	if err != nil {
		return err
	}
	if rcpt == nil {
		if r.state == "seen" { // its block left the canonical chain
			_, _, err := t.transition(ctx, r, "pending", nil, TxEvent{TxHash: r.hash, Milestone: MilestoneReorged})
			return err
		}
		return t.retireIfUnminable(ctx, p, r)
	}
	at := includedBy(rcpt)
	bn := at.number
	ev := at.event(r.hash, MilestoneSeen)
	if r.state == "pending" || r.blockHash != rcpt.BlockHash.Hex() {
		if _, _, err := t.transition(ctx, r, "seen", at, ev); err != nil {
			return err
		}
		r.state, r.blockHash = "seen", rcpt.BlockHash.Hex()
	}
	if head+1 < bn+t.cfg.Confirmations {
		return nil
	}
	// Confirmed only if the block is still canonical at that height.
	hdr, err := t.backend.HeaderByNumber(ctx, new(big.Int).SetUint64(bn))
	if err != nil {
		return fmt.Errorf("reading header %d: %w", bn, err)
	}
	if hdr.Hash() != rcpt.BlockHash {
		return nil // a reorg is in flight; the next head sorts it out
	}
	ev.Milestone = MilestoneConfirmed
	_, _, err = t.transition(ctx, r, "confirmed", at, ev)
	return err
}

// retireIfUnminable ends the tracking of a pending transaction payflow signed
// whose nonce is used at confirmed depth (see retireUnminable).
func (t *Tracker) retireIfUnminable(ctx context.Context, p *pass, r trackedTx) error {
	if r.step == "" {
		return nil // not signed by payflow (a deposit): nothing to prove it against
	}
	consumed, err := t.nonceConsumed(ctx, p, r.from, r.nonce)
	if err != nil || !consumed {
		return err
	}
	_, err = retireUnminable(ctx, t, p.head, r)
	return err
}

// retired is what retireUnminable did with a row.
type retired int

const (
	retiredNot         retired = iota // nothing: an attempt is mined but not deep yet
	retiredSuperseded                 // another attempt of its step is mined deep: done, quietly
	retiredDropped                    // no attempt is mined: done, owner told "dropped" (or gone)
	retiredMinedItself                // its own receipt exists after all: look again
)

// retireUnminable ends the tracking of pending row r, payflow-signed, whose
// nonce is used at confirmed depth (at block head-Confirmations+1): by none of
// its step's attempts, it is dropped (its owner is told); by another attempt
// that is confirmed deep, it was superseded (the owner follows that attempt)
// and is retired quietly.
func retireUnminable(ctx context.Context, t *Tracker, head uint64, r trackedTx) (retired, error) {
	attempts, err := t.store.Attempts(ctx, r.signedWF, r.step)
	if err != nil {
		return retiredNot, err
	}
	for _, a := range attempts {
		rc, err := receiptOf(ctx, t.backend, a.Hash)
		if err != nil {
			return retiredNot, err
		}
		if rc == nil {
			continue
		}
		if a.Hash == common.HexToHash(r.hash) {
			return retiredMinedItself, nil
		}
		if head+1 >= rc.BlockNumber.Uint64()+t.cfg.Confirmations {
			if _, err := t.db.ExecContext(ctx, "UPDATE tracked_txs SET state='done' WHERE chain=? AND tx_hash=? AND workflow_id=? AND state='pending'",
				t.cfg.Chain, r.hash, r.workflowID); err != nil {
				return retiredNot, fmt.Errorf("retiring superseded %s: %w", r.hash, err)
			}
			t.log.Info("tracked transaction superseded", "workflow_id", r.workflowID, "tx_hash", r.hash, "mined", a.Hash.Hex())
			return retiredSuperseded, nil
		}
		return retiredNot, nil
	}
	if _, _, err := t.transition(ctx, r, "done", nil, TxEvent{TxHash: r.hash, Milestone: MilestoneDropped}); err != nil {
		return retiredNot, err
	}
	return retiredDropped, nil
}

// checkPerTransfer is the algorithm before issue 13 (TrackerConfig.PerTransfer):
// it examines the BatchSize least recently checked open tracked transactions
// at the given head, one receipt lookup each, and records that they were
// checked: rows that can never mine do not keep newer ones from being checked.
func checkPerTransfer(ctx context.Context, t *Tracker, head uint64) error {
	rows, err := t.db.QueryContext(ctx, `SELECT t.tx_hash, t.workflow_id, t.state, COALESCE(t.block_hash,''), t.block_number,
		t.notify_seen, COALESCE(s.workflow_id,''), COALESCE(s.step,''), COALESCE(s.from_address,''), COALESCE(s.nonce,0)
		FROM tracked_txs t LEFT JOIN signed_txs s ON s.tx_hash = t.tx_hash AND s.chain = t.chain
		WHERE t.chain=? AND t.state IN ('pending','seen') ORDER BY t.checked_at, t.created_at LIMIT ?`,
		t.cfg.Chain, t.cfg.BatchSize)
	if err != nil {
		return fmt.Errorf("listing tracked transactions: %w", err)
	}
	var open []trackedTx
	for rows.Next() {
		var r trackedTx
		var from string
		if err := rows.Scan(&r.hash, &r.workflowID, &r.state, &r.blockHash, &r.blockNumber, &r.notifySeen,
			&r.signedWF, &r.step, &from, &r.nonce); err != nil {
			rows.Close()
			return err
		}
		r.from = common.HexToAddress(from)
		open = append(open, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// Receipt lookups are independent: run them side by side, so hundreds of
	// payments in flight do not make one head take seconds.
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	p := &pass{head: head, used: map[common.Address]uint64{}}
	work := make(chan trackedTx)
	for w := 0; w < min(16, len(open)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if err := t.advance(ctx, p, r); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", r.hash, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, r := range open {
		work <- r
	}
	close(work)
	wg.Wait()
	if err := t.markChecked(ctx, open); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

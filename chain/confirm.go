package chain

import (
	"context"
	"fmt"
	"math/big"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// One tracked row's way through a Tracker pass: seen in a block, confirmed
// when it is Confirmations deep and still canonical, reorged when its block
// is gone, dropped when its nonce went to another transaction.

// pass is what one CheckOnce learns once and shares between rows: each
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
			return t.transition(ctx, r, "pending", nil, TxEvent{TxHash: r.hash, Milestone: MilestoneReorged})
		}
		return t.retireIfUnminable(ctx, p, r)
	}
	bn := rcpt.BlockNumber.Uint64()
	ev := TxEvent{TxHash: r.hash, BlockNumber: bn, BlockHash: rcpt.BlockHash.Hex(), Succeeded: rcpt.Status == types.ReceiptStatusSuccessful}
	if r.state == "pending" || r.blockHash != rcpt.BlockHash.Hex() {
		ev.Milestone = MilestoneSeen
		if err := t.transition(ctx, r, "seen", rcpt, ev); err != nil {
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
	return t.transition(ctx, r, "confirmed", rcpt, ev)
}

// retireIfUnminable ends the tracking of a pending transaction payflow signed
// whose nonce is used at confirmed depth: by none of its step's attempts, it
// is dropped (its owner is told); by another attempt that is confirmed deep,
// it was superseded (the owner follows that attempt) and is retired quietly.
func (t *Tracker) retireIfUnminable(ctx context.Context, p *pass, r trackedTx) error {
	if r.step == "" {
		return nil // not signed by payflow (a deposit): nothing to prove it against
	}
	consumed, err := t.nonceConsumed(ctx, p, r.from, r.nonce)
	if err != nil || !consumed {
		return err
	}
	attempts, err := t.store.Attempts(ctx, r.signedWF, r.step)
	if err != nil {
		return err
	}
	for _, a := range attempts {
		rc, err := receiptOf(ctx, t.backend, a.Hash)
		if err != nil {
			return err
		}
		if rc == nil {
			continue
		}
		if p.head+1 >= rc.BlockNumber.Uint64()+t.cfg.Confirmations {
			if _, err := t.db.ExecContext(ctx, "UPDATE tracked_txs SET state='done' WHERE tx_hash=? AND workflow_id=? AND state='pending'",
				r.hash, r.workflowID); err != nil {
				return fmt.Errorf("retiring superseded %s: %w", r.hash, err)
			}
			t.log.Info("tracked transaction superseded", "workflow_id", r.workflowID, "tx_hash", r.hash, "mined", a.Hash.Hex())
		}
		return nil
	}
	return t.transition(ctx, r, "done", nil, TxEvent{TxHash: r.hash, Milestone: MilestoneDropped})
}

package btc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"payflow/chain"
)

// Tracker follows tracked transactions to their confirmations and tells
// their owners the milestones (chain.Notifier): seen in a block, reorged
// out of it, and confirmed once its block is Confirmations deep; a payment
// (Every false) is told confirmed only. Each poll reads where every open
// transaction is on the best chain (the transaction index, then the best
// chain's hash at that height), so a transaction tracked after it was
// mined is told at once: one node read per open transaction per poll (the
// EVM tracker's work per block, independent of the transactions in flight,
// is not reached here). Delivery is at least once: a crash between telling
// and recording tells again; owners ignore repeats.
type Tracker struct {
	confirmations int64
	c             *Client
	tracked       *Tracked
	notify        chain.Notifier
	log           *slog.Logger
	// owners, when the notifier is also a chain.OwnerChecker, ends the
	// tracking of a transaction that is not mined once its owner is gone
	// (a replaced attempt, a deposit's transaction that never came back),
	// asked at most every ownerCheckEvery per transaction; checked is when
	// each was last asked.
	owners     chain.OwnerChecker
	checked    map[string]time.Time
	ownerEvery time.Duration
}

// ownerCheckEvery is how often the tracker asks whether the owner of a
// transaction that is not mined still runs.
const ownerCheckEvery = time.Minute

// NewTracker returns the tracker of c's chain.
func NewTracker(confirmations int64, c *Client, tracked *Tracked, notify chain.Notifier, log *slog.Logger) (*Tracker, error) {
	if confirmations < 1 {
		return nil, fmt.Errorf("confirmations %d: at least 1", confirmations)
	}
	owners, _ := notify.(chain.OwnerChecker)
	return &Tracker{confirmations: confirmations, c: c, tracked: tracked, notify: notify, log: log, owners: owners,
		checked: map[string]time.Time{}, ownerEvery: ownerCheckEvery}, nil
}

// Poll tells the owners of the open tracked transactions what changed. An
// owner that is gone ends its tracking; any other error stops the poll
// (what was told is recorded), for the next one to go on.
func (t *Tracker) Poll(ctx context.Context) error {
	open, err := t.tracked.Open(ctx)
	if err != nil {
		return fmt.Errorf("reading the tracked transactions: %w", err)
	}
	for _, r := range open {
		if err := t.follow(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// follow tells r's owner where its transaction is now.
func (t *Tracker) follow(ctx context.Context, r TrackedTx) error {
	h, err := chainhash.NewHashFromStr(r.TxID)
	if err != nil {
		return fmt.Errorf("tracked txid %q: %w", r.TxID, err)
	}
	m, _, mined, err := minedAt(ctx, t.c, *h)
	if err != nil {
		return err
	}
	tell := func(ms chain.Milestone, height int64, block string) (gone bool, err error) {
		err = t.notify.NotifyTx(ctx, r.WorkflowID, chain.TxEvent{TxHash: r.TxID, Milestone: ms, BlockNumber: uint64(height),
			BlockHash: block, Succeeded: true})
		if errors.Is(err, chain.ErrOwnerGone) {
			t.log.Info("tracked transaction's owner is gone; tracking ends", "tx_hash", r.TxID, "workflow_id", r.WorkflowID)
			return true, t.tracked.Update(ctx, r, true)
		}
		return false, err
	}
	if r.Told != ToldNothing && (!mined || m.BlockHash != r.BlockHash) {
		// Its block left the best chain: waiting again (and perhaps seen
		// in another block below).
		if r.Every {
			if gone, err := tell(chain.MilestoneReorged, 0, r.BlockHash); gone || err != nil {
				return err
			}
		}
		r.Told, r.BlockHash = ToldNothing, ""
		if err := t.tracked.Update(ctx, r, false); err != nil {
			return err
		}
	}
	key := r.TxID + "/" + r.WorkflowID
	if !mined {
		return t.endIfOwnerGone(ctx, r, key)
	}
	delete(t.checked, key)
	if r.Told == ToldNothing {
		if r.Every {
			if gone, err := tell(chain.MilestoneSeen, m.Height, m.BlockHash); gone || err != nil {
				return err
			}
		}
		r.Told, r.BlockHash = ToldSeen, m.BlockHash
		if err := t.tracked.Update(ctx, r, false); err != nil {
			return err
		}
	}
	if m.Confirmations >= t.confirmations {
		if gone, err := tell(chain.MilestoneConfirmed, m.Height, m.BlockHash); gone || err != nil {
			return err
		}
		r.Told = ToldConfirmed
		return t.tracked.Update(ctx, r, true)
	}
	return nil
}

// endIfOwnerGone ends the tracking of r, not mined, when its owner no
// longer runs: nothing will ever be told to it (a payment's replaced
// attempt once the payment is decided; a deposit whose transaction never
// came back). The first sight of r starts its clock; the owner is asked at
// most every ownerCheckEvery.
func (t *Tracker) endIfOwnerGone(ctx context.Context, r TrackedTx, key string) error {
	if t.owners == nil {
		return nil
	}
	last, seen := t.checked[key]
	if !seen {
		t.checked[key] = time.Now()
		return nil
	}
	if time.Since(last) < t.ownerEvery {
		return nil
	}
	t.checked[key] = time.Now()
	running, err := t.owners.OwnerRunning(ctx, r.WorkflowID)
	if err != nil || running {
		return err
	}
	delete(t.checked, key)
	t.log.Info("tracked transaction not mined and its owner is gone; tracking ends", "tx_hash", r.TxID,
		"workflow_id", r.WorkflowID)
	return t.tracked.Update(ctx, r, true)
}

// Run polls every interval until ctx ends, handing each failed poll's
// error to onErr; the next poll goes on.
func (t *Tracker) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := t.Poll(ctx); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

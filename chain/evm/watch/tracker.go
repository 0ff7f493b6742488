// Package watch is payflow's watching side of an EVM chain: the Listener
// (token and native deposits to watched addresses, from a persisted cursor)
// and the Tracker (payflow's transactions followed block by block to their
// milestones), both fed by new heads over WebSocket (heads.go). Owners are
// told through chain.Notifier.
package watch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"

	"payflow/chain/evm"
)

// HeadSubscriber is a WebSocket node connection.
type HeadSubscriber interface {
	SubscribeNewHead(ctx context.Context, ch chan<- *types.Header) (ethereum.Subscription, error)
}

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	Chain         string
	Confirmations uint64
	// PollInterval re-checks even without new heads (a silent WebSocket).
	PollInterval time.Duration
	// BatchSize is how many receipts of newly followed rows one pass looks
	// up, the oldest first, so every open row is looked at within a few
	// passes however many are open. Zero means DefaultTrackerBatch.
	BatchSize int
}

// DefaultTrackerBatch is TrackerConfig.BatchSize when unset.
const DefaultTrackerBatch = 5000

// Tracker follows payflow's own broadcast transactions to confirmation by
// block number and hash, and tells their owners once per milestone. Its work
// per head follows the chain, not the number of transfers in flight: it reads
// each new block's header and receipts and matches them against the open
// rows it holds in memory (see follower).
type Tracker struct {
	mu       sync.Mutex // one pass at a time
	follow   *follower  // what the per-block algorithm has learned; nil: start over
	cfg      TrackerConfig
	backend  evm.Backend
	dial     func(ctx context.Context) (HeadSubscriber, error)
	notifier chain.Notifier
	store    *evm.TxStore // the attempts of a step, to tell dropped from superseded
	tracked  *evm.Tracked
	log      *slog.Logger
}

// NewTracker wires a Tracker. dial opens a fresh WebSocket subscription
// source; it is called again after every disconnect, with backoff.
func NewTracker(cfg TrackerConfig, db *sql.DB, backend evm.Backend, dial func(ctx context.Context) (HeadSubscriber, error), n chain.Notifier, log *slog.Logger) (*Tracker, error) {
	if cfg.Confirmations < 1 {
		return nil, errors.New("tracker: confirmations must be >= 1")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultTrackerBatch
	}
	if log == nil {
		log = slog.Default()
	}
	store, err := evm.NewTxStore(cfg.Chain, db)
	if err != nil {
		return nil, fmt.Errorf("tracker: %w", err)
	}
	tracked, err := evm.NewTracked(cfg.Chain, db)
	if err != nil {
		return nil, fmt.Errorf("tracker: %w", err)
	}
	return &Tracker{cfg: cfg, backend: backend, dial: dial, notifier: n, store: store, tracked: tracked, log: log}, nil
}

// Run follows new heads until ctx ends, reconnecting with backoff. Each Run
// (each lease taken) starts from the database: it forgets what an earlier Run
// learned, since another process may have tracked the rows meanwhile.
func (t *Tracker) Run(ctx context.Context) error {
	t.mu.Lock()
	t.follow = nil
	t.mu.Unlock()
	followHeads(ctx, t.dial, t.backend, t.cfg.PollInterval, t.log, t.check)
	return nil
}

// trackedTx is an open tracked row as the tracker last recorded it.
type trackedTx struct {
	evm.TrackedRow
	// alone: no other open row of the workflow is known, so a confirmation
	// or drop has no replacement to retire (the tracker holds every open
	// row).
	alone bool
}

// check advances every open transaction against head.
func (t *Tracker) check(ctx context.Context, head uint64) {
	if err := t.CheckOnce(ctx, head); err != nil && ctx.Err() == nil {
		t.log.Warn("checking tracked transactions", "head", head, "err", err)
	}
}

// CheckOnce brings the tracker up to the given head: it follows the open
// tracked rows to their milestones and tells their owners. A transaction
// payflow signed that can never be mined (see MilestoneDropped) is retired.
// Exposed for tests that mine blocks by hand.
func (t *Tracker) CheckOnce(ctx context.Context, head uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.follow == nil {
		t.follow = newFollower(t)
	}
	return t.follow.pass(ctx, head)
}

// markChecked moves the checked rows to the back of the line.
func (t *Tracker) markChecked(ctx context.Context, open []trackedTx) error {
	keys := make([]evm.TrackedKey, len(open))
	for i, r := range open {
		keys[i] = evm.TrackedKey{Hash: r.Hash, WorkflowID: r.WorkflowID}
	}
	return t.tracked.MarkChecked(ctx, keys)
}

// transition notifies first, then records: a crash in between repeats the
// notification (owners ignore repeats) but never loses it. Rows are per
// (tx_hash, workflow_id): another workflow following the same transaction
// keeps its own state. On confirmation (or drop), the workflow's other
// tracked hashes that are still pending and share the transaction's sender
// and nonce (replacements signed by Sender.Replace, or what they
// replaced) can never be mined: they are marked done in the same database
// transaction, so they are not polled again and their owner hears nothing
// more about them. It returns the state recorded ("done" when the owner is
// gone) and how many such hashes were retired.
func (t *Tracker) transition(ctx context.Context, r trackedTx, state string, at *inclusion, ev chain.TxEvent) (string, int64, error) {
	var err error
	if ev.Milestone == chain.MilestoneConfirmed || ev.Milestone == chain.MilestoneDropped || r.NotifySeen {
		err = t.notifier.NotifyTx(ctx, r.WorkflowID, ev)
	}
	if errors.Is(err, chain.ErrOwnerGone) {
		state = "done"
	} else if err != nil {
		return r.State, 0, fmt.Errorf("notifying %s of %s: %w", r.WorkflowID, ev.Milestone, err)
	}
	var bn uint64
	var bh *common.Hash
	if at != nil {
		bn, bh = at.number, &at.hash
	}
	retire := (ev.Milestone == chain.MilestoneConfirmed || ev.Milestone == chain.MilestoneDropped) && !r.alone
	superseded, err := t.tracked.Record(ctx, evm.TrackedKey{Hash: r.Hash, WorkflowID: r.WorkflowID}, state, bn, bh, retire)
	if err != nil {
		return r.State, 0, err
	}
	t.log.Info("tracked transaction", "workflow_id", r.WorkflowID, "tx_hash", r.Hash, "milestone", ev.Milestone,
		"block_number", ev.BlockNumber, "superseded", superseded)
	return state, superseded, nil
}

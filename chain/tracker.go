package chain

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// Milestone is a step in a transaction's life the owner is told about, once.
type Milestone string

// Milestones of a tracked transaction.
const (
	// MilestoneSeen: included in a block, counting confirmations.
	MilestoneSeen Milestone = "seen"
	// MilestoneConfirmed: Confirmations blocks deep on the canonical chain.
	MilestoneConfirmed Milestone = "confirmed"
	// MilestoneReorged: the block it was in left the canonical chain; waiting again.
	MilestoneReorged Milestone = "reorged"
)

// TxEvent tells a transaction's owner about a milestone.
type TxEvent struct {
	TxHash      string    `json:"tx_hash"`
	Milestone   Milestone `json:"milestone"`
	BlockNumber uint64    `json:"block_number"`
	BlockHash   string    `json:"block_hash"`
	// Succeeded is the receipt status (true = 1). A reverted transfer is
	// confirmed with Succeeded=false.
	Succeeded bool `json:"succeeded"`
}

// Notifier delivers milestones to a transaction's owner (in payflow a
// Temporal signal to the workflow). Delivery is at least once: owners ignore
// repeats. ErrOwnerGone means the owner no longer exists; tracking stops.
type Notifier interface {
	NotifyTx(ctx context.Context, workflowID string, ev TxEvent) error
}

// ErrOwnerGone is returned by a Notifier whose owner has finished.
var ErrOwnerGone = errors.New("owner of the tracked transaction is gone")

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
}

// Tracker follows payflow's own broadcast transactions to confirmation by
// block number and hash, and tells their owners once per milestone.
type Tracker struct {
	cfg      TrackerConfig
	db       *sql.DB
	backend  Backend
	dial     func(ctx context.Context) (HeadSubscriber, error)
	notifier Notifier
	log      *slog.Logger
}

// NewTracker wires a Tracker. dial opens a fresh WebSocket subscription
// source; it is called again after every disconnect, with backoff.
func NewTracker(cfg TrackerConfig, db *sql.DB, backend Backend, dial func(ctx context.Context) (HeadSubscriber, error), n Notifier, log *slog.Logger) (*Tracker, error) {
	if cfg.Confirmations < 1 {
		return nil, errors.New("tracker: confirmations must be >= 1")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Tracker{cfg: cfg, db: db, backend: backend, dial: dial, notifier: n, log: log}, nil
}

// Track starts following txHash for workflowID. Idempotent.
func (t *Tracker) Track(ctx context.Context, txHash common.Hash, workflowID string) error {
	return TrackTx(ctx, t.db, t.cfg.Chain, txHash, workflowID)
}

// TrackTx records that workflowID waits for txHash and wants every
// milestone (seen, reorged, confirmed). Idempotent; tracking a transaction
// again after it was confirmed re-arms it, so a workflow that was reset to
// before its confirmation is told again (owners ignore repeats).
func TrackTx(ctx context.Context, db *sql.DB, chainName string, txHash common.Hash, workflowID string) error {
	return trackTx(ctx, db, chainName, txHash, workflowID, true)
}

// TrackTxConfirmedOnly is TrackTx for owners that only act on "confirmed"
// (payments): one signal per transaction instead of one per milestone.
func TrackTxConfirmedOnly(ctx context.Context, db *sql.DB, chainName string, txHash common.Hash, workflowID string) error {
	return trackTx(ctx, db, chainName, txHash, workflowID, false)
}

func trackTx(ctx context.Context, db *sql.DB, chainName string, txHash common.Hash, workflowID string, notifySeen bool) error {
	if _, err := db.ExecContext(ctx, `INSERT INTO tracked_txs (tx_hash, chain, workflow_id, notify_seen) VALUES (?,?,?,?)
		ON DUPLICATE KEY UPDATE state=IF(state IN ('confirmed','done'), 'pending', state)`,
		txHash.Hex(), chainName, workflowID, notifySeen); err != nil {
		return fmt.Errorf("tracking %s: %w", txHash.Hex(), err)
	}
	return nil
}

// Run follows new heads until ctx ends, reconnecting with backoff.
func (t *Tracker) Run(ctx context.Context) error {
	followHeads(ctx, t.dial, t.backend, t.cfg.PollInterval, t.log, t.check)
	return nil
}

type trackedTx struct {
	hash, workflowID, state, blockHash string
	blockNumber                        sql.NullInt64
	notifySeen                         bool
}

// check advances every open transaction against head.
func (t *Tracker) check(ctx context.Context, head uint64) {
	if err := t.CheckOnce(ctx, head); err != nil && ctx.Err() == nil {
		t.log.Warn("checking tracked transactions", "head", head, "err", err)
	}
}

// CheckOnce examines every open tracked transaction at the given head.
// Exposed for tests that mine blocks by hand.
func (t *Tracker) CheckOnce(ctx context.Context, head uint64) error {
	rows, err := t.db.QueryContext(ctx, `SELECT tx_hash, workflow_id, state, COALESCE(block_hash,''), block_number, notify_seen
		FROM tracked_txs WHERE chain=? AND state IN ('pending','seen') ORDER BY created_at LIMIT 5000`, t.cfg.Chain)
	if err != nil {
		return fmt.Errorf("listing tracked transactions: %w", err)
	}
	var open []trackedTx
	for rows.Next() {
		var r trackedTx
		if err := rows.Scan(&r.hash, &r.workflowID, &r.state, &r.blockHash, &r.blockNumber, &r.notifySeen); err != nil {
			rows.Close()
			return err
		}
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
	work := make(chan trackedTx)
	for w := 0; w < min(16, len(open)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if err := t.advance(ctx, head, r); err != nil {
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
	return errors.Join(errs...)
}

func (t *Tracker) advance(ctx context.Context, head uint64, r trackedTx) error {
	hash := common.HexToHash(r.hash)
	rcpt, err := t.backend.TransactionReceipt(ctx, hash)
	if errors.Is(err, ethereum.NotFound) || (err == nil && rcpt == nil) {
		if r.state == "seen" { // its block left the canonical chain
			return t.transition(ctx, r, "pending", nil, TxEvent{TxHash: r.hash, Milestone: MilestoneReorged})
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading receipt: %w", err)
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

// transition notifies first, then records: a crash in between repeats the
// notification (owners ignore repeats) but never loses it. Rows are per
// (tx_hash, workflow_id): another workflow following the same transaction
// keeps its own state. On confirmation, the workflow's other tracked hashes
// that are still pending and share the confirmed transaction's sender and
// nonce (replacements signed by Broadcaster.Replace, or what they replaced)
// can never be mined: they are marked done in the same database transaction,
// so they are not polled again and their owner hears nothing about them.
func (t *Tracker) transition(ctx context.Context, r trackedTx, state string, rcpt *types.Receipt, ev TxEvent) error {
	var err error
	if ev.Milestone == MilestoneConfirmed || r.notifySeen {
		err = t.notifier.NotifyTx(ctx, r.workflowID, ev)
	}
	if errors.Is(err, ErrOwnerGone) {
		state = "done"
	} else if err != nil {
		return fmt.Errorf("notifying %s of %s: %w", r.workflowID, ev.Milestone, err)
	}
	var bn, bh any
	if rcpt != nil {
		bn, bh = rcpt.BlockNumber.Uint64(), rcpt.BlockHash.Hex()
	}
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("recording %s: %w", state, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE tracked_txs SET state=?, block_number=?, block_hash=? WHERE tx_hash=? AND workflow_id=?",
		state, bn, bh, r.hash, r.workflowID); err != nil {
		return fmt.Errorf("recording %s: %w", state, err)
	}
	var superseded int64
	if ev.Milestone == MilestoneConfirmed {
		res, err := tx.ExecContext(ctx, `UPDATE tracked_txs o
			JOIN signed_txs so ON so.tx_hash = o.tx_hash
			JOIN signed_txs sc ON sc.chain = so.chain AND sc.from_address = so.from_address AND sc.nonce = so.nonce
			SET o.state = 'done'
			WHERE sc.tx_hash = ? AND sc.chain = ? AND o.workflow_id = ? AND o.chain = ? AND o.tx_hash <> ? AND o.state = 'pending'`,
			r.hash, t.cfg.Chain, r.workflowID, t.cfg.Chain, r.hash)
		if err != nil {
			return fmt.Errorf("retiring replacements of %s: %w", r.hash, err)
		}
		if superseded, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("retiring replacements of %s: %w", r.hash, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("recording %s: %w", state, err)
	}
	t.log.Info("tracked transaction", "workflow_id", r.workflowID, "tx_hash", r.hash, "milestone", ev.Milestone,
		"block_number", ev.BlockNumber, "superseded", superseded)
	return nil
}

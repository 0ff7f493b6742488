package btc

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Told is what the tracker last told a transaction's owner.
type Told string

// What the tracker last told.
const (
	ToldNothing   Told = "none"
	ToldSeen      Told = "seen"
	ToldConfirmed Told = "confirmed"
)

// TrackedTx is a transaction the tracker follows for one workflow.
type TrackedTx struct {
	TxID, WorkflowID string
	// Every: tell every milestone (a deposit), or only confirmed (a
	// payment).
	Every bool
	Told  Told
	// BlockHash is the block it was told seen or confirmed in.
	BlockHash string
}

// Tracked is a chain's tracked transactions, in the btc_tracked table: the
// only SQL on it.
type Tracked struct {
	db    *sql.DB
	chain string
}

// NewTracked returns chain's tracked transactions.
func NewTracked(db *sql.DB, chain string) *Tracked { return &Tracked{db: db, chain: chain} }

// Track has the tracker follow txid for workflowID. Tracking it again
// re-arms it: the owner is told its state afresh (a Deposit that found its
// transaction gone after it was told confirmed asks again).
func (t *Tracked) Track(ctx context.Context, txid, workflowID string, every bool) error {
	_, err := t.db.ExecContext(ctx, `INSERT INTO btc_tracked (chain, txid, workflow_id, every_milestone) VALUES (?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE every_milestone = VALUES(every_milestone), told = 'none', block_hash = NULL, done = FALSE`,
		t.chain, txid, workflowID, every)
	if err != nil {
		return fmt.Errorf("tracking %s for %s: %w", txid, workflowID, err)
	}
	return nil
}

// Open returns the tracked transactions the tracker is not done with.
func (t *Tracked) Open(ctx context.Context) ([]TrackedTx, error) {
	rows, err := t.db.QueryContext(ctx, `SELECT txid, workflow_id, every_milestone, told, COALESCE(block_hash, '')
		FROM btc_tracked WHERE chain = ? AND NOT done ORDER BY created_at, txid, workflow_id`, t.chain)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TrackedTx
	for rows.Next() {
		var r TrackedTx
		var told string
		if err := rows.Scan(&r.TxID, &r.WorkflowID, &r.Every, &told, &r.BlockHash); err != nil {
			return nil, err
		}
		r.Told = Told(told)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Update records what the owner was told; done stops the tracking.
func (t *Tracked) Update(ctx context.Context, r TrackedTx, done bool) error {
	var hash any
	if r.BlockHash != "" {
		hash = r.BlockHash
	}
	_, err := t.db.ExecContext(ctx, `UPDATE btc_tracked SET told = ?, block_hash = ?, done = ?
		WHERE chain = ? AND txid = ? AND workflow_id = ?`, string(r.Told), hash, done, t.chain, r.TxID, r.WorkflowID)
	if err != nil {
		return fmt.Errorf("recording what %s was told of %s: %w", r.WorkflowID, r.TxID, err)
	}
	return nil
}

// InFlight counts the chain's payments' transfers in flight (a step with
// an attempt tracked and not yet told confirmed), the age of the oldest
// such attempt, and the payments among them (step paymentStep) in flight
// for longer than stuckAfter.
func (t *Tracked) InFlight(ctx context.Context, paymentStep string, stuckAfter time.Duration) (n int64, oldest time.Duration,
	stuck int64, err error) {
	var oldestMicros float64
	err = t.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT s.workflow_id, s.step),
			COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(t.created_at), CURRENT_TIMESTAMP(6)), 0),
			COUNT(DISTINCT IF(s.step = ? AND t.created_at < CURRENT_TIMESTAMP(6) - INTERVAL ? MICROSECOND, s.workflow_id, NULL))
		FROM btc_tracked t JOIN btc_signed s ON s.chain = t.chain AND s.txid = t.txid
		WHERE t.chain = ? AND NOT t.done AND NOT t.every_milestone`,
		paymentStep, stuckAfter.Microseconds(), t.chain).Scan(&n, &oldestMicros, &stuck)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("counting transfers in flight: %w", err)
	}
	return n, time.Duration(max(oldestMicros, 0)) * time.Microsecond, stuck, nil
}

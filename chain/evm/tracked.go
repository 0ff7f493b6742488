package evm

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"payflow/internal/sqlerr"
	"payflow/internal/sqlrows"
)

// Tracked is one chain's rows of the tracked_txs table: the transactions
// the confirmation tracker follows, one row per (transaction, workflow),
// each with the state the tracker last recorded (pending, seen, confirmed,
// done).
type Tracked struct{ chainTable }

// NewTracked wires Tracked for one chain (its protocol name).
func NewTracked(chainName string, db *sql.DB) (*Tracked, error) {
	return newChainTable[Tracked]("tracked transactions", chainName, db)
}

// TrackTx records that workflowID waits for txHash and wants every
// milestone (seen, reorged, confirmed). Idempotent; tracking a transaction
// again after it was confirmed (or dropped) re-arms it, so a workflow that was
// reset to before its confirmation is told again (owners ignore repeats).
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
		ON DUPLICATE KEY UPDATE checked_at=IF(state IN ('confirmed','done'), NULL, checked_at),
			state=IF(state IN ('confirmed','done'), 'pending', state)`,
		txHash.Hex(), chainName, workflowID, notifySeen); err != nil {
		return fmt.Errorf("tracking %s: %w", txHash.Hex(), err)
	}
	return nil
}

// TrackedRow is an open tracked row as the tracker loads it, with the
// signed_txs row of its hash when payflow signed it (else Step is "").
type TrackedRow struct {
	Hash, WorkflowID, State, BlockHash string
	BlockNumber                        sql.NullInt64
	NotifySeen                         bool
	SignedWF, Step                     string
	From                               common.Address
	Nonce                              uint64
	// Unchecked: the tracker has not picked the row up yet (MarkChecked).
	Unchecked bool
}

// TrackedKey names one tracked row.
type TrackedKey struct{ Hash, WorkflowID string }

// Open lists the open rows (pending or seen), oldest first; with
// uncheckedOnly, only those the tracker has not picked up.
func (t *Tracked) Open(ctx context.Context, uncheckedOnly bool) ([]TrackedRow, error) {
	q := `SELECT t.tx_hash, t.workflow_id, t.state, COALESCE(t.block_hash,''), t.block_number, t.notify_seen,
		COALESCE(s.workflow_id,''), COALESCE(s.step,''), COALESCE(s.from_address,''), COALESCE(s.nonce,0), t.checked_at IS NULL
		FROM tracked_txs t LEFT JOIN signed_txs s ON s.tx_hash = t.tx_hash AND s.chain = t.chain
		WHERE t.chain=? AND t.state IN ('pending','seen')`
	if uncheckedOnly {
		q += " AND t.checked_at IS NULL"
	}
	out, err := sqlrows.Collect(ctx, t.db, func(rows sqlrows.Scanner) (r TrackedRow, err error) {
		var from string
		err = rows.Scan(&r.Hash, &r.WorkflowID, &r.State, &r.BlockHash, &r.BlockNumber, &r.NotifySeen,
			&r.SignedWF, &r.Step, &from, &r.Nonce, &r.Unchecked)
		r.From = common.HexToAddress(from)
		return r, err
	}, q+" ORDER BY t.created_at", t.chain)
	if err != nil {
		return nil, fmt.Errorf("listing tracked transactions: %w", err)
	}
	return out, nil
}

// OpenHashes lists the hashes workflowID still has open (pending or seen).
func (t *Tracked) OpenHashes(ctx context.Context, workflowID string) (map[string]bool, error) {
	hashes, err := sqlrows.Collect(ctx, t.db, sqlrows.String,
		"SELECT tx_hash FROM tracked_txs WHERE chain=? AND workflow_id=? AND state IN ('pending','seen')", t.chain, workflowID)
	if err != nil {
		return nil, fmt.Errorf("re-reading the tracked transactions of %s: %w", workflowID, err)
	}
	open := make(map[string]bool, len(hashes))
	for _, h := range hashes {
		open[h] = true
	}
	return open, nil
}

// OpenCount counts the open rows (pending or seen).
func (t *Tracked) OpenCount(ctx context.Context) (int, error) {
	var n int
	if err := t.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM tracked_txs WHERE chain=? AND state IN ('pending','seen')",
		t.chain).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting tracked transactions: %w", err)
	}
	return n, nil
}

// MarkChecked moves rows to the back of the line: picked up by the tracker.
func (t *Tracked) MarkChecked(ctx context.Context, keys []TrackedKey) error {
	const chunk = 500
	for i := 0; i < len(keys); i += chunk {
		part := keys[i:min(i+chunk, len(keys))]
		args := make([]any, 0, 1+2*len(part))
		args = append(args, t.chain)
		for _, k := range part {
			args = append(args, k.Hash, k.WorkflowID)
		}
		q := "UPDATE tracked_txs SET checked_at=NOW(6) WHERE chain=? AND (tx_hash, workflow_id) IN (" +
			strings.TrimSuffix(strings.Repeat("(?,?),", len(part)), ",") + ")"
		if _, err := t.db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("recording checked transactions: %w", err)
		}
	}
	return nil
}

// MarkSeen records that block (number, hash) holds the rows of keys that
// are still open.
func (t *Tracked) MarkSeen(ctx context.Context, number uint64, hash common.Hash, keys []TrackedKey) error {
	const chunk = 500
	for i := 0; i < len(keys); i += chunk {
		part := keys[i:min(i+chunk, len(keys))]
		args := []any{number, hash.Hex(), t.chain}
		for _, k := range part {
			args = append(args, k.Hash, k.WorkflowID)
		}
		q := "UPDATE tracked_txs SET state='seen', block_number=?, block_hash=? WHERE chain=? AND state IN ('pending','seen') AND (tx_hash, workflow_id) IN (" +
			strings.TrimSuffix(strings.Repeat("(?,?),", len(part)), ",") + ")"
		if _, err := t.db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("recording transactions seen in block %d: %w", number, err)
		}
	}
	return nil
}

// RetireSuperseded marks a pending row done without telling its owner: another
// attempt of its step is mined deep.
func (t *Tracked) RetireSuperseded(ctx context.Context, k TrackedKey) error {
	if _, err := t.db.ExecContext(ctx, "UPDATE tracked_txs SET state='done' WHERE chain=? AND tx_hash=? AND workflow_id=? AND state='pending'",
		t.chain, k.Hash, k.WorkflowID); err != nil {
		return fmt.Errorf("retiring superseded %s: %w", k.Hash, err)
	}
	return nil
}

// Record records row k's new state (and its block, when at is not nil), in
// one database transaction with, when retire is set, the retirement of the
// workflow's other pending hashes that share the transaction's sender and
// nonce (replacements, or what they replaced: they can never be mined). It
// returns how many were retired. Without retire it is one statement, in
// no transaction of its own. Records side by side can deadlock in
// MariaDB; the loser is run again.
func (t *Tracked) Record(ctx context.Context, k TrackedKey, state string, blockNumber uint64, blockHash *common.Hash,
	retire bool) (int64, error) {
	var bn, bh any
	if blockHash != nil {
		bn, bh = blockNumber, blockHash.Hex()
	}
	const update = "UPDATE tracked_txs SET state=?, block_number=?, block_hash=? WHERE chain=? AND tx_hash=? AND workflow_id=?"
	record := func() (int64, error) {
		if !retire {
			if _, err := t.db.ExecContext(ctx, update, state, bn, bh, t.chain, k.Hash, k.WorkflowID); err != nil {
				return 0, fmt.Errorf("recording %s: %w", state, err)
			}
			return 0, nil
		}
		tx, err := t.db.BeginTx(ctx, nil)
		if err != nil {
			return 0, fmt.Errorf("recording %s: %w", state, err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, update, state, bn, bh, t.chain, k.Hash, k.WorkflowID); err != nil {
			return 0, fmt.Errorf("recording %s: %w", state, err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE tracked_txs o
			JOIN signed_txs so ON so.chain = o.chain AND so.tx_hash = o.tx_hash
			JOIN signed_txs sc ON sc.chain = so.chain AND sc.from_address = so.from_address AND sc.nonce = so.nonce
			SET o.state = 'done'
			WHERE sc.tx_hash = ? AND sc.chain = ? AND o.workflow_id = ? AND o.chain = ? AND o.tx_hash <> ? AND o.state = 'pending'`,
			k.Hash, t.chain, k.WorkflowID, t.chain, k.Hash)
		if err != nil {
			return 0, fmt.Errorf("retiring replacements of %s: %w", k.Hash, err)
		}
		superseded, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("retiring replacements of %s: %w", k.Hash, err)
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("recording %s: %w", state, err)
		}
		return superseded, nil
	}
	superseded, err := record()
	for attempt := 1; err != nil && sqlerr.IsDeadlock(err) && attempt < 5; attempt++ {
		superseded, err = record()
	}
	return superseded, err
}

// StateOf is the recorded state of txHash's row for workflowID (any
// workflow's when workflowID is "").
func (t *Tracked) StateOf(ctx context.Context, txHash, workflowID string) (string, error) {
	q, args := "SELECT state FROM tracked_txs WHERE chain=? AND tx_hash=?", []any{t.chain, txHash}
	if workflowID != "" {
		q, args = q+" AND workflow_id=?", append(args, workflowID)
	}
	var s string
	if err := t.db.QueryRowContext(ctx, q+" LIMIT 1", args...).Scan(&s); err != nil {
		return "", fmt.Errorf("reading the tracking of %s: %w", txHash, err)
	}
	return s, nil
}

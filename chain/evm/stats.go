package evm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"payflow/internal/sqlrows"
)

// Stats reads what the worker's metrics report of every chain's stored and
// tracked transactions and of the listener's cursor (the metrics sampler's
// view of the chain's store).
type Stats struct{ db *sql.DB }

// NewStats wires Stats over db.
func NewStats(db *sql.DB) *Stats { return &Stats{db: db} }

// InFlight counts the chain's transfers in flight (a step with an attempt
// tracked and not confirmed), the age of the oldest such attempt, and the
// payments among them (step paymentStep) tracked for longer than stuckAfter.
func (s *Stats) InFlight(ctx context.Context, chainName, paymentStep string, stuckAfter time.Duration) (n int64,
	oldest time.Duration, stuck int64, err error) {
	var oldestMicros float64
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT s.workflow_id, s.step),
			COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(t.created_at), CURRENT_TIMESTAMP(6)), 0),
			COUNT(DISTINCT IF(s.step = ? AND t.created_at < CURRENT_TIMESTAMP(6) - INTERVAL ? MICROSECOND, s.workflow_id, NULL))
		FROM tracked_txs t JOIN signed_txs s ON s.tx_hash = t.tx_hash AND s.chain = t.chain
		WHERE t.chain = ? AND t.state IN ('pending','seen')`,
		paymentStep, stuckAfter.Microseconds(), chainName).Scan(&n, &oldestMicros, &stuck)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("counting transfers in flight: %w", err)
	}
	return n, time.Duration(max(oldestMicros, 0)) * time.Microsecond, stuck, nil
}

// LaneBacklog counts, per sending address, the nonces signed and not mined:
// tracked and not seen in a block by any attempt, or signed and never
// broadcast (no attempt on the nonce is tracked).
func (s *Stats) LaneBacklog(ctx context.Context, chainName string) (map[string]int64, error) {
	out := map[string]int64{}
	err := sqlrows.Each(ctx, s.db, func(rows sqlrows.Scanner) error {
		var addr string
		var n int64
		if err := rows.Scan(&addr, &n); err != nil {
			return err
		}
		out[addr] = n
		return nil
	}, `SELECT lane.from_address, COUNT(*) FROM (
			SELECT s.from_address, s.nonce
			FROM signed_txs s JOIN tracked_txs t ON t.tx_hash = s.tx_hash AND t.chain = s.chain
			WHERE t.chain = ? AND t.state IN ('pending','seen')
			GROUP BY s.from_address, s.nonce
			HAVING SUM(t.state = 'seen') = 0
			UNION
			SELECT s.from_address, s.nonce
			FROM signed_txs s
			WHERE s.chain = ? AND s.state = 'signed' AND NOT EXISTS (
				SELECT 1 FROM signed_txs o JOIN tracked_txs t ON t.tx_hash = o.tx_hash AND t.chain = o.chain
				WHERE o.chain = s.chain AND o.from_address = s.from_address AND o.nonce = s.nonce)
		) lane GROUP BY lane.from_address`, chainName, chainName)
	if err != nil {
		return nil, fmt.Errorf("counting nonce lane backlog: %w", err)
	}
	return out, nil
}

// CursorBlock is the listener's cursor block on the chain; ok is false
// when the listener never ran.
func (s *Stats) CursorBlock(ctx context.Context, chainName string) (uint64, bool, error) {
	var cursor uint64
	err := s.db.QueryRowContext(ctx, "SELECT block_number FROM chain_cursor WHERE chain = ?", chainName).Scan(&cursor)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading the listener's cursor: %w", err)
	}
	return cursor, true, nil
}

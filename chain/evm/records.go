package evm

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"payflow/internal/sqlrows"
)

// Signed is a row of signed_txs as an operator reads it, on any chain.
type Signed struct {
	Chain     string
	Step      string
	Attempt   int
	From      string
	Nonce     uint64
	TxHash    string
	MaxFeeWei string
	TipWei    string
	SignedAt  string // as the database prints it
}

// SignedOf lists every attempt stored for workflowID, on every chain, by
// step and attempt.
func SignedOf(ctx context.Context, db *sql.DB, workflowID string) ([]Signed, error) {
	out, err := sqlrows.Collect(ctx, db, func(rows sqlrows.Scanner) (s Signed, err error) {
		return s, rows.Scan(&s.Chain, &s.Step, &s.Attempt, &s.From, &s.Nonce, &s.TxHash, &s.MaxFeeWei, &s.TipWei,
			&s.SignedAt)
	}, `SELECT chain, step, attempt, from_address, nonce, tx_hash, max_fee_wei, tip_wei, created_at
		FROM signed_txs WHERE workflow_id=? ORDER BY step, attempt`, workflowID)
	if err != nil {
		return nil, fmt.Errorf("reading the transfers of %s: %w", workflowID, err)
	}
	return out, nil
}

// NonceSummary is what a chain's signed_txs hold, nonce-wise: rows,
// distinct nonces, rows sent, lowest and highest nonce (the bench checks a
// run left no gap and no reuse).
type NonceSummary struct {
	Count, Distinct, Sent int64
	Lowest, Highest       int64
}

// Summary sums up the chain's stored transactions (see NonceSummary).
func (s *TxStore) Summary(ctx context.Context) (NonceSummary, error) {
	var n NonceSummary
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT nonce), COALESCE(SUM(state='sent'),0),
		COALESCE(MIN(nonce),0), COALESCE(MAX(nonce),0) FROM signed_txs WHERE chain=?`, s.chain).
		Scan(&n.Count, &n.Distinct, &n.Sent, &n.Lowest, &n.Highest)
	if err != nil {
		return NonceSummary{}, fmt.Errorf("summing up stored transactions: %w", err)
	}
	return n, nil
}

// InFlight is a payflow-signed transfer that no block holds, as the bench
// makes them up in bulk: only its key, sender and nonce are real.
type InFlight struct {
	WorkflowID string
	Hash       common.Hash
	From       common.Address
	Nonce      uint64
}

// StoreInFlight stores rows as sent attempts of step "send" and tracks them
// (confirmed only), a thousand to a statement. For the bench: their raw
// bytes are a placeholder that cannot be sent.
func StoreInFlight(ctx context.Context, db *sql.DB, chainName string, rows []InFlight) error {
	const chunk = 1000
	for done := 0; done < len(rows); done += chunk {
		part := rows[done:min(done+chunk, len(rows))]
		var tq, sq strings.Builder
		tq.WriteString("INSERT INTO tracked_txs (tx_hash, chain, workflow_id, notify_seen) VALUES ")
		sq.WriteString("INSERT INTO signed_txs (workflow_id, step, attempt, chain, from_address, to_address, nonce, tx_hash, raw, max_fee_wei, tip_wei, state) VALUES ")
		var targs, sargs []any
		for i, r := range part {
			if i > 0 {
				tq.WriteByte(',')
				sq.WriteByte(',')
			}
			tq.WriteString("(?,?,?,FALSE)")
			targs = append(targs, r.Hash.Hex(), chainName, r.WorkflowID)
			sq.WriteString("(?,'send',0,?,?,?,?,?,x'00',0,0,'sent')")
			sargs = append(sargs, r.WorkflowID, chainName, Lower(r.From), Lower(r.From), r.Nonce, r.Hash.Hex())
		}
		if _, err := db.ExecContext(ctx, sq.String(), sargs...); err != nil {
			return fmt.Errorf("storing in-flight transfers: %w", err)
		}
		if _, err := db.ExecContext(ctx, tq.String(), targs...); err != nil {
			return fmt.Errorf("tracking in-flight transfers: %w", err)
		}
	}
	return nil
}

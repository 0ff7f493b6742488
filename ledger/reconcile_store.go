package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/sqlrows"
)

// Reconciliation store errors.
var (
	// ErrReconConflict: a result for the same (run, chain, address, symbol)
	// is already recorded with other figures. The stored one is kept.
	ErrReconConflict = errors.New("reconciliation already recorded with other figures")
	// ErrBadRecon: a result that cannot be recorded as given.
	ErrBadRecon = errors.New("invalid reconciliation")
)

// ReconStatus is the outcome of reconciling one wallet and asset.
type ReconStatus string

// Reconciliation outcomes.
const (
	ReconMatched  ReconStatus = "matched"
	ReconMismatch ReconStatus = "mismatch"
)

// Unmatched sides: where a transfer was seen.
const (
	SideChainOnly  = "chain_only"  // on chain, not in the journal
	SideLedgerOnly = "ledger_only" // in the journal, not on chain
)

// UnmatchedTransfer is a transfer found on one side of a reconciliation only.
type UnmatchedTransfer struct {
	Side        string          `json:"side"` // SideChainOnly or SideLedgerOnly
	TxHash      string          `json:"tx_hash"`
	LogIndex    uint            `json:"log_index"`
	BlockNumber uint64          `json:"block_number,omitempty"`
	Amount      decimal.Decimal `json:"amount"` // signed change of the wallet's total
}

// Reconciliation is the result of comparing one wallet's ledger total for one
// symbol with its on-chain balanceOf at a pinned block.
type Reconciliation struct {
	ID          int64  `json:"id"` // set by the store
	RunID       string `json:"run_id"`
	Chain       string `json:"chain"`
	Address     string `json:"address"` // stored lowercase
	Symbol      string `json:"symbol"`
	BlockNumber uint64 `json:"block_number"`
	BlockHash   string `json:"block_hash"` // stored lowercase
	// LedgerTotal is available + held at the time of the comparison.
	LedgerTotal  decimal.Decimal `json:"ledger_total"`
	ChainBalance decimal.Decimal `json:"chain_balance"`
	// Difference is ChainBalance - LedgerTotal: positive when the chain holds
	// more than the ledger knows of. RecordReconciliation computes it; a
	// non-zero value given that disagrees is refused.
	Difference decimal.Decimal     `json:"difference"`
	Status     ReconStatus         `json:"status"`
	Unmatched  []UnmatchedTransfer `json:"unmatched,omitempty"`
	CreatedAt  time.Time           `json:"created_at"` // set by the store
}

// RecordReconciliation stores r, idempotently by (RunID, Chain, Address,
// Symbol): recording the same result again changes nothing and returns nil;
// recording other figures (block, totals, status) under the same key returns
// ErrReconConflict and keeps the first. Status must be matched or mismatch;
// the caller decides it (a tolerance, or in-flight transfers, may make a
// non-zero difference acceptable). Invalid input fails with ErrBadRecon.
func (l *Ledger) RecordReconciliation(ctx context.Context, r Reconciliation) error {
	r.Address, r.BlockHash = norm(r.Address), norm(r.BlockHash)
	if err := checkRecon(&r); err != nil {
		return err
	}
	var unmatched any
	if len(r.Unmatched) > 0 {
		for i := range r.Unmatched {
			r.Unmatched[i].TxHash = norm(r.Unmatched[i].TxHash)
		}
		b, err := json.Marshal(r.Unmatched)
		if err != nil {
			return fmt.Errorf("encoding unmatched transfers: %w", err)
		}
		unmatched = string(b)
	}
	// "id=id" turns a duplicate into a no-op. The read-back below then tells a
	// replay from a conflict; it does not trust the affected-row count, whose
	// meaning on a duplicate depends on the DSN's clientFoundRows.
	_, err := l.db.ExecContext(ctx, `INSERT INTO reconciliations
		(run_id, chain, address, symbol, block_number, block_hash, ledger_total, chain_balance, difference, status, unmatched)
		VALUES (?,?,?,?,?,?,?,?,?,?,?) ON DUPLICATE KEY UPDATE id=id`,
		r.RunID, r.Chain, r.Address, r.Symbol, r.BlockNumber, r.BlockHash,
		r.LedgerTotal, r.ChainBalance, r.Difference, string(r.Status), unmatched)
	if err != nil {
		return fmt.Errorf("recording reconciliation %s of %s %s: %w", r.RunID, r.Address, r.Symbol, err)
	}
	var got Reconciliation
	var status string
	err = l.db.QueryRowContext(ctx, `SELECT block_number, block_hash, ledger_total, chain_balance, status
		FROM reconciliations WHERE run_id=? AND chain=? AND address=? AND symbol=?`,
		r.RunID, r.Chain, r.Address, r.Symbol).Scan(&got.BlockNumber, &got.BlockHash, &got.LedgerTotal, &got.ChainBalance, &status)
	if err != nil {
		return fmt.Errorf("reading recorded reconciliation %s of %s %s: %w", r.RunID, r.Address, r.Symbol, err)
	}
	if got.BlockNumber != r.BlockNumber || got.BlockHash != r.BlockHash || !got.LedgerTotal.Equal(r.LedgerTotal) ||
		!got.ChainBalance.Equal(r.ChainBalance) || ReconStatus(status) != r.Status {
		return fmt.Errorf("recording reconciliation %s of %s %s (stored: block %d, ledger %s, chain %s, %s): %w",
			r.RunID, r.Address, r.Symbol, got.BlockNumber, got.LedgerTotal, got.ChainBalance, status, ErrReconConflict)
	}
	return nil
}

func checkRecon(r *Reconciliation) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrBadRecon, what) }
	switch {
	case r.RunID == "" || len(r.RunID) > 128:
		return bad("run_id must be 1 to 128 characters")
	case r.Chain == "" || r.Address == "" || r.Symbol == "":
		return bad("chain, address and symbol are required")
	case len(r.Address) > 42 || len(r.BlockHash) > 66:
		return bad("address or block_hash too long")
	case r.Status != ReconMatched && r.Status != ReconMismatch:
		return bad(fmt.Sprintf("status %q is neither matched nor mismatch", r.Status))
	}
	// DECIMAL(65,18) would round more digits away and every replay would
	// then look like a conflict.
	if !r.LedgerTotal.Equal(r.LedgerTotal.Truncate(18)) || !r.ChainBalance.Equal(r.ChainBalance.Truncate(18)) {
		return bad("amounts have more than 18 decimal places")
	}
	diff := r.ChainBalance.Sub(r.LedgerTotal)
	if !r.Difference.IsZero() && !r.Difference.Equal(diff) {
		return bad(fmt.Sprintf("difference %s is not chain_balance - ledger_total = %s", r.Difference, diff))
	}
	r.Difference = diff
	for _, u := range r.Unmatched {
		if u.Side != SideChainOnly && u.Side != SideLedgerOnly {
			return bad(fmt.Sprintf("unmatched transfer %s has side %q", u.TxHash, u.Side))
		}
	}
	return nil
}

// ReconQuery selects recorded reconciliations, newest first.
type ReconQuery struct {
	Chain   string      // required
	Address string      // optional; compared lowercase
	Status  ReconStatus // optional
	Limit   int         // 0 means DefaultPageLimit; at most MaxPageLimit
	Cursor  string      // a ReconPage.NextCursor of the same query; empty starts at the newest
}

// ReconPage is one page of reconciliations.
type ReconPage struct {
	// Reconciliations are newest first by (created_at, id); never nil.
	Reconciliations []Reconciliation `json:"reconciliations"`
	// NextCursor continues after the last row; empty when there are no more.
	NextCursor string `json:"next_cursor"`
}

// Reconciliations returns one page of recorded results, newest first, keyset
// paginated on (created_at, id) like History. Bad parameters fail with a
// *QueryError (errors.Is ErrInvalidQuery).
func (l *Ledger) Reconciliations(ctx context.Context, q ReconQuery) (ReconPage, error) {
	limit, err := pageStart(q.Limit, q.Chain)
	if err != nil {
		return ReconPage{}, err
	}
	if q.Status != "" && q.Status != ReconMatched && q.Status != ReconMismatch {
		return ReconPage{}, &QueryError{"status", "must be matched or mismatch"}
	}
	cur, err := decodeCursor(cursorRecon, q.Cursor)
	if err != nil {
		return ReconPage{}, err
	}
	// As in History, the index that delivers the rows in order is forced so
	// that a deep cursor starts the scan at its position. InnoDB appends the
	// primary key to each index, which makes them (..., created_at, id).
	index, where := "ix_recon_chain_time", "chain=?"
	args := []any{q.Chain}
	if q.Status != "" {
		index, where = "ix_recon_status_time", where+" AND status=?"
		args = append(args, string(q.Status))
	}
	if q.Address != "" {
		index, where = "ix_recon_wallet_time", where+" AND address=?"
		args = append(args, norm(q.Address))
	}
	query, args := pageSQL(`SELECT id, run_id, chain, address, symbol, block_number, block_hash, ledger_total, chain_balance,
		difference, status, unmatched, created_at FROM reconciliations FORCE INDEX (`+index+`) WHERE `+where, args,
		time.Time{}, time.Time{}, cur, q.Cursor != "", limit)
	recs, err := sqlrows.Collect(ctx, l.db, scanReconciliation, query, args...)
	if err != nil {
		return ReconPage{}, fmt.Errorf("reading reconciliations: %w", err)
	}
	var page ReconPage
	page.Reconciliations, page.NextCursor = pageOf(recs, limit, cursorRecon,
		func(r Reconciliation) keyset { return keyset{r.CreatedAt, r.ID} })
	return page, nil
}

func scanReconciliation(rows sqlrows.Scanner) (Reconciliation, error) {
	var r Reconciliation
	var status string
	var unmatched sql.NullString
	if err := rows.Scan(&r.ID, &r.RunID, &r.Chain, &r.Address, &r.Symbol, &r.BlockNumber, &r.BlockHash,
		&r.LedgerTotal, &r.ChainBalance, &r.Difference, &status, &unmatched, &r.CreatedAt); err != nil {
		return r, err
	}
	r.Status = ReconStatus(status)
	if unmatched.Valid && unmatched.String != "" {
		if err := json.Unmarshal([]byte(unmatched.String), &r.Unmatched); err != nil {
			return r, fmt.Errorf("decoding unmatched transfers of reconciliation %d: %w", r.ID, err)
		}
	}
	return r, nil
}

// Mismatches counts chain's recorded mismatches: those of its latest run
// (the run of the newest row; 0 without any) and those of all runs. Rows
// are never deleted and a run records a pair once, so total only grows.
func (l *Ledger) Mismatches(ctx context.Context, chain string) (latest, total int64, err error) {
	err = l.db.QueryRowContext(ctx, `SELECT
			(SELECT COUNT(*) FROM reconciliations WHERE chain = ? AND status = 'mismatch' AND run_id = (
				SELECT run_id FROM reconciliations WHERE chain = ? ORDER BY created_at DESC, id DESC LIMIT 1)),
			(SELECT COUNT(*) FROM reconciliations WHERE chain = ? AND status = 'mismatch')`,
		chain, chain, chain).Scan(&latest, &total)
	if err != nil {
		return 0, 0, fmt.Errorf("counting reconciliation mismatches: %w", err)
	}
	return latest, total, nil
}

// Credited reports whether the on-chain transfer (chain, txHash, logIndex)
// was ever credited, whether or not it was reversed since: a credited
// deposit is never announced again, even if mined again later.
func (l *Ledger) Credited(ctx context.Context, chain, txHash string, logIndex uint) (bool, error) {
	var n int
	err := l.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM journal WHERE idem_key=?", CreditKey(chain, txHash, logIndex)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("looking up the credit of %s/%d: %w", norm(txHash), logIndex, err)
	}
	return n > 0, nil
}

// CreditRecord is a deposit credit of the journal, with whether it has been
// reversed since.
type CreditRecord struct {
	JournalID int64
	Chain     string
	Address   string
	Symbol    string
	Amount    decimal.Decimal
	TxHash    string
	LogIndex  uint
	Reference string
	CreatedAt time.Time
	Reversed  bool
	// ReversedBy is the reversal's reference (e.g. a reconciliation run id).
	ReversedBy string
}

// RecentCredits returns up to limit credits of chain posted within the last
// window (by the database's clock), oldest first, after journal id afterID
// (0 starts at the oldest): a keyset page. Reversed credits are included,
// marked Reversed, with the reversal's reference.
func (l *Ledger) RecentCredits(ctx context.Context, chain string, window time.Duration, afterID int64, limit int) ([]CreditRecord, error) {
	if limit <= 0 || limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	secs := int64(window / time.Microsecond)
	credits, err := sqlrows.Collect(ctx, l.db, scanCredit, `SELECT c.id, c.chain, c.address, c.symbol, c.amount, c.tx_hash, c.log_index,
		c.reference, c.created_at, r.id IS NOT NULL, COALESCE(r.reference, '')
		FROM journal c FORCE INDEX (ix_journal_op_time)
		LEFT JOIN journal r ON r.tx_hash=c.tx_hash AND r.op='reverse' AND r.chain=c.chain AND r.log_index=c.log_index
		WHERE c.chain=? AND c.op='credit' AND c.created_at >= NOW(6) - INTERVAL ? MICROSECOND AND c.id > ?
		ORDER BY c.id LIMIT ?`, chain, secs, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("listing recent credits: %w", err)
	}
	return credits, nil
}

func scanCredit(rows sqlrows.Scanner) (c CreditRecord, err error) {
	var tx sql.NullString
	var li sql.NullInt64
	err = rows.Scan(&c.JournalID, &c.Chain, &c.Address, &c.Symbol, &c.Amount, &tx, &li, &c.Reference,
		&c.CreatedAt, &c.Reversed, &c.ReversedBy)
	c.TxHash, c.LogIndex = tx.String, uint(li.Int64)
	return c, err
}

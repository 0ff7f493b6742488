// Package holds records the deposits screening froze: a deposit from a
// sender on the deny list is credited held (ledger.CreditHeld), and a row
// here says why and what became of it. The money is the ledger's: its
// reservation ledger.HoldKey(chain, tx, log) holds it until an operator
// releases it or returns it to its sender. Package holds owns the
// risk_holds table.
package holds

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/sqlrows"
	"payflow/ledger"
)

// States of a hold.
const (
	StateHeld      = "held"      // frozen: nothing moves it
	StateReleased  = "released"  // an operator released it: available, swept like any deposit
	StateReturning = "returning" // a return to the sender is under way
	StateReturned  = "returned"  // paid back to the sender
)

var (
	// ErrNotFound: no deposit of that chain, tx and log is held.
	ErrNotFound = errors.New("no held deposit of that chain, tx_hash and log_index")
	// ErrState: the hold is not in a state the change applies to.
	ErrState = errors.New("the deposit is not in a state that allows this")
)

// Hold is one deposit screening froze.
type Hold struct {
	Chain    string          `json:"chain"`
	TxHash   string          `json:"tx_hash"`
	LogIndex uint            `json:"log_index"`
	Address  string          `json:"address"` // the deposit wallet
	Symbol   string          `json:"symbol"`
	Amount   decimal.Decimal `json:"amount"`
	Sender   string          `json:"sender"`
	// Risk is what the deposit's notices said ("sender 0x… is on the deny
	// list (OFAC-SDN)").
	Risk             string    `json:"risk"`
	State            string    `json:"state"`
	ReturnWorkflowID string    `json:"return_workflow_id,omitempty"`
	ReturnTxHash     string    `json:"return_tx_hash,omitempty"`
	HeldAt           time.Time `json:"held_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// Key is the ledger reservation that holds the deposit's money.
func (h Hold) Key() string { return ledger.HoldKey(h.Chain, h.TxHash, h.LogIndex) }

// Store reads and writes risk_holds.
type Store struct{ db *sql.DB }

// New returns the store on db (migrated: see ledger.Migrate).
func New(db *sql.DB) *Store { return &Store{db: db} }

// Record stores h as held. Idempotent: a deposit recorded before keeps its
// first row.
func (s *Store) Record(ctx context.Context, h Hold) error {
	if _, err := s.db.ExecContext(ctx, `INSERT IGNORE INTO risk_holds
		(chain, tx_hash, log_index, address, symbol, amount, sender, risk) VALUES (?,?,?,?,?,?,?,?)`,
		h.Chain, norm(h.TxHash), h.LogIndex, norm(h.Address), h.Symbol, h.Amount, norm(h.Sender), clip(h.Risk, 1024)); err != nil {
		return fmt.Errorf("recording the hold of %s/%d: %w", h.TxHash, h.LogIndex, err)
	}
	return nil
}

const columns = `chain, tx_hash, log_index, address, symbol, amount, sender, risk, state,
	COALESCE(return_workflow_id, ''), COALESCE(return_tx_hash, ''), held_at, updated_at`

func scan(r sqlrows.Scanner) (h Hold, err error) {
	return h, r.Scan(&h.Chain, &h.TxHash, &h.LogIndex, &h.Address, &h.Symbol, &h.Amount, &h.Sender, &h.Risk, &h.State,
		&h.ReturnWorkflowID, &h.ReturnTxHash, &h.HeldAt, &h.UpdatedAt)
}

// Get reads the hold of a deposit (ErrNotFound when none).
func (s *Store) Get(ctx context.Context, chain, txHash string, logIndex uint) (Hold, error) {
	h, err := scan(s.db.QueryRowContext(ctx, "SELECT "+columns+" FROM risk_holds WHERE chain=? AND tx_hash=? AND log_index=?",
		chain, norm(txHash), logIndex))
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, fmt.Errorf("%s %s/%d: %w", chain, txHash, logIndex, ErrNotFound)
	}
	if err != nil {
		return Hold{}, fmt.Errorf("reading the hold of %s/%d: %w", txHash, logIndex, err)
	}
	return h, nil
}

// List returns the holds in any of states (none: every hold), oldest first.
func (s *Store) List(ctx context.Context, states ...string) ([]Hold, error) {
	q, args := "SELECT "+columns+" FROM risk_holds", []any{}
	if len(states) > 0 {
		q += " WHERE state IN (" + strings.TrimSuffix(strings.Repeat("?,", len(states)), ",") + ")"
		for _, st := range states {
			args = append(args, st)
		}
	}
	out, err := sqlrows.Collect(ctx, s.db, scan, q+" ORDER BY held_at, chain, tx_hash, log_index", args...)
	if err != nil {
		return nil, fmt.Errorf("listing held deposits: %w", err)
	}
	return out, nil
}

// Total is the deposits frozen (held or returning) of one asset.
type Total struct {
	Chain, Symbol string
	Count         int64
	Amount        decimal.Decimal
}

// Totals sums the deposits still frozen, by chain and symbol.
func (s *Store) Totals(ctx context.Context) ([]Total, error) {
	out, err := sqlrows.Collect(ctx, s.db, func(r sqlrows.Scanner) (t Total, err error) {
		return t, r.Scan(&t.Chain, &t.Symbol, &t.Count, &t.Amount)
	}, "SELECT chain, symbol, COUNT(*), SUM(amount) FROM risk_holds WHERE state IN ('held','returning') GROUP BY chain, symbol ORDER BY chain, symbol")
	if err != nil {
		return nil, fmt.Errorf("summing held deposits: %w", err)
	}
	return out, nil
}

// Move returns a ledger.Also that moves the hold of a deposit from one of
// from to state to, with returnWorkflowID and returnTx when set, inside the
// ledger's transaction that moves its money (ledger.Close): the row and
// the reservation never disagree. A hold in to already is a replay and
// changes nothing; one in another state fails with ErrState.
func Move(chain, txHash string, logIndex uint, from []string, to, returnWorkflowID, returnTx string) ledger.Also {
	return func(ctx context.Context, tx *sql.Tx) error {
		return move(ctx, tx, chain, txHash, logIndex, from, to, returnWorkflowID, returnTx)
	}
}

// Mark moves the hold as Move does, in a transaction of its own: for the
// changes that move no money (a return starting, or failing and held
// again).
func (s *Store) Mark(ctx context.Context, chain, txHash string, logIndex uint, from []string, to, returnWorkflowID string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := move(ctx, tx, chain, txHash, logIndex, from, to, returnWorkflowID, ""); err != nil {
		return err
	}
	return tx.Commit()
}

func move(ctx context.Context, tx *sql.Tx, chain, txHash string, logIndex uint, from []string, to, returnWorkflowID,
	returnTx string) error {
	var state, wf string
	err := tx.QueryRowContext(ctx, "SELECT state, COALESCE(return_workflow_id,'') FROM risk_holds WHERE chain=? AND tx_hash=? AND log_index=? FOR UPDATE",
		chain, norm(txHash), logIndex).Scan(&state, &wf)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %s/%d: %w", chain, txHash, logIndex, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reading the hold of %s/%d: %w", txHash, logIndex, err)
	}
	if state == to && (returnWorkflowID == "" || returnWorkflowID == wf) {
		return nil
	}
	ok := false
	for _, f := range from {
		ok = ok || f == state
	}
	if !ok {
		return fmt.Errorf("%s %s/%d is %s: %w", chain, txHash, logIndex, state, ErrState)
	}
	q, args := "UPDATE risk_holds SET state=?", []any{to}
	if returnWorkflowID != "" {
		q, args = q+", return_workflow_id=?", append(args, returnWorkflowID)
	}
	if returnTx != "" {
		q, args = q+", return_tx_hash=?", append(args, norm(returnTx))
	}
	q += " WHERE chain=? AND tx_hash=? AND log_index=?"
	if _, err := tx.ExecContext(ctx, q, append(args, chain, norm(txHash), logIndex)...); err != nil {
		return fmt.Errorf("marking the hold of %s/%d %s: %w", txHash, logIndex, to, err)
	}
	return nil
}

func norm(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

package btc

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/wire"

	"payflow/chain"
)

// SignedTx is one signed attempt of a payment step, as stored before
// anything is sent.
type SignedTx struct {
	WorkflowID, Step string
	Attempt          int // the original is 0
	TxID             string
	// Raw is the transaction's serialisation (with witnesses), sent as is.
	Raw []byte
	// FeeRate (satoshis per virtual byte) and Fee (satoshis) it pays.
	FeeRate, Fee int64
	// State is "signed" until a node has accepted it, then "sent".
	State string
	// From and VSize: the paying wallet and the transaction's virtual size,
	// from the attempt's plan (empty and 0 for an attempt stored without
	// one).
	From  string
	VSize int
}

// Tx decodes the stored transaction.
func (s SignedTx) Tx() (*wire.MsgTx, error) {
	tx := new(wire.MsgTx)
	if err := tx.Deserialize(bytes.NewReader(s.Raw)); err != nil {
		return nil, fmt.Errorf("decoding stored transaction %s: %w", s.TxID, err)
	}
	return tx, nil
}

// SignedTxs is a chain's signed payment transactions, in the btc_signed
// table: the only SQL on it.
type SignedTxs struct {
	db    *sql.DB
	chain string
}

// NewSignedTxs returns chain's signed transactions.
func NewSignedTxs(db *sql.DB, chain string) *SignedTxs { return &SignedTxs{db: db, chain: chain} }

// Store stores attempt s.Attempt of the step, signed, and returns what is
// stored: the first stored for that attempt wins, so a retry that signed
// again (its signature differs) gets the stored transaction back and sends
// those bytes, never a second transaction.
func (t *SignedTxs) Store(ctx context.Context, tx *wire.MsgTx, s SignedTx) (SignedTx, error) {
	var buf bytes.Buffer
	if err := tx.Serialize(&buf); err != nil {
		return SignedTx{}, err
	}
	s.Raw, s.TxID = buf.Bytes(), tx.TxHash().String()
	_, err := t.db.ExecContext(ctx, `INSERT IGNORE INTO btc_signed (chain, workflow_id, step, attempt, txid, raw, fee_rate, fee)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, t.chain, s.WorkflowID, s.Step, s.Attempt, s.TxID, s.Raw, s.FeeRate, s.Fee)
	if err != nil {
		return SignedTx{}, fmt.Errorf("storing attempt %d of %s/%s: %w", s.Attempt, s.WorkflowID, s.Step, err)
	}
	return t.attempt(ctx, s.WorkflowID, s.Step, s.Attempt)
}

const signedColumns = "s.workflow_id, s.step, s.attempt, s.txid, s.raw, s.fee_rate, s.fee, s.state, COALESCE(p.from_address, ''), COALESCE(p.vsize, 0)"

// signedFrom joins each attempt to its plan.
const signedFrom = ` FROM btc_signed s LEFT JOIN btc_plans p
	ON p.chain = s.chain AND p.workflow_id = s.workflow_id AND p.step = s.step AND p.attempt = s.attempt`

func scanSigned(row interface{ Scan(...any) error }) (SignedTx, error) {
	var s SignedTx
	err := row.Scan(&s.WorkflowID, &s.Step, &s.Attempt, &s.TxID, &s.Raw, &s.FeeRate, &s.Fee, &s.State, &s.From, &s.VSize)
	return s, err
}

func (t *SignedTxs) attempt(ctx context.Context, workflowID, step string, attempt int) (SignedTx, error) {
	s, err := scanSigned(t.db.QueryRowContext(ctx, "SELECT "+signedColumns+signedFrom+`
		WHERE s.chain = ? AND s.workflow_id = ? AND s.step = ? AND s.attempt = ?`, t.chain, workflowID, step, attempt))
	if errors.Is(err, sql.ErrNoRows) {
		return SignedTx{}, fmt.Errorf("attempt %d of %s/%s: %w", attempt, workflowID, step, chain.ErrNotSigned)
	}
	return s, err
}

// Attempts returns every stored attempt of the step, the original first;
// none is chain.ErrNotSigned.
func (t *SignedTxs) Attempts(ctx context.Context, workflowID, step string) ([]SignedTx, error) {
	out, err := querySigned(ctx, t.db, "SELECT "+signedColumns+signedFrom+`
		WHERE s.chain = ? AND s.workflow_id = ? AND s.step = ? ORDER BY s.attempt`, t.chain, workflowID, step)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s/%s: %w", workflowID, step, chain.ErrNotSigned)
	}
	return out, nil
}

// MarkSent records that a node accepted txid.
func (t *SignedTxs) MarkSent(ctx context.Context, txid string) error {
	_, err := t.db.ExecContext(ctx, "UPDATE btc_signed SET state = 'sent' WHERE chain = ? AND txid = ?", t.chain, txid)
	if err != nil {
		return fmt.Errorf("marking %s sent: %w", txid, err)
	}
	return nil
}

// ByTxID returns the stored attempt whose transaction is txid, or
// chain.ErrNotSigned.
func (t *SignedTxs) ByTxID(ctx context.Context, txid string) (SignedTx, error) {
	s, err := scanSigned(t.db.QueryRowContext(ctx, "SELECT "+signedColumns+signedFrom+" WHERE s.chain = ? AND s.txid = ?",
		t.chain, txid))
	if errors.Is(err, sql.ErrNoRows) {
		return SignedTx{}, fmt.Errorf("transaction %s: %w", txid, chain.ErrNotSigned)
	}
	return s, err
}

// Latest returns, for each step with an attempt stored since since, its
// latest attempt, the oldest step first (a payment that spends another's
// change comes after it).
func (t *SignedTxs) Latest(ctx context.Context, since time.Time) ([]SignedTx, error) {
	return querySigned(ctx, t.db, "SELECT "+signedColumns+signedFrom+`
		JOIN (SELECT workflow_id, step, MAX(attempt) AS attempt, MIN(created_at) AS began FROM btc_signed
		      WHERE chain = ? AND created_at >= ? GROUP BY workflow_id, step) l
		  ON l.workflow_id = s.workflow_id AND l.step = s.step AND l.attempt = s.attempt
		WHERE s.chain = ? ORDER BY l.began, s.workflow_id, s.step`, t.chain, since.UTC(), t.chain)
}

// querySigned runs a query of signedColumns and scans every row.
func querySigned(ctx context.Context, q querier, query string, args ...any) ([]SignedTx, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SignedTx
	for rows.Next() {
		s, err := scanSigned(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

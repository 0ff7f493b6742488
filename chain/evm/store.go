package evm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"

	"payflow/internal/sqlerr"
	"payflow/internal/sqlrows"

	"payflow/chain"
)

// SignedTx is a stored signed transaction.
type SignedTx struct {
	WorkflowID string
	Step       string
	Attempt    int
	From       common.Address
	Nonce      uint64
	Hash       common.Hash
	Raw        []byte
	// State is the row's state when read: signed (never accepted by a
	// node), sent, mined or failed.
	State string
	// Replayed is true when the transaction was already stored: nothing was signed.
	Replayed bool
	// Mined is true when Replace or Send found this attempt already in a
	// block: nothing was signed, and no other attempt of the step can mine.
	Mined bool
}

// NonceHolder is the latest stored attempt on one nonce of a wallet, as the
// healer needs it.
type NonceHolder struct {
	WorkflowID string
	Step       string
	// State is the attempt's: signed, sent, mined or failed; or, when no
	// attempt is stored on the nonce, its signing intent's: "intent" (the
	// signer is still to answer it) or "refused".
	State   string
	Attempt int
	// Filler is true for a 0-value self-transfer the healer signed to cancel
	// an abandoned transaction on this nonce.
	Filler bool
	Age    time.Duration // since it was stored
	Raw    []byte
}

// gapFillerAttempt numbers a gap filler's row in signed_txs: far above any
// fee-bump attempt, so (chain, from, nonce, attempt) stays unique.
const gapFillerAttempt = 1000

// GapFiller is the key a gap filler of from's nonce is stored under (and
// signed as): workflow "nonce-gap-<from>", step "nonce-<nonce>", attempt
// 1000. The key is the same on every chain (an address has every nonce on
// every chain): the store's chain tells them apart.
func GapFiller(from common.Address, nonce uint64) (workflowID, step string, attempt int) {
	return "nonce-gap-" + Lower(from), fmt.Sprintf("nonce-%d", nonce), gapFillerAttempt
}

// TxStore is one chain's rows of the signed_txs table: every signed attempt
// of every step, stored before it is sent and keyed by (chain, workflow id,
// step, attempt) so that a step is signed once per attempt number whatever
// retries. Every statement filters on the store's chain: one address has the
// same nonces, and payflow names its gap fillers the same, on every chain.
// Every statement on signed_txs, and on the signing intents that take
// their nonces before the signer is asked (intents.go), is here.
type TxStore struct{ chainTable }

// NewTxStore wires a TxStore for one chain (its protocol name, e.g. "ETH").
func NewTxStore(chainName string, db *sql.DB) (*TxStore, error) {
	return newChainTable[TxStore]("tx store", chainName, db)
}

// Stored returns the latest stored attempt of a step, or ErrNotSigned.
func (s *TxStore) Stored(ctx context.Context, workflowID, step string) (SignedTx, error) {
	stx, err := scanSigned(s.db.QueryRowContext(ctx, `SELECT `+signedColumns+` FROM signed_txs
		WHERE chain=? AND workflow_id=? AND step=? ORDER BY attempt DESC LIMIT 1`, s.chain, workflowID, step))
	if errors.Is(err, sql.ErrNoRows) {
		return SignedTx{}, fmt.Errorf("%s/%s: %w", workflowID, step, chain.ErrNotSigned)
	}
	if err != nil {
		return SignedTx{}, fmt.Errorf("reading signed transfer %s/%s: %w", workflowID, step, err)
	}
	return stx, nil
}

// Attempts returns every stored attempt of a step, the original first, so
// the caller can follow all of their hashes: until one is mined, any may be.
// With none stored it returns ErrNotSigned.
func (s *TxStore) Attempts(ctx context.Context, workflowID, step string) ([]SignedTx, error) {
	out, err := sqlrows.Collect(ctx, s.db, scanSigned, `SELECT `+signedColumns+` FROM signed_txs
		WHERE chain=? AND workflow_id=? AND step=? ORDER BY attempt`, s.chain, workflowID, step)
	if err != nil {
		return nil, fmt.Errorf("listing attempts of %s/%s: %w", workflowID, step, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s/%s: %w", workflowID, step, chain.ErrNotSigned)
	}
	return out, nil
}

// Insert stores signed, from's transaction, as attempt number attempt of a
// step, in state 'signed', within tx (nil: on its own). Recipient, nonce and
// fees are read from signed. When that (workflow id, step, attempt), that
// hash or that (from, nonce, attempt) is already stored on the store's chain
// it fails with ErrAttemptExists and stores nothing.
func (s *TxStore) Insert(ctx context.Context, tx *sql.Tx, workflowID, step string, attempt int, from common.Address,
	signed *types.Transaction) (SignedTx, error) {
	raw, err := signed.MarshalBinary()
	if err != nil {
		return SignedTx{}, err
	}
	var exec interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	} = s.db
	if tx != nil {
		exec = tx
	}
	_, err = exec.ExecContext(ctx, `INSERT INTO signed_txs
		(workflow_id, step, attempt, chain, from_address, to_address, nonce, tx_hash, raw, max_fee_wei, tip_wei)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		workflowID, step, attempt, s.chain, Lower(from), Lower(*signed.To()), signed.Nonce(), signed.Hash().Hex(), raw,
		decimal.NewFromBigInt(signed.GasFeeCap(), 0), decimal.NewFromBigInt(signed.GasTipCap(), 0))
	if sqlerr.IsDuplicateKey(err) {
		return SignedTx{}, fmt.Errorf("%s/%s attempt %d: %w", workflowID, step, attempt, ErrAttemptExists)
	}
	if err != nil {
		return SignedTx{}, fmt.Errorf("storing %s/%s attempt %d: %w", workflowID, step, attempt, err)
	}
	return SignedTx{WorkflowID: workflowID, Step: step, Attempt: attempt, From: from, Nonce: signed.Nonce(),
		Hash: signed.Hash(), Raw: raw, State: "signed"}, nil
}

// MarkSent records that hash reached a node. Only a 'signed' row moves: a
// row already sent, mined or failed is left as it is.
func (s *TxStore) MarkSent(ctx context.Context, hash common.Hash) error {
	if _, err := s.db.ExecContext(ctx, "UPDATE signed_txs SET state='sent' WHERE chain=? AND tx_hash=? AND state='signed'",
		s.chain, hash.Hex()); err != nil {
		return fmt.Errorf("marking %s sent: %w", hash.Hex(), err)
	}
	return nil
}

// MarkSentMany is MarkSent for many hashes in one statement.
func (s *TxStore) MarkSentMany(ctx context.Context, hashes []common.Hash) error {
	if len(hashes) == 0 {
		return nil
	}
	hexes := make([]string, len(hashes))
	for i, h := range hashes {
		hexes[i] = h.Hex()
	}
	slices.Sort(hexes)
	args := make([]any, 0, 1+len(hexes))
	args = append(args, s.chain)
	for _, h := range hexes {
		args = append(args, h)
	}
	// The hash index, forced: on a small table the optimizer scans the
	// primary key instead, and that scan waits for the rows an open batch
	// of signatures has inserted while its next-key locks block that
	// batch's next insert — a deadlock per send batch under load
	// (TestMarkSentManyDoesNotWaitForABatchBeingSigned). Through the unique
	// index it locks the named rows only, all committed before being sent.
	q := "UPDATE signed_txs FORCE INDEX (uq_signed_hash) SET state='sent' WHERE chain=? AND state='signed' AND tx_hash IN (?" +
		strings.Repeat(",?", len(hashes)-1) + ")"
	var err error
	// A deadlock left (with a statement moving the same rows' state index
	// entries) rolls back this statement only: it is idempotent, run it again.
	for range 5 {
		if _, err = s.db.ExecContext(ctx, q, args...); !sqlerr.IsDeadlock(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("marking %d transactions sent: %w", len(hashes), err)
	}
	return nil
}

// AtNonce returns the latest attempt stored on from's nonce; with none, the
// signing intent that holds the nonce (State "intent", or "refused" when the
// signer refused it; no Raw); ErrNotSigned when payflow holds nothing on it.
func (s *TxStore) AtNonce(ctx context.Context, from common.Address, nonce uint64) (NonceHolder, error) {
	var h NonceHolder
	var age float64
	err := s.db.QueryRowContext(ctx, `SELECT workflow_id, step, state, attempt, raw,
		TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6))/1e6
		FROM signed_txs WHERE chain=? AND from_address=? AND nonce=? ORDER BY attempt DESC LIMIT 1`,
		s.chain, Lower(from), nonce).Scan(&h.WorkflowID, &h.Step, &h.State, &h.Attempt, &h.Raw, &age)
	if errors.Is(err, sql.ErrNoRows) {
		err = s.db.QueryRowContext(ctx, `SELECT workflow_id, step, IF(state='refused', 'refused', 'intent'),
			TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6))/1e6
			FROM sign_intents WHERE chain=? AND from_address=? AND nonce=?`,
			s.chain, Lower(from), nonce).Scan(&h.WorkflowID, &h.Step, &h.State, &age)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return NonceHolder{}, fmt.Errorf("nonce %d of %s: %w", nonce, Lower(from), chain.ErrNotSigned)
	}
	if err != nil {
		return NonceHolder{}, fmt.Errorf("reading nonce %d of %s: %w", nonce, Lower(from), err)
	}
	h.Age, h.Filler = time.Duration(age*float64(time.Second)), h.Attempt >= gapFillerAttempt
	return h, nil
}

// Cancel stores filler, a transaction signed on the nonce of a step that
// was signed and never sent (or only intended: nothing signed stored), marks
// every attempt of that step on that nonce failed and its intent filled, in
// one database transaction. It returns the stored filler (one already stored
// for that nonce, if any: cancelling twice stores one filler).
func (s *TxStore) Cancel(ctx context.Context, workflowID, step string, from common.Address, filler *types.Transaction) (SignedTx, error) {
	fillWF, fillStep, attempt := GapFiller(from, filler.Nonce())
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return SignedTx{}, fmt.Errorf("cancelling %s/%s: %w", workflowID, step, err)
	}
	defer tx.Rollback()
	if _, err := s.Insert(ctx, tx, fillWF, fillStep, attempt, from, filler); err != nil && !errors.Is(err, ErrAttemptExists) {
		return SignedTx{}, fmt.Errorf("storing gap filler: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE signed_txs SET state='failed'
		WHERE chain=? AND workflow_id=? AND step=? AND from_address=? AND nonce=?`,
		s.chain, workflowID, step, Lower(from), filler.Nonce()); err != nil {
		return SignedTx{}, fmt.Errorf("marking %s/%s failed: %w", workflowID, step, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sign_intents SET state='filled'
		WHERE chain=? AND workflow_id=? AND step=? AND from_address=? AND nonce=?`,
		s.chain, workflowID, step, Lower(from), filler.Nonce()); err != nil {
		return SignedTx{}, fmt.Errorf("marking the intent of %s/%s filled: %w", workflowID, step, err)
	}
	if err := tx.Commit(); err != nil {
		return SignedTx{}, fmt.Errorf("cancelling %s/%s: %w", workflowID, step, err)
	}
	return s.Stored(ctx, fillWF, fillStep)
}

// signedColumns are the signed_txs columns scanSigned reads, in order.
const signedColumns = "workflow_id, step, attempt, from_address, nonce, tx_hash, raw, state"

func scanSigned(row interface{ Scan(...any) error }) (SignedTx, error) {
	var s SignedTx
	var from, hash string
	if err := row.Scan(&s.WorkflowID, &s.Step, &s.Attempt, &from, &s.Nonce, &hash, &s.Raw, &s.State); err != nil {
		return SignedTx{}, err
	}
	s.From, s.Hash = common.HexToAddress(from), common.HexToHash(hash)
	return s, nil
}

// NoncesStored reports, in tx, whether a transaction or a signing intent
// of from holds nonce, and the nonce after the largest either holds.
func (s *TxStore) NoncesStored(ctx context.Context, tx *sql.Tx, from common.Address, nonce uint64) (held bool, next uint64, err error) {
	addr := Lower(from)
	err = tx.QueryRowContext(ctx, `SELECT
			EXISTS(SELECT 1 FROM signed_txs WHERE chain=? AND from_address=? AND nonce=?)
				OR EXISTS(SELECT 1 FROM sign_intents WHERE chain=? AND from_address=? AND nonce=?),
			GREATEST((SELECT COALESCE(MAX(nonce)+1, 0) FROM signed_txs WHERE chain=? AND from_address=?),
				(SELECT COALESCE(MAX(nonce)+1, 0) FROM sign_intents WHERE chain=? AND from_address=?))`,
		s.chain, addr, nonce, s.chain, addr, nonce, s.chain, addr, s.chain, addr).Scan(&held, &next)
	return held, next, err
}

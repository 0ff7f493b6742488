package signer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"payflow/custody/signerapi"
	"payflow/internal/sqlerr"
	"payflow/internal/sqlrows"
)

// store is the SQL of the signer's tables: the one place that names them.
type store struct{ db *sql.DB }

// signedStep is one row of signer_steps.
type signedStep struct {
	step
	Tx     unsignedTx
	TxHash string
	Raw    []byte
}

const stepColumns = "chain, workflow_id, step, attempt, reservation_key, chain_id, from_address, nonce, to_address, value_wei, data, gas, tip_cap_wei, fee_cap_wei, tx_hash, raw"

func scanStep(row sqlrows.Scanner) (s signedStep, err error) {
	var from, to, value, tip, fee string
	if err := row.Scan(&s.Chain, &s.WorkflowID, &s.Step, &s.Attempt, &s.Reservation, &s.Tx.ChainID, &from, &s.Tx.Nonce, &to,
		&value, &s.Tx.Data, &s.Tx.Gas, &tip, &fee, &s.TxHash, &s.Raw); err != nil {
		return s, err
	}
	s.Tx.From, s.Tx.To = common.HexToAddress(from), common.HexToAddress(to)
	var ok [3]bool
	s.Tx.Value, ok[0] = new(big.Int).SetString(value, 10)
	s.Tx.TipCap, ok[1] = new(big.Int).SetString(tip, 10)
	s.Tx.FeeCap, ok[2] = new(big.Int).SetString(fee, 10)
	if !ok[0] || !ok[1] || !ok[2] {
		return s, fmt.Errorf("%s: stored amounts do not read as wei", s.step)
	}
	return s, nil
}

// step reads a signed attempt; ok is false when it was never signed.
func (st *store) step(ctx context.Context, chain, workflowID, stepName string, attempt int) (signedStep, bool, error) {
	s, err := scanStep(st.db.QueryRowContext(ctx, "SELECT "+stepColumns+
		" FROM signer_steps WHERE chain=? AND workflow_id=? AND step=? AND attempt=?", chain, workflowID, stepName, attempt))
	if errors.Is(err, sql.ErrNoRows) {
		return signedStep{}, false, nil
	}
	if err != nil {
		return signedStep{}, false, fmt.Errorf("reading step %s attempt %d of workflow %s: %w", stepName, attempt, workflowID, err)
	}
	return s, true, nil
}

// paidBy reads the first attempt that paid with reservation on chain.
func (st *store) paidBy(ctx context.Context, chain, reservation string) (signedStep, bool, error) {
	s, err := scanStep(st.db.QueryRowContext(ctx, "SELECT "+stepColumns+" FROM signer_steps WHERE chain=? AND res0=?", chain, reservation))
	if errors.Is(err, sql.ErrNoRows) {
		return signedStep{}, false, nil
	}
	if err != nil {
		return signedStep{}, false, fmt.Errorf("reading the step paid by reservation %s: %w", reservation, err)
	}
	return s, true, nil
}

// errDuplicateStep: the attempt was stored by a concurrent request first.
// errReservationTaken: another step's first attempt holds the reservation.
var (
	errDuplicateStep    = errors.New("the attempt is signed already")
	errReservationTaken = errors.New("the reservation pays for another step")
)

// insertSigned stores a signed attempt and its audit entry in one
// transaction. A concurrent insert of the same attempt fails with
// errDuplicateStep, of the same reservation by another step with
// errReservationTaken; nothing is stored then.
func (st *store) insertSigned(ctx context.Context, s signedStep) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storing %s: %w", s.step, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, "INSERT INTO signer_steps ("+stepColumns+") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
		s.Chain, s.WorkflowID, s.Step, s.Attempt, s.Reservation, s.Tx.ChainID, addr(s.Tx.From), s.Tx.Nonce, addr(s.Tx.To),
		s.Tx.Value.String(), s.Tx.Data, s.Tx.Gas, s.Tx.TipCap.String(), s.Tx.FeeCap.String(), s.TxHash, s.Raw)
	if sqlerr.IsDuplicateKey(err) {
		if strings.Contains(err.Error(), "uq_signer_steps_reservation") {
			return errReservationTaken
		}
		return errDuplicateStep
	}
	if err != nil {
		return fmt.Errorf("storing %s: %w", s.step, err)
	}
	if err := insertAudit(ctx, tx, auditEntry{step: s.step, From: addr(s.Tx.From), TxHash: s.TxHash, Verdict: signerapi.VerdictSigned}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storing %s: %w", s.step, err)
	}
	return nil
}

// auditEntry is one row of signer_audit.
type auditEntry struct {
	step
	From, TxHash, Verdict, Reason string
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertAudit(ctx context.Context, db execer, e auditEntry) error {
	_, err := db.ExecContext(ctx, `INSERT INTO signer_audit (chain, workflow_id, step, attempt, from_address, reservation_key, tx_hash, verdict, reason)
		VALUES (?,?,?,?,?,?,?,?,?)`, asciiCut(e.Chain, maxChain), cut(e.WorkflowID, maxWorkflowID), cut(e.Step, maxStep), e.Attempt,
		asciiCut(e.From, 64), cut(e.Reservation, maxReservation), asciiCut(e.TxHash, 66), e.Verdict, cut(e.Reason, 1024))
	if err != nil {
		return fmt.Errorf("auditing %s (%s): %w", e.step, e.Verdict, err)
	}
	return nil
}

// audit appends one entry on its own.
func (st *store) audit(ctx context.Context, e auditEntry) error { return insertAudit(ctx, st.db, e) }

// cut keeps the first n characters of s (an audit row takes what a refused
// request named, however long; the columns are that wide). Invalid UTF-8 is
// replaced.
func cut(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}

// asciiCut is cut for the ASCII columns: other characters become '?'.
func asciiCut(s string, n int) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, cut(s, n))
}

// lastAudit reads the newest n audit entries, newest first.
func (st *store) lastAudit(ctx context.Context, n int) ([]signerapi.AuditEntry, error) {
	out, err := sqlrows.Collect(ctx, st.db, func(row sqlrows.Scanner) (e signerapi.AuditEntry, err error) {
		err = row.Scan(&e.At, &e.Chain, &e.WorkflowID, &e.Step, &e.Attempt, &e.From, &e.TxHash, &e.Verdict, &e.Reason)
		e.At = e.At.UTC()
		return e, err
	}, "SELECT at, chain, workflow_id, step, attempt, from_address, tx_hash, verdict, reason FROM signer_audit ORDER BY id DESC LIMIT ?", n)
	if err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	return out, nil
}

// keyRow is one row of signer_keys.
type keyRow struct {
	Address  string
	Backend  string
	KMSKeyID string
	Sealed   []byte
	Created  time.Time
}

const keyColumns = "address, backend, COALESCE(kms_key_id, ''), COALESCE(sealed, ''), created_at"

func scanKey(row sqlrows.Scanner) (k keyRow, err error) {
	err = row.Scan(&k.Address, &k.Backend, &k.KMSKeyID, &k.Sealed, &k.Created)
	k.Created = k.Created.UTC()
	return k, err
}

// key reads the key of address; ok is false when the signer has no row.
func (st *store) key(ctx context.Context, address string) (keyRow, bool, error) {
	k, err := scanKey(st.db.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM signer_keys WHERE address=?", address))
	if errors.Is(err, sql.ErrNoRows) {
		return keyRow{}, false, nil
	}
	if err != nil {
		return keyRow{}, false, fmt.Errorf("reading the key of %s: %w", address, err)
	}
	return k, true, nil
}

// insertKey stores a key; an address stored already keeps its row (an
// import run twice) and inserted is false.
func (st *store) insertKey(ctx context.Context, k keyRow) (inserted bool, err error) {
	var kmsKey, sealed any
	if k.KMSKeyID != "" {
		kmsKey = k.KMSKeyID
	}
	if k.Sealed != nil {
		sealed = k.Sealed
	}
	res, err := st.db.ExecContext(ctx, "INSERT IGNORE INTO signer_keys (address, backend, kms_key_id, sealed) VALUES (?,?,?,?)",
		k.Address, k.Backend, kmsKey, sealed)
	if err != nil {
		return false, fmt.Errorf("storing the key of %s: %w", k.Address, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// keys lists every key row, oldest first.
func (st *store) keys(ctx context.Context) ([]keyRow, error) {
	out, err := sqlrows.Collect(ctx, st.db, scanKey, "SELECT "+keyColumns+" FROM signer_keys ORDER BY created_at, address")
	if err != nil {
		return nil, fmt.Errorf("listing the signer's keys: %w", err)
	}
	return out, nil
}

// keyCounts counts the key rows by backend.
func (st *store) keyCounts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := sqlrows.Each(ctx, st.db, func(row sqlrows.Scanner) error {
		var b string
		var n int
		err := row.Scan(&b, &n)
		out[b] = n
		return err
	}, "SELECT backend, COUNT(*) FROM signer_keys GROUP BY backend")
	if err != nil {
		return nil, fmt.Errorf("counting the signer's keys: %w", err)
	}
	return out, nil
}

// state is the row of signer_state.
type state struct {
	EnvelopeKeyID  string
	SealedMnemonic []byte
	AccountXPub    string
}

func (st *store) state(ctx context.Context) (state, bool, error) {
	var s state
	err := st.db.QueryRowContext(ctx, "SELECT envelope_key_id, sealed_mnemonic, account_xpub FROM signer_state WHERE id=1").
		Scan(&s.EnvelopeKeyID, &s.SealedMnemonic, &s.AccountXPub)
	if errors.Is(err, sql.ErrNoRows) {
		return state{}, false, nil
	}
	if err != nil {
		return state{}, false, fmt.Errorf("reading the signer's state: %w", err)
	}
	return s, true, nil
}

// insertState writes the state row unless one exists (two signers starting
// at once on a new database: the first one's stays).
func (st *store) insertState(ctx context.Context, s state) error {
	if _, err := st.db.ExecContext(ctx, "INSERT IGNORE INTO signer_state (id, envelope_key_id, sealed_mnemonic, account_xpub) VALUES (1,?,?,?)",
		s.EnvelopeKeyID, s.SealedMnemonic, s.AccountXPub); err != nil {
		return fmt.Errorf("storing the signer's state: %w", err)
	}
	return nil
}

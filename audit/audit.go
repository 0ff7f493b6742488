// Package audit is the operator audit trail: every action an operator takes
// on money (approve, reject, release, reset or terminate a payment, release
// or return a held deposit, change the deny list, migrate wallets) is
// recorded append-only with who acted, why, when and what it changed.
//
// Package audit owns the operator_audit table; others call Record, List and
// Approved.
// The table's triggers refuse UPDATE and DELETE, so a record, once written,
// stays as written.
package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"payflow/internal/sqlerr"
	"payflow/internal/sqlrows"
)

// Actions an operator takes. Action names are stable: dashboards and
// filters use them.
const (
	ActionApprove        = "payment.approve"
	ActionReject         = "payment.reject"
	ActionRelease        = "payment.release"
	ActionReset          = "payment.reset"
	ActionTerminate      = "payment.terminate"
	ActionDepositRelease = "deposit.release"
	ActionDepositReturn  = "deposit.return"
	ActionDenyListChange = "denylist.change"
	ActionDenyListReload = "denylist.reload"
	ActionWalletMigrate  = "wallet.migrate"
)

// Sources say through what an action came.
const (
	// SourceCLI is payflowctl: the actor is --as or the OS user.
	SourceCLI = "payflowctl"
	// SourceTemporal is a signal sent straight to a workflow (the Web UI,
	// the temporal CLI): the workflow records it with the identity Temporal
	// gives the signal's sender.
	SourceTemporal = "temporal"
)

// Outcomes of a recorded action.
const (
	OutcomeDone   = "done"
	OutcomeFailed = "failed" // followed by ": " and what went wrong
)

var (
	// ErrNoActor: a record must say who acted.
	ErrNoActor = errors.New("an audit record needs who acted (--as, or the OS user)")
	// ErrNoReason: a record must say why (--reason is required).
	ErrNoReason = errors.New("an audit record needs a reason (--reason)")
	// ErrNoAction: a record must name what was done and to what.
	ErrNoAction = errors.New("an audit record needs an action and its subject")
)

// Entry is one record of the trail.
type Entry struct {
	ID int64     `json:"id"`
	At time.Time `json:"at"`
	// Actor is who acted: --as, the OS user, or the identity Temporal gave
	// a signal's sender.
	Actor  string `json:"actor"`
	Source string `json:"source"`
	Action string `json:"action"`
	// Subject is what the action acted on: a workflow id, a deposit key, a
	// deny-list file, a wallet.
	Subject string `json:"subject"`
	// Payment is the workflow id of the payment the action concerns ("" for
	// none); List filters on it.
	Payment string `json:"payment,omitempty"`
	Reason  string `json:"reason"`
	// Changes says what the action changed, as JSON (an object; {} when it
	// changed nothing).
	Changes json.RawMessage `json:"changes"`
	Outcome string          `json:"outcome"`
	// Key, when set, makes Record idempotent: a second Record with the same
	// key returns the first row and writes nothing (a workflow step that is
	// replayed records once).
	Key string `json:"key,omitempty"`
}

// Log reads and appends the trail.
type Log struct{ db *sql.DB }

// New returns the trail on db (migrated: see ledger.Migrate).
func New(db *sql.DB) *Log { return &Log{db: db} }

// Changes marshals what an action changed for Entry.Changes ({} for nil).
func Changes(v any) json.RawMessage {
	if v == nil {
		return json.RawMessage("{}")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(fmt.Sprintf(`{"unprintable":%q}`, err.Error()))
	}
	return b
}

// Record appends e and returns it as stored (with its id and time). It
// refuses a record without an actor, a reason, an action or a subject. With
// e.Key set, a second record under the same key returns the first.
func (l *Log) Record(ctx context.Context, e Entry) (Entry, error) {
	e.Actor, e.Reason = strings.TrimSpace(e.Actor), strings.TrimSpace(e.Reason)
	switch {
	case e.Actor == "":
		return e, ErrNoActor
	case e.Reason == "":
		return e, ErrNoReason
	case e.Action == "" || e.Subject == "":
		return e, ErrNoAction
	}
	if e.Source == "" {
		e.Source = SourceCLI
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeDone
	}
	if len(e.Changes) == 0 {
		e.Changes = Changes(nil)
	}
	_, err := l.db.ExecContext(ctx, `INSERT INTO operator_audit
		(actor, source, action, subject, payment, reason, changes, outcome, record_key) VALUES (?,?,?,?,?,?,?,?,?)`,
		e.Actor, e.Source, e.Action, e.Subject, nullable(e.Payment), e.Reason, string(e.Changes), clip(e.Outcome, 255), nullable(e.Key))
	switch {
	case err == nil:
	case e.Key != "" && sqlerr.IsDuplicateKey(err):
	default:
		return e, fmt.Errorf("recording %s of %s in the audit trail: %w", e.Action, e.Subject, err)
	}
	if e.Key != "" {
		return l.one(ctx, "record_key=?", e.Key)
	}
	return l.one(ctx, "id=LAST_INSERT_ID()")
}

// Approved says whether an approval of the payment (its workflow id) is
// recorded by the payment's own workflow (source temporal, action
// payment.approve, done): the approval payflow-signer asks for before it
// signs a held payment. A record made by payflowctl alone is an operator's
// intent, not the workflow's receipt of it, and does not count.
func (l *Log) Approved(ctx context.Context, payment string) (bool, error) {
	if payment == "" {
		return false, nil
	}
	var n int
	err := l.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM operator_audit WHERE payment=? AND action=? AND source=? AND outcome=?",
		payment, ActionApprove, SourceTemporal, OutcomeDone).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("looking for an approval of %s in the audit trail: %w", payment, err)
	}
	return n > 0, nil
}

// Filter selects records for List; zero fields select all.
type Filter struct {
	Payment string // a payment's workflow id
	Action  string
	Limit   int // newest first; default 100
}

const columns = "id, at, actor, source, action, subject, COALESCE(payment, ''), reason, changes, outcome, COALESCE(record_key, '')"

func scan(row sqlrows.Scanner) (e Entry, err error) {
	var changes string
	err = row.Scan(&e.ID, &e.At, &e.Actor, &e.Source, &e.Action, &e.Subject, &e.Payment, &e.Reason, &changes, &e.Outcome, &e.Key)
	e.Changes = json.RawMessage(changes)
	return e, err
}

func (l *Log) one(ctx context.Context, where string, args ...any) (Entry, error) {
	e, err := scan(l.db.QueryRowContext(ctx, "SELECT "+columns+" FROM operator_audit WHERE "+where, args...))
	if err != nil {
		return e, fmt.Errorf("reading back an audit record: %w", err)
	}
	return e, nil
}

// List returns the records f selects, newest first.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	where, args := []string{"1=1"}, []any{}
	if f.Payment != "" {
		where, args = append(where, "payment=?"), append(args, f.Payment)
	}
	if f.Action != "" {
		where, args = append(where, "action=?"), append(args, f.Action)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	args = append(args, f.Limit)
	out, err := sqlrows.Collect(ctx, l.db, scan, "SELECT "+columns+" FROM operator_audit WHERE "+
		strings.Join(where, " AND ")+" ORDER BY id DESC LIMIT ?", args...)
	if err != nil {
		return nil, fmt.Errorf("listing the audit trail: %w", err)
	}
	return out, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Package answers owns the outbox: every answer and notice payflow sends a
// business system, recorded under a stable message id (the AMQP message id)
// and published to its flow's response queue once per id. It is the only
// package that reads or writes the outbox table.
//
// An answer is recorded first — a payment's inside the database transaction
// that settles or releases its reservation (Record with the caller's
// transaction) — and published after (Outbox.Publish). Publishing holds the
// answer's row lock from before the broker is asked until it is marked
// published, so two publishers of one id (a workflow's PublishResult, the
// Relay, an operator's payflowctl, in any process) take turns and the second
// finds it published. Only a process that dies between the broker's confirm
// and the commit of the mark leaves it unpublished: its next publisher sends
// it again with the same message id, which consumers deduplicate on.
package answers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"payflow/config"
	"payflow/internal/sqlrows"
	"payflow/protocol"
	"payflow/rmq"
)

var (
	// ErrNotRecorded: no answer is recorded under the message id.
	ErrNotRecorded = errors.New("answer not recorded")
	// ErrUnknownFlow: the configuration names no response queue for the
	// answer's flow.
	ErrUnknownFlow = errors.New("no response queue for the flow")
)

// Execer runs one statement; *sql.Tx, *sql.DB and *sql.Conn are ones. Record
// takes it so that an answer is stored in its caller's transaction.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Answer is one message for a business system.
type Answer struct {
	// MessageID is stable per answer: the outbox key and the AMQP message id.
	MessageID string
	// Flow picks the response queue (config.RMQConfig's *Resp queues).
	Flow protocol.Flow
	// Body is the JSON the business system receives.
	Body []byte
}

// Recorded is an answer as the outbox holds it.
type Recorded struct {
	Answer
	RecordedAt time.Time
	// PublishedAt is when the broker confirmed it; nil until then.
	PublishedAt *time.Time
}

// Published reports whether the broker confirmed the answer.
func (r Recorded) Published() bool { return r.PublishedAt != nil }

// Record stores a through ex (the caller's transaction, so that the answer
// is recorded exactly when whatever it reports is) unless an answer is
// already recorded under a.MessageID: the first one recorded is the only one
// there will ever be. first reports whether this call stored it; it holds
// only once ex's transaction commits.
func Record(ctx context.Context, ex Execer, a Answer) (first bool, err error) {
	res, err := ex.ExecContext(ctx, "INSERT IGNORE INTO outbox (message_id, flow, body) VALUES (?,?,?)",
		a.MessageID, string(a.Flow), a.Body)
	if err != nil {
		return false, fmt.Errorf("recording answer %s: %w", a.MessageID, err)
	}
	n, err := res.RowsAffected()
	return err == nil && n == 1, nil
}

// Publisher sends a message and returns once the broker confirmed it
// (*rmq.Publisher is one).
type Publisher interface {
	Publish(ctx context.Context, m rmq.Message) error
}

// Outbox reads and publishes the recorded answers.
type Outbox struct {
	db     *sql.DB
	pub    Publisher
	queues map[protocol.Flow]config.QueueConfig
}

// New returns the outbox in db, publishing through pub to the response queue
// of each flow in queues (workflows.ResponseQueues). pub and queues may be
// nil where nothing is published (reads only).
func New(db *sql.DB, pub Publisher, queues map[protocol.Flow]config.QueueConfig) *Outbox {
	return &Outbox{db: db, pub: pub, queues: queues}
}

// Record stores a in its own statement; see Record.
func (o *Outbox) Record(ctx context.Context, a Answer) (first bool, err error) {
	return Record(ctx, o.db, a)
}

// Get returns the answer recorded under id; ok is false when there is none.
func (o *Outbox) Get(ctx context.Context, id string) (r Recorded, ok bool, err error) {
	var flow string
	var published sql.NullTime
	err = o.db.QueryRowContext(ctx, "SELECT message_id, flow, body, created_at, published_at FROM outbox WHERE message_id=?", id).
		Scan(&r.MessageID, &flow, &r.Body, &r.RecordedAt, &published)
	if errors.Is(err, sql.ErrNoRows) {
		return Recorded{}, false, nil
	}
	if err != nil {
		return Recorded{}, false, fmt.Errorf("reading answer %s: %w", id, err)
	}
	r.Flow = protocol.Flow(flow)
	if published.Valid {
		r.PublishedAt = &published.Time
	}
	return r, true, nil
}

// Unpublished counts the answers recorded and not published yet (the
// backlog gauge).
func (o *Outbox) Unpublished(ctx context.Context) (int64, error) {
	var n int64
	if err := o.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").Scan(&n); err != nil {
		return 0, fmt.Errorf("counting unpublished answers: %w", err)
	}
	return n, nil
}

// Publish sends the answer recorded under id to flow's response queue with
// id as its message id, and marks it published, unless it is published
// already. first reports whether this call marked it. What is sent is the
// stored body, so a changed or reset workflow can never send a second
// version. The row stays locked from before the send until the mark
// commits: a concurrent Publish of id waits, then finds it published.
// ErrNotRecorded when nothing is recorded under id; ErrUnknownFlow when flow
// has no response queue.
func (o *Outbox) Publish(ctx context.Context, flow protocol.Flow, id string) (first bool, err error) {
	first, _, err = o.publish(ctx, flow, id, false)
	return first, err
}

// publish is Publish; with skipLocked, an answer whose row another publisher
// holds is left to it (busy) instead of waited for.
func (o *Outbox) publish(ctx context.Context, flow protocol.Flow, id string, skipLocked bool) (first, busy bool, err error) {
	q, ok := o.queues[flow]
	if !ok {
		return false, false, fmt.Errorf("publishing answer %s of flow %q: %w", id, flow, ErrUnknownFlow)
	}
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return false, false, fmt.Errorf("publishing answer %s: %w", id, err)
	}
	defer tx.Rollback()
	lock := "FOR UPDATE"
	if skipLocked {
		lock = "FOR UPDATE SKIP LOCKED"
	}
	var published bool
	var body []byte
	err = tx.QueryRowContext(ctx, "SELECT published_at IS NOT NULL, body FROM outbox WHERE message_id=? "+lock, id).
		Scan(&published, &body)
	switch {
	case errors.Is(err, sql.ErrNoRows) && skipLocked:
		return false, true, nil // locked by another publisher (or gone)
	case errors.Is(err, sql.ErrNoRows):
		return false, false, fmt.Errorf("publishing answer %s: %w", id, ErrNotRecorded)
	case err != nil:
		return false, false, fmt.Errorf("reading answer %s: %w", id, err)
	case published:
		return false, false, nil
	}
	if err := o.pub.Publish(ctx, rmq.Message{Exchange: q.Exchange, RoutingKey: q.RoutingKey(), MessageID: id, Body: body}); err != nil {
		return false, false, err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE outbox SET published_at=CURRENT_TIMESTAMP(6) WHERE message_id=?", id); err != nil {
		return false, false, fmt.Errorf("marking answer %s published: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return false, false, fmt.Errorf("marking answer %s published: %w", id, err)
	}
	return true, false, nil
}

// stale lists up to limit answers recorded at least grace ago (by the
// database's clock) and not published, oldest first. Answers recorded
// without a flow (by a version of payflow that did not record it) are not
// listed: their queue is unknown.
func (o *Outbox) stale(ctx context.Context, grace time.Duration, limit int) ([]Answer, error) {
	out, err := sqlrows.Collect(ctx, o.db, func(rows sqlrows.Scanner) (a Answer, err error) {
		var flow string
		err = rows.Scan(&a.MessageID, &flow)
		a.Flow = protocol.Flow(flow)
		return a, err
	}, `SELECT message_id, flow FROM outbox
		WHERE published_at IS NULL AND flow <> '' AND created_at <= NOW(6) - INTERVAL ? MICROSECOND
		ORDER BY created_at LIMIT ?`, grace.Microseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("listing unpublished answers: %w", err)
	}
	return out, nil
}

package answers_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"payflow/answers"
	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/rmq"
)

// queues are the response queues of the tests' outboxes.
var queues = map[protocol.Flow]config.QueueConfig{
	protocol.FlowWithdraw: {Queue: "w.resp", Exchange: "x", Routing: []string{"w.key"}},
	protocol.FlowPay:      {Queue: "p.resp", Exchange: "x", Routing: []string{"p.key"}},
}

// broker records what it is asked to publish; fail makes it refuse, delay
// makes each publish take that long.
type broker struct {
	mu    sync.Mutex
	sent  []rmq.Message
	fail  error
	delay time.Duration
}

func (b *broker) Publish(ctx context.Context, m rmq.Message) error {
	time.Sleep(b.delay)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	b.sent = append(b.sent, m)
	return nil
}

func (b *broker) messages() []rmq.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]rmq.Message(nil), b.sent...)
}

func freshDB(t *testing.T) *sql.DB {
	t.Helper()
	db := stacktest.TestDB(t, "answers")
	require.NoError(t, ledger.Migrate(context.Background(), db))
	return db
}

func answer(id string, body string) answers.Answer {
	return answers.Answer{MessageID: id, Flow: protocol.FlowWithdraw, Body: []byte(body)}
}

// An answer recorded in a transaction that rolls back is not recorded: it
// exists exactly when what it reports was committed with it.
func TestRecordInRolledBackTransactionLeavesNothing(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	out := answers.New(db, &broker{}, queues)

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	first, err := answers.Record(ctx, tx, answer("withdraw-q1/result", `{"status":1}`))
	require.NoError(t, err)
	require.True(t, first)
	require.NoError(t, tx.Rollback())
	_, ok, err := out.Get(ctx, "withdraw-q1/result")
	require.NoError(t, err)
	require.False(t, ok, "an answer survived its transaction's rollback")

	tx, err = db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = answers.Record(ctx, tx, answer("withdraw-q1/result", `{"status":1}`))
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	got, ok, err := out.Get(ctx, "withdraw-q1/result")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, protocol.FlowWithdraw, got.Flow)
	require.JSONEq(t, `{"status":1}`, string(got.Body))
	require.False(t, got.Published())
}

// The first answer recorded under a message id is the only one: a second
// record (a retry, a reset run that decided differently) changes nothing.
func TestRecordKeepsTheFirstAnswer(t *testing.T) {
	ctx := context.Background()
	out := answers.New(freshDB(t), &broker{}, queues)
	first, err := out.Record(ctx, answer("pay-q2/result", `{"status":0}`))
	require.NoError(t, err)
	require.True(t, first)
	first, err = out.Record(ctx, answer("pay-q2/result", `{"status":1}`))
	require.NoError(t, err)
	require.False(t, first)
	got, _, err := out.Get(ctx, "pay-q2/result")
	require.NoError(t, err)
	require.JSONEq(t, `{"status":0}`, string(got.Body))
}

// An answer is published once: with its message id, the stored body, to its
// flow's queue; a repeat sends nothing.
func TestPublishSendsOnce(t *testing.T) {
	ctx := context.Background()
	b := &broker{}
	out := answers.New(freshDB(t), b, queues)
	_, err := out.Record(ctx, answer("withdraw-q3/result", `{"status":1}`))
	require.NoError(t, err)

	first, err := out.Publish(ctx, protocol.FlowWithdraw, "withdraw-q3/result")
	require.NoError(t, err)
	require.True(t, first)
	first, err = out.Publish(ctx, protocol.FlowWithdraw, "withdraw-q3/result")
	require.NoError(t, err)
	require.False(t, first)

	sent := b.messages()
	require.Len(t, sent, 1)
	require.Equal(t, rmq.Message{Exchange: "x", RoutingKey: "w.key", MessageID: "withdraw-q3/result", Body: []byte(`{"status":1}`)},
		sent[0])
	got, _, err := out.Get(ctx, "withdraw-q3/result")
	require.NoError(t, err)
	require.True(t, got.Published())
	n, err := out.Unpublished(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

// Publishers of one answer racing each other (a run's PublishResult, the
// relay of two workers, an operator) send it once.
func TestConcurrentPublishersSendOnce(t *testing.T) {
	ctx := context.Background()
	b := &broker{delay: 50 * time.Millisecond}
	db := freshDB(t)
	_, err := answers.New(db, b, queues).Record(ctx, answer("withdraw-q4/result", `{}`))
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := 0
	for range 8 {
		wg.Go(func() {
			first, err := answers.New(db, b, queues).Publish(ctx, protocol.FlowWithdraw, "withdraw-q4/result")
			require.NoError(t, err)
			if first {
				mu.Lock()
				firsts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, b.messages(), 1)
	require.Equal(t, 1, firsts)
}

// A refused publish leaves the answer unpublished, for the next publisher.
func TestFailedPublishLeavesItUnpublished(t *testing.T) {
	ctx := context.Background()
	b := &broker{fail: rmq.ErrNacked}
	out := answers.New(freshDB(t), b, queues)
	_, err := out.Record(ctx, answer("pay-q5/result", `{}`))
	require.NoError(t, err)
	_, err = out.Publish(ctx, protocol.FlowPay, "pay-q5/result")
	require.ErrorIs(t, err, rmq.ErrNacked)
	n, err := out.Unpublished(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	b.fail = nil
	first, err := out.Publish(ctx, protocol.FlowPay, "pay-q5/result")
	require.NoError(t, err)
	require.True(t, first)
	require.Len(t, b.messages(), 1)
}

func TestPublishRefusesWhatItCannotSend(t *testing.T) {
	ctx := context.Background()
	out := answers.New(freshDB(t), &broker{}, queues)
	_, err := out.Publish(ctx, protocol.FlowWithdraw, "withdraw-none/result")
	require.ErrorIs(t, err, answers.ErrNotRecorded)
	_, err = out.Record(ctx, answers.Answer{MessageID: "topup-x/seen", Flow: protocol.FlowTopup, Body: []byte(`{}`)})
	require.NoError(t, err)
	_, err = out.Publish(ctx, protocol.FlowTopup, "topup-x/seen")
	require.ErrorIs(t, err, answers.ErrUnknownFlow)
}

// The outbox holds no destination: the exchange and routing key columns
// are gone, the flow picks the queue.
func TestOutboxColumns(t *testing.T) {
	db := freshDB(t)
	rows, err := db.Query(`SELECT column_name FROM information_schema.columns
		WHERE table_schema = DATABASE() AND table_name = 'outbox' ORDER BY ordinal_position`)
	require.NoError(t, err)
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		require.NoError(t, rows.Scan(&c))
		cols = append(cols, c)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"message_id", "flow", "body", "published_at", "created_at"}, cols)
}

var errBroker = errors.New("broker down")

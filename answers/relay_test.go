package answers_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"payflow/answers"
	"payflow/protocol"
)

// relayed counts AnswerRelayed by flow.
type relayed struct {
	mu sync.Mutex
	n  map[protocol.Flow]int
}

func (r *relayed) AnswerRelayed(flow protocol.Flow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[protocol.Flow]int{}
	}
	r.n[flow]++
}

// The relay publishes, once, only the answers that stayed unpublished past
// the grace period: not a fresh one (its run is publishing it), not a
// published one, not one whose flow it does not know.
func TestRelayPublishesOnlyUnpublishedPastGrace(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	b := &broker{}
	out := answers.New(db, b, queues)
	for _, a := range []answers.Answer{
		answer("withdraw-old/result", `{"old":1}`),
		{MessageID: "pay-old/result", Flow: protocol.FlowPay, Body: []byte(`{"old":2}`)},
		answer("withdraw-fresh/result", `{}`),
		answer("withdraw-sent/result", `{}`),
		{MessageID: "bench-old/result", Body: []byte(`{}`)}, // no flow: recorded by an older payflow
	} {
		_, err := out.Record(ctx, a)
		require.NoError(t, err)
	}
	_, err := out.Publish(ctx, protocol.FlowWithdraw, "withdraw-sent/result")
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE outbox SET created_at = created_at - INTERVAL 1 MINUTE WHERE message_id <> 'withdraw-fresh/result'`)
	require.NoError(t, err)

	m := &relayed{}
	r := answers.NewRelay(out, answers.RelayConfig{Grace: 30 * time.Second}, m, nil)
	n, err := r.RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	sent := b.messages()
	require.Len(t, sent, 3) // withdraw-sent, then the two relayed
	require.Equal(t, "withdraw-old/result", sent[1].MessageID)
	require.Equal(t, "w.key", sent[1].RoutingKey)
	require.Equal(t, "pay-old/result", sent[2].MessageID)
	require.Equal(t, "p.key", sent[2].RoutingKey)
	require.Equal(t, []byte(`{"old":2}`), sent[2].Body)
	require.Equal(t, map[protocol.Flow]int{protocol.FlowWithdraw: 1, protocol.FlowPay: 1}, m.n)

	n, err = r.RelayOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "published answers are relayed once")
	require.Len(t, b.messages(), 3)
	fresh, _, err := out.Get(ctx, "withdraw-fresh/result")
	require.NoError(t, err)
	require.False(t, fresh.Published(), "an answer within the grace period is its run's to publish")
}

// An answer another publisher holds (its run publishing it right now, or
// another worker's relay) is left to it: the relay neither waits nor sends.
func TestRelaySkipsAnAnswerBeingPublished(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	b := &broker{}
	out := answers.New(db, b, queues)
	_, err := out.Record(ctx, answer("withdraw-busy/result", `{}`))
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE outbox SET created_at = created_at - INTERVAL 1 MINUTE`)
	require.NoError(t, err)

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	var id string
	require.NoError(t, tx.QueryRow("SELECT message_id FROM outbox WHERE message_id='withdraw-busy/result' FOR UPDATE").Scan(&id))

	r := answers.NewRelay(out, answers.RelayConfig{Grace: time.Second}, nil, nil)
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := r.RelayOnce(tctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, b.messages())

	require.NoError(t, tx.Rollback())
	n, err = r.RelayOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// While the broker refuses, the relay publishes nothing and marks nothing;
// it sends the answer once the broker is back.
func TestRelayRetriesWhileTheBrokerRefuses(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t)
	b := &broker{fail: errBroker}
	out := answers.New(db, b, queues)
	_, err := out.Record(ctx, answer("withdraw-down/result", `{}`))
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE outbox SET created_at = created_at - INTERVAL 1 MINUTE`)
	require.NoError(t, err)

	r := answers.NewRelay(out, answers.RelayConfig{Grace: time.Second}, nil, nil)
	_, err = r.RelayOnce(ctx)
	require.ErrorIs(t, err, errBroker)
	n, err := out.Unpublished(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	b.mu.Lock()
	b.fail = nil
	b.mu.Unlock()
	// Run looks at once, then every Interval.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		answers.NewRelay(out, answers.RelayConfig{Grace: time.Second, Interval: 50 * time.Millisecond}, nil, nil).Run(rctx)
		close(done)
	}()
	require.Eventually(t, func() bool { return len(b.messages()) == 1 }, 5*time.Second, 20*time.Millisecond)
	stop()
	<-done
	require.Len(t, b.messages(), 1)
}

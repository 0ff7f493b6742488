package rmq_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/rmq"
)

// These tests run against the dev stack's real RabbitMQ (.dev/stack.json),
// on queues and an exchange of their own, so they never touch the queues of
// the running starter.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// topology returns a config whose seven queues and exchange are unique to
// the test, and deletes them when it ends.
func topology(t *testing.T, st *stacktest.Stack) config.RMQConfig {
	t.Helper()
	p := stacktest.RandomID("rmqtest-" + strings.ToLower(t.Name()) + "-")
	x := p + ".x"
	q := func(n string) config.QueueConfig {
		return config.QueueConfig{Queue: p + "." + n, Exchange: x, Routing: []string{p + "." + n + ".key"}}
	}
	cfg := config.RMQConfig{SubAddr: config.Secret(st.AMQPURL), Topup: q("topup"), Withdraw: q("withdraw"), Pay: q("pay"),
		TopupResp: q("topup-resp"), WithdrawResp: q("withdraw-resp"), PayResp: q("pay-resp"), DeadLetter: q("dead")}
	t.Cleanup(func() {
		conn, err := amqp.Dial(st.AMQPURL)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		for _, qc := range []config.QueueConfig{cfg.Topup, cfg.Withdraw, cfg.Pay, cfg.TopupResp, cfg.WithdrawResp, cfg.PayResp, cfg.DeadLetter} {
			_, _ = ch.QueueDelete(qc.Queue, false, false, false)
		}
		_ = ch.ExchangeDelete(x, false, false)
	})
	return cfg
}

// broker is a plain AMQP channel for the test's own publishing and reading.
type broker struct {
	t  *testing.T
	ch *amqp.Channel
}

func newBroker(t *testing.T, st *stacktest.Stack, cfg config.RMQConfig) *broker {
	t.Helper()
	conn, err := amqp.Dial(st.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := rmq.Declare(ch, cfg); err != nil {
		t.Fatal(err)
	}
	return &broker{t: t, ch: ch}
}

func (b *broker) send(q config.QueueConfig, id, body string) {
	b.t.Helper()
	err := b.ch.PublishWithContext(context.Background(), q.Exchange, q.RoutingKey(), false, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, MessageId: id, Body: []byte(body)})
	if err != nil {
		b.t.Fatal(err)
	}
}

// get waits for the next message on queue and acks it.
func (b *broker) get(queue string, timeout time.Duration) amqp.Delivery {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		d, ok, err := b.ch.Get(queue, true)
		if err != nil {
			b.t.Fatal(err)
		}
		if ok {
			return d
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("no message on %s within %s", queue, timeout)
	return amqp.Delivery{}
}

// depth is the number of ready and unacked messages of queue.
func (b *broker) depth(queue string) int {
	b.t.Helper()
	q, err := b.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return q.Messages
}

// run starts c until the test ends (or stop is called) and returns stop,
// which returns once c.Run has drained.
func run(t *testing.T, c *rmq.Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func consumer(st *stacktest.Stack, cfg config.RMQConfig, h rmq.Handler) *rmq.Consumer {
	return &rmq.Consumer{URL: st.AMQPURL, Topology: cfg, Queue: cfg.Topup.Queue, Name: "test", Prefetch: 4,
		Handler: h, Sender: rmq.NewPublisher(st.AMQPURL, cfg, quiet), MaxAttempts: 3, RetryDelay: 20 * time.Millisecond, Log: quiet}
}

// counter counts handler calls per body.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(body []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[string(body)]++
	return c.n[string(body)]
}

func (c *counter) get(body string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[body]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsumerDeadLettersPermanentErrorsAtOnce: a Permanent error sends the
// delivery, body unchanged, to the dead-letter queue with its reason after one
// attempt, and the consumer goes on.
func TestConsumerDeadLettersPermanentErrorsAtOnce(t *testing.T) {
	st := stacktest.Load(t)
	cfg := topology(t, st)
	b := newBroker(t, st, cfg)
	var calls counter
	run(t, consumer(st, cfg, func(_ context.Context, d amqp.Delivery) error {
		calls.inc(d.Body)
		if string(d.Body) == `{"bad":1}` {
			return rmq.Permanent(errors.New("search attribute exceeds size limit"))
		}
		return nil
	}))
	b.send(cfg.Topup, "m1", `{"bad":1}`)
	b.send(cfg.Topup, "m2", `{"good":1}`)
	dl := b.get(cfg.DeadLetter.Queue, 30*time.Second)
	if string(dl.Body) != `{"bad":1}` {
		t.Fatalf("dead letter body %s, want the original", dl.Body)
	}
	if r := fmt.Sprint(dl.Headers[rmq.HeaderReason]); r != "search attribute exceeds size limit" {
		t.Errorf("reason %q", r)
	}
	if q := fmt.Sprint(dl.Headers[rmq.HeaderQueue]); q != cfg.Topup.Queue {
		t.Errorf("queue header %q", q)
	}
	waitFor(t, "the good message", func() bool { return calls.get(`{"good":1}`) == 1 })
	if n := calls.get(`{"bad":1}`); n != 1 {
		t.Errorf("permanent failure handled %d times, want 1", n)
	}
	waitFor(t, "an empty queue", func() bool { return b.depth(cfg.Topup.Queue) == 0 })
}

// TestConsumerDeadLettersPoisonAfterMaxAttempts: a delivery that keeps
// failing with an error that is neither an outage nor permanent is tried
// MaxAttempts times, then dead-lettered with its reason; it is never
// requeued for ever, and the consumer goes on.
func TestConsumerDeadLettersPoisonAfterMaxAttempts(t *testing.T) {
	st := stacktest.Load(t)
	cfg := topology(t, st)
	b := newBroker(t, st, cfg)
	var calls counter
	c := consumer(st, cfg, func(_ context.Context, d amqp.Delivery) error {
		calls.inc(d.Body)
		if string(d.Body) == "poison" {
			return errors.New("cannot decode")
		}
		return nil
	})
	run(t, c)
	b.send(cfg.Topup, "p1", "poison")
	dl := b.get(cfg.DeadLetter.Queue, 30*time.Second)
	if string(dl.Body) != "poison" || dl.MessageId == "" {
		t.Fatalf("dead letter %q id %q", dl.Body, dl.MessageId)
	}
	if r := fmt.Sprint(dl.Headers[rmq.HeaderReason]); !strings.Contains(r, "failed 3 times") || !strings.Contains(r, "cannot decode") {
		t.Errorf("reason %q", r)
	}
	if n := calls.get("poison"); n != c.MaxAttempts {
		t.Errorf("poison handled %d times, want %d", n, c.MaxAttempts)
	}
	b.send(cfg.Topup, "g1", "good")
	waitFor(t, "the good message", func() bool { return calls.get("good") == 1 })
	waitFor(t, "an empty queue", func() bool { return b.depth(cfg.Topup.Queue) == 0 })
	if n := calls.get("poison"); n != c.MaxAttempts {
		t.Errorf("poison handled %d times after dead-lettering, want %d", n, c.MaxAttempts)
	}
}

// TestConsumerAttemptCountSurvivesRestart: the attempt count travels with
// the message, so a consumer restarted in the middle of a poison message's
// retries (as `make restart` does) still gives up after MaxAttempts in all.
func TestConsumerAttemptCountSurvivesRestart(t *testing.T) {
	st := stacktest.Load(t)
	cfg := topology(t, st)
	b := newBroker(t, st, cfg)
	var calls atomic.Int32
	second := make(chan struct{})
	first := consumer(st, cfg, func(_ context.Context, d amqp.Delivery) error {
		if calls.Add(1) == 2 {
			close(second)
		}
		return errors.New("cannot decode")
	})
	stopFirst := run(t, first)
	b.send(cfg.Topup, "p1", "poison")
	<-second
	stopFirst() // the second attempt's copy is republished and acked while draining
	if n := calls.Load(); n != 2 {
		t.Fatalf("first consumer handled %d attempts, want 2", n)
	}
	run(t, consumer(st, cfg, func(_ context.Context, d amqp.Delivery) error {
		calls.Add(1)
		return errors.New("cannot decode")
	}))
	dl := b.get(cfg.DeadLetter.Queue, 30*time.Second)
	if n := calls.Load(); n != 3 {
		t.Errorf("%d attempts in all, want 3", n)
	}
	if a := fmt.Sprint(dl.Headers[rmq.HeaderAttempts]); a != "3" {
		t.Errorf("attempts header %q, want 3", a)
	}
}

// TestConsumerRetriesOutagesWithoutLimit: Transient errors (an outage) are
// retried past MaxAttempts and the delivery is handled once the outage ends;
// nothing is dead-lettered.
func TestConsumerRetriesOutagesWithoutLimit(t *testing.T) {
	st := stacktest.Load(t)
	cfg := topology(t, st)
	b := newBroker(t, st, cfg)
	var calls atomic.Int32
	c := consumer(st, cfg, func(_ context.Context, d amqp.Delivery) error {
		if calls.Add(1) <= 7 {
			return rmq.Transient(errors.New("temporal unavailable"))
		}
		return nil
	})
	c.RetryDelay = time.Millisecond
	run(t, c)
	b.send(cfg.Topup, "o1", "request")
	waitFor(t, "the end of the outage", func() bool { return calls.Load() >= 8 })
	waitFor(t, "an empty queue", func() bool { return b.depth(cfg.Topup.Queue) == 0 })
	if n := b.depth(cfg.DeadLetter.Queue); n != 0 {
		t.Errorf("%d dead letters after an outage, want 0", n)
	}
	if n := calls.Load(); n != 8 {
		t.Errorf("handled %d times, want 8 (7 outages, then success)", n)
	}
}

// TestConsumerPanicDeadLettersAndGoesOn: a handler panic dead-letters the
// delivery with the panic as its reason, and the consumer keeps consuming.
func TestConsumerPanicDeadLettersAndGoesOn(t *testing.T) {
	st := stacktest.Load(t)
	cfg := topology(t, st)
	b := newBroker(t, st, cfg)
	var calls counter
	run(t, consumer(st, cfg, func(_ context.Context, d amqp.Delivery) error {
		calls.inc(d.Body)
		if string(d.Body) == "boom" {
			var m map[string]int
			m["x"] = 1 // assignment to a nil map
		}
		return nil
	}))
	b.send(cfg.Topup, "b1", "boom")
	dl := b.get(cfg.DeadLetter.Queue, 30*time.Second)
	if r := fmt.Sprint(dl.Headers[rmq.HeaderReason]); !strings.Contains(r, "handler panicked") || !strings.Contains(r, "nil map") {
		t.Errorf("reason %q", r)
	}
	b.send(cfg.Topup, "g1", "good")
	waitFor(t, "the good message", func() bool { return calls.get("good") == 1 })
	if n := calls.get("boom"); n != 1 {
		t.Errorf("panicking delivery handled %d times, want 1", n)
	}
}

// proxied returns the stack's AMQP URL through a new stacktest.CutProxy.
func proxied(t *testing.T, st *stacktest.Stack) (string, *stacktest.CutProxy) {
	t.Helper()
	u, err := url.Parse(st.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	p := stacktest.NewCutProxy(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

// TestConsumerReconnectsAndGetsTheUnackedDelivery: the connection drops while
// a delivery is being handled; its ack is lost with the connection, the
// consumer reconnects, the broker redelivers it, and it is handled and acked:
// nothing is lost and nothing dead-lettered.
func TestConsumerReconnectsAndGetsTheUnackedDelivery(t *testing.T) {
	st := stacktest.Load(t)
	cfg := topology(t, st)
	b := newBroker(t, st, cfg)
	viaProxy, proxy := proxied(t, st)
	var calls atomic.Int32
	var redelivered atomic.Bool
	inHand := make(chan struct{})
	release := make(chan struct{})
	c := consumer(st, cfg, func(_ context.Context, d amqp.Delivery) error {
		if calls.Add(1) == 1 {
			close(inHand)
			<-release
		} else if d.Redelivered {
			redelivered.Store(true)
		}
		return nil
	})
	c.URL = viaProxy
	run(t, c)
	b.send(cfg.Topup, "r1", "request")
	<-inHand
	proxy.Cut()
	close(release)
	waitFor(t, "the redelivery", func() bool { return calls.Load() >= 2 })
	if !redelivered.Load() {
		t.Error("second delivery not marked redelivered")
	}
	if n := proxy.Dials(); n < 2 {
		t.Errorf("consumer dialled %d times, want a reconnect", n)
	}
	waitFor(t, "an empty queue", func() bool { return b.depth(cfg.Topup.Queue) == 0 })
	if n := b.depth(cfg.DeadLetter.Queue); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

// TestPublisherConfirms: Publish returns only once the broker confirmed the
// message, and reports a message the broker refuses (a full queue that
// rejects publishes) as ErrNacked instead of losing it silently.
func TestPublisherConfirms(t *testing.T) {
	st := stacktest.Load(t)
	cfg := topology(t, st)
	b := newBroker(t, st, cfg)
	full := cfg.Topup.Queue + ".full"
	if _, err := b.ch.QueueDeclare(full, false, true, false, false,
		amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	if err := b.ch.QueueBind(full, full, cfg.Topup.Exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	p := rmq.NewPublisher(st.AMQPURL, cfg, quiet)
	defer p.Close()
	ctx := context.Background()
	if err := p.Publish(ctx, rmq.Message{Exchange: cfg.Topup.Exchange, RoutingKey: full, MessageID: "1", Body: []byte("one")}); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	if n := b.depth(full); n != 1 {
		t.Fatalf("confirmed message not in the queue: depth %d", n)
	}
	err := p.Publish(ctx, rmq.Message{Exchange: cfg.Topup.Exchange, RoutingKey: full, MessageID: "2", Body: []byte("two")})
	if !errors.Is(err, rmq.ErrNacked) {
		t.Fatalf("publish to a full queue: %v, want ErrNacked", err)
	}
	if d := b.get(full, 5*time.Second); string(d.Body) != "one" {
		t.Fatalf("queue holds %q", d.Body)
	}
	// The publisher goes on after a nack.
	if err := p.Publish(ctx, rmq.Message{Exchange: cfg.Topup.Exchange, RoutingKey: full, MessageID: "3", Body: []byte("three")}); err != nil {
		t.Fatalf("publish after a nack: %v", err)
	}
}

// TestPublisherRecovers: after its connection is cut, or its channel closed
// by a broker error, the publisher redials and the next publish is
// confirmed; every confirmed message is in the queue.
func TestPublisherRecovers(t *testing.T) {
	st := stacktest.Load(t)
	cfg := topology(t, st)
	b := newBroker(t, st, cfg)
	viaProxy, proxy := proxied(t, st)
	p := rmq.NewPublisher(viaProxy, cfg, quiet)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := cfg.Topup
	publish := func(body string) error {
		return p.Publish(ctx, rmq.Message{Exchange: q.Exchange, RoutingKey: q.RoutingKey(), MessageID: body, Body: []byte(body)})
	}
	if err := publish("before-cut"); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	// The first publish after the cut may see the dead connection; a caller
	// retries (the consumer requeues), and the publisher redials.
	var err error
	for range 3 {
		if err = publish("after-cut"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("publisher did not recover from a cut connection: %v", err)
	}
	if err := p.Publish(ctx, rmq.Message{Exchange: "no-such-exchange-" + stacktest.RandomID(""), RoutingKey: "k", Body: []byte("x")}); err == nil {
		t.Fatal("publish to a missing exchange succeeded")
	}
	if err := publish("after-channel-error"); err != nil {
		t.Fatalf("publisher did not recover from a channel error: %v", err)
	}
	got := map[string]bool{}
	for range 3 {
		got[string(b.get(q.Queue, 10*time.Second).Body)] = true
	}
	for _, want := range []string{"before-cut", "after-cut", "after-channel-error"} {
		if !got[want] {
			t.Errorf("confirmed message %q not in the queue (got %v)", want, got)
		}
	}
}

// outcomes records what a Consumer reports to Observe.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) observe(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[outcome]++
}

func (o *outcomes) get(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[outcome]
}

// TestConsumerObservesRequeuesAndDeadLetters: Observe hears each retry of a
// failing delivery as requeued and its end as dead_lettered, once each, and
// nothing about deliveries handled (their handler reports those).
func TestConsumerObservesRequeuesAndDeadLetters(t *testing.T) {
	st := stacktest.Load(t)
	cfg := topology(t, st)
	b := newBroker(t, st, cfg)
	var calls counter
	var seen outcomes
	c := consumer(st, cfg, func(_ context.Context, d amqp.Delivery) error {
		if calls.inc(d.Body) == 1 && string(d.Body) == "outage" {
			return rmq.Transient(errors.New("temporal unavailable"))
		}
		if string(d.Body) == "poison" {
			return errors.New("cannot decode")
		}
		return nil
	})
	c.Observe = seen.observe
	run(t, c)
	b.send(cfg.Topup, "g1", "good")
	b.send(cfg.Topup, "o1", "outage")
	b.send(cfg.Topup, "p1", "poison")
	b.get(cfg.DeadLetter.Queue, 30*time.Second)
	waitFor(t, "the outage's retry", func() bool { return calls.get("outage") == 2 })
	waitFor(t, "an empty queue", func() bool { return b.depth(cfg.Topup.Queue) == 0 })
	// Observe runs right after the ack: wait for it.
	waitFor(t, "the dead letter observed", func() bool { return seen.get(rmq.OutcomeDeadLettered) == 1 })
	// The poison was retried MaxAttempts-1 times, the outage once.
	waitFor(t, "the requeues observed", func() bool { return seen.get(rmq.OutcomeRequeued) == c.MaxAttempts })
	if n, m := seen.get(rmq.OutcomeDeadLettered), seen.get(rmq.OutcomeRequeued); n != 1 || m != c.MaxAttempts {
		t.Errorf("observed %d dead letters and %d requeues, want 1 and %d", n, m, c.MaxAttempts)
	}
}

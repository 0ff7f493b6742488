package rmq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"payflow/config"
)

// Headers payflow adds to dead letters and retried deliveries.
const (
	// HeaderReason says why a delivery was dead-lettered.
	HeaderReason = "x-payflow-reason"
	// HeaderFlow names the consumer (flow) that gave up on the delivery.
	HeaderFlow = "x-payflow-flow"
	// HeaderQueue is the queue the delivery was consumed from.
	HeaderQueue = "x-payflow-queue"
	// HeaderDeadAt is when the delivery was dead-lettered (RFC 3339, UTC).
	HeaderDeadAt = "x-payflow-dead-at"
	// HeaderAttempts counts the failed attempts at a delivery so far. It
	// travels with the message, so the count survives a requeue, a restart of
	// the consumer and several consumers sharing the queue.
	HeaderAttempts = "x-payflow-attempts"
)

// Outcomes a Consumer reports to Observe (the deliveries it did not ack as
// handled; a Handler reports the others itself).
const (
	// OutcomeRequeued: put back on the queue for another try (an outage, a
	// failure under MaxAttempts, or a dead letter the broker did not take).
	OutcomeRequeued = "requeued"
	// OutcomeDeadLettered: published to the dead-letter queue and acked.
	OutcomeDeadLettered = "dead_lettered"
)

// Handler processes one delivery. Return nil to ack. Otherwise the error says
// what to do:
//   - Transient(err): an outage (broker, Temporal, network). The delivery is
//     requeued after a pause and retried without limit.
//   - Permanent(err): no retry can help. The delivery is dead-lettered at
//     once with err's text as its reason.
//   - any other error: retried, at most MaxAttempts times in all, then
//     dead-lettered with the last error as its reason.
//
// A panic is treated as Permanent. Handlers answer bad input themselves and
// return nil, or return Permanent to have the delivery dead-lettered.
type Handler func(ctx context.Context, d amqp.Delivery) error

type kind int

const (
	kindTransient kind = iota + 1
	kindPermanent
)

type classified struct {
	err  error
	kind kind
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

// Permanent marks err as a failure no retry can fix: the Consumer
// dead-letters the delivery at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, kind: kindPermanent}
}

// Transient marks err as an outage: the Consumer requeues the delivery and
// retries it without limit. Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, kind: kindTransient}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent
// (the outermost mark wins).
func IsPermanent(err error) bool { return kindOf(err) == kindPermanent }

// IsTransient reports whether err, or an error it wraps, was marked Transient
// (the outermost mark wins).
func IsTransient(err error) bool { return kindOf(err) == kindTransient }

func kindOf(err error) kind {
	var c *classified
	if errors.As(err, &c) {
		return c.kind
	}
	return 0
}

// Sender publishes one message with publisher confirms; *Publisher is one.
type Sender interface {
	Publish(ctx context.Context, m Message) error
}

// Consumer runs a Handler over one queue with manual acks until its context
// ends, reconnecting with backoff. Deliveries are never lost: a delivery is
// acked only after it was handled, dead-lettered (confirmed by the broker) or
// republished for a retry (confirmed); otherwise it is nacked with requeue,
// or redelivered by the broker when the connection drops.
type Consumer struct {
	// URL is the AMQP URL (may carry a password; never logged).
	URL string
	// Topology is declared on every (re)connect.
	Topology config.RMQConfig
	// Queue is consumed.
	Queue string
	// Name labels the consumer in logs and in dead letters (HeaderFlow).
	Name string
	// Prefetch bounds the deliveries in flight, handled concurrently. Default 16.
	Prefetch int
	// Handler handles each delivery.
	Handler Handler
	// Sender republishes retried deliveries and publishes dead letters.
	Sender Sender
	// DeadLetter is where poison deliveries go. Default Topology.DeadLetter.
	DeadLetter config.QueueConfig
	// MaxAttempts bounds the tries of a delivery that keeps failing with an
	// error that is neither Transient nor Permanent. Default 5.
	MaxAttempts int
	// RetryDelay is the pause before a failed delivery is retried; it doubles
	// while an outage lasts (up to 10s). Default 500ms.
	RetryDelay time.Duration
	// Timeout bounds one call of Handler. Default 1m.
	Timeout time.Duration
	// Log receives one line per refused, retried or dead-lettered delivery.
	Log *slog.Logger
	// Observe, when set, is told OutcomeRequeued or OutcomeDeadLettered for
	// each delivery that ends so (metrics). It must not block.
	Observe func(outcome string)

	outages atomic.Int32 // consecutive Transient failures, for backoff
}

func (c *Consumer) defaults() {
	if c.Prefetch <= 0 {
		c.Prefetch = 16
	}
	if c.DeadLetter.Queue == "" && c.DeadLetter.Exchange == "" {
		c.DeadLetter = c.Topology.DeadLetter
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 500 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Minute
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Name == "" {
		c.Name = c.Queue
	}
}

// Run consumes until ctx ends, reconnecting with backoff, then drains: the
// deliveries in hand are finished and acked before Run returns.
func (c *Consumer) Run(ctx context.Context) error {
	c.defaults()
	if c.Handler == nil || c.Sender == nil {
		return errors.New("rmq consumer needs a Handler and a Sender")
	}
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		err := c.consumeOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff = 200 * time.Millisecond
		}
		c.Log.Warn("consumer stopped; reconnecting", "queue", c.Queue, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	return nil
}

func (c *Consumer) consumeOnce(ctx context.Context) error {
	conn, err := amqp.Dial(c.URL)
	if err != nil {
		return redact(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := Declare(ch, c.Topology); err != nil {
		return err
	}
	if err := ch.Qos(c.Prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.ConsumeWithContext(ctx, c.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming %s: %w", c.Queue, err)
	}
	c.Log.Info("consuming", "queue", c.Queue, "prefetch", c.Prefetch)
	sem := make(chan struct{}, c.Prefetch)
	var wg sync.WaitGroup
	defer wg.Wait() // drain: finish what is in hand before closing the channel
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-closed:
			return fmt.Errorf("connection closed: %v", e)
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("delivery channel closed")
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c.handle(ctx, d)
			}()
		}
	}
}

// handle runs the handler on d and settles d. Handlers and the publishes that
// follow run to completion even while draining, so work done is never
// followed by a lost ack.
func (c *Consumer) handle(ctx context.Context, d amqp.Delivery) {
	bg := context.WithoutCancel(ctx)
	err := c.call(bg, d)
	attempt := attempts(d) + 1
	log := c.Log.With("queue", c.Queue, "message_id", d.MessageId, "attempt", attempt)
	switch {
	case err == nil:
		c.outages.Store(0)
		c.ack(d, log)
	case IsTransient(err):
		n := c.outages.Add(1)
		log.Warn("delivery not handled (outage); requeueing", "err", err)
		c.pause(ctx, c.backoff(int(n)))
		c.requeue(d, log)
		c.observe(OutcomeRequeued)
	case IsPermanent(err):
		c.deadLetter(ctx, d, attempt, err.Error(), log)
	case attempt >= c.MaxAttempts:
		c.deadLetter(ctx, d, attempt, fmt.Sprintf("failed %d times, last: %v", attempt, err), log)
	default:
		log.Warn("delivery failed; retrying", "err", err, "max_attempts", c.MaxAttempts)
		c.pause(ctx, c.backoff(attempt))
		c.retry(bg, d, attempt, log)
		c.observe(OutcomeRequeued)
	}
}

func (c *Consumer) observe(outcome string) {
	if c.Observe != nil {
		c.Observe(outcome)
	}
}

type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprintf("handler panicked: %v", p.v) }

// call runs the handler with a timeout; a panic becomes a Permanent error
// and its stack goes to the log.
func (c *Consumer) call(ctx context.Context, d amqp.Delivery) (err error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			c.Log.Error("handler panicked; dead-lettering the delivery", "queue", c.Queue, "message_id", d.MessageId,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = Permanent(panicError{v})
		}
	}()
	return c.Handler(ctx, d)
}

func (c *Consumer) backoff(n int) time.Duration {
	d := c.RetryDelay
	for i := 1; i < n && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, max(c.RetryDelay, 10*time.Second))
}

// pause waits d, or less when ctx ends (the delivery is then settled at once
// so draining is quick).
func (c *Consumer) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (c *Consumer) ack(d amqp.Delivery, log *slog.Logger) {
	if err := d.Ack(false); err != nil {
		// The broker redelivers it; handlers are idempotent.
		log.Warn("ack failed; the broker will redeliver", "err", err)
	}
}

func (c *Consumer) requeue(d amqp.Delivery, log *slog.Logger) {
	if err := d.Nack(false, true); err != nil {
		log.Warn("nack failed; the broker will redeliver", "err", err)
	}
}

// retry puts a copy of d, with its attempt count, at the back of the queue
// and acks d. The count travels in the message, not in this process. If the
// copy cannot be published (broker down), d is requeued instead and the
// failed attempt is not counted.
func (c *Consumer) retry(ctx context.Context, d amqp.Delivery, attempt int, log *slog.Logger) {
	h := copyHeaders(d.Headers)
	h[HeaderAttempts] = int32(attempt)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The default exchange routes to exactly this queue.
	err := c.Sender.Publish(pctx, Message{Exchange: "", RoutingKey: c.Queue, MessageID: d.MessageId, Body: d.Body, Headers: h})
	if err != nil {
		log.Warn("could not republish for a retry; requeueing", "err", err)
		c.requeue(d, log)
		return
	}
	c.ack(d, log)
}

// deadLetter publishes d's body unchanged, with the reason, to the
// dead-letter queue and acks d once the broker confirmed it.
func (c *Consumer) deadLetter(ctx context.Context, d amqp.Delivery, attempt int, reason string, log *slog.Logger) {
	if r := []rune(reason); len(r) > 1000 {
		reason = string(r[:1000]) + "…"
	}
	h := copyHeaders(d.Headers)
	h[HeaderReason] = reason
	h[HeaderFlow] = c.Name
	h[HeaderQueue] = c.Queue
	h[HeaderDeadAt] = time.Now().UTC().Format(time.RFC3339)
	h[HeaderAttempts] = int32(attempt)
	sum := sha256.Sum256(d.Body)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := c.Sender.Publish(pctx, Message{Exchange: c.DeadLetter.Exchange, RoutingKey: c.DeadLetter.RoutingKey(),
		MessageID: "dead/" + c.Name + "/" + hex.EncodeToString(sum[:16]), Body: d.Body, Headers: h})
	if err != nil {
		log.Warn("could not dead-letter; requeueing", "reason", reason, "err", err)
		c.pause(ctx, c.RetryDelay)
		c.requeue(d, log)
		c.observe(OutcomeRequeued)
		return
	}
	log.Warn("delivery dead-lettered", "reason", reason)
	c.ack(d, log)
	c.observe(OutcomeDeadLettered)
}

// attempts reads HeaderAttempts (0 when absent or malformed).
func attempts(d amqp.Delivery) int {
	switch v := d.Headers[HeaderAttempts].(type) {
	case int32:
		return int(v)
	case int64:
		return int(v)
	case int16:
		return int(v)
	case int8:
		return int(v)
	case int:
		return v
	case uint8:
		return int(v)
	case uint16:
		return int(v)
	case uint32:
		return int(v)
	}
	return 0
}

func copyHeaders(h amqp.Table) amqp.Table {
	out := make(amqp.Table, len(h)+5)
	for k, v := range h {
		out[k] = v
	}
	return out
}

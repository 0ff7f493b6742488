// Package rmq is payflow's RabbitMQ plumbing: topology declaration, a
// publisher with publisher confirms and reconnection, and a consumer loop with
// manual acks that reconnects without losing a delivery (unacked deliveries
// are redelivered by the broker).
package rmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"payflow/config"
)

// ErrNacked means the broker refused a published message.
var ErrNacked = errors.New("broker did not confirm the message")

// Declare creates the exchanges, queues and bindings of cfg (idempotent).
func Declare(ch *amqp.Channel, cfg config.RMQConfig) error {
	for _, q := range []config.QueueConfig{cfg.Topup, cfg.Withdraw, cfg.Pay, cfg.TopupResp, cfg.WithdrawResp, cfg.PayResp, cfg.DeadLetter} {
		if err := ch.ExchangeDeclare(q.Exchange, "direct", true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring exchange %s: %w", q.Exchange, err)
		}
		if _, err := ch.QueueDeclare(q.Queue, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring queue %s: %w", q.Queue, err)
		}
		for _, key := range q.Routing {
			if err := ch.QueueBind(q.Queue, key, q.Exchange, false, nil); err != nil {
				return fmt.Errorf("binding %s to %s/%s: %w", q.Queue, q.Exchange, key, err)
			}
		}
	}
	return nil
}

// Message is one message to publish.
type Message struct {
	Exchange   string
	RoutingKey string
	// MessageID is stable per logical message so consumers can deduplicate.
	MessageID string
	Body      []byte
	Headers   amqp.Table
}

// Publisher publishes persistent messages and waits for the broker's confirm.
// Safe for concurrent use; it redials after a connection loss.
type Publisher struct {
	url string
	cfg config.RMQConfig
	log *slog.Logger

	mu   sync.Mutex
	conn *amqp.Connection
	ch   *amqp.Channel
}

// NewPublisher returns a Publisher; it connects on first use.
func NewPublisher(url string, cfg config.RMQConfig, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.Default()
	}
	return &Publisher{url: url, cfg: cfg, log: log}
}

func (p *Publisher) channel() (*amqp.Channel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	if p.conn == nil || p.conn.IsClosed() {
		conn, err := amqp.Dial(p.url)
		if err != nil {
			return nil, fmt.Errorf("dialing RabbitMQ: %w", redact(err))
		}
		p.conn = conn
	}
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("opening channel: %w", err)
	}
	if err := Declare(ch, p.cfg); err != nil {
		ch.Close()
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("enabling publisher confirms: %w", err)
	}
	p.ch = ch
	return ch, nil
}

// Publish sends m persistently and returns once the broker confirmed it.
func (p *Publisher) Publish(ctx context.Context, m Message) error {
	ch, err := p.channel()
	if err != nil {
		return err
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, m.Exchange, m.RoutingKey, true, false, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    m.MessageID,
		Timestamp:    time.Now(),
		Headers:      m.Headers,
		Body:         m.Body,
	})
	if err != nil {
		p.reset(ch)
		return fmt.Errorf("publishing %s: %w", m.MessageID, err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		p.reset(ch)
		return fmt.Errorf("waiting for confirm of %s: %w", m.MessageID, err)
	}
	if !ok {
		return fmt.Errorf("publishing %s: %w", m.MessageID, ErrNacked)
	}
	return nil
}

func (p *Publisher) reset(ch *amqp.Channel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == ch {
		_ = ch.Close()
		p.ch = nil
	}
}

// Close closes the connection.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		return p.conn.Close()
	}
	return nil
}

// redact drops the URL (it may carry a password) from dial errors.
func redact(err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return fmt.Errorf("amqp error %d: %s", ae.Code, ae.Reason)
	}
	if msg := err.Error(); !strings.Contains(msg, "@") {
		return err // e.g. "dial tcp 127.0.0.1:5672: connection refused": no credentials
	}
	return errors.New("connection failed (details withheld: they contain the URL)")
}

// Handler processes one delivery. Return nil to ack. A non-nil error means
// "not handled, try again later": the delivery is nacked with requeue after
// a short pause. Handlers answer bad input themselves and return nil.
type Handler func(ctx context.Context, d amqp.Delivery) error

// Consume runs handler over queue with manual acks until ctx ends,
// reconnecting with backoff. prefetch bounds deliveries in flight; up to
// prefetch deliveries are handled concurrently.
func Consume(ctx context.Context, url string, cfg config.RMQConfig, queue string, prefetch int, handler Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := consumeOnce(ctx, url, cfg, queue, prefetch, handler, log)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("consumer stopped; reconnecting", "queue", queue, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	return nil
}

func consumeOnce(ctx context.Context, url string, cfg config.RMQConfig, queue string, prefetch int, handler Handler, log *slog.Logger) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return redact(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := Declare(ch, cfg); err != nil {
		return err
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.ConsumeWithContext(ctx, queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming %s: %w", queue, err)
	}
	log.Info("consuming", "queue", queue, "prefetch", prefetch)
	sem := make(chan struct{}, prefetch)
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
				// Handlers run to completion even while draining, so an ack
				// is never lost for work already done.
				hctx := context.WithoutCancel(ctx)
				if err := handler(hctx, d); err != nil {
					log.Warn("delivery not handled; requeueing", "queue", queue, "err", err)
					time.Sleep(500 * time.Millisecond)
					_ = d.Nack(false, true)
					return
				}
				_ = d.Ack(false)
			}()
		}
	}
}

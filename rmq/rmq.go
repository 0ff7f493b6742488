// Package rmq is payflow's RabbitMQ plumbing: topology declaration, a
// publisher with publisher confirms and reconnection, and a Consumer with
// manual acks that reconnects without losing a delivery (unacked deliveries
// are redelivered by the broker), retries outages without limit, and
// dead-letters poison deliveries (permanent errors, panics, or too many
// failed attempts) with their reason.
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

// Errors of Publish.
var (
	// ErrNacked means the broker refused a published message (e.g. a full
	// queue that rejects publishes).
	ErrNacked = errors.New("broker refused the message")
	// ErrUnconfirmed means the channel closed before the broker confirmed the
	// message: it may or may not have been stored. Publish again (consumers
	// deduplicate by message id).
	ErrUnconfirmed = errors.New("channel closed before the broker confirmed the message")
)

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
		if ch.IsClosed() {
			// The channel died (connection lost, or a channel error such as
			// a missing exchange) before the broker confirmed: not a nack.
			p.reset(ch)
			return fmt.Errorf("publishing %s: %w", m.MessageID, ErrUnconfirmed)
		}
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

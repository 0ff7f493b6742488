// Package stacktest drives the real local stack (`make up`) from tests and
// benchmarks, through .dev/stack.json and the wire protocol only: RabbitMQ in
// and out, the chain, and read-only looks at the ledger tables.
package stacktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"
	_ "github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"payflow/chain/token"
	"payflow/config"
	"payflow/internal/app"
	"payflow/internal/stackfile"
	"payflow/protocol"
)

// Stack is .dev/stack.json with the helpers tests reach the
// stack through.
type Stack struct {
	stackfile.Stack
}

// Chain is one entry of stack.json's chains.
type Chain = stackfile.Chain

// ChainEth dials chain c's node over HTTP.
func ChainEth(t testing.TB, c Chain) *ethclient.Client {
	t.Helper()
	e, err := ethclient.Dial(c.ETHRPCURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// Path finds stack.json: $PAYFLOW_STACK, else .dev/stack.json in the first
// parent directory of the working directory that has one.
func Path() (string, error) {
	if p := os.Getenv("PAYFLOW_STACK"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, ".dev", "stack.json")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New(".dev/stack.json not found: run `make up` first (make test does)")
		}
		dir = parent
	}
}

// Load reads stack.json and fails the test if the stack is not there.
func Load(t testing.TB) *Stack {
	t.Helper()
	p, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var s Stack
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("parsing %s: %v", p, err)
	}
	return &s
}

// DB opens the ledger database.
func (s *Stack) DB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", s.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Eth dials the chain over HTTP.
func (s *Stack) Eth(t testing.TB) *ethclient.Client {
	t.Helper()
	c, err := ethclient.Dial(s.ETHRPCURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// USDT binds the dev token.
func (s *Stack) USDT(t testing.TB, eth *ethclient.Client) *token.TestUSDT {
	t.Helper()
	u, err := token.NewTestUSDT(common.HexToAddress(s.Tokens["USDT"].Address), eth)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TokenBalance returns owner's USDT base units.
func TokenBalance(t testing.TB, u *token.TestUSDT, owner string) *big.Int {
	t.Helper()
	b, err := u.BalanceOf(&bind.CallOpts{}, common.HexToAddress(owner))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RandomID returns a fresh id with prefix.
func RandomID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// RandomAddress returns a fresh address nobody holds.
func RandomAddress() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "0x" + hex.EncodeToString(b)
}

// Publish signs body with the stack's key (unless sign is false) and publishes
// it to the request queue of flow.
func (s *Stack) Publish(t testing.TB, routingKey string, body []byte, sign bool) {
	t.Helper()
	if sign {
		var err error
		if body, err = protocol.SignBody(s.SignKey, body); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := amqp.Dial(s.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "pay.exchange", routingKey, true, false,
		amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("publish not confirmed: %v", err)
	}
}

// TemporalOptions are the client options of the stack's Temporal frontend,
// built as payflow's binaries build theirs (app.TemporalOptions). The local
// stack's frontend, dev server or cluster, is plaintext on loopback.
func (s *Stack) TemporalOptions() (client.Options, error) {
	return app.TemporalOptions(config.TemporalConfig{Address: s.TemporalAddress, Namespace: s.TemporalNamespace})
}

// Temporal dials the stack's Temporal frontend.
func (s *Stack) Temporal(t testing.TB) client.Client {
	t.Helper()
	opts, err := s.TemporalOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	c, err := client.Dial(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Find returns the deliveries whose raw body contains sub.
func (c *Collector) Find(sub string) []Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Delivery
	for _, ds := range c.byKey {
		for _, d := range ds {
			if bytes.Contains(d.Raw, []byte(sub)) {
				out = append(out, d)
			}
		}
	}
	return out
}

// WaitFind waits until a delivery containing sub arrives, or fails the test.
func (c *Collector) WaitFind(t testing.TB, sub string, timeout time.Duration) Delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if got := c.Find(sub); len(got) > 0 {
			return got[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waited %s for a message containing %q", timeout, sub)
	return Delivery{}
}

// Delivery is one response seen by a Collector.
type Delivery struct {
	MessageID string
	Headers   map[string]any
	Body      map[string]any
	Raw       []byte
	At        time.Time // when the collector received it
}

// Collector consumes a response queue and indexes messages by a key field
// ("queue_id" or "address"). Messages for other keys are consumed and kept too.
type Collector struct {
	field string
	mu    sync.Mutex
	byKey map[string][]Delivery
	conn  *amqp.Connection
}

// Collect starts collecting every message published to queue (through a
// private queue bound with the same routing key), indexed by field.
func (s *Stack) Collect(t testing.TB, queue, field string) *Collector {
	t.Helper()
	conn, err := amqp.Dial(s.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// A private queue bound like the shared one receives a copy of every
	// message: consuming the shared queue would race other consumers (tests
	// of other packages, tools) and lose messages to them.
	private, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSuffix(queue, ".queue") + ".routing.key" // the default names
	if err := ch.QueueBind(private.Name, key, "pay.exchange", false, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(private.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{field: field, byKey: map[string][]Delivery{}, conn: conn}
	go func() {
		for d := range ds {
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(d.Body))
			dec.UseNumber()
			_ = dec.Decode(&m)
			key := fmt.Sprint(m[c.field])
			at := time.Now()
			c.mu.Lock()
			c.byKey[key] = append(c.byKey[key], Delivery{MessageID: d.MessageId, Headers: d.Headers, Body: m, Raw: d.Body, At: at})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

// Get returns what arrived for key so far.
func (c *Collector) Get(key string) []Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Delivery(nil), c.byKey[key]...)
}

// Wait waits until at least n messages arrived for key, or fails the test.
func (c *Collector) Wait(t testing.TB, key string, n int, timeout time.Duration) []Delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if got := c.Get(key); len(got) >= n {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waited %s for %d responses for %s, got %d", timeout, n, key, len(c.Get(key)))
	return nil
}

// QueueDepth returns the ready-message count of queue.
func (s *Stack) QueueDepth(t testing.TB, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(s.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/protocol"
	"payflow/rmq"
	"payflow/workflows"
)

// These tests drive the handlers with the dev stack's real Temporal server
// (.dev/stack.json) on a task queue of their own that no worker polls, so a
// workflow they start never runs and never pays; they terminate it at the
// end. Answers are captured instead of published: what the broker does with
// them is rmq's tests' business.

// capture records published messages; err, when set, is returned instead.
type capture struct {
	mu  sync.Mutex
	got []rmq.Message
	err error
}

func (c *capture) Publish(_ context.Context, m rmq.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.got = append(c.got, m)
	return nil
}

func (c *capture) all() []rmq.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rmq.Message(nil), c.got...)
}

type fixture struct {
	t   *testing.T
	st  *stacktest.Stack
	tc  client.Client
	pub *capture
	in  *Intake
	cfg config.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := stacktest.Load(t)
	cfg := config.Default()
	cfg.SignKey = config.Secret(st.SignKey)
	cfg.Tokens = st.Tokens
	cfg.Temporal.TaskQueue = stacktest.RandomID("intake-test-") // no worker polls it
	cfg.ResolveChains()
	tc := st.Temporal(t)
	pub := &capture{}
	return &fixture{t: t, st: st, tc: tc, pub: pub, cfg: cfg,
		in: New(cfg, tc, pub, slog.New(slog.NewTextHandler(io.Discard, nil)))}
}

// handle runs the flow's handler over body as one delivery.
func (f *fixture) handle(flow protocol.Flow, body []byte) error {
	h := f.in.HandleTopup()
	if flow != protocol.FlowTopup {
		h = f.in.HandlePayment(flow)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h(ctx, amqp.Delivery{Body: body, RoutingKey: string(flow)})
}

func (f *fixture) sign(fields map[string]any) []byte {
	f.t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := protocol.SignBody(f.st.SignKey, b)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) pay(queueID, orderID, to string) map[string]any {
	m := map[string]any{"queue_id": queueID, "from_address": f.st.CollectionAddress, "to_address": to,
		"amount": json.Number("1.5"), "chain": "ETH", "symbol": "USDT", "timestamp": time.Now().Unix()}
	if orderID != "" {
		m["order_id"] = orderID
	}
	return m
}

// started returns the input of the payment workflow id if one was started,
// and terminates it at the end of the test.
func (f *fixture) started(id string) (workflows.PaymentInput, bool) {
	f.t.Helper()
	_, err := f.tc.DescribeWorkflowExecution(context.Background(), id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return workflows.PaymentInput{}, false
	}
	if err != nil {
		f.t.Fatalf("describing %s: %v", id, err)
	}
	f.t.Cleanup(func() { _ = f.tc.TerminateWorkflow(context.Background(), id, "", "intake test done") })
	it := f.tc.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	if err != nil {
		f.t.Fatalf("reading the history of %s: %v", id, err)
	}
	var in workflows.PaymentInput
	p := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(p) != 1 || converter.GetDefaultDataConverter().FromPayload(p[0], &in) != nil {
		f.t.Fatalf("%s has no PaymentInput", id)
	}
	return in, true
}

// exists reports whether a payment that may pay was started for id. (A
// refused request starts only the workflow that records and answers its
// status=0, with PaymentInput.Refused set.)
func (f *fixture) exists(id string) bool {
	f.t.Helper()
	in, ok := f.started(id)
	return ok && in.Refused == ""
}

// answer returns the status=0 answer a refused request gets for queueID:
// the refusal its payment workflow records and publishes.
func (f *fixture) answer(queueID string) protocol.PaymentResponse {
	f.t.Helper()
	for _, id := range []string{workflows.WithdrawWorkflowID(queueID), workflows.PayWorkflowID(queueID)} {
		if in, ok := f.started(id); ok {
			if in.Refused == "" {
				f.t.Fatalf("%s was started to pay, not refused", id)
			}
			return protocol.PaymentResponse{QueueID: in.Request.QueueID, Status: protocol.StatusFailed, Error: in.Refused}
		}
	}
	f.t.Fatalf("no answer for %s", queueID)
	return protocol.PaymentResponse{}
}

// TestRefusedRecipients: a payment to the zero address
// or to a configured token contract is answered status=0 with a clear error
// before any workflow starts, so nothing is signed and no gas is spent.
func TestRefusedRecipients(t *testing.T) {
	f := newFixture(t)
	usdt := f.st.Tokens["USDT"].Address
	cases := []struct {
		name, to, want string
		flow           protocol.Flow
	}{
		{"zero address", "0x0000000000000000000000000000000000000000", "to_address is the zero address", protocol.FlowWithdraw},
		{"token contract", "0x" + strings.ToUpper(usdt[2:]), "USDT token contract", protocol.FlowPay},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			qid := stacktest.RandomID("it-recipient-")
			order := ""
			if c.flow == protocol.FlowPay {
				order = "o-" + qid
			}
			if err := f.handle(c.flow, f.sign(f.pay(qid, order, c.to))); err != nil {
				t.Fatalf("handler: %v", err)
			}
			if f.exists(PaymentWorkflowID(c.flow, qid)) {
				t.Fatalf("a workflow was started for a payment to %s", c.to)
			}
			r := f.answer(qid)
			if r.Status != protocol.StatusFailed || !strings.Contains(r.Error, c.want) {
				t.Fatalf("answer status %d error %q, want 0 and %q", r.Status, r.Error, c.want)
			}
		})
	}
	// A sender paying itself is allowed.
	qid := stacktest.RandomID("it-self-")
	if err := f.handle(protocol.FlowWithdraw, f.sign(f.pay(qid, "", f.st.CollectionAddress))); err != nil {
		t.Fatal(err)
	}
	if !f.exists(PaymentWorkflowID(protocol.FlowWithdraw, qid)) {
		t.Fatal("payment to its own sender was refused")
	}
}

// TestForgedPayStartsNothing: the forged pay of
// protocol's TestForgedPayIsRefused, carrying the honest request's
// signature, starts no workflow; it is answered status=0 naming the unknown
// field, and the honest one is refused for the '&' in its order_id.
func TestForgedPayStartsNothing(t *testing.T) {
	f := newFixture(t)
	honestID, forgedID := stacktest.RandomID("it-honest-"), stacktest.RandomID("it-forged-")
	evil := stacktest.RandomAddress()
	to := stacktest.RandomAddress()
	ts := fmt.Sprint(time.Now().Unix())
	honest := f.pay(honestID, "o1&queue_id="+forgedID+"&symbol=USDT&timestamp="+ts+"&to_address="+evil+"&zz=", to)
	honest["timestamp"] = json.Number(ts)
	signed := f.sign(honest)
	var sf map[string]any
	_ = json.Unmarshal(signed, &sf)
	forged := f.pay(forgedID, "o1", evil)
	forged["timestamp"] = json.Number(ts)
	forged["zz"] = "&queue_id=" + honestID + "&symbol=USDT&timestamp=" + ts + "&to_address=" + to
	forged["sign"] = sf["sign"]
	fb, _ := json.Marshal(forged)

	if err := f.handle(protocol.FlowPay, fb); err != nil {
		t.Fatalf("handler: %v", err)
	}
	if f.exists(workflows.PayWorkflowID(forgedID)) {
		t.Fatal("the forged pay started a workflow")
	}
	if r := f.answer(forgedID); r.Status != protocol.StatusFailed || !strings.Contains(r.Error, `"zz"`) {
		t.Fatalf("forged pay answered status %d error %q", r.Status, r.Error)
	}
	if err := f.handle(protocol.FlowPay, signed); err != nil {
		t.Fatalf("handler: %v", err)
	}
	if f.exists(workflows.PayWorkflowID(honestID)) {
		t.Fatal("a pay whose order_id carries '&' started a workflow")
	}
	if r := f.answer(honestID); !strings.Contains(r.Error, "order_id must not contain '&' or '='") {
		t.Fatalf("honest pay answered error %q", r.Error)
	}
}

// TestIDLimits: a 128-character and a non-ASCII
// queue_id start their workflow; an order_id over 128 characters (the
// seed's 8 KB case, which Temporal refused and which looped for ever) is
// answered status=0 in business terms; a queue_id over the limit has no id
// to answer to and is dead-lettered with the reason.
func TestIDLimits(t *testing.T) {
	f := newFixture(t)
	long := string([]rune(strings.Repeat("支付-ünïcødé-", 12))[:128-13]) + stacktest.RandomID("-")
	if n := len([]rune(long)); n != 128 {
		t.Fatalf("fixture has %d characters", n)
	}
	for _, qid := range []string{long, stacktest.RandomID("支付-ünïcødé-")} {
		if err := f.handle(protocol.FlowPay, f.sign(f.pay(qid, stacktest.RandomID("订单-ü-"), stacktest.RandomAddress()))); err != nil {
			t.Fatalf("queue_id %q: %v", qid, err)
		}
		if !f.exists(workflows.PayWorkflowID(qid)) {
			t.Fatalf("queue_id %q started no workflow", qid)
		}
	}

	qid := stacktest.RandomID("it-order8k-")
	if err := f.handle(protocol.FlowPay, f.sign(f.pay(qid, strings.Repeat("o", 8192), stacktest.RandomAddress()))); err != nil {
		t.Fatalf("handler: %v", err)
	}
	if f.exists(workflows.PayWorkflowID(qid)) {
		t.Fatal("8 KB order_id started a workflow")
	}
	r := f.answer(qid)
	if r.Status != protocol.StatusFailed || !strings.Contains(r.Error, "order_id must be at most 128 characters") {
		t.Fatalf("8 KB order_id answered status %d error %q", r.Status, r.Error)
	}
	if r.OrderID != "" {
		t.Errorf("answer echoes the oversize order_id (%d characters)", len(r.OrderID))
	}

	err := f.handle(protocol.FlowWithdraw, f.sign(f.pay(long+"x", "", stacktest.RandomAddress())))
	if !rmq.IsPermanent(err) || !strings.Contains(err.Error(), "queue_id must be 1 to 128 characters") {
		t.Fatalf("queue_id of 129 characters: %v, want a permanent error naming the limit", err)
	}
}

// TestDuplicatesAndReuse: a redelivered request starts nothing new and
// answers nothing; a queue_id reused with other content is dead-lettered
// (a permanent error carrying the reason).
func TestDuplicatesAndReuse(t *testing.T) {
	f := newFixture(t)
	qid := stacktest.RandomID("it-dup-")
	m := f.pay(qid, "", stacktest.RandomAddress())
	body := f.sign(m)
	for range 2 {
		if err := f.handle(protocol.FlowWithdraw, body); err != nil {
			t.Fatal(err)
		}
	}
	if !f.exists(workflows.WithdrawWorkflowID(qid)) {
		t.Fatal("no workflow")
	}
	m["amount"] = json.Number("2")
	err := f.handle(protocol.FlowWithdraw, f.sign(m))
	if !rmq.IsPermanent(err) || !strings.Contains(err.Error(), "different content") {
		t.Fatalf("reused queue_id: %v", err)
	}
	// A bad request naming that queue_id must not be answered: the payment's
	// own answer is the only one.
	m["amount"] = json.Number("0")
	if err := f.handle(protocol.FlowWithdraw, f.sign(m)); !rmq.IsPermanent(err) {
		t.Fatalf("bad request reusing a queue_id: %v", err)
	}
	if n := len(f.pub.all()); n != 0 {
		t.Fatalf("%d answers published, want none", n)
	}
}

// TestBadDeliveries: what has no id to answer to is dead-lettered (a
// permanent error), and a failure to publish an answer is an outage to
// retry, never a reason to drop the request.
func TestBadDeliveries(t *testing.T) {
	f := newFixture(t)
	for _, body := range []string{`{"queue_id":`, `[]`, `{"note":"x"}`} {
		if err := f.handle(protocol.FlowWithdraw, []byte(body)); !rmq.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error", body, err)
		}
	}
	if err := f.handle(protocol.FlowTopup, []byte(`{"chain":"ETH"}`)); !rmq.IsPermanent(err) {
		t.Errorf("topup without address: %v, want a permanent error", err)
	}
	// A refused request with a queue_id is answered by its payment workflow
	// (see answer), so its status=0 is recorded as that queue_id's one
	// answer: the same bad request again is a duplicate, a later request
	// reusing the queue_id is refused.
	qid := stacktest.RandomID("it-refused-")
	bad := f.sign(f.pay(qid, "", "0x0000000000000000000000000000000000000000"))
	for range 2 {
		if err := f.handle(protocol.FlowWithdraw, bad); err != nil {
			t.Fatalf("refused request: %v", err)
		}
	}
	if err := f.handle(protocol.FlowWithdraw, f.sign(f.pay(qid, "", stacktest.RandomAddress()))); !rmq.IsPermanent(err) {
		t.Fatalf("a valid request reusing a refused queue_id: %v, want it dead-lettered", err)
	}
	if f.exists(workflows.WithdrawWorkflowID(qid)) {
		t.Fatal("a valid request reusing a refused queue_id started a payment")
	}
}

// TestTemporalErrorsAreTyped: the real server's refusal of a start (a search
// attribute over its size limit, the seed's 8 KB order_id) is permanent, so
// the delivery is dead-lettered instead of requeued for ever; an unreachable
// server is an outage, retried without limit.
func TestTemporalErrorsAreTyped(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := stacktest.RandomID("it-sa-limit-")
	_, err := f.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: f.cfg.Temporal.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrOrderID.ValueSet(strings.Repeat("o", 8192)))},
		workflows.Pay, workflows.PaymentInput{})
	if err == nil {
		f.exists(id)
		t.Fatal("Temporal accepted an 8 KB search attribute; this test needs its refusal")
	}
	t.Logf("Temporal refused the start: %v", err)
	if got := temporalErr(err); !rmq.IsPermanent(got) {
		t.Fatalf("refusal %v typed as %T, want permanent", err, got)
	}

	down, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	in := New(f.cfg, down, f.pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	err = in.HandlePayment(protocol.FlowWithdraw)(dctx, amqp.Delivery{Body: f.sign(f.pay(stacktest.RandomID("it-down-"), "", stacktest.RandomAddress()))})
	t.Logf("Temporal unreachable: %v", err)
	if !rmq.IsTransient(err) {
		t.Fatalf("Temporal unreachable: %v, want a transient error", err)
	}
}

// TestBusinessReason: only protocol errors reach a business system; any
// other text is replaced.
func TestBusinessReason(t *testing.T) {
	in := &Intake{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if got := in.businessReason(errors.New("Error 1406 (22001): Data too long for column 'queue_id'")); strings.Contains(got, "1406") {
		t.Fatalf("internal text leaked: %q", got)
	}
	err := fmt.Errorf("%w: %w: amount must be > 0", protocol.ErrInvalidRequest, protocol.ErrBadAmount)
	if got := in.businessReason(err); got != err.Error() {
		t.Fatalf("protocol error rewritten: %q", got)
	}
}

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/converter"

	"payflow/internal/stacktest"
	"payflow/protocol"
	"payflow/workflows"
)

// noPayment fails unless the workflow id, if it exists, only refused its
// request: a refused request starts nothing but the workflow that records and
// publishes its status=0 (so that answer is final for the queue_id), which
// reserves, signs and sends nothing.
func noPayment(t *testing.T, st *stacktest.Stack, id string) {
	t.Helper()
	tc := st.Temporal(t)
	_, err := tc.DescribeWorkflowExecution(context.Background(), id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return
	}
	if err != nil {
		t.Errorf("checking %s: %v", id, err)
		return
	}
	ev, err := tc.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT).Next()
	if err != nil {
		t.Errorf("reading %s: %v", id, err)
		return
	}
	var in workflows.PaymentInput
	p := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(p) != 1 || converter.GetDefaultDataConverter().FromPayload(p[0], &in) != nil || in.Refused == "" {
		t.Errorf("workflow %s was started to pay; the request must be refused", id)
	}
	if n := signedCount(t, st, id); n != 0 {
		t.Errorf("%d transfers signed for %s", n, id)
	}
}

// TestForgedPayIsRefused on the running stack: a
// business signs a pay whose order_id carries "&queue_id=…&to_address=…&zz=";
// the attacker sends a pay with another queue_id and recipient, the tail of
// the honest canonical string in an unknown field zz, and the honest
// signature. The forged pay is answered status=0 naming the unknown field,
// starts no payment and moves nothing; the honest one is refused for the
// '&' in its order_id.
func TestForgedPayIsRefused(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	resp := st.Collect(t, payResp, "queue_id")
	from := walletByLabel(t, db, "user-1")
	honestID, forgedID := stacktest.RandomID("it-honest-"), stacktest.RandomID("it-forged-")
	to, evil := stacktest.RandomAddress(), stacktest.RandomAddress()
	ts := fmt.Sprint(time.Now().Unix())

	honest, err := protocol.SignBody(st.SignKey, []byte(fmt.Sprintf(
		`{"queue_id":%q,"order_id":%q,"from_address":%q,"to_address":%q,"amount":1,"chain":"ETH","symbol":"USDT","timestamp":%s}`,
		honestID, "o1&queue_id="+forgedID+"&symbol=USDT&timestamp="+ts+"&to_address="+evil+"&zz=", from, to, ts)))
	if err != nil {
		t.Fatal(err)
	}
	var hf map[string]json.RawMessage
	_ = json.Unmarshal(honest, &hf)
	forged := []byte(fmt.Sprintf(
		`{"queue_id":%q,"order_id":"o1","from_address":%q,"to_address":%q,"amount":1,"chain":"ETH","symbol":"USDT","timestamp":%s,"zz":%q,"sign":%s}`,
		forgedID, from, evil, ts, "&queue_id="+honestID+"&symbol=USDT&timestamp="+ts+"&to_address="+to, hf["sign"]))
	var ff map[string]json.RawMessage
	_ = json.Unmarshal(forged, &ff)
	if a, b := mustCanonical(t, hf), mustCanonical(t, ff); a != b {
		t.Fatalf("the forgery does not reproduce: canonical strings differ\n%s\n%s", a, b)
	}

	st.Publish(t, payKey, forged, false)
	st.Publish(t, payKey, honest, false)
	got := resp.Wait(t, forgedID, 1, responseWait)[0].Body
	if fmt.Sprint(got["status"]) != "0" || !strings.Contains(fmt.Sprint(got["error"]), `"zz"`) {
		t.Fatalf("forged pay: status %v error %v, want 0 naming zz", got["status"], got["error"])
	}
	h := resp.Wait(t, honestID, 1, responseWait)[0].Body
	if fmt.Sprint(h["status"]) != "0" || !strings.Contains(fmt.Sprint(h["error"]), "must not contain '&' or '='") {
		t.Errorf("honest pay: status %v error %v", h["status"], h["error"])
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(forgedID)); n != 1 {
		t.Errorf("%d answers for the forged pay, want 1", n)
	}
	noPayment(t, st, "pay-"+forgedID)
	noPayment(t, st, "pay-"+honestID)
	if n := signedCount(t, st, "pay-"+forgedID); n != 0 {
		t.Errorf("%d transfers signed for the forged pay", n)
	}
	if b := stacktest.TokenBalance(t, usdt, evil); b.Sign() != 0 {
		t.Errorf("the forged recipient holds %s USDT units", b)
	}
}

func mustCanonical(t *testing.T, f map[string]json.RawMessage) string {
	t.Helper()
	c, err := protocol.Canonical(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRequestsBoundToFailAreRefusedBeforeSigning on the running stack: a recipient that must not receive (the zero
// address, the token contract), a field the protocol does not know, a value
// carrying '&', and the seed's 8 KB order_id (which Temporal refused as a
// search attribute and the old starter requeued ~270 times a minute) are all
// answered status=0 with an error in business terms; none starts a workflow
// or signs anything (only the workflow that answers it), and each is answered once (nothing loops back).
func TestRequestsBoundToFailAreRefusedBeforeSigning(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	resp := st.Collect(t, payResp, "queue_id")
	from := walletByLabel(t, db, "user-1")
	to := stacktest.RandomAddress()
	type tc struct{ name, qid, body, want string }
	var cases []tc
	add := func(name, orderID, to, extra, want string) {
		qid := stacktest.RandomID("it-refuse-" + name + "-")
		body := strings.TrimSuffix(string(payBody(qid, orderID, from, to, "1")), "}") + extra + "}"
		cases = append(cases, tc{name, qid, body, want})
	}
	add("zero", "o", "0x0000000000000000000000000000000000000000", "", "zero address")
	add("token", "o", "0x"+strings.ToUpper(st.Tokens["USDT"].Address[2:]), "", "USDT token contract")
	add("order8k", strings.Repeat("o", 8192), to, "", "order_id must be at most 128 characters")
	add("unknown", "o", to, `,"memo":"hi"`, `"memo" is not a field of a pay request`)
	add("amp", "a&b", to, "", "order_id must not contain '&' or '='")
	add("object", "o", to, `,"note":{"a":1}`, "is not a field")
	for _, c := range cases {
		st.Publish(t, payKey, []byte(c.body), true)
	}
	for _, c := range cases {
		got := resp.Wait(t, c.qid, 1, responseWait)[0].Body
		e := fmt.Sprint(got["error"])
		if fmt.Sprint(got["status"]) != "0" || !strings.Contains(e, c.want) {
			t.Errorf("%s: status %v error %q, want 0 and %q", c.name, got["status"], e, c.want)
		}
		for _, internal := range []string{"serviceerror", "rpc error", "Error 1", "goroutine", "search attribute"} {
			if strings.Contains(e, internal) {
				t.Errorf("%s: error %q carries internal text", c.name, e)
			}
		}
		noPayment(t, st, "pay-"+c.qid)
		if n := signedCount(t, st, "pay-"+c.qid); n != 0 {
			t.Errorf("%s: %d transfers signed", c.name, n)
		}
	}
	// Each answered exactly once: nothing loops back for another answer.
	time.Sleep(quietInterval)
	for _, c := range cases {
		if n := len(resp.Get(c.qid)); n != 1 {
			t.Errorf("%s: %d answers, want 1", c.name, n)
		}
	}
}

package integration

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/stacktest"
	"payflow/workflows"
)

const (
	payKey  = "pay.auto.routing.key"
	payResp = "pay.auto.return.queue"
	dlq     = "pay.dead.letter.queue"
)

func payBody(queueID, orderID, from, to, amount string) []byte {
	return []byte(fmt.Sprintf(`{"queue_id":%q,"order_id":%q,"from_address":%q,"to_address":%q,"amount":%s,"chain":"ETH","symbol":"USDT","timestamp":%d}`,
		queueID, orderID, from, to, amount, time.Now().Unix()))
}

func status(d stacktest.Delivery) string { return fmt.Sprint(d.Body["status"]) }

// onlyOne waits for the answer to key, then watches a while longer and fails
// if a second one arrives.
func onlyOne(t *testing.T, c *stacktest.Collector, key string) stacktest.Delivery {
	t.Helper()
	got := c.Wait(t, key, 1, responseWait)[0]
	time.Sleep(quietInterval)
	if n := len(c.Get(key)); n != 1 {
		t.Fatalf("%d responses for %s, want exactly 1", n, key)
	}
	return got
}

func signedCount(t *testing.T, st *stacktest.Stack, wfID string) int {
	t.Helper()
	var n int
	if err := st.DB(t).QueryRow("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", wfID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWithdrawInsufficientFunds(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	from := walletByLabel(t, db, "user-3")
	before := balance(t, st, from)
	qid := stacktest.RandomID("it-short-")
	// More than the sender and the collection wallet hold together.
	st.Publish(t, withdrawKey, withdrawBody(qid, from, stacktest.RandomAddress(), "4000000000"), true)
	got := resp.Wait(t, qid, 1, responseWait)[0]
	// Insufficient funds is decided at the reservation, before any approval.
	if status(got) != "0" || !strings.Contains(fmt.Sprint(got.Body["error"]), "insufficient") {
		t.Fatalf("got status %s error %v, want 0 and an insufficient-funds error", status(got), got.Body["error"])
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(qid)); n != 1 {
		t.Fatalf("%d responses, want 1", n)
	}
	if after := balance(t, st, from); !after.available.Equal(before.available) || !after.held.Equal(before.held) {
		t.Errorf("ledger changed: %+v → %+v", before, after)
	}
	if n := signedCount(t, st, "withdraw-"+qid); n != 0 {
		t.Errorf("%d transactions signed for a refused withdraw", n)
	}
}

func TestPayEchoesOrderID(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	usdt := st.USDT(t, st.Eth(t))
	resp := st.Collect(t, payResp, "queue_id")
	qid, order := stacktest.RandomID("it-pay-"), stacktest.RandomID("order-")
	to := stacktest.RandomAddress()
	st.Publish(t, payKey, payBody(qid, order, walletByLabel(t, db, "user-2"), to, "1.5"), true)
	got := onlyOne(t, resp, qid)
	if status(got) != "1" || got.Body["order_id"] != order {
		t.Fatalf("status %s order_id %v error %v; want 1 and %s", status(got), got.Body["order_id"], got.Body["error"], order)
	}
	if got.MessageID != "pay-"+qid+"/result" {
		t.Errorf("message id %q", got.MessageID)
	}
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(big.NewInt(1_500_000)) != 0 {
		t.Errorf("merchant holds %s units, want 1500000", b)
	}
}

func TestWithdrawFallsBackToCollectionWallet(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	usdt := st.USDT(t, st.Eth(t))
	resp := st.Collect(t, withdrawResp, "queue_id")
	from := walletByLabel(t, db, "user-3")
	short := balance(t, st, from).available.Add(decimal.NewFromInt(1)).StringFixed(0)
	qid := stacktest.RandomID("it-fallback-")
	to := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(qid, from, to, short), true)
	got := onlyOne(t, resp, qid)
	if status(got) != "1" {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	if got.Body["from_address"] != st.CollectionAddress {
		t.Errorf("from_address %v, want the collection wallet %s", got.Body["from_address"], st.CollectionAddress)
	}
	want, _ := decimal.NewFromString(short)
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(want.Shift(6).BigInt()) != 0 {
		t.Errorf("recipient holds %s units, want %s", b, want.Shift(6))
	}
	// The collection wallet's own journal shows the debit (its balance may
	// move meanwhile: other tests sweep into it).
	var settled decimal.Decimal
	if err := db.QueryRow("SELECT amount FROM journal WHERE op='settle' AND reference=? AND address=?",
		"withdraw-"+qid, st.CollectionAddress).Scan(&settled); err != nil {
		t.Fatalf("collection settle entry: %v", err)
	}
	if !settled.Equal(want.Neg()) {
		t.Errorf("collection settled %s, want -%s", settled, want)
	}
}

// TestApprovalApproveAndTimeout: a payment above the dev threshold (50,000)
// waits; an operator's approval signal lets it pay; an unanswered one is
// rejected by the timeout with one status=0 and the reservation released.
func TestApprovalApproveAndTimeout(t *testing.T) {
	st := stacktest.Load(t)
	tc := st.Temporal(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	approved, ignored := stacktest.RandomID("it-approve-"), stacktest.RandomID("it-noanswer-")
	before := balance(t, st, st.CollectionAddress)
	st.Publish(t, withdrawKey, withdrawBody(approved, st.CollectionAddress, stacktest.RandomAddress(), "60000"), true)
	st.Publish(t, withdrawKey, withdrawBody(ignored, st.CollectionAddress, stacktest.RandomAddress(), "60001"), true)

	wfID := workflows.WithdrawWorkflowID(approved)
	deadline := time.Now().Add(time.Minute)
	for {
		var s workflows.PaymentStatus
		v, err := tc.QueryWorkflow(context.Background(), wfID, "", workflows.QueryStatus)
		if err == nil && v.Get(&s) == nil && s.Step == workflows.StepApproval {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %s", wfID, workflows.StepApproval)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := signedCount(t, st, wfID); n != 0 {
		t.Fatalf("signed before approval")
	}
	if err := tc.SignalWorkflow(context.Background(), wfID, "", workflows.SignalApproval,
		workflows.Approval{Approve: true, By: "integration-test"}); err != nil {
		t.Fatal(err)
	}
	if got := onlyOne(t, resp, approved); status(got) != "1" {
		t.Fatalf("approved payment: status %s error %v", status(got), got.Body["error"])
	}
	got := onlyOne(t, resp, ignored)
	if status(got) != "0" || !strings.Contains(fmt.Sprint(got.Body["error"]), "no approval within") {
		t.Fatalf("unanswered payment: status %s error %v", status(got), got.Body["error"])
	}
	after := balance(t, st, st.CollectionAddress)
	if !before.available.Sub(after.available).Equal(decimal.NewFromInt(60000)) || !after.held.Equal(before.held) {
		t.Errorf("collection %+v → %+v: want only the approved 60000 gone and nothing held", before, after)
	}
}

// TestDuplicatesStartNothing: the same request twice gives one payment; the
// same queue_id with other content is dead-lettered with the reason.
func TestDuplicatesStartNothing(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	dead := st.Collect(t, dlq, "queue_id")
	from := walletByLabel(t, db, "user-2")
	to := stacktest.RandomAddress()
	qid := stacktest.RandomID("it-dup-")
	body := withdrawBody(qid, from, to, "2")
	st.Publish(t, withdrawKey, body, true)
	st.Publish(t, withdrawKey, body, true)
	st.Publish(t, withdrawKey, withdrawBody(qid, from, to, "3"), true) // reused queue_id, other amount
	if got := onlyOne(t, resp, qid); status(got) != "1" {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	d := dead.Wait(t, qid, 1, time.Minute)[0]
	if r := fmt.Sprint(d.Headers["x-payflow-reason"]); !strings.Contains(r, "different content") {
		t.Errorf("dead letter reason %q", r)
	}
	if fmt.Sprint(d.Body["amount"]) != "3" {
		t.Errorf("dead letter is not the reused request: %s", d.Raw)
	}
	if n := signedCount(t, st, "withdraw-"+qid); n != 1 {
		t.Errorf("%d transfers signed, want 1", n)
	}
}

// TestBadInputs: every kind of bad input gets a clear status=0
// (when it carries a queue_id) or a dead letter (when it does not), and the
// consumer keeps going: a good request afterwards is paid.
func TestBadInputs(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	dead := st.Collect(t, dlq, "queue_id")
	from := walletByLabel(t, db, "user-1")
	to := stacktest.RandomAddress()
	now := time.Now().Unix()
	type tc struct {
		name, body, wantErr string
		sign                bool
	}
	id := func(n string) string { return "it-bad-" + n + "-" + stacktest.RandomID("") }
	cases := []tc{}
	add := func(name, tmpl, wantErr string, sign bool) {
		q := id(name)
		cases = append(cases, tc{name: q, body: strings.ReplaceAll(tmpl, "QID", q), wantErr: wantErr, sign: sign})
	}
	base := func(from, to, amount, chain, symbol string, ts int64) string {
		return fmt.Sprintf(`{"queue_id":"QID","from_address":%q,"to_address":%q,"amount":%s,"chain":%q,"symbol":%q,"timestamp":%d}`,
			from, to, amount, chain, symbol, ts)
	}
	add("sig", strings.TrimSuffix(base(from, to, "1", "ETH", "USDT", now), "}")+`,"sign":"deadbeef"}`, "signature", false)
	add("stale", base(from, to, "1", "ETH", "USDT", now-3600), "timestamp", true)
	add("chain", base(from, to, "1", "TRON", "USDT", now), "unknown chain", true)
	add("symbol", base(from, to, "1", "ETH", "SHIB", now), "unknown symbol", true)
	add("address", base(from, "0x1234", "1", "ETH", "USDT", now), "to_address", true)
	add("zero", base(from, to, "0", "ETH", "USDT", now), "must be > 0", true)
	add("decimals", base(from, to, "1.0000001", "ETH", "USDT", now), "decimals", true)
	add("from", base(stacktest.RandomAddress(), to, "1", "ETH", "USDT", now), "not a wallet payflow manages", true)
	for _, c := range cases {
		st.Publish(t, withdrawKey, []byte(c.body), c.sign)
	}
	marker := stacktest.RandomID("garbage-")
	st.Publish(t, withdrawKey, []byte(`{"queue_id": "`+marker), false) // not JSON at all
	st.Publish(t, withdrawKey, []byte(`{"note":"`+marker+`-noid"}`), false)

	for _, c := range cases {
		got := resp.Wait(t, c.name, 1, responseWait)[0]
		if status(got) != "0" || !strings.Contains(fmt.Sprint(got.Body["error"]), c.wantErr) {
			t.Errorf("%s: status %s error %q, want 0 and %q", c.name, status(got), got.Body["error"], c.wantErr)
		}
	}
	for _, sub := range []string{marker, marker + "-noid"} {
		d := dead.WaitFind(t, sub, time.Minute)
		if r := fmt.Sprint(d.Headers["x-payflow-reason"]); r == "" || r == "<nil>" {
			t.Errorf("dead letter %s has no reason", sub)
		}
	}
	// The consumer is alive: a good request is paid.
	good := stacktest.RandomID("it-after-bad-")
	st.Publish(t, withdrawKey, withdrawBody(good, from, to, "0.5"), true)
	if got := onlyOne(t, resp, good); status(got) != "1" {
		t.Fatalf("good request after bad ones: status %s error %v", status(got), got.Body["error"])
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	p, err := stacktest.Path()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(p))
}

func stack(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "stack.sh"), args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("stack.sh %v: %v", args, err)
	}
}

// workerPIDs is the pid of every worker process of the stack by its name
// ("worker", "worker-2", …), from .dev/pids.
func workerPIDs(t *testing.T) map[string]string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), ".dev", "pids")
	files, err := filepath.Glob(filepath.Join(dir, "worker-*.pid"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range append([]string{filepath.Join(dir, "worker.pid")}, files...) {
		pid, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".pid")] = strings.TrimSpace(string(pid))
	}
	return out
}

// TestWorkerKilledMidPayment: the worker is killed (SIGKILL) right after the
// transfer is signed (every worker, when the stack runs several); a new
// worker finishes the payment: one transfer on chain, one response.
func TestWorkerKilledMidPayment(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	usdt := st.USDT(t, st.Eth(t))
	resp := st.Collect(t, withdrawResp, "queue_id")
	qid := stacktest.RandomID("it-kill-")
	wfID := workflows.WithdrawWorkflowID(qid)
	to := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(qid, walletByLabel(t, db, "user-1"), to, "3.25"), true)
	deadline := time.Now().Add(time.Minute)
	for signedCount(t, st, wfID) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("transfer never signed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every worker process dies, so the one running the payment does
	// whichever it is (with PAYFLOW_WORKERS, the stack runs several).
	workers := workerPIDs(t)
	for name, pid := range workers {
		if err := exec.Command("kill", "-9", pid).Run(); err != nil {
			t.Fatalf("killing %s (%s): %v", name, pid, err)
		}
	}
	restart := func() {
		for name := range workers {
			stack(t, "start-payflow", name)
		}
	}
	t.Cleanup(restart)
	time.Sleep(2 * time.Second)
	restart()

	got := onlyOne(t, resp, qid)
	if status(got) != "1" {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	if n := signedCount(t, st, wfID); n != 1 {
		t.Errorf("%d transfers signed, want 1", n)
	}
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(big.NewInt(3_250_000)) != 0 {
		t.Errorf("recipient holds %s units, want 3250000", b)
	}
}

// TestResetAfterBroadcastPaysOnce: an operator resets a completed withdraw to
// its first workflow task; the replayed run re-sends the same signed bytes,
// settles nothing twice and publishes no second response.
func TestResetAfterBroadcastPaysOnce(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	usdt := st.USDT(t, st.Eth(t))
	tc := st.Temporal(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	qid := stacktest.RandomID("it-reset-")
	wfID := workflows.WithdrawWorkflowID(qid)
	to := stacktest.RandomAddress()
	from := walletByLabel(t, db, "user-2")
	st.Publish(t, withdrawKey, withdrawBody(qid, from, to, "4"), true)
	if got := resp.Wait(t, qid, 1, responseWait)[0]; status(got) != "1" {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	before := balance(t, st, from)
	resetWorkflow(t, st, tc, wfID, "FirstWorkflowTask", true)
	if res := runResult(t, tc, wfID); res.Status != 1 {
		t.Fatalf("reset run ended with status %d (%s)", res.Status, res.Error)
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(qid)); n != 1 {
		t.Errorf("%d responses after the reset, want 1", n)
	}
	if n := signedCount(t, st, wfID); n != 1 {
		t.Errorf("%d transfers signed after the reset, want 1", n)
	}
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(big.NewInt(4_000_000)) != 0 {
		t.Errorf("recipient holds %s units after the reset, want 4000000", b)
	}
	if after := balance(t, st, from); !after.available.Equal(before.available) || !after.held.Equal(before.held) {
		t.Errorf("ledger moved on reset: %+v → %+v", before, after)
	}
}

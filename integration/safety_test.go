package integration

import (
	"context"
	"fmt"
	"math/big"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"payflow/chain"
	"payflow/internal/stacktest"
	"payflow/workflows"
)

// Operator actions on the real stack (docs/operations.md runbook): each asserts the
// transfers on chain, the answers, and that the paying wallet's ledger total
// (available + held) equals its balanceOf afterwards.

// requireLedgerMatchesChain fails unless addr's USDT ledger total equals its
// on-chain balance.
func requireLedgerMatchesChain(t *testing.T, st *stacktest.Stack, addr string) {
	t.Helper()
	usdt := st.USDT(t, st.Eth(t))
	// Wait out transfers still in flight from earlier tests.
	var ledgerTotal, onChain decimal.Decimal
	deadline := time.Now().Add(time.Minute)
	for {
		b := balance(t, st, addr)
		ledgerTotal = b.available.Add(b.held)
		onChain = chain.FromUnits(stacktest.TokenBalance(t, usdt, addr), st.Tokens["USDT"].Decimals)
		if ledgerTotal.Equal(onChain) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if !ledgerTotal.Equal(onChain) {
		t.Errorf("%s: ledger available+held %s != balanceOf %s", addr, ledgerTotal, onChain)
	}
}

// awaitStep polls the payment's status query until it shows step.
func awaitStep(t *testing.T, tc client.Client, wfID, step string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var s workflows.PaymentStatus
		v, err := tc.QueryWorkflow(context.Background(), wfID, "", workflows.QueryStatus)
		if err == nil && v.Get(&s) == nil && s.Step == step {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %s (last: %+v, %v)", wfID, step, s, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// resetWorkflow resets wfID with the Temporal CLI: to "FirstWorkflowTask" or
// "LastWorkflowTask", re-applying signals or not. It returns the new run id.
func resetWorkflow(t *testing.T, st *stacktest.Stack, tc client.Client, wfID, to string, reapplySignals bool) string {
	t.Helper()
	before, err := tc.DescribeWorkflowExecution(context.Background(), wfID, "")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"workflow", "reset", "--address", st.TemporalAddress, "--namespace", st.TemporalNamespace,
		"--workflow-id", wfID, "--type", to, "--reason", "integration test: " + t.Name()}
	if !reapplySignals {
		args = append(args, "--reapply-exclude", "Signal")
	}
	if out, err := exec.Command(filepath.Join(repoRoot(t), "bin", "temporal"), args...).CombinedOutput(); err != nil {
		t.Fatalf("temporal workflow reset: %v\n%s", err, out)
	}
	run := tc.GetWorkflow(context.Background(), wfID, "")
	if run.GetRunID() == before.WorkflowExecutionInfo.Execution.RunId {
		t.Fatal("reset did not start a new run")
	}
	return run.GetRunID()
}

// runResult waits for the current run of wfID to end and returns its result.
func runResult(t *testing.T, tc client.Client, wfID string) workflows.PaymentResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var res workflows.PaymentResult
	if err := tc.GetWorkflow(ctx, wfID, "").Get(ctx, &res); err != nil {
		t.Fatalf("%s: %v", wfID, err)
	}
	return res
}

// TestResetAfterRejectionPaysNothing: a
// withdraw above the approval threshold is rejected (released, status=0);
// the operator resets it to its first workflow task without re-applying
// signals and approves the new run. Nothing is signed or sent, no second
// answer goes out, and the ledger still equals the chain.
func TestResetAfterRejectionPaysNothing(t *testing.T) {
	st := stacktest.Load(t)
	tc := st.Temporal(t)
	usdt := st.USDT(t, st.Eth(t))
	resp := st.Collect(t, withdrawResp, "queue_id")
	qid := stacktest.RandomID("it-rejreset-")
	wfID := workflows.WithdrawWorkflowID(qid)
	to := stacktest.RandomAddress()
	before := balance(t, st, st.CollectionAddress)
	st.Publish(t, withdrawKey, withdrawBody(qid, st.CollectionAddress, to, "60000"), true)
	awaitStep(t, tc, wfID, workflows.StepApproval)
	if err := tc.SignalWorkflow(context.Background(), wfID, "", workflows.SignalApproval,
		workflows.Approval{Approve: false, By: "integration-test", Reason: "suspicious"}); err != nil {
		t.Fatal(err)
	}
	if got := resp.Wait(t, qid, 1, responseWait)[0]; status(got) != "0" {
		t.Fatalf("rejected payment answered status %s", status(got))
	}

	resetWorkflow(t, st, tc, wfID, "FirstWorkflowTask", false)
	// The operator approves the new run (it may already have ended).
	_ = tc.SignalWorkflow(context.Background(), wfID, "", workflows.SignalApproval,
		workflows.Approval{Approve: true, By: "integration-test"})
	res := runResult(t, tc, wfID)
	if res.Status != 0 || !strings.Contains(res.Error, "rejected by integration-test") {
		t.Errorf("reset run ended with status %d (%s), want the recorded rejection", res.Status, res.Error)
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(qid)); n != 1 {
		t.Errorf("%d answers, want 1", n)
	}
	if n := signedCount(t, st, wfID); n != 0 {
		t.Errorf("%d transfers signed after the reset of a rejected payment", n)
	}
	if b := stacktest.TokenBalance(t, usdt, to); b.Sign() != 0 {
		t.Errorf("recipient holds %s units: a rejected payment paid", b)
	}
	if after := balance(t, st, st.CollectionAddress); !after.available.Equal(before.available) || !after.held.Equal(before.held) {
		t.Errorf("collection ledger moved: %+v → %+v", before, after)
	}
	requireLedgerMatchesChain(t, st, st.CollectionAddress)
}

// TestResetAwaitingApprovalContinues: a payment reset while it waits for
// approval (signals not re-applied) waits again; approved, it pays once and
// answers once.
func TestResetAwaitingApprovalContinues(t *testing.T) {
	st := stacktest.Load(t)
	tc := st.Temporal(t)
	usdt := st.USDT(t, st.Eth(t))
	resp := st.Collect(t, withdrawResp, "queue_id")
	qid := stacktest.RandomID("it-waitreset-")
	wfID := workflows.WithdrawWorkflowID(qid)
	to := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(qid, st.CollectionAddress, to, "60000"), true)
	awaitStep(t, tc, wfID, workflows.StepApproval)

	resetWorkflow(t, st, tc, wfID, "FirstWorkflowTask", false)
	awaitStep(t, tc, wfID, workflows.StepApproval)
	if err := tc.SignalWorkflow(context.Background(), wfID, "", workflows.SignalApproval,
		workflows.Approval{Approve: true, By: "integration-test"}); err != nil {
		t.Fatal(err)
	}
	if got := onlyOne(t, resp, qid); status(got) != "1" {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	if n := signedCount(t, st, wfID); n != 1 {
		t.Errorf("%d transfers signed, want 1", n)
	}
	want := new(big.Int).Mul(big.NewInt(60000), big.NewInt(1_000_000))
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(want) != 0 {
		t.Errorf("recipient holds %s units, want %s", b, want)
	}
	requireLedgerMatchesChain(t, st, st.CollectionAddress)
}

// TestResetPaidPaymentToEveryPoint: a paid withdraw reset to its first and
// to its last workflow task, with and without signals re-applied, pays
// nothing more and answers nothing more.
func TestResetPaidPaymentToEveryPoint(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	tc := st.Temporal(t)
	usdt := st.USDT(t, st.Eth(t))
	resp := st.Collect(t, withdrawResp, "queue_id")
	from := walletByLabel(t, db, "user-2")
	qid := stacktest.RandomID("it-paidreset-")
	wfID := workflows.WithdrawWorkflowID(qid)
	to := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(qid, from, to, "1.5"), true)
	if got := resp.Wait(t, qid, 1, responseWait)[0]; status(got) != "1" {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	before := balance(t, st, from)
	for _, c := range []struct {
		to      string
		signals bool
	}{{"FirstWorkflowTask", true}, {"FirstWorkflowTask", false}, {"LastWorkflowTask", true}, {"LastWorkflowTask", false}} {
		resetWorkflow(t, st, tc, wfID, c.to, c.signals)
		if res := runResult(t, tc, wfID); res.Status != 1 {
			t.Errorf("reset to %s (signals %v): status %d (%s)", c.to, c.signals, res.Status, res.Error)
		}
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(qid)); n != 1 {
		t.Errorf("%d answers after four resets, want 1", n)
	}
	if n := signedCount(t, st, wfID); n != 1 {
		t.Errorf("%d transfers signed, want 1", n)
	}
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(big.NewInt(1_500_000)) != 0 {
		t.Errorf("recipient holds %s units, want 1500000", b)
	}
	if after := balance(t, st, from); !after.available.Equal(before.available) || !after.held.Equal(before.held) {
		t.Errorf("ledger moved on reset: %+v → %+v", before, after)
	}
	requireLedgerMatchesChain(t, st, from)
}

// TestCancelAwaitingApprovalRejects: an operator's cancel request on a
// payment waiting for approval rejects it: released, one status=0, nothing
// signed.
func TestCancelAwaitingApprovalRejects(t *testing.T) {
	st := stacktest.Load(t)
	tc := st.Temporal(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	qid := stacktest.RandomID("it-cancel-")
	wfID := workflows.WithdrawWorkflowID(qid)
	before := balance(t, st, st.CollectionAddress)
	st.Publish(t, withdrawKey, withdrawBody(qid, st.CollectionAddress, stacktest.RandomAddress(), "60000"), true)
	awaitStep(t, tc, wfID, workflows.StepApproval)
	if err := tc.CancelWorkflow(context.Background(), wfID, ""); err != nil {
		t.Fatal(err)
	}
	got := onlyOne(t, resp, qid)
	if status(got) != "0" || !strings.Contains(fmt.Sprint(got.Body["error"]), "cancelled by an operator") {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	if n := signedCount(t, st, wfID); n != 0 {
		t.Errorf("%d transfers signed for a cancelled payment", n)
	}
	if after := balance(t, st, st.CollectionAddress); !after.available.Equal(before.available) || !after.held.Equal(before.held) {
		t.Errorf("collection ledger moved: %+v → %+v", before, after)
	}
	requireLedgerMatchesChain(t, st, st.CollectionAddress)
}

// TestHandSignalledTxEventsMoveNothing: tx-event signals sent by hand — a
// "confirmed" for a foreign hash, a "dropped" for the payment's own hash
// while it is on its way — decide nothing: the chain's verdict does. The
// payment pays once and answers status=1 once.
func TestHandSignalledTxEventsMoveNothing(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	tc := st.Temporal(t)
	usdt := st.USDT(t, st.Eth(t))
	resp := st.Collect(t, withdrawResp, "queue_id")
	from := walletByLabel(t, db, "user-1")
	qid := stacktest.RandomID("it-handsignal-")
	wfID := workflows.WithdrawWorkflowID(qid)
	to := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(qid, from, to, "2.5"), true)
	deadline := time.Now().Add(time.Minute)
	var hash string
	for hash == "" {
		_ = db.QueryRow("SELECT tx_hash FROM signed_txs WHERE workflow_id=?", wfID).Scan(&hash)
		if time.Now().After(deadline) {
			t.Fatal("transfer never signed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, ev := range []workflows.TxEvent{
		{TxHash: "0x" + strings.Repeat("ab", 32), Milestone: chain.MilestoneConfirmed, BlockNumber: 1, Succeeded: false},
		{TxHash: hash, Milestone: chain.MilestoneDropped},
		{TxHash: hash, Milestone: chain.MilestoneConfirmed, BlockNumber: 1, Succeeded: false},
	} {
		_ = tc.SignalWorkflow(context.Background(), wfID, "", workflows.SignalTxEvent, ev)
	}
	if got := onlyOne(t, resp, qid); status(got) != "1" {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(big.NewInt(2_500_000)) != 0 {
		t.Errorf("recipient holds %s units, want 2500000", b)
	}
	requireLedgerMatchesChain(t, st, from)
}

// TestQueueIDsTheProtocolAcceptsArePaid: a 128-character queue_id
// and a non-ASCII one — both valid in the protocol — are paid and answered
// with the queue_id as sent, and found by the PayflowQueueId search
// attribute. Before, they were refused with "Data too long" and "Illegal mix
// of collations" database text.
func TestQueueIDsTheProtocolAcceptsArePaid(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	tc := st.Temporal(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	from := walletByLabel(t, db, "user-3")
	suffix := stacktest.RandomID("")
	long := strings.Repeat("q", 128-len(suffix)) + suffix
	unicode := "支付-ünï😀-" + suffix
	for _, qid := range []string{long, unicode} {
		st.Publish(t, withdrawKey, withdrawBody(qid, from, stacktest.RandomAddress(), "0.5"), true)
	}
	for _, qid := range []string{long, unicode} {
		got := onlyOne(t, resp, qid)
		if status(got) != "1" || got.Body["queue_id"] != qid {
			t.Errorf("%q: status %s queue_id %v error %v", qid, status(got), got.Body["queue_id"], got.Body["error"])
		}
		waitFor(t, 30*time.Second, "the payment found by PayflowQueueId", func() bool {
			ls, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("PayflowQueueId = '%s'", qid)})
			return err == nil && len(ls.Executions) == 1
		})
	}
	requireLedgerMatchesChain(t, st, from)
}

// TestCancelAfterSigningStillPays: a cancel request that reaches a payment
// after its transfer is signed cannot unsign it: the payment follows the
// transfer to the chain's verdict and answers status=1 once, and the ledger
// equals the chain.
func TestCancelAfterSigningStillPays(t *testing.T) {
	st := stacktest.Load(t)
	tc := st.Temporal(t)
	usdt := st.USDT(t, st.Eth(t))
	resp := st.Collect(t, withdrawResp, "queue_id")
	qid := stacktest.RandomID("it-cancelsigned-")
	wfID := workflows.WithdrawWorkflowID(qid)
	to := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(qid, st.CollectionAddress, to, "60000"), true)
	awaitStep(t, tc, wfID, workflows.StepApproval)
	if err := tc.SignalWorkflow(context.Background(), wfID, "", workflows.SignalApproval,
		workflows.Approval{Approve: true, By: "integration-test"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for signedCount(t, st, wfID) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("transfer never signed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tc.CancelWorkflow(context.Background(), wfID, ""); err != nil {
		t.Fatalf("cancel (the payment should still be confirming): %v", err)
	}
	if got := onlyOne(t, resp, qid); status(got) != "1" {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	want := new(big.Int).Mul(big.NewInt(60000), big.NewInt(1_000_000))
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(want) != 0 {
		t.Errorf("recipient holds %s units, want %s", b, want)
	}
	requireLedgerMatchesChain(t, st, st.CollectionAddress)
}

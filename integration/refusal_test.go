package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"payflow/internal/stacktest"
	"payflow/workflows"
)

// revertingInit deploys a contract whose code reverts on every call (and so
// refuses every coin sent to it): runtime PUSH1 0 PUSH1 0 REVERT, returned
// by PUSH5 <runtime> PUSH1 0 MSTORE PUSH1 5 PUSH1 27 RETURN.
var revertingInit = hexutil.MustDecode("0x6460006000fd" + "600052" + "6005601bf3")

// deployReverting deploys a contract that refuses every call on the first
// dev chain and returns its address.
func deployReverting(t *testing.T, st *stacktest.Stack) common.Address {
	t.Helper()
	return faucetTx(t, st, st.Eth(t), nil, nil, 100_000, revertingInit).ContractAddress
}

// TestWithdrawToContractThatRefusesETHIsAnswered: a native withdraw to a
// contract whose code reverts on every call is refused by the node's
// simulation. It is answered status=0 with a clear error, once, before
// anything is signed, and its reservation (amount and gas) is released.
// Before, the gas estimate's revert was taken for a transient error and the
// payment waited for ever, "signing", with its funds held.
func TestWithdrawToContractThatRefusesETHIsAnswered(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	refuser := deployReverting(t, st)
	from := walletByLabel(t, db, "user-2")
	before := balanceOf(t, st, from, "ETH")
	qid := stacktest.RandomID("it-refuse-eth-")
	body := fmt.Sprintf(`{"queue_id":%q,"from_address":%q,"to_address":%q,"amount":0.5,"chain":"ETH","symbol":"ETH","timestamp":%d}`,
		qid, from, strings.ToLower(refuser.Hex()), time.Now().Unix())
	st.Publish(t, withdrawKey, []byte(body), true)
	got := resp.Wait(t, qid, 1, responseWait)[0]
	errText := fmt.Sprint(got.Body["error"])
	if status(got) != "0" || !strings.Contains(errText, "does not accept ETH") {
		t.Fatalf("status %s error %q, want status 0 saying the recipient does not accept ETH", status(got), errText)
	}
	for _, leak := range []string{"execution reverted", "rpc", "estimat"} {
		if strings.Contains(strings.ToLower(errText), leak) {
			t.Errorf("the business's error carries node text %q: %s", leak, errText)
		}
	}
	if n := signedCount(t, st, workflows.WithdrawWorkflowID(qid)); n != 0 {
		t.Errorf("%d transfers signed for a transfer the chain refuses", n)
	}
	after := balanceOf(t, st, from, "ETH")
	if !after.available.Add(after.held).Equal(before.available.Add(before.held)) || after.held.GreaterThan(before.held) {
		t.Errorf("ledger of %s moved: %+v → %+v", from, before, after)
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(qid)); n != 1 {
		t.Errorf("%d answers, want 1", n)
	}
}

// TestResetPaidPaymentShowsItsOutcome: a paid withdraw reset to its first
// workflow task runs again only to re-publish its recorded answer; that run
// must end showing PayflowStatus "succeeded" in the Web UI, not the
// "received" it started with (operators list stuck payments by it).
func TestResetPaidPaymentShowsItsOutcome(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	tc := st.Temporal(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	from := walletByLabel(t, db, "user-2")
	qid := stacktest.RandomID("it-resetstatus-")
	wfID := workflows.WithdrawWorkflowID(qid)
	st.Publish(t, withdrawKey, withdrawBody(qid, from, stacktest.RandomAddress(), "1.25"), true)
	if got := resp.Wait(t, qid, 1, responseWait)[0]; status(got) != "1" {
		t.Fatalf("status %s error %v", status(got), got.Body["error"])
	}
	resetWorkflow(t, st, tc, wfID, "FirstWorkflowTask", true)
	if res := runResult(t, tc, wfID); res.Status != 1 {
		t.Fatalf("reset run: status %d (%s)", res.Status, res.Error)
	}
	// Visibility is eventually consistent: give it a moment.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := statusAttribute(t, tc, wfID)
		if got == workflows.StepSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PayflowStatus of the reset run is %q, want %q", got, workflows.StepSucceeded)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := len(resp.Get(qid)); n != 1 {
		t.Errorf("%d answers, want 1", n)
	}
}

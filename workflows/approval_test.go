package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"payflow/activities"
	"payflow/protocol"
	"payflow/workflows"
)

func approvalInput() workflows.PaymentInput {
	in := input()
	in.ApprovalThreshold = "10" // 12.5 is above it
	in.ApprovalTimeout = time.Hour
	return in
}

func TestApprovalApprovedPays(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	var waiting workflows.PaymentStatus
	var signedBefore int
	h.env.RegisterDelayedCallback(func() {
		waiting, _ = h.status()
		h.mu.Lock()
		signedBefore = len(h.signed)
		h.mu.Unlock()
		h.env.SignalWorkflow(workflows.SignalApproval, workflows.Approval{Approve: true, By: "alice"})
	}, 30*time.Minute)
	h.signal(31*time.Minute, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	_, err := h.run(workflows.Withdraw, approvalInput())
	require.NoError(t, err)
	require.Equal(t, workflows.StepApproval, waiting.Step)
	require.Zero(t, signedBefore, "nothing is signed before the approval")
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)
	require.Len(t, h.approvals, 1, "the approval is recorded in the audit trail")
	require.Equal(t, "12.5 USDT is above the approval threshold 10", h.approvals[0].Held)
	require.Equal(t, []int{0}, h.signedAtAudit, "before the transfer is signed")
	h.done()
}

func TestApprovalRejectedReleases(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.release()
	h.forbid(a.SignTransfer, a.Broadcast, a.SettleFunds)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.SignalApproval, workflows.Approval{Approve: false, By: "bob", Reason: "suspicious"})
	}, time.Minute)

	_, err := h.run(workflows.Withdraw, approvalInput())
	require.NoError(t, err)
	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	require.Equal(t, protocol.StatusFailed, got.Status)
	require.Equal(t, "rejected by bob: suspicious", got.Error)
	require.Len(t, h.released, 1)
	h.done()
}

func TestApprovalTimeoutRejects(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.release()
	h.forbid(a.SignTransfer, a.Broadcast, a.SettleFunds)

	_, err := h.run(workflows.Withdraw, approvalInput())
	require.NoError(t, err)
	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	require.Equal(t, protocol.StatusFailed, got.Status)
	require.Equal(t, "rejected: no approval within 1h0m0s", got.Error)
	require.Len(t, h.released, 1)
	h.done()
}

func TestApprovalNotNeededAtOrBelowThreshold(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	h.signal(time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})
	in := approvalInput()
	in.ApprovalThreshold = "12.5" // equal: no approval
	_, err := h.run(workflows.Withdraw, in)
	require.NoError(t, err)
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)
	h.done()
}

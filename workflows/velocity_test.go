package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"payflow/activities"
	"payflow/protocol"
	"payflow/workflows"
)

// begin mocks BeginPayment: no answer recorded yet, the sender reserved,
// and the velocity verdict v (nil: within the limits).
func (h *harness) begin(v *activities.Velocity) {
	h.env.OnActivity(a.BeginPayment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BeginInput) (activities.BeginResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.reserved = append(h.reserved, in.ReserveInput)
			return activities.BeginResult{PayingAddress: fromAddr, Velocity: v}, nil
		})
}

func overWallet() *activities.Velocity {
	return &activities.Velocity{Wallet: fromAddr, Recipient: toAddr, OverWallet: true, WalletTotal: "112.5", WalletLimit: "100",
		RecipientTotal: "12.5"}
}

const overWalletSummary = "wallet " + fromAddr + " would send 112.5 USDT in 24 h, above its limit 100 USDT; waiting up to 1h0m0s for an operator"

func velocityInput() workflows.PaymentInput {
	in := input()
	in.ApprovalThreshold = "50000" // far above 12.5: only the velocity limit holds it
	in.ApprovalTimeout = time.Hour
	return in
}

// TestVelocityOverLimitWaitsAndPaysOnceApproved: a payment over its
// wallet's 24 h limit is not refused: it waits for an operator with the
// reason in its status, and pays once approved. The approval is recorded
// before anything is signed.
func TestVelocityOverLimitWaitsAndPaysOnceApproved(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.begin(overWallet())
	h.sign(nil)
	h.broadcast()
	h.forbid(a.ReleaseFunds)
	var waiting workflows.PaymentStatus
	var waitErr error
	signedBefore := -1
	h.env.RegisterDelayedCallback(func() {
		waiting, waitErr = h.status()
		h.mu.Lock()
		signedBefore = len(h.signed)
		h.mu.Unlock()
		h.env.SignalWorkflow(workflows.SignalApproval, workflows.Approval{Approve: true, By: "alice", Reason: "known customer"})
	}, 30*time.Minute)
	h.signal(31*time.Minute, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	_, err := h.run(workflows.Withdraw, velocityInput())
	require.NoError(t, err)
	require.NoError(t, waitErr)
	require.Equal(t, workflows.StepApproval, waiting.Step)
	require.Equal(t, overWalletSummary, waiting.Summary)
	require.Zero(t, signedBefore, "nothing is signed while it waits")
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)

	require.Len(t, h.approvals, 1)
	rec := h.approvals[0]
	require.Equal(t, wfID, rec.WorkflowID)
	require.NotEmpty(t, rec.RunID)
	require.Equal(t, workflows.Approval{Approve: true, By: "alice", Reason: "known customer"}, rec.Decision)
	require.Equal(t, "wallet "+fromAddr+" would send 112.5 USDT in 24 h, above its limit 100 USDT", rec.Held)
	require.Equal(t, []int{0}, h.signedAtAudit, "the approval is recorded before the transfer is signed")
	require.Len(t, h.signed, 1)
	h.done()
}

// TestVelocityOverLimitRejectedReleases: a rejection is recorded too, and
// releases the reservation: status 0, nothing signed.
func TestVelocityOverLimitRejectedReleases(t *testing.T) {
	h := newHarness(t, workflows.PayWorkflowID(queueID))
	h.begin(&activities.Velocity{Wallet: fromAddr, Recipient: toAddr, OverRecipient: true, RecipientTotal: "40", RecipientLimit: "30",
		WalletTotal: "12.5"})
	h.forbid(a.SignTransfer, a.Broadcast, a.SettleFunds)
	var waiting workflows.PaymentStatus
	h.env.RegisterDelayedCallback(func() {
		waiting, _ = h.status()
		h.env.SignalWorkflow(workflows.SignalApproval, workflows.Approval{Approve: false, By: "bob"})
	}, time.Minute)

	_, err := h.run(workflows.Pay, velocityInput())
	require.NoError(t, err)
	require.Equal(t, "recipient "+toAddr+" would receive 40 USDT in 24 h, above its limit 30 USDT; waiting up to 1h0m0s for an operator",
		waiting.Summary)
	got := h.onlyPublished(protocol.FlowPay, "pay-")
	require.Equal(t, protocol.StatusFailed, got.Status)
	require.Equal(t, "rejected by bob: no reason given", got.Error)
	require.Len(t, h.released, 1)
	require.Len(t, h.approvals, 1)
	require.False(t, h.approvals[0].Decision.Approve)
	h.done()
}

// TestVelocityTimeoutRejectsWithoutRecord: no operator decided, so there is
// nothing to record; the timeout releases.
func TestVelocityTimeoutRejectsWithoutRecord(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.begin(overWallet())
	h.forbid(a.SignTransfer, a.Broadcast, a.SettleFunds)
	_, err := h.run(workflows.Withdraw, velocityInput())
	require.NoError(t, err)
	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	require.Equal(t, "rejected: no approval within 1h0m0s", got.Error)
	require.Len(t, h.released, 1)
	require.Empty(t, h.approvals)
	h.done()
}

// TestHeldForThresholdAndVelocityShowsBoth: one wait, both reasons.
func TestHeldForThresholdAndVelocityShowsBoth(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.begin(overWallet())
	h.forbid(a.SignTransfer, a.Broadcast, a.SettleFunds)
	var waiting workflows.PaymentStatus
	h.env.RegisterDelayedCallback(func() {
		waiting, _ = h.status()
		h.env.SignalWorkflow(workflows.SignalApproval, workflows.Approval{Approve: false, By: "carol", Reason: "too much"})
	}, time.Minute)
	in := velocityInput()
	in.ApprovalThreshold = "10"
	_, err := h.run(workflows.Withdraw, in)
	require.NoError(t, err)
	require.Equal(t, "12.5 USDT is above the approval threshold 10; "+overWalletSummary, waiting.Summary)
	require.Len(t, h.approvals, 1)
	require.Equal(t, "12.5 USDT is above the approval threshold 10; wallet "+fromAddr+
		" would send 112.5 USDT in 24 h, above its limit 100 USDT", h.approvals[0].Held)
	h.done()
}

// TestWithinVelocityLimitsDoesNotWait: no verdict, no threshold: paid with
// no approval and nothing recorded.
func TestWithinVelocityLimitsDoesNotWait(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.begin(nil)
	h.sign(nil)
	h.broadcast()
	h.forbid(a.ReleaseFunds, a.RecordApproval)
	h.signal(time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})
	_, err := h.run(workflows.Withdraw, velocityInput())
	require.NoError(t, err)
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)
	h.done()
}

package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"payflow/activities"
	"payflow/protocol"
	"payflow/workflows"
)

// Money-safety tests of the payment workflow (issue "Money safety"). The
// real-stack counterparts, with an operator's reset and a real chain, are in
// integration/safety_test.go.

// TestPaymentAnsweredBeforeMovesNothing: a run that finds the
// payment's answer recorded — a reset of a payment rejected, failed or paid
// before — signs nothing, sends nothing, waits for no approval, closes
// nothing, and re-publishes only the stored answer (which the outbox sends
// once).
func TestPaymentAnsweredBeforeMovesNothing(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	stored := protocol.PaymentResponse{QueueID: queueID, Status: protocol.StatusFailed, Amount: protocol.MustAmount("12.5"),
		Chain: "ETH", Symbol: "USDT", FromAddress: fromAddr, ToAddress: toAddr, Error: "rejected by bob: suspicious"}
	h.env.OnActivity(a.BeginPayment, mock.Anything, mock.Anything).Return(activities.BeginResult{Answer: &stored}, nil)
	h.forbid(a.SignTransfer, a.Broadcast, a.ReplaceTransfer, a.ReleaseFunds, a.SettleFunds)

	res, err := h.run(workflows.Withdraw, approvalInput()) // above the threshold: must not wait for approval
	require.NoError(t, err)
	require.Equal(t, stored, res)
	require.Equal(t, stored, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"))
	h.env.AssertNotCalled(t, "DecidePayment", mock.Anything, mock.Anything)
	h.done()
}

// TestPaymentClosedReservationWithoutAnswerStops: a reservation closed by
// hand, with no answer recorded, is never paid on and never answered.
func TestPaymentClosedReservationWithoutAnswerStops(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{}, temporal.NewNonRetryableApplicationError("payment withdraw-q-1 was already released",
		activities.ErrTypeReservationClosed, nil))
	h.forbid(a.SignTransfer, a.Broadcast, a.ReleaseFunds, a.SettleFunds)

	_, err := h.run(workflows.Withdraw, input())
	require.Error(t, err)
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(t, h.published)
	h.env.AssertNotCalled(t, "DecidePayment", mock.Anything, mock.Anything)
	h.done()
}

// TestPaymentRefusedBroadcastWaitsForProof: a broadcast the node
// refuses (the bytes may have gone out on an earlier attempt) releases
// nothing; the payment waits, and pays when the transfer confirms.
func TestPaymentRefusedBroadcastWaitsForProof(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.env.OnActivity(a.Broadcast, mock.Anything, mock.Anything).
		Return(activities.BroadcastResult{TxHash: txHash, Refused: "its nonce was used by another transaction"}, nil)
	h.forbid(a.ReleaseFunds)
	var mid workflows.PaymentStatus
	var midOutcomes int
	h.env.RegisterDelayedCallback(func() { mid, _ = h.status(); midOutcomes = h.outcomes() }, 5*time.Second)
	h.signal(10*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	_, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)
	require.Equal(t, workflows.StepConfirming, mid.Step)
	require.Contains(t, mid.Summary, "not taken by the node")
	require.Zero(t, midOutcomes, "nothing released or answered on a refused broadcast")
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)
	require.Empty(t, h.released)
	h.done()
}

// TestPaymentDroppedIsReleasedOnProof: the nonce is taken by
// another transaction while the payment waits (replacement impossible); once
// the tracker reports it dropped and the chain proves it, the reservation is
// released and status=0 answered, once.
func TestPaymentDroppedIsReleasedOnProof(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.forbid(a.SettleFunds)
	h.env.OnActivity(a.ReplaceTransfer, mock.Anything, mock.Anything).Return(
		activities.ReplaceResult{Stuck: "its nonce was used by another transaction; waiting for the chain to prove it"}, nil)
	h.setVerdict(activities.Inspection{State: "pending", TxHash: txHash})
	in := input()
	in.ConfirmTimeout = time.Minute
	var midOutcomes int
	var mid workflows.PaymentStatus
	h.env.RegisterDelayedCallback(func() {
		mid, _ = h.status()
		midOutcomes = h.outcomes()
		h.setVerdict(activities.Inspection{State: "dropped", TxHash: txHash,
			Reason: "nonce 7 of " + fromAddr + " was used by another transaction"})
	}, 90*time.Second)
	h.signal(100*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "dropped"})

	res, err := h.run(workflows.Withdraw, in)
	require.NoError(t, err)
	require.Equal(t, workflows.StepStuck, mid.Step)
	require.Zero(t, midOutcomes, "nothing released before the chain proves the drop")
	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	require.Equal(t, protocol.StatusFailed, got.Status)
	require.Contains(t, got.Error, "was used by another transaction")
	require.Equal(t, got, res)
	require.Equal(t, []activities.ReleaseInput{{Key: wfID}}, h.released)
	h.env.AssertActivityNumberOfCalls(t, "DecidePayment", 1)
	h.done()
}

// TestPaymentReplacementsAskByNumber: each replacement asks for
// the next attempt by number, so a retried ReplaceTransfer (same number)
// signs nothing new.
func TestPaymentReplacementsAskByNumber(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	var asked []int
	h.env.OnActivity(a.ReplaceTransfer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReplaceInput) (activities.ReplaceResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			asked = append(asked, in.Attempt)
			return activities.ReplaceResult{TxHash: replHash, Attempt: in.Attempt}, nil
		})
	h.setVerdict(activities.Inspection{State: "mined", Confirmed: true, TxHash: replHash, BlockNumber: block, Paid: true})
	in := input()
	in.ConfirmTimeout = time.Minute
	h.signal(150*time.Second, workflows.TxEvent{TxHash: replHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	_, err := h.run(workflows.Withdraw, in)
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, asked)
	h.done()
}

// TestPaymentNoEffectIsNotPaid: a transfer mined with status 1
// whose receipt lacks the token's Transfer (a token that returns false) is
// not reported paid: it is released and answered status=0.
func TestPaymentNoEffectIsNotPaid(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.forbid(a.SettleFunds)
	h.setVerdict(activities.Inspection{State: "mined", Confirmed: true, TxHash: txHash, BlockNumber: block,
		Reason: "token reported success but moved no tokens"})
	h.signal(time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	res, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)
	require.Equal(t, protocol.StatusFailed, res.Status)
	require.Equal(t, "token reported success but moved no tokens", res.Error)
	require.Equal(t, []activities.ReleaseInput{{Key: wfID}}, h.released)
	require.Empty(t, h.settled)
	h.done()
}

// TestPaymentSignGuardedByReservation: the transfer is signed under the
// payment's reservation (Guard), so a reservation no longer held signs nothing.
func TestPaymentSignGuardedByReservation(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(temporal.NewNonRetryableApplicationError("the reservation of "+wfID+" is released",
		activities.ErrTypeReservationClosed, nil))
	h.forbid(a.Broadcast)
	_, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)
	require.Equal(t, wfID, h.signed[0].Guard)
	h.done()
}

// TestPaymentCancelWhileAwaitingApprovalRejects: an operator's cancel
// request while the payment waits for approval rejects it: released and
// answered status=0, once, with nothing signed.
func TestPaymentCancelWhileAwaitingApprovalRejects(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.forbid(a.SignTransfer, a.Broadcast)
	h.env.RegisterDelayedCallback(func() { h.env.CancelWorkflow() }, time.Minute)

	res, err := h.run(workflows.Withdraw, approvalInput())
	require.NoError(t, err, "a cancelled payment still answers")
	require.Equal(t, protocol.StatusFailed, res.Status)
	require.Contains(t, res.Error, "cancelled by an operator")
	require.Equal(t, res, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"))
	require.Equal(t, []activities.ReleaseInput{{Key: wfID}}, h.released)
	h.done()
}

// TestPaymentCancelAfterSigningStillSettles: once signed, a cancel request
// cannot stop the transfer, so the payment follows it and pays (status=1).
func TestPaymentCancelAfterSigningStillSettles(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.forbid(a.ReleaseFunds)
	h.env.RegisterDelayedCallback(func() { h.env.CancelWorkflow() }, time.Second)
	h.signal(5*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	res, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)
	requireSucceeded(t, res, fromAddr)
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)
	require.Empty(t, h.released)
	h.done()
}

// TestPaymentRefusedRequestOnlyAnswers: a request the intake refused is
// answered status=0 by its own payment workflow, recording the answer as the
// queue_id's one answer; nothing is reserved or signed.
func TestPaymentRefusedRequestOnlyAnswers(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.forbid(a.BeginPayment, a.SignTransfer, a.Broadcast)
	in := input()
	in.Refused = "invalid request: bad signature"
	res, err := h.run(workflows.Withdraw, in)
	require.NoError(t, err)
	require.Equal(t, protocol.StatusFailed, res.Status)
	require.Equal(t, in.Refused, res.Error)
	require.Equal(t, res, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"))
	h.env.AssertActivityNumberOfCalls(t, "DecidePayment", 1)
	h.done()
}

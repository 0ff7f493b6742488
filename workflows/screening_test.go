package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"payflow/activities"
	"payflow/protocol"
	"payflow/workflows"
)

// TestWithdrawToARecipientListedBeforeSigningIsRefusedAndReleased: the
// address was listed while the payment waited (for approval, say):
// SignTransfer refuses it, nothing is broadcast, the reservation is
// released and the answer says why.
func TestWithdrawToARecipientListedBeforeSigningIsRefusedAndReleased(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	msg := "recipient is blocked: " + toAddr + " is on the deny list (OFAC-SDN 2026-11-30)"
	h.sign(temporal.NewNonRetryableApplicationError(msg, activities.ErrTypeRecipientBlocked, nil))
	h.forbid(a.Broadcast)

	res, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)
	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	require.Equal(t, protocol.StatusFailed, got.Status)
	require.Equal(t, msg, got.Error)
	require.Equal(t, got, res)
	require.Equal(t, []activities.ReleaseInput{{Key: wfID}}, h.released)
	h.done()
}

const (
	heldTx   = "0x00000000000000000000000000000000000000000000000000000000000aa001"
	holdKey  = "risk-hold:ETH:" + heldTx + ":0"
	returnTx = "0x00000000000000000000000000000000000000000000000000000000000bb002"
)

func returnHarness(t *testing.T) (*testsuite.TestWorkflowEnvironment, string, *[]activities.EndReturnInput) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.ReturnDeposit)
	env.RegisterActivity(&activities.Activities{})
	wfID := workflows.ReturnDepositWorkflowID("ETH", heldTx, 0)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: wfID, TaskQueue: workflows.DefaultTaskQueue})
	env.SetWorkflowRunTimeout(24 * time.Hour)
	env.OnActivity(a.BeginReturn, mock.Anything, activities.ReturnInput{Chain: "ETH", TxHash: heldTx, LogIndex: 0, WorkflowID: wfID}).
		Return(activities.ReturnPlan{Hold: holdKey, Address: toAddr, Sender: fromAddr, Symbol: "ETH",
			Amount: protocol.MustAmount("0.5")}, nil).Once()
	var ended []activities.EndReturnInput
	env.OnActivity(a.EndReturn, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EndReturnInput) error {
		ended = append(ended, in)
		return nil
	})
	return env, wfID, &ended
}

// TestReturnDepositSpendsTheHoldAndSettlesIt: the transfer back to the
// sender is signed against the deposit's hold, and settles it once the
// chain confirms it.
func TestReturnDepositSpendsTheHoldAndSettlesIt(t *testing.T) {
	env, wfID, ended := returnHarness(t)
	env.OnActivity(a.SignTransfer, mock.Anything, mock.MatchedBy(func(in activities.TransferInput) bool {
		return in.WorkflowID == wfID && in.Step == "return" && in.Guard == holdKey && in.From == toAddr && in.To == fromAddr &&
			in.Symbol == "ETH" && in.Amount.String() == "0.5"
	})).Return(activities.TransferResult{TxHash: returnTx, From: toAddr}, nil).Once()
	env.OnActivity(a.Broadcast, mock.Anything, mock.Anything).Return(activities.BroadcastResult{TxHash: returnTx}, nil).Once()
	env.OnActivity(a.InspectTransfer, mock.Anything, activities.InspectInput{WorkflowID: wfID, Step: "return"}).
		Return(activities.Inspection{State: "mined", Confirmed: true, Paid: true, TxHash: returnTx, BlockNumber: 9}, nil)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalTxEvent, workflows.TxEvent{TxHash: returnTx, Milestone: "confirmed", Succeeded: true})
	}, time.Second)

	env.ExecuteWorkflow(workflows.ReturnDeposit, workflows.ReturnDepositInput{Chain: "ETH", TxHash: heldTx})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.ReturnDepositResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, workflows.ReturnDepositResult{Returned: true, TxHash: returnTx}, res)
	require.Equal(t, []activities.EndReturnInput{{ReturnInput: activities.ReturnInput{Chain: "ETH", TxHash: heldTx, WorkflowID: wfID},
		Paid: true, ReturnTx: returnTx, Gas: &activities.ChargeInput{WorkflowID: wfID, Step: "return", TxHash: returnTx}}}, *ended)
	env.AssertExpectations(t)
}

// TestReturnDepositRefusedBeforeSigningLeavesItHeld: a return that cannot
// be signed (no gas on the deposit wallet) moves nothing and says why.
func TestReturnDepositRefusedBeforeSigningLeavesItHeld(t *testing.T) {
	env, wfID, ended := returnHarness(t)
	env.OnActivity(a.SignTransfer, mock.Anything, mock.Anything).Return(activities.TransferResult{},
		temporal.NewNonRetryableApplicationError("no gas", activities.ErrTypeInsufficientGas, nil)).Once()

	env.ExecuteWorkflow(workflows.ReturnDeposit, workflows.ReturnDepositInput{Chain: "ETH", TxHash: heldTx})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.ReturnDepositResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, workflows.ReturnDepositResult{Reason: "no gas"}, res)
	require.Equal(t, []activities.EndReturnInput{{ReturnInput: activities.ReturnInput{Chain: "ETH", TxHash: heldTx, WorkflowID: wfID},
		Gas: &activities.ChargeInput{WorkflowID: wfID, Step: "return"}}}, *ended)
	env.AssertNotCalled(t, "Broadcast", mock.Anything, mock.Anything)
}

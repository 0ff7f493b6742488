package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/chain"
	"payflow/protocol"
)

const (
	benchPayflowQueue = "payflow-under-bench"
	benchFrom         = "0xad7ccd68974093c937b3e39a29ba4aa9a8f866c6"
	benchTo           = "0x5d44d81e926be4bd2433d6db1ed9338c38759651"
	benchTx           = "0x197b4ab627402ca589f7070a93f8d12890f4af32c273cf3c65fd2b2ea303e3b9"
	benchOtherTx      = "0x00000000000000000000000000000000000000000000000000000000000000aa"
)

func baselineEnv(t *testing.T, wfID string) (*testsuite.TestWorkflowEnvironment, *[]string) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: wfID, TaskQueue: baselineTaskQueue})
	env.RegisterWorkflowWithOptions(BaselinePayment, workflow.RegisterOptions{Name: baselineWorkflowName})
	var a *activities.Activities
	env.RegisterActivity(a)
	var steps []string
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		require.Equal(t, benchPayflowQueue, info.TaskQueue, "%s must run on the payflow worker's queue", info.ActivityType.Name)
		steps = append(steps, info.ActivityType.Name)
	})
	return env, &steps
}

func baselineInput(flow protocol.Flow) BaselineInput {
	return BaselineInput{Flow: flow, ActivityTaskQueue: benchPayflowQueue,
		Request: protocol.PaymentRequest{QueueID: "q-1", FromAddress: benchFrom, ToAddress: benchTo,
			Amount: protocol.MustAmount("0.01"), Chain: "ETH", Symbol: "USDT", OrderID: "order-q-1"}}
}

// TestBaselinePaysWithOneRegularActivityPerStepAndOneSignal: the fair
// baseline runs payflow's own activities, each a regular activity on the
// payflow worker's task queue (the production worker needs no baseline
// code), and waits for exactly one tracker signal: a "seen" milestone and
// another transaction's "confirmed" are waited past, and the chain's verdict
// (InspectTransfer) after its own "confirmed" settles it with the answer.
func TestBaselinePaysWithOneRegularActivityPerStepAndOneSignal(t *testing.T) {
	const wfID = baselineIDPrefix + "q-1"
	env, steps := baselineEnv(t, wfID)
	var a *activities.Activities
	env.OnActivity(a.BeginPayment, mock.Anything, mock.MatchedBy(func(in activities.BeginInput) bool {
		return in.Key == wfID && in.AnswerID == wfID+"/result" && in.FromAddress == benchFrom
	})).Return(activities.BeginResult{PayingAddress: benchFrom}, nil).Once()
	env.OnActivity(a.SignTransfer, mock.Anything, mock.MatchedBy(func(in activities.TransferInput) bool {
		return in.WorkflowID == wfID && in.Step == baselineTransferStep && in.Guard == wfID && in.From == benchFrom && in.To == benchTo
	})).Return(activities.TransferResult{TxHash: benchTx, From: benchFrom}, nil).Once()
	env.OnActivity(a.Broadcast, mock.Anything, mock.MatchedBy(func(in activities.BroadcastInput) bool {
		return in.WorkflowID == wfID && in.Step == baselineTransferStep && in.Flow == protocol.FlowPay
	})).Return(activities.BroadcastResult{TxHash: benchTx}, nil).Once()
	env.OnActivity(a.InspectTransfer, mock.Anything, activities.InspectInput{WorkflowID: wfID, Step: baselineTransferStep}).
		Return(activities.Inspection{State: string(chain.TransferMined), TxHash: benchTx, BlockNumber: 100, Confirmed: true,
			Paid: true}, nil).Once()
	env.OnActivity(a.DecidePayment, mock.Anything, mock.MatchedBy(func(in activities.DecideInput) bool {
		return in.Gas != nil && *in.Gas == activities.ChargeInput{WorkflowID: wfID, Step: baselineTransferStep, TxHash: benchTx} &&
			in.Flow == protocol.FlowPay && in.Key == wfID && in.AnswerID == wfID+"/result" &&
			in.Answer.Status == protocol.StatusSucceeded && in.Answer.TxHash == benchTx && in.Answer.BlockNumber == 100 &&
			in.Answer.OrderID == "order-q-1"
	})).Return(nil).Once()
	env.OnActivity(a.PublishResult, mock.Anything, mock.MatchedBy(func(in activities.PublishInput) bool {
		return in.Flow == protocol.FlowPay && in.MessageID == wfID+"/result" && in.Payment != nil &&
			in.Payment.Status == protocol.StatusSucceeded
	})).Return(nil).Once()
	for i, ev := range []chain.TxEvent{
		{TxHash: benchTx, Milestone: chain.MilestoneSeen},
		{TxHash: benchOtherTx, Milestone: chain.MilestoneConfirmed},
		{TxHash: benchTx, Milestone: chain.MilestoneConfirmed, BlockNumber: 100, Succeeded: true},
	} {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(activities.SignalTxEvent, ev) }, time.Duration(i+1)*time.Second)
	}

	env.ExecuteWorkflow(baselineWorkflowName, baselineInput(protocol.FlowPay))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var resp protocol.PaymentResponse
	require.NoError(t, env.GetWorkflowResult(&resp))
	require.Equal(t, protocol.StatusSucceeded, resp.Status)
	env.AssertExpectations(t)
	require.Equal(t, []string{"BeginPayment", "SignTransfer", "Broadcast", "InspectTransfer", "DecidePayment", "PublishResult"}, *steps)
}

// TestBaselineAnswersARefusedReservationWithoutSigning: a business refusal
// of the reservation is recorded and published as status 0, with nothing
// reserved to release and nothing signed.
func TestBaselineAnswersARefusedReservationWithoutSigning(t *testing.T) {
	const wfID = baselineIDPrefix + "q-1"
	env, steps := baselineEnv(t, wfID)
	var a *activities.Activities
	env.OnActivity(a.BeginPayment, mock.Anything, mock.Anything).Return(activities.BeginResult{},
		temporal.NewNonRetryableApplicationError("insufficient funds", activities.ErrTypeInsufficientFunds, nil)).Once()
	env.OnActivity(a.DecidePayment, mock.Anything, mock.MatchedBy(func(in activities.DecideInput) bool {
		return in.Flow == protocol.FlowWithdraw && in.Key == "" && in.Answer.Status == protocol.StatusFailed &&
			in.Answer.Error == "insufficient funds"
	})).Return(nil).Once()
	env.OnActivity(a.PublishResult, mock.Anything, mock.Anything).Return(nil).Once()

	env.ExecuteWorkflow(baselineWorkflowName, baselineInput(protocol.FlowWithdraw))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, []string{"BeginPayment", "DecidePayment", "PublishResult"}, *steps)
}

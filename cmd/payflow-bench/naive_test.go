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
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
)

// TestNaivePaymentRunsPayflowActivitiesOnTheirQueue: the baseline, now run by
// the benchmark's own worker, still pays: reserve, sign, broadcast, a receipt
// check per block signal until confirmed, settle, publish. Every activity is
// sent to the payflow worker's task queue, which has them registered, so the
// production worker needs no baseline workflow.
func TestNaivePaymentRunsPayflowActivitiesOnTheirQueue(t *testing.T) {
	const (
		payflowQueue = "payflow-under-bench"
		wfID         = "naive-q-1"
		from         = "0xad7ccd68974093c937b3e39a29ba4aa9a8f866c6"
		to           = "0x5d44d81e926be4bd2433d6db1ed9338c38759651"
		txHash       = "0x197b4ab627402ca589f7070a93f8d12890f4af32c273cf3c65fd2b2ea303e3b9"
		mined        = uint64(100)
	)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: wfID, TaskQueue: naiveTaskQueue})
	env.RegisterWorkflowWithOptions(NaivePayment, workflow.RegisterOptions{Name: naiveWorkflowName})
	var a *activities.Activities
	env.RegisterActivity(a)

	var queues []string
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		queues = append(queues, info.TaskQueue)
	})
	env.OnActivity(a.ReserveFunds, mock.Anything, mock.Anything).Return(activities.ReserveResult{PayingAddress: from}, nil).Once()
	env.OnActivity(a.SignTransfer, mock.Anything, mock.MatchedBy(func(in activities.TransferInput) bool {
		return in.WorkflowID == wfID && in.Step == naiveTransferStep && in.From == from && in.To == to
	})).Return(activities.TransferResult{TxHash: txHash, From: from}, nil).Once()
	env.OnActivity(a.Broadcast, mock.Anything, mock.Anything).Return(activities.BroadcastResult{TxHash: txHash}, nil).Once()
	// Mined at block 100; with 3 confirmations head 102 confirms it.
	env.OnActivity(a.CheckReceipt, mock.Anything, activities.ReceiptInput{TxHash: txHash}).
		Return(activities.ReceiptResult{Mined: true, Succeeded: true, BlockNumber: mined}, nil).Times(3)
	env.OnActivity(a.SettleFunds, mock.Anything, activities.SettleInput{Key: wfID, TxHash: txHash}).Return(nil).Once()
	env.OnActivity(a.PublishResult, mock.Anything, mock.MatchedBy(func(in activities.PublishInput) bool {
		return in.Payment != nil && in.Payment.Status == protocol.StatusSucceeded && in.Payment.TxHash == txHash
	})).Return(nil).Once()
	for i, head := range []uint64{mined, mined + 1, mined + 2} {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(signalBlock, head) }, time.Duration(i+1)*time.Second)
	}

	env.ExecuteWorkflow(NaivePayment, NaiveInput{
		Request: protocol.PaymentRequest{QueueID: "q-1", FromAddress: from, ToAddress: to,
			Amount: protocol.MustAmount("0.01"), Chain: "ETH", Symbol: "USDT"},
		Confirmations: 3, ActivityTaskQueue: payflowQueue,
	})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var resp protocol.PaymentResponse
	require.NoError(t, env.GetWorkflowResult(&resp))
	require.Equal(t, protocol.StatusSucceeded, resp.Status)
	require.Equal(t, mined, resp.BlockNumber)
	env.AssertExpectations(t)
	require.Len(t, queues, 8) // reserve, sign, broadcast, 3 receipts, settle, publish
	for _, q := range queues {
		require.Equal(t, payflowQueue, q)
	}
}

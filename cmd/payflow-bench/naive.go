package main

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
)

// The naive baseline lives here, with the benchmark, and runs in the
// benchmark's own worker: the production worker does not know it. Its
// workflow tasks are served by this process on naiveTaskQueue; its activities
// are payflow's own, served by the running payflow worker on its task queue,
// so the baseline differs from payflow in the workflow design only.
const (
	// naiveTaskQueue is the benchmark worker's task queue.
	naiveTaskQueue = "payflow-bench-naive"
	// naiveWorkflowName is NaivePayment's registered workflow type.
	naiveWorkflowName = "NaivePayment"
	// signalBlock is the baseline's per-block signal (a block number).
	signalBlock = "block"
	// naiveTransferStep is the step key of the baseline's one transfer.
	naiveTransferStep = "transfer"
)

// NaiveInput starts a NaivePayment.
type NaiveInput struct {
	Request       protocol.PaymentRequest
	Confirmations uint64
	// ActivityTaskQueue is the payflow worker's task queue, which runs the
	// activities (payflow's config temporal.task_queue).
	ActivityTaskQueue string
}

// startNaiveWorker runs the baseline workflow in this process until the
// returned stop is called.
func startNaiveWorker(tc client.Client) (stop func(), err error) {
	// As many workflow pollers as the payflow worker (workers/main.go), so the
	// comparison is of workflow designs, not of poller counts.
	w := worker.New(tc, naiveTaskQueue, worker.Options{MaxConcurrentWorkflowTaskPollers: 8})
	w.RegisterWorkflowWithOptions(NaivePayment, workflow.RegisterOptions{Name: naiveWorkflowName})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("starting the naive baseline's worker: %w", err)
	}
	return w.Stop, nil
}

// NaivePayment is the deliberately naive baseline `make bench` measures
// payflow against: the same activities, one regular activity per step, and
// confirmations counted by the workflow itself from one signal per block
// (each followed by a receipt check). Only the benchmark starts it, and it
// sends the block signals.
func NaivePayment(ctx workflow.Context, in NaiveInput) (protocol.PaymentResponse, error) {
	r := in.Request
	wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
	resp := protocol.PaymentResponse{QueueID: r.QueueID, Status: protocol.StatusFailed, Amount: r.Amount, Chain: r.Chain,
		Symbol: r.Symbol, OrderID: r.OrderID, FromAddress: r.FromAddress, ToAddress: r.ToAddress}
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           in.ActivityTaskQueue,
		StartToCloseTimeout: 30 * time.Second, // one DB transaction
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 30 * time.Second},
	})
	cctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           in.ActivityTaskQueue,
		StartToCloseTimeout: 60 * time.Second, // a few RPC round trips
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute},
	})
	publish := func() (protocol.PaymentResponse, error) {
		err := workflow.ExecuteActivity(lctx, a.PublishResult, activities.PublishInput{Flow: protocol.FlowWithdraw,
			MessageID: wfID + "/result", Payment: &resp}).Get(ctx, nil)
		return resp, err
	}
	var rsv activities.ReserveResult
	if err := workflow.ExecuteActivity(lctx, a.ReserveFunds, activities.ReserveInput{Key: wfID, Chain: r.Chain,
		Symbol: r.Symbol, FromAddress: r.FromAddress, Amount: r.Amount}).Get(ctx, &rsv); err != nil {
		resp.Error = naiveErrorMessage(err)
		return publish()
	}
	resp.FromAddress = rsv.PayingAddress
	var signed activities.TransferResult
	if err := workflow.ExecuteActivity(cctx, a.SignTransfer, activities.TransferInput{WorkflowID: wfID, Step: naiveTransferStep,
		Symbol: r.Symbol, From: rsv.PayingAddress, To: r.ToAddress, Amount: r.Amount}).Get(ctx, &signed); err != nil {
		resp.Error = naiveErrorMessage(err)
		_ = workflow.ExecuteActivity(lctx, a.ReleaseFunds, activities.ReleaseInput{Key: wfID}).Get(ctx, nil)
		return publish()
	}
	resp.TxHash = signed.TxHash
	if err := workflow.ExecuteActivity(cctx, a.Broadcast, activities.BroadcastInput{WorkflowID: wfID, Step: naiveTransferStep}).Get(ctx, nil); err != nil {
		resp.Error = naiveErrorMessage(err)
		return publish()
	}
	blocks := workflow.GetSignalChannel(ctx, signalBlock)
	for {
		var head uint64
		blocks.Receive(ctx, &head)
		var rc activities.ReceiptResult
		if err := workflow.ExecuteActivity(cctx, a.CheckReceipt, activities.ReceiptInput{TxHash: signed.TxHash}).Get(ctx, &rc); err != nil {
			return resp, err
		}
		if rc.Mined && head+1 >= rc.BlockNumber+in.Confirmations {
			resp.BlockNumber = rc.BlockNumber
			if !rc.Succeeded {
				resp.Error = fmt.Sprintf("transaction %s reverted", signed.TxHash)
				_ = workflow.ExecuteActivity(lctx, a.ReleaseFunds, activities.ReleaseInput{Key: wfID}).Get(ctx, nil)
				return publish()
			}
			break
		}
	}
	if err := workflow.ExecuteActivity(lctx, a.SettleFunds, activities.SettleInput{Key: wfID, TxHash: signed.TxHash}).Get(ctx, nil); err != nil {
		return resp, err
	}
	resp.Status = protocol.StatusSucceeded
	return publish()
}

// naiveErrorMessage is the business text of an activity's failure: an
// application error's own message, never its cause chain.
func naiveErrorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return "internal error; the operator has the details"
}

package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/chain"
	"payflow/protocol"
)

// The fair baseline lives here, with the benchmark, and runs in
// the benchmark's own worker: the production worker does not know it. It is
// the plain design a reader of Temporal's samples-go would write: one regular
// activity per step and one confirmation signal. Its workflow tasks are served
// by this process on baselineTaskQueue; its activities are payflow's own,
// served by the running payflow worker on its task queue, so the baseline
// does the same database, chain and broker work as payflow and differs from
// it in the workflow design only:
//
//	BeginPayment (reserve) → SignTransfer → Broadcast (which registers the
//	transaction with payflow's tracker, confirmed-only) → wait for the
//	tracker's one "confirmed" tx-event signal → InspectTransfer (the chain's
//	verdict) → DecidePayment (settle or release, and record the answer) →
//	PublishResult.
//
// No local activities, no timer, no search-attribute upserts: those are
// payflow's levers, and the baseline is what they are measured against.
const (
	// baselineTaskQueue is the benchmark worker's task queue.
	baselineTaskQueue = "payflow-bench-baseline"
	// baselineWorkflowName is BaselinePayment's registered workflow type.
	baselineWorkflowName = "BaselinePayment"
	// baselineTransferStep is the step key of the baseline's one transfer.
	baselineTransferStep = "transfer"
	// baselineIDPrefix prefixes a baseline workflow id (then the queue_id).
	baselineIDPrefix = "baseline-"
)

// BaselineInput starts a BaselinePayment.
type BaselineInput struct {
	// Flow is withdraw or pay: the response queue of the answer.
	Flow    protocol.Flow
	Request protocol.PaymentRequest
	// ActivityTaskQueue is the payflow worker's task queue, which runs the
	// activities (payflow's config temporal.task_queue).
	ActivityTaskQueue string
}

// startBaselineWorker runs the baseline workflow in this process until the
// returned stop is called.
func startBaselineWorker(tc client.Client) (stop func(), err error) {
	// As many workflow pollers as the payflow worker (workers/main.go), so the
	// comparison is of workflow designs, not of poller counts.
	w := worker.New(tc, baselineTaskQueue, worker.Options{MaxConcurrentWorkflowTaskPollers: 8})
	w.RegisterWorkflowWithOptions(BaselinePayment, workflow.RegisterOptions{Name: baselineWorkflowName})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("starting the baseline's worker: %w", err)
	}
	return w.Stop, nil
}

// BaselinePayment is the fair baseline `make bench` measures payflow against
// (see above). Only the benchmark starts it.
func BaselinePayment(ctx workflow.Context, in BaselineInput) (protocol.PaymentResponse, error) {
	r := in.Request
	info := workflow.GetInfo(ctx)
	wfID := info.WorkflowExecution.ID
	answerID := wfID + "/result"
	resp := protocol.PaymentResponse{QueueID: r.QueueID, Status: protocol.StatusFailed, Amount: r.Amount, Chain: r.Chain,
		Symbol: r.Symbol, OrderID: r.OrderID, FromAddress: r.FromAddress, ToAddress: r.ToAddress}
	var a *activities.Activities
	// Two option sets, as a samples reader would: database steps and chain
	// steps; retried until they succeed (every step is idempotent).
	dbCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           in.ActivityTaskQueue,
		StartToCloseTimeout: 30 * time.Second, // one DB transaction
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 30 * time.Second},
	})
	chainCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           in.ActivityTaskQueue,
		StartToCloseTimeout: 60 * time.Second, // a few RPC round trips
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute},
	})
	publish := func() (protocol.PaymentResponse, error) {
		err := workflow.ExecuteActivity(dbCtx, a.PublishResult, activities.PublishInput{Flow: in.Flow,
			MessageID: answerID, Payment: &resp}).Get(ctx, nil)
		return resp, err
	}
	// decide settles (status 1) or releases (status 0) the reservation key
	// ("" = nothing reserved) with the answer, charging the gas of the
	// transfer (gas; nil = none attempted), then publishes it.
	var gas *activities.ChargeInput
	decide := func(key string) (protocol.PaymentResponse, error) {
		if err := workflow.ExecuteActivity(dbCtx, a.DecidePayment, activities.DecideInput{Flow: in.Flow, Key: key,
			AnswerID: answerID, Answer: resp, WorkflowStart: info.WorkflowStartTime, Gas: gas}).Get(ctx, nil); err != nil {
			return resp, err
		}
		return publish()
	}

	var begin activities.BeginResult
	err := workflow.ExecuteActivity(dbCtx, a.BeginPayment, activities.BeginInput{AnswerID: answerID,
		ReserveInput: activities.ReserveInput{Key: wfID, Chain: r.Chain, Symbol: r.Symbol, FromAddress: r.FromAddress,
			Amount: r.Amount, ToAddress: r.ToAddress}}).Get(ctx, &begin)
	switch {
	case err != nil && !baselinePermanent(err):
		return resp, err
	case err != nil:
		resp.Error = baselineErrorMessage(err)
		return decide("") // nothing reserved
	case begin.Answer != nil:
		resp = *begin.Answer
		return publish()
	}
	resp.FromAddress = begin.PayingAddress

	var signed activities.TransferResult
	if err := workflow.ExecuteActivity(chainCtx, a.SignTransfer, activities.TransferInput{WorkflowID: wfID,
		Step: baselineTransferStep, Guard: wfID, Symbol: r.Symbol, From: begin.PayingAddress, To: r.ToAddress,
		Amount: r.Amount}).Get(ctx, &signed); err != nil {
		if !baselinePermanent(err) {
			return resp, err
		}
		resp.Error = baselineErrorMessage(err)
		gas = &activities.ChargeInput{WorkflowID: wfID, Step: baselineTransferStep} // nothing signed: all returns
		return decide(wfID)
	}
	resp.TxHash = signed.TxHash
	if err := workflow.ExecuteActivity(chainCtx, a.Broadcast, activities.BroadcastInput{WorkflowID: wfID,
		Step: baselineTransferStep, Flow: in.Flow, WorkflowStart: info.WorkflowStartTime}).Get(ctx, nil); err != nil {
		return resp, err
	}

	// One signal: the tracker's "confirmed" (or "dropped") for this
	// transaction. The chain's verdict (InspectTransfer) decides; a signal
	// that the chain does not bear out is waited past.
	events := workflow.GetSignalChannel(ctx, activities.SignalTxEvent)
	for {
		var ev chain.TxEvent
		events.Receive(ctx, &ev)
		if !strings.EqualFold(ev.TxHash, signed.TxHash) ||
			(ev.Milestone != chain.MilestoneConfirmed && ev.Milestone != chain.MilestoneDropped) {
			continue
		}
		var insp activities.Inspection
		if err := workflow.ExecuteActivity(chainCtx, a.InspectTransfer, activities.InspectInput{WorkflowID: wfID,
			Step: baselineTransferStep}).Get(ctx, &insp); err != nil {
			return resp, err
		}
		if !insp.Confirmed && insp.State != string(chain.TransferDropped) {
			continue
		}
		resp.TxHash, resp.BlockNumber = insp.TxHash, insp.BlockNumber
		gas = &activities.ChargeInput{WorkflowID: wfID, Step: baselineTransferStep, TxHash: insp.TxHash}
		if insp.Paid {
			resp.Status = protocol.StatusSucceeded
		} else {
			resp.Error = insp.Reason
			if resp.Error == "" {
				resp.Error = fmt.Sprintf("transfer %s did not pay", insp.TxHash)
			}
		}
		return decide(wfID)
	}
}

// baselinePermanent reports whether an activity failed for a business reason.
func baselinePermanent(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}

// baselineErrorMessage is the business text of an activity's failure: an
// application error's own message, never its cause chain.
func baselineErrorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return "internal error; the operator has the details"
}

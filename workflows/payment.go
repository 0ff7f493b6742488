package workflows

import (
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
)

// PaymentInput starts a Withdraw or Pay workflow.
type PaymentInput struct {
	Request protocol.PaymentRequest
	// Digest fingerprints the request content (protocol.PaymentRequest.Digest).
	Digest string
	// ConfirmTimeout bounds the wait for confirmations after broadcast.
	ConfirmTimeout time.Duration
	// ApprovalThreshold: amounts strictly above it wait for an operator's
	// Approval (SignalApproval) after the funds are reserved. Empty = never.
	ApprovalThreshold string
	// ApprovalTimeout rejects an unanswered approval.
	ApprovalTimeout time.Duration
}

// PaymentResult is the workflow's result: the response that was published.
type PaymentResult = protocol.PaymentResponse

// PaymentStatus answers QueryStatus.
type PaymentStatus struct {
	Step          string `json:"step"`
	Summary       string `json:"summary"`
	TxHash        string `json:"tx_hash,omitempty"`
	PayingAddress string `json:"paying_address,omitempty"`
	Confirmed     bool   `json:"confirmed"`
}

// Payment steps, as shown by QueryStatus and the PayflowStatus attribute.
const (
	StepReserving    = "reserving"
	StepApproval     = "awaiting-approval"
	StepSigning      = "signing"
	StepBroadcasting = "broadcasting"
	StepConfirming   = "confirming"
	StepStuck        = "stuck"
	StepSettling     = "settling"
	StepCompensating = "compensating"
	StepSucceeded    = "succeeded"
	StepFailed       = "failed"
)

// transferStep names the one transfer of a payment in signed_txs.
const transferStep = "transfer"

// Withdraw sends a withdrawal and answers on the withdraw response queue.
// Exactly one response per queue_id; see runPayment.
func Withdraw(ctx workflow.Context, in PaymentInput) (PaymentResult, error) {
	return runPayment(ctx, protocol.FlowWithdraw, in)
}

// Pay pays a merchant and answers on the pay response queue, echoing order_id.
func Pay(ctx workflow.Context, in PaymentInput) (PaymentResult, error) {
	return runPayment(ctx, protocol.FlowPay, in)
}

// Activity options. Ledger and outbox steps retry indefinitely: the database
// coming back is the only way forward, and every step is idempotent.
var (
	ledgerOpts = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, // one DB transaction
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 30 * time.Second},
	}
	chainOpts = workflow.ActivityOptions{
		StartToCloseTimeout: 60 * time.Second, // a few RPC round trips
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute},
	}
)

type payment struct {
	flow   protocol.Flow
	in     PaymentInput
	wfID   string
	status PaymentStatus
	resp   protocol.PaymentResponse
}

func (p *payment) step(ctx workflow.Context, step, summary string) {
	p.status.Step, p.status.Summary = step, summary
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(step))
	workflow.GetLogger(ctx).Info("payment step", "queue_id", p.in.Request.QueueID, "step", step)
}

// runPayment: reserve → sign → broadcast → wait for confirmations → settle →
// publish status=1. Any failure after the reservation releases it and
// publishes status=0 with the error. The transfer is signed once and stored
// before broadcast, so retries and resets re-send the same bytes.
func runPayment(ctx workflow.Context, flow protocol.Flow, in PaymentInput) (PaymentResult, error) {
	r := in.Request
	p := &payment{flow: flow, in: in, wfID: workflow.GetInfo(ctx).WorkflowExecution.ID}
	p.resp = protocol.PaymentResponse{QueueID: r.QueueID, Status: protocol.StatusFailed, Amount: r.Amount, Chain: r.Chain,
		Symbol: r.Symbol, OrderID: r.OrderID, FromAddress: r.FromAddress, ToAddress: r.ToAddress}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (PaymentStatus, error) { return p.status, nil }); err != nil {
		return p.resp, err
	}
	attrs := []temporal.SearchAttributeUpdate{AttrFlow.ValueSet(string(flow)), AttrQueueID.ValueSet(r.QueueID),
		AttrAddress.ValueSet(r.FromAddress)}
	if r.OrderID != "" {
		attrs = append(attrs, AttrOrderID.ValueSet(r.OrderID))
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, attrs...)

	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	cctx := workflow.WithActivityOptions(ctx, chainOpts)

	p.step(ctx, StepReserving, fmt.Sprintf("reserving %s %s on %s", r.Amount.String(), r.Symbol, r.FromAddress))
	var rsv activities.ReserveResult
	if err := workflow.ExecuteActivity(lctx, a.ReserveFunds, activities.ReserveInput{Key: p.wfID, Chain: r.Chain,
		Symbol: r.Symbol, FromAddress: r.FromAddress, Amount: r.Amount}).Get(ctx, &rsv); err != nil {
		return p.fail(ctx, false, err)
	}
	p.resp.FromAddress, p.status.PayingAddress = rsv.PayingAddress, rsv.PayingAddress
	if rsv.PayingAddress != r.FromAddress {
		_ = workflow.UpsertTypedSearchAttributes(ctx, AttrAddress.ValueSet(rsv.PayingAddress))
	}

	if needsApproval(in) {
		if err := p.awaitApproval(ctx); err != nil {
			return p.fail(ctx, true, err)
		}
	}

	p.step(ctx, StepSigning, fmt.Sprintf("signing %s %s from %s to %s", r.Amount.String(), r.Symbol, rsv.PayingAddress, r.ToAddress))
	var signed activities.TransferResult
	if err := workflow.ExecuteActivity(cctx, a.SignTransfer, activities.TransferInput{WorkflowID: p.wfID, Step: transferStep,
		Symbol: r.Symbol, From: rsv.PayingAddress, To: r.ToAddress, Amount: r.Amount}).Get(ctx, &signed); err != nil {
		// Nothing was signed (or it is stored and never sent): safe to release.
		return p.fail(ctx, true, err)
	}
	p.resp.TxHash, p.status.TxHash = signed.TxHash, signed.TxHash
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrTxHash.ValueSet(signed.TxHash))

	p.step(ctx, StepBroadcasting, "broadcasting "+signed.TxHash)
	if err := workflow.ExecuteActivity(cctx, a.Broadcast, activities.BroadcastInput{WorkflowID: p.wfID,
		Step: transferStep}).Get(ctx, nil); err != nil {
		// Only permanent errors get here (e.g. another transaction took the
		// nonce): ours can never be mined, so releasing is safe.
		return p.fail(ctx, true, err)
	}

	p.step(ctx, StepConfirming, fmt.Sprintf("waiting for confirmations of %s", signed.TxHash))
	var ev TxEvent
	for {
		var ok bool
		if ev, ok = p.awaitConfirmation(ctx, signed.TxHash); ok {
			break
		}
		// Timed out. A mined transfer must never be reported as failed, and an
		// unmined one may still mine: ask the chain, and if it is not mined keep
		// the reservation and keep waiting, visibly stuck for an operator.
		var rc activities.ReceiptResult
		if err := workflow.ExecuteActivity(cctx, a.CheckReceipt, activities.ReceiptInput{TxHash: signed.TxHash}).Get(ctx, &rc); err != nil {
			return p.resp, err
		}
		if rc.Mined {
			ev = TxEvent{TxHash: signed.TxHash, BlockNumber: rc.BlockNumber, Succeeded: rc.Succeeded, Milestone: "confirmed"}
			break
		}
		p.step(ctx, StepStuck, fmt.Sprintf("%s not mined after %s; still waiting", signed.TxHash, in.ConfirmTimeout))
	}
	p.resp.BlockNumber = ev.BlockNumber
	p.status.Confirmed = true
	if !ev.Succeeded {
		return p.fail(ctx, true, fmt.Errorf("transaction %s reverted in block %d", signed.TxHash, ev.BlockNumber))
	}

	p.step(ctx, StepSettling, "settling the ledger")
	if err := workflow.ExecuteActivity(lctx, a.SettleFunds, activities.SettleInput{Key: p.wfID, TxHash: signed.TxHash}).
		Get(ctx, nil); err != nil {
		return p.resp, err // settle retries forever; only a logic error gets here
	}
	p.resp.Status = protocol.StatusSucceeded
	p.step(ctx, StepSucceeded, fmt.Sprintf("paid %s %s to %s in %s", r.Amount.String(), r.Symbol, r.ToAddress, signed.TxHash))
	return p.publish(ctx, "")
}

func needsApproval(in PaymentInput) bool {
	if in.ApprovalThreshold == "" {
		return false
	}
	limit, err := decimal.NewFromString(in.ApprovalThreshold)
	return err == nil && in.Request.Amount.GreaterThan(limit)
}

// awaitApproval holds the reserved payment until an operator approves or
// rejects it (signal SignalApproval), or the approval timeout rejects it.
func (p *payment) awaitApproval(ctx workflow.Context) error {
	timeout := p.in.ApprovalTimeout
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	p.step(ctx, StepApproval, fmt.Sprintf("%s %s is above the approval threshold %s; waiting up to %s for an operator",
		p.in.Request.Amount.String(), p.in.Request.Symbol, p.in.ApprovalThreshold, timeout))
	var dec Approval
	timedOut := false
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalApproval), func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &dec) })
	sel.AddFuture(workflow.NewTimer(tctx, timeout), func(workflow.Future) { timedOut = true })
	sel.Select(ctx)
	switch {
	case timedOut:
		return fmt.Errorf("rejected: no approval within %s", timeout)
	case !dec.Approve:
		reason := dec.Reason
		if reason == "" {
			reason = "no reason given"
		}
		return fmt.Errorf("rejected by %s: %s", orUnknown(dec.By), reason)
	}
	workflow.GetLogger(ctx).Info("payment approved", "queue_id", p.in.Request.QueueID, "by", dec.By)
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an operator"
	}
	return s
}

// awaitConfirmation waits for the tracker's "confirmed" signal for txHash, or
// the confirm timeout. Repeated or stale signals are ignored.
func (p *payment) awaitConfirmation(ctx workflow.Context, txHash string) (TxEvent, bool) {
	ch := workflow.GetSignalChannel(ctx, SignalTxEvent)
	timeout := p.in.ConfirmTimeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimer(tctx, timeout)
	for {
		var ev TxEvent
		timedOut := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &ev) })
		sel.AddFuture(timer, func(workflow.Future) { timedOut = true })
		sel.Select(ctx)
		if timedOut {
			return TxEvent{}, false
		}
		if ev.TxHash != txHash {
			continue
		}
		switch ev.Milestone {
		case "confirmed":
			return ev, true
		case "seen":
			p.status.Summary = fmt.Sprintf("%s seen in block %d, waiting for confirmations", txHash, ev.BlockNumber)
		case "reorged":
			p.status.Summary = fmt.Sprintf("%s left the canonical chain; waiting for re-inclusion", txHash)
		}
	}
}

// fail releases the reservation if one is held and publishes status=0.
func (p *payment) fail(ctx workflow.Context, release bool, cause error) (PaymentResult, error) {
	msg := errorMessage(cause)
	if release {
		p.step(ctx, StepCompensating, "releasing the reservation: "+msg)
		var a *activities.Activities
		lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
		if err := workflow.ExecuteActivity(lctx, a.ReleaseFunds, activities.ReleaseInput{Key: p.wfID}).Get(ctx, nil); err != nil {
			return p.resp, err
		}
	}
	p.step(ctx, StepFailed, msg)
	return p.publish(ctx, msg)
}

func (p *payment) publish(ctx workflow.Context, errMsg string) (PaymentResult, error) {
	p.resp.Error = errMsg
	var a *activities.Activities
	lctx := workflow.WithActivityOptions(ctx, ledgerOpts)
	err := workflow.ExecuteActivity(lctx, a.PublishResult, activities.PublishInput{Flow: p.flow,
		MessageID: p.wfID + "/result", Payment: &p.resp}).Get(ctx, nil)
	return p.resp, err
}

// errorMessage is the text put in a response's "error": the application
// error's message without Temporal's wrapping.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		// Error() would append "(type: …, retryable: …)" and the cause.
		return appErr.Message()
	}
	return err.Error()
}

package workflows

import (
	"errors"
	"fmt"
	"strings"
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
	// ConfirmTimeout: a broadcast transfer not confirmed within it is replaced
	// on the same nonce at a higher fee (repeatedly, up to the attempt cap).
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
	// localOpts: payment steps run as local activities (see runPayment).
	// Retried until they succeed or fail permanently: each is idempotent.
	localOpts = workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second, // a DB transaction or a few RPC round trips
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

// note records the current step for the status query only (no event).
func (p *payment) note(step, summary string) {
	p.status.Step, p.status.Summary = step, summary
}

// step records the step and shows it in the Web UI (PayflowStatus), with any
// other search attribute updates, in one history event.
func (p *payment) step(ctx workflow.Context, step, summary string, attrs ...temporal.SearchAttributeUpdate) {
	p.note(step, summary)
	_ = workflow.UpsertTypedSearchAttributes(ctx, append(attrs, AttrStatus.ValueSet(step))...)
	workflow.GetLogger(ctx).Info("payment step", "queue_id", p.in.Request.QueueID, "step", step, "summary", summary)
}

// runPayment: reserve → sign → broadcast → wait for confirmations → settle →
// publish status=1. Any failure after the reservation releases it and
// publishes status=0 with the error. The transfer is signed once and stored
// before broadcast, so retries and resets re-send the same bytes.
//
// The steps are local activities: reserve, sign and broadcast run in the
// first workflow task, settle and publish in the one woken by the single
// "confirmed" signal. A payment costs three workflow tasks and about twenty
// history events instead of one task per step (see `make bench`). Local
// activities may run again if a worker dies before the task completes; every
// step is idempotent, so that is safe.
func runPayment(ctx workflow.Context, flow protocol.Flow, in PaymentInput) (PaymentResult, error) {
	r := in.Request
	p := &payment{flow: flow, in: in, wfID: workflow.GetInfo(ctx).WorkflowExecution.ID}
	p.resp = protocol.PaymentResponse{QueueID: r.QueueID, Status: protocol.StatusFailed, Amount: r.Amount, Chain: r.Chain,
		Symbol: r.Symbol, OrderID: r.OrderID, FromAddress: r.FromAddress, ToAddress: r.ToAddress}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (PaymentStatus, error) { return p.status, nil }); err != nil {
		return p.resp, err
	}
	var a *activities.Activities
	lctx := workflow.WithLocalActivityOptions(ctx, localOpts)

	p.note(StepReserving, fmt.Sprintf("reserving %s %s on %s", r.Amount.String(), r.Symbol, r.FromAddress))
	var rsv activities.ReserveResult
	if err := workflow.ExecuteLocalActivity(lctx, a.ReserveFunds, activities.ReserveInput{Key: p.wfID, Chain: r.Chain,
		Symbol: r.Symbol, FromAddress: r.FromAddress, Amount: r.Amount}).Get(ctx, &rsv); err != nil {
		return p.fail(ctx, false, err)
	}
	p.resp.FromAddress, p.status.PayingAddress = rsv.PayingAddress, rsv.PayingAddress

	if needsApproval(in) {
		if err := p.awaitApproval(ctx); err != nil {
			return p.fail(ctx, true, err)
		}
	}

	p.note(StepSigning, fmt.Sprintf("signing %s %s from %s to %s", r.Amount.String(), r.Symbol, rsv.PayingAddress, r.ToAddress))
	var signed activities.TransferResult
	if err := workflow.ExecuteLocalActivity(lctx, a.SignTransfer, activities.TransferInput{WorkflowID: p.wfID, Step: transferStep,
		Symbol: r.Symbol, From: rsv.PayingAddress, To: r.ToAddress, Amount: r.Amount}).Get(ctx, &signed); err != nil {
		// Nothing was signed (or it is stored and never sent): safe to release.
		return p.fail(ctx, true, err)
	}
	p.resp.TxHash, p.status.TxHash = signed.TxHash, signed.TxHash

	p.note(StepBroadcasting, "broadcasting "+signed.TxHash)
	if err := workflow.ExecuteLocalActivity(lctx, a.Broadcast, activities.BroadcastInput{WorkflowID: p.wfID,
		Step: transferStep}).Get(ctx, nil); err != nil {
		// Only permanent errors get here (e.g. another transaction took the
		// nonce): ours can never be mined, so releasing is safe.
		return p.fail(ctx, true, err)
	}

	attrs := []temporal.SearchAttributeUpdate{AttrTxHash.ValueSet(signed.TxHash)}
	if rsv.PayingAddress != r.FromAddress {
		attrs = append(attrs, AttrAddress.ValueSet(rsv.PayingAddress))
	}
	p.step(ctx, StepConfirming, fmt.Sprintf("waiting for confirmations of %s", signed.TxHash), attrs...)
	hashes := map[string]bool{strings.ToLower(signed.TxHash): true}
	var ev TxEvent
	for {
		var ok bool
		if ev, ok = p.awaitConfirmation(ctx, hashes); ok {
			break
		}
		// Not confirmed in time: replace the transfer on the same nonce at a
		// higher fee. All attempts share the nonce, so exactly one can mine,
		// and whichever does settles the payment. A mined attempt is left to
		// the tracker; when no more replacements are allowed (attempt or fee
		// cap) the payment stays visibly stuck for an operator, funds held.
		var rep activities.ReplaceResult
		err := workflow.ExecuteLocalActivity(lctx, a.ReplaceTransfer, activities.BroadcastInput{WorkflowID: p.wfID,
			Step: transferStep}).Get(ctx, &rep)
		switch {
		case err != nil:
			p.step(ctx, StepStuck, fmt.Sprintf("%s not confirmed after %s and not replaceable (%s); still waiting",
				signed.TxHash, p.replaceAfter(), errorMessage(err)))
		case rep.Mined:
			hashes[strings.ToLower(rep.TxHash)] = true
			p.note(StepConfirming, fmt.Sprintf("%s mined; waiting for confirmations", rep.TxHash))
		default:
			hashes[strings.ToLower(rep.TxHash)] = true
			p.step(ctx, StepStuck, fmt.Sprintf("not confirmed after %s; replaced by %s (attempt %d) at a higher fee",
				p.replaceAfter(), rep.TxHash, rep.Attempt), AttrTxHash.ValueSet(rep.TxHash))
		}
	}
	p.resp.TxHash, p.status.TxHash = ev.TxHash, ev.TxHash
	p.resp.BlockNumber = ev.BlockNumber
	p.status.Confirmed = true
	if !ev.Succeeded {
		return p.fail(ctx, true, fmt.Errorf("transaction %s reverted in block %d", ev.TxHash, ev.BlockNumber))
	}

	p.note(StepSettling, "settling the ledger")
	if err := workflow.ExecuteLocalActivity(lctx, a.SettleFunds, activities.SettleInput{Key: p.wfID, TxHash: ev.TxHash}).
		Get(ctx, nil); err != nil {
		return p.resp, err // settle retries forever; only a logic error gets here
	}
	p.resp.Status = protocol.StatusSucceeded
	p.step(ctx, StepSucceeded, fmt.Sprintf("paid %s %s to %s in %s", r.Amount.String(), r.Symbol, r.ToAddress, ev.TxHash))
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

// replaceAfter is how long a broadcast transfer may stay unconfirmed before
// it is replaced at a higher fee.
func (p *payment) replaceAfter() time.Duration {
	if p.in.ConfirmTimeout > 0 {
		return p.in.ConfirmTimeout
	}
	return 30 * time.Minute
}

// awaitConfirmation waits for the tracker's "confirmed" signal for any of the
// transfer's attempts, or the replace timeout. Other signals are ignored.
func (p *payment) awaitConfirmation(ctx workflow.Context, hashes map[string]bool) (TxEvent, bool) {
	ch := workflow.GetSignalChannel(ctx, SignalTxEvent)
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimer(tctx, p.replaceAfter())
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
		if !hashes[strings.ToLower(ev.TxHash)] {
			continue
		}
		switch ev.Milestone {
		case "confirmed":
			return ev, true
		case "seen":
			p.status.Summary = fmt.Sprintf("%s seen in block %d, waiting for confirmations", ev.TxHash, ev.BlockNumber)
		case "reorged":
			p.status.Summary = fmt.Sprintf("%s left the canonical chain; waiting for re-inclusion", ev.TxHash)
		}
	}
}

// fail releases the reservation if one is held and publishes status=0.
func (p *payment) fail(ctx workflow.Context, release bool, cause error) (PaymentResult, error) {
	msg := errorMessage(cause)
	if release {
		p.step(ctx, StepCompensating, "releasing the reservation: "+msg)
		var a *activities.Activities
		lctx := workflow.WithLocalActivityOptions(ctx, localOpts)
		if err := workflow.ExecuteLocalActivity(lctx, a.ReleaseFunds, activities.ReleaseInput{Key: p.wfID}).Get(ctx, nil); err != nil {
			return p.resp, err
		}
	}
	p.step(ctx, StepFailed, msg)
	return p.publish(ctx, msg)
}

func (p *payment) publish(ctx workflow.Context, errMsg string) (PaymentResult, error) {
	p.resp.Error = errMsg
	var a *activities.Activities
	lctx := workflow.WithLocalActivityOptions(ctx, localOpts)
	err := workflow.ExecuteLocalActivity(lctx, a.PublishResult, activities.PublishInput{Flow: p.flow,
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

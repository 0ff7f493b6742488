package workflows

import (
	"errors"
	"fmt"
	"strconv"
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
	// ConfirmTimeout: a broadcast transfer not confirmed within it is replaced
	// on the same nonce at a higher fee (repeatedly, up to the attempt cap);
	// it never fails the payment (see runTransfer).
	ConfirmTimeout time.Duration
	// ApprovalThreshold: amounts strictly above it wait for an operator's
	// Approval (SignalApproval) after the funds are reserved. Empty = never.
	ApprovalThreshold string
	// ApprovalTimeout rejects an unanswered approval.
	ApprovalTimeout time.Duration
	// Refused is set when the request itself was refused (bad signature,
	// unknown field, …): the payment only records and publishes status=0
	// with this reason, which makes it final for the queue_id.
	Refused string `json:",omitempty"`
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
	StepSettling     = "settling"
	StepCompensating = "compensating"
	StepSucceeded    = "succeeded"
	StepFailed       = "failed"
	// StepAnswered: a run (a reset, say) found the payment's answer
	// recorded; it only makes sure that answer is published.
	StepAnswered = "answered"
)

// transferStep names the one transfer of a payment in signed_txs.
const transferStep = "transfer"

// PaymentTransferStep is the signed_txs step of a payment's transfer
// (the worker's stuck-payments gauge picks payments out by it).
const PaymentTransferStep = transferStep

// Withdraw sends a withdrawal and answers on the withdraw response queue.
// Exactly one response per queue_id; see runPayment.
func Withdraw(ctx workflow.Context, in PaymentInput) (PaymentResult, error) {
	return runPayment(ctx, protocol.FlowWithdraw, in)
}

// Pay pays a merchant and answers on the pay response queue, echoing order_id.
func Pay(ctx workflow.Context, in PaymentInput) (PaymentResult, error) {
	return runPayment(ctx, protocol.FlowPay, in)
}

// Activity options for the non-payment workflows (regular activities).
// Ledger and outbox steps retry indefinitely: the database coming back is the
// only way forward, and every step is idempotent.
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
	// gas names the transfer this run decided, whose gas DecidePayment
	// charges (nil: no transfer was attempted).
	gas *activities.ChargeInput
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

// AnswerID is the outbox message id (and AMQP message id) of a payment's one
// answer, given its workflow id.
func AnswerID(workflowID string) string { return workflowID + "/result" }

// runPayment: begin (the gate, and the reservation) → approval if needed →
// the transfer's life (runTransfer) → decide → publish.
//
// A published answer is final, and this is how:
//   - DecidePayment stores the answer and settles (status 1) or releases
//     (status 0) the reservation in one database transaction;
//   - BeginPayment, the first step of every run, returns a stored answer if
//     there is one, and then nothing is reserved, signed or sent: a replay,
//     a retry or an operator's reset to any point finds the decision and
//     re-publishes the same stored answer (which the outbox sends once);
//   - a reservation that is settled or released is never handed out again,
//     and nothing is signed unless the payment's reservation is held.
//
// A reset of a payment that has not answered yet (stuck, or waiting for
// approval) continues it: the reservation is held, the transfer already
// signed is returned and re-sent as the same bytes, so it pays at most once.
//
// After a transfer is signed, the reservation is released only when the chain
// proves the transfer can never be mined (runTransfer); transient errors are
// retried without end, never reported as failures.
//
// The steps are local activities: a payment costs few workflow tasks and
// history events (see `make bench`). Local activities may run again if a
// worker dies before the task completes; every step is idempotent.
func runPayment(ctx workflow.Context, flow protocol.Flow, in PaymentInput) (PaymentResult, error) {
	r := in.Request
	p := &payment{flow: flow, in: in, wfID: workflow.GetInfo(ctx).WorkflowExecution.ID}
	p.resp = protocol.PaymentResponse{QueueID: r.QueueID, Status: protocol.StatusFailed, Amount: r.Amount, Chain: r.Chain,
		Symbol: r.Symbol, OrderID: r.OrderID, FromAddress: r.FromAddress, ToAddress: r.ToAddress}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (PaymentStatus, error) { return p.status, nil }); err != nil {
		return p.resp, err
	}
	// An operator's cancel request stops a payment only while it waits for
	// approval (it is then rejected: released and answered status=0); once
	// a transfer is signed nothing can unsign it, so the payment follows it
	// to the chain's verdict. Everything runs on a context the cancel does
	// not reach; awaitApproval watches the original one.
	cancelled := ctx
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	var a *activities.Activities
	lctx := workflow.WithLocalActivityOptions(ctx, localOpts)

	if in.Refused != "" {
		return p.decide(ctx, "", p.failed(in.Refused))
	}
	p.note(StepReserving, fmt.Sprintf("reserving %s %s on %s", r.Amount.String(), r.Symbol, r.FromAddress))
	var begin activities.BeginResult
	err := workflow.ExecuteLocalActivity(lctx, a.BeginPayment, activities.BeginInput{AnswerID: AnswerID(p.wfID),
		ReserveInput: activities.ReserveInput{Key: p.wfID, Chain: r.Chain, Symbol: r.Symbol, FromAddress: r.FromAddress,
			Amount: r.Amount, ToAddress: r.ToAddress}, ApprovalThreshold: in.ApprovalThreshold}).Get(ctx, &begin)
	switch {
	case err != nil && !permanentError(err):
		return p.resp, err // cancelled
	case isErrType(err, activities.ErrTypeReservationClosed), isErrType(err, activities.ErrTypeReservationMismatch):
		// Closed with no answer recorded: only an operator's hand can have
		// done that. Held for other money under this payment's key: its
		// transfer may be in flight. Either way nothing is sent and nothing
		// is answered: an operator looks.
		p.step(ctx, StepFailed, errorMessage(err))
		return p.resp, err
	case err != nil:
		return p.decide(ctx, "", p.failed(errorMessage(err))) // nothing reserved
	case begin.Answer != nil:
		p.resp = *begin.Answer
		summary := "answered before with status " + strconv.Itoa(p.resp.Status) + "; nothing more to do"
		// The Web UI lists a payment by PayflowStatus: a run that only
		// re-publishes a recorded answer (after a reset, say) ends showing
		// that answer's outcome, not what the run started with.
		if workflow.GetVersion(ctx, answeredShowsOutcome, workflow.DefaultVersion, 1) == 1 {
			p.step(ctx, outcomeStep(p.resp.Status), summary)
		} else {
			p.note(StepAnswered, summary)
		}
		return p.publish(ctx)
	}
	p.resp.FromAddress, p.status.PayingAddress = begin.PayingAddress, begin.PayingAddress

	if held := p.heldFor(begin.Velocity); held != "" {
		reason, ok, err := p.awaitApproval(ctx, cancelled, held)
		if err != nil {
			return p.resp, err
		}
		if !ok {
			return p.decide(ctx, p.wfID, p.failed(reason))
		}
	}

	attrs := []temporal.SearchAttributeUpdate{}
	if begin.PayingAddress != r.FromAddress {
		attrs = append(attrs, AttrAddress.ValueSet(begin.PayingAddress))
	}
	what := fmt.Sprintf("%s %s from %s to %s", r.Amount.String(), r.Symbol, begin.PayingAddress, r.ToAddress)
	out, err := runTransfer(ctx, transferSpec{Step: transferStep, What: what, Sign: a.SignTransfer,
		SignInput: activities.TransferInput{WorkflowID: p.wfID, Step: transferStep, Guard: p.wfID, Symbol: r.Symbol,
			From: begin.PayingAddress, To: r.ToAddress, Amount: r.Amount},
		ReplaceAfter: p.replaceAfter(), Flow: p.flow}, &paymentStepper{p, attrs})
	if err != nil {
		return p.resp, err
	}
	p.gas = &activities.ChargeInput{WorkflowID: p.wfID, Step: transferStep}
	if out.Signed {
		p.gas.TxHash = out.TxHash
	}
	p.resp.TxHash, p.status.TxHash = out.TxHash, out.TxHash
	p.resp.BlockNumber = out.BlockNumber
	p.status.Confirmed = out.Paid
	if !out.Paid {
		return p.decide(ctx, p.wfID, p.failed(out.Reason))
	}
	p.resp.Status = protocol.StatusSucceeded
	summary := fmt.Sprintf("paid %s %s to %s in %s", r.Amount.String(), r.Symbol, r.ToAddress, out.TxHash)
	if out.Received != "" {
		// The token took a fee: the transfer moved money, so it is paid;
		// the answer says what arrived, the ledger books what left.
		if received, err := decimal.NewFromString(out.Received); err == nil {
			amt := protocol.NewAmount(received)
			p.resp.ReceivedAmount = &amt
			summary += fmt.Sprintf("; the recipient received %s (the token took a fee)", out.Received)
		}
	}
	p.note(StepSettling, "settling the ledger")
	return p.decide(ctx, p.wfID, summary)
}

// paymentStepper adds the payment's first search-attribute updates (the
// paying wallet, when it is not from_address) to its first step.
type paymentStepper struct {
	p     *payment
	attrs []temporal.SearchAttributeUpdate
}

func (s *paymentStepper) note(step, summary string) { s.p.note(step, summary) }

func (s *paymentStepper) tx(hash string) { s.p.status.TxHash = hash }

func (s *paymentStepper) step(ctx workflow.Context, step, summary string, attrs ...temporal.SearchAttributeUpdate) {
	attrs, s.attrs = append(s.attrs, attrs...), nil
	s.p.step(ctx, step, summary, attrs...)
}

// answeredShowsOutcome is the change id of an answered run's final
// PayflowStatus (older runs only noted StepAnswered).
const answeredShowsOutcome = "answered-run-shows-outcome"

// outcomeStep is the final step of a payment answered with status.
func outcomeStep(status int) string {
	if status == protocol.StatusSucceeded {
		return StepSucceeded
	}
	return StepFailed
}

// failed sets the answer to status 0 with reason and returns the summary.
func (p *payment) failed(reason string) string {
	p.resp.Status, p.resp.Error = protocol.StatusFailed, reason
	return reason
}

// decide records the answer and closes the reservation (key; "" when nothing
// is reserved) in one step, then publishes the answer.
func (p *payment) decide(ctx workflow.Context, key, summary string) (PaymentResult, error) {
	var a *activities.Activities
	lctx := workflow.WithLocalActivityOptions(ctx, localOpts)
	if p.resp.Status == protocol.StatusFailed && key != "" {
		p.note(StepCompensating, "releasing the reservation: "+summary)
	}
	if err := workflow.ExecuteLocalActivity(lctx, a.DecidePayment, activities.DecideInput{Flow: p.flow, Key: key,
		AnswerID: AnswerID(p.wfID), Answer: p.resp, WorkflowStart: workflow.GetInfo(ctx).WorkflowStartTime,
		Gas: p.gas}).Get(ctx, nil); err != nil {
		return p.resp, err
	}
	p.step(ctx, outcomeStep(p.resp.Status), summary)
	return p.publish(ctx)
}

// publish sends the recorded answer (once: see PublishResult).
func (p *payment) publish(ctx workflow.Context) (PaymentResult, error) {
	var a *activities.Activities
	lctx := workflow.WithLocalActivityOptions(ctx, localOpts)
	err := workflow.ExecuteLocalActivity(lctx, a.PublishResult, activities.PublishInput{Flow: p.flow,
		MessageID: AnswerID(p.wfID), Payment: &p.resp}).Get(ctx, nil)
	return p.resp, err
}

// isErrType reports whether err is an application error of type t.
func isErrType(err error, t string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == t
}

// heldFor says why the reserved payment must wait for an operator's
// approval ("" when it need not): its amount is above its asset's approval
// threshold, or it would take its paying wallet or its recipient over a 24 h
// velocity limit (v, from BeginPayment; nil when within the limits).
func (p *payment) heldFor(v *activities.Velocity) string {
	r := p.in.Request
	var why []string
	if activities.AboveThreshold(r.Amount, p.in.ApprovalThreshold) {
		why = append(why, fmt.Sprintf("%s %s is above the approval threshold %s", r.Amount.String(), r.Symbol, p.in.ApprovalThreshold))
	}
	if v != nil && v.OverWallet {
		why = append(why, fmt.Sprintf("wallet %s would send %s %s in 24 h, above its limit %s %s", v.Wallet, v.WalletTotal, r.Symbol,
			v.WalletLimit, r.Symbol))
	}
	if v != nil && v.OverRecipient {
		why = append(why, fmt.Sprintf("recipient %s would receive %s %s in 24 h, above its limit %s %s", v.Recipient, v.RecipientTotal,
			r.Symbol, v.RecipientLimit, r.Symbol))
	}
	return strings.Join(why, "; ")
}

// recordApprovals is the change id of recording an operator's decision in
// the audit trail (RecordApproval) before acting on it (older runs did not).
const recordApprovals = "record-approvals"

// awaitApproval holds the reserved payment, held for the reason held, until
// an operator approves or rejects it (signal SignalApproval), or the
// approval timeout or an operator's cancel request (on cancelled) rejects
// it. A decision by signal is recorded in the audit trail before anything
// else happens (RecordApproval: payflow-signer signs a held payment only
// once its approval is recorded). It returns the reason of a rejection and
// false, or "" and true; an error only when the workflow cannot go on.
func (p *payment) awaitApproval(ctx, cancelled workflow.Context, held string) (string, bool, error) {
	timeout := p.in.ApprovalTimeout
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	p.step(ctx, StepApproval, fmt.Sprintf("%s; waiting up to %s for an operator", held, timeout))
	var dec Approval
	timedOut := false
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalApproval), func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &dec) })
	sel.AddFuture(workflow.NewTimer(tctx, timeout), func(workflow.Future) { timedOut = true })
	byOperator := false
	sel.AddReceive(cancelled.Done(), func(workflow.ReceiveChannel, bool) { byOperator = true })
	sel.Select(ctx)
	switch {
	case byOperator:
		return "rejected: the payment was cancelled by an operator", false, nil
	case timedOut:
		return fmt.Sprintf("rejected: no approval within %s", timeout), false, nil
	}
	// Checked only once a decision is in: a run that was waiting when
	// this change was deployed records the decision it gets.
	if workflow.GetVersion(ctx, recordApprovals, workflow.DefaultVersion, 1) == 1 {
		var a *activities.Activities
		lctx := workflow.WithLocalActivityOptions(ctx, localOpts)
		if err := workflow.ExecuteLocalActivity(lctx, a.RecordApproval, activities.ApprovalInput{WorkflowID: p.wfID,
			RunID: workflow.GetInfo(ctx).WorkflowExecution.RunID, Decision: dec, Held: held}).Get(ctx, nil); err != nil {
			return "", false, err
		}
	}
	if !dec.Approve {
		reason := dec.Reason
		if reason == "" {
			reason = "no reason given"
		}
		return fmt.Sprintf("rejected by %s: %s", orUnknown(dec.By), reason), false, nil
	}
	workflow.GetLogger(ctx).Info("payment approved", "queue_id", p.in.Request.QueueID, "by", dec.By)
	return "", true, nil
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

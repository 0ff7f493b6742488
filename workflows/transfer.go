package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/chain"
	"payflow/protocol"
)

// The life of one on-chain transfer, shared by payments (Withdraw, Pay) and
// sweeps (the gas top-up and each token sweep):
//
//	sign once (guarded by the reservation that pays for it)
//	→ broadcast the stored bytes
//	→ wait for the tracker's "confirmed" (or "dropped") signal for any attempt;
//	  unconfirmed for too long, replace it on the same nonce at a higher fee
//	→ ask the chain what it proves (InspectTransfer).
//
// runTransfer returns once the chain has decided: paid (confirmed, and the
// intended effect is in the receipt), or proven never to pay (reverted, moved
// nothing, or its nonce consumed by another transaction at confirmed depth).
// Its caller then settles or releases the reservation — the one compensation
// rule of payflow: a reservation is released only when nothing was signed or
// the chain proved the transfer can never be mined (see transferOutcome).

// localOpts: every step of a transfer (and of a payment) runs as a local
// activity. Transient errors (database, RPC, broker) are retried without end:
// the only way forward is the dependency coming back, and a transient error
// must never be reported as a failed payment. Each step is idempotent.
var localOpts = workflow.LocalActivityOptions{
	ScheduleToCloseTimeout: 10 * 365 * 24 * time.Hour, // never give up: see above
	StartToCloseTimeout:    30 * time.Second,          // a DB transaction or a few RPC round trips
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2,
		MaximumInterval: 30 * time.Second},
}

// Steps of a transfer, as QueryStatus and the PayflowStatus attribute show
// them (payments and sweeps share them).
const (
	StepSigning      = "signing"
	StepBroadcasting = "broadcasting"
	StepConfirming   = "confirming"
	StepStuck        = "stuck"
)

// transferSpec describes one transfer for runTransfer.
type transferSpec struct {
	// Step names the transfer in signed_txs; unique within the workflow.
	Step string
	// What describes it for people ("100 USDT from 0x… to 0x…").
	What string
	// Sign is the activity that signs it once (SignTransfer, SignTopUp) and
	// SignInput its input, which names the guarding reservation.
	Sign      any
	SignInput any
	// ReplaceAfter: unconfirmed this long, the transfer is replaced on the
	// same nonce at a higher fee (and again after as long).
	ReplaceAfter time.Duration
	// GiveUpAfter > 0 stops waiting after that long with an undecided
	// outcome (the transfer may still be mined): for transfers whose owner
	// holds nothing that depends on them (a gas top-up). 0 waits for the
	// chain's verdict, however long.
	GiveUpAfter time.Duration
	// Flow is the payment's flow, for the request→broadcast latency metric
	// ("" for sweeps: not measured).
	Flow protocol.Flow
}

// transferOutcome is what runTransfer learned.
type transferOutcome struct {
	// Signed: a transaction was signed, so one of its attempts may be mined.
	Signed bool
	// Decided: the chain's verdict is in (always true when nothing was signed).
	Decided bool
	// Paid: confirmed, and the receipt shows the intended effect.
	Paid        bool
	TxHash      string
	BlockNumber uint64
	// Reason: why it did not pay, in the business's words.
	Reason string
	// Received: a paid token transfer moved this much (less than sent) to
	// the recipient, or a transfer whose fee came from its amount this much
	// at Position; "" when it moved all of it.
	Received string
	Position uint
}

// mayRelease reports whether the reservation behind the transfer may be
// released: nothing was signed, or the chain proved it will never pay.
func (o transferOutcome) mayRelease() bool { return !o.Paid && (!o.Signed || o.Decided) }

// stepper shows a workflow's progress: note changes only what the status
// query answers (no history event); step also sets PayflowStatus and attrs;
// tx tells the latest attempt's hash.
type stepper interface {
	tx(hash string)
	note(step, summary string)
	step(ctx workflow.Context, step, summary string, attrs ...temporal.SearchAttributeUpdate)
}

// runTransfer signs, broadcasts and follows one transfer until the chain
// decides it (see the package comment above). It returns an error only when
// the workflow is cancelled; a transfer refused before signing (no gas, fee
// cap, reservation no longer held, …) is an outcome with Signed=false.
func runTransfer(ctx workflow.Context, spec transferSpec, show stepper) (transferOutcome, error) {
	var a *activities.Activities
	lctx := workflow.WithLocalActivityOptions(ctx, localOpts)
	show.note(StepSigning, "signing "+spec.What)
	var signed activities.TransferResult
	if err := workflow.ExecuteLocalActivity(lctx, spec.Sign, spec.SignInput).Get(ctx, &signed); err != nil {
		if permanentError(err) {
			return transferOutcome{Decided: true, Reason: errorMessage(err)}, nil
		}
		return transferOutcome{}, err
	}
	out := transferOutcome{Signed: true, TxHash: signed.TxHash}
	show.tx(signed.TxHash)
	info := workflow.GetInfo(ctx)
	ref := activities.BroadcastInput{WorkflowID: info.WorkflowExecution.ID, Step: spec.Step, Flow: spec.Flow,
		WorkflowStart: info.WorkflowStartTime, TxHash: signed.TxHash}

	show.note(StepBroadcasting, "broadcasting "+signed.TxHash)
	var sent activities.BroadcastResult
	if err := workflow.ExecuteLocalActivity(lctx, a.Broadcast, ref).Get(ctx, &sent); err != nil {
		return out, err // only a step with nothing signed gets here, which cannot be
	}
	waiting := fmt.Sprintf("waiting for confirmations of %s", signed.TxHash)
	if sent.Refused != "" {
		waiting = fmt.Sprintf("%s not taken by the node (%s); waiting for the chain", signed.TxHash, sent.Refused)
	}
	show.step(ctx, StepConfirming, waiting, AttrTxHash.ValueSet(signed.TxHash))

	hashes := map[string]bool{strings.ToLower(signed.TxHash): true}
	attempt := 0
	started := workflow.Now(ctx)
	inspect := func() (activities.Inspection, error) {
		var insp activities.Inspection
		err := workflow.ExecuteLocalActivity(lctx, a.InspectTransfer,
			activities.InspectInput{WorkflowID: ref.WorkflowID, Step: ref.Step}).Get(ctx, &insp)
		return insp, err
	}
	for {
		if awaitTxEvent(ctx, hashes, spec.ReplaceAfter) {
			// Confirmed or dropped, says the signal: the chain may have
			// decided. Only its verdict counts (a signal can be sent by
			// hand); it covers every attempt and checks the receipt's effect.
			insp, err := inspect()
			if err != nil {
				return out, err
			}
			if insp.State == string(chain.TransferDropped) || insp.Confirmed {
				return decided(out, insp), nil
			}
			show.note(StepConfirming, fmt.Sprintf("%s: %s; waiting for the chain", insp.TxHash, insp.State))
			continue
		}
		if spec.GiveUpAfter > 0 && workflow.Now(ctx).Sub(started) >= spec.GiveUpAfter {
			out.Reason = fmt.Sprintf("%s not confirmed within %s", signed.TxHash, spec.GiveUpAfter)
			return out, nil
		}
		// Unconfirmed for ReplaceAfter: replace it on the same nonce at a
		// higher fee. All attempts share the nonce, so at most one can be
		// mined, and whichever is settles the transfer. Asking for attempt
		// n+1 by number makes a retried replacement sign nothing new.
		var rep activities.ReplaceResult
		if err := workflow.ExecuteLocalActivity(lctx, a.ReplaceTransfer, activities.ReplaceInput{WorkflowID: ref.WorkflowID,
			Step: ref.Step, Attempt: attempt + 1}).Get(ctx, &rep); err != nil {
			return out, err
		}
		switch {
		case rep.Settled:
			insp, err := inspect()
			if err != nil {
				return out, err
			}
			if insp.State == string(chain.TransferDropped) || insp.Confirmed {
				return decided(out, insp), nil
			}
			hashes[strings.ToLower(insp.TxHash)] = true
			show.note(StepConfirming, fmt.Sprintf("%s mined; waiting for confirmations", insp.TxHash))
		case rep.Stuck != "":
			show.step(ctx, StepStuck, fmt.Sprintf("%s not confirmed after %s and not replaceable (%s); still waiting",
				signed.TxHash, spec.ReplaceAfter, rep.Stuck))
		default:
			attempt = rep.Attempt
			hashes[strings.ToLower(rep.TxHash)] = true
			show.tx(rep.TxHash)
			show.step(ctx, StepStuck, fmt.Sprintf("not confirmed after %s; replaced by %s (attempt %d) at a higher fee",
				spec.ReplaceAfter, rep.TxHash, rep.Attempt), AttrTxHash.ValueSet(rep.TxHash))
		}
	}
}

// decided fills out with the chain's verdict.
func decided(out transferOutcome, insp activities.Inspection) transferOutcome {
	out.Decided, out.Paid = true, insp.Paid
	out.TxHash, out.BlockNumber, out.Reason, out.Received, out.Position = insp.TxHash, insp.BlockNumber, insp.Reason,
		insp.Received, insp.Position
	if !out.Paid && out.Reason == "" {
		out.Reason = fmt.Sprintf("transfer %s did not pay", insp.TxHash)
	}
	return out
}

// awaitTxEvent waits up to timeout for the tracker's "confirmed" or "dropped"
// signal about one of hashes (true), or the timeout (false); other signals
// are skipped.
func awaitTxEvent(ctx workflow.Context, hashes map[string]bool, timeout time.Duration) bool {
	ch := workflow.GetSignalChannel(ctx, SignalTxEvent)
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
			return false
		}
		if hashes[strings.ToLower(ev.TxHash)] &&
			(ev.Milestone == chain.MilestoneConfirmed || ev.Milestone == chain.MilestoneDropped) {
			return true
		}
	}
}

// permanentError reports whether an activity failed for good (a business
// reason), as opposed to the workflow being cancelled.
func permanentError(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}

// errorMessage is the text put in a response's "error": the application
// error's message without Temporal's wrapping. Anything else (a timeout, a
// cancellation) is described without internal detail, which goes to the logs.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		// Error() would append "(type: …, retryable: …)" and the cause.
		return appErr.Message()
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return "the payment was cancelled by an operator"
	}
	return "internal error; the operator has the details"
}

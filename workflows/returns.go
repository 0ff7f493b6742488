package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
)

// returnStep names a return's one transfer in signed_txs.
const returnStep = "return"

// ReturnDepositWorkflowID is the id of the return of a held deposit: one
// return per deposit at a time.
func ReturnDepositWorkflowID(chain, txHash string, logIndex uint) string {
	return fmt.Sprintf("deposit-return-%s-%s-%d", chain, strings.ToLower(txHash), logIndex)
}

// ReturnDepositInput names a held deposit to pay back to its sender.
type ReturnDepositInput struct {
	Chain    string
	TxHash   string
	LogIndex uint
	// ConfirmTimeout: unconfirmed this long, the return is replaced at a
	// higher fee (0: 30 minutes).
	ConfirmTimeout time.Duration
}

// ReturnDepositResult is how a return ended.
type ReturnDepositResult struct {
	Returned bool
	TxHash   string
	// Reason says why it was not returned (the deposit stays held).
	Reason string `json:",omitempty"`
}

// ReturnDeposit pays a deposit screening froze back to its sender: the
// transfer spends the deposit's hold as a payment spends its reservation
// (runTransfer: signed once against it, broadcast, replaced when stuck,
// decided by the chain), then the hold is settled. A deposit no longer held
// returns nothing; a transfer refused before signing, or proven never to
// pay, leaves the deposit held, and the result says why. No answer is
// published: no business system asked for it.
func ReturnDeposit(ctx workflow.Context, in ReturnDepositInput) (ReturnDepositResult, error) {
	var a *activities.Activities
	wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
	lctx := workflow.WithLocalActivityOptions(ctx, localOpts)
	show := &returnStepper{}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (PaymentStatus, error) { return show.status, nil }); err != nil {
		return ReturnDepositResult{}, err
	}
	show.step(ctx, StepReserving, "checking the hold", AttrFlow.ValueSet("deposit-return"), AttrTxHash.ValueSet(in.TxHash))
	ref := activities.ReturnInput{Chain: in.Chain, TxHash: in.TxHash, LogIndex: in.LogIndex, WorkflowID: wfID}
	var plan activities.ReturnPlan
	if err := workflow.ExecuteLocalActivity(lctx, a.BeginReturn, ref).Get(ctx, &plan); err != nil {
		if permanentError(err) {
			show.step(ctx, StepFailed, errorMessage(err))
			return ReturnDepositResult{Reason: errorMessage(err)}, nil
		}
		return ReturnDepositResult{}, err
	}
	replace := in.ConfirmTimeout
	if replace <= 0 {
		replace = 30 * time.Minute
	}
	what := fmt.Sprintf("%s %s from %s back to %s", plan.Amount.String(), plan.Symbol, plan.Address, plan.Sender)
	out, err := runTransfer(ctx, transferSpec{Step: returnStep, What: what, Sign: a.SignTransfer,
		SignInput: activities.TransferInput{WorkflowID: wfID, Step: returnStep, Guard: plan.Hold, Symbol: plan.Symbol,
			From: plan.Address, To: plan.Sender, Amount: plan.Amount}, ReplaceAfter: replace}, show)
	if err != nil {
		return ReturnDepositResult{}, err
	}
	end := activities.EndReturnInput{ReturnInput: ref, Paid: out.Paid, ReturnTx: out.TxHash,
		Gas: &activities.ChargeInput{WorkflowID: wfID, Step: returnStep}}
	if out.Signed {
		end.Gas.TxHash = out.TxHash
	}
	if err := workflow.ExecuteLocalActivity(lctx, a.EndReturn, end).Get(ctx, nil); err != nil {
		return ReturnDepositResult{}, err
	}
	if !out.Paid {
		show.step(ctx, StepFailed, "not returned, the deposit stays held: "+out.Reason)
		return ReturnDepositResult{TxHash: out.TxHash, Reason: out.Reason}, nil
	}
	show.step(ctx, StepSucceeded, "returned "+what+" in "+out.TxHash)
	return ReturnDepositResult{Returned: true, TxHash: out.TxHash}, nil
}

// returnStepper shows a return's progress (the status query answers a
// PaymentStatus, as a payment's does).
type returnStepper struct{ status PaymentStatus }

func (s *returnStepper) tx(hash string) { s.status.TxHash = hash }

func (s *returnStepper) note(step, summary string) { s.status.Step, s.status.Summary = step, summary }

func (s *returnStepper) step(ctx workflow.Context, step, summary string, attrs ...temporal.SearchAttributeUpdate) {
	s.note(step, summary)
	_ = workflow.UpsertTypedSearchAttributes(ctx, append(attrs, AttrStatus.ValueSet(step))...)
	workflow.GetLogger(ctx).Info("return step", "step", step, "summary", summary)
}

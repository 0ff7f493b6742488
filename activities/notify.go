package activities

import (
	"context"
	"errors"

	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"payflow/chain"
)

// SignalTxEvent is the signal that carries a chain.TxEvent to the workflow
// that owns the transaction (workflows.SignalTxEvent is the same name).
const SignalTxEvent = "tx-event"

// Owners connects the chain family's confirmation tracker and gap healer to
// Temporal: it implements chain.Notifier (milestones as SignalTxEvent
// signals) and chain.OwnerChecker (is the owning workflow still running?).
type Owners struct {
	Client client.Client
}

// NotifyTx signals ev to workflowID's current run. A workflow Temporal no
// longer has is chain.ErrOwnerGone: the tracker stops following the
// transaction for it.
func (o Owners) NotifyTx(ctx context.Context, workflowID string, ev chain.TxEvent) error {
	err := o.Client.SignalWorkflow(ctx, workflowID, "", SignalTxEvent, ev)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return chain.ErrOwnerGone
	}
	return err
}

// OwnerRunning reports whether workflowID's latest run is running, so the
// gap healer never cancels a live payment's nonce. A workflow Temporal does
// not know is not running.
func (o Owners) OwnerRunning(ctx context.Context, workflowID string) (bool, error) {
	d, err := o.Client.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

package activities

import (
	"context"
	"errors"
	"fmt"

	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"payflow/audit"
)

// SignalApproval is the signal that carries an operator's Approval to a
// held payment (workflows.SignalApproval is the same name).
const SignalApproval = "approval"

// Approval is an operator's decision on a held payment (above its asset's
// approval threshold, or over a velocity limit): the payload of
// SignalApproval, from payflowctl or sent straight from the Temporal Web UI
// or CLI.
type Approval struct {
	Approve bool   `json:"approve"`
	By      string `json:"by"`
	Reason  string `json:"reason"`
}

// History reads a workflow's history (a client.Client does): where the
// identity Temporal gave a signal's sender is.
type History interface {
	GetWorkflowHistory(ctx context.Context, workflowID, runID string, isLongPoll bool,
		filterType enums.HistoryEventFilterType) client.HistoryEventIterator
}

// ApprovalInput is the decision a held payment received.
type ApprovalInput struct {
	WorkflowID string
	RunID      string
	Decision   Approval
	// Held says why the payment waited: above the threshold, over a
	// velocity limit.
	Held string
}

// RecordApproval records a held payment's approval or rejection in the
// operator audit trail (source temporal), before anything is signed. The
// actor is the identity Temporal gave the signal's sender (read from the
// run's history: the first approval signal carrying this decision), else
// the payload's By. A repeat (a retry, a replay) records nothing new: the
// record's key names the run and the signal's event.
func (a *Activities) RecordApproval(ctx context.Context, in ApprovalInput) error {
	if a.Audit == nil {
		return errors.New("recording an approval: the worker has no audit trail")
	}
	identity, eventID, err := a.signalSender(ctx, in)
	if err != nil {
		return err
	}
	actor := identity
	if actor == "" {
		actor = in.Decision.By
	}
	if actor == "" {
		actor = "unknown (the signal carries no identity)"
	}
	reason := in.Decision.Reason
	if reason == "" {
		reason = "no reason given"
	}
	action, decision := audit.ActionReject, "reject"
	if in.Decision.Approve {
		action, decision = audit.ActionApprove, "approve"
	}
	key := fmt.Sprintf("%s/%s/approval", in.WorkflowID, in.RunID)
	if eventID > 0 {
		key = fmt.Sprintf("%s/%d", key, eventID)
	}
	_, err = a.Audit.Record(ctx, audit.Entry{Actor: actor, Source: audit.SourceTemporal, Action: action,
		Subject: in.WorkflowID, Payment: in.WorkflowID, Reason: reason, Key: key,
		Changes: audit.Changes(map[string]string{"decision": decision, "by": in.Decision.By, "identity": identity, "held": in.Held})})
	return err
}

// signalSender finds the first approval signal of the run that carries in's
// decision, and returns its sender's identity and its event id (zero: none
// found, or no history to read).
func (a *Activities) signalSender(ctx context.Context, in ApprovalInput) (string, int64, error) {
	if a.History == nil {
		return "", 0, nil
	}
	it := a.History.GetWorkflowHistory(ctx, in.WorkflowID, in.RunID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	dc := converter.GetDefaultDataConverter()
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return "", 0, fmt.Errorf("reading the history of %s: %w", in.WorkflowID, err)
		}
		attrs := ev.GetWorkflowExecutionSignaledEventAttributes()
		if ev.GetEventType() != enums.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED || attrs.GetSignalName() != SignalApproval {
			continue
		}
		var got Approval
		if err := dc.FromPayloads(attrs.GetInput(), &got); err != nil || got != in.Decision {
			continue
		}
		return attrs.GetIdentity(), ev.GetEventId(), nil
	}
	return "", 0, nil
}

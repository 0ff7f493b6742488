package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"payflow/workflows"
)

// EnsureReconcileSchedule creates the Temporal Schedule id (a chain's
// workflows.ReconcileScheduleID, "payflow-reconcile[-<chain>]"), which starts a Reconcile with in every interval on
// taskQueue. A schedule that already exists is left as it is, including its
// interval and input: change them with `temporal schedule update`, or delete
// it and restart a worker. One run at a time: a run still going when the next
// is due makes that one skip.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, id, chainName, taskQueue string, every time.Duration,
	in workflows.ReconcileInput) error {
	return ensureSchedule(ctx, c, id, chainName, taskQueue, every, workflows.Reconcile, in)
}

// EnsureSweepSchedule creates the Temporal Schedule id (a chain's
// workflows.SweepScheduleID, "payflow-sweep[-<chain>]"), which starts a Sweep with in every interval on
// taskQueue; an existing one is left as it is, as in EnsureReconcileSchedule.
// The run only starts one WalletSweep per wallet and ends, so a stuck wallet
// does not make later runs skip.
func EnsureSweepSchedule(ctx context.Context, c client.Client, id, chainName, taskQueue string, every time.Duration,
	in workflows.SweepInput) error {
	return ensureSchedule(ctx, c, id, chainName, taskQueue, every, workflows.Sweep, in)
}

// EnsureTreasurySchedule creates the Temporal Schedule id (a chain's
// workflows.TreasuryScheduleID, "payflow-treasury[-<chain>]"), which starts a
// Treasury with in every interval on taskQueue; an existing one is left as it
// is, as in EnsureReconcileSchedule. The run only starts the treasury sweeps
// and ends, as a Sweep does.
func EnsureTreasurySchedule(ctx context.Context, c client.Client, id, chainName, taskQueue string, every time.Duration,
	in workflows.TreasuryInput) error {
	return ensureSchedule(ctx, c, id, chainName, taskQueue, every, workflows.Treasury, in)
}

func ensureSchedule(ctx context.Context, c client.Client, id, chainName, taskQueue string, every time.Duration, wf, in any) error {
	if every <= 0 {
		return fmt.Errorf("schedule %s: interval must be positive, got %s", id, every)
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   id,
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}},
		Action: &client.ScheduleWorkflowAction{
			// Temporal appends the scheduled time to the id of each run.
			ID:        id,
			Workflow:  wf,
			Args:      []any{in},
			TaskQueue: taskQueue,
			// Each run carries its chain, for the Web UI's PayflowChain filter.
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrChain.ValueSet(chainName)),
		},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		// After an outage, one catch-up run is enough.
		CatchupWindow: max(every, time.Minute),
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating schedule %s: %w", id, err)
	}
	return nil
}

// Package workflows holds payflow's workflow functions, their input and result
// structs, the names of their signals and queries, search attribute keys,
// workflow-ID builders and the worker options they run with. Workflow code is deterministic: no clock, no I/O, no
// goroutines; every side effect is an activity.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"payflow/activities"
	"payflow/chain"
)

// DefaultTaskQueue is the task queue workers poll unless configured otherwise.
const DefaultTaskQueue = "payflow"

// Signal, query and update names.
const (
	// SignalTxEvent carries a chain.TxEvent (seen / confirmed / reorged) from
	// the confirmation tracker to the workflow that owns the transaction.
	SignalTxEvent = activities.SignalTxEvent
	// SignalApproval carries an operator's Approval decision.
	SignalApproval = activities.SignalApproval
	// QueryStatus returns a PaymentStatus: the current step in words.
	QueryStatus = "status"
)

// TaskTimeout is the workflow task timeout payflow starts its workflows
// with: how long a workflow task handed to a worker that died waits before
// another worker gets it (Temporal's default is 10s). A payment's workflow
// tasks are a few local activities of milliseconds; a longer local activity
// keeps its task alive by heartbeat. Workers give up on a dead worker's
// sticky queue after StickyTimeout.
const (
	TaskTimeout   = 3 * time.Second
	StickyTimeout = 3 * time.Second
)

// Search attributes payflow registers with Temporal (all Keyword). `make up`
// registers them with the dev server; docker-compose with the admin tools.
var (
	AttrFlow    = temporal.NewSearchAttributeKeyKeyword("PayflowFlow")
	AttrQueueID = temporal.NewSearchAttributeKeyKeyword("PayflowQueueId")
	AttrOrderID = temporal.NewSearchAttributeKeyKeyword("PayflowOrderId")
	AttrAddress = temporal.NewSearchAttributeKeyKeyword("PayflowAddress")
	AttrTxHash  = temporal.NewSearchAttributeKeyKeyword("PayflowTxHash")
	AttrStatus  = temporal.NewSearchAttributeKeyKeyword("PayflowStatus")
	AttrChain   = temporal.NewSearchAttributeKeyKeyword("PayflowChain")
)

// WithdrawWorkflowID is the workflow id of a withdraw request. One id per
// queue_id is what makes a redelivered request start nothing new.
func WithdrawWorkflowID(queueID string) string { return "withdraw-" + queueID }

// PayWorkflowID is the workflow id of a pay request.
func PayWorkflowID(queueID string) string { return "pay-" + queueID }

// TxEvent is what the confirmation tracker signals (SignalTxEvent) about a
// transaction: its milestones are the chain.Milestone constants.
type TxEvent = chain.TxEvent

// Approval is an operator's decision on a held payment: above its asset's
// approval threshold, or over a velocity limit.
type Approval = activities.Approval

// WorkerOptions are the Temporal worker's options on every chain's queue.
func WorkerOptions() worker.Options {
	return worker.Options{
		// Pollers of their own for the worker's sticky queue and for the
		// task queue. With one mixed set (MaxConcurrentWorkflowTaskPollers)
		// every poller goes to the sticky queue while it reports a backlog,
		// and stays there after a burst of confirmations: new payments' first
		// workflow tasks then waited up to 1.4 s for a poller (make bench:
		// p99 request→broadcast at half capacity 1,183 ms; 220 ms with these).
		WorkflowTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
			InitialNumberOfPollers: 4, MinimumNumberOfPollers: 2, MaximumNumberOfPollers: 8}),
		// More activity pollers than the default (2).
		MaxConcurrentActivityTaskPollers: 4,
		// A dead worker's cached workflows move to a standing one this soon.
		StickyScheduleToStartTimeout: StickyTimeout,
	}
}

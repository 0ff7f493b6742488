package workflows

import (
	"fmt"
	"testing"
)

// TestStickyAndTaskQueueHaveTheirOwnPollers: the worker polls its sticky
// queue and the task queue with separate pollers (the SDK's autoscaling
// behaviour), never with one mixed set that a sticky backlog drains from
// the task queue (new payments then waited for a poller).
func TestStickyAndTaskQueueHaveTheirOwnPollers(t *testing.T) {
	o := WorkerOptions()
	if o.MaxConcurrentWorkflowTaskPollers != 0 || o.WorkflowTaskPollerBehavior == nil {
		t.Fatalf("workflow task pollers: mixed set of %d, behaviour %v", o.MaxConcurrentWorkflowTaskPollers,
			o.WorkflowTaskPollerBehavior)
	}
	if fmt.Sprintf("%T", o.WorkflowTaskPollerBehavior) != "*internal.pollerBehaviorAutoscaling" {
		t.Fatalf("workflow task pollers: %T, want the autoscaling behaviour (a poller set per queue)",
			o.WorkflowTaskPollerBehavior)
	}
}

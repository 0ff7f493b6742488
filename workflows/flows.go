package workflows

import (
	"payflow/config"
	"payflow/protocol"
)

// FlowSpec is what payflow does with one flow's requests: the workflow that
// serves a request, the id that makes a repeated request start nothing new,
// and the queues it is read from and answered on. Every place that maps a
// flow reads it from Flows.
type FlowSpec struct {
	Flow protocol.Flow
	// Workflow is the workflow function started per request.
	Workflow any
	// WorkflowID builds the workflow id from the request's key: the
	// queue_id of a payment; for a topup, TopupKey(chain, address).
	WorkflowID func(key string) string
	// Requests and Responses pick the flow's queues from the RabbitMQ config.
	Requests  func(config.RMQConfig) config.QueueConfig
	Responses func(config.RMQConfig) config.QueueConfig
}

// Flows lists the three flows, in the order they are served.
var Flows = []FlowSpec{
	{Flow: protocol.FlowTopup, Workflow: Topup, WorkflowID: func(key string) string { return "topup-" + key },
		Requests:  func(c config.RMQConfig) config.QueueConfig { return c.Topup },
		Responses: func(c config.RMQConfig) config.QueueConfig { return c.TopupResp }},
	{Flow: protocol.FlowWithdraw, Workflow: Withdraw, WorkflowID: WithdrawWorkflowID,
		Requests:  func(c config.RMQConfig) config.QueueConfig { return c.Withdraw },
		Responses: func(c config.RMQConfig) config.QueueConfig { return c.WithdrawResp }},
	{Flow: protocol.FlowPay, Workflow: Pay, WorkflowID: PayWorkflowID,
		Requests:  func(c config.RMQConfig) config.QueueConfig { return c.Pay },
		Responses: func(c config.RMQConfig) config.QueueConfig { return c.PayResp }},
}

// FlowOf returns the spec of flow; ok is false for an unknown flow.
func FlowOf(flow protocol.Flow) (FlowSpec, bool) {
	for _, f := range Flows {
		if f.Flow == flow {
			return f, true
		}
	}
	return FlowSpec{}, false
}

// ResponseQueues maps every flow to its response queue (for the activities
// that publish answers).
func ResponseQueues(c config.RMQConfig) map[protocol.Flow]config.QueueConfig {
	out := make(map[protocol.Flow]config.QueueConfig, len(Flows))
	for _, f := range Flows {
		out[f.Flow] = f.Responses(c)
	}
	return out
}

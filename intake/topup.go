package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"payflow/protocol"
	"payflow/rmq"
	"payflow/workflows"
)

// HandleTopup returns the handler of the topup request queue: it starts the
// address's watch, once per (chain, address).
func (i *Intake) HandleTopup() rmq.Handler {
	return func(ctx context.Context, d amqp.Delivery) error {
		env, err := i.verifier.Open(protocol.FlowTopup, d.Body)
		var req protocol.TopupRequest
		if err == nil {
			req, err = env.Topup(i)
		}
		if err != nil {
			return i.rejectTopup(ctx, d, env, err)
		}
		id := workflows.TopupWorkflowID(req.Chain, req.Address)
		_, err = i.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                                       id,
			TaskQueue:                                i.cfg.TaskQueue(req.Chain),
			WorkflowTaskTimeout:                      workflows.TaskTimeout,
			WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			WorkflowExecutionErrorWhenAlreadyStarted: true,
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrFlow.ValueSet(string(protocol.FlowTopup)),
				workflows.AttrAddress.ValueSet(req.Address), workflows.AttrStatus.ValueSet("received"),
				workflows.AttrChain.ValueSet(req.Chain)),
			StaticSummary: fmt.Sprintf("watch %s for %s deposits on %s", req.Address, req.Symbol, req.Chain),
		}, workflows.Topup, workflows.TopupInput{Chain: req.Chain, Symbol: req.Symbol, Address: req.Address})
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		switch {
		case err == nil:
			i.log.Info("watching address", "workflow_id", id, "address", req.Address)
			i.observe(protocol.FlowTopup, OutcomeStarted)
			return nil
		case errors.As(err, &started):
			i.log.Info("address already watched", "workflow_id", id, "address", req.Address)
			i.observe(protocol.FlowTopup, OutcomeDuplicate)
			return nil
		default:
			return temporalErr(fmt.Errorf("starting %s: %w", id, err))
		}
	}
}

// rejectTopup answers a bad topup on the topup response queue when it names
// an address that is not already watched, and dead-letters it otherwise.
func (i *Intake) rejectTopup(ctx context.Context, d amqp.Delivery, env protocol.Envelope, cause error) error {
	reason := i.businessReason(cause)
	addr := strings.ToLower(strings.TrimSpace(env.Address))
	if addr == "" {
		i.log.Warn("bad topup without address; dead-lettering", "err", reason)
		return rmq.Permanent(errors.New(reason))
	}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(env.Fields[k], &s)
		return s
	}
	chainName := strings.ToUpper(str("chain"))
	if i.cfg.Family(chainName) != "" {
		_, err := i.temporal.DescribeWorkflowExecution(ctx, workflows.TopupWorkflowID(chainName, addr), "")
		var nf *serviceerror.NotFound
		switch {
		case err == nil:
			return rmq.Permanent(errors.New("invalid topup for an already watched address: " + reason))
		case !errors.As(err, &nf):
			return temporalErr(fmt.Errorf("checking watch of %s: %w", addr, err))
		}
	}
	resp := protocol.TopupResponse{Address: env.Address, Status: protocol.StatusFailed, Chain: str("chain"),
		Symbol: str("symbol"), Error: reason}
	body, _ := json.Marshal(resp)
	q := i.cfg.RMQ.TopupResp
	sum := sha256.Sum256(d.Body)
	i.log.Warn("bad topup answered with status=0", "address", env.Address, "err", reason)
	err := publishErr(i.pub.Publish(ctx, rmq.Message{Exchange: q.Exchange, RoutingKey: q.RoutingKey(),
		MessageID: "topup-rejected/" + hex.EncodeToString(sum[:12]), Body: body}))
	if err == nil {
		i.observe(protocol.FlowTopup, OutcomeRefused)
	}
	return err
}

// Package intake turns RabbitMQ requests into Temporal workflows: it verifies
// the signature and timestamp, validates the request, and starts the workflow
// with an id derived from queue_id so that a redelivered or repeated request
// starts nothing new. A delivery is acked only once its workflow start is
// durable, or once a bad request has been answered or dead-lettered.
//
// Handlers return errors typed for rmq.Consumer: rmq.Transient for outages
// (Temporal or the broker unreachable: retried without limit), rmq.Permanent
// for deliveries to dead-letter with their reason (a reused queue_id, a
// request Temporal refuses), plain errors for anything else (retried a
// bounded number of times, then dead-lettered).
package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"payflow/config"
	"payflow/protocol"
	"payflow/rmq"
	"payflow/workflows"
)

// MemoDigest is the memo key holding the request's content digest, compared
// when the same queue_id arrives again.
const MemoDigest = "digest"

// Publisher publishes responses and dead letters; *rmq.Publisher satisfies it.
type Publisher interface {
	Publish(ctx context.Context, m rmq.Message) error
}

// Outcomes of a handled request delivery, reported to Intake.Observe. (The
// rmq.Consumer reports deliveries requeued or dead-lettered.)
const (
	// OutcomeStarted: the request's workflow was started.
	OutcomeStarted = "started"
	// OutcomeDuplicate: the same request again; nothing new was started.
	OutcomeDuplicate = "duplicate"
	// OutcomeRefused: a bad request, answered with status=0.
	OutcomeRefused = "refused"
)

// Intake handles request deliveries.
type Intake struct {
	cfg      config.Config
	verifier protocol.Verifier
	temporal client.Client
	pub      Publisher
	log      *slog.Logger
	// Observe, when set, is told the outcome (Outcome*) of each delivery a
	// handler acks (metrics). It must not block.
	Observe func(flow protocol.Flow, outcome string)
}

func (i *Intake) observe(flow protocol.Flow, outcome string) {
	if i.Observe != nil {
		i.Observe(flow, outcome)
	}
}

// New wires an Intake.
func New(cfg config.Config, c client.Client, pub Publisher, log *slog.Logger) *Intake {
	return &Intake{cfg: cfg, temporal: c, pub: pub, log: log,
		verifier: protocol.Verifier{Secret: cfg.SignKey.Reveal(), Skew: cfg.Payment.TimestampSkew.Duration}}
}

// TokenDecimals implements protocol.Registry from the config, for chains of
// every family.
func (i *Intake) TokenDecimals(chain, symbol string) (int32, bool, bool) {
	ch, ok := i.cfg.Assets(chain)
	if !ok {
		return 0, false, false
	}
	a, ok := ch.Asset(symbol)
	return a.Decimals, true, ok
}

// CanonicalAddress implements protocol.ChainAddresses: the address check of
// the chain's family.
func (i *Intake) CanonicalAddress(chain, s string) (string, string, bool) {
	return i.cfg.CanonicalAddress(chain, s)
}

// checkRecipient refuses, before anything is signed, a recipient that must
// not receive: the zero address, or the contract of a configured token (a
// transfer there is lost or reverts, and its gas is spent for nothing).
func (i *Intake) checkRecipient(req protocol.PaymentRequest) error {
	if req.ToAddress == zeroAddress {
		return fmt.Errorf("%w: %w: to_address is the zero address; tokens sent there are lost", protocol.ErrInvalidRequest, protocol.ErrBadRecipient)
	}
	ch, _ := i.cfg.Chain(req.Chain)
	if sym, _, ok := ch.TokenByAddress(req.ToAddress); ok {
		return fmt.Errorf("%w: %w: to_address %s is the %s token contract; tokens sent there are lost",
			protocol.ErrInvalidRequest, protocol.ErrBadRecipient, req.ToAddress, sym)
	}
	return nil
}

const zeroAddress = "0x0000000000000000000000000000000000000000"

// PaymentWorkflowID returns the workflow id for a withdraw or pay queue_id
// (workflows.Flows).
func PaymentWorkflowID(flow protocol.Flow, queueID string) string {
	spec, _ := workflows.FlowOf(flow)
	return spec.WorkflowID(queueID)
}

// Handler returns the handler of flow's request queue.
func (i *Intake) Handler(flow protocol.Flow) rmq.Handler {
	if flow == protocol.FlowTopup {
		return i.HandleTopup()
	}
	return i.HandlePayment(flow)
}

// HandlePayment returns the handler for the withdraw or pay request queue.
func (i *Intake) HandlePayment(flow protocol.Flow) rmq.Handler {
	return func(ctx context.Context, d amqp.Delivery) error {
		env, err := i.verifier.Open(flow, d.Body)
		var req protocol.PaymentRequest
		if err == nil {
			req, err = env.Payment(flow, i)
		}
		if err == nil {
			err = i.checkRecipient(req)
		}
		if err != nil {
			return i.rejectPayment(ctx, flow, d, env, err)
		}
		return i.startPayment(ctx, flow, d, req)
	}
}

func (i *Intake) startPayment(ctx context.Context, flow protocol.Flow, d amqp.Delivery, req protocol.PaymentRequest) error {
	req.Sign = "" // not needed downstream; keep payloads lean
	in := workflows.PaymentInput{Request: req, ConfirmTimeout: i.cfg.ConfirmTimeout(req.Chain),
		ApprovalThreshold: i.approvalThreshold(req), ApprovalTimeout: i.cfg.Payment.ApprovalTimeout.Duration}
	return i.start(ctx, flow, in, req.Digest())
}

// approvalThreshold is the approval threshold of the request's asset on its
// chain, in that asset's units: 50,000 USDT and 50,000 ETH are not alike, so
// no number is shared across assets. Validation has refused an unknown chain
// or symbol before this, and config.Validate an asset without a threshold.
func (i *Intake) approvalThreshold(req protocol.PaymentRequest) string {
	ch, _ := i.cfg.Assets(req.Chain)
	a, _ := ch.Asset(req.Symbol)
	return a.ApprovalThreshold
}

// start starts the payment workflow of in's queue_id. A second request with
// the same queue_id starts nothing: the same content is a duplicate (acked),
// other content is refused to the dead-letter queue.
func (i *Intake) start(ctx context.Context, flow protocol.Flow, in workflows.PaymentInput, digest string) error {
	req := in.Request
	id := PaymentWorkflowID(flow, req.QueueID)
	served := i.cfg.Family(req.Chain) != ""
	opts := PaymentStartOptions(flow, in, i.cfg.TaskQueue(req.Chain), served, digest)
	spec, _ := workflows.FlowOf(flow)
	run, err := i.temporal.ExecuteWorkflow(ctx, opts, spec.Workflow, in)
	if err == nil {
		i.log.Info("started payment", "workflow_id", id, "run_id", run.GetRunID(), "queue_id", req.QueueID, "flow", flow,
			"refused", in.Refused != "")
		if in.Refused != "" {
			i.observe(flow, OutcomeRefused)
		} else {
			i.observe(flow, OutcomeStarted)
		}
		return nil
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &started) {
		return temporalErr(fmt.Errorf("starting %s: %w", id, err))
	}
	prev, err := i.digestOf(ctx, id)
	if err != nil {
		return err
	}
	if prev == digest {
		i.log.Info("duplicate request ignored", "workflow_id", id, "queue_id", req.QueueID)
		i.observe(flow, OutcomeDuplicate)
		return nil
	}
	i.log.Warn("queue_id reused with different content; dead-lettering", "workflow_id", id, "queue_id", req.QueueID)
	return rmq.Permanent(errors.New("queue_id reused with different content: " + req.QueueID))
}

// PaymentStartOptions are the options a payment workflow is started with:
// its id, task queue and timeouts, the duplicate policy, the request's digest
// (memo) and its first search attributes (chainServed: its chain is one of the
// config's, so PayflowChain names it). The bench's Temporal floor starts its
// workflows with them too.
func PaymentStartOptions(flow protocol.Flow, in workflows.PaymentInput, taskQueue string, chainServed bool,
	digest string) client.StartWorkflowOptions {
	req := in.Request
	attrs := []temporal.SearchAttributeUpdate{
		workflows.AttrFlow.ValueSet(string(flow)), workflows.AttrQueueID.ValueSet(req.QueueID),
		workflows.AttrStatus.ValueSet("received"),
	}
	if chainServed {
		attrs = append(attrs, workflows.AttrChain.ValueSet(strings.ToUpper(req.Chain)))
	}
	if req.FromAddress != "" {
		attrs = append(attrs, workflows.AttrAddress.ValueSet(req.FromAddress))
	}
	if req.OrderID != "" {
		attrs = append(attrs, workflows.AttrOrderID.ValueSet(req.OrderID))
	}
	summary := fmt.Sprintf("%s %s %s from %s to %s", flow, req.Amount.String(), req.Symbol, req.FromAddress, req.ToAddress)
	if in.Refused != "" {
		summary = fmt.Sprintf("%s refused: %s", flow, in.Refused)
	}
	return client.StartWorkflowOptions{
		ID:                                       PaymentWorkflowID(flow, req.QueueID),
		TaskQueue:                                taskQueue,
		WorkflowTaskTimeout:                      workflows.TaskTimeout,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo:                                     map[string]any{MemoDigest: digest},
		TypedSearchAttributes:                    temporal.NewSearchAttributes(attrs...),
		StaticSummary:                            summary,
	}
}

// temporalErr types an error of a Temporal call for rmq.Consumer: outages are
// retried without limit; a request the server refuses (a value over a limit,
// a failed precondition) is dead-lettered at once, since retrying it would
// loop for ever; anything else is retried a bounded number of times.
func temporalErr(err error) error {
	var (
		unavailable   *serviceerror.Unavailable
		deadline      *serviceerror.DeadlineExceeded
		exhausted     *serviceerror.ResourceExhausted
		canceled      *serviceerror.Canceled
		nsUnavailable *serviceerror.NamespaceUnavailable
		invalid       *serviceerror.InvalidArgument
		precondition  *serviceerror.FailedPrecondition
		unimplemented *serviceerror.Unimplemented
		netErr        net.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.As(err, &netErr),
		errors.As(err, &unavailable), errors.As(err, &deadline), errors.As(err, &exhausted),
		errors.As(err, &canceled), errors.As(err, &nsUnavailable):
		return rmq.Transient(err)
	case errors.As(err, &invalid), errors.As(err, &precondition), errors.As(err, &unimplemented):
		return rmq.Permanent(err)
	}
	return err
}

// publishErr types an error publishing an answer: the broker unreachable is
// an outage; a message it refuses is retried a bounded number of times.
func publishErr(err error) error {
	if err == nil || errors.Is(err, rmq.ErrNacked) {
		return err
	}
	return rmq.Transient(err)
}

// businessReason is the error text a business system may see: a protocol
// error says what was wrong with the request in its terms; anything else is
// internal and goes to the log only.
func (i *Intake) businessReason(cause error) string {
	if errors.Is(cause, protocol.ErrInvalidRequest) {
		return cause.Error()
	}
	i.log.Error("request refused for an internal reason", "err", cause)
	return "request refused"
}

func (i *Intake) digestOf(ctx context.Context, id string) (string, error) {
	desc, err := i.temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return "", temporalErr(fmt.Errorf("describing %s: %w", id, err))
	}
	p := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[MemoDigest]
	if p == nil {
		return "", nil
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		return "", fmt.Errorf("decoding digest of %s: %w", id, err)
	}
	return s, nil
}

// rejectPayment answers a bad request with status=0 when it names a valid
// queue_id that no workflow owns, and dead-letters it otherwise (no id to
// answer to, or the id belongs to a real payment whose answer must not be
// contradicted).
func (i *Intake) rejectPayment(ctx context.Context, flow protocol.Flow, d amqp.Delivery, env protocol.Envelope, cause error) error {
	reason := i.businessReason(cause)
	if env.QueueID == "" {
		i.log.Warn("bad request without a valid queue_id; dead-lettering", "flow", flow, "err", reason)
		return rmq.Permanent(errors.New(reason))
	}
	// The status=0 is answered by a payment workflow under the queue_id's own
	// id, which records it as the payment's one answer: a published answer
	// is final, so a later request with this queue_id (even a valid one) is
	// refused as a reuse instead of paying after the business was told it
	// failed. The same bad request delivered again is a duplicate.
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(env.Fields[k], &s)
		return s
	}
	req := protocol.PaymentRequest{QueueID: env.QueueID, Chain: str("chain"), Symbol: str("symbol"),
		FromAddress: str("from_address"), ToAddress: str("to_address")}
	if o := str("order_id"); protocol.ValidOrderID(o) {
		req.OrderID = o
	}
	_ = json.Unmarshal(env.Fields["amount"], &req.Amount)
	if _, _, ok := i.cfg.CanonicalAddress(req.Chain, req.FromAddress); !ok {
		req.FromAddress = "" // not searchable as an address
	}
	sum := sha256.Sum256(d.Body)
	i.log.Warn("bad request answered with status=0", "queue_id", env.QueueID, "flow", flow, "err", reason)
	return i.start(ctx, flow, workflows.PaymentInput{Request: req, Refused: reason}, "refused:"+hex.EncodeToString(sum[:16]))
}

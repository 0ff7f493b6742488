package workflows_test

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
	"payflow/workflows"
)

const (
	queueID    = "q-1"
	fromAddr   = "0xad7ccd68974093c937b3e39a29ba4aa9a8f866c6"
	toAddr     = "0x5d44d81e926be4bd2433d6db1ed9338c38759651"
	collection = "0xc011ec7100c011ec7100c011ec7100c011ec7100"
	txHash     = "0x197b4ab627402ca589f7070a93f8d12890f4af32c273cf3c65fd2b2ea303e3b9"
	otherHash  = "0x0000000000000000000000000000000000000000000000000000000000000bad"
	block      = uint64(178)

	// confirmTimeout is far beyond every signal delay below, so the timer
	// only fires in the tests that mean it to.
	confirmTimeout = 10 * time.Minute
)

var a *activities.Activities

// testLogger sends workflow and SDK logs to t.Log, so they show only for a
// failing test or with -v. Lines logged after the test ended are dropped.
func testLogger(t *testing.T) log.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})))
}

type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// errUnexpected is what a forbidden activity returns: non-retryable, so a
// wrong call fails the test through its assertions instead of retrying forever.
var errUnexpected = temporal.NewNonRetryableApplicationError("unexpected activity call", "Unexpected", nil)

func request() protocol.PaymentRequest {
	return protocol.PaymentRequest{QueueID: queueID, FromAddress: fromAddr, ToAddress: toAddr,
		Amount: protocol.MustAmount("12.5"), Chain: "ETH", Symbol: "USDT", Timestamp: 1795260813}
}

func input() workflows.PaymentInput {
	return workflows.PaymentInput{Request: request(), ConfirmTimeout: confirmTimeout}
}

// harness is one test workflow environment with PublishResult always mocked
// and recorded, plus the names of the activities a test forbids.
type harness struct {
	t         *testing.T
	env       *testsuite.TestWorkflowEnvironment
	wfID      string
	forbidden []string

	mu        sync.Mutex // mock callbacks run off the workflow goroutine
	published []activities.PublishInput
	signed    []activities.TransferInput
	settled   []activities.SettleInput
	released  []activities.ReleaseInput
	reserved  []activities.ReserveInput
	// verdict is what InspectTransfer answers: by default the transfer is
	// mined in block, paid.
	verdict activities.Inspection
	charged []activities.ChargeInput // the transfers whose gas DecidePayment was asked to charge
	// approvals are the decisions RecordApproval recorded, with how many
	// transfers were signed when each was.
	approvals     []activities.ApprovalInput
	signedAtAudit []int
}

func newHarness(t *testing.T, wfID string) *harness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Withdraw)
	env.RegisterWorkflow(workflows.Pay)
	env.RegisterActivity(&activities.Activities{})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: wfID, TaskQueue: workflows.DefaultTaskQueue})
	// Workflow time, which the env skips: a regression that waits or retries
	// forever ends in a timeout error instead of a hung test.
	env.SetWorkflowRunTimeout(24 * time.Hour)
	h := &harness{t: t, env: env, wfID: wfID,
		verdict: activities.Inspection{State: "mined", Confirmed: true, TxHash: txHash, BlockNumber: block, Paid: true}}
	// DecidePayment settles (status 1) or releases (status 0) the
	// reservation with the answer; record it as such.
	env.OnActivity(a.DecidePayment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DecideInput) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if in.Gas != nil {
				h.charged = append(h.charged, *in.Gas)
			}
			switch {
			case in.Key == "":
			case in.Answer.Status == protocol.StatusSucceeded:
				h.settled = append(h.settled, activities.SettleInput{Key: in.Key, TxHash: in.Answer.TxHash})
			default:
				h.released = append(h.released, activities.ReleaseInput{Key: in.Key})
			}
			require.Equal(t, workflows.AnswerID(wfID), in.AnswerID)
			require.False(t, in.WorkflowStart.IsZero(), "the workflow's start goes along, for the request→answer latency")
			return nil
		}).Maybe()
	env.OnActivity(a.InspectTransfer, mock.Anything, activities.InspectInput{WorkflowID: wfID, Step: "transfer"}).Return(
		func(context.Context, activities.InspectInput) (activities.Inspection, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.verdict, nil
		}).Maybe()
	env.OnActivity(a.RecordApproval, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ApprovalInput) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.approvals = append(h.approvals, in)
			h.signedAtAudit = append(h.signedAtAudit, len(h.signed))
			return nil
		}).Maybe()
	env.OnActivity(a.PublishResult, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PublishInput) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.published = append(h.published, in)
			return nil
		}).Maybe()
	return h
}

// reserve mocks BeginPayment: no answer recorded yet, and res reserved (or err).
func (h *harness) reserve(res activities.ReserveResult, err error) {
	h.env.OnActivity(a.BeginPayment, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BeginInput) (activities.BeginResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			require.Equal(h.t, workflows.AnswerID(h.wfID), in.AnswerID)
			h.reserved = append(h.reserved, in.ReserveInput)
			return activities.BeginResult{PayingAddress: res.PayingAddress}, err
		})
}

// setVerdict sets what InspectTransfer answers.
func (h *harness) setVerdict(v activities.Inspection) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verdict = v
}

func (h *harness) sign(err error) {
	h.env.OnActivity(a.SignTransfer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TransferInput) (activities.TransferResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.signed = append(h.signed, in)
			if err != nil {
				return activities.TransferResult{}, err
			}
			return activities.TransferResult{TxHash: txHash, Nonce: 7, From: in.From}, nil
		})
}

func (h *harness) broadcast() {
	// The payment's flow and start time go along, for the request→broadcast latency.
	h.env.OnActivity(a.Broadcast, mock.Anything, mock.MatchedBy(func(in activities.BroadcastInput) bool {
		return in.WorkflowID == h.wfID && in.Step == "transfer" &&
			(in.Flow == protocol.FlowWithdraw || in.Flow == protocol.FlowPay) && !in.WorkflowStart.IsZero()
	})).Return(activities.BroadcastResult{TxHash: txHash}, nil)
}

// settle and release: DecidePayment, always mocked, records both.
func (h *harness) settle()  {}
func (h *harness) release() {}

// forbid mocks fn to fail without retries, and has done assert it never ran.
// (An unmocked activity would run the real one on a zero Activities and panic,
// which Temporal retries forever.)
func (h *harness) forbid(fns ...any) {
	for _, fn := range fns {
		ft := reflect.TypeOf(fn)
		rets := make([]any, ft.NumOut())
		for i := 0; i < ft.NumOut()-1; i++ {
			rets[i] = reflect.Zero(ft.Out(i)).Interface()
		}
		rets[ft.NumOut()-1] = errUnexpected
		h.env.OnActivity(fn, mock.Anything, mock.Anything).Return(rets...).Maybe()
		name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
		name = strings.TrimSuffix(name[strings.LastIndex(name, ".")+1:], "-fm")
		h.forbidden = append(h.forbidden, name)
	}
}

func (h *harness) signal(delay time.Duration, ev workflows.TxEvent) {
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.SignalTxEvent, ev)
	}, delay)
}

// status queries the workflow. It does not fail the test itself, as it is
// mostly called from delayed callbacks; check the error afterwards.
func (h *harness) status() (workflows.PaymentStatus, error) {
	var st workflows.PaymentStatus
	v, err := h.env.QueryWorkflow(workflows.QueryStatus)
	if err == nil {
		err = v.Get(&st)
	}
	return st, err
}

// outcomes counts the settles, releases and publishes so far; delayed
// callbacks use it to check that nothing was decided too early.
func (h *harness) outcomes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.settled) + len(h.released) + len(h.published)
}

// run executes wf and returns its result and error.
func (h *harness) run(wf any, in workflows.PaymentInput) (workflows.PaymentResult, error) {
	h.t.Helper()
	h.env.ExecuteWorkflow(wf, in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "workflow did not complete")
	var res workflows.PaymentResult
	err := h.env.GetWorkflowError()
	if err == nil {
		require.NoError(h.t, h.env.GetWorkflowResult(&res))
	}
	return res, err
}

// onlyPublished asserts exactly one response was published and returns it.
func (h *harness) onlyPublished(flow protocol.Flow, prefix string) protocol.PaymentResponse {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(h.t, h.published, 1, "responses published")
	in := h.published[0]
	require.Equal(h.t, flow, in.Flow)
	require.Equal(h.t, prefix+queueID+"/result", in.MessageID)
	require.Nil(h.t, in.Topup)
	require.NotNil(h.t, in.Payment)
	return *in.Payment
}

// done checks every expectation and that no forbidden activity ran.
func (h *harness) done() {
	h.t.Helper()
	h.env.AssertExpectations(h.t)
	for _, name := range h.forbidden {
		h.env.AssertNotCalled(h.t, name, mock.Anything, mock.Anything)
	}
}

func requireAmount(t *testing.T, want string, got protocol.Amount) {
	t.Helper()
	require.True(t, got.Equal(protocol.MustAmount(want).Decimal), "amount = %s, want %s", got.String(), want)
}

// requireSucceeded checks got is the status=1 answer to request() paid by payer.
func requireSucceeded(t *testing.T, got protocol.PaymentResponse, payer string) {
	t.Helper()
	requireAmount(t, "12.5", got.Amount)
	got.Amount = protocol.Amount{}
	require.Equal(t, protocol.PaymentResponse{QueueID: queueID, Status: protocol.StatusSucceeded, Chain: "ETH",
		Symbol: "USDT", TxHash: txHash, FromAddress: payer, ToAddress: toAddr, BlockNumber: block}, got)
}

func TestWithdrawSucceeds(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	h.signal(time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "seen", BlockNumber: block, Succeeded: true})
	afterSeen := -1
	h.env.RegisterDelayedCallback(func() { afterSeen = h.outcomes() }, 1500*time.Millisecond)
	h.signal(2*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	res, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)
	require.Zero(t, afterSeen, "\"seen\" alone settles nothing")

	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	requireSucceeded(t, got, fromAddr)
	requireSucceeded(t, res, fromAddr)

	require.Len(t, h.reserved, 1)
	requireAmount(t, "12.5", h.reserved[0].Amount)
	h.reserved[0].Amount = protocol.Amount{}
	// The reservation names the recipient: the signer pays it to no one else.
	require.Equal(t, activities.ReserveInput{Key: wfID, Chain: "ETH", Symbol: "USDT", FromAddress: fromAddr, ToAddress: toAddr},
		h.reserved[0])
	require.Len(t, h.signed, 1)
	requireAmount(t, "12.5", h.signed[0].Amount)
	h.signed[0].Amount = protocol.Amount{}
	require.Equal(t, activities.TransferInput{WorkflowID: wfID, Step: "transfer", Guard: wfID, Symbol: "USDT", From: fromAddr, To: toAddr},
		h.signed[0])
	require.Equal(t, []activities.SettleInput{{Key: wfID, TxHash: txHash}}, h.settled)
	h.env.AssertActivityNumberOfCalls(t, "DecidePayment", 1)
	h.env.AssertActivityNumberOfCalls(t, "PublishResult", 1)
	h.done()
}

func TestWithdrawFallsBackToCollectionWallet(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{PayingAddress: collection}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	h.signal(time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	res, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)

	require.Len(t, h.signed, 1)
	require.Equal(t, collection, h.signed[0].From, "the collection wallet signs")
	require.Equal(t, toAddr, h.signed[0].To)
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), collection)
	require.Equal(t, collection, res.FromAddress)
	h.env.AssertActivityNumberOfCalls(t, "DecidePayment", 1)
	h.done()
}

func TestWithdrawInsufficientFunds(t *testing.T) {
	const msg = "insufficient funds: neither 0xad7c… nor the collection wallet can cover 12.5 USDT"
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{},
		temporal.NewNonRetryableApplicationError(msg, activities.ErrTypeInsufficientFunds, nil))
	// Nothing was reserved, so there is nothing to release.
	h.forbid(a.SignTransfer, a.Broadcast, a.SettleFunds, a.ReleaseFunds)

	res, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err, "a business failure is a published answer, not a failed workflow")

	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	requireAmount(t, "12.5", got.Amount)
	got.Amount = protocol.Amount{}
	require.Equal(t, protocol.PaymentResponse{QueueID: queueID, Status: protocol.StatusFailed, Chain: "ETH",
		Symbol: "USDT", FromAddress: fromAddr, ToAddress: toAddr, Error: msg}, got)
	require.Equal(t, protocol.StatusFailed, res.Status)
	require.Equal(t, msg, res.Error)
	h.done()
}

func TestWithdrawSignFailsReleases(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	// Shaped like activities' permanent(): the message repeats in the cause.
	cause := fmt.Errorf("%s has 0 wei for gas: insufficient gas", fromAddr)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(temporal.NewNonRetryableApplicationError(cause.Error(), activities.ErrTypeInsufficientGas, cause))
	h.release()
	h.forbid(a.Broadcast, a.SettleFunds)

	res, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)

	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	require.Equal(t, protocol.StatusFailed, got.Status)
	require.Equal(t, cause.Error(), got.Error, "the error is the activity's message, without Temporal's decoration")
	require.Empty(t, got.TxHash)
	require.Equal(t, fromAddr, got.FromAddress)
	require.Equal(t, got, res)
	require.Equal(t, []activities.ReleaseInput{{Key: wfID}}, h.released)
	h.env.AssertActivityNumberOfCalls(t, "DecidePayment", 1)
	h.done()
}

func TestWithdrawRevertedReleases(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.release()
	h.forbid(a.SettleFunds)
	h.setVerdict(activities.Inspection{State: "mined", Confirmed: true, TxHash: txHash, BlockNumber: block,
		Reason: fmt.Sprintf("transfer %s reverted in block %d", txHash, block)})
	h.signal(time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "seen", BlockNumber: block, Succeeded: false})
	h.signal(2*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: false})

	res, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)

	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	require.Equal(t, protocol.StatusFailed, got.Status)
	require.Contains(t, got.Error, "reverted")
	require.Contains(t, got.Error, txHash)
	require.Equal(t, txHash, got.TxHash)
	require.Equal(t, block, got.BlockNumber)
	require.Equal(t, got, res)
	require.Equal(t, []activities.ReleaseInput{{Key: wfID}}, h.released)
	h.done()
}

func TestWithdrawIgnoresForeignAndRepeatedSignals(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	// Were the foreign event taken for ours, the payment would fail as reverted.
	h.signal(time.Second, workflows.TxEvent{TxHash: otherHash, Milestone: "confirmed", BlockNumber: 999, Succeeded: false})
	h.signal(2*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "seen", BlockNumber: block, Succeeded: true})
	h.signal(3*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "seen", BlockNumber: block, Succeeded: true})
	h.signal(4*time.Second, workflows.TxEvent{TxHash: otherHash, Milestone: "seen", BlockNumber: 999, Succeeded: true})
	beforeConfirmed := -1
	h.env.RegisterDelayedCallback(func() { beforeConfirmed = h.outcomes() }, 4500*time.Millisecond)
	h.signal(5*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	res, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)
	require.Zero(t, beforeConfirmed, "only our \"confirmed\" decides")
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)
	require.Equal(t, protocol.StatusSucceeded, res.Status)
	h.env.AssertActivityNumberOfCalls(t, "DecidePayment", 1)
	h.env.AssertActivityNumberOfCalls(t, "PublishResult", 1)
	h.done()
}

const replHash = "0x00000000000000000000000000000000000000000000000000000000000fee02"

// TestWithdrawStuckIsReplaced: not confirmed within ConfirmTimeout, the
// transfer is replaced at a higher fee; nothing is published, settled or
// released meanwhile; the replacement's confirmation settles the payment and
// the response carries the replacement's hash.
func TestWithdrawStuckIsReplaced(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	var replaced int
	h.env.OnActivity(a.ReplaceTransfer, mock.Anything, activities.ReplaceInput{WorkflowID: wfID, Step: "transfer", Attempt: 1}).Return(
		func(context.Context, activities.ReplaceInput) (activities.ReplaceResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			replaced++
			return activities.ReplaceResult{TxHash: replHash, Attempt: replaced}, nil
		})
	h.setVerdict(activities.Inspection{State: "mined", Confirmed: true, TxHash: replHash, BlockNumber: block, Paid: true})
	in := input()
	in.ConfirmTimeout = time.Minute
	var mid workflows.PaymentStatus
	var midOutcomes, midReplaced int
	h.env.RegisterDelayedCallback(func() {
		mid, _ = h.status()
		midOutcomes = h.outcomes()
		h.mu.Lock()
		midReplaced = replaced
		h.mu.Unlock()
	}, 90*time.Second)
	// A late confirmation of the replacement.
	h.signal(100*time.Second, workflows.TxEvent{TxHash: replHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	res, err := h.run(workflows.Withdraw, in)
	require.NoError(t, err)
	require.Equal(t, workflows.StepStuck, mid.Step)
	require.Contains(t, mid.Summary, "replaced by "+replHash)
	require.Equal(t, 1, midReplaced)
	require.Zero(t, midOutcomes, "nothing settled, released or published while stuck")
	got := h.onlyPublished(protocol.FlowWithdraw, "withdraw-")
	require.Equal(t, protocol.StatusSucceeded, got.Status)
	require.Equal(t, replHash, got.TxHash)
	require.Equal(t, replHash, res.TxHash)
	require.Equal(t, []activities.SettleInput{{Key: wfID, TxHash: replHash}}, h.settled)
	h.done()
}

// TestWithdrawOriginalMinesAfterReplacement: the original attempt confirms
// after a replacement was sent; it settles (same nonce: only one can mine).
func TestWithdrawOriginalMinesAfterReplacement(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	h.env.OnActivity(a.ReplaceTransfer, mock.Anything, mock.Anything).Return(activities.ReplaceResult{TxHash: replHash, Attempt: 1}, nil)
	in := input()
	in.ConfirmTimeout = time.Minute
	h.signal(70*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})
	_, err := h.run(workflows.Withdraw, in)
	require.NoError(t, err)
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)
	require.Equal(t, []activities.SettleInput{{Key: wfID, TxHash: txHash}}, h.settled)
	h.done()
}

// TestWithdrawNotReplaceableStaysStuck: when no replacement is allowed (attempt
// or fee cap), the payment keeps its funds held and keeps waiting, visibly
// stuck; it never reports a failure that might be false.
func TestWithdrawNotReplaceableStaysStuck(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	h.env.OnActivity(a.ReplaceTransfer, mock.Anything, mock.Anything).Return(
		activities.ReplaceResult{Stuck: "replacing after 5 attempts: too many attempts"}, nil)
	in := input()
	in.ConfirmTimeout = time.Minute
	var mid workflows.PaymentStatus
	var midOutcomes int
	h.env.RegisterDelayedCallback(func() { mid, _ = h.status(); midOutcomes = h.outcomes() }, 150*time.Second)
	h.signal(151*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})
	_, err := h.run(workflows.Withdraw, in)
	require.NoError(t, err)
	require.Equal(t, workflows.StepStuck, mid.Step)
	require.Contains(t, mid.Summary, "not replaceable")
	require.Zero(t, midOutcomes)
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)
	h.done()
}

// TestWithdrawReplaceFindsMinedAttempt: at the timeout an attempt turns out to
// be mined already; nothing new is signed and its confirmation settles.
func TestWithdrawReplaceFindsMinedAttempt(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	h.env.OnActivity(a.ReplaceTransfer, mock.Anything, mock.Anything).Return(activities.ReplaceResult{TxHash: txHash, Settled: true}, nil)
	in := input()
	in.ConfirmTimeout = time.Minute
	h.signal(65*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})
	_, err := h.run(workflows.Withdraw, in)
	require.NoError(t, err)
	requireSucceeded(t, h.onlyPublished(protocol.FlowWithdraw, "withdraw-"), fromAddr)
	require.Equal(t, []activities.SettleInput{{Key: wfID, TxHash: txHash}}, h.settled)
	h.done()
}

func TestWithdrawStatusQuery(t *testing.T) {
	h := newHarness(t, workflows.WithdrawWorkflowID(queueID))
	h.reserve(activities.ReserveResult{PayingAddress: collection}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)

	var beforeSeen, afterSeen workflows.PaymentStatus
	var beforeErr, afterErr error
	h.env.RegisterDelayedCallback(func() { beforeSeen, beforeErr = h.status() }, time.Second)
	h.signal(2*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "seen", BlockNumber: block, Succeeded: true})
	h.env.RegisterDelayedCallback(func() { afterSeen, afterErr = h.status() }, 3*time.Second)
	h.signal(4*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	_, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)

	require.NoError(t, beforeErr)
	require.NoError(t, afterErr)
	require.Equal(t, workflows.PaymentStatus{Step: workflows.StepConfirming,
		Summary: "waiting for confirmations of " + txHash, TxHash: txHash, PayingAddress: collection}, beforeSeen)
	require.Equal(t, workflows.StepConfirming, afterSeen.Step, "payments act on \"confirmed\" alone")
	require.False(t, afterSeen.Confirmed)

	final, err := h.status()
	require.NoError(t, err)
	require.Equal(t, workflows.StepSucceeded, final.Step)
	require.True(t, final.Confirmed)
	h.done()
}

func TestPayEchoesOrderID(t *testing.T) {
	wfID := workflows.PayWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.settle()
	h.forbid(a.ReleaseFunds)
	h.signal(time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	in := input()
	in.Request.OrderID = "order-42"
	res, err := h.run(workflows.Pay, in)
	require.NoError(t, err)

	got := h.onlyPublished(protocol.FlowPay, "pay-")
	require.Equal(t, "order-42", got.OrderID)
	require.Equal(t, protocol.StatusSucceeded, got.Status)
	require.Equal(t, txHash, got.TxHash)
	require.Equal(t, "order-42", res.OrderID)
	require.Equal(t, wfID, h.reserved[0].Key)
	h.done()
}

const successHistory = "testdata/withdraw_success_history.json"

// TestReplayWithdrawHistory replays a Withdraw that succeeded on the dev
// server (begin, sign, broadcast, confirmed, inspect, decide, publish) against
// the current code: a change in the commands it issues fails here.
func TestReplayWithdrawHistory(t *testing.T) {
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflow(workflows.Withdraw)
	require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(testLogger(t), successHistory))
}

// TestReplayWithdrawHistoryCatchesChange shows the history is not replayed
// vacuously: the same Withdraw with one step added in front, unversioned, is
// rejected as nondeterministic.
func TestReplayWithdrawHistoryCatchesChange(t *testing.T) {
	changed := func(ctx workflow.Context, in workflows.PaymentInput) (workflows.PaymentResult, error) {
		if err := workflow.Sleep(ctx, time.Second); err != nil {
			return workflows.PaymentResult{}, err
		}
		return workflows.Withdraw(ctx, in)
	}
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflowWithOptions(changed, workflow.RegisterOptions{Name: "Withdraw"})
	err := replayer.ReplayWorkflowHistoryFromJSONFile(testLogger(t), successHistory)
	require.Error(t, err)
	require.Contains(t, err.Error(), "[TMPRL1100]", "the SDK's nondeterminism error code")
}

// TestPaymentChargesGasOnceDecided: the gas a transfer held is charged once
// the chain has decided it (with the mined attempt's hash), never before:
// DecidePayment charges it with the answer.
func TestPaymentChargesGasOnceDecided(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(nil)
	h.broadcast()
	h.forbid(a.ReleaseFunds)
	var before int
	h.env.RegisterDelayedCallback(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		before = len(h.charged)
	}, 1500*time.Millisecond)
	h.signal(time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "seen", BlockNumber: block, Succeeded: true})
	h.signal(2*time.Second, workflows.TxEvent{TxHash: txHash, Milestone: "confirmed", BlockNumber: block, Succeeded: true})

	_, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)
	require.Zero(t, before, "gas is charged only on the chain's verdict")
	require.Equal(t, []activities.ChargeInput{{WorkflowID: wfID, Step: "transfer", TxHash: txHash}}, h.charged)
	h.done()
}

// TestPaymentRefusedBeforeSigningReleasesGas: a transfer refused before
// signing returns whatever gas it held (charged with no hash).
func TestPaymentRefusedBeforeSigningReleasesGas(t *testing.T) {
	wfID := workflows.WithdrawWorkflowID(queueID)
	h := newHarness(t, wfID)
	h.reserve(activities.ReserveResult{PayingAddress: fromAddr}, nil)
	h.sign(temporal.NewNonRetryableApplicationError("no gas", activities.ErrTypeInsufficientGas, nil))
	h.forbid(a.Broadcast)
	_, err := h.run(workflows.Withdraw, input())
	require.NoError(t, err)
	require.Equal(t, []activities.ChargeInput{{WorkflowID: wfID, Step: "transfer"}}, h.charged)
	h.done()
}

const approvedHistory = "testdata/withdraw_approved_history.json"

// TestReplayApprovedWithdrawHistory replays a Withdraw held above its
// approval threshold and approved, recorded by the code before approvals
// were recorded in the audit trail (begin, wait, approval signal, sign,
// broadcast, confirmed, inspect, decide, publish): a run that was waiting
// when RecordApproval came replays without it (workflow.GetVersion).
func TestReplayApprovedWithdrawHistory(t *testing.T) {
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflow(workflows.Withdraw)
	require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(testLogger(t), approvedHistory))
}

package workflows_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
	"payflow/workflows"
)

const (
	usdtToken       = "0xdac17f958d2ee523a2206206994597c13d831ec7"
	depositLogIndex = uint(3)
	depositUnits    = "25750000" // 25.75 USDT, 6 decimals
	depositBlock    = uint64(200)
	// depositBlockHash is the block the listener saw the deposit in; it keys
	// the deposit's messages.
	depositBlockHash = "0x00000000000000000000000000000000000000000000000000000000000b10c1"
	watchFromBlock   = uint64(4242)

	// reincludeTimeout is far beyond the signal delays of the tests that
	// expect a credit, so the deadline only fires where a test means it to.
	reincludeTimeout = 10 * time.Minute
)

// t0 is the workflow start time, so tests can tell when something happened.
var t0 = time.Date(2026, 11, 12, 9, 0, 0, 0, time.UTC)

// errBroken is an activity's permanent failure.
var errBroken = temporal.NewNonRetryableApplicationError("broken", "Broken", nil)

func depositInput() workflows.DepositInput {
	return workflows.DepositInput{Chain: "ETH", Symbol: "USDT", Token: usdtToken, Address: toAddr, From: fromAddr,
		TxHash: txHash, LogIndex: depositLogIndex, Units: depositUnits, Amount: protocol.MustAmount("25.75"),
		BlockNumber: depositBlock, BlockHash: depositBlockHash, ReincludeTimeout: reincludeTimeout}
}

// Message-id suffixes (after the workflow id) of depositInput()'s responses.
const (
	msgSeen     = "seen/" + depositBlockHash
	msgFailed   = "final/" + depositBlockHash
	msgCredited = "credited"
)

// present is what VerifyDeposit says of a deposit (re-)mined in block n.
func present(n uint64) activities.DepositCheck {
	return activities.DepositCheck{Present: true, BlockNumber: n, BlockHash: "0xb10c", BlockLogIndex: 17}
}

// depositHarness runs one Deposit. It reuses harness's signal, forbid and
// done, and records every activity call, its input and when it ran.
type depositHarness struct {
	*harness
	failPublish  string // a MessageID part ("seen", "final", "credited") whose publish fails, if any
	creditRisk   string // what CreditDeposit says: credited held for this reason ("" free)
	screenedRisk string // what ScreenSender says of the sender ("" clean)

	calls       []string // activity types in the order they started
	tracked     []activities.TrackInput
	verified    []activities.DepositRef
	credited    []activities.CreditInput
	publishedAt []time.Duration // since t0, one per published
}

func newDepositHarness(t *testing.T) *depositHarness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Deposit)
	env.RegisterActivity(&activities.Activities{})
	wfID := workflows.DepositWorkflowID("ETH", txHash, depositLogIndex)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: wfID, TaskQueue: workflows.DefaultTaskQueue})
	env.SetStartTime(t0)
	// A regression that waits or retries forever ends in a timeout error.
	env.SetWorkflowRunTimeout(24 * time.Hour)
	d := &depositHarness{harness: &harness{t: t, env: env, wfID: wfID}}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.calls = append(d.calls, info.ActivityType.Name)
	})
	env.OnActivity(a.PublishResult, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PublishInput) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.published = append(d.published, in)
			d.publishedAt = append(d.publishedAt, env.Now().Sub(t0))
			if d.failPublish != "" && strings.HasPrefix(in.MessageID, d.wfID+"/"+d.failPublish) {
				return errBroken
			}
			return nil
		}).Maybe() // responses() checks what was published
	return d
}

// track answers the i-th TrackTx with errs[i], nil beyond them.
func (d *depositHarness) track(errs ...error) {
	d.env.OnActivity(a.TrackTx, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TrackInput) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.tracked = append(d.tracked, in)
			if len(d.tracked) <= len(errs) {
				return errs[len(d.tracked)-1]
			}
			return nil
		})
}

// verify answers the i-th VerifyDeposit with checks[i]; a call beyond them
// fails the workflow.
func (d *depositHarness) verify(checks ...activities.DepositCheck) {
	d.env.OnActivity(a.VerifyDeposit, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DepositRef) (activities.DepositCheck, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.verified = append(d.verified, in)
			if len(d.verified) > len(checks) {
				return activities.DepositCheck{}, errUnexpected
			}
			return checks[len(d.verified)-1], nil
		})
}

func (d *depositHarness) verifyFails(err error) {
	d.env.OnActivity(a.VerifyDeposit, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DepositRef) (activities.DepositCheck, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.verified = append(d.verified, in)
			return activities.DepositCheck{}, err
		})
}

func (d *depositHarness) credit(err error) {
	d.env.OnActivity(a.CreditDeposit, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CreditInput) (activities.CreditResult, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.credited = append(d.credited, in)
			return activities.CreditResult{Risk: d.creditRisk}, err
		})
}

// Milestones the tracker signals, as templates for event.
var (
	evSeen      = workflows.TxEvent{Milestone: "seen"}
	evConfirmed = workflows.TxEvent{Milestone: "confirmed"}
	evReorged   = workflows.TxEvent{Milestone: "reorged"}
)

// event signals ev's milestone for the deposit's transaction at delay.
func (d *depositHarness) event(delay time.Duration, ev workflows.TxEvent) {
	ev.TxHash, ev.BlockNumber, ev.Succeeded = txHash, depositBlock, true
	d.signal(delay, ev)
}

// depositSnapshot is the Deposit as a delayed callback saw it.
type depositSnapshot struct {
	taken                         bool
	step                          string
	err                           error
	published, verified, credited int
}

// snapshotAt queries the status at delay and counts what ran by then. A
// snapshot due after the workflow ended is never taken.
func (d *depositHarness) snapshotAt(delay time.Duration) *depositSnapshot {
	s := &depositSnapshot{}
	d.env.RegisterDelayedCallback(func() {
		s.taken = true
		s.step, s.err = d.step()
		d.mu.Lock()
		defer d.mu.Unlock()
		s.published, s.verified, s.credited = len(d.published), len(d.verified), len(d.credited)
	}, delay)
	return s
}

func (d *depositHarness) step() (string, error) {
	var step string
	v, err := d.env.QueryWorkflow(workflows.QueryStatus)
	if err == nil {
		err = v.Get(&step)
	}
	return step, err
}

func (d *depositHarness) requireSnapshot(s *depositSnapshot, step string, published, verified, credited int) {
	d.t.Helper()
	require.True(d.t, s.taken, "snapshot not taken: the workflow ended too early")
	require.NoError(d.t, s.err)
	require.Equal(d.t, depositSnapshot{taken: true, step: step, published: published, verified: verified,
		credited: credited}, *s)
}

// run executes Deposit and returns its result and error.
func (d *depositHarness) run(in workflows.DepositInput) (protocol.TopupResponse, error) {
	d.t.Helper()
	d.env.ExecuteWorkflow(workflows.Deposit, in)
	require.True(d.t, d.env.IsWorkflowCompleted(), "workflow did not complete")
	var res protocol.TopupResponse
	err := d.env.GetWorkflowError()
	if err == nil {
		require.NoError(d.t, d.env.GetWorkflowResult(&res))
	}
	return res, err
}

// runToError executes Deposit and returns only its error.
func (d *depositHarness) runToError(in workflows.DepositInput) error {
	d.t.Helper()
	_, err := d.run(in)
	return err
}

// notIncluded checks err is the failure a Deposit ends with after status=0,
// and returns the response its details carry.
func notIncluded(t *testing.T, err error) protocol.TopupResponse {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr, "status=0 closes the workflow as failed, so a re-inclusion can start it again")
	require.Equal(t, workflows.ErrTypeDepositNotIncluded, appErr.Type())
	require.True(t, appErr.NonRetryable())
	var res protocol.TopupResponse
	require.NoError(t, appErr.Details(&res))
	require.Equal(t, res.Error, appErr.Message())
	return res
}

// responses checks every publish is a topup response with the message id
// wfID/suffix, suffixes in order, and returns the responses.
func (d *depositHarness) responses(suffixes ...string) []protocol.TopupResponse {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	require.Len(d.t, d.published, len(suffixes), "responses published")
	var out []protocol.TopupResponse
	for i, in := range d.published {
		require.Equal(d.t, protocol.FlowTopup, in.Flow)
		require.Equal(d.t, d.wfID+"/"+suffixes[i], in.MessageID)
		require.Nil(d.t, in.Payment)
		require.NotNil(d.t, in.Topup)
		out = append(out, *in.Topup)
	}
	return out
}

// requireResponse checks got field by field against the deposit of
// depositInput() with the given status, block and error.
func requireResponse(t *testing.T, got protocol.TopupResponse, status int, blockNumber uint64, errMsg string) {
	t.Helper()
	requireAmount(t, "25.75", got.Amount)
	got.Amount = protocol.Amount{}
	require.Equal(t, protocol.TopupResponse{Address: toAddr, Status: status, Chain: "ETH", Symbol: "USDT",
		TxHash: txHash, LogIndex: depositLogIndex, BlockNumber: blockNumber, FromAddress: fromAddr, Error: errMsg}, got)
}

// requireCredited checks the one credit is of the deposit of depositInput(),
// naming its sender (a cold wallet's side is booked too).
func (d *depositHarness) requireCredited() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	require.Len(d.t, d.credited, 1, "credits")
	got := d.credited[0]
	requireAmount(d.t, "25.75", got.Amount)
	got.Amount = protocol.Amount{}
	require.Equal(d.t, activities.CreditInput{Chain: "ETH", Address: toAddr, Symbol: "USDT", TxHash: txHash,
		LogIndex: depositLogIndex, WorkflowID: d.wfID, From: fromAddr, Screened: true, Risk: d.screenedRisk}, got)
}

func wantRef() activities.DepositRef {
	return activities.DepositRef{TxHash: txHash, LogIndex: depositLogIndex, Token: usdtToken, To: toAddr, Units: depositUnits}
}

func TestDepositSeenThenCredited(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(present(205))
	d.credit(nil)
	beforeSeen := d.snapshotAt(500 * time.Millisecond)
	d.event(time.Second, evSeen)
	afterSeen := d.snapshotAt(1500 * time.Millisecond)
	d.event(2*time.Second, evConfirmed)

	res, err := d.run(depositInput())
	require.NoError(t, err)

	d.requireSnapshot(beforeSeen, "seen", 1, 0, 0)
	d.requireSnapshot(afterSeen, "confirming", 1, 0, 0)
	require.Equal(t, []string{"TrackTx", "PublishResult", "VerifyDeposit", "CreditDeposit", "PublishResult"}, d.calls)
	require.Equal(t, []activities.TrackInput{{TxHash: txHash, WorkflowID: d.wfID}}, d.tracked)
	require.Equal(t, []activities.DepositRef{wantRef()}, d.verified)
	d.requireCredited()

	got := d.responses(msgSeen, msgCredited)
	requireResponse(t, got[0], protocol.StatusPending, depositBlock, "")
	require.Equal(t, 2, got[0].Status, "the wire value of pending")
	requireResponse(t, got[1], protocol.StatusSucceeded, 205, "")
	require.Equal(t, 1, got[1].Status, "the wire value of succeeded")
	require.Equal(t, got[1], res)

	step, err := d.step()
	require.NoError(t, err)
	require.Equal(t, "credited", step)
	d.done()
}

// TestDepositFromAListedSenderIsAnnouncedWithItsRiskAndHeld: screening
// names the risk in both notices, the credit is asked to hold it, and the
// deposit ends "held".
func TestDepositFromAListedSenderIsAnnouncedWithItsRiskAndHeld(t *testing.T) {
	d := newDepositHarness(t)
	risk := "sender " + fromAddr + " is on the deny list (OFAC-SDN 2026-11-30)"
	d.screenedRisk, d.creditRisk = risk, risk
	d.env.OnActivity(a.ScreenSender, mock.Anything, activities.ScreenInput{From: fromAddr}).
		Return(activities.ScreenResult{Risk: risk}, nil).Once()
	d.track()
	d.verify(present(205))
	d.credit(nil)
	d.event(time.Second, evConfirmed)

	res, err := d.run(depositInput())
	require.NoError(t, err)
	d.requireCredited()
	got := d.responses(msgSeen, msgCredited)
	for i, status := range []int{protocol.StatusPending, protocol.StatusSucceeded} {
		require.Equal(t, risk, got[i].Risk, "notice %d", i)
		got[i].Risk = ""
		requireResponse(t, got[i], status, []uint64{depositBlock, 205}[i], "")
	}
	require.Equal(t, risk, res.Risk)
	step, err := d.step()
	require.NoError(t, err)
	require.Equal(t, "held", step)
	d.done()
}

// TestDepositListedOnlyAtItsCreditIsHeldAndSaysSo: a sender listed after
// the first notice: the credit holds it, and the credited notice says why.
func TestDepositListedOnlyAtItsCreditIsHeldAndSaysSo(t *testing.T) {
	d := newDepositHarness(t)
	d.creditRisk = "sender " + fromAddr + " is on the deny list (TRM)"
	d.track()
	d.verify(present(205))
	d.credit(nil)
	d.event(time.Second, evConfirmed)

	_, err := d.run(depositInput())
	require.NoError(t, err)
	d.requireCredited()
	got := d.responses(msgSeen, msgCredited)
	require.Empty(t, got[0].Risk)
	require.Equal(t, d.creditRisk, got[1].Risk)
	d.done()
}

// TestDepositSilentCreditsAndPublishesNothing: a transfer into a managed
// wallet that no topup watches is followed,
// verified and credited exactly as an announced deposit, under the same
// deposit key, and nothing is published for it.
func TestDepositSilentCreditsAndPublishesNothing(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(present(205))
	d.credit(nil)
	seen := d.snapshotAt(1500 * time.Millisecond)
	d.event(time.Second, evSeen)
	d.event(2*time.Second, evConfirmed)

	in := depositInput()
	in.Silent = true
	res, err := d.run(in)
	require.NoError(t, err)

	d.requireSnapshot(seen, "confirming", 0, 0, 0)
	require.Equal(t, []string{"TrackTx", "VerifyDeposit", "CreditDeposit"}, d.calls)
	require.Equal(t, []activities.DepositRef{wantRef()}, d.verified)
	d.requireCredited()
	d.responses() // none
	requireResponse(t, res, protocol.StatusSucceeded, 205, "")
	step, err := d.step()
	require.NoError(t, err)
	require.Equal(t, "credited", step)
	d.done()
}

// TestDepositSilentReorgedAwayPublishesNothing: a silent deposit that leaves
// the chain for good is not credited, ends like an announced one (failed, so
// a re-inclusion starts it again), and publishes no status=0.
func TestDepositSilentReorgedAwayPublishesNothing(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(activities.DepositCheck{Present: false})
	d.forbid(a.CreditDeposit)
	d.event(500*time.Millisecond, evSeen)
	d.event(time.Second, evReorged)

	in := depositInput()
	in.Silent = true
	res := notIncluded(t, d.runToError(in))

	require.Equal(t, protocol.StatusFailed, res.Status)
	require.Contains(t, res.Error, "reorganised away")
	d.responses() // none
	d.done()
}

func TestDepositReorgedThenReincluded(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(present(210))
	d.credit(nil)
	d.event(time.Second, evReorged)
	reorged := d.snapshotAt(2 * time.Second)
	d.event(5*time.Minute, evSeen)
	reincluded := d.snapshotAt(5*time.Minute + time.Second)
	// Past the deadline the reorg set: re-inclusion must have cancelled it.
	pastDeadline := d.snapshotAt(time.Second + reincludeTimeout + time.Minute)
	d.event(15*time.Minute, evConfirmed)

	res, err := d.run(depositInput())
	require.NoError(t, err)

	d.requireSnapshot(reorged, "reorged", 1, 0, 0)
	d.requireSnapshot(reincluded, "confirming", 1, 0, 0)
	d.requireSnapshot(pastDeadline, "confirming", 1, 0, 0)
	d.requireCredited()
	got := d.responses(msgSeen, msgCredited)
	requireResponse(t, got[0], protocol.StatusPending, depositBlock, "")
	requireResponse(t, got[1], protocol.StatusSucceeded, 210, "")
	require.Equal(t, got[1], res)
	d.done()
}

func TestDepositReorgedAway(t *testing.T) {
	for _, tc := range []struct {
		name           string
		timeout, after time.Duration
	}{
		{"configured", 3 * time.Minute, 3 * time.Minute},
		{"default", 0, 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDepositHarness(t)
			d.track()
			d.verify(activities.DepositCheck{Present: false})
			d.forbid(a.CreditDeposit)
			d.event(500*time.Millisecond, evSeen)
			d.event(time.Second, evReorged)
			justBefore := d.snapshotAt(time.Second + tc.after - time.Millisecond)

			in := depositInput()
			in.ReincludeTimeout = tc.timeout
			res := notIncluded(t, d.runToError(in))

			d.requireSnapshot(justBefore, "reorged", 1, 0, 0)
			require.Equal(t, []activities.DepositRef{wantRef()}, d.verified, "absence proven at the deadline")
			got := d.responses(msgSeen, msgFailed)
			requireResponse(t, got[0], protocol.StatusPending, depositBlock, "")
			require.Contains(t, got[1].Error, "reorganised away")
			require.Contains(t, got[1].Error, tc.after.String())
			requireResponse(t, got[1], protocol.StatusFailed, depositBlock, got[1].Error)
			require.Equal(t, 0, got[1].Status, "the wire value of failed")
			require.Equal(t, got[1], res)
			require.Equal(t, time.Second+tc.after, d.publishedAt[1], "status=0 is published at the deadline")

			step, err := d.step()
			require.NoError(t, err)
			require.Equal(t, "failed", step)
			d.done()
		})
	}
}

func TestDepositConfirmedButAbsentThenReincluded(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(activities.DepositCheck{Present: false}, present(207))
	d.credit(nil)
	d.event(time.Second, evSeen)
	d.event(2*time.Second, evConfirmed)
	absent := d.snapshotAt(3 * time.Second)
	d.event(5*time.Minute, evConfirmed)

	res, err := d.run(depositInput())
	require.NoError(t, err)

	d.requireSnapshot(absent, "reorged", 1, 1, 0)
	require.Equal(t, []string{"TrackTx", "PublishResult", "VerifyDeposit", "TrackTx", "VerifyDeposit", "CreditDeposit",
		"PublishResult"}, d.calls, "the tracker, done with a confirmed tx, is re-armed")
	require.Equal(t, []activities.TrackInput{{TxHash: txHash, WorkflowID: d.wfID}, {TxHash: txHash, WorkflowID: d.wfID}},
		d.tracked)
	require.Equal(t, []activities.DepositRef{wantRef(), wantRef()}, d.verified)
	d.requireCredited()
	got := d.responses(msgSeen, msgCredited)
	requireResponse(t, got[1], protocol.StatusSucceeded, 207, "")
	require.Equal(t, got[1], res)
	d.done()
}

func TestDepositConfirmedButAbsentNeverReincluded(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(activities.DepositCheck{Present: false}, activities.DepositCheck{Present: false})
	d.forbid(a.CreditDeposit)
	d.event(time.Second, evConfirmed)
	justBefore := d.snapshotAt(time.Second + reincludeTimeout - time.Millisecond)

	res := notIncluded(t, d.runToError(depositInput()))

	d.requireSnapshot(justBefore, "reorged", 1, 1, 0)
	require.Len(t, d.tracked, 2, "tracking re-armed")
	require.Len(t, d.verified, 2, "absence proven again at the deadline")
	got := d.responses(msgSeen, msgFailed)
	require.Contains(t, got[1].Error, "reorganised away")
	requireResponse(t, got[1], protocol.StatusFailed, depositBlock, got[1].Error)
	require.Equal(t, got[1], res)
	require.Equal(t, time.Second+reincludeTimeout, d.publishedAt[1])
	d.done()
}

// TestDepositDeadlineNotExtended: a repeated "reorged", or a "confirmed" the
// chain no longer shows, while already waiting keeps the first deadline.
func TestDepositDeadlineNotExtended(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(activities.DepositCheck{Present: false}, activities.DepositCheck{Present: false})
	d.forbid(a.CreditDeposit)
	d.event(time.Second, evReorged)
	d.event(4*time.Minute, evReorged)
	d.event(6*time.Minute, evConfirmed)

	notIncluded(t, d.runToError(depositInput()))

	got := d.responses(msgSeen, msgFailed)
	require.Equal(t, protocol.StatusFailed, got[1].Status)
	require.Equal(t, time.Second+reincludeTimeout, d.publishedAt[1])
	require.Len(t, d.verified, 2, "the \"confirmed\", then the deadline")
	require.Len(t, d.tracked, 2)
	d.done()
}

// TestDepositRearmsTrackingOnce: a deposit absent again after its re-inclusion
// (say it now reverts) does not re-arm the tracker a second time, which would
// loop seen/confirmed/absent for ever; it fails at the deadline.
func TestDepositRearmsTrackingOnce(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(activities.DepositCheck{Present: false}, activities.DepositCheck{Present: false},
		activities.DepositCheck{Present: false})
	d.forbid(a.CreditDeposit)
	d.event(time.Second, evConfirmed)
	d.event(time.Minute, evSeen)
	d.event(2*time.Minute, evConfirmed)

	notIncluded(t, d.runToError(depositInput()))

	require.Equal(t, []string{"TrackTx", "PublishResult", "VerifyDeposit", "TrackTx", "VerifyDeposit", "VerifyDeposit",
		"PublishResult"}, d.calls)
	got := d.responses(msgSeen, msgFailed)
	require.Equal(t, protocol.StatusFailed, got[1].Status)
	require.Equal(t, 2*time.Minute+reincludeTimeout, d.publishedAt[1], "the re-inclusion cancelled the first deadline")
	d.done()
}

// TestDepositBeforeRearmVersion: an execution that waited for re-inclusion
// before re-arming existed replays without the extra TrackTx.
func TestDepositBeforeRearmVersion(t *testing.T) {
	d := newDepositHarness(t)
	d.env.OnGetVersion("deposit-rearm-tracking", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	d.env.OnGetVersion("deposit-inclusion", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	d.track()
	d.verify(activities.DepositCheck{Present: false})
	d.forbid(a.CreditDeposit)
	d.event(time.Second, evConfirmed)

	_, err := d.run(depositInput())
	require.NoError(t, err)

	require.Len(t, d.tracked, 1)
	require.Equal(t, protocol.StatusFailed, d.responses("seen", "final")[1].Status)
	d.done()
}

// TestDepositReorgedAgainGetsANewDeadline: after a re-inclusion cancelled the
// first deadline, a second reorg waits a full timeout from then.
func TestDepositReorgedAgainGetsANewDeadline(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(activities.DepositCheck{Present: false})
	d.forbid(a.CreditDeposit)
	d.event(time.Second, evReorged)
	d.event(2*time.Minute, evSeen)
	d.event(12*time.Minute, evReorged)

	notIncluded(t, d.runToError(depositInput()))

	got := d.responses(msgSeen, msgFailed)
	require.Equal(t, protocol.StatusFailed, got[1].Status)
	require.Equal(t, 12*time.Minute+reincludeTimeout, d.publishedAt[1])
	d.done()
}

// TestDepositOrphanedBeforeTrackerSawIt: the block the listener saw the
// deposit in is orphaned before the tracker looks, so no milestone ever comes
// (the tracker says "reorged" only of a transaction it saw in a block). The
// deadline runs from the start: VerifyDeposit shows the deposit absent, so
// status=0 is answered at the deadline and the workflow fails, which lets a
// later re-inclusion start it again. (Before, it waited for ever.)
func TestDepositOrphanedBeforeTrackerSawIt(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(activities.DepositCheck{Present: false})
	d.forbid(a.CreditDeposit)
	justBefore := d.snapshotAt(reincludeTimeout - time.Millisecond)

	res := notIncluded(t, d.runToError(depositInput()))

	d.requireSnapshot(justBefore, "seen", 1, 0, 0)
	require.Equal(t, []string{"TrackTx", "PublishResult", "VerifyDeposit", "PublishResult"}, d.calls)
	require.Equal(t, []activities.DepositRef{wantRef()}, d.verified)
	got := d.responses(msgSeen, msgFailed)
	require.Contains(t, got[1].Error, "reorganised away and not re-included within 10m0s")
	requireResponse(t, got[1], protocol.StatusFailed, depositBlock, got[1].Error)
	require.Equal(t, got[1], res)
	require.Equal(t, reincludeTimeout, d.publishedAt[1], "status=0 at the deadline counted from the start")
	step, err := d.step()
	require.NoError(t, err)
	require.Equal(t, "failed", step)
	d.done()
}

// TestDepositPresentAtDeadlineIsFollowed: the tracker has not reported a
// deposit that is in a block (it lags, or was done with it). At the deadline
// VerifyDeposit finds it, so no status=0: tracking is re-armed and the
// deposit is credited once confirmed, however late.
func TestDepositPresentAtDeadlineIsFollowed(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(present(201), present(201))
	d.credit(nil)
	followed := d.snapshotAt(reincludeTimeout + time.Second)
	d.event(3*reincludeTimeout, evConfirmed)

	res, err := d.run(depositInput())
	require.NoError(t, err)

	d.requireSnapshot(followed, "confirming", 1, 1, 0)
	require.Equal(t, []string{"TrackTx", "PublishResult", "VerifyDeposit", "TrackTx", "VerifyDeposit", "CreditDeposit",
		"PublishResult"}, d.calls)
	d.requireCredited()
	got := d.responses(msgSeen, msgCredited)
	requireResponse(t, got[1], protocol.StatusSucceeded, 201, "")
	require.Equal(t, got[1], res)
	d.done()
}

// TestDepositSeenDisarmsStartDeadline: once the tracker reports the deposit
// in a block, its confirmation may take longer than the re-inclusion timeout
// without any check or answer in between.
func TestDepositSeenDisarmsStartDeadline(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(present(205))
	d.credit(nil)
	d.event(time.Second, evSeen)
	d.event(3*reincludeTimeout, evConfirmed)

	res, err := d.run(depositInput())
	require.NoError(t, err)

	require.Equal(t, []string{"TrackTx", "PublishResult", "VerifyDeposit", "CreditDeposit", "PublishResult"}, d.calls)
	require.Equal(t, 3*reincludeTimeout, d.publishedAt[1])
	got := d.responses(msgSeen, msgCredited)
	require.Equal(t, got[1], res)
	d.done()
}

// TestDepositMessageIDsFollowTheInclusion: the status=2 and status=0 ids are
// keyed by the block the deposit was delivered from, so a deposit mined again
// after its status=0 (a new run, delivered from another block) is announced
// afresh, while a reset or retry of a run (same input) repeats its ids and so
// publishes nothing new. A starter that gives no block hash gets unkeyed ids.
func TestDepositMessageIDsFollowTheInclusion(t *testing.T) {
	const otherBlock = "0x00000000000000000000000000000000000000000000000000000000000B10C2"
	for _, tc := range []struct {
		name, blockHash, seen, failed string
	}{
		{"first inclusion", depositBlockHash, msgSeen, msgFailed},
		{"mined again", otherBlock, "seen/" + strings.ToLower(otherBlock), "final/" + strings.ToLower(otherBlock)},
		{"no block hash", "", "seen", "final"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDepositHarness(t)
			d.track()
			d.verify(activities.DepositCheck{Present: false})
			d.forbid(a.CreditDeposit)
			in := depositInput()
			in.BlockHash = tc.blockHash
			notIncluded(t, d.runToError(in))
			d.responses(tc.seen, tc.failed)
			d.done()
		})
	}
}

// TestDepositBeforeInclusionVersion: executions started before the deadline
// from the start keep their behaviour when replayed: no deadline before a
// "reorged", no check at the deadline, status=0 completes the workflow, and
// the ids are wfID/seen and wfID/final.
func TestDepositBeforeInclusionVersion(t *testing.T) {
	d := newDepositHarness(t)
	d.env.OnGetVersion("deposit-inclusion", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	d.track()
	d.forbid(a.VerifyDeposit, a.CreditDeposit)
	quiet := d.snapshotAt(2 * reincludeTimeout)
	d.event(3*reincludeTimeout, evReorged)

	res, err := d.run(depositInput())
	require.NoError(t, err)

	d.requireSnapshot(quiet, "seen", 1, 0, 0)
	got := d.responses("seen", "final")
	require.Equal(t, protocol.StatusFailed, got[1].Status)
	require.Equal(t, got[1], res)
	require.Equal(t, 4*reincludeTimeout, d.publishedAt[1])
	d.done()
}

// TestDepositMinedAgainWhileAnsweringStatus0: the listener delivers the
// deposit again (SignalWithStart signals the running workflow) while the
// workflow is checking its absence and answering status=0. The listener will
// not deliver it a third time, so the workflow continues as new from the new
// block: the deposit is announced afresh under new message ids. A delivery
// before the check (already answered by it) changes nothing.
func TestDepositMinedAgainWhileAnsweringStatus0(t *testing.T) {
	const newBlock = "0x00000000000000000000000000000000000000000000000000000000000b10c3"
	for _, tc := range []struct {
		name        string
		duringCheck bool
	}{
		{"delivered during the check", true},
		{"delivered before the check", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDepositHarness(t)
			d.track()
			d.forbid(a.CreditDeposit)
			delivery := workflows.DepositDelivery{BlockHash: newBlock, BlockNumber: 230}
			if !tc.duringCheck {
				d.env.RegisterDelayedCallback(func() {
					d.env.SignalWorkflow(workflows.SignalDepositDelivered, delivery)
				}, time.Minute)
			}
			d.env.OnActivity(a.VerifyDeposit, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.DepositRef) (activities.DepositCheck, error) {
					d.mu.Lock()
					d.verified = append(d.verified, in)
					d.mu.Unlock()
					if tc.duringCheck {
						d.env.SignalWorkflow(workflows.SignalDepositDelivered, delivery)
					}
					return activities.DepositCheck{}, nil
				})

			err := d.runToError(depositInput())

			got := d.responses(msgSeen, msgFailed)
			require.Equal(t, protocol.StatusFailed, got[1].Status, "status=0 stands")
			if !tc.duringCheck {
				notIncluded(t, err)
				d.done()
				return
			}
			var can *workflow.ContinueAsNewError
			require.ErrorAs(t, err, &can)
			require.Equal(t, "Deposit", can.WorkflowType.Name)
			var next workflows.DepositInput
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
			want := depositInput()
			want.BlockHash, want.BlockNumber = newBlock, 230
			require.Equal(t, want, next, "the next run announces the new inclusion under its ids")
			d.done()
		})
	}
}

func TestDepositIgnoresForeignSignals(t *testing.T) {
	d := newDepositHarness(t)
	d.track()
	d.verify(present(205))
	d.credit(nil)
	// Taken for ours, the "reorged" would arm a deadline that checks the chain
	// after a minute, and the "confirmed" would verify and credit at once.
	foreign := func(delay time.Duration, ev workflows.TxEvent) {
		ev.TxHash, ev.BlockNumber, ev.Succeeded = otherHash, 999, true
		d.signal(delay, ev)
	}
	d.event(500*time.Millisecond, evSeen) // ours: no deadline from here on
	foreign(time.Second, evReorged)
	foreign(2*time.Second, evConfirmed)
	foreign(3*time.Second, evSeen)
	ignored := d.snapshotAt(2 * time.Minute)
	// The tracker may spell the hash in another case.
	d.signal(3*time.Minute, workflows.TxEvent{TxHash: "0x" + strings.ToUpper(txHash[2:]), Milestone: "confirmed",
		BlockNumber: 205, Succeeded: true})

	in := depositInput()
	in.ReincludeTimeout = time.Minute
	res, err := d.run(in)
	require.NoError(t, err)

	d.requireSnapshot(ignored, "confirming", 1, 0, 0)
	d.requireCredited()
	got := d.responses(msgSeen, msgCredited)
	requireResponse(t, got[1], protocol.StatusSucceeded, 205, "")
	require.Equal(t, got[1], res)
	d.done()
}

// TestDepositActivityFailureFailsWorkflow: a permanent activity failure fails
// the workflow, and nothing after the failed step runs: no credit is
// announced that did not happen.
func TestDepositActivityFailureFailsWorkflow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(d *depositHarness)
		calls    []string
		messages []string // published message-id suffixes
	}{
		{"TrackTx", func(d *depositHarness) {
			d.track(errBroken)
			d.forbid(a.VerifyDeposit, a.CreditDeposit)
		}, []string{"TrackTx"}, nil},
		{"PublishSeen", func(d *depositHarness) {
			d.failPublish = "seen"
			d.track()
			d.forbid(a.VerifyDeposit, a.CreditDeposit)
		}, []string{"TrackTx", "PublishResult"}, []string{msgSeen}},
		{"VerifyDeposit", func(d *depositHarness) {
			d.track()
			d.verifyFails(errBroken)
			d.forbid(a.CreditDeposit)
		}, []string{"TrackTx", "PublishResult", "VerifyDeposit"}, []string{msgSeen}},
		{"RearmTrackTx", func(d *depositHarness) {
			d.track(nil, errBroken)
			d.verify(activities.DepositCheck{Present: false})
			d.forbid(a.CreditDeposit)
		}, []string{"TrackTx", "PublishResult", "VerifyDeposit", "TrackTx"}, []string{msgSeen}},
		{"CreditDeposit", func(d *depositHarness) {
			d.track()
			d.verify(present(205))
			d.credit(errBroken)
		}, []string{"TrackTx", "PublishResult", "VerifyDeposit", "CreditDeposit"}, []string{msgSeen}},
		{"PublishCredited", func(d *depositHarness) {
			d.failPublish = "credited"
			d.track()
			d.verify(present(205))
			d.credit(nil)
		}, []string{"TrackTx", "PublishResult", "VerifyDeposit", "CreditDeposit", "PublishResult"},
			[]string{msgSeen, msgCredited}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDepositHarness(t)
			tc.setup(d)
			d.event(time.Second, evConfirmed)

			_, err := d.run(depositInput())
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.Equal(t, "Broken", appErr.Type())
			require.Equal(t, tc.calls, d.calls, "no retries, nothing after the failure")
			d.responses(tc.messages...)
			d.done()
		})
	}
}

// newTopupEnv is a test environment for one Topup whose RegisterWatch
// records its inputs and answers err or, without one, watchFromBlock.
func newTopupEnv(t *testing.T, err error) (*testsuite.TestWorkflowEnvironment, func() []activities.WatchInput) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Topup)
	env.RegisterActivity(&activities.Activities{})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.TopupWorkflowID("ETH", toAddr),
		TaskQueue: workflows.DefaultTaskQueue})
	env.SetStartTime(t0)
	// Long enough for two 24h rounds, short enough that a Topup deaf to
	// "unwatch" fails instead of hanging.
	env.SetWorkflowRunTimeout(7 * 24 * time.Hour)
	var mu sync.Mutex
	var watched []activities.WatchInput
	env.OnActivity(a.RegisterWatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WatchInput) (activities.WatchResult, error) {
			mu.Lock()
			defer mu.Unlock()
			watched = append(watched, in)
			if err != nil {
				return activities.WatchResult{}, err
			}
			return activities.WatchResult{FromBlock: watchFromBlock, New: true}, nil
		})
	return env, func() []activities.WatchInput {
		mu.Lock()
		defer mu.Unlock()
		return append([]activities.WatchInput(nil), watched...)
	}
}

func topupInput() workflows.TopupInput {
	return workflows.TopupInput{Chain: "ETH", Symbol: "USDT", Address: toAddr}
}

func topupStatus(env *testsuite.TestWorkflowEnvironment) (string, error) {
	var st string
	v, err := env.QueryWorkflow(workflows.QueryStatus)
	if err == nil {
		err = v.Get(&st)
	}
	return st, err
}

func TestTopupWatchesUntilUnwatched(t *testing.T) {
	env, watched := newTopupEnv(t, nil)
	var early, late string
	var earlyErr, lateErr error
	completedEarly, completedLate := true, true
	env.RegisterDelayedCallback(func() {
		completedEarly = env.IsWorkflowCompleted()
		early, earlyErr = topupStatus(env)
	}, time.Hour)
	// Two 24h timers have fired by now.
	env.RegisterDelayedCallback(func() {
		completedLate = env.IsWorkflowCompleted()
		late, lateErr = topupStatus(env)
		env.SignalWorkflow(workflows.SignalUnwatch, nil)
	}, 49*time.Hour)

	env.ExecuteWorkflow(workflows.Topup, topupInput())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	require.False(t, completedEarly, "open after an hour")
	require.False(t, completedLate, "open after 49h without \"unwatch\"")
	require.NoError(t, earlyErr)
	require.NoError(t, lateErr)
	require.Contains(t, early, toAddr)
	require.Contains(t, early, "from block 4242")
	require.Equal(t, early, late)
	require.Equal(t, []activities.WatchInput{{Chain: "ETH", Symbol: "USDT", Address: toAddr}}, watched(),
		"registered once, not at every round")
	env.AssertExpectations(t)
}

func TestTopupContinuesAsNewWhenSuggested(t *testing.T) {
	env, watched := newTopupEnv(t, nil)
	env.SetContinueAsNewSuggested(true)
	completedEarly := true
	env.RegisterDelayedCallback(func() { completedEarly = env.IsWorkflowCompleted() }, 23*time.Hour)

	env.ExecuteWorkflow(workflows.Topup, topupInput())
	require.True(t, env.IsWorkflowCompleted())
	require.False(t, completedEarly, "the suggestion is only looked at when the timer fires")

	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	require.Equal(t, "Topup", can.WorkflowType.Name)
	var next workflows.TopupInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, topupInput(), next)
	require.Len(t, watched(), 1)
	env.AssertExpectations(t)
}

func TestTopupRegisterWatchFailureFailsWorkflow(t *testing.T) {
	env, watched := newTopupEnv(t, errBroken)

	env.ExecuteWorkflow(workflows.Topup, topupInput())
	require.True(t, env.IsWorkflowCompleted())

	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, "Broken", appErr.Type())
	var timeout *temporal.TimeoutError
	require.False(t, errors.As(err, &timeout), "failed at once, not by the run timeout")
	require.Len(t, watched(), 1, "a permanent failure is not retried")
	env.AssertExpectations(t)
}

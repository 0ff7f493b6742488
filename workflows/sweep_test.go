package workflows_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
	"payflow/workflows"
)

const (
	depositAddr = "0xd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0"
	gasAddr     = "0x6a56a56a56a56a56a56a56a56a56a56a56a56a56"
	topUpHash   = "0x70b0000000000000000000000000000000000000000000000000000000000001"
	topUpHash2  = "0x70b2000000000000000000000000000000000000000000000000000000000003" // its replacement
	sweepHash   = "0x5eee000000000000000000000000000000000000000000000000000000000002"
	sweepBlock  = uint64(240)
	sweepStamp  = "20261121T120000Z"
)

var sweepWfID = workflows.WalletSweepWorkflowID("ETH", depositAddr, sweepStamp)

// sweepHarness runs one WalletSweep with mocked activities and records, in
// order, the activities called and the signals delivered.
type sweepHarness struct {
	t        *testing.T
	env      *testsuite.TestWorkflowEnvironment
	statuses *statusLog
	// guard is payment_test's harness, for its forbid and done.
	guard *harness

	mu       sync.Mutex
	trail    []string
	released []activities.ReleaseInput
	settled  []activities.SettleInput
	credited []activities.SweepCreditInput
	signed   []activities.TransferInput
	topUps   []activities.TopUpInput
	booked   []activities.BookTopUpInput
	// topUpMined is the top-up attempt the chain mined (topUpHash unless set).
	topUpMined string
	// reserved is what ReserveSweep answers (25, reserved, unless set);
	// swept is the chain's verdict on the sweep (mined and paid in
	// sweepBlock unless set).
	reserved activities.SweepReserveResult
	swept    activities.Inspection
}

func newSweepHarness(t *testing.T) *sweepHarness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.WalletSweep)
	env.RegisterWorkflow(workflows.Sweep)
	env.RegisterActivity(&activities.Activities{})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: sweepWfID, TaskQueue: workflows.DefaultTaskQueue})
	env.SetWorkflowRunTimeout(24 * time.Hour)
	h := &sweepHarness{t: t, env: env, statuses: recordStatuses(env), guard: &harness{t: t, env: env}, topUpMined: topUpHash,
		reserved: activities.SweepReserveResult{Reserved: true, Amount: protocol.MustAmount("25")},
		swept:    activities.Inspection{State: "mined", Confirmed: true, TxHash: sweepHash, BlockNumber: sweepBlock, Paid: true}}
	env.OnActivity(a.BookTopUp, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BookTopUpInput) error {
			h.mu.Lock()
			h.booked = append(h.booked, in)
			h.mu.Unlock()
			h.note("BookTopUp")
			return nil
		}).Maybe()
	env.OnActivity(a.ReserveSweep, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SweepReserveInput) (activities.SweepReserveResult, error) {
			h.note("ReserveSweep " + in.Key)
			require.Equal(h.t, collection, in.Collection, "the sweep's reservation names where it goes")
			return h.reserved, nil
		})
	env.OnActivity(a.ReleaseFunds, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReleaseInput) error {
			h.mu.Lock()
			h.released = append(h.released, in)
			h.mu.Unlock()
			h.note("ReleaseFunds " + in.Key)
			return nil
		}).Maybe()
	// The chain's verdict on a confirmed transfer: mined and paid.
	env.OnActivity(a.InspectTransfer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.InspectInput) (activities.Inspection, error) {
			require.Equal(h.t, sweepWfID, in.WorkflowID)
			if in.Step == "gas-topup" {
				h.mu.Lock()
				defer h.mu.Unlock()
				return activities.Inspection{State: "mined", Confirmed: true, TxHash: h.topUpMined, BlockNumber: 230, Paid: true}, nil
			}
			return h.swept, nil
		}).Maybe()
	return h
}

func (h *sweepHarness) note(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.trail = append(h.trail, s)
}

func (h *sweepHarness) input() workflows.WalletSweepInput {
	return workflows.WalletSweepInput{Chain: "ETH", Address: depositAddr, Symbols: []string{"USDT"},
		Threshold: protocol.MustAmount("1"), Collection: collection, GasWallet: gasAddr, ConfirmTimeout: 5 * time.Minute}
}

func (h *sweepHarness) gas(topUpWei string) {
	h.env.OnActivity(a.CheckSweepGas, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SweepGasInput) (activities.SweepGasResult, error) {
			h.note("CheckSweepGas")
			require.Equal(h.t, depositAddr, in.Address)
			require.Equal(h.t, collection, in.Collection)
			require.Len(h.t, in.Items, 1)
			return activities.SweepGasResult{NeedWei: "1000", HaveWei: "0", TopUpWei: topUpWei}, nil
		})
}

func (h *sweepHarness) topUp() {
	h.env.OnActivity(a.SignTopUp, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TopUpInput) (activities.TransferResult, error) {
			h.mu.Lock()
			h.topUps = append(h.topUps, in)
			h.mu.Unlock()
			h.note("SignTopUp")
			return activities.TransferResult{TxHash: topUpHash, From: gasAddr}, nil
		})
}

func (h *sweepHarness) broadcast() {
	h.env.OnActivity(a.Broadcast, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BroadcastInput) (activities.BroadcastResult, error) {
			require.Equal(h.t, sweepWfID, in.WorkflowID)
			h.note("Broadcast " + in.Step)
			return activities.BroadcastResult{}, nil
		})
}

func (h *sweepHarness) sweep() {
	h.env.OnActivity(a.SignTransfer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TransferInput) (activities.TransferResult, error) {
			h.mu.Lock()
			h.signed = append(h.signed, in)
			h.mu.Unlock()
			h.note("SignTransfer " + in.Step)
			return activities.TransferResult{TxHash: sweepHash, From: depositAddr}, nil
		})
	h.env.OnActivity(a.SettleFunds, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SettleInput) error {
			h.mu.Lock()
			h.settled = append(h.settled, in)
			h.mu.Unlock()
			h.note("SettleFunds")
			return nil
		})
	h.env.OnActivity(a.CreditSweep, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SweepCreditInput) error {
			h.mu.Lock()
			h.credited = append(h.credited, in)
			h.mu.Unlock()
			h.note("CreditSweep")
			return nil
		})
}

// signalAt delivers ev to the workflow after delay, noting it in the trail.
func (h *sweepHarness) signalAt(delay time.Duration, ev workflows.TxEvent) {
	h.env.RegisterDelayedCallback(func() {
		h.note("signal " + string(ev.Milestone) + " " + ev.TxHash[:6])
		h.env.SignalWorkflow(workflows.SignalTxEvent, ev)
	}, delay)
}

func (h *sweepHarness) run() (workflows.WalletSweepResult, error) {
	h.t.Helper()
	h.env.ExecuteWorkflow(workflows.WalletSweep, h.input())
	require.True(h.t, h.env.IsWorkflowCompleted(), "workflow did not complete")
	var res workflows.WalletSweepResult
	err := h.env.GetWorkflowError()
	if err == nil {
		require.NoError(h.t, h.env.GetWorkflowResult(&res))
	}
	return res, err
}

func (h *sweepHarness) requireSwept(res workflows.WalletSweepResult, topUp string) {
	h.t.Helper()
	key := workflows.SweepReservationKey(sweepWfID, "USDT")
	require.Equal(h.t, topUp, res.TopUpTxHash)
	require.Len(h.t, res.Swept, 1)
	requireAmount(h.t, "25", res.Swept[0].Amount)
	require.Equal(h.t, workflows.SweptToken{Symbol: "USDT", Amount: res.Swept[0].Amount, TxHash: sweepHash,
		BlockNumber: sweepBlock}, res.Swept[0])
	require.Len(h.t, h.signed, 1)
	requireAmount(h.t, "25", h.signed[0].Amount)
	h.signed[0].Amount = protocol.Amount{}
	require.Equal(h.t, activities.TransferInput{WorkflowID: sweepWfID, Step: "sweep-USDT", Guard: key, Symbol: "USDT", From: depositAddr,
		To: collection}, h.signed[0])
	// The sweep's gas is charged with its settlement, by the mined attempt.
	require.Equal(h.t, []activities.SettleInput{{Key: key, TxHash: sweepHash,
		Gas: &activities.ChargeInput{WorkflowID: sweepWfID, Step: "sweep-USDT", TxHash: sweepHash}}}, h.settled)
	require.Len(h.t, h.credited, 1)
	requireAmount(h.t, "25", h.credited[0].Amount)
	h.credited[0].Amount = protocol.Amount{}
	require.Equal(h.t, activities.SweepCreditInput{WorkflowID: sweepWfID, From: depositAddr, Collection: collection,
		Symbol: "USDT", TxHash: sweepHash}, h.credited[0])
	require.Empty(h.t, h.released, "a successful sweep releases nothing")
	require.Equal(h.t, workflows.SweepStepSwept, h.statuses.last())
}

// TestWalletSweepWithoutGasTopUp: a deposit wallet that can pay its gas is
// reserved, swept, settled and credited to collection, with no top-up.
func TestWalletSweepWithoutGasTopUp(t *testing.T) {
	h := newSweepHarness(t)
	h.gas("0")
	h.broadcast()
	h.sweep()
	h.guard.forbid(a.SignTopUp)
	h.signalAt(time.Second, workflows.TxEvent{TxHash: sweepHash, Milestone: "seen", BlockNumber: sweepBlock, Succeeded: true})
	h.signalAt(2*time.Second, workflows.TxEvent{TxHash: sweepHash, Milestone: "confirmed", BlockNumber: sweepBlock, Succeeded: true})

	res, err := h.run()
	require.NoError(t, err)
	h.requireSwept(res, "")
	key := workflows.SweepReservationKey(sweepWfID, "USDT")
	require.Equal(t, []string{"ReserveSweep " + key, "CheckSweepGas", "SignTransfer sweep-USDT", "Broadcast sweep-USDT",
		"signal seen 0x5eee", "signal confirmed 0x5eee", "SettleFunds", "CreditSweep"}, h.trail)
	h.guard.done()
}

// TestWalletSweepPaysItsFeeFromTheAmount: on a chain whose sweeps pay
// their fee from the coins swept (Bitcoin), the whole reserved amount is
// signed for as a transfer whose fee comes from it, no gas is topped up,
// the reservation is settled whole, and the collection wallet is credited
// what the chain says reached it, at the output the chain names; the
// result tells the fee.
func TestWalletSweepPaysItsFeeFromTheAmount(t *testing.T) {
	h := newSweepHarness(t)
	h.reserved = activities.SweepReserveResult{Reserved: true, Amount: protocol.MustAmount("4"), FeeFromAmount: true}
	h.swept.Received, h.swept.Position = "3.9999859", 0
	h.gas("0")
	h.broadcast()
	h.sweep()
	h.guard.forbid(a.SignTopUp)
	h.signalAt(time.Second, workflows.TxEvent{TxHash: sweepHash, Milestone: "confirmed", BlockNumber: sweepBlock, Succeeded: true})
	in := h.input()
	in.Chain, in.Symbols, in.GasWallet = "BTC", []string{"BTC"}, ""
	h.env.ExecuteWorkflow(workflows.WalletSweep, in)
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res workflows.WalletSweepResult
	require.NoError(t, h.env.GetWorkflowResult(&res))

	key := workflows.SweepReservationKey(sweepWfID, "BTC")
	require.Len(t, h.signed, 1)
	requireAmount(t, "4", h.signed[0].Amount)
	require.True(t, h.signed[0].FeeFromAmount, "the transfer pays its fee from the amount")
	require.Equal(t, []activities.SettleInput{{Key: key, TxHash: sweepHash,
		Gas: &activities.ChargeInput{WorkflowID: sweepWfID, Step: "sweep-BTC", TxHash: sweepHash}}}, h.settled,
		"the reservation, fee included, is settled by the mined attempt")
	require.Len(t, h.credited, 1)
	requireAmount(t, "3.9999859", h.credited[0].Amount)
	require.NotNil(t, h.credited[0].Position)
	require.Equal(t, uint(0), *h.credited[0].Position, "credited at the output the chain names")
	require.Len(t, res.Swept, 1)
	requireAmount(t, "3.9999859", res.Swept[0].Amount)
	require.Equal(t, "0.0000141", res.Swept[0].Fee)
	require.Empty(t, h.topUps)
	require.Empty(t, h.released)
	require.Equal(t, []string{"ReserveSweep " + key, "CheckSweepGas", "SignTransfer sweep-BTC", "Broadcast sweep-BTC",
		"signal confirmed 0x5eee", "SettleFunds", "CreditSweep"}, h.trail)
	h.guard.done()
}

// TestWalletSweepTopsUpGasFirst: a wallet without gas gets a top-up from the
// gas wallet, and its tokens are signed for only after the top-up's
// "confirmed" signal (a "seen", and the signals of other transactions, do
// not count).
func TestWalletSweepTopsUpGasFirst(t *testing.T) {
	h := newSweepHarness(t)
	h.gas("2000")
	h.topUp()
	h.broadcast()
	h.sweep()
	h.signalAt(time.Second, workflows.TxEvent{TxHash: topUpHash, Milestone: "seen", BlockNumber: 230, Succeeded: true})
	h.signalAt(2*time.Second, workflows.TxEvent{TxHash: otherHash, Milestone: "confirmed", BlockNumber: 230, Succeeded: true})
	h.signalAt(3*time.Second, workflows.TxEvent{TxHash: topUpHash, Milestone: "confirmed", BlockNumber: 230, Succeeded: true})
	h.signalAt(4*time.Second, workflows.TxEvent{TxHash: sweepHash, Milestone: "confirmed", BlockNumber: sweepBlock, Succeeded: true})

	res, err := h.run()
	require.NoError(t, err)
	h.requireSwept(res, topUpHash)
	require.Equal(t, []activities.TopUpInput{{WorkflowID: sweepWfID, Step: "gas-topup", From: gasAddr, To: depositAddr,
		Wei: "2000", Guard: workflows.SweepReservationKey(sweepWfID, "USDT")}}, h.topUps)
	key := workflows.SweepReservationKey(sweepWfID, "USDT")
	require.Equal(t, []string{"ReserveSweep " + key, "CheckSweepGas", "SignTopUp", "Broadcast gas-topup",
		"signal seen 0x70b0", "signal confirmed 0x0000", "signal confirmed 0x70b0", "BookTopUp",
		"SignTransfer sweep-USDT", "Broadcast sweep-USDT", "signal confirmed 0x5eee", "SettleFunds", "CreditSweep"}, h.trail)
	require.Contains(t, h.statuses.all(), workflows.SweepStepGas)
	h.guard.done()
}

// TestWalletSweepGivenUpTopUpIsFollowed: a top-up
// still unconfirmed after ConfirmTimeout is not given up (it may still be
// mined): it is replaced at a higher fee like any transfer and followed to
// the chain's verdict, then booked by the attempt that was mined, and the
// sweep goes on. Nothing is released: every reservation closes by the chain.
func TestWalletSweepGivenUpTopUpIsFollowed(t *testing.T) {
	h := newSweepHarness(t)
	h.gas("2000")
	h.topUp()
	h.broadcast()
	h.sweep()
	h.topUpMined = topUpHash2
	var replaced []activities.ReplaceInput
	h.env.OnActivity(a.ReplaceTransfer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReplaceInput) (activities.ReplaceResult, error) {
			h.mu.Lock()
			replaced = append(replaced, in)
			h.mu.Unlock()
			h.note("ReplaceTransfer " + in.Step)
			return activities.ReplaceResult{TxHash: topUpHash2, Attempt: 1}, nil
		}).Once()
	h.signalAt(time.Second, workflows.TxEvent{TxHash: topUpHash, Milestone: "seen", BlockNumber: 230, Succeeded: true})
	// Mined long after ConfirmTimeout (5m), as its replacement.
	h.signalAt(7*time.Minute, workflows.TxEvent{TxHash: topUpHash2, Milestone: "confirmed", BlockNumber: 230, Succeeded: true})
	h.signalAt(8*time.Minute, workflows.TxEvent{TxHash: sweepHash, Milestone: "confirmed", BlockNumber: sweepBlock, Succeeded: true})

	res, err := h.run()
	require.NoError(t, err)
	h.requireSwept(res, topUpHash2)
	require.Equal(t, []activities.ReplaceInput{{WorkflowID: sweepWfID, Step: "gas-topup", Attempt: 1}}, replaced)
	require.Equal(t, []activities.BookTopUpInput{{WorkflowID: sweepWfID, Step: "gas-topup", To: depositAddr,
		TxHash: topUpHash2, Paid: true}}, h.booked, "the top-up is booked by the attempt the chain mined")
	key := workflows.SweepReservationKey(sweepWfID, "USDT")
	require.Equal(t, []string{"ReserveSweep " + key, "CheckSweepGas", "SignTopUp", "Broadcast gas-topup",
		"signal seen 0x70b0", "ReplaceTransfer gas-topup", "signal confirmed 0x70b2", "BookTopUp",
		"SignTransfer sweep-USDT", "Broadcast sweep-USDT", "signal confirmed 0x5eee", "SettleFunds", "CreditSweep"}, h.trail)
	h.guard.done()
}

// requireCancelled fails unless err says the workflow ended on an operator's
// cancel request.
func requireCancelled(t *testing.T, err error) {
	t.Helper()
	var canceled *temporal.CanceledError
	require.True(t, errors.As(err, &canceled), "err = %v, want the sweep cancelled", err)
}

// TestWalletSweepCancelBeforeSigningReleases: an
// operator's cancel request before anything is signed releases what the
// sweep holds and ends it; nothing is signed.
func TestWalletSweepCancelBeforeSigningReleases(t *testing.T) {
	h := newSweepHarness(t)
	h.env.OnActivity(a.CheckSweepGas, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.SweepGasInput) (activities.SweepGasResult, error) {
			h.note("CheckSweepGas")
			h.env.CancelWorkflow() // the operator's Cancel, while the gas is checked
			return activities.SweepGasResult{NeedWei: "1000", HaveWei: "0", TopUpWei: "2000"}, nil
		})
	h.guard.forbid(a.SignTopUp, a.SignTransfer, a.Broadcast, a.SettleFunds, a.CreditSweep)

	_, err := h.run()
	requireCancelled(t, err)
	key := workflows.SweepReservationKey(sweepWfID, "USDT")
	require.Equal(t, []activities.ReleaseInput{{Key: key}}, h.released)
	require.Equal(t, []string{"ReserveSweep " + key, "CheckSweepGas", "ReleaseFunds " + key}, h.trail)
	require.Equal(t, workflows.SweepStepCancelled, h.statuses.last())
	h.guard.done()
}

// TestWalletSweepCancelAfterBroadcastFollowsTheChain:
// a cancel request once the token transfer is signed and broadcast cannot
// stop it: the sweep waits for the chain's verdict and books exactly what
// the chain did (settled with its gas, collection credited).
func TestWalletSweepCancelAfterBroadcastFollowsTheChain(t *testing.T) {
	h := newSweepHarness(t)
	h.gas("0")
	h.sweep()
	h.env.OnActivity(a.Broadcast, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BroadcastInput) (activities.BroadcastResult, error) {
			h.note("Broadcast " + in.Step)
			h.env.CancelWorkflow() // the Web UI's Cancel, right after the broadcast
			return activities.BroadcastResult{}, nil
		})
	h.guard.forbid(a.SignTopUp)
	h.signalAt(5*time.Second, workflows.TxEvent{TxHash: sweepHash, Milestone: "confirmed", BlockNumber: sweepBlock, Succeeded: true})

	res, err := h.run()
	require.NoError(t, err, "everything was signed before the cancel: the sweep ends as the chain decided")
	h.requireSwept(res, "")
	key := workflows.SweepReservationKey(sweepWfID, "USDT")
	require.Equal(t, []string{"ReserveSweep " + key, "CheckSweepGas", "SignTransfer sweep-USDT", "Broadcast sweep-USDT",
		"signal confirmed 0x5eee", "SettleFunds", "CreditSweep"}, h.trail)
	h.guard.done()
}

// TestWalletSweepCancelAfterTopUpBooksItAndReleases:
// a cancel request once the gas top-up is broadcast is held until the chain
// decides the top-up, which is then booked; the tokens, not signed yet, are
// released and nothing more is signed.
func TestWalletSweepCancelAfterTopUpBooksItAndReleases(t *testing.T) {
	h := newSweepHarness(t)
	h.gas("2000")
	h.topUp()
	h.env.OnActivity(a.Broadcast, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BroadcastInput) (activities.BroadcastResult, error) {
			h.note("Broadcast " + in.Step)
			h.env.CancelWorkflow()
			return activities.BroadcastResult{}, nil
		})
	h.guard.forbid(a.SignTransfer, a.SettleFunds, a.CreditSweep)
	h.signalAt(5*time.Second, workflows.TxEvent{TxHash: topUpHash, Milestone: "confirmed", BlockNumber: 230, Succeeded: true})

	_, err := h.run()
	requireCancelled(t, err)
	key := workflows.SweepReservationKey(sweepWfID, "USDT")
	require.Equal(t, []activities.BookTopUpInput{{WorkflowID: sweepWfID, Step: "gas-topup", To: depositAddr,
		TxHash: topUpHash, Paid: true}}, h.booked)
	require.Equal(t, []activities.ReleaseInput{{Key: key}}, h.released)
	require.Equal(t, []string{"ReserveSweep " + key, "CheckSweepGas", "SignTopUp", "Broadcast gas-topup",
		"signal confirmed 0x70b0", "BookTopUp", "ReleaseFunds " + key}, h.trail)
	require.Equal(t, workflows.SweepStepCancelled, h.statuses.last())
	h.guard.done()
}

// TestWalletSweepNothingAboveThreshold: a balance that is no longer above
// the threshold when reserved sweeps nothing and needs no gas.
func TestWalletSweepNothingAboveThreshold(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.BookTopUp, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: sweepWfID})
	env.OnActivity(a.ReserveSweep, mock.Anything, mock.Anything).
		Return(activities.SweepReserveResult{Amount: protocol.MustAmount("0.5")}, nil).Once()
	env.OnActivity(a.CheckSweepGas, mock.Anything, mock.Anything).Return(activities.SweepGasResult{}, errUnexpected).Maybe()
	env.ExecuteWorkflow(workflows.WalletSweep, workflows.WalletSweepInput{Chain: "ETH", Address: depositAddr,
		Symbols: []string{"USDT"}, Threshold: protocol.MustAmount("1"), Collection: collection, GasWallet: gasAddr})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.WalletSweepResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Empty(t, res.Swept)
	require.Equal(t, []string{"USDT"}, res.Skipped)
	env.AssertNotCalled(t, "CheckSweepGas", mock.Anything, mock.Anything)
	env.AssertExpectations(t)
}

// TestSweepStartsOneChildPerWallet: the scheduled Sweep pages through the
// candidates and starts one WalletSweep per wallet under its own id, handing
// it the collection and gas wallets, then ends without waiting for them.
func TestSweepStartsOneChildPerWallet(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Sweep)
	env.RegisterWorkflow(workflows.WalletSweep)
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.BookTopUp, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.SetStartTime(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "payflow-sweep-2026-11-21T12:00:00Z"})
	w1, w2, w3 := "0x1000000000000000000000000000000000000001", "0x2000000000000000000000000000000000000002",
		"0x3000000000000000000000000000000000000003"
	// A run of every symbol passes no threshold down: each asset is swept
	// above its own sweep_threshold (the run's 100 is no one asset's).
	in := workflows.SweepInput{Threshold: protocol.MustAmount("100"), ConfirmTimeout: time.Minute}
	env.OnActivity(a.PlanSweep, mock.Anything, activities.SweepPlanInput{Threshold: protocol.MustAmount("0"), Limit: 100}).
		Return(activities.SweepPlan{Chain: "ETH", Collection: collection, GasWallet: gasAddr, Next: w2,
			Candidates: []activities.SweepCandidate{{Address: w1, Symbols: []string{"USDT"}}, {Address: w2, Symbols: []string{"USDT"}}}}, nil).Once()
	env.OnActivity(a.PlanSweep, mock.Anything, activities.SweepPlanInput{Threshold: protocol.MustAmount("0"), After: w2, Limit: 100}).
		Return(activities.SweepPlan{Chain: "ETH", Collection: collection, GasWallet: gasAddr,
			Candidates: []activities.SweepCandidate{{Address: w3, Symbols: []string{"USDT"}}}}, nil).Once()
	var mu sync.Mutex
	children := map[string]workflows.WalletSweepInput{}
	env.OnWorkflow(workflows.WalletSweep, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, in workflows.WalletSweepInput) (workflows.WalletSweepResult, error) {
			mu.Lock()
			children[workflow.GetInfo(ctx).WorkflowExecution.ID] = in
			mu.Unlock()
			return workflows.WalletSweepResult{Address: in.Address}, nil
		})

	env.ExecuteWorkflow(workflows.Sweep, in)
	require.NoError(t, env.GetWorkflowError())
	var res workflows.SweepResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 3, res.StartedCount)
	require.Zero(t, res.NotStarted)
	var ids []string
	for _, st := range res.Started {
		ids = append(ids, st.WorkflowID)
	}
	want := []string{"sweep-ETH-" + w1 + "-20261121T120000Z", "sweep-ETH-" + w2 + "-20261121T120000Z",
		"sweep-ETH-" + w3 + "-20261121T120000Z"}
	require.Equal(t, want, ids)
	got := make([]string, 0, len(children))
	for id, c := range children {
		got = append(got, id)
		require.Equal(t, workflows.WalletSweepInput{Chain: "ETH", Address: c.Address, Symbols: []string{"USDT"},
			Threshold: protocol.MustAmount("0"), Collection: collection, GasWallet: gasAddr, ConfirmTimeout: time.Minute}, c)
	}
	sort.Strings(got)
	require.Equal(t, want, got)
	env.AssertExpectations(t)
}

// TestWalletSweepClosedReservationSignsNothing: a reset
// sweep whose reservation was settled or released already (ReserveSweep says
// Closed) signs and sends nothing for it.
func TestWalletSweepClosedReservationSignsNothing(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.BookTopUp, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: sweepWfID})
	env.OnActivity(a.ReserveSweep, mock.Anything, mock.Anything).
		Return(activities.SweepReserveResult{Closed: true, Amount: protocol.MustAmount("25")}, nil).Once()
	env.ExecuteWorkflow(workflows.WalletSweep, workflows.WalletSweepInput{Chain: "ETH", Address: depositAddr,
		Symbols: []string{"USDT"}, Threshold: protocol.MustAmount("1"), Collection: collection, GasWallet: gasAddr})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.WalletSweepResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Empty(t, res.Swept)
	for _, name := range []string{"CheckSweepGas", "SignTopUp", "SignTransfer", "Broadcast", "ReleaseFunds"} {
		env.AssertNotCalled(t, name, mock.Anything, mock.Anything)
	}
	env.AssertExpectations(t)
}

// TestReplayWalletSweepCancelledHistory replays a WalletSweep recorded on
// the dev server before sweeps were safe to cancel (reserve, top-up, booked,
// token transfer broadcast, then the operator's cancel ended it at once)
// against the current code: a running sweep from before the change must
// take its old path (workflow.GetVersion), not a nondeterministic new one.
func TestReplayWalletSweepCancelledHistory(t *testing.T) {
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflow(workflows.WalletSweep)
	require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(testLogger(t), "testdata/wallet_sweep_cancelled_history.json"))
}

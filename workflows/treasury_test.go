package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
	"payflow/workflows"
)

const (
	hotAddr   = "0x4040404040404040404040404040404040404040"
	coldAddr  = "0xc01dc01dc01dc01dc01dc01dc01dc01dc01dc01d"
	coldStamp = "20261207T180000Z"
	coldHash  = "0xc01d000000000000000000000000000000000000000000000000000000000004"
)

// TestTreasurySweepToCold: a treasury sweep is a WalletSweep whose
// reservation (ReserveSweep in treasury mode, with the run's ceiling) names
// the cold address, whose transfer goes to it, and whose settlement
// credits it; its reservation and steps carry the run's stamp, since the
// workflow id is the same for every run of the wallet and asset.
func TestTreasurySweepToCold(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	wfID := workflows.TreasurySweepWorkflowID("ETH", hotAddr, "usdt")
	require.Equal(t, "treasury-ETH-"+hotAddr+"-USDT", wfID)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: wfID, TaskQueue: workflows.DefaultTaskQueue})
	key := workflows.SweepReservationKey(wfID, "USDT") + "@" + coldStamp
	step := "sweep-USDT@" + coldStamp
	var mu sync.Mutex
	var trail []string
	note := func(s string) { mu.Lock(); trail = append(trail, s); mu.Unlock() }

	env.OnActivity(a.ReserveSweep, mock.Anything, activities.SweepReserveInput{Key: key, WorkflowID: wfID, Address: hotAddr,
		Symbol: "USDT", Threshold: protocol.MustAmount("0"), Collection: coldAddr, Treasury: true, Ceiling: protocol.MustAmount("5000")}).Return(
		func(context.Context, activities.SweepReserveInput) (activities.SweepReserveResult, error) {
			note("ReserveSweep")
			return activities.SweepReserveResult{Reserved: true, Amount: protocol.MustAmount("120")}, nil
		}).Once()
	env.OnActivity(a.CheckSweepGas, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SweepGasInput) (activities.SweepGasResult, error) {
			require.Equal(t, hotAddr, in.Address)
			require.Equal(t, coldAddr, in.Collection)
			note("CheckSweepGas")
			return activities.SweepGasResult{NeedWei: "1", HaveWei: "2", TopUpWei: "0"}, nil
		}).Once()
	var signed activities.TransferInput
	env.OnActivity(a.SignTransfer, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TransferInput) (activities.TransferResult, error) {
			signed = in
			note("SignTransfer " + in.Step)
			return activities.TransferResult{TxHash: coldHash, From: hotAddr}, nil
		}).Once()
	env.OnActivity(a.Broadcast, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.BroadcastInput) (activities.BroadcastResult, error) {
			require.Equal(t, wfID, in.WorkflowID)
			note("Broadcast " + in.Step)
			return activities.BroadcastResult{}, nil
		}).Once()
	env.OnActivity(a.InspectTransfer, mock.Anything, activities.InspectInput{WorkflowID: wfID, Step: step}).
		Return(activities.Inspection{State: "mined", Confirmed: true, TxHash: coldHash, BlockNumber: 77, Paid: true}, nil)
	env.OnActivity(a.SettleFunds, mock.Anything, activities.SettleInput{Key: key, TxHash: coldHash,
		Gas: &activities.ChargeInput{WorkflowID: wfID, Step: step, TxHash: coldHash}}).Return(
		func(context.Context, activities.SettleInput) error { note("SettleFunds"); return nil }).Once()
	var credited activities.SweepCreditInput
	env.OnActivity(a.CreditSweep, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SweepCreditInput) error {
			credited = in
			note("CreditSweep")
			return nil
		}).Once()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalTxEvent, workflows.TxEvent{TxHash: coldHash, Milestone: "confirmed", BlockNumber: 77,
			Succeeded: true})
	}, time.Second)

	env.ExecuteWorkflow(workflows.WalletSweep, workflows.WalletSweepInput{Chain: "ETH", Address: hotAddr, Symbols: []string{"USDT"},
		Collection: coldAddr, GasWallet: gasAddr, ConfirmTimeout: time.Minute,
		Treasury: &workflows.TreasuryRun{Stamp: coldStamp, Ceiling: protocol.MustAmount("5000")}})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.WalletSweepResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Len(t, res.Swept, 1)
	require.Equal(t, coldHash, res.Swept[0].TxHash)
	requireAmount(t, "120", res.Swept[0].Amount)
	requireAmount(t, "120", signed.Amount)
	signed.Amount = protocol.Amount{}
	require.Equal(t, activities.TransferInput{WorkflowID: wfID, Step: step, Guard: key, Symbol: "USDT", From: hotAddr, To: coldAddr}, signed)
	requireAmount(t, "120", credited.Amount)
	credited.Amount = protocol.Amount{}
	require.Equal(t, activities.SweepCreditInput{WorkflowID: wfID, From: hotAddr, Collection: coldAddr, Symbol: "USDT",
		TxHash: coldHash}, credited, "the cold wallet is credited under the deposit key of the sweep's log")
	require.Equal(t, []string{"ReserveSweep", "CheckSweepGas", "SignTransfer " + step, "Broadcast " + step, "SettleFunds",
		"CreditSweep"}, trail)
	env.AssertExpectations(t)
}

// TestTreasuryStartsOneSweepPerWalletAndAsset: a Treasury run starts one
// treasury sweep per asset above its ceiling, under
// TreasurySweepWorkflowID, carrying its stamp and the run's ceiling (only
// for a run of one symbol); a wallet and asset whose sweep is still running
// gets no second one (InFlight).
func TestTreasuryStartsOneSweepPerWalletAndAsset(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Treasury)
	env.RegisterWorkflow(workflows.WalletSweep)
	env.RegisterActivity(&activities.Activities{})
	env.SetStartTime(time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC))
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "payflow-treasury-2026-12-07T18:00:00Z"})
	// The plan names USDT twice for the same wallet: the second start finds
	// the first running, as a later run would.
	env.OnActivity(a.PlanTreasury, mock.Anything, activities.TreasuryPlanInput{Symbols: []string{"USDT"},
		Ceiling: protocol.MustAmount("900")}).Return(activities.TreasuryPlan{Chain: "ETH", Cold: coldAddr, GasWallet: gasAddr,
		Candidates: []activities.TreasuryCandidate{
			{Symbol: "USDT", Address: hotAddr, Excess: protocol.MustAmount("100")},
			{Symbol: "USDT", Address: hotAddr, Excess: protocol.MustAmount("100")},
		}}, nil).Once()
	var mu sync.Mutex
	children := map[string]workflows.WalletSweepInput{}
	env.OnWorkflow(workflows.WalletSweep, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, in workflows.WalletSweepInput) (workflows.WalletSweepResult, error) {
			mu.Lock()
			children[workflow.GetInfo(ctx).WorkflowExecution.ID] = in
			mu.Unlock()
			_ = workflow.Sleep(ctx, time.Hour) // still running when the second start comes
			return workflows.WalletSweepResult{Address: in.Address}, nil
		})

	env.ExecuteWorkflow(workflows.Treasury, workflows.TreasuryInput{Symbols: []string{"USDT"}, Ceiling: protocol.MustAmount("900"),
		ConfirmTimeout: time.Minute})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.TreasuryResult
	require.NoError(t, env.GetWorkflowResult(&res))
	id := workflows.TreasurySweepWorkflowID("ETH", hotAddr, "USDT")
	require.Equal(t, []workflows.TreasuryStarted{{Symbol: "USDT", Address: hotAddr, Excess: protocol.MustAmount("100"), WorkflowID: id}},
		res.Started)
	require.Equal(t, 1, res.InFlight, "one treasury sweep per wallet and asset at a time")
	require.Equal(t, map[string]workflows.WalletSweepInput{id: {Chain: "ETH", Address: hotAddr, Symbols: []string{"USDT"},
		Threshold: protocol.MustAmount("0"), Collection: coldAddr, GasWallet: gasAddr, ConfirmTimeout: time.Minute,
		Treasury: &workflows.TreasuryRun{Stamp: "20261207T180000Z", Ceiling: protocol.MustAmount("900")}}}, children)
	env.AssertExpectations(t)
}

// TestTreasuryNothingAboveCeiling: a run of several symbols passes no
// ceiling override down, and with nothing above its ceiling starts nothing.
func TestTreasuryNothingAboveCeiling(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Treasury)
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.PlanTreasury, mock.Anything, activities.TreasuryPlanInput{Symbols: []string{"ETH", "USDT"},
		Ceiling: protocol.MustAmount("0")}).
		Return(activities.TreasuryPlan{Chain: "ETH", Cold: coldAddr}, nil).Once()
	env.ExecuteWorkflow(workflows.Treasury, workflows.TreasuryInput{Symbols: []string{"ETH", "USDT"}, Ceiling: protocol.MustAmount("1")})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.TreasuryResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Empty(t, res.Started)
	require.Zero(t, res.InFlight)
	env.AssertExpectations(t)
}

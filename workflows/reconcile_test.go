package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"payflow/activities"
	"payflow/protocol"
	"payflow/workflows"
)

const (
	reconWfID   = "payflow-reconcile-2026-11-21T12:00:00Z"
	pinnedHash  = "0x00000000000000000000000000000000000000000000000000000000000b10c1"
	repinnedHsh = "0x00000000000000000000000000000000000000000000000000000000000b10c2"
)

// statusLog records every PayflowStatus a workflow upserts.
type statusLog struct {
	mu     sync.Mutex
	values []string
}

func recordStatuses(env *testsuite.TestWorkflowEnvironment) *statusLog {
	l := &statusLog{}
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		if v, ok := sa.GetKeyword(workflows.AttrStatus); ok {
			l.mu.Lock()
			l.values = append(l.values, v)
			l.mu.Unlock()
		}
	})
	return l
}

func (l *statusLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.values) == 0 {
		return ""
	}
	return l.values[len(l.values)-1]
}

func (l *statusLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.values...)
}

// newReconEnv is a test environment for one Reconcile whose VerifyCredits
// finds nothing to flag.
func newReconEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *statusLog) {
	t.Helper()
	env, statuses, _ := newReconEnvWithCredits(t, activities.CreditCheckResult{Checked: 4})
	return env, statuses
}

// newReconEnvWithCredits is newReconEnv whose VerifyCredits answers cr; the
// returned func lists its inputs.
func newReconEnvWithCredits(t *testing.T, cr activities.CreditCheckResult) (*testsuite.TestWorkflowEnvironment, *statusLog,
	func() []activities.CreditCheckInput) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(testLogger(t))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Reconcile)
	env.RegisterActivity(&activities.Activities{})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: reconWfID, TaskQueue: workflows.DefaultTaskQueue})
	env.SetWorkflowRunTimeout(time.Hour)
	var mu sync.Mutex
	var inputs []activities.CreditCheckInput
	env.OnActivity(a.VerifyCredits, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CreditCheckInput) (activities.CreditCheckResult, error) {
			mu.Lock()
			defer mu.Unlock()
			inputs = append(inputs, in)
			return cr, nil
		}).Maybe()
	return env, recordStatuses(env), func() []activities.CreditCheckInput {
		mu.Lock()
		defer mu.Unlock()
		return append([]activities.CreditCheckInput(nil), inputs...)
	}
}

// addresses returns n distinct, ascending addresses.
func addresses(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("0x%040x", i+1)
	}
	return out
}

// batchRecorder mocks ReconcileWallets: it records each batch and reports a
// mismatch for every address in mismatched.
type batchRecorder struct {
	mu      sync.Mutex
	batches []activities.ReconBatchInput
}

func (r *batchRecorder) mock(env *testsuite.TestWorkflowEnvironment, mismatched map[string]string) {
	env.OnActivity(a.ReconcileWallets, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReconBatchInput) (activities.ReconBatchResult, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.batches = append(r.batches, in)
			res := activities.ReconBatchResult{Checked: len(in.Addresses) * len(in.Symbols)}
			for _, addr := range in.Addresses {
				if diff, ok := mismatched[addr]; ok {
					res.Mismatches = append(res.Mismatches, activities.ReconMismatch{Address: addr, Symbol: "USDT",
						LedgerTotal: protocol.MustAmount("10"), ChainBalance: protocol.NewAmount(protocol.MustAmount("10").Add(protocol.MustAmount(diff).Decimal)),
						Difference: protocol.MustAmount(diff), Unmatched: 1})
				}
			}
			return res, nil
		})
}

// TestReconcileMatched: every wallet is compared at the pinned block, in
// batches of at most 50 across two pages of the list, and the run ends
// "matched" with no mismatches.
func TestReconcileMatched(t *testing.T) {
	env, statuses := newReconEnv(t)
	all := addresses(120)
	env.OnActivity(a.PinBlock, mock.Anything, activities.PinInput{Confirmations: 3}).
		Return(activities.PinnedBlock{Chain: "ETH", Number: 500, Hash: pinnedHash}, nil).Once()
	env.OnActivity(a.ListReconWallets, mock.Anything, activities.ReconListInput{After: "", Limit: 500}).
		Return(activities.ReconList{Addresses: all[:70], Symbols: []string{"USDT"}, Next: all[69]}, nil).Once()
	env.OnActivity(a.ListReconWallets, mock.Anything, activities.ReconListInput{After: all[69], Limit: 500}).
		Return(activities.ReconList{Addresses: all[70:], Symbols: []string{"USDT"}}, nil).Once()
	var rec batchRecorder
	rec.mock(env, nil)

	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Confirmations: 3})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res workflows.ReconcileResult
	require.NoError(t, env.GetWorkflowResult(&res))

	require.True(t, strings.HasPrefix(res.RunID, reconWfID+"/"), "run id %q names the workflow", res.RunID)
	require.Equal(t, uint64(500), res.BlockNumber)
	require.Equal(t, pinnedHash, res.BlockHash)
	require.Equal(t, 120, res.Wallets)
	require.Equal(t, 120, res.Checked)
	require.Zero(t, res.Mismatches)
	require.Empty(t, res.Mismatched)

	var sizes []int
	var seen []string
	for _, b := range rec.batches {
		sizes = append(sizes, len(b.Addresses))
		seen = append(seen, b.Addresses...)
		require.Equal(t, res.RunID, b.RunID)
		require.Equal(t, activities.PinnedBlock{Number: 500, Hash: pinnedHash}, b.Block)
		require.Equal(t, []string{"USDT"}, b.Symbols)
	}
	require.Equal(t, []int{50, 20, 50}, sizes, "batches of at most 50, page by page")
	require.Equal(t, all, seen, "every wallet once, in order")
	require.Equal(t, []string{workflows.ReconStatusRunning, workflows.ReconStatusMatched}, statuses.all())
	env.AssertExpectations(t)
}

// TestReconcileMismatch: a batch reporting a difference makes the run end
// "mismatch", counting and listing it.
func TestReconcileMismatch(t *testing.T) {
	env, statuses := newReconEnv(t)
	all := addresses(3)
	env.OnActivity(a.PinBlock, mock.Anything, mock.Anything).
		Return(activities.PinnedBlock{Chain: "ETH", Number: 77, Hash: pinnedHash}, nil).Once()
	env.OnActivity(a.ListReconWallets, mock.Anything, mock.Anything).
		Return(activities.ReconList{Addresses: all, Symbols: []string{"USDT"}}, nil).Once()
	var rec batchRecorder
	rec.mock(env, map[string]string{all[1]: "4.321"})

	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Confirmations: 3, BatchSize: 2})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res workflows.ReconcileResult
	require.NoError(t, env.GetWorkflowResult(&res))

	require.Equal(t, 3, res.Checked)
	require.Equal(t, 1, res.Mismatches)
	require.Len(t, res.Mismatched, 1)
	require.Equal(t, all[1], res.Mismatched[0].Address)
	requireAmount(t, "4.321", res.Mismatched[0].Difference)
	require.Len(t, rec.batches, 2, "BatchSize 2 over 3 wallets")
	require.Equal(t, workflows.ReconStatusMismatch, statuses.last())
	env.AssertExpectations(t)
}

// TestReconcileRepinsAfterReorg: when the pinned block left the canonical
// chain, the batch is redone at a newly pinned block, which the rest of the
// run keeps.
func TestReconcileRepinsAfterReorg(t *testing.T) {
	env, _ := newReconEnv(t)
	all := addresses(2)
	env.OnActivity(a.PinBlock, mock.Anything, mock.Anything).
		Return(activities.PinnedBlock{Number: 500, Hash: pinnedHash}, nil).Once()
	env.OnActivity(a.PinBlock, mock.Anything, mock.Anything).
		Return(activities.PinnedBlock{Number: 503, Hash: repinnedHsh}, nil).Once()
	env.OnActivity(a.ListReconWallets, mock.Anything, mock.Anything).
		Return(activities.ReconList{Addresses: all, Symbols: []string{"USDT"}}, nil).Once()
	var blocks []activities.PinnedBlock
	env.OnActivity(a.ReconcileWallets, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReconBatchInput) (activities.ReconBatchResult, error) {
			blocks = append(blocks, in.Block)
			if in.Block.Hash == pinnedHash {
				return activities.ReconBatchResult{}, temporal.NewNonRetryableApplicationError("block 500 is now 0xother",
					activities.ErrTypePinReorged, nil)
			}
			return activities.ReconBatchResult{Checked: len(in.Addresses)}, nil
		})

	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{BatchSize: 1})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.ReconcileResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, uint64(503), res.BlockNumber)
	require.Equal(t, repinnedHsh, res.BlockHash)
	require.Equal(t, 2, res.Checked)
	require.Equal(t, []activities.PinnedBlock{{Number: 500, Hash: pinnedHash}, {Number: 503, Hash: repinnedHsh},
		{Number: 503, Hash: repinnedHsh}}, blocks)
	env.AssertExpectations(t)
}

// TestReconcileFlagsReorganisedCredits: the recent deposit credits are
// re-verified first, at the pinned block, under their own run id; a credit
// whose deposit left the chain (reversed by the activity) makes the run end
// "mismatch", listed in the result, even when every wallet then matches.
func TestReconcileFlagsReorganisedCredits(t *testing.T) {
	flagged := activities.FlaggedCredit{Address: toAddr, Symbol: "USDT", Amount: protocol.MustAmount("5"), TxHash: txHash,
		Reason: activities.CreditReversed}
	env, statuses, inputs := newReconEnvWithCredits(t, activities.CreditCheckResult{Checked: 9,
		Flagged: []activities.FlaggedCredit{flagged},
		Mismatches: []activities.ReconMismatch{{Address: toAddr, Symbol: "USDT", LedgerTotal: protocol.MustAmount("0"),
			ChainBalance: protocol.MustAmount("0"), Difference: protocol.MustAmount("0"), Unmatched: 1}}})
	pin := activities.PinnedBlock{Chain: "ETH", Number: 77, Hash: pinnedHash}
	env.OnActivity(a.PinBlock, mock.Anything, mock.Anything).Return(pin, nil).Once()
	env.OnActivity(a.ListReconWallets, mock.Anything, mock.Anything).
		Return(activities.ReconList{Addresses: addresses(2), Symbols: []string{"USDT"}}, nil).Once()
	var rec batchRecorder
	rec.mock(env, nil)

	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{Confirmations: 3, CreditWindow: 6 * time.Hour})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.ReconcileResult
	require.NoError(t, env.GetWorkflowResult(&res))

	// The test environment has no first run id: the run id is the workflow id and "/".
	require.Equal(t, []activities.CreditCheckInput{{RunID: reconWfID + "//credits", Block: pin,
		Window: 6 * time.Hour}}, inputs())
	require.Equal(t, reconWfID+"//credits", res.CreditsRunID)
	require.Equal(t, 9, res.CreditsChecked)
	require.Len(t, res.Flagged, 1)
	require.Equal(t, activities.CreditReversed, res.Flagged[0].Reason)
	require.Equal(t, 1, res.Mismatches)
	require.Equal(t, toAddr, res.Mismatched[0].Address)
	require.Equal(t, 2, res.Checked)
	require.Equal(t, workflows.ReconStatusMismatch, statuses.last())
	env.AssertExpectations(t)
}

// TestReconcileBeforeCreditCheckVersion: runs started before credits were
// re-verified replay without the step.
func TestReconcileBeforeCreditCheckVersion(t *testing.T) {
	env, statuses, inputs := newReconEnvWithCredits(t, activities.CreditCheckResult{})
	env.OnGetVersion("reconcile-verify-credits", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.OnActivity(a.PinBlock, mock.Anything, mock.Anything).
		Return(activities.PinnedBlock{Chain: "ETH", Number: 77, Hash: pinnedHash}, nil).Once()
	env.OnActivity(a.ListReconWallets, mock.Anything, mock.Anything).
		Return(activities.ReconList{Addresses: addresses(1), Symbols: []string{"USDT"}}, nil).Once()
	var rec batchRecorder
	rec.mock(env, nil)

	env.ExecuteWorkflow(workflows.Reconcile, workflows.ReconcileInput{})
	require.NoError(t, env.GetWorkflowError())
	require.Empty(t, inputs())
	require.Equal(t, workflows.ReconStatusMatched, statuses.last())
	env.AssertExpectations(t)
}

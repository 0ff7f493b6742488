package btc_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"payflow/chain"
	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
)

// told records the milestones a tracker tells, as Temporal signals would
// carry them; owners in gone no longer exist.
type told struct {
	mu   sync.Mutex
	got  []string
	gone map[string]bool
}

func (n *told) NotifyTx(_ context.Context, workflowID string, ev chain.TxEvent) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.gone[workflowID] {
		return chain.ErrOwnerGone
	}
	n.got = append(n.got, workflowID+" "+string(ev.Milestone)+" "+ev.BlockHash)
	return nil
}

// OwnerRunning: every owner runs but those in gone.
func (n *told) OwnerRunning(_ context.Context, workflowID string) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.gone[workflowID], nil
}

func (n *told) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.got
	n.got = nil
	return out
}

// TestTrackerTellsMilestones: a deposit's transaction, tracked while in the
// pool, is told seen with its block once mined and confirmed once 2 deep,
// once each; one whose block leaves the chain is told reorged, then seen
// and confirmed in the new branch; a payment is told confirmed only; an
// owner that is gone ends the tracking; tracking again tells afresh.
func TestTrackerTellsMilestones(t *testing.T) {
	n := btctest.Start(t)
	db := testDB(t, "btctracker")
	ctx := context.Background()
	addrs := addresses(t, n, "tracker", 3)
	tracked := btc.NewTracked(db, "BTC")
	rec := &told{gone: map[string]bool{"deposit-gone": true}}
	tr, err := btc.NewTracker(2, n.Client, tracked, rec, slog.Default())
	require.NoError(t, err)
	poll := func() []string {
		require.NoError(t, tr.Poll(ctx))
		return rec.take()
	}

	dep := n.Pay(t, addrs[0], 10_000).String()
	require.NoError(t, tracked.Track(ctx, dep, "deposit-1", true))
	require.NoError(t, tracked.Track(ctx, dep, "deposit-gone", true))
	require.Empty(t, poll(), "in the pool: nothing to tell")
	b1 := n.Mine(t, 1)[0].String()
	require.Equal(t, []string{"deposit-1 seen " + b1}, poll())
	require.Empty(t, poll(), "told once")
	n.Mine(t, 1)
	require.Equal(t, []string{"deposit-1 confirmed " + b1}, poll())
	n.Mine(t, 1)
	require.Empty(t, poll(), "done once confirmed; the gone owner's tracking ended")

	// A reorganisation before the confirmations.
	re := n.Pay(t, addrs[1], 20_000).String()
	require.NoError(t, tracked.Track(ctx, re, "deposit-2", true))
	b2 := n.Mine(t, 1)[0]
	require.Equal(t, []string{"deposit-2 seen " + b2.String()}, poll())
	n.Invalidate(t, b2)
	require.Equal(t, []string{"deposit-2 reorged " + b2.String()}, poll(), "back in the pool")
	b3 := n.Mine(t, 1)[0].String()
	require.Equal(t, []string{"deposit-2 seen " + b3}, poll())
	n.Mine(t, 1)
	require.Equal(t, []string{"deposit-2 confirmed " + b3}, poll())

	// A payment, tracked when already 2 deep: confirmed only.
	pay := n.Pay(t, addrs[2], 30_000).String()
	b4 := n.Mine(t, 2)[0].String()
	require.NoError(t, tracked.Track(ctx, pay, "withdraw-x", false))
	require.Equal(t, []string{"withdraw-x confirmed " + b4}, poll())

	// Tracking again re-arms: told afresh.
	require.NoError(t, tracked.Track(ctx, dep, "deposit-1", true))
	require.Equal(t, []string{"deposit-1 seen " + b1, "deposit-1 confirmed " + b1}, poll())
	require.Empty(t, poll())
}

// TestTrackerEndsUnminedTransactionsOfGoneOwners: a transaction that is
// never mined (a payment's replaced attempt, a deposit's transaction that
// never came back) stops being followed once its owner is gone, after the
// owner check's delay; one whose owner runs is followed on.
func TestTrackerEndsUnminedTransactionsOfGoneOwners(t *testing.T) {
	n := btctest.Start(t)
	db := testDB(t, "btctrackergone")
	ctx := context.Background()
	tracked := btc.NewTracked(db, "BTC")
	rec := &told{gone: map[string]bool{}}
	tr, err := btc.NewTracker(2, n.Client, tracked, rec, slog.Default())
	require.NoError(t, err)
	tr.SetOwnerCheckEvery(10 * time.Millisecond)
	replaced := strings.Repeat("ab", 32) // never known to the node
	waiting := strings.Repeat("cd", 32)
	require.NoError(t, tracked.Track(ctx, replaced, "withdraw-done", false))
	require.NoError(t, tracked.Track(ctx, waiting, "withdraw-running", false))
	open := func() []string {
		rows, err := tracked.Open(ctx)
		require.NoError(t, err)
		var out []string
		for _, r := range rows {
			out = append(out, r.WorkflowID)
		}
		return out
	}
	require.NoError(t, tr.Poll(ctx))
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, tr.Poll(ctx))
	require.ElementsMatch(t, []string{"withdraw-done", "withdraw-running"}, open(), "both owners run")
	rec.mu.Lock()
	rec.gone["withdraw-done"] = true
	rec.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, tr.Poll(ctx))
	require.Equal(t, []string{"withdraw-running"}, open(), "the gone owner's attempt is no longer followed")
	require.Empty(t, rec.take(), "nothing told")
}

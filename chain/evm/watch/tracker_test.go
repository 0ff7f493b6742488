package watch_test

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"

	"payflow/chain"
	"payflow/chain/evm/watch"

	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
)

func TestTrackerSeenThenConfirmedOnce(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.SendTracked("wf-track", 42)

	f.Check() // in the pool only
	evmtest.Expect(t, f.Rec.Take(), "wf-track", hash.Hex())

	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-track", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	f.Check() // same head: nothing new
	evmtest.Expect(t, f.Rec.Take(), "wf-track", hash.Hex())

	for i := uint64(1); i < evmtest.Confirmations-1; i++ {
		f.Sim.Commit()
		f.Check()
		evmtest.Expect(t, f.Rec.Take(), "wf-track", hash.Hex())
	}
	f.Sim.Commit() // the confirmations-th block counting the one it is in
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-track", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	if s := f.State(hash); s != "confirmed" {
		t.Fatalf("state %q after confirmation", s)
	}

	f.Check()
	f.Sim.Commit()
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-track", hash.Hex())
}

func TestTrackerConfirmsRevertedTransferAsFailed(t *testing.T) {
	f := newTrackerFixture(t)
	// Each fits the balance when signed; together they do not, so the second reverts on chain.
	half := new(big.Int).Div(evmtest.SenderTokens, big.NewInt(2)).Int64()
	ok := f.SendTracked("wf-ok", half+1)
	bad := f.SendTracked("wf-bad", half+1)

	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
	}
	f.Check() // already deep enough: seen and confirmed in one pass
	got := f.Rec.Take()
	var okGot, badGot []evmtest.Notified
	for _, n := range got {
		if n.WorkflowID == "wf-ok" {
			okGot = append(okGot, n)
		} else {
			badGot = append(badGot, n)
		}
	}
	evmtest.Expect(t, okGot, "wf-ok", ok.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true},
		evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	evmtest.Expect(t, badGot, "wf-bad", bad.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: false},
		evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: false})
}

func TestTrackerRetriesFailedNotification(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.SendTracked("wf-flaky", 1)
	minedAt := f.Sim.Commit()
	bn, _ := f.Head()

	f.Rec.Mu.Lock()
	f.Rec.FailNext = errors.New("temporal unavailable")
	f.Rec.Mu.Unlock()
	if err := f.Tracking.CheckOnce(f.Ctx, bn); err == nil || !strings.Contains(err.Error(), "temporal unavailable") {
		t.Fatalf("CheckOnce with a failing notifier: %v", err)
	}
	evmtest.Expect(t, f.Rec.Take(), "wf-flaky", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	if s := f.State(hash); s != "pending" {
		t.Fatalf("state %q after a failed notification, want pending", s)
	}
	f.Check() // at least once: told again
	evmtest.Expect(t, f.Rec.Take(), "wf-flaky", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
}

func TestTrackerStopsWhenOwnerIsGone(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.SendTracked("wf-gone", 1)
	f.Rec.Gone["wf-gone"] = true
	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-gone", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	if s := f.State(hash); s != "done" {
		t.Fatalf("state %q, want done", s)
	}
	for range evmtest.Confirmations {
		f.Sim.Commit()
		f.Check()
	}
	evmtest.Expect(t, f.Rec.Take(), "wf-gone", hash.Hex())
}

// Reorgs. In go-ethereum v1.17.8 simulated.Backend.Fork(parent) does not just
// start a side chain: it calls BlockChain.SetCanonical(parent), so the head
// drops back to parent at once and the dropped blocks' transaction lookups are
// deleted (receipts answer NotFound). The pool re-injects the dropped
// transactions, so the next Commit re-includes them in a new block of the same
// height with another hash (go-ethereum's own TestForkResendTx relies on it).

func TestTrackerReorgWhileOutOfChain(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.SendTracked("wf-reorg", 9)
	bn, minedAt := f.MineThenFork(hash)

	if _, err := f.Client.TransactionReceipt(f.Ctx, hash); !errors.Is(err, ethereum.NotFound) {
		t.Fatalf("receipt after the fork: %v, want NotFound", err)
	}
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-reorg", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneReorged})
	if s := f.State(hash); s != "pending" {
		t.Fatalf("state %q after a reorg, want pending", s)
	}
	f.Check() // still out: no second reorged
	evmtest.Expect(t, f.Rec.Take(), "wf-reorg", hash.Hex())

	// Mine past the old height. The pool re-includes the transfer in the first new block.
	newHash := f.Sim.Commit()
	if newHash == minedAt {
		t.Fatal("the new block at the old height has the old hash")
	}
	r := f.RequireSuccess(hash)
	if r.BlockNumber.Uint64() != bn || r.BlockHash != newHash {
		t.Fatalf("re-included in %d/%s, want %d/%s", r.BlockNumber, r.BlockHash.Hex(), bn, newHash.Hex())
	}
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-reorg", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: newHash, Succeeded: true})
	for range evmtest.Confirmations - 2 {
		f.Sim.Commit()
		f.Check()
		evmtest.Expect(t, f.Rec.Take(), "wf-reorg", hash.Hex())
	}
	f.Sim.Commit()
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-reorg", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: newHash, Succeeded: true})
	if got := f.TokenBalance(evmtest.Recipient); got.Int64() != 9 {
		t.Fatalf("recipient holds %s after the reorg, want 9", got)
	}
}

func TestTrackerReorgIntoAnotherBlock(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.SendTracked("wf-reorg", 9)
	bn, minedAt := f.MineThenFork(hash)

	// The tracker does not look until the transfer is in a block of the new branch
	// and the new branch is longer than the old one.
	newHash := f.Sim.Commit()
	f.Sim.Commit()
	f.Sim.Commit()
	if n, _ := f.Head(); n != bn+2 {
		t.Fatalf("head %d, want %d", n, bn+2)
	}
	r := f.RequireSuccess(hash)
	if r.BlockHash != newHash || newHash == minedAt {
		t.Fatalf("re-included in %s, want %s (old block %s)", r.BlockHash.Hex(), newHash.Hex(), minedAt.Hex())
	}
	f.Check()
	// The move is reported as a fresh "seen" carrying the new block hash, then
	// confirmed there: the new branch is already deep enough.
	evmtest.Expect(t, f.Rec.Take(), "wf-reorg", hash.Hex(),
		evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: newHash, Succeeded: true}, evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: newHash, Succeeded: true})
	var stored string
	if err := f.DB.QueryRowContext(f.Ctx, "SELECT block_hash FROM tracked_txs WHERE tx_hash=?", hash.Hex()).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != newHash.Hex() {
		t.Fatalf("stored block hash %s, want %s", stored, newHash.Hex())
	}
}

// TestTrackerRunFollowsNewHeads drives Run over the simulated node's head
// subscription. Polling is off (an hour), so once the transfer is seen only new
// heads can bring the confirmation.
func TestTrackerRunFollowsNewHeads(t *testing.T) {
	f := newTrackerFixture(t)
	f.Rec.Ch = make(chan evmtest.Notified, 16)
	dial := func(context.Context) (watch.HeadSubscriber, error) { return f.Client, nil }
	tr, err := watch.NewTracker(watch.TrackerConfig{Chain: evmtest.ChainName, Confirmations: evmtest.Confirmations, PollInterval: time.Hour},
		f.DB, f.Client, dial, f.Rec, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	hash := f.SendTracked("wf-run", 3)

	ctx, cancel := context.WithCancel(f.Ctx)
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	stopped := false
	stop := func() error {
		stopped = true
		cancel()
		return <-done
	}
	defer func() {
		if !stopped {
			stop()
		}
	}()

	deadline := time.After(30 * time.Second) // a failure bound, not a timing assertion
	await := func(m chain.Milestone) evmtest.Notified {
		t.Helper()
		select {
		case n := <-f.Rec.Ch:
			if n.Ev.Milestone != m || n.Ev.TxHash != hash.Hex() {
				t.Fatalf("Run delivered %v, want %s", n, m)
			}
			return n
		case <-deadline:
			t.Fatalf("no %s from Run", m)
		}
		return evmtest.Notified{}
	}

	minedAt := f.Sim.Commit()
	seen := await(chain.MilestoneSeen) // from the catch-up check on connect, or the head
	if seen.Ev.BlockHash != minedAt.Hex() {
		t.Fatalf("seen in %s, want %s", seen.Ev.BlockHash, minedAt.Hex())
	}
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
	}
	confirmed := await(chain.MilestoneConfirmed)
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if confirmed.Ev.BlockNumber != seen.Ev.BlockNumber || confirmed.Ev.BlockHash != minedAt.Hex() || !confirmed.Ev.Succeeded {
		t.Fatalf("confirmed %v after %v", confirmed, seen)
	}
	if extra := len(f.Rec.Ch); extra != 0 {
		t.Fatalf("%d more notifications after the confirmation", extra)
	}
}

// TestTrackerKeepsEachWorkflowsState: two workflows follow one transaction
// (as deposits to two watched addresses do). The first owner being gone
// retires its row only; the other is still told seen and confirmed.
func TestTrackerKeepsEachWorkflowsState(t *testing.T) {
	f := newTrackerFixture(t)
	stx := f.SignAndSend(f.Request("wf-sender", 5))
	for _, wf := range []string{"wf-stays", "wf-gone"} {
		if err := evm.TrackTx(f.Ctx, f.DB, evmtest.ChainName, stx.Hash, wf); err != nil {
			t.Fatal(err)
		}
	}
	f.Rec.Gone["wf-gone"] = true
	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	f.Check()
	// Both owners are told "seen", in either order: the tracker checks
	// transactions concurrently.
	got := f.Rec.Take()
	if len(got) != 2 || got[0].WorkflowID == got[1].WorkflowID {
		t.Fatalf("notifications %v, want one seen for each of wf-stays and wf-gone", got)
	}
	if got[0].WorkflowID != "wf-stays" {
		got[0], got[1] = got[1], got[0]
	}
	evmtest.Expect(t, got[:1], "wf-stays", stx.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	evmtest.Expect(t, got[1:], "wf-gone", stx.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
	}
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-stays", stx.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	for wf, wantState := range map[string]string{"wf-stays": "confirmed", "wf-gone": "done"} {
		if s := f.TrackedState(stx.Hash, wf); s != wantState {
			t.Fatalf("%s is %q, want %q", wf, s, wantState)
		}
	}
}

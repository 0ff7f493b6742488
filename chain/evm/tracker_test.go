package evm_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"

	"payflow/chain"
	"payflow/chain/evm"
)

const confirmations = 3

// notified is one delivery to a Notifier.
type notified struct {
	workflowID string
	ev         chain.TxEvent
}

func (n notified) String() string {
	return fmt.Sprintf("%s:%s@%d/%s ok=%v", n.workflowID, n.ev.Milestone, n.ev.BlockNumber, short(n.ev.BlockHash), n.ev.Succeeded)
}

func short(h string) string {
	if len(h) > 10 {
		return h[:10]
	}
	return h
}

// recorder is a Notifier that records every delivery. Workflows in gone answer
// ErrOwnerGone; failNext makes the next delivery fail (and still records it).
type recorder struct {
	mu       sync.Mutex
	got      []notified
	gone     map[string]bool
	failNext error
	ch       chan notified // optional: every delivery is also sent here
}

func (r *recorder) NotifyTx(_ context.Context, workflowID string, ev chain.TxEvent) error {
	r.mu.Lock()
	n := notified{workflowID, ev}
	r.got = append(r.got, n)
	err := r.failNext
	r.failNext = nil
	if r.gone[workflowID] {
		err = chain.ErrOwnerGone
	}
	ch := r.ch
	r.mu.Unlock()
	if ch != nil {
		ch <- n
	}
	return err
}

// take returns what was delivered since the last take.
func (r *recorder) take() []notified {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// want describes an expected delivery; an empty blockHash is not compared.
type want struct {
	milestone   chain.Milestone
	blockNumber uint64
	blockHash   common.Hash
	succeeded   bool
}

func expect(t testing.TB, got []notified, workflowID, txHash string, wants ...want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d notifications %v, want %d", len(got), got, len(wants))
	}
	for i, w := range wants {
		g := got[i]
		if g.workflowID != workflowID || g.ev.TxHash != txHash || g.ev.Milestone != w.milestone ||
			g.ev.BlockNumber != w.blockNumber || g.ev.Succeeded != w.succeeded ||
			(w.blockHash != (common.Hash{}) && g.ev.BlockHash != w.blockHash.Hex()) {
			t.Fatalf("notification %d is %v, want %s:%s@%d/%s ok=%v", i, g, workflowID, w.milestone, w.blockNumber,
				short(w.blockHash.Hex()), w.succeeded)
		}
	}
}

type trackerFixture struct {
	*chainFixture
	rec     *recorder
	tracker *evm.Tracker
}

func newTrackerFixture(t *testing.T) *trackerFixture {
	t.Helper()
	f := newChainFixture(t)
	rec := &recorder{gone: map[string]bool{}}
	dial := func(context.Context) (evm.HeadSubscriber, error) { return f.client, nil }
	tr, err := evm.NewTracker(evm.TrackerConfig{Chain: chainName, Confirmations: confirmations}, f.db, f.client, dial,
		rec, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	return &trackerFixture{chainFixture: f, rec: rec, tracker: tr}
}

// head returns the current head's number and hash.
func (f *trackerFixture) head() (uint64, common.Hash) {
	f.t.Helper()
	h, err := f.client.HeaderByNumber(f.ctx, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return h.Number.Uint64(), h.Hash()
}

// check runs the tracker against the current head.
func (f *trackerFixture) check() {
	f.t.Helper()
	n, _ := f.head()
	if err := f.tracker.CheckOnce(f.ctx, n); err != nil {
		f.t.Fatalf("CheckOnce(%d): %v", n, err)
	}
}

func (f *trackerFixture) state(hash common.Hash) string {
	f.t.Helper()
	var s string
	if err := f.db.QueryRowContext(f.ctx, "SELECT state FROM tracked_txs WHERE tx_hash=?", hash.Hex()).Scan(&s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// sendTracked signs, sends and tracks a transfer of units for workflowID.
func (f *trackerFixture) sendTracked(workflowID string, units int64) common.Hash {
	f.t.Helper()
	stx := f.signAndSend(f.request(workflowID, units))
	if err := evm.TrackTx(f.ctx, f.db, chainName, stx.Hash, workflowID); err != nil {
		f.t.Fatal(err)
	}
	if err := evm.TrackTx(f.ctx, f.db, chainName, stx.Hash, workflowID); err != nil { // idempotent
		f.t.Fatalf("tracking again: %v", err)
	}
	return stx.Hash
}

func TestTrackerSeenThenConfirmedOnce(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.sendTracked("wf-track", 42)

	f.check() // in the pool only
	expect(t, f.rec.take(), "wf-track", hash.Hex())

	minedAt := f.sim.Commit()
	bn, _ := f.head()
	f.check()
	expect(t, f.rec.take(), "wf-track", hash.Hex(), want{chain.MilestoneSeen, bn, minedAt, true})
	f.check() // same head: nothing new
	expect(t, f.rec.take(), "wf-track", hash.Hex())

	for i := uint64(1); i < confirmations-1; i++ {
		f.sim.Commit()
		f.check()
		expect(t, f.rec.take(), "wf-track", hash.Hex())
	}
	f.sim.Commit() // the confirmations-th block counting the one it is in
	f.check()
	expect(t, f.rec.take(), "wf-track", hash.Hex(), want{chain.MilestoneConfirmed, bn, minedAt, true})
	if s := f.state(hash); s != "confirmed" {
		t.Fatalf("state %q after confirmation", s)
	}

	f.check()
	f.sim.Commit()
	f.check()
	expect(t, f.rec.take(), "wf-track", hash.Hex())
}

func TestTrackerConfirmsRevertedTransferAsFailed(t *testing.T) {
	f := newTrackerFixture(t)
	// Each fits the balance when signed; together they do not, so the second reverts on chain.
	half := new(big.Int).Div(senderTokens, big.NewInt(2)).Int64()
	ok := f.sendTracked("wf-ok", half+1)
	bad := f.sendTracked("wf-bad", half+1)

	minedAt := f.sim.Commit()
	bn, _ := f.head()
	for range confirmations - 1 {
		f.sim.Commit()
	}
	f.check() // already deep enough: seen and confirmed in one pass
	got := f.rec.take()
	var okGot, badGot []notified
	for _, n := range got {
		if n.workflowID == "wf-ok" {
			okGot = append(okGot, n)
		} else {
			badGot = append(badGot, n)
		}
	}
	expect(t, okGot, "wf-ok", ok.Hex(), want{chain.MilestoneSeen, bn, minedAt, true},
		want{chain.MilestoneConfirmed, bn, minedAt, true})
	expect(t, badGot, "wf-bad", bad.Hex(), want{chain.MilestoneSeen, bn, minedAt, false},
		want{chain.MilestoneConfirmed, bn, minedAt, false})
}

func TestTrackerRetriesFailedNotification(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.sendTracked("wf-flaky", 1)
	minedAt := f.sim.Commit()
	bn, _ := f.head()

	f.rec.mu.Lock()
	f.rec.failNext = errors.New("temporal unavailable")
	f.rec.mu.Unlock()
	if err := f.tracker.CheckOnce(f.ctx, bn); err == nil || !strings.Contains(err.Error(), "temporal unavailable") {
		t.Fatalf("CheckOnce with a failing notifier: %v", err)
	}
	expect(t, f.rec.take(), "wf-flaky", hash.Hex(), want{chain.MilestoneSeen, bn, minedAt, true})
	if s := f.state(hash); s != "pending" {
		t.Fatalf("state %q after a failed notification, want pending", s)
	}
	f.check() // at least once: told again
	expect(t, f.rec.take(), "wf-flaky", hash.Hex(), want{chain.MilestoneSeen, bn, minedAt, true})
}

func TestTrackerStopsWhenOwnerIsGone(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.sendTracked("wf-gone", 1)
	f.rec.gone["wf-gone"] = true
	minedAt := f.sim.Commit()
	bn, _ := f.head()
	f.check()
	expect(t, f.rec.take(), "wf-gone", hash.Hex(), want{chain.MilestoneSeen, bn, minedAt, true})
	if s := f.state(hash); s != "done" {
		t.Fatalf("state %q, want done", s)
	}
	for range confirmations {
		f.sim.Commit()
		f.check()
	}
	expect(t, f.rec.take(), "wf-gone", hash.Hex())
}

// Reorgs. In go-ethereum v1.17.8 simulated.Backend.Fork(parent) does not just
// start a side chain: it calls BlockChain.SetCanonical(parent), so the head
// drops back to parent at once and the dropped blocks' transaction lookups are
// deleted (receipts answer NotFound). The pool re-injects the dropped
// transactions, so the next Commit re-includes them in a new block of the same
// height with another hash (go-ethereum's own TestForkResendTx relies on it).

// mineThenFork mines hash in block N (the tracker sees it there), adds one
// block, then forks back to N-1.
func (f *trackerFixture) mineThenFork(hash common.Hash) (bn uint64, minedAt common.Hash) {
	f.t.Helper()
	parentNumber, parent := f.head()
	minedAt = f.sim.Commit()
	r := f.requireSuccess(hash)
	bn = r.BlockNumber.Uint64()
	if bn != parentNumber+1 || r.BlockHash != minedAt {
		f.t.Fatalf("mined in %d/%s, want %d/%s", bn, r.BlockHash.Hex(), parentNumber+1, minedAt.Hex())
	}
	f.check()
	expect(f.t, f.rec.take(), "wf-reorg", hash.Hex(), want{chain.MilestoneSeen, bn, minedAt, true})
	f.sim.Commit() // one confirmation more on the old branch; still short of confirmations
	f.check()
	expect(f.t, f.rec.take(), "wf-reorg", hash.Hex())

	if err := f.sim.Fork(parent); err != nil {
		f.t.Fatalf("forking at %d: %v", parentNumber, err)
	}
	if n, h := f.head(); n != parentNumber || h != parent {
		f.t.Fatalf("head after Fork is %d/%s, want %d/%s", n, h.Hex(), parentNumber, parent.Hex())
	}
	return bn, minedAt
}

func TestTrackerReorgWhileOutOfChain(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.sendTracked("wf-reorg", 9)
	bn, minedAt := f.mineThenFork(hash)

	if _, err := f.client.TransactionReceipt(f.ctx, hash); !errors.Is(err, ethereum.NotFound) {
		t.Fatalf("receipt after the fork: %v, want NotFound", err)
	}
	f.check()
	expect(t, f.rec.take(), "wf-reorg", hash.Hex(), want{milestone: chain.MilestoneReorged})
	if s := f.state(hash); s != "pending" {
		t.Fatalf("state %q after a reorg, want pending", s)
	}
	f.check() // still out: no second reorged
	expect(t, f.rec.take(), "wf-reorg", hash.Hex())

	// Mine past the old height. The pool re-includes the transfer in the first new block.
	newHash := f.sim.Commit()
	if newHash == minedAt {
		t.Fatal("the new block at the old height has the old hash")
	}
	r := f.requireSuccess(hash)
	if r.BlockNumber.Uint64() != bn || r.BlockHash != newHash {
		t.Fatalf("re-included in %d/%s, want %d/%s", r.BlockNumber, r.BlockHash.Hex(), bn, newHash.Hex())
	}
	f.check()
	expect(t, f.rec.take(), "wf-reorg", hash.Hex(), want{chain.MilestoneSeen, bn, newHash, true})
	for range confirmations - 2 {
		f.sim.Commit()
		f.check()
		expect(t, f.rec.take(), "wf-reorg", hash.Hex())
	}
	f.sim.Commit()
	f.check()
	expect(t, f.rec.take(), "wf-reorg", hash.Hex(), want{chain.MilestoneConfirmed, bn, newHash, true})
	if got := f.tokenBalance(recipient); got.Int64() != 9 {
		t.Fatalf("recipient holds %s after the reorg, want 9", got)
	}
}

func TestTrackerReorgIntoAnotherBlock(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.sendTracked("wf-reorg", 9)
	bn, minedAt := f.mineThenFork(hash)

	// The tracker does not look until the transfer is in a block of the new branch
	// and the new branch is longer than the old one.
	newHash := f.sim.Commit()
	f.sim.Commit()
	f.sim.Commit()
	if n, _ := f.head(); n != bn+2 {
		t.Fatalf("head %d, want %d", n, bn+2)
	}
	r := f.requireSuccess(hash)
	if r.BlockHash != newHash || newHash == minedAt {
		t.Fatalf("re-included in %s, want %s (old block %s)", r.BlockHash.Hex(), newHash.Hex(), minedAt.Hex())
	}
	f.check()
	// The move is reported as a fresh "seen" carrying the new block hash, then
	// confirmed there: the new branch is already deep enough.
	expect(t, f.rec.take(), "wf-reorg", hash.Hex(),
		want{chain.MilestoneSeen, bn, newHash, true}, want{chain.MilestoneConfirmed, bn, newHash, true})
	var stored string
	if err := f.db.QueryRowContext(f.ctx, "SELECT block_hash FROM tracked_txs WHERE tx_hash=?", hash.Hex()).Scan(&stored); err != nil {
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
	f.rec.ch = make(chan notified, 16)
	dial := func(context.Context) (evm.HeadSubscriber, error) { return f.client, nil }
	tr, err := evm.NewTracker(evm.TrackerConfig{Chain: chainName, Confirmations: confirmations, PollInterval: time.Hour},
		f.db, f.client, dial, f.rec, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	hash := f.sendTracked("wf-run", 3)

	ctx, cancel := context.WithCancel(f.ctx)
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
	await := func(m chain.Milestone) notified {
		t.Helper()
		select {
		case n := <-f.rec.ch:
			if n.ev.Milestone != m || n.ev.TxHash != hash.Hex() {
				t.Fatalf("Run delivered %v, want %s", n, m)
			}
			return n
		case <-deadline:
			t.Fatalf("no %s from Run", m)
		}
		return notified{}
	}

	minedAt := f.sim.Commit()
	seen := await(chain.MilestoneSeen) // from the catch-up check on connect, or the head
	if seen.ev.BlockHash != minedAt.Hex() {
		t.Fatalf("seen in %s, want %s", seen.ev.BlockHash, minedAt.Hex())
	}
	for range confirmations - 1 {
		f.sim.Commit()
	}
	confirmed := await(chain.MilestoneConfirmed)
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if confirmed.ev.BlockNumber != seen.ev.BlockNumber || confirmed.ev.BlockHash != minedAt.Hex() || !confirmed.ev.Succeeded {
		t.Fatalf("confirmed %v after %v", confirmed, seen)
	}
	if extra := len(f.rec.ch); extra != 0 {
		t.Fatalf("%d more notifications after the confirmation", extra)
	}
}

// TestTrackerKeepsEachWorkflowsState: two workflows follow one transaction
// (as deposits to two watched addresses do). The first owner being gone
// retires its row only; the other is still told seen and confirmed.
func TestTrackerKeepsEachWorkflowsState(t *testing.T) {
	f := newTrackerFixture(t)
	stx := f.signAndSend(f.request("wf-sender", 5))
	for _, wf := range []string{"wf-stays", "wf-gone"} {
		if err := evm.TrackTx(f.ctx, f.db, chainName, stx.Hash, wf); err != nil {
			t.Fatal(err)
		}
	}
	f.rec.gone["wf-gone"] = true
	minedAt := f.sim.Commit()
	bn, _ := f.head()
	f.check()
	// Both owners are told "seen", in either order: the tracker checks
	// transactions concurrently.
	got := f.rec.take()
	if len(got) != 2 || got[0].workflowID == got[1].workflowID {
		t.Fatalf("notifications %v, want one seen for each of wf-stays and wf-gone", got)
	}
	if got[0].workflowID != "wf-stays" {
		got[0], got[1] = got[1], got[0]
	}
	expect(t, got[:1], "wf-stays", stx.Hash.Hex(), want{chain.MilestoneSeen, bn, minedAt, true})
	expect(t, got[1:], "wf-gone", stx.Hash.Hex(), want{chain.MilestoneSeen, bn, minedAt, true})
	for range confirmations - 1 {
		f.sim.Commit()
	}
	f.check()
	expect(t, f.rec.take(), "wf-stays", stx.Hash.Hex(), want{chain.MilestoneConfirmed, bn, minedAt, true})
	for wf, wantState := range map[string]string{"wf-stays": "confirmed", "wf-gone": "done"} {
		if s := f.trackedState(stx.Hash, wf); s != wantState {
			t.Fatalf("%s is %q, want %q", wf, s, wantState)
		}
	}
}

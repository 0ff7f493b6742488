package watch_test

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/watch"

	"payflow/chain/evm/evmtest"
)

// countingBackend counts the node calls the tracker makes, by method.
// Without blockReceipts it answers eth_getBlockReceipts as a node lacking it.
type countingBackend struct {
	evm.Backend
	noBlockReceipts bool
	mu              sync.Mutex
	calls           map[string]int
}

func newCounting(b evm.Backend) *countingBackend {
	return &countingBackend{Backend: b, calls: map[string]int{}}
}

func (c *countingBackend) count(m string) {
	c.mu.Lock()
	c.calls[m]++
	c.mu.Unlock()
}

// take returns the calls since the last take.
func (c *countingBackend) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.calls
	c.calls = map[string]int{}
	return got
}

func (c *countingBackend) HeaderByNumber(ctx context.Context, n *big.Int) (*types.Header, error) {
	c.count("eth_getBlockByNumber(header)")
	return c.Backend.HeaderByNumber(ctx, n)
}

func (c *countingBackend) TransactionReceipt(ctx context.Context, h common.Hash) (*types.Receipt, error) {
	c.count("eth_getTransactionReceipt")
	return c.Backend.TransactionReceipt(ctx, h)
}

func (c *countingBackend) NonceAt(ctx context.Context, a common.Address, n *big.Int) (uint64, error) {
	c.count("eth_getTransactionCount")
	return c.Backend.NonceAt(ctx, a, n)
}

func (c *countingBackend) BlockNumber(ctx context.Context) (uint64, error) {
	c.count("eth_blockNumber")
	return c.Backend.BlockNumber(ctx)
}

type methodNotFound struct{}

func (methodNotFound) Error() string {
	return "the method eth_getBlockReceipts does not exist/is not available"
}
func (methodNotFound) ErrorCode() int { return -32601 }

var _ rpc.Error = methodNotFound{}

func (c *countingBackend) BlockReceipts(ctx context.Context, b rpc.BlockNumberOrHash) ([]*types.Receipt, error) {
	c.count("eth_getBlockReceipts")
	if c.noBlockReceipts {
		return nil, methodNotFound{}
	}
	return c.Backend.(interface {
		BlockReceipts(context.Context, rpc.BlockNumberOrHash) ([]*types.Receipt, error)
	}).BlockReceipts(ctx, b)
}

func (c *countingBackend) BlockByHash(ctx context.Context, h common.Hash) (*types.Block, error) {
	c.count("eth_getBlockByHash")
	return c.Backend.(interface {
		BlockByHash(context.Context, common.Hash) (*types.Block, error)
	}).BlockByHash(ctx, h)
}

func total(calls map[string]int) int {
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

func show(calls map[string]int) string {
	var parts []string
	for m, n := range calls {
		parts = append(parts, fmt.Sprintf("%s=%d", m, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// countedTracker is a tracker of f's chain over a counting backend.
func (f *trackerFixture) countedTracker(cfg watch.TrackerConfig) (*watch.Tracker, *countingBackend) {
	f.T.Helper()
	cb := newCounting(f.Client)
	cfg.Chain, cfg.Confirmations = evmtest.ChainName, evmtest.Confirmations
	dial := func(context.Context) (watch.HeadSubscriber, error) { return f.Client, nil }
	tr, err := watch.NewTracker(cfg, f.DB, cb, dial, f.Rec, evmtest.DiscardLog())
	if err != nil {
		f.T.Fatal(err)
	}
	return tr, cb
}

func (f *trackerFixture) checkWith(tr *watch.Tracker) {
	f.T.Helper()
	n, _ := f.Head()
	if err := tr.CheckOnce(f.Ctx, n); err != nil {
		f.T.Fatalf("CheckOnce(%d): %v", n, err)
	}
}

// of keeps the deliveries to workflowID, in order.
func of(got []evmtest.Notified, workflowID string) []evmtest.Notified {
	var mine []evmtest.Notified
	for _, n := range got {
		if n.WorkflowID == workflowID {
			mine = append(mine, n)
		}
	}
	return mine
}

// sendTrackedConfirmedOnly signs, sends and tracks a payment's transfer.
func (f *trackerFixture) sendTrackedConfirmedOnly(workflowID string) common.Hash {
	f.T.Helper()
	stx := f.SignAndSend(f.Request(workflowID, 1))
	if err := evm.TrackTxConfirmedOnly(f.Ctx, f.DB, evmtest.ChainName, stx.Hash, workflowID); err != nil {
		f.T.Fatal(err)
	}
	return stx.Hash
}

// TestTrackerPerHeadCallsDoNotGrowWithInFlight: with 10 and then 2,010
// transfers in flight, a head costs the same node calls — the new block's
// header and receipts, the first receipt lookup of a transfer tracked since
// the last head, one nonce per sending wallet. Every real transfer is still
// confirmed exactly once.
func TestTrackerPerHeadCallsDoNotGrowWithInFlight(t *testing.T) {
	f := newTrackerFixture(t)
	tr, cb := f.countedTracker(watch.TrackerConfig{})
	f.insertStuck(10)
	f.checkWith(tr) // start: every open row is looked up once
	cb.take()

	sent := map[string]common.Hash{}
	seq := 0
	track := func() {
		wf := fmt.Sprint("wf-flat-", seq)
		seq++
		sent[wf] = f.sendTrackedConfirmedOnly(wf)
	}
	// head mines the transfer tracked at the previous head and one tracked now,
	// tracks one more that stays in the pool until the next head, and checks.
	head := func() map[string]int {
		track()
		f.Sim.Commit()
		track()
		f.checkWith(tr)
		return cb.take()
	}
	var small []map[string]int
	for range 4 {
		small = append(small, head())
	}

	f.insertStuck2(2000)
	f.checkWith(tr) // the new rows' first look: once each
	if got := cb.take()["eth_getTransactionReceipt"]; got < 2000 {
		t.Fatalf("%d receipt lookups for 2,000 newly tracked rows, want one each", got)
	}
	var large []map[string]int
	for range 4 {
		large = append(large, head())
	}
	for i := range small {
		t.Logf("head %d: 10 in flight: %s; 2,010 in flight: %s", i, show(small[i]), show(large[i]))
		if total(large[i]) != total(small[i]) || total(large[i]) > 5 {
			t.Fatalf("head %d costs %d calls with 2,010 in flight (%s), %d with 10 (%s)", i, total(large[i]),
				show(large[i]), total(small[i]), show(small[i]))
		}
	}

	f.Sim.Commit()
	for range evmtest.Confirmations {
		f.Sim.Commit()
	}
	f.Rec.Take()
	f.checkWith(tr)
	f.Rec.Take()
	// Every real transfer was confirmed once.
	for wf, h := range sent {
		if s := f.TrackedState(h, wf); s != "confirmed" {
			t.Fatalf("%s is %q, want confirmed", wf, s)
		}
	}
}

// insertStuck2 is insertStuck with other hashes (it may be called after it).
func (f *trackerFixture) insertStuck2(n int) {
	f.T.Helper()
	var q strings.Builder
	q.WriteString("INSERT INTO tracked_txs (tx_hash, chain, workflow_id, notify_seen) VALUES ")
	args := make([]any, 0, 3*n)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,FALSE)")
		args = append(args, common.BytesToHash([]byte(fmt.Sprint("more-stuck-", i))).Hex(), evmtest.ChainName, fmt.Sprint("wf-more-", i))
	}
	if _, err := f.DB.ExecContext(f.Ctx, q.String(), args...); err != nil {
		f.T.Fatal(err)
	}
}

// TestTrackerReadsSkippedBlocks: heads were missed (a WebSocket reconnect);
// the next pass reads every block in between, so transfers mined there are
// found in their blocks without a receipt lookup each, then seen and
// confirmed once.
func TestTrackerReadsSkippedBlocks(t *testing.T) {
	f := newTrackerFixture(t)
	tr, cb := f.countedTracker(watch.TrackerConfig{})
	f.checkWith(tr)
	start, _ := f.Head()
	hashes := map[string]common.Hash{}
	blocks := map[string]common.Hash{}
	for i := range 3 {
		wf := fmt.Sprint("wf-gap-", i)
		hashes[wf] = f.SendTracked(wf, 1)
		blocks[wf] = f.Sim.Commit()
	}
	f.Sim.Commit()
	f.Sim.Commit()
	cb.take()
	f.checkWith(tr)
	got := f.Rec.Take()
	for i := range 3 {
		wf := fmt.Sprint("wf-gap-", i)
		bn := start + 1 + uint64(i)
		evmtest.Expect(t, of(got, wf), wf, hashes[wf].Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: blocks[wf], Succeeded: true},
			evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: blocks[wf], Succeeded: true})
	}
	calls := cb.take()
	if calls["eth_getTransactionReceipt"] != 0 || calls["eth_getBlockReceipts"] != 3 ||
		calls["eth_getBlockByNumber(header)"] != 5 {
		t.Fatalf("catching up 5 blocks (3 with transfers) cost %s", show(calls))
	}
	f.Sim.Commit()
	f.checkWith(tr)
	evmtest.Expect(t, f.Rec.Take(), "", "")
}

// TestTrackerTakeoverLosesNothing: a tracker sees one transfer and stops
// (its process dies, or loses the lease) with another in the pool; a third is
// tracked while no tracker runs. A new tracker on the same database tells
// each owner the rest exactly once: no repeated "seen" for the block already
// announced, nothing lost.
func TestTrackerTakeoverLosesNothing(t *testing.T) {
	f := newTrackerFixture(t)
	a, _ := f.countedTracker(watch.TrackerConfig{})
	h1 := f.SendTracked("wf-1", 1)
	b1 := f.Sim.Commit()
	bn1, _ := f.Head()
	f.checkWith(a)
	evmtest.Expect(t, f.Rec.Take(), "wf-1", h1.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn1, BlockHash: b1, Succeeded: true})
	h2 := f.SendTracked("wf-2", 2)
	f.checkWith(a)
	evmtest.Expect(t, f.Rec.Take(), "wf-2", h2.Hex())
	// a is gone.
	h3 := f.SendTracked("wf-3", 3)
	b23 := f.Sim.Commit()
	bn23 := bn1 + 1
	b, _ := f.countedTracker(watch.TrackerConfig{})
	f.checkWith(b)
	got := f.Rec.Take()
	evmtest.Expect(t, of(got, "wf-1"), "wf-1", h1.Hex())
	evmtest.Expect(t, of(got, "wf-2"), "wf-2", h2.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn23, BlockHash: b23, Succeeded: true})
	evmtest.Expect(t, of(got, "wf-3"), "wf-3", h3.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn23, BlockHash: b23, Succeeded: true})
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
		f.checkWith(b)
		got = append(got, f.Rec.Take()...)
	}
	got = got[2:]
	evmtest.Expect(t, of(got, "wf-1"), "wf-1", h1.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn1, BlockHash: b1, Succeeded: true})
	evmtest.Expect(t, of(got, "wf-2"), "wf-2", h2.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn23, BlockHash: b23, Succeeded: true})
	evmtest.Expect(t, of(got, "wf-3"), "wf-3", h3.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn23, BlockHash: b23, Succeeded: true})
	for wf, h := range map[string]common.Hash{"wf-1": h1, "wf-2": h2, "wf-3": h3} {
		if s := f.TrackedState(h, wf); s != "confirmed" {
			t.Fatalf("%s is %q, want confirmed", wf, s)
		}
	}
}

// TestTrackerFindsTransferMinedBeforeItWasTracked: a deposit is tracked after
// its block was read (the listener found it first). Its receipt is looked up
// once; it is seen in its block and confirmed there.
func TestTrackerFindsTransferMinedBeforeItWasTracked(t *testing.T) {
	f := newTrackerFixture(t)
	tr, cb := f.countedTracker(watch.TrackerConfig{})
	stx := f.SignAndSend(f.Request("wf-sender", 6))
	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	f.checkWith(tr)
	f.Sim.Commit()
	f.checkWith(tr)
	if err := evm.TrackTx(f.Ctx, f.DB, evmtest.ChainName, stx.Hash, "wf-deposit"); err != nil {
		t.Fatal(err)
	}
	cb.take()
	f.checkWith(tr)
	evmtest.Expect(t, f.Rec.Take(), "wf-deposit", stx.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	if n := cb.take()["eth_getTransactionReceipt"]; n != 1 {
		t.Fatalf("%d receipt lookups for one newly tracked transfer, want 1", n)
	}
	f.Sim.Commit()
	f.checkWith(tr)
	evmtest.Expect(t, f.Rec.Take(), "wf-deposit", stx.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
}

// TestTrackerRearmedRowIsToldAgain: tracking a confirmed transaction again (a
// workflow reset to before its confirmation) re-arms it: it is told again.
func TestTrackerRearmedRowIsToldAgain(t *testing.T) {
	f := newTrackerFixture(t)
	hash := f.SendTracked("wf-again", 2)
	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
	}
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-again", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true},
		evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	if err := evm.TrackTx(f.Ctx, f.DB, evmtest.ChainName, hash, "wf-again"); err != nil {
		t.Fatal(err)
	}
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-again", hash.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true},
		evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	f.Sim.Commit()
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-again", hash.Hex())
}

// TestTrackerWithoutBlockReceipts: a node lacking eth_getBlockReceipts is
// asked once; then the tracker reads the block's transactions and the
// receipts of the followed ones only.
func TestTrackerWithoutBlockReceipts(t *testing.T) {
	f := newTrackerFixture(t)
	tr, cb := f.countedTracker(watch.TrackerConfig{})
	cb.noBlockReceipts = true
	f.checkWith(tr)
	var hashes []common.Hash
	for i := range 3 {
		hashes = append(hashes, f.SendTracked(fmt.Sprint("wf-nobr-", i), 1))
		f.SignAndSend(f.Request(fmt.Sprint("wf-untracked-", i), 1)) // in the block, not followed
	}
	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	cb.take()
	f.checkWith(tr)
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
		f.checkWith(tr)
	}
	got := f.Rec.Take()
	for i, h := range hashes {
		wf := fmt.Sprint("wf-nobr-", i)
		evmtest.Expect(t, of(got, wf), wf, h.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true},
			evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	}
	calls := cb.take()
	if calls["eth_getBlockReceipts"] != 1 || calls["eth_getBlockByHash"] != 1 || calls["eth_getTransactionReceipt"] != 3 {
		t.Fatalf("calls %s: want eth_getBlockReceipts once, then one block read and a receipt per followed transfer", show(calls))
	}
}

// TestTrackerStartsOverAfterALongGap: more blocks were missed than the
// tracker keeps (256): rather than read them all, it starts over as at start,
// one receipt lookup per open row, and loses nothing: a transfer seen before
// the gap is confirmed once, one mined during it is seen and confirmed.
func TestTrackerStartsOverAfterALongGap(t *testing.T) {
	f := newTrackerFixture(t)
	tr, cb := f.countedTracker(watch.TrackerConfig{})
	h1 := f.SendTracked("wf-before", 1)
	b1 := f.Sim.Commit()
	bn1, _ := f.Head()
	f.checkWith(tr)
	evmtest.Expect(t, f.Rec.Take(), "wf-before", h1.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn1, BlockHash: b1, Succeeded: true})
	h2 := f.SendTracked("wf-during", 2)
	f.checkWith(tr)
	b2 := f.Sim.Commit()
	for range 300 {
		f.Sim.Commit()
	}
	cb.take()
	f.checkWith(tr)
	got := f.Rec.Take()
	evmtest.Expect(t, of(got, "wf-before"), "wf-before", h1.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn1, BlockHash: b1, Succeeded: true})
	evmtest.Expect(t, of(got, "wf-during"), "wf-during", h2.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn1 + 1, BlockHash: b2, Succeeded: true},
		evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn1 + 1, BlockHash: b2, Succeeded: true})
	if calls := cb.take(); total(calls) > 10 {
		t.Fatalf("catching up 301 blocks with 2 open rows cost %s", show(calls))
	}
}

// TestTrackerConfirmsABlockOfPaymentsAtOnce (defect: deadlock): ten
// payflow-signed transfers of ten workflows are found already at confirmed
// depth in the same pass (seen and confirmed at once). Their confirmations are recorded side by side, each retiring its
// workflow's replacements; they used to deadlock in MariaDB, failing the pass
// (and repeating notifications). Each is confirmed once in one pass.
func TestTrackerConfirmsABlockOfPaymentsAtOnce(t *testing.T) {
	f := newTrackerFixture(t)
	tr, _ := f.countedTracker(watch.TrackerConfig{})
	hashes := map[string]common.Hash{}
	for i := range 10 {
		wf := fmt.Sprint("wf-block-", i)
		hashes[wf] = f.SendTracked(wf, 1) // told seen and confirmed
	}
	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
	}
	f.checkWith(tr)
	got := f.Rec.Take()
	for wf, h := range hashes {
		evmtest.Expect(t, of(got, wf), wf, h.Hex(), evmtest.Want{Milestone: chain.MilestoneSeen, BlockNumber: bn, BlockHash: minedAt, Succeeded: true},
			evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	}
}

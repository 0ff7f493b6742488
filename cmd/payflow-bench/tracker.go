package main

import (
	"context"
	"crypto/ecdsa"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/watch"
	"payflow/internal/stacktest"
)

// The tracker phase: node calls and milliseconds per new head with 100 and
// with 10,000 transfers in flight. (The per-transfer algorithm the tracker
// replaced is gone; its figures are in docs/benchmarks.md.) The chain is
// go-ethereum's simulated backend in this process (said so in the output),
// so the milliseconds are the tracker's own work plus an in-process node: a
// real node over a socket adds a round trip per call. The database is the
// stack's MariaDB (a scratch database).
//
// In flight are open tracked_txs rows: payflow-signed transfers from four hot
// wallets that no block holds yet, plus, on every head, 20 real transfers
// mined in that head's block and one more left in the pool (tracked before
// the block is mined, so the per-block tracker finds them in the block; the
// pool one costs it one receipt lookup, once).

const (
	trackerConfirmations = 3
	trackerPerHead       = 20
	trackerWallets       = 4
)

// callCounter is an evm.Backend that counts the calls the tracker makes.
type callCounter struct {
	evm.Backend
	n        atomic.Int64
	mu       sync.Mutex
	byMethod map[string]int64
}

func (c *callCounter) count(m string) {
	c.n.Add(1)
	c.mu.Lock()
	c.byMethod[m]++
	c.mu.Unlock()
}

func (c *callCounter) HeaderByNumber(ctx context.Context, n *big.Int) (*types.Header, error) {
	c.count("header")
	return c.Backend.HeaderByNumber(ctx, n)
}

func (c *callCounter) TransactionReceipt(ctx context.Context, h common.Hash) (*types.Receipt, error) {
	c.count("receipt")
	return c.Backend.TransactionReceipt(ctx, h)
}

func (c *callCounter) NonceAt(ctx context.Context, a common.Address, n *big.Int) (uint64, error) {
	c.count("nonce")
	return c.Backend.NonceAt(ctx, a, n)
}

func (c *callCounter) BlockNumber(ctx context.Context) (uint64, error) {
	c.count("blockNumber")
	return c.Backend.BlockNumber(ctx)
}

func (c *callCounter) BlockReceipts(ctx context.Context, b rpc.BlockNumberOrHash) ([]*types.Receipt, error) {
	c.count("blockReceipts")
	return c.Backend.(interface {
		BlockReceipts(context.Context, rpc.BlockNumberOrHash) ([]*types.Receipt, error)
	}).BlockReceipts(ctx, b)
}

func (c *callCounter) BlockByHash(ctx context.Context, h common.Hash) (*types.Block, error) {
	c.count("block")
	return c.Backend.(interface {
		BlockByHash(context.Context, common.Hash) (*types.Block, error)
	}).BlockByHash(ctx, h)
}

// confirmCounter is a Notifier counting "confirmed" per workflow.
type confirmCounter struct {
	mu        sync.Mutex
	confirmed map[string]int
}

func (c *confirmCounter) NotifyTx(_ context.Context, wf string, ev chain.TxEvent) error {
	if ev.Milestone == chain.MilestoneConfirmed {
		c.mu.Lock()
		c.confirmed[wf]++
		c.mu.Unlock()
	}
	return nil
}

// trackerRun is one size: means per head.
type trackerRun struct {
	inFlight int
	calls    float64
	perHead  time.Duration
	mix      string // calls per head by method
}

func (r trackerRun) String() string {
	return fmt.Sprintf("%.0f RPCs, %.1f ms", r.calls, float64(r.perHead)/float64(time.Millisecond))
}

type trackerBench struct {
	ctx    context.Context
	db     *sql.DB
	sim    *simulated.Backend
	client simulated.Client
	key    *ecdsa.PrivateKey
	from   common.Address
	nonce  uint64
	seq    int
	stuck  int
	sent   map[string]bool // workflows of the real transfers tracked
	notify *confirmCounter
}

// benchTracker measures the tracker at 100 and 10,000 in flight.
func benchTracker(ctx context.Context, st *stacktest.Stack, heads int) []result {
	fail := func(err error) []result {
		return []result{{Name: "tracker per head", Measured: "error", Verdict: "FAIL (correctness)", Note: err.Error()}}
	}
	db, drop, err := benchDB(ctx, st, "tracker")
	if err != nil {
		return fail(err)
	}
	defer drop()
	key, _ := crypto.GenerateKey()
	from := crypto.PubkeyToAddress(key.PublicKey)
	ether := new(big.Int).Exp(big.NewInt(10), big.NewInt(24), nil)
	sim := simulated.NewBackend(types.GenesisAlloc{from: {Balance: ether}})
	defer sim.Close()
	if err := awaitIndexer(ctx, sim); err != nil {
		return fail(err)
	}
	b := &trackerBench{ctx: ctx, db: db, sim: sim, client: sim.Client(), key: key, from: from,
		sent: map[string]bool{}, notify: &confirmCounter{confirmed: map[string]int{}}}
	var block []trackerRun
	for _, n := range []int{100, 10_000} {
		if err := b.addStuck(n - b.stuck); err != nil {
			return fail(err)
		}
		bl, err := b.run(heads)
		if err != nil {
			return fail(err)
		}
		block = append(block, bl)
	}
	for wf := range b.sent {
		if c := b.notify.confirmed[wf]; c != 1 {
			return fail(fmt.Errorf("%s was confirmed %d times, want once", wf, c))
		}
	}
	var rows []result
	for _, r := range block {
		flat := r.calls <= block[0].calls
		rows = append(rows, result{
			Name:     fmt.Sprintf("tracker per head, %s in flight", thousands(r.inFlight)),
			Measured: r.String(),
			Target:   "flat 100 → 10,000",
			Verdict:  verdict(flat),
			Note: fmt.Sprintf("calls per head: %s; simulated node in-process, %d heads, %d transfers mined per head, %d payflow wallets with transfers in flight",
				r.mix, heads, trackerPerHead, trackerWallets),
		})
	}
	return rows
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	return strings.Join(append([]string{s}, out...), ",")
}

// addStuck tracks n payflow-signed transfers that no block holds.
func (b *trackerBench) addStuck(n int) error {
	rows := make([]evm.InFlight, n)
	for i := range rows {
		k := b.stuck + i
		rows[i] = evm.InFlight{WorkflowID: fmt.Sprint("wf-in-flight-", k),
			Hash: crypto.Keccak256Hash([]byte(fmt.Sprint("in-flight-", k))),
			From: common.BigToAddress(big.NewInt(int64(0xfee0 + k%trackerWallets))), Nonce: uint64(1_000_000 + k)}
	}
	if err := evm.StoreInFlight(b.ctx, b.db, "ETH", rows); err != nil {
		return err
	}
	b.stuck += n
	return nil
}

// transfer signs, sends and tracks one real transfer (confirmed only).
func (b *trackerBench) transfer() error {
	to := common.BigToAddress(big.NewInt(int64(0xbeef + b.seq)))
	tx, err := types.SignNewTx(b.key, types.LatestSignerForChainID(big.NewInt(1337)), &types.DynamicFeeTx{
		ChainID: big.NewInt(1337), Nonce: b.nonce, GasTipCap: big.NewInt(1_000_000_000),
		GasFeeCap: big.NewInt(100_000_000_000), Gas: 21000, To: &to, Value: big.NewInt(1)})
	if err != nil {
		return err
	}
	if err := b.client.SendTransaction(b.ctx, tx); err != nil {
		return err
	}
	b.nonce++
	wf := fmt.Sprint("wf-real-", b.seq)
	b.seq++
	b.sent[wf] = true
	return evm.TrackTxConfirmedOnly(b.ctx, b.db, "ETH", tx.Hash(), wf)
}

// run measures heads heads, after a warm-up head (the tracker's start looks
// every open row up once), then mines until every real transfer it tracked
// is settled.
func (b *trackerBench) run(heads int) (trackerRun, error) {
	cc := &callCounter{Backend: b.client, byMethod: map[string]int64{}}
	tr, err := watch.NewTracker(watch.TrackerConfig{Chain: "ETH", Confirmations: trackerConfirmations},
		b.db, cc, nil, b.notify, nil)
	if err != nil {
		return trackerRun{}, err
	}
	check := func() (time.Duration, error) {
		n, err := b.client.BlockNumber(b.ctx)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		err = tr.CheckOnce(b.ctx, n)
		return time.Since(start), err
	}
	tracked, err := evm.NewTracked("ETH", b.db)
	if err != nil {
		return trackerRun{}, err
	}
	open, err := tracked.OpenCount(b.ctx)
	if err != nil {
		return trackerRun{}, err
	}
	for range open/watch.DefaultTrackerBatch + 1 { // the first looks take BatchSize rows a pass
		if _, err := check(); err != nil {
			return trackerRun{}, err
		}
	}
	var spent time.Duration
	var calls int64
	for range heads {
		for range trackerPerHead {
			if err := b.transfer(); err != nil {
				return trackerRun{}, err
			}
		}
		b.sim.Commit()
		if err := b.transfer(); err != nil { // waits in the pool for the next head
			return trackerRun{}, err
		}
		if len(cc.byMethod) > 0 && calls == 0 {
			cc.mu.Lock()
			cc.byMethod = map[string]int64{} // count the measured heads only
			cc.mu.Unlock()
		}
		before := cc.n.Load()
		d, err := check()
		if err != nil {
			return trackerRun{}, err
		}
		spent += d
		calls += cc.n.Load() - before
	}
	cc.mu.Lock()
	var mix []string
	for m, n := range cc.byMethod {
		mix = append(mix, fmt.Sprintf("%s %.1f", m, float64(n)/float64(heads)))
	}
	cc.mu.Unlock()
	sort.Strings(mix)
	for range trackerConfirmations + 1 {
		b.sim.Commit()
		if _, err := check(); err != nil {
			return trackerRun{}, err
		}
	}
	return trackerRun{inFlight: open, calls: float64(calls) / float64(heads), perHead: spent / time.Duration(heads),
		mix: strings.Join(mix, ", ")}, nil
}

// awaitIndexer mines until the new node's transaction indexer answers
// "not found" rather than "indexing is in progress".
func awaitIndexer(ctx context.Context, sim *simulated.Backend) error {
	var err error
	for range 100 {
		sim.Commit()
		if _, err = sim.Client().TransactionReceipt(ctx, common.Hash{1}); errors.Is(err, ethereum.NotFound) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the simulated node's transaction index is not ready: %w", err)
}

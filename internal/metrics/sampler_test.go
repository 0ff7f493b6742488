package metrics_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"payflow/activities"
	"payflow/answers"
	"payflow/chain/evm"
	"payflow/config"
	"payflow/internal/metrics"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// node is a chain node of a fixed head whose block times are given.
type node struct {
	mu    sync.Mutex
	head  uint64
	times map[uint64]time.Time
	err   error
}

func (n *node) BlockNumber(context.Context) (uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.head, n.err
}

func (n *node) BlockTime(_ context.Context, number uint64) (time.Time, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return time.Time{}, n.err
	}
	return time.Unix(n.times[number].Unix(), 0), nil
}

// balances hands out fixed balances: wei per owner, units per (token, owner).
type balances struct {
	wei   map[common.Address]*big.Int
	units map[[2]common.Address]*big.Int
}

func (b balances) Balance(_ context.Context, token, owner string, _ *big.Int) (*big.Int, error) {
	if token == "" {
		if v, ok := b.wei[common.HexToAddress(owner)]; ok {
			return v, nil
		}
		return new(big.Int), nil
	}
	if v, ok := b.units[[2]common.Address{common.HexToAddress(token), common.HexToAddress(owner)}]; ok {
		return v, nil
	}
	return new(big.Int), nil
}

func addr(n int) string { return fmt.Sprintf("0x%040x", n) }
func hash(n int) string { return fmt.Sprintf("0x%064x", n) }

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	_, err := db.Exec(q, args...)
	require.NoError(t, err, q)
}

// signed stores a signed transaction on ETH; tracked follows it in state,
// tracked ago.
func signed(t *testing.T, db *sql.DB, wf, step string, attempt int, from string, nonce uint64, h, state string) {
	t.Helper()
	signedOn(t, db, "ETH", wf, step, attempt, from, nonce, h, state)
}

func signedOn(t *testing.T, db *sql.DB, chain, wf, step string, attempt int, from string, nonce uint64, h, state string) {
	t.Helper()
	exec(t, db, `INSERT INTO signed_txs (workflow_id, step, attempt, chain, from_address, to_address, nonce, tx_hash, raw,
		max_fee_wei, tip_wei, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		wf, step, attempt, chain, from, addr(999), nonce, h, []byte{1}, 1, 1, state)
}

func tracked(t *testing.T, db *sql.DB, h, wf, state string, ago time.Duration) {
	t.Helper()
	trackedOn(t, db, "ETH", h, wf, state, ago)
}

func trackedOn(t *testing.T, db *sql.DB, chain, h, wf, state string, ago time.Duration) {
	t.Helper()
	exec(t, db, `INSERT INTO tracked_txs (tx_hash, chain, workflow_id, state, created_at)
		VALUES (?,?,?,?, CURRENT_TIMESTAMP(6) - INTERVAL ? MICROSECOND)`, h, chain, wf, state, ago.Microseconds())
}

// wired sets cfg's readings of other packages' tables to their owners, as
// the worker does.
func wired(cfg metrics.SamplerConfig, db *sql.DB) metrics.SamplerConfig {
	wallets, ledg := ledger.NewWallets(db, nil), ledger.New(db)
	cfg.ChainStore = evm.NewStats(db)
	cfg.Wallets = wallets.OfKinds
	cfg.WalletKinds = wallets.KindNames
	cfg.Mismatches = ledg.Mismatches
	cfg.Failing = func(ctx context.Context, chain string) (int64, error) { return activities.FailingCount(ctx, db, chain) }
	cfg.Outbox = answers.New(db, nil, nil)
	return cfg
}

const usdtAddr = "0x00000000000000000000000000000000000000aa"

func TestSamplerReadsTheLedgerAndTheNode(t *testing.T) {
	db := stacktest.TestDB(t, "metrics")
	require.NoError(t, ledger.Migrate(context.Background(), db))
	hot, coll, gas, dep := addr(1), addr(2), addr(3), addr(4)
	for _, w := range [][2]string{{hot, "hot"}, {coll, "collection"}, {gas, "gas"}, {dep, "deposit"}} {
		exec(t, db, "INSERT INTO wallets (chain, address, kind) VALUES ('ETH',?,?)", w[0], w[1])
	}
	// withdraw-1: sent an hour ago and replaced, nothing mined: in flight
	// once, stuck, one nonce of the hot lane.
	signed(t, db, "withdraw-1", "transfer", 0, hot, 0, hash(1), "sent")
	signed(t, db, "withdraw-1", "transfer", 1, hot, 0, hash(2), "sent")
	tracked(t, db, hash(1), "withdraw-1", "pending", time.Hour)
	tracked(t, db, hash(2), "withdraw-1", "pending", 5*time.Minute)
	// pay-2: mined, not confirmed yet: in flight, not stuck, not in the lane.
	signed(t, db, "pay-2", "transfer", 0, hot, 1, hash(3), "sent")
	tracked(t, db, hash(3), "pay-2", "seen", time.Minute)
	// A sweep two hours old: the oldest in flight, a deposit lane, never a stuck payment.
	signed(t, db, "sweep-3", "sweep-USDT", 0, dep, 0, hash(4), "sent")
	tracked(t, db, hash(4), "sweep-3", "pending", 2*time.Hour)
	// withdraw-4: signed, never broadcast: blocks the hot lane, not in flight.
	signed(t, db, "withdraw-4", "transfer", 0, hot, 2, hash(5), "signed")
	// Confirmed, and healed (failed): neither in flight nor in a lane.
	signed(t, db, "withdraw-5", "transfer", 0, coll, 0, hash(6), "sent")
	tracked(t, db, hash(6), "withdraw-5", "confirmed", 3*time.Hour)
	signed(t, db, "withdraw-6", "transfer", 0, coll, 1, hash(7), "failed")
	// A deposit tracked for a Deposit workflow: not a payflow transfer.
	tracked(t, db, hash(8), "deposit-ETH-x-0", "pending", 4*time.Hour)

	exec(t, db, "INSERT INTO outbox (message_id, flow, body) VALUES ('a','pay','{}'),('b','pay','{}')")
	exec(t, db, "INSERT INTO outbox (message_id, flow, body, published_at) VALUES ('c','pay','{}', NOW(6))")
	exec(t, db, "INSERT INTO chain_cursor (chain, block_number, block_hash) VALUES ('ETH', 90, ?)", hash(90))
	recon := func(run, address, status string, ago time.Duration) {
		exec(t, db, `INSERT INTO reconciliations (run_id, chain, address, symbol, block_number, block_hash, ledger_total,
			chain_balance, difference, status, created_at) VALUES (?,'ETH',?,'USDT',1,?,0,0,0,?, CURRENT_TIMESTAMP(6) - INTERVAL ? SECOND)`,
			run, address, hash(1), status, int(ago.Seconds()))
	}
	exec(t, db, `INSERT INTO failing_steps (workflow_id, chain, activity, error, attempts) VALUES
		('withdraw-4','ETH','SignTransfer','node down',6), ('pay-9','BSC','SignTransfer','node down',6)`)
	exec(t, db, `INSERT INTO failing_steps (workflow_id, chain, activity, error, attempts, last_at) VALUES
		('withdraw-7','ETH','Broadcast','node down',9, CURRENT_TIMESTAMP(6) - INTERVAL 1 HOUR)`)
	recon("run-1", hot, "mismatch", time.Hour)
	recon("run-1", coll, "mismatch", time.Hour)
	recon("run-2", hot, "mismatch", time.Minute)
	recon("run-2", coll, "matched", time.Minute)

	n := &node{head: 100, times: map[uint64]time.Time{91: time.Now().Add(-50 * time.Second)}}
	usdt := common.HexToAddress(usdtAddr)
	ether := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	bal := balances{
		wei: map[common.Address]*big.Int{common.HexToAddress(gas): new(big.Int).Mul(big.NewInt(3), ether),
			common.HexToAddress(hot): new(big.Int).Div(ether, big.NewInt(2))},
		units: map[[2]common.Address]*big.Int{{usdt, common.HexToAddress(hot)}: big.NewInt(1_500_000),
			{usdt, common.HexToAddress(coll)}: big.NewInt(250_000_000)},
	}
	eth := config.ChainConfig{Native: config.NativeCoin{Symbol: "ETH"},
		Tokens: map[string]config.Token{"USDT": {Address: usdtAddr, Decimals: 6}}}
	s := metrics.NewSampler(wired(metrics.SamplerConfig{Chains: []metrics.SamplerChain{{Name: "ETH", Assets: eth, Node: n, Balances: bal}},
		PaymentStep: "transfer", ConfirmTimeout: 30 * time.Minute}, db), db, nil)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(s))
	require.NoError(t, s.Sample(context.Background()))

	v := values(t, reg)
	require.Equal(t, 3.0, v[`payflow_transfers_in_flight{chain="ETH"}`])
	age := v[`payflow_transfer_oldest_age_seconds{chain="ETH"}`]
	require.True(t, age >= 7190 && age < 7500, "oldest age %v: the sweep's two hours", age)
	require.Equal(t, 1.0, v[`payflow_stuck_payments{chain="ETH"}`])
	require.Equal(t, 1.0, v[`payflow_failing_steps{chain="ETH"}`], "ETH's, recorded within 2 minutes")
	require.Equal(t, 2.0, v[`payflow_nonce_lane_backlog{chain="ETH",wallet_kind="hot"}`])
	require.Equal(t, 1.0, v[`payflow_nonce_lane_backlog{chain="ETH",wallet_kind="deposit"}`])
	require.Equal(t, 0.0, v[`payflow_nonce_lane_backlog{chain="ETH",wallet_kind="collection"}`])
	require.Contains(t, v, `payflow_nonce_lane_backlog{chain="ETH",wallet_kind="gas"}`)
	require.Equal(t, 2.0, v[`payflow_outbox_backlog`])
	require.Equal(t, 100.0, v[`payflow_listener_head_block{chain="ETH"}`])
	require.Equal(t, 1.0, v[`payflow_node_up{chain="ETH"}`])
	require.Equal(t, 10.0, v[`payflow_listener_lag_blocks{chain="ETH"}`])
	lag := v[`payflow_listener_lag_seconds{chain="ETH"}`]
	require.True(t, lag >= 50 && lag < 600, "lag %v: block 91 is 50 s old", lag)
	require.Equal(t, 1.0, v[`payflow_reconciliation_mismatches{chain="ETH"}`], "the latest run's")
	require.Equal(t, 3.0, v[`payflow_reconciliation_mismatches_total{chain="ETH"}`])
	require.Equal(t, 1.5, v[`payflow_wallet_balance{chain="ETH",kind="hot",symbol="USDT"}`])
	require.Equal(t, 0.5, v[`payflow_wallet_balance{chain="ETH",kind="hot",symbol="native"}`])
	require.Equal(t, 250.0, v[`payflow_wallet_balance{chain="ETH",kind="collection",symbol="USDT"}`])
	require.Equal(t, 3.0, v[`payflow_wallet_balance{chain="ETH",kind="gas",symbol="native"}`])
	require.NotContains(t, v, `payflow_wallet_balance{chain="ETH",kind="deposit",symbol="USDT"}`)
	require.NotContains(t, v, `payflow_wallet_balance{chain="ETH",kind="gas",symbol="USDT"}`, "gas wallets: native only")

	// The node goes away: the listener keeps its last readings, the rest moves on.
	n.mu.Lock()
	n.err = errors.New("connection refused")
	n.mu.Unlock()
	exec(t, db, "UPDATE outbox SET published_at = NOW(6)")
	err := s.Sample(context.Background())
	require.ErrorContains(t, err, "ETH: listener")
	require.NotContains(t, err.Error(), "transfers")
	v = values(t, reg)
	require.Equal(t, 0.0, v[`payflow_outbox_backlog`])
	require.Equal(t, 10.0, v[`payflow_listener_lag_blocks{chain="ETH"}`])
	require.Equal(t, 0.0, v[`payflow_node_up{chain="ETH"}`])
	require.Equal(t, 1.5, v[`payflow_wallet_balance{chain="ETH",kind="hot",symbol="USDT"}`], "balances kept")
	for k := range v {
		require.False(t, strings.Contains(k, "0x"), "no address or hash as a label: %s", k)
	}
}

// Before the listener ever ran (no cursor), only the head is reported; no
// wallets of a kind, no balance series of it.
func TestSamplerWithoutCursorOrWallets(t *testing.T) {
	db := stacktest.TestDB(t, "metrics")
	require.NoError(t, ledger.Migrate(context.Background(), db))
	s := metrics.NewSampler(wired(metrics.SamplerConfig{Chains: []metrics.SamplerChain{{Name: "ETH", Node: &node{head: 7}, Balances: balances{}}},
		PaymentStep: "transfer", ConfirmTimeout: time.Minute}, db), db, nil)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(s))
	require.NoError(t, s.Sample(context.Background()))
	v := values(t, reg)
	require.Equal(t, 7.0, v[`payflow_listener_head_block{chain="ETH"}`])
	require.NotContains(t, v, `payflow_listener_lag_blocks{chain="ETH"}`)
	require.Equal(t, 0.0, v[`payflow_transfers_in_flight{chain="ETH"}`])
	require.Equal(t, 0.0, v[`payflow_transfer_oldest_age_seconds{chain="ETH"}`])
	require.Equal(t, 0.0, v[`payflow_reconciliation_mismatches{chain="ETH"}`])
	for k := range v {
		require.False(t, strings.HasPrefix(k, "payflow_wallet_balance"), k)
	}
}

// Two chains in one Sampler: every per-chain series carries its chain, the
// same address is a wallet on both and reported on each with that chain's
// balances, the outbox (not per chain) is one series. When one chain's node
// fails, that chain keeps its node readings (and says so in
// payflow_node_up) while its database readings and the other chain's
// readings move on.
func TestSamplerServesEveryChain(t *testing.T) {
	db := stacktest.TestDB(t, "metrics")
	require.NoError(t, ledger.Migrate(context.Background(), db))
	hot, coll, gas := addr(1), addr(2), addr(3)
	for _, w := range [][3]string{{"ETH", hot, "hot"}, {"ETH", gas, "gas"}, {"BSC", hot, "hot"}, {"BSC", coll, "collection"}} {
		exec(t, db, "INSERT INTO wallets (chain, address, kind) VALUES (?,?,?)", w[0], w[1], w[2])
	}
	// ETH: one transfer in flight. BSC: two, one of them a stuck payment.
	signedOn(t, db, "ETH", "withdraw-e1", "transfer", 0, hot, 0, hash(1), "sent")
	trackedOn(t, db, "ETH", hash(1), "withdraw-e1", "pending", time.Minute)
	signedOn(t, db, "BSC", "withdraw-b1", "transfer", 0, hot, 0, hash(11), "sent")
	trackedOn(t, db, "BSC", hash(11), "withdraw-b1", "pending", time.Hour)
	signedOn(t, db, "BSC", "pay-b2", "transfer", 0, hot, 1, hash(12), "sent")
	trackedOn(t, db, "BSC", hash(12), "pay-b2", "seen", time.Minute)
	exec(t, db, "INSERT INTO chain_cursor (chain, block_number, block_hash) VALUES ('ETH', 90, ?), ('BSC', 500, ?)", hash(90), hash(500))
	exec(t, db, `INSERT INTO reconciliations (run_id, chain, address, symbol, block_number, block_hash, ledger_total,
		chain_balance, difference, status) VALUES ('run-b', 'BSC', ?, 'USDC', 1, ?, 0, 0, 0, 'mismatch')`, hot, hash(1))
	exec(t, db, "INSERT INTO outbox (message_id, flow, body) VALUES ('a','pay','{}')")

	ether := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	ethUSDT, bscUSDT, bscUSDC := common.HexToAddress(usdtAddr), common.HexToAddress(addr(0xb1)), common.HexToAddress(addr(0xb2))
	ethNode := &node{head: 100, times: map[uint64]time.Time{91: time.Now().Add(-30 * time.Second)}}
	bscNode := &node{head: 503, times: map[uint64]time.Time{501: time.Now().Add(-9 * time.Second)}}
	ethBal := balances{
		wei:   map[common.Address]*big.Int{common.HexToAddress(hot): ether, common.HexToAddress(gas): new(big.Int).Mul(big.NewInt(2), ether)},
		units: map[[2]common.Address]*big.Int{{ethUSDT, common.HexToAddress(hot)}: big.NewInt(7_000_000)},
	}
	bscBal := balances{
		wei: map[common.Address]*big.Int{common.HexToAddress(hot): new(big.Int).Mul(big.NewInt(5), ether)},
		units: map[[2]common.Address]*big.Int{{bscUSDT, common.HexToAddress(hot)}: new(big.Int).Mul(big.NewInt(3), ether),
			{bscUSDC, common.HexToAddress(coll)}: big.NewInt(4_000_000)},
	}
	chains := []metrics.SamplerChain{
		{Name: "ETH", Node: ethNode, Balances: ethBal, Assets: config.ChainConfig{Native: config.NativeCoin{Symbol: "ETH"},
			Tokens: map[string]config.Token{"USDT": {Address: usdtAddr, Decimals: 6}}}},
		{Name: "BSC", Node: bscNode, Balances: bscBal, Assets: config.ChainConfig{Native: config.NativeCoin{Symbol: "BNB"},
			Tokens: map[string]config.Token{"USDT": {Address: addr(0xb1), Decimals: 18}, "USDC": {Address: addr(0xb2), Decimals: 6}}}},
	}
	s := metrics.NewSampler(wired(metrics.SamplerConfig{Chains: chains, PaymentStep: "transfer", ConfirmTimeout: 30 * time.Minute}, db), db, nil)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(s))
	require.NoError(t, s.Sample(context.Background()))

	v := values(t, reg) // Gather fails on a series emitted twice
	require.Equal(t, 1.0, v[`payflow_outbox_backlog`])
	require.Equal(t, 1.0, v[`payflow_transfers_in_flight{chain="ETH"}`])
	require.Equal(t, 2.0, v[`payflow_transfers_in_flight{chain="BSC"}`])
	require.Equal(t, 0.0, v[`payflow_stuck_payments{chain="ETH"}`])
	require.Equal(t, 1.0, v[`payflow_stuck_payments{chain="BSC"}`])
	require.Equal(t, 1.0, v[`payflow_nonce_lane_backlog{chain="ETH",wallet_kind="hot"}`])
	require.Equal(t, 1.0, v[`payflow_nonce_lane_backlog{chain="BSC",wallet_kind="hot"}`], "the seen one is mined")
	require.Equal(t, 100.0, v[`payflow_listener_head_block{chain="ETH"}`])
	require.Equal(t, 503.0, v[`payflow_listener_head_block{chain="BSC"}`])
	require.Equal(t, 10.0, v[`payflow_listener_lag_blocks{chain="ETH"}`])
	require.Equal(t, 3.0, v[`payflow_listener_lag_blocks{chain="BSC"}`])
	require.Equal(t, 1.0, v[`payflow_node_up{chain="ETH"}`])
	require.Equal(t, 1.0, v[`payflow_node_up{chain="BSC"}`])
	require.Equal(t, 0.0, v[`payflow_reconciliation_mismatches{chain="ETH"}`])
	require.Equal(t, 1.0, v[`payflow_reconciliation_mismatches{chain="BSC"}`])
	// The same hot address on both chains: each chain's balances, its own tokens.
	require.Equal(t, 1.0, v[`payflow_wallet_balance{chain="ETH",kind="hot",symbol="native"}`])
	require.Equal(t, 7.0, v[`payflow_wallet_balance{chain="ETH",kind="hot",symbol="USDT"}`])
	require.NotContains(t, v, `payflow_wallet_balance{chain="ETH",kind="hot",symbol="USDC"}`)
	require.Equal(t, 2.0, v[`payflow_wallet_balance{chain="ETH",kind="gas",symbol="native"}`])
	require.Equal(t, 5.0, v[`payflow_wallet_balance{chain="BSC",kind="hot",symbol="native"}`])
	require.Equal(t, 3.0, v[`payflow_wallet_balance{chain="BSC",kind="hot",symbol="USDT"}`], "18 decimals on BSC")
	require.Equal(t, 0.0, v[`payflow_wallet_balance{chain="BSC",kind="hot",symbol="USDC"}`])
	require.Equal(t, 4.0, v[`payflow_wallet_balance{chain="BSC",kind="collection",symbol="USDC"}`])
	require.NotContains(t, v, `payflow_wallet_balance{chain="BSC",kind="gas",symbol="native"}`, "BSC has no gas wallet")

	// BSC's node goes away; ETH's head moves on, and so do BSC's ledger readings.
	bscNode.mu.Lock()
	bscNode.err = errors.New("connection refused")
	bscNode.mu.Unlock()
	ethNode.mu.Lock()
	ethNode.head = 105
	ethNode.mu.Unlock()
	signedOn(t, db, "BSC", "withdraw-b3", "transfer", 0, hot, 2, hash(13), "sent")
	trackedOn(t, db, "BSC", hash(13), "withdraw-b3", "pending", time.Second)
	exec(t, db, "UPDATE outbox SET published_at = NOW(6)")
	err := s.Sample(context.Background())
	require.ErrorContains(t, err, "BSC: listener")
	require.ErrorContains(t, err, "BSC: balances")
	require.NotContains(t, err.Error(), "ETH")
	v = values(t, reg)
	require.Equal(t, 105.0, v[`payflow_listener_head_block{chain="ETH"}`], "the other chain is fresh")
	require.Equal(t, 15.0, v[`payflow_listener_lag_blocks{chain="ETH"}`])
	require.Equal(t, 1.0, v[`payflow_node_up{chain="ETH"}`])
	require.Equal(t, 0.0, v[`payflow_node_up{chain="BSC"}`])
	require.Equal(t, 503.0, v[`payflow_listener_head_block{chain="BSC"}`], "kept")
	require.Equal(t, 3.0, v[`payflow_listener_lag_blocks{chain="BSC"}`], "kept")
	require.Equal(t, 5.0, v[`payflow_wallet_balance{chain="BSC",kind="hot",symbol="native"}`], "kept")
	require.Equal(t, 3.0, v[`payflow_transfers_in_flight{chain="BSC"}`], "BSC's ledger readings are fresh")
	require.Equal(t, 0.0, v[`payflow_outbox_backlog`])

	// It comes back.
	bscNode.mu.Lock()
	bscNode.err = nil
	bscNode.head = 504
	bscNode.mu.Unlock()
	require.NoError(t, s.Sample(context.Background()))
	v = values(t, reg)
	require.Equal(t, 1.0, v[`payflow_node_up{chain="BSC"}`])
	require.Equal(t, 504.0, v[`payflow_listener_head_block{chain="BSC"}`])
	for k := range v {
		require.False(t, strings.Contains(k, "0x"), "no address or hash as a label: %s", k)
	}
}

// hangingNode never answers: a node that accepts the connection and then
// stalls. It returns only when the call's context ends.
type hangingNode struct{ calls, returned atomic.Int32 }

func (h *hangingNode) BlockNumber(ctx context.Context) (uint64, error) {
	h.calls.Add(1)
	defer h.returned.Add(1)
	<-ctx.Done()
	return 0, ctx.Err()
}

func (h *hangingNode) BlockTime(ctx context.Context, _ uint64) (time.Time, error) {
	<-ctx.Done()
	return time.Time{}, ctx.Err()
}

// One chain's node stalls inside a sample (its Timeout far away): Run keeps
// sampling the other chain, again and again, meanwhile.
func TestSamplerStalledNodeDelaysOnlyItsChain(t *testing.T) {
	db := stacktest.TestDB(t, "metrics")
	require.NoError(t, ledger.Migrate(context.Background(), db))
	ethNode := &node{head: 100}
	bsc := &hangingNode{}
	s := metrics.NewSampler(wired(metrics.SamplerConfig{Chains: []metrics.SamplerChain{
		{Name: "ETH", Node: ethNode, Balances: balances{}},
		{Name: "BSC", Node: bsc, Balances: balances{}},
	}, PaymentStep: "transfer", ConfirmTimeout: time.Minute, Interval: 10 * time.Millisecond, Timeout: time.Hour}, db), db, nil)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(s))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	head := func(chain string) (float64, bool) {
		v, ok := values(t, reg)[`payflow_listener_head_block{chain="`+chain+`"}`]
		return v, ok
	}
	require.Eventually(t, func() bool { h, _ := head("ETH"); return h == 100 }, time.Minute, 5*time.Millisecond)
	ethNode.mu.Lock()
	ethNode.head = 101
	ethNode.mu.Unlock()
	require.Eventually(t, func() bool { h, _ := head("ETH"); return h == 101 }, time.Minute, 5*time.Millisecond)

	require.EqualValues(t, 1, bsc.calls.Load(), "BSC is still in its first sample")
	require.EqualValues(t, 0, bsc.returned.Load())
	_, ok := head("BSC")
	require.False(t, ok, "BSC's node never answered")
	v := values(t, reg)
	require.Contains(t, v, `payflow_transfers_in_flight{chain="BSC"}`, "BSC's ledger parts ran before its node's")
	require.NotContains(t, v, `payflow_node_up{chain="BSC"}`)

	cancel()
	<-done
	require.EqualValues(t, 1, bsc.returned.Load(), "Run returns once the stalled call gives up")
}

// A reading func left out fails its part, by name, on every sample: a
// forgotten wiring shows in the logs instead of a gauge quietly at zero.
func TestSamplerUnwiredReadingFails(t *testing.T) {
	db := stacktest.TestDB(t, "metrics")
	require.NoError(t, ledger.Migrate(context.Background(), db))
	s := metrics.NewSampler(metrics.SamplerConfig{Chains: []metrics.SamplerChain{{Name: "ETH", Node: &node{head: 7}, Balances: balances{}}},
		PaymentStep: "transfer", ConfirmTimeout: time.Minute}, db, nil)
	err := s.Sample(context.Background())
	for _, field := range []string{"Failing", "WalletKinds", "Mismatches", "Wallets", "ChainStore"} {
		require.ErrorContains(t, err, "SamplerConfig."+field+" is not set")
	}
}

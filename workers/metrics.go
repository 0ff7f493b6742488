package main

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"payflow/activities"
	"payflow/answers"
	"payflow/chain/btc"
	"payflow/chain/evm"
	"payflow/config"
	"payflow/internal/metrics"
	"payflow/ledger"
	"payflow/workflows"
)

// newMetrics returns the worker's metrics (served on http_addr's /metrics),
// with every chain's series created at zero, and the Temporal SDK's handler
// on the same registry.
func newMetrics(cfg config.Config, log *slog.Logger) (*metrics.Metrics, client.MetricsHandler, error) {
	m := metrics.New()
	for _, name := range cfg.ChainNames() {
		m.Init(name, cfg.Chains[name].Symbols())
	}
	for _, name := range cfg.BTCChainNames() {
		m.Init(name, cfg.BTCChains[name].Assets().Symbols())
	}
	th, err := m.TemporalHandler(log)
	if err != nil {
		return nil, nil, err
	}
	return m, th, nil
}

// runSampler registers the worker's gauges (transfers in flight, lanes,
// outbox, listener lag, node up, reconciliation, balances) of every chain
// on m and samples them, each chain on its own, until the returned stop is
// called; stop waits for the sampler, so call it before db and the nodes
// are closed.
func runSampler(ctx context.Context, cfg config.Config, m *metrics.Metrics, db *sql.DB, chains []metrics.SamplerChain,
	log *slog.Logger) (stop func(), err error) {
	sc := metrics.SamplerConfig{Chains: chains, PaymentStep: workflows.PaymentTransferStep,
		ConfirmTimeout: cfg.Payment.ConfirmTimeout.Duration}
	samplerReadings(&sc, db, cfg)
	s := metrics.NewSampler(sc, db, log)
	if err := m.Register(s); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	return func() { cancel(); wg.Wait() }, nil
}

// samplerReadings wires the Sampler's readings of tables other packages own
// to their owners' APIs: the ledger's wallets and reconciliations, the
// activities' failing steps, the answers' outbox.
func samplerReadings(sc *metrics.SamplerConfig, db *sql.DB, cfg config.Config) {
	sc.Outbox = answers.New(db, nil, nil)
	stats := chainStats{Stats: evm.NewStats(db), db: db, cfg: cfg, btc: map[string]bool{}}
	for _, name := range cfg.BTCChainNames() {
		stats.btc[name] = true
	}
	sc.ChainStore = stats
	wallets, ledg := ledger.NewWallets(db, nil), ledger.New(db)
	sc.Wallets = wallets.OfKinds
	sc.WalletKinds = wallets.KindNames
	sc.Mismatches = ledg.Mismatches
	sc.Failing = func(ctx context.Context, chain string) (int64, error) { return activities.FailingCount(ctx, db, chain) }
}

// chainStats is the sampler's ChainStore for chains of both families: an
// EVM chain's readings from its tables (evm.Stats), a Bitcoin chain's
// listener cursor from its scanner's kept blocks and its transfers in
// flight from its tracked payments. A Bitcoin chain has no nonce lanes.
type chainStats struct {
	*evm.Stats
	db  *sql.DB
	cfg config.Config
	btc map[string]bool // the Bitcoin chains, by name
}

// InFlight counts the chain's transfers in flight: a Bitcoin chain's from
// its tracked payments, stuck after its own confirm_timeout.
func (s chainStats) InFlight(ctx context.Context, chain, paymentStep string, stuckAfter time.Duration) (int64, time.Duration,
	int64, error) {
	if s.btc[chain] {
		if d := s.cfg.ConfirmTimeout(chain); d > 0 {
			stuckAfter = d
		}
		return btc.NewTracked(s.db, chain).InFlight(ctx, paymentStep, stuckAfter)
	}
	return s.Stats.InFlight(ctx, chain, paymentStep, stuckAfter)
}

// CursorBlock is the chain's listener (or scanner) cursor.
func (s chainStats) CursorBlock(ctx context.Context, chain string) (uint64, bool, error) {
	if s.btc[chain] {
		return btc.NewBlocks(s.db, chain).Cursor(ctx)
	}
	return s.Stats.CursorBlock(ctx, chain)
}

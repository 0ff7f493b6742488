package main

import (
	"context"
	"database/sql"
	"log/slog"
	"sort"
	"sync"

	"go.temporal.io/sdk/client"

	"payflow/config"
	"payflow/internal/metrics"
	"payflow/workflows"
)

// newMetrics returns the worker's metrics (served on http_addr's /metrics)
// and the Temporal SDK's handler on the same registry.
func newMetrics(cfg config.Config, log *slog.Logger) (*metrics.Metrics, client.MetricsHandler, error) {
	m := metrics.New()
	symbols := make([]string, 0, len(cfg.Tokens))
	for sym := range cfg.Tokens {
		symbols = append(symbols, sym)
	}
	sort.Strings(symbols)
	m.Init(cfg.ETH.Chain, symbols)
	th, err := m.TemporalHandler(log)
	if err != nil {
		return nil, nil, err
	}
	return m, th, nil
}

// runSampler registers the worker's gauges (transfers in flight, lanes,
// outbox, listener lag, reconciliation, balances) on m and samples them
// until the returned stop is called; stop waits for the sampler, so call it
// before db and the node are closed.
func runSampler(ctx context.Context, cfg config.Config, m *metrics.Metrics, db *sql.DB, node metrics.Node,
	bal metrics.Balances, log *slog.Logger) (stop func(), err error) {
	s := metrics.NewSampler(metrics.SamplerConfig{Chain: cfg.ETH.Chain, Tokens: cfg.Tokens,
		PaymentStep: workflows.PaymentTransferStep, ConfirmTimeout: cfg.Payment.ConfirmTimeout.Duration}, db, node, bal, log)
	if err := m.Register(s); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	return func() { cancel(); wg.Wait() }, nil
}

package main

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"

	"payflow/answers"
	"payflow/config"
	"payflow/internal/metrics"
	"payflow/workflows"
)

// runRelay runs the answers relay (one per worker process: two relays take
// turns on each answer) until the returned stop is called; stop waits for
// it, so call it before db and pub are closed.
func runRelay(ctx context.Context, cfg config.Config, db *sql.DB, pub answers.Publisher, m *metrics.Metrics,
	log *slog.Logger) (stop func()) {
	out := answers.New(db, pub, workflows.ResponseQueues(cfg.RMQ))
	r := answers.NewRelay(out, answers.RelayConfig{Grace: cfg.AnswerRelay.Grace.Duration,
		Interval: cfg.AnswerRelay.Interval.Duration}, m, log.With("component", "answer-relay"))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	return func() { cancel(); wg.Wait() }
}

// Package app is the shared start-up of payflow's binaries: flags, config,
// JSON logging, signal handling and the Temporal client.
package app

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"payflow/config"
	"payflow/internal/callcount"
)

// Start parses -config and -key, loads the config, sets up JSON logging and
// returns a context cancelled on SIGINT/SIGTERM.
func Start(name string) (context.Context, context.CancelFunc, config.Config, *slog.Logger) {
	path := flag.String("config", os.Getenv(config.EnvConfigPath), "config.json path (seed shape)")
	key := flag.String("key", "", "communication key: HMAC secret of requests (seed -key flag)")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("service", name)
	slog.SetDefault(log)
	if *key != "" {
		os.Setenv(config.EnvSignKey, *key)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		log.Error("invalid configuration", "err", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx, cancel, cfg, log
}

// DialTemporal connects to the Temporal frontend with TemporalOptions,
// retrying until ctx ends; a TLS or API key file it cannot read fails at once.
// The SDK's own metrics go to metrics (metrics.Metrics.TemporalHandler); nil
// records none.
func DialTemporal(ctx context.Context, cfg config.Config, log *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	for {
		opts, err := TemporalOptions(cfg.Temporal)
		if err != nil {
			return nil, fmt.Errorf("dialing temporal: %w", err)
		}
		opts.Logger, opts.MetricsHandler = tlog.NewStructuredLogger(log), metrics
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		log.Warn("temporal not reachable; retrying", "address", cfg.Temporal.Address, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dialing temporal: %w", err)
		case <-time.After(2 * time.Second):
		}
	}
}

// OpenDB opens MariaDB with the pool settings of dbConfig and pings it. Its
// statements are counted (callcount.Statements, on the process's /metrics).
func OpenDB(ctx context.Context, cfg config.Config) (*sql.DB, error) {
	db, err := callcount.OpenDB(cfg.ETH.DB.MySQLDSN())
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	if n := cfg.ETH.DB.MaxOpenConns; n > 0 {
		db.SetMaxOpenConns(n)
	}
	if n := cfg.ETH.DB.MaxIdleConns; n > 0 {
		db.SetMaxIdleConns(n)
	}
	if n := cfg.ETH.DB.ConnMaxLife; n > 0 {
		db.SetConnMaxLifetime(time.Duration(n) * time.Second)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if err = db.PingContext(pctx); err == nil {
			return db, nil
		}
		select {
		case <-pctx.Done():
			return nil, fmt.Errorf("reaching database: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

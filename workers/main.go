// Command payflow-worker runs payflow's Temporal worker: the workflows, the
// activities and the chain confirmation tracker. Wiring only.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"
	"go.temporal.io/sdk/worker"

	"payflow/activities"
	"payflow/api"
	"payflow/chain"
	"payflow/config"
	"payflow/intake"
	"payflow/internal/app"
	"payflow/internal/metrics"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/rmq"
	"payflow/workflows"
)

func main() {
	ctx, cancel, cfg, log := app.Start("payflow-worker")
	defer cancel()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("worker stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	master, err := cfg.MasterKeyBytes()
	if err != nil {
		return err
	}
	sealer, err := ledger.NewKeySealer(master)
	clear(master)
	if err != nil {
		return err
	}
	db, err := app.OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := ledger.Migrate(ctx, db); err != nil {
		return err
	}
	eth, err := ethclient.DialContext(ctx, cfg.ETH.RPCURL)
	if err != nil {
		return err
	}
	defer eth.Close()
	wallets := ledger.NewWallets(db, sealer)
	maxFee := new(big.Int).Mul(big.NewInt(cfg.ETH.MaxFeeGwei), big.NewInt(1_000_000_000))
	bc, err := chain.NewBroadcaster(chain.BroadcasterConfig{Chain: cfg.ETH.Chain, ChainID: big.NewInt(cfg.ETH.ChainID),
		MaxFeeWei: maxFee, FeeCacheTTL: time.Second, GasCacheTTL: 5 * time.Minute}, db, eth, wallets, log)
	if err != nil {
		return err
	}
	m, sdkMetrics, err := newMetrics(cfg, log)
	if err != nil {
		return err
	}
	tc, err := app.DialTemporal(ctx, cfg, log, sdkMetrics)
	if err != nil {
		return err
	}
	defer tc.Close()
	stopSampler, err := runSampler(ctx, cfg, m, db, eth, bc.Balances, log)
	if err != nil {
		return err
	}
	defer stopSampler() // before the DB and the node close
	pub := rmq.NewPublisher(cfg.RMQ.SubAddr.Reveal(), cfg.RMQ, log)
	defer pub.Close()

	dialWS := func(ctx context.Context) (chain.HeadSubscriber, error) {
		return ethclient.DialContext(ctx, cfg.ETH.WSURL)
	}
	tracker, err := chain.NewTracker(chain.TrackerConfig{Chain: cfg.ETH.Chain, Confirmations: uint64(cfg.ETH.ConfirmHeight),
		PollInterval: 3 * time.Second}, db, eth, metrics.CountReconnects(m, cfg.ETH.Chain, metrics.ComponentTracker, dialWS),
		activities.Owners{Client: tc}, log)
	if err != nil {
		return err
	}
	tokens := make([]common.Address, 0, len(cfg.Tokens))
	for _, t := range cfg.Tokens {
		tokens = append(tokens, common.HexToAddress(t.Address))
	}
	listener, err := chain.NewListener(chain.ListenerConfig{Chain: cfg.ETH.Chain, Tokens: tokens, PollInterval: 3 * time.Second},
		db, eth, metrics.CountReconnects(m, cfg.ETH.Chain, metrics.ComponentListener, dialWS), nil,
		intake.NewDepositStarter(cfg, db, tc, log), log)
	if err != nil {
		return err
	}
	// One listener and one tracker per chain, however many workers run: they
	// run only while this process holds the chain's lease, and resume from the
	// persisted cursor / tracked rows when another process takes over.
	// They use the DB, the node and Temporal until they return, so they are
	// joined (by this defer, which runs before the closing defers above)
	// before any of those is closed.
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano())
	leaseCtx, stopLease := context.WithCancel(ctx)
	var leased sync.WaitGroup
	defer func() { stopLease(); leased.Wait() }()
	leased.Go(func() {
		chain.RunWithLease(leaseCtx, db, "chain-"+cfg.ETH.Chain, holder, 15*time.Second, log, func(ctx context.Context) error {
			return runTogether(ctx, tracker.Run, listener.Run, func(ctx context.Context) error {
				// Unblock wallets whose transfers wait behind a nonce that was signed
				// but never sent (a workflow terminated in between) or was dropped.
				bc.Healer.Run(ctx, 30*time.Second, 2*time.Minute, activities.Owners{Client: tc})
				return nil
			})
		})
	})

	// More pollers than the defaults (2): a payment is two or three short
	// workflow tasks, and at load the queue wait dominates (make bench).
	w := worker.New(tc, cfg.Temporal.TaskQueue, worker.Options{
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 4,
	})
	w.RegisterWorkflow(workflows.Withdraw)
	w.RegisterWorkflow(workflows.Pay)
	w.RegisterWorkflow(workflows.Topup)
	w.RegisterWorkflow(workflows.Deposit)
	w.RegisterWorkflow(workflows.Reconcile)
	w.RegisterWorkflow(workflows.Sweep)
	w.RegisterWorkflow(workflows.WalletSweep)
	w.RegisterActivity(&activities.Activities{
		Chain: cfg.ETH.Chain, Tokens: cfg.Tokens, Collection: cfg.Payment.CollectionAddress, Confirmations: uint64(cfg.ETH.ConfirmHeight),
		Responses: workflows.ResponseQueues(cfg.RMQ), Metrics: m,
		DB: db, Eth: eth, Ledger: ledger.New(db), Wallets: wallets, Broadcaster: bc, Publisher: pub,
	})
	if addr := os.Getenv("PAYFLOW_PPROF_ADDR"); addr != "" {
		// Profiling for `make bench` investigations; loopback only by convention.
		go func() { log.Info("pprof listening", "addr", addr, "err", http.ListenAndServe(addr, pprofMux())) }()
	}
	if cfg.HTTPAddr != "" {
		// Read-only ledger API: health, wallet history, balances, reconciliations;
		// and the worker's Prometheus /metrics.
		srv := &http.Server{Addr: cfg.HTTPAddr, Handler: m.Mount(api.NewHandler(ledger.New(db), log)),
			ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("ledger API stopped", "addr", cfg.HTTPAddr, "err", err)
			}
		}()
		defer srv.Shutdown(context.WithoutCancel(ctx))
		log.Info("ledger API listening", "addr", cfg.HTTPAddr)
	}
	if err := w.Start(); err != nil {
		return err
	}
	// Reconciliation every 10 minutes; sweeps hourly, of deposit wallets above
	// 100,000 (more than the dev wallets hold). A schedule that exists is kept.
	if err := EnsureReconcileSchedule(ctx, tc, cfg.Temporal.TaskQueue, 10*time.Minute,
		workflows.ReconcileInput{Confirmations: uint64(cfg.ETH.ConfirmHeight)}); err != nil {
		log.Error("ensuring the reconcile schedule", "err", err)
	}
	if err := EnsureSweepSchedule(ctx, tc, cfg.Temporal.TaskQueue, time.Hour, workflows.SweepInput{
		Threshold: protocol.MustAmount(cfg.Payment.SweepThreshold), ConfirmTimeout: cfg.Payment.ConfirmTimeout.Duration}); err != nil {
		log.Error("ensuring the sweep schedule", "err", err)
	}
	log.Info("worker running", "task_queue", cfg.Temporal.TaskQueue, "chain", cfg.ETH.Chain,
		"confirmations", cfg.ETH.ConfirmHeight)
	<-ctx.Done()
	log.Info("draining")
	w.Stop()
	return nil
}

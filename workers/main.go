// Command payflow-worker runs payflow's Temporal worker: the workflows, the
// activities and the chain confirmation tracker. Wiring only.
package main

import (
	"context"
	"database/sql"
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
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"payflow/activities"
	"payflow/api"
	"payflow/audit"
	"payflow/chain/evm"
	"payflow/chain/evm/family"
	"payflow/chain/evm/send"
	"payflow/chain/evm/watch"
	"payflow/chain/lease"
	"payflow/config"
	"payflow/custody/addresses"
	"payflow/custody/signerapi"
	"payflow/intake"
	"payflow/internal/app"
	"payflow/internal/metrics"
	"payflow/ledger"
	"payflow/risk/denylist"
	"payflow/risk/holds"
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
	if err := cfg.API.ResolveToken(); err != nil {
		return err
	}
	// The worker holds no key: payflow-signer signs every transfer. Its
	// client does not connect here; a signer that is down shows at the
	// first signature (retried, and the step shows as failing).
	if err := cfg.RequireSigner(); err != nil {
		return err
	}
	signer := signerapi.NewClient(cfg.Signer.Socket)
	db, err := app.OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := ledger.Migrate(ctx, db); err != nil {
		return err
	}
	m, sdkMetrics, err := newMetrics(cfg, log)
	if err != nil {
		return err
	}
	// Screening: the deny list, reloaded when its file changes (or on
	// SIGHUP) until the worker stops; the held deposits' gauges.
	deny, err := denylist.Open(cfg.Risk.DenyList, log)
	if err != nil {
		return fmt.Errorf("risk.deny_list: %w", err)
	}
	heldDeposits := holds.New(db)
	for _, c := range append(deny.Collectors(), holds.NewCollector(heldDeposits)) {
		if err := m.Register(c); err != nil {
			return err
		}
	}
	var screening sync.WaitGroup
	sctx, stopScreening := context.WithCancel(ctx)
	screening.Go(func() { deny.Run(sctx) })
	defer screening.Wait()
	defer stopScreening()
	refuse := refuseChain(log, m)
	// One node client per chain. Dialling an HTTP endpoint does not connect:
	// a chain whose node is down delays only that chain (serveChain waits),
	// and one whose node cannot be dialled at all is refused alone.
	nodes := map[string]*ethclient.Client{}
	var served []string
	var sampled []metrics.SamplerChain
	for _, name := range cfg.ChainNames() {
		eth, err := evm.DialNode(ctx, cfg.Chains[name].RPCURL)
		if err != nil {
			refuse(name, fmt.Errorf("dialling its node: %w", err))
			continue
		}
		defer eth.Close()
		nodes[name] = eth
		served = append(served, name)
		bal, err := evm.NewBalances(eth)
		if err != nil {
			return err
		}
		sampled = append(sampled, metrics.SamplerChain{Name: name, Assets: cfg.Chains[name], Node: evm.Node{Backend: eth}, Balances: bal})
	}
	tc, err := app.DialTemporal(ctx, cfg, log, sdkMetrics)
	if err != nil {
		return err
	}
	defer tc.Close()
	stopSampler, err := runSampler(ctx, cfg, m, db, sampled, log)
	if err != nil {
		return err
	}
	defer stopSampler() // before the DB and the nodes close
	pub := rmq.NewPublisher(cfg.RMQ.SubAddr.Reveal(), cfg.RMQ, log)
	defer pub.Close()
	// Answers a run recorded and never published (it was terminated in
	// between) are published by the relay.
	stopRelay := runRelay(ctx, cfg, db, pub, m, log)
	defer stopRelay() // before the publisher and the DB close

	if addr := os.Getenv("PAYFLOW_PPROF_ADDR"); addr != "" {
		// Profiling for `make bench` investigations; loopback only by convention.
		go func() { log.Info("pprof listening", "addr", addr, "err", http.ListenAndServe(addr, pprofMux())) }()
	}
	if cfg.HTTPAddr != "" {
		// The ledger API: health, wallet history, balances, reconciliations,
		// new HD deposit addresses (from the account xpub: no signer); and
		// the worker's Prometheus /metrics.
		alloc, err := addresses.New(cfg.Custody.AccountXPub, ledger.NewWallets(db, nil), cfg.ChainNames())
		if err != nil {
			return fmt.Errorf("custody.account_xpub: %w", err)
		}
		srv, err := apiServer(cfg, m.Mount(api.NewHandler(ledger.New(db), log, append(apiAuth(cfg), api.WithAddresses(alloc))...)))
		if err != nil {
			return err
		}
		go func() {
			serve := srv.ListenAndServe
			if srv.TLSConfig != nil {
				serve = func() error { return srv.ListenAndServeTLS(cfg.API.TLS.CertFile, cfg.API.TLS.KeyFile) }
			}
			if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("ledger API stopped", "addr", cfg.HTTPAddr, "err", err)
			}
		}()
		defer srv.Shutdown(context.WithoutCancel(ctx))
		log.Info("ledger API listening", "addr", cfg.HTTPAddr, "token", cfg.API.Token != "", "tls", srv.TLSConfig != nil,
			"mtls", srv.TLSConfig != nil && srv.TLSConfig.ClientCAs != nil)
	}

	// Every chain is served on its own: its own Temporal worker (task queue),
	// listener, tracker, lease, nonce lanes, reconciliation and sweeps. A
	// chain whose node serves another chain id, whose tokens' decimals differ
	// from the config, or whose services cannot be set up is refused alone:
	// the worker goes on serving the others.
	host, _ := os.Hostname()
	holder := fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano())
	shared := chainShared{cfg: cfg, db: db, wallets: ledger.NewWallets(db, nil), signer: signer, btcSigner: signer, tc: tc, pub: pub, m: m,
		holder: holder, log: log, deny: deny, holds: heldDeposits}
	var chains sync.WaitGroup
	chains.Go(func() {
		serveChains(ctx, served, func(ctx context.Context, name string) error {
			return shared.serveChain(ctx, name, nodes[name])
		}, refuse)
	})
	// Bitcoin chains, each on its own as well: a btcd that is down or hung
	// delays its chain alone.
	chains.Go(func() { serveChains(ctx, cfg.BTCChainNames(), shared.serveBTC, refuse) })
	// Even with every chain refused the worker runs on (its API, its metrics
	// and the alert they raise) until it is stopped: exiting would only have
	// it restarted into the same refusal.
	log.Info("worker running", "chains", served, "btc_chains", cfg.BTCChainNames(), "signer", cfg.Signer.Socket)
	<-ctx.Done()
	log.Info("draining")
	chains.Wait()
	return nil
}

// chainShared is what every chain's services share in one worker process.
type chainShared struct {
	cfg     config.Config
	db      *sql.DB
	wallets *ledger.Wallets
	signer  send.TxSigner // payflow-signer
	// btcSigner is payflow-signer's Bitcoin route.
	btcSigner btcSignerAPI
	tc        client.Client
	pub       *rmq.Publisher
	m         *metrics.Metrics
	holder    string // this process, as a lease holder
	log       *slog.Logger
	deny      *denylist.Screen
	holds     *holds.Store
}

// serveChain runs one chain's services until ctx ends. It first waits for
// the chain's node and checks it (awaitChain): a node that is down only
// delays this chain, whose workflows wait in its own task queue. A refusal
// of the check, or a failure to set up the chain's services, is returned
// before anything of the chain runs: the caller refuses that chain alone.
func (s chainShared) serveChain(ctx context.Context, name string, eth *ethclient.Client) error {
	ch := s.cfg.Chains[name]
	log := s.log.With("chain", name)
	if err := awaitChain(ctx, name, ch, eth, log); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: name, ChainID: big.NewInt(ch.ChainID),
		MaxFeeWei: ch.MaxFeeWei(), FeeCacheTTL: time.Second, GasCacheTTL: 5 * time.Minute}, s.db, eth, s.signer, log)
	if err != nil {
		return fmt.Errorf("setting up the broadcaster: %w", err)
	}
	// Deferred first, so run last: after the Temporal worker has stopped
	// and the leased services (the healer among them) have returned, the
	// nonce and send writers finish what was queued before the node and the
	// database close.
	defer bc.Close()
	fam, err := family.New(name, s.db, eth, bc)
	if err != nil {
		return fmt.Errorf("setting up the chain family: %w", err)
	}
	dialWS := func(ctx context.Context) (watch.HeadSubscriber, error) {
		return ethclient.DialContext(ctx, ch.WSURL)
	}
	owners := activities.Owners{Client: s.tc}
	tracker, err := watch.NewTracker(watch.TrackerConfig{Chain: name, Confirmations: uint64(ch.ConfirmHeight),
		PollInterval: 3 * time.Second}, s.db, eth, metrics.CountReconnects(s.m, name, metrics.ComponentTracker, dialWS), owners, log)
	if err != nil {
		return fmt.Errorf("setting up the tracker: %w", err)
	}
	// The cold wallet is registered before the listener starts, so that
	// every transfer into it is booked, and reconciliation covers it.
	if ch.ColdAddress != "" {
		if _, err := s.wallets.RegisterCold(ctx, name, ch.ColdAddress); err != nil {
			return fmt.Errorf("registering the cold_address: %w", err)
		}
	}
	tokens := make([]common.Address, 0, len(ch.Tokens))
	for _, t := range ch.Tokens {
		tokens = append(tokens, common.HexToAddress(t.Address))
	}
	sink, err := intake.NewDepositStarter(s.cfg, name, s.db, s.tc, log)
	if err != nil {
		return fmt.Errorf("setting up the deposit starter: %w", err)
	}
	listener, err := watch.NewListener(watch.ListenerConfig{Chain: name, Tokens: tokens, Native: true, PollInterval: 3 * time.Second,
		Wallets: func(ctx context.Context, after int64, limit int) ([]string, int64, error) {
			return s.wallets.AddressesAfter(ctx, name, after, limit)
		}}, s.db, eth, metrics.CountReconnects(s.m, name, metrics.ComponentListener, dialWS), nil, sink, log)
	if err != nil {
		return fmt.Errorf("setting up the listener: %w", err)
	}
	// One listener and one tracker per chain, however many workers run: they
	// run only while this process holds the chain's lease, and resume from the
	// persisted cursor / tracked rows when another process takes over. They
	// use the DB, the node and Temporal until they return, so they are joined
	// before serveChain returns (and its caller closes any of those). The
	// chain's own context stops them first when a later step fails.
	var leased sync.WaitGroup
	defer leased.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leased.Go(func() {
		lease.RunWithLease(ctx, s.db, "chain-"+name, s.holder, s.cfg.LeaseTTL.Duration, log, func(ctx context.Context) error {
			return runTogether(ctx, tracker.Run, listener.Run, func(ctx context.Context) error {
				// Unblock wallets whose transfers wait behind a nonce that was signed
				// but never sent (a workflow terminated in between) or was dropped.
				bc.Healer.Run(ctx, 30*time.Second, 2*time.Minute, owners)
				return nil
			})
		})
	})

	queue := s.cfg.TaskQueue(name)
	opts := workflows.WorkerOptions()
	opts.Interceptors = append(opts.Interceptors, (&activities.FailingSteps{DB: s.db, Chain: name, Log: log}).Interceptor())
	led := ledger.New(s.db)
	defer led.Drain() // after w.Stop: the activities' postings are committed before the DB closes
	w := worker.New(s.tc, queue, opts)
	for _, wf := range []any{workflows.Withdraw, workflows.Pay, workflows.Topup, workflows.Deposit, workflows.Reconcile,
		workflows.Sweep, workflows.WalletSweep, workflows.ReturnDeposit, workflows.Treasury} {
		w.RegisterWorkflow(wf)
	}
	w.RegisterActivity(&activities.Activities{
		Chain: name, Assets: ch, Collection: ch.CollectionAddress, Confirmations: uint64(ch.ConfirmHeight),
		Responses: workflows.ResponseQueues(s.cfg.RMQ), Metrics: s.m,
		DB: s.db, Transfers: fam.Transfers, Fees: fam.Fees, Balances: fam.Balances, Reads: fam.Reads,
		Ledger: led, Wallets: s.wallets, Publisher: s.pub, Screen: s.deny, Holds: s.holds, Audit: audit.New(s.db),
		History: s.tc,
	})
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the Temporal worker on %s: %w", queue, err)
	}
	defer w.Stop()
	// Reconciliation every 10 minutes; sweeps hourly, of deposit wallets above
	// each asset's own sweep_threshold. A schedule that exists is kept.
	if err := EnsureReconcileSchedule(ctx, s.tc, scheduleID(s.cfg, workflows.ReconcileScheduleID, name), name, queue, 10*time.Minute,
		workflows.ReconcileInput{Confirmations: uint64(ch.ConfirmHeight)}); err != nil {
		log.Error("ensuring the reconcile schedule", "err", err)
	}
	if err := EnsureSweepSchedule(ctx, s.tc, scheduleID(s.cfg, workflows.SweepScheduleID, name), name, queue, time.Hour,
		workflows.SweepInput{ConfirmTimeout: s.cfg.Payment.ConfirmTimeout.Duration}); err != nil {
		log.Error("ensuring the sweep schedule", "err", err)
	}
	// Treasury passes every 10 minutes on a chain with a hot_ceiling: the
	// hot tier's excess goes to the cold address.
	if hasCeiling(ch) {
		if err := EnsureTreasurySchedule(ctx, s.tc, scheduleID(s.cfg, workflows.TreasuryScheduleID, name), name, queue,
			10*time.Minute, workflows.TreasuryInput{ConfirmTimeout: s.cfg.Payment.ConfirmTimeout.Duration}); err != nil {
			log.Error("ensuring the treasury schedule", "err", err)
		}
	}
	log.Info("chain served", "task_queue", queue, "chain_id", ch.ChainID, "confirmations", ch.ConfirmHeight)
	<-ctx.Done()
	return nil
}

// scheduleID is a chain's id of a schedule: the bare id for the chain on the
// bare task queue (as before payflow served several chains), else id-<chain>.
func scheduleID(cfg config.Config, id, chainName string) string {
	if cfg.TaskQueue(chainName) == cfg.Temporal.TaskQueue {
		return id
	}
	return id + "-" + chainName
}

// hasCeiling says whether any asset of ch has a hot_ceiling.
func hasCeiling(ch config.ChainConfig) bool {
	for _, sym := range ch.Symbols() {
		if a, _ := ch.Asset(sym); a.HotCeiling != "" {
			return true
		}
	}
	return false
}

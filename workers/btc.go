package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"go.temporal.io/sdk/worker"

	"payflow/activities"
	"payflow/audit"
	"payflow/chain/btc"
	"payflow/chain/lease"
	"payflow/config"
	"payflow/intake"
	"payflow/ledger"
	"payflow/workflows"
)

// btcPoll is how often a Bitcoin chain's scanner and tracker look at the
// node: a block every few seconds on the dev chain, every ten minutes on
// mainnet; a poll with nothing new costs one or two small calls.
const btcPoll = time.Second

// serveBTC runs one Bitcoin chain's services until ctx ends: topups (the
// scanner finds each output paying a watched address and starts its
// Deposit; the tracker tells the Deposit seen, reorged and confirmed) on
// the chain's own task queue, the scanner and the tracker under the chain's
// lease as an EVM chain's listener and tracker are. Payments are refused
// by intake before any workflow runs; a refused request's answer is
// published by the Withdraw or Pay workflow this worker registers. It first
// waits for the node (a node that is down or hung delays this chain alone)
// and refuses the chain when the node serves another network.
func (s chainShared) serveBTC(ctx context.Context, name string) error {
	b, _ := s.cfg.BTCChain(name)
	log := s.log.With("chain", name)
	client, err := btc.Dial(btc.ClientConfig{URL: b.RPCURL, User: b.RPCUser, Password: b.RPCPassword.Reveal(), Network: b.Network})
	if err != nil {
		return fmt.Errorf("%w: btc_chains.%s.rpc_url: %v", config.ErrInvalid, name, err)
	}
	defer client.Close()
	if err := awaitBTC(ctx, name, b, client, log); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	confirmations := int64(b.Confirmations)
	watched, tracked := btc.NewWatched(s.db, name), btc.NewTracked(s.db, name)
	owners := activities.Owners{Client: s.tc}
	tracker, err := btc.NewTracker(confirmations, client, tracked, owners, log)
	if err != nil {
		return fmt.Errorf("setting up the tracker: %w", err)
	}
	sink, err := intake.NewChainDepositStarter(s.cfg, name, s.db, watched, s.tc, log)
	if err != nil {
		return fmt.Errorf("setting up the deposit starter: %w", err)
	}

	// One scanner and one tracker per chain, however many workers run: only
	// while this process holds the chain's lease. A new holder's scanner
	// goes on from the blocks kept in btc_blocks, its tracker from
	// btc_tracked.
	var leased sync.WaitGroup
	defer leased.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leased.Go(func() {
		lease.RunWithLease(ctx, s.db, "chain-"+name, s.holder, s.cfg.LeaseTTL.Duration, log, func(ctx context.Context) error {
			head, _, err := client.Head(ctx)
			for ; err != nil; head, _, err = client.Head(ctx) {
				log.Warn("reading the node's head", "err", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(5 * btcPoll):
				}
			}
			// StartHeight counts only at the very first start (no kept
			// blocks): deposits count from the head then.
			scanner, err := btc.NewScanner(btc.ScannerConfig{Confirmations: confirmations, StartHeight: head},
				client, btc.NewWatchSet(client.Params()), btc.NewBlocks(s.db, name), watched)
			if err != nil {
				return fmt.Errorf("setting up the scanner: %w", err)
			}
			return runTogether(ctx, func(ctx context.Context) error {
				scanner.Run(ctx, btcPoll, func(ctx context.Context, evs []btc.Event) error {
					return sink.HandleSeen(ctx, seenDeposits(evs))
				}, func(err error) { log.Warn("scanning the chain", "err", err) })
				return nil
			}, func(ctx context.Context) error {
				tracker.Run(ctx, btcPoll, func(err error) { log.Warn("tracking deposits", "err", err) })
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
	// Withdraw and Pay only answer the requests intake refused.
	for _, wf := range []any{workflows.Topup, workflows.Deposit, workflows.Withdraw, workflows.Pay} {
		w.RegisterWorkflow(wf)
	}
	w.RegisterActivity(&activities.Activities{
		Chain: name, Assets: b.Assets(), Collection: b.CollectionAddress, Confirmations: uint64(confirmations),
		Responses: workflows.ResponseQueues(s.cfg.RMQ), Metrics: s.m,
		DB: s.db, Transfers: btc.NewTransfers(tracked), Reads: btc.NewReads(client, watched),
		Ledger: led, Wallets: s.wallets, Publisher: s.pub, Screen: s.deny, Holds: s.holds, Audit: audit.New(s.db),
		History: s.tc,
	})
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the Temporal worker on %s: %w", queue, err)
	}
	defer w.Stop()
	log.Info("chain served", "family", config.FamilyBTC, "task_queue", queue, "network", b.Network,
		"confirmations", b.Confirmations)
	<-ctx.Done()
	return nil
}

// seenDeposits is the scanner's seen events as the deposit starter takes
// them: each output one deposit at its index, in satoshis, with no one
// sender. Confirmations and reorganisations reach each Deposit through the
// tracker, which follows its transaction.
func seenDeposits(evs []btc.Event) []intake.Seen {
	var out []intake.Seen
	for _, e := range evs {
		if e.Kind != btc.DepositSeen {
			continue
		}
		out = append(out, intake.Seen{TxHash: e.TxID, Position: uint(e.Vout), To: e.Address, Units: big.NewInt(e.Sats),
			BlockNumber: uint64(e.Height), BlockHash: e.BlockHash})
	}
	return out
}

// awaitBTC waits until the chain's node answers and serves the configured
// network: nil when the chain may be served (or ctx ended first), the
// refusal (wrapping config.ErrInvalid) when it serves another network.
func awaitBTC(ctx context.Context, name string, b config.BTCChain, c *btc.Client, log *slog.Logger) error {
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.CheckNetwork(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, btc.ErrWrongNetwork) {
			return fmt.Errorf("%w: btc_chains.%s.network is %s but the node at %s does not serve it: %v", config.ErrInvalid, name,
				b.Network, nodeHost(b.RPCURL), err)
		}
		log.Warn("chain node not reachable; this chain waits, the others go on", "node", nodeHost(b.RPCURL), "err", err,
			"retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/btcsuite/btcd/wire"
	"go.temporal.io/sdk/worker"

	"payflow/activities"
	"payflow/audit"
	"payflow/chain"
	"payflow/chain/btc"
	"payflow/chain/lease"
	"payflow/config"
	"payflow/custody/signerapi"
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

	fees, err := btc.NewFees(name, s.db, client, btc.FeeConfig{Rate: b.FeeRate, MaxRate: b.MaxFeeRate})
	if err != nil {
		return fmt.Errorf("%w: btc_chains.%s: %v", config.ErrInvalid, name, err)
	}
	payments := btc.NewPayments(name, s.db, client, tracked, psbtSigner{s.btcSigner}, fees)

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
			set := btc.NewWatchSet(client.Params())
			own := newOwnOutputs(s.db, s.wallets, name, set, client, confirmations, payments, log)
			if err := own.refresh(ctx); err != nil {
				return err
			}
			scanner, err := btc.NewScanner(btc.ScannerConfig{Confirmations: confirmations, StartHeight: head},
				client, set, btc.NewBlocks(s.db, name), watchesAndWallets{topups: watched, own: own})
			if err != nil {
				return fmt.Errorf("setting up the scanner: %w", err)
			}
			return runTogether(ctx, func(ctx context.Context) error {
				scanner.Run(ctx, btcPoll, func(ctx context.Context, evs []btc.Event) error {
					deposits, err := own.apply(ctx, evs)
					if err != nil {
						return err
					}
					return sink.HandleSeen(ctx, seenDeposits(deposits))
				}, func(err error) { log.Warn("scanning the chain", "err", err) })
				return nil
			}, func(ctx context.Context) error {
				tracker.Run(ctx, btcPoll, func(err error) { log.Warn("tracking deposits", "err", err) })
				return nil
			}, own.settle, newBTCReconciler(s.db, name, b.Native.Symbol, confirmations, client, log).loop)
		})
	})

	queue := s.cfg.TaskQueue(name)
	opts := workflows.WorkerOptions()
	opts.Interceptors = append(opts.Interceptors, (&activities.FailingSteps{DB: s.db, Chain: name, Log: log}).Interceptor())
	led := ledger.New(s.db)
	defer led.Drain() // after w.Stop: the activities' postings are committed before the DB closes
	w := worker.New(s.tc, queue, opts)
	for _, wf := range []any{workflows.Topup, workflows.Deposit, workflows.Withdraw, workflows.Pay, workflows.Sweep, workflows.WalletSweep} {
		w.RegisterWorkflow(wf)
	}
	w.RegisterActivity(&activities.Activities{
		Chain: name, Assets: b.Assets(), Collection: b.CollectionAddress, Confirmations: uint64(confirmations),
		Responses: workflows.ResponseQueues(s.cfg.RMQ), Metrics: s.m,
		DB: s.db, Transfers: payments, Fees: fees, Balances: btc.NewBalances(s.db, name), Reads: btc.NewReads(client, watched),
		Ledger: led, Wallets: s.wallets, Publisher: s.pub, Screen: s.deny, Holds: s.holds, Audit: audit.New(s.db),
		History: s.tc,
	})
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the Temporal worker on %s: %w", queue, err)
	}
	defer w.Stop()
	// Sweeps hourly, as on an EVM chain: each deposit wallet above the
	// coin's sweep_threshold is swept whole in one transaction, its fee
	// paid from the coins (config.ChainConfig.FeeFromSwept).
	if err := EnsureSweepSchedule(ctx, s.tc, scheduleID(s.cfg, workflows.SweepScheduleID, name), name, queue, time.Hour,
		workflows.SweepInput{ConfirmTimeout: s.cfg.ConfirmTimeout(name)}); err != nil {
		log.Error("ensuring the sweep schedule", "err", err)
	}
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

// btcSignerAPI is what a Bitcoin chain asks payflow-signer
// (*signerapi.Client).
type btcSignerAPI interface {
	SignBTC(ctx context.Context, req signerapi.BTCSignRequest) (signerapi.BTCSignResponse, error)
}

// psbtSigner has payflow-signer sign a planned attempt: the PSBT goes as
// base64, the finalised transaction comes back as hex. A refusal (asking
// again changes nothing) is chain.ErrSignerRefused with the signer's
// reason; an unavailable signer is retried.
type psbtSigner struct{ api btcSignerAPI }

func (p psbtSigner) SignPSBT(ctx context.Context, req btc.SignRequest) (*wire.MsgTx, error) {
	if p.api == nil {
		return nil, errors.New("no signer configured")
	}
	var buf bytes.Buffer
	if err := req.Packet.Serialize(&buf); err != nil {
		return nil, fmt.Errorf("serialising the PSBT: %w", err)
	}
	resp, err := p.api.SignBTC(ctx, signerapi.BTCSignRequest{Chain: req.Chain, WorkflowID: req.WorkflowID, Step: req.Step,
		Attempt: req.Attempt, Reservation: req.Reservation, From: req.From, PSBT: base64.StdEncoding.EncodeToString(buf.Bytes())})
	if signerapi.Permanent(err) {
		return nil, fmt.Errorf("%w: %s", chain.ErrSignerRefused, signerapi.Reason(err))
	}
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(resp.Raw)
	if err != nil {
		return nil, fmt.Errorf("the signer's transaction is not hex: %w", err)
	}
	tx := new(wire.MsgTx)
	if err := tx.Deserialize(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("decoding the signer's transaction: %w", err)
	}
	return tx, nil
}

// ownOutputs keeps the UTXO set of a Bitcoin chain's managed wallets from
// the scanner's events: every output paying a managed wallet is added
// (unconfirmed), made spendable once confirmed and taken back by a
// reorganisation. The scanner watches the managed wallets beside the topup
// addresses; refresh (before each poll: watchesAndWallets) adds wallets
// registered since the last call.
type ownOutputs struct {
	chain   string
	wallets *ledger.Wallets
	utxos   *btc.UTXOs
	signed  *btc.SignedTxs
	set     *btc.WatchSet
	managed map[string]bool
	cursor  int64
	// settle checks outputs left unconfirmed on the node (btc.Settle) and
	// sends again the payments the node forgot (btc.Rebroadcast).
	client        *btc.Client
	confirmations int64
	payments      *btc.Payments
	log           *slog.Logger
}

// rebroadcastWindow is how far back btc.Rebroadcast looks: a btcd killed
// loses at most its last 5 minutes of blocks.
const rebroadcastWindow = time.Hour

// settleEvery is how often outputs left unconfirmed are checked on the
// node.
const settleEvery = 30 * time.Second

// settle confirms, every settleEvery until ctx ends, the outputs the
// scanner never told confirmed (btc.Settle), and sends again the payments
// the node forgot (btc.Rebroadcast).
func (o *ownOutputs) settle(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(settleEvery):
		}
		n, err := btc.Settle(ctx, o.utxos, o.client, o.confirmations)
		if err != nil && ctx.Err() == nil {
			o.log.Warn("confirming outputs left unconfirmed", "err", err)
		}
		if n > 0 {
			o.log.Info("confirmed outputs the scanner had not told confirmed", "outputs", n)
		}
		n, err = btc.Rebroadcast(ctx, o.payments, time.Now().Add(-rebroadcastWindow))
		if err != nil && ctx.Err() == nil {
			o.log.Warn("sending again the payments the node forgot", "err", err)
		}
		if n > 0 {
			o.log.Warn("sent again payments the node no longer knew (restarted or lost blocks)", "payments", n)
		}
	}
}

func newOwnOutputs(db *sql.DB, wallets *ledger.Wallets, chainName string, set *btc.WatchSet, c *btc.Client,
	confirmations int64, payments *btc.Payments, log *slog.Logger) *ownOutputs {
	return &ownOutputs{chain: chainName, wallets: wallets, utxos: btc.NewUTXOs(db, chainName), signed: btc.NewSignedTxs(db, chainName),
		set: set, managed: map[string]bool{}, client: c, confirmations: confirmations, payments: payments, log: log}
}

// refresh watches the managed wallets registered since the last call.
func (o *ownOutputs) refresh(ctx context.Context) error {
	for {
		addrs, last, err := o.wallets.AddressesAfter(ctx, o.chain, o.cursor, 500)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			canon, err := o.set.Add(a)
			if err != nil {
				continue // not an address of this network: nothing to watch
			}
			o.managed[canon] = true
		}
		o.cursor = last
		if len(addrs) < 500 {
			return nil
		}
	}
}

// watchesAndWallets is the scanner's watch source: the topup watches, and
// before them, at each poll, the managed wallets registered since the last
// (a new deposit address is watched before the scanner reads a block that
// could pay it: its owner learns it only once it is registered).
type watchesAndWallets struct {
	topups btc.WatchSource
	own    *ownOutputs
}

func (w watchesAndWallets) After(ctx context.Context, after int64, limit int) ([]btc.WatchedAddress, error) {
	if err := w.own.refresh(ctx); err != nil {
		return nil, err
	}
	return w.topups.After(ctx, after, limit)
}

// apply records the events of managed wallets' outputs in the UTXO set and
// returns the events the deposit starter takes: all but the change of
// payflow's own payments (an output back to the wallet that paid, which
// the ledger never debited). A payment to another managed wallet is a
// deposit there, booked as one.
func (o *ownOutputs) apply(ctx context.Context, evs []btc.Event) ([]btc.Event, error) {
	var mine, deposits []btc.Event
	for _, e := range evs {
		if o.managed[e.Address] {
			mine = append(mine, e)
		}
	}
	if err := btc.Apply(ctx, o.utxos, mine); err != nil {
		return nil, err
	}

	for _, e := range evs {
		if e.Kind == btc.DepositSeen && o.managed[e.Address] {
			paid, err := o.signed.ByTxID(ctx, e.TxID)
			if err == nil && paid.From == e.Address {
				continue // change
			}
			if err != nil && !errors.Is(err, chain.ErrNotSigned) {
				return nil, err
			}
		}
		deposits = append(deposits, e)
	}
	return deposits, nil
}

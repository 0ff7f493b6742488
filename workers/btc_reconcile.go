package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shopspring/decimal"

	"payflow/chain/btc"
	"payflow/ledger"
)

// btcReconcileEvery is how often a Bitcoin chain's wallets are reconciled.
const btcReconcileEvery = 5 * time.Minute

// btcReconciler reconciles a Bitcoin chain's managed wallets: for each, the
// ledger's total (available + held) against the UTXO set's confirmed coins,
// and the set against the node (btc.UTXOs.Reconcile: every confirmed coin
// unspent there with its value, every unspent output the node's address
// index shows paying the wallet, confirmations deep, in the set). Each
// wallet's result is recorded in the ledger's reconciliations, as an EVM
// chain's run records it, so payflowctl, the API, payflow_reconciliation_
// mismatches and its alert cover Bitcoin too.
type btcReconciler struct {
	chain, symbol string
	confirmations int64
	c             *btc.Client
	utxos         *btc.UTXOs
	led           *ledger.Ledger
	wallets       *ledger.Wallets
	log           *slog.Logger
}

func newBTCReconciler(db *sql.DB, chainName, symbol string, confirmations int64, c *btc.Client, log *slog.Logger) *btcReconciler {
	return &btcReconciler{chain: chainName, symbol: symbol, confirmations: confirmations, c: c, utxos: btc.NewUTXOs(db, chainName),
		led: ledger.New(db), wallets: ledger.NewWallets(db, nil), log: log}
}

// run reconciles every managed wallet once, as run runID. A wallet with a
// payment under way (its ledger holds money, or the set has an output not
// yet confirmed) is skipped: the ledger and the set move at different
// moments of a payment, so they are compared only when it is done.
func (r *btcReconciler) run(ctx context.Context, runID string) (checked, mismatched, skipped int, err error) {
	head, hash, err := r.c.Head(ctx)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("reading the node's head: %w", err)
	}
	for after := int64(0); ; {
		addrs, last, err := r.wallets.AddressesAfter(ctx, r.chain, after, 500)
		if err != nil {
			return checked, mismatched, skipped, err
		}
		for _, a := range addrs {
			rec, ok, err := r.wallet(ctx, runID, a, head, hash.String())
			if err != nil {
				return checked, mismatched, skipped, err
			}
			if !ok {
				skipped++
				continue
			}
			checked++
			if rec.Status == ledger.ReconMismatch {
				mismatched++
				r.log.Warn("reconciliation mismatch", "address", a, "symbol", r.symbol, "ledger_total", rec.LedgerTotal.String(),
					"chain_balance", rec.ChainBalance.String(), "block_number", head, "run_id", runID, "unmatched", len(rec.Unmatched))
			}
		}
		if len(addrs) < 500 {
			return checked, mismatched, skipped, nil
		}
		after = last
	}
}

// wallet reconciles one wallet; ok is false when it is skipped.
func (r *btcReconciler) wallet(ctx context.Context, runID, address string, head int64, hash string) (ledger.Reconciliation, bool, error) {
	bal, err := r.led.Balance(ctx, r.chain, address, r.symbol)
	if err != nil {
		return ledger.Reconciliation{}, false, err
	}
	confirmed, unconfirmed, err := r.utxos.Balance(ctx, address)
	if err != nil {
		return ledger.Reconciliation{}, false, err
	}
	if bal.Held.Sign() != 0 || unconfirmed != 0 {
		return ledger.Reconciliation{}, false, nil
	}
	node, err := r.utxos.Reconcile(ctx, r.c, address, r.confirmations)
	if err != nil {
		return ledger.Reconciliation{}, false, err
	}
	onNode := node.OnNode
	rec := ledger.Reconciliation{RunID: runID, Chain: r.chain, Address: address, Symbol: r.symbol, BlockNumber: uint64(head),
		BlockHash: hash, LedgerTotal: bal.Total(), Status: ledger.ReconMatched}
	for _, u := range node.Unknown {
		onNode += u.Value
		rec.Unmatched = append(rec.Unmatched, ledger.UnmatchedTransfer{Side: ledger.SideChainOnly, TxHash: u.OutPoint.Hash.String(),
			LogIndex: uint(u.OutPoint.Index), Amount: decimal.New(u.Value, -btc.Decimals)})
	}
	for _, m := range node.Missing {
		rec.Unmatched = append(rec.Unmatched, ledger.UnmatchedTransfer{Side: ledger.SideLedgerOnly, TxHash: m.TxID,
			LogIndex: uint(m.Vout), BlockNumber: uint64(max(m.Height, 0)), Amount: decimal.New(-m.Sats, -btc.Decimals)})
	}
	rec.ChainBalance = decimal.New(onNode, -btc.Decimals)
	if !node.Matched() || !rec.LedgerTotal.Equal(rec.ChainBalance) || onNode != confirmed {
		rec.Status = ledger.ReconMismatch
	}
	err = r.led.RecordReconciliation(ctx, rec)
	if errors.Is(err, ledger.ErrReconConflict) {
		return rec, true, nil // recorded by an earlier attempt of the run: it stands
	}
	return rec, true, err
}

// loop runs a reconciliation every btcReconcileEvery until ctx ends.
func (r *btcReconciler) loop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(btcReconcileEvery):
		}
		runID := fmt.Sprintf("btc-%s-%d", r.chain, time.Now().Unix())
		checked, mismatched, skipped, err := r.run(ctx, runID)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("reconciling the wallets", "run_id", runID, "err", err)
			continue
		}
		r.log.Info("reconciliation run", "run_id", runID, "checked", checked, "mismatched", mismatched,
			"skipped_in_flight", skipped)
	}
}

package main

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/shopspring/decimal"

	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// TestBTCReconcilerRecordsEachWallet: on a private btcd, a wallet whose
// ledger total equals its confirmed coins, all unspent on the node, is
// recorded matched; a ledger credit the chain does not hold, and an output
// paying the wallet that the set lacks, are each recorded as a mismatch
// naming the side; a wallet with money held in the ledger (a payment under
// way) is skipped.
func TestBTCReconcilerRecordsEachWallet(t *testing.T) {
	ctx := context.Background()
	node := btctest.Start(t)
	db := stacktest.TestDB(t, "btcrecon")
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	params := node.Client.Params()
	wallets, led, set := ledger.NewWallets(db, nil), ledger.New(db), btc.NewUTXOs(db, "BTC")
	newWallet := func(label string) string {
		wif, err := btc.NewWIF(params)
		if err != nil {
			t.Fatal(err)
		}
		a, err := btc.WIFAddress(wif, params)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wallets.Register(ctx, "BTC", ledger.KindHot, label, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	// fund pays address sats, mines it 6 deep and books it in the set (and
	// in the ledger when credit), as the scanner and a Deposit would.
	fund := func(address string, sats int64, credit bool) {
		txid := node.Pay(t, address, sats)
		node.Mine(t, 6)
		tx, err := node.Client.Tx(ctx, txid)
		if err != nil {
			t.Fatal(err)
		}
		_, script, _ := btc.ParseAddress(address, params)
		for _, o := range tx.Vout {
			if o.ScriptPubKey.Hex != hexOf(script) {
				continue
			}
			u := btc.UTXO{TxID: txid.String(), Vout: o.N, Address: address, Sats: sats}
			if err := set.Add(ctx, u); err != nil {
				t.Fatal(err)
			}
			head, _ := node.Head(t)
			if err := set.Confirm(ctx, u.TxID, u.Vout, head-5, tx.BlockHash); err != nil {
				t.Fatal(err)
			}
			if credit {
				if _, err := led.Credit(ctx, ledger.CreditInput{Chain: "BTC", Address: address, Symbol: "BTC",
					Amount: decimal.New(sats, -btc.Decimals), TxHash: u.TxID, LogIndex: uint(u.Vout)}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	matched, extraCredit, missed, busy := newWallet("matched"), newWallet("extra-credit"), newWallet("missed"), newWallet("busy")
	fund(matched, 50_000_000, true)
	fund(extraCredit, 20_000_000, true)
	if _, err := led.Credit(ctx, ledger.CreditInput{Chain: "BTC", Address: extraCredit, Symbol: "BTC",
		Amount: decimal.RequireFromString("0.1"), TxHash: "ab", LogIndex: 1}); err != nil {
		t.Fatal(err)
	}
	fund(missed, 30_000_000, true)
	node.Pay(t, missed, 7_000_000) // on chain, never booked
	fund(busy, 40_000_000, true)
	if _, err := led.Reserve(ctx, ledger.ReserveInput{QueueID: "pay-busy", Chain: "BTC", Address: busy, Symbol: "BTC",
		Amount: decimal.RequireFromString("0.1"), WorkflowID: "pay-busy"}); err != nil {
		t.Fatal(err)
	}
	node.Mine(t, 6)

	var logs bytes.Buffer
	r := newBTCReconciler(db, "BTC", "BTC", 6, node.Client, slog.New(slog.NewTextHandler(&logs, nil)))
	checked, mismatched, skipped, err := r.run(ctx, "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if checked != 3 || mismatched != 2 || skipped != 1 {
		t.Fatalf("checked %d, mismatched %d, skipped %d; want 3, 2, 1\n%s", checked, mismatched, skipped, logs.String())
	}
	page, err := led.Reconciliations(ctx, ledger.ReconQuery{Chain: "BTC", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ledger.Reconciliation{}
	for _, rec := range page.Reconciliations {
		got[rec.Address] = rec
	}
	if rec := got[matched]; rec.Status != ledger.ReconMatched || !rec.ChainBalance.Equal(decimal.RequireFromString("0.5")) {
		t.Errorf("the matched wallet: %+v", rec)
	}
	if rec := got[extraCredit]; rec.Status != ledger.ReconMismatch || !rec.Difference.Equal(decimal.RequireFromString("-0.1")) {
		t.Errorf("the wallet credited what the chain lacks: %+v", rec)
	}
	rec := got[missed]
	if rec.Status != ledger.ReconMismatch || len(rec.Unmatched) != 1 || rec.Unmatched[0].Side != ledger.SideChainOnly ||
		!rec.Unmatched[0].Amount.Equal(decimal.RequireFromString("0.07")) {
		t.Errorf("the wallet paid an output the set lacks: %+v", rec)
	}
	if _, ok := got[busy]; ok {
		t.Errorf("the wallet with a payment under way was reconciled")
	}
	latest, _, err := led.Mismatches(ctx, "BTC")
	if err != nil {
		t.Fatal(err)
	}
	if latest != 2 {
		t.Errorf("payflow_reconciliation_mismatches reads %d, want 2", latest)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

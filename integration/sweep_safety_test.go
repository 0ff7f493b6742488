package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/client"

	"payflow/chain"
	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/protocol"
	"payflow/workflows"
)

// nativeOnChain is addr's native balance on the ETH dev chain.
func nativeOnChain(t *testing.T, eth *ethclient.Client, addr string) decimal.Decimal {
	t.Helper()
	wei, err := eth.BalanceAt(context.Background(), common.HexToAddress(addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	return chain.FromUnits(wei, config.NativeDecimals)
}

// devSweepThreshold is the sweep_threshold the dev worker's config gives
// symbol on ETH, or zero when it has none of its own.
func devSweepThreshold(t *testing.T, symbol string) decimal.Decimal {
	t.Helper()
	stackFile, err := stacktest.Path()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(stackFile), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Chains map[string]config.ChainConfig `json:"chains"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("reading the dev config: %v", err)
	}
	if tok, ok := cfg.Chains["ETH"].Tokens[symbol]; ok && tok.SweepThreshold != "" {
		return decimal.RequireFromString(tok.SweepThreshold)
	}
	return decimal.Zero
}

// TestSweepCancelledAfterBroadcastBooksTheChain (as
// reported): an operator cancels a wallet sweep right after its token
// transfer is broadcast, as the Web UI's Cancel does. The transfer cannot be
// unsigned and mines; once the sweep ends, none of its reservations is held
// and the deposit wallet (USDT and the gas it spent) and the collection
// wallet are booked as the chain moved them.
func TestSweepCancelledAfterBroadcastBooksTheChain(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	tc := st.Temporal(t)
	ctx := context.Background()
	decimals := st.Tokens["USDT"].Decimals
	usdtOnChain := func(addr string) decimal.Decimal {
		return chain.FromUnits(stacktest.TokenBalance(t, usdt, addr), decimals)
	}

	// Above USDT's own sweep threshold, whatever the dev config makes it
	// (100,019.861 USDT under the 100,000 of the report).
	amount := devSweepThreshold(t, "USDT").Add(decimal.RequireFromString("19.861"))
	dep := createWallet(t, stacktest.RandomID("it-sweep-cancel-"))
	fundThroughTopup(t, st, db, eth, usdt, dep, amount.Shift(6).IntPart())
	collection := strings.ToLower(st.CollectionAddress)
	// The collection wallet is shared: what it owes the chain before this
	// test must be what it owes after.
	collGap := ledgerTotal(t, db, "ETH", collection, "USDT").Sub(usdtOnChain(collection))

	wctx, cancel := context.WithTimeout(ctx, workflowWait)
	defer cancel()
	run, err := tc.ExecuteWorkflow(wctx, client.StartWorkflowOptions{ID: stacktest.RandomID("it-sweep-cancel-run-"),
		TaskQueue: workflows.DefaultTaskQueue}, workflows.Sweep, workflows.SweepInput{Symbols: []string{"USDT"},
		Threshold: protocol.MustAmount("1"), Addresses: []string{dep}, ConfirmTimeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.SweepResult
	if err := run.Get(wctx, &res); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if len(res.Started) != 1 || res.Started[0].Address != dep {
		t.Fatalf("sweep started %+v; want one sweep of %s", res.Started, dep)
	}
	wfID := res.Started[0].WorkflowID

	// Right after the token transfer's broadcast: it is signed (signed_txs,
	// read first) and the sweep then shows "confirming", which only its
	// broadcast can have set (the top-up's came before the signing).
	var sweepTx string
	waitFor(t, workflowWait, "the broadcast of "+wfID+"'s token transfer", func() bool {
		if sweepTx == "" {
			_ = db.QueryRow("SELECT tx_hash FROM signed_txs WHERE workflow_id=? AND step='sweep-USDT' ORDER BY attempt LIMIT 1",
				wfID).Scan(&sweepTx)
			if sweepTx == "" {
				return false
			}
		}
		var s workflows.WalletSweepStatus
		v, err := tc.QueryWorkflow(ctx, wfID, "", workflows.QueryStatus)
		return err == nil && v.Get(&s) == nil && s.Step == workflows.StepConfirming
	})
	if err := tc.CancelWorkflow(ctx, wfID, ""); err != nil {
		t.Fatalf("cancelling %s: %v", wfID, err)
	}
	endErr := tc.GetWorkflow(wctx, wfID, "").Get(wctx, nil)
	t.Logf("wallet sweep %s ended: %v", wfID, endErr)

	// The transfer was signed: the chain mines it whatever the workflow did.
	var rcpt *types.Receipt
	waitFor(t, 2*time.Minute, "the receipt of "+sweepTx, func() bool {
		rcpt, err = eth.TransactionReceipt(ctx, common.HexToHash(sweepTx))
		return err == nil
	})
	if rcpt.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("sweep %s reverted", sweepTx)
	}

	rows, err := db.Query("SELECT reservation_key, symbol, amount FROM reservations WHERE workflow_id=? AND state='held'", wfID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var key, symbol string
		var held decimal.Decimal
		if err := rows.Scan(&key, &symbol, &held); err != nil {
			t.Fatal(err)
		}
		t.Errorf("reservation %s of %s %s still held after the sweep ended", key, held, symbol)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	if l, c := ledgerTotal(t, db, "ETH", dep, "USDT"), usdtOnChain(dep); !l.Equal(c) {
		t.Errorf("deposit wallet %s: ledger %s USDT, chain %s", dep, l, c)
	}
	if l, c := ledgerTotal(t, db, "ETH", dep, "ETH"), nativeOnChain(t, eth, dep); !l.Equal(c) {
		t.Errorf("deposit wallet %s: ledger %s ETH, chain %s (the top-up less the gas spent)", dep, l, c)
	}
	if gap := ledgerTotal(t, db, "ETH", collection, "USDT").Sub(usdtOnChain(collection)); !gap.Equal(collGap) {
		t.Errorf("collection wallet %s: ledger - chain went from %s to %s USDT (the swept %s not booked)", collection,
			collGap, gap, amount)
	}
	// The transfer was signed before the cancel and paid: the sweep ends as
	// swept, and the Web UI says so.
	if s := statusAttribute(t, tc, wfID); s != workflows.SweepStepSwept {
		t.Errorf("wallet sweep PayflowStatus = %q, want %q", s, workflows.SweepStepSwept)
	}
}

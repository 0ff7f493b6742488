package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/client"

	"payflow/chain"
	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/workflows"
)

// hotTier reads the hot tier of symbol on chainName as the treasury pass
// does: the available ledger balance of every hot and collection wallet
// payflow holds the key of, their total, and the wallet holding the most
// (of equals, the lowest address).
func hotTier(t *testing.T, ctx context.Context, chainName, symbol string, wallets *ledger.Wallets, led *ledger.Ledger) (
	total decimal.Decimal, most string) {
	t.Helper()
	var mostAvail decimal.Decimal
	for _, kind := range []ledger.WalletKind{ledger.KindHot, ledger.KindCollection} {
		ws, err := wallets.List(ctx, chainName, kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if !w.HasKey {
				continue
			}
			b, err := led.Balance(ctx, chainName, w.Address, symbol)
			if err != nil {
				t.Fatal(err)
			}
			total = total.Add(b.Available)
			if most == "" || b.Available.GreaterThan(mostAvail) || (b.Available.Equal(mostAvail) && w.Address < most) {
				most, mostAvail = w.Address, b.Available
			}
		}
	}
	return total, most
}

// TestHotTierExcessIsSweptToCold: on the real stack, a hot tier above its
// ceiling (the tier as it is, under a ceiling the run states just below
// it: the dev ceilings are far above what the tests pay from) is swept to
// the chain's cold address, which payflow registered as a watch-only
// wallet: the excess leaves the wallet holding the most, signed by
// payflow-signer against a reservation naming the cold address, and once
// confirmed the cold wallet is credited exactly once under the deposit key,
// nothing announced. Afterwards the ledger moved as the chain did for the
// hot wallet and equals the chain for the cold wallet, and a reconciliation
// run finds the cold wallet matched. A second pass while the first is in
// flight starts no second sweep. For a token and for the native coin
// (whose sweep keeps the wallet's gas).
func TestHotTierExcessIsSweptToCold(t *testing.T) {
	st := stacktest.Load(t)
	c := firstChain(t, st)
	if c.Cold == "" {
		t.Fatalf("stack.json's %s has no cold_address: `scripts/stack.sh up` runs payflowctl devstack, which writes it", c.Name)
	}
	cold := strings.ToLower(c.Cold)
	eth := c.eth(t)
	db := st.DB(t)
	tc := st.Temporal(t)
	ctx := context.Background()
	topups := st.Collect(t, topupResp, "address")
	wallets, led := ledger.NewWallets(db, nil), ledger.New(db)

	w, err := wallets.Get(ctx, c.Name, cold)
	if err != nil {
		t.Fatalf("the cold address %s is no wallet of %s (the worker registers it when it starts): %v", cold, c.Name, err)
	}
	if w.Kind != ledger.KindCold || w.HasKey || w.KeyHolder != ledger.KeyNone {
		t.Fatalf("the cold wallet is %+v; want kind cold, watch-only", w)
	}

	for _, asset := range []struct {
		symbol string
		excess decimal.Decimal
	}{
		{"USDT", decimal.RequireFromString("7.25")},
		{c.Native.Symbol, decimal.RequireFromString("0.35")},
	} {
		t.Run(asset.symbol, func(t *testing.T) {
			symbol := asset.symbol
			total, src := hotTier(t, ctx, c.Name, symbol, wallets, led)
			ceiling := total.Sub(asset.excess)
			if !ceiling.IsPositive() {
				t.Fatalf("the hot tier of %s holds %s: `make up` funds it", symbol, total)
			}
			srcLedger, srcChain := ledgerTotal(t, db, c.Name, src, symbol), c.balance(t, eth, symbol, src)
			coldLedger, coldChain := ledgerTotal(t, db, c.Name, cold, symbol), c.balance(t, eth, symbol, cold)
			if !coldLedger.Equal(coldChain) {
				t.Fatalf("before the test the cold wallet's ledger holds %s %s, the chain %s", coldLedger, symbol, coldChain)
			}

			wctx, cancel := context.WithTimeout(ctx, workflowWait)
			defer cancel()
			pass := func() workflows.TreasuryResult {
				t.Helper()
				run, err := tc.ExecuteWorkflow(wctx, client.StartWorkflowOptions{ID: stacktest.RandomID("it-treasury-"),
					TaskQueue: workflows.DefaultTaskQueue}, workflows.Treasury, workflows.TreasuryInput{Symbols: []string{symbol},
					Ceiling: protocol.NewAmount(ceiling), ConfirmTimeout: 3 * time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				var res workflows.TreasuryResult
				if err := run.Get(wctx, &res); err != nil {
					t.Fatalf("Treasury: %v", err)
				}
				return res
			}
			res := pass()
			id := workflows.TreasurySweepWorkflowID(c.Name, src, symbol)
			if len(res.Started) != 1 || res.Started[0].WorkflowID != id || !res.Started[0].Excess.Equal(asset.excess) ||
				res.Cold != cold {
				t.Fatalf("Treasury started %+v to %s; want one sweep %s of %s %s to %s", res.Started, res.Cold, id, asset.excess,
					symbol, cold)
			}
			// The first sweep holds the excess (or is still starting): a
			// second pass moves nothing more.
			if again := pass(); len(again.Started) != 0 {
				t.Errorf("a second pass started %+v while the first sweep was in flight", again.Started)
			}

			var swept workflows.WalletSweepResult
			if err := tc.GetWorkflow(wctx, id, "").Get(wctx, &swept); err != nil {
				t.Fatalf("treasury sweep %s: %v", id, err)
			}
			if len(swept.Swept) != 1 || !swept.Swept[0].Amount.Equal(asset.excess) {
				t.Fatalf("the treasury sweep moved %+v; want %s %s", swept.Swept, asset.excess, symbol)
			}
			txHash := swept.Swept[0].TxHash

			// Signed by payflow-signer against a reservation naming the cold
			// address, settled now.
			var resKey string
			if err := db.QueryRow(`SELECT reservation_key FROM signer_audit WHERE workflow_id=? AND verdict='signed'
				AND step LIKE 'sweep-%' AND tx_hash=? LIMIT 1`, id, txHash).Scan(&resKey); err != nil {
				t.Fatalf("payflow-signer's audit has no signature of %s for %s: %v", txHash, id, err)
			}
			r, err := led.GetReservation(ctx, resKey)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(r.Recipient, cold) || r.State != "settled" || !r.Amount.Equal(asset.excess) ||
				!strings.EqualFold(r.Address, src) {
				t.Errorf("reservation %s: %s %s of %s for %s, %s; want %s of %s for %s, settled", resKey, r.Amount, r.Symbol,
					r.Address, r.Recipient, r.State, asset.excess, src, cold)
			}

			// The cold wallet: credited once under the deposit key, nothing
			// announced, its ledger equal to the chain.
			rcpt, err := eth.TransactionReceipt(ctx, common.HexToHash(txHash))
			if err != nil {
				t.Fatalf("receipt of %s: %v", txHash, err)
			}
			idx := chain.NativeLogIndex
			if symbol != c.Native.Symbol {
				idx = transferLogIndex(t, rcpt, cold)
			}
			requireBookedOnce(t, db, c, topups, cold, symbol, coldLedger, asset.excess, txHash, idx)
			if l, ch := ledgerTotal(t, db, c.Name, cold, symbol), c.balance(t, eth, symbol, cold); !l.Equal(ch) ||
				!ch.Sub(coldChain).Equal(asset.excess) {
				t.Errorf("cold wallet: ledger %s %s, chain %s (was %s); want equal, %s more", l, symbol, ch, coldChain, asset.excess)
			}
			// The hot wallet: the ledger moved as the chain did (for the
			// native coin, the excess and the gas the sweep paid).
			dl := ledgerTotal(t, db, c.Name, src, symbol).Sub(srcLedger)
			dc := c.balance(t, eth, symbol, src).Sub(srcChain)
			if !dl.Equal(dc) {
				t.Errorf("hot wallet %s: ledger moved %s %s, the chain %s", src, dl, symbol, dc)
			}
			if symbol != c.Native.Symbol && !dc.Equal(asset.excess.Neg()) {
				t.Errorf("hot wallet %s: moved %s %s on chain, want -%s", src, dc, symbol, asset.excess)
			}
			if symbol == c.Native.Symbol && !dc.LessThan(asset.excess.Neg()) {
				t.Errorf("hot wallet %s: moved %s %s on chain, want -%s and the gas", src, dc, symbol, asset.excess)
			}
		})
	}

	// Reconciliation covers the cold wallet: matched in both assets.
	wctx, cancel := context.WithTimeout(ctx, workflowWait)
	defer cancel()
	head, err := eth.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the sweeps' confirmations below the pinned block", func() bool {
		h, err := eth.BlockNumber(ctx)
		return err == nil && h >= head+uint64(st.Confirmations)
	})
	run, err := tc.ExecuteWorkflow(wctx, client.StartWorkflowOptions{ID: stacktest.RandomID("it-treasury-recon-"),
		TaskQueue: workflows.DefaultTaskQueue}, workflows.Reconcile, workflows.ReconcileInput{Confirmations: uint64(st.Confirmations)})
	if err != nil {
		t.Fatal(err)
	}
	var rec workflows.ReconcileResult
	if err := run.Get(wctx, &rec); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	for _, symbol := range []string{"USDT", c.Native.Symbol} {
		var status string
		var diff decimal.Decimal
		if err := db.QueryRow(`SELECT status, difference FROM reconciliations WHERE run_id=? AND chain=? AND address=? AND symbol=?`,
			rec.RunID, c.Name, cold, symbol).Scan(&status, &diff); err != nil {
			t.Fatalf("reconciliation %s has no row of the cold wallet's %s: %v", rec.RunID, symbol, err)
		}
		if status != "matched" {
			t.Errorf("the cold wallet's %s: %s by %s", symbol, status, diff)
		}
	}
	t.Logf("cold wallet %s reconciled in run %s", cold, rec.RunID)

	// The tier gauges: each asset's configured ceiling and floor, the cold
	// balance as the chain has it, and a hot tier above its floor (the
	// alert's expression is false on the dev stack).
	cfg := devChainConfig(t, c.Name)
	usdtCfg, _ := cfg.Asset("USDT")
	ceiling, okC := usdtCfg.Ceiling()
	floor, okF := usdtCfg.Floor()
	if !okC || !okF {
		t.Fatalf("the dev config gives %s's USDT no hot_ceiling or hot_floor: %+v", c.Name, usdtCfg.Treasury)
	}
	// Summed over the chain's cold wallets (TestRefillFromColdIsBooked
	// registers cold wallets of its own).
	colds, err := wallets.List(ctx, c.Name, ledger.KindCold)
	if err != nil {
		t.Fatal(err)
	}
	var coldSum decimal.Decimal
	for _, w := range colds {
		coldSum = coldSum.Add(c.balance(t, eth, "USDT", w.Address))
	}
	coldUSDT := coldSum.InexactFloat64()
	url := workerMetrics(t, st)[0]
	label := fmt.Sprintf(`{chain=%q,symbol="USDT"}`, c.Name)
	var m samples
	waitFor(t, time.Minute, "the worker's tier gauges of USDT", func() bool {
		m = scrape(t, url)
		return m["payflow_treasury_cold_balance"+label] == coldUSDT
	})
	if m["payflow_treasury_hot_ceiling"+label] != ceiling.InexactFloat64() || m["payflow_treasury_hot_floor"+label] != floor.InexactFloat64() {
		t.Errorf("USDT ceiling and floor gauges %v and %v; the config says %s and %s", m["payflow_treasury_hot_ceiling"+label],
			m["payflow_treasury_hot_floor"+label], ceiling, floor)
	}
	if hot := m["payflow_treasury_hot_balance"+label]; !(hot > floor.InexactFloat64()) {
		t.Errorf("USDT hot tier gauge %v is not above its floor %s on the dev stack", hot, floor)
	}
}

// devChainConfig is the dev worker's configuration of chainName
// (.dev/config.json, as payflowctl devstack wrote it).
func devChainConfig(t *testing.T, chainName string) config.ChainConfig {
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
	ch, ok := cfg.Chains[chainName]
	if !ok {
		t.Fatalf("the dev config has no chain %s", chainName)
	}
	ch.Native.Symbol = strings.ToUpper(ch.Native.Symbol)
	return ch
}

// TestRefillFromColdIsBooked: the refill of the operations runbook on the
// real stack. A cold wallet (here one whose key the test holds, registered
// as the worker registers a chain's cold_address: watch-only) is funded,
// which the listener books as any transfer into a managed wallet; then it
// sends USDT to the hot wallet, signed outside payflow. Once confirmed, the
// hot wallet is credited once under the deposit key, nothing announced, and
// the cold wallet is debited the amount and, in the native coin, the fee
// its transaction paid: the ledger equals the chain for both wallets.
func TestRefillFromColdIsBooked(t *testing.T) {
	st := stacktest.Load(t)
	c := firstChain(t, st)
	eth := c.eth(t)
	db := st.DB(t)
	ctx := context.Background()
	topups := st.Collect(t, topupResp, "address")
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cold := strings.ToLower(crypto.PubkeyToAddress(key.PublicKey).Hex())
	if _, err := ledger.NewWallets(db, nil).RegisterCold(ctx, c.Name, cold); err != nil {
		t.Fatal(err)
	}
	native := c.Native.Symbol
	funds := map[string]decimal.Decimal{native: decimal.RequireFromString("0.2"), "USDT": decimal.RequireFromString("30")}
	for _, symbol := range []string{native, "USDT"} {
		r := c.faucetSend(t, eth, symbol, cold, funds[symbol])
		idx := chain.NativeLogIndex
		if symbol != native {
			idx = transferLogIndex(t, r, cold)
		}
		requireBookedOnce(t, db, c, topups, cold, symbol, decimal.Zero, funds[symbol], r.TxHash.Hex(), idx)
	}

	hot := walletByLabel(t, db, "hot")
	hotBefore := ledgerTotal(t, db, c.Name, hot, "USDT")
	hotChainBefore := c.balance(t, eth, "USDT", hot)
	amount := decimal.RequireFromString("12.5")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tx, err := c.signFaucetTx(sctx, eth, key, "USDT", hot, amount) // the cold key, outside payflow
	if err != nil {
		t.Fatal(err)
	}
	if err := eth.SendTransaction(sctx, tx); err != nil {
		t.Fatal(err)
	}
	r, err := bind.WaitMined(sctx, eth, tx)
	if err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("the refill %s: %v", tx.Hash().Hex(), err)
	}

	requireBookedOnce(t, db, c, topups, hot, "USDT", hotBefore, amount, tx.Hash().Hex(), transferLogIndex(t, r, hot))
	if d := c.balance(t, eth, "USDT", hot).Sub(hotChainBefore); !d.Equal(amount) {
		t.Errorf("the hot wallet received %s USDT on chain, want %s", d, amount)
	}
	for _, symbol := range []string{"USDT", native} {
		var l, ch decimal.Decimal
		waitFor(t, bookingWait, "the cold wallet's "+symbol+" booked as the chain moved it", func() bool {
			l, ch = ledgerTotal(t, db, c.Name, cold, symbol), c.balance(t, eth, symbol, cold)
			return l.Equal(ch)
		})
	}
	if got := c.balance(t, eth, "USDT", cold); !got.Equal(decimal.RequireFromString("17.5")) {
		t.Errorf("the cold wallet holds %s USDT on chain, want 17.5", got)
	}
}

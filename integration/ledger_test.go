package integration

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"payflow/chain/evm"
	"payflow/chain/token"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/workflows"
)

// workflowWait bounds a Reconcile or a wallet sweep on the shared dev
// server, whose task queue other tests and benchmarks may be crowding.
const workflowWait = 6 * time.Minute

// createWallet makes a deposit wallet the way an operator does, with
// `payflowctl wallet create`, and returns its address.
func createWallet(t *testing.T, label string) string {
	t.Helper()
	return createWalletOn(t, "ETH", label)
}

// importWalletOn hands key to payflow-signer as a deposit wallet on
// chainName with `payflowctl wallet import`, as an operator does.
func importWalletOn(t *testing.T, chainName, label string, key *ecdsa.PrivateKey) string {
	t.Helper()
	return payflowctlWallet(t, "import", chainName, label, hex.EncodeToString(crypto.FromECDSA(key))+"\n")
}

// createWalletOn creates a deposit wallet on chainName whose key
// payflow-signer makes and holds.
func createWalletOn(t *testing.T, chainName, label string) string {
	t.Helper()
	return payflowctlWallet(t, "create", chainName, label, "")
}

// payflowctlWallet runs `payflowctl wallet <verb>` for a deposit wallet and
// returns the address it prints.
func payflowctlWallet(t *testing.T, verb, chainName, label, stdin string) string {
	t.Helper()
	stackFile, err := stacktest.Path()
	if err != nil {
		t.Fatal(err)
	}
	dev := filepath.Dir(stackFile)
	env, err := readEnvFile(filepath.Join(dev, "payflow.env"))
	if err != nil {
		t.Fatal(err)
	}
	st := stacktest.Load(t)
	if st.SignerSocket == "" {
		t.Fatal("stack.json names no signer_socket: payflowctl wallet asks payflow-signer for keys")
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(dev), "bin", "payflowctl"), "wallet", verb, "--chain", chainName,
		"--kind", "deposit", "--label", label)
	cmd.Stdin = strings.NewReader(stdin)
	// The key goes to payflow-signer; payflowctl holds no master key.
	cmd.Env = append(withoutPayflowEnv(os.Environ()), "PAYFLOW_MYSQL_DSN="+env["PAYFLOW_MYSQL_DSN"],
		"PAYFLOW_SIGNER_SOCKET="+st.SignerSocket)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("payflowctl wallet %s: %v: %s", verb, err, ee.Stderr)
		}
		t.Fatalf("payflowctl wallet %s: %v", verb, err)
	}
	addr := strings.TrimSpace(string(out))
	if !common.IsHexAddress(addr) {
		t.Fatalf("payflowctl printed %q, not an address", addr)
	}
	return strings.ToLower(addr)
}

// readEnvFile reads the KEY='value' lines of .dev/payflow.env.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok {
			out[k] = strings.Trim(v, `'"`)
		}
	}
	return out, sc.Err()
}

// faucetTransfer sends units of USDT from the stack's faucet and waits for
// the receipt. The faucet is shared: a nonce taken by someone else between
// our read and our send is retried.
func faucetTransfer(t *testing.T, st *stacktest.Stack, eth *ethclient.Client, usdt *token.TestUSDT, to string, units int64) *types.Receipt {
	t.Helper()
	fk, err := crypto.HexToECDSA(st.FaucetPrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var tx *types.Transaction
	for attempt := 0; ; attempt++ {
		opts, _ := bind.NewKeyedTransactorWithChainID(fk, big.NewInt(st.ChainID))
		opts.Context = ctx
		if tx, err = usdt.Transfer(opts, common.HexToAddress(to), big.NewInt(units)); err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("faucet transfer to %s: %v", to, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	r, err := bind.WaitMined(ctx, eth, tx)
	if err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("faucet transfer %s to %s failed: %v", tx.Hash().Hex(), to, err)
	}
	return r
}

// fundThroughTopup watches addr like a business system would, pays it units
// from the faucet, and waits until payflow's Deposit has credited it.
func fundThroughTopup(t *testing.T, st *stacktest.Stack, db *sql.DB, eth *ethclient.Client, usdt *token.TestUSDT,
	addr string, units int64) *types.Receipt {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"chain":"ETH","symbol":"USDT","address":%q,"timestamp":%d}`, addr, time.Now().Unix()))
	st.Publish(t, topupKey, body, true)
	waitFor(t, time.Minute, "the watch of "+addr, func() bool {
		var n int
		_ = db.QueryRow("SELECT COUNT(*) FROM watched_addresses WHERE address=?", addr).Scan(&n)
		return n == 1
	})
	r := faucetTransfer(t, st, eth, usdt, addr, units)
	want := decimal.New(units, -6)
	waitFor(t, workflowWait, fmt.Sprintf("the credit of %s USDT to %s", want, addr), func() bool {
		return balance2(t, db, addr).available.Equal(want)
	})
	return r
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// balance2 is a wallet's USDT ledger row; zero when it has none.
func balance2(t *testing.T, db *sql.DB, addr string) ledgerRow {
	t.Helper()
	var r ledgerRow
	err := db.QueryRow("SELECT available, held FROM balances WHERE chain='ETH' AND address=? AND symbol='USDT'", addr).
		Scan(&r.available, &r.held)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return r
}

// statusAttribute reads a workflow's PayflowStatus search attribute.
func statusAttribute(t *testing.T, tc client.Client, workflowID string) string {
	t.Helper()
	d, err := tc.DescribeWorkflowExecution(context.Background(), workflowID, "")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()["PayflowStatus"]
	if !ok {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

type reconRow struct {
	ledgerTotal, chainBalance, difference decimal.Decimal
	status                                string
	blockNumber                           uint64
	unmatched                             []ledger.UnmatchedTransfer
}

func reconRows(t *testing.T, db *sql.DB, runID string) map[string]reconRow {
	t.Helper()
	rows, err := db.Query(`SELECT address, ledger_total, chain_balance, difference, status, block_number, COALESCE(unmatched,'')
		FROM reconciliations WHERE run_id=? AND chain='ETH' AND symbol='USDT'`, runID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]reconRow{}
	for rows.Next() {
		var addr, unmatched string
		var r reconRow
		if err := rows.Scan(&addr, &r.ledgerTotal, &r.chainBalance, &r.difference, &r.status, &r.blockNumber, &unmatched); err != nil {
			t.Fatal(err)
		}
		if unmatched != "" {
			if err := json.Unmarshal([]byte(unmatched), &r.unmatched); err != nil {
				t.Fatalf("unmatched of %s: %v", addr, err)
			}
		}
		out[addr] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReconcileDetectsInjectedDifference pays a managed wallet on chain
// behind the ledger's back and runs Reconcile on the real stack: that wallet
// is recorded as a mismatch by exactly the amount, with the transfer as
// chain_only; a wallet credited through payflow and the untouched gas wallet
// are matched; the run's result and PayflowStatus say "mismatch".
func TestReconcileDetectsInjectedDifference(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	tc := st.Temporal(t)

	credited := createWallet(t, stacktest.RandomID("it-recon-credited-"))
	gas := walletByLabel(t, db, "gas")
	fundThroughTopup(t, st, db, eth, usdt, credited, 3_500_000)

	// Every transfer into a managed wallet is booked; what an address held
	// before payflow held its key is not. So the difference is injected by
	// paying an address, letting the listener pass that block, and only
	// then importing the address's key (as an operator taking over an
	// existing wallet would): the ledger knows nothing of those tokens.
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	injected := stacktestLower(crypto.PubkeyToAddress(key.PublicKey))
	rcpt := faucetTransfer(t, st, eth, usdt, injected, 4_321_000) // no ledger credit
	waitFor(t, time.Minute, "the listener past the injected transfer", func() bool {
		var cursor uint64
		_ = db.QueryRow("SELECT block_number FROM chain_cursor WHERE chain='ETH'").Scan(&cursor)
		return cursor > rcpt.BlockNumber.Uint64()
	})
	importWalletOn(t, "ETH", stacktest.RandomID("it-recon-injected-"), key)
	injectedAmount := decimal.RequireFromString("4.321")
	t.Cleanup(func() {
		// Book the injected transfer, as an operator would after looking into
		// the mismatch, so that later runs on the dev stack match again.
		if _, err := ledger.New(db).Credit(context.Background(), ledger.CreditInput{Chain: "ETH", Address: injected,
			Symbol: "USDT", Amount: injectedAmount, TxHash: rcpt.TxHash.Hex(), LogIndex: 0,
			Reference: "it-recon-correction"}); err != nil {
			t.Errorf("booking the injected transfer: %v", err)
		}
	})
	// Reconcile pins Confirmations below the head: wait until that covers the transfer.
	waitFor(t, time.Minute, "confirmations of the injected transfer", func() bool {
		head, err := eth.BlockNumber(context.Background())
		return err == nil && head >= rcpt.BlockNumber.Uint64()+uint64(st.Confirmations)
	})

	ctx, cancel := context.WithTimeout(context.Background(), workflowWait)
	defer cancel()
	id := stacktest.RandomID("it-reconcile-")
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.DefaultTaskQueue},
		workflows.Reconcile, workflows.ReconcileInput{Confirmations: uint64(st.Confirmations)})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.ReconcileResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if res.BlockNumber < rcpt.BlockNumber.Uint64() {
		t.Fatalf("pinned block %d is before the injected transfer's %d", res.BlockNumber, rcpt.BlockNumber)
	}

	rows := reconRows(t, db, res.RunID)
	got, ok := rows[injected]
	if !ok {
		t.Fatalf("no reconciliation of %s in run %s", injected, res.RunID)
	}
	if got.status != "mismatch" || !got.difference.Equal(injectedAmount) || !got.ledgerTotal.IsZero() ||
		!got.chainBalance.Equal(injectedAmount) || got.blockNumber != res.BlockNumber {
		t.Errorf("injected wallet: status=%s difference=%s ledger=%s chain=%s block=%d; want mismatch 4.321 0 4.321 %d",
			got.status, got.difference, got.ledgerTotal, got.chainBalance, got.blockNumber, res.BlockNumber)
	}
	wantUnmatched := []ledger.UnmatchedTransfer{{Side: ledger.SideChainOnly, TxHash: stacktestLowerHash(rcpt.TxHash),
		LogIndex: 0, BlockNumber: rcpt.BlockNumber.Uint64(), Amount: injectedAmount}}
	if len(got.unmatched) != 1 || got.unmatched[0].Side != wantUnmatched[0].Side || got.unmatched[0].TxHash != wantUnmatched[0].TxHash ||
		got.unmatched[0].LogIndex != 0 || got.unmatched[0].BlockNumber != wantUnmatched[0].BlockNumber ||
		!got.unmatched[0].Amount.Equal(injectedAmount) {
		t.Errorf("unmatched = %+v, want %+v", got.unmatched, wantUnmatched)
	}

	// The gas wallet holds whatever tokens were sent to it (refills, other
	// tests): booked, so matched, whatever the amount ("" below).
	for addr, want := range map[string]string{credited: "3.5", gas: ""} {
		r, ok := rows[addr]
		if !ok {
			t.Errorf("no reconciliation of %s in run %s", addr, res.RunID)
			continue
		}
		w := r.ledgerTotal
		if want != "" {
			w = decimal.RequireFromString(want)
		}
		if r.status != "matched" || !r.difference.IsZero() || !r.ledgerTotal.Equal(w) || !r.chainBalance.Equal(w) || len(r.unmatched) != 0 {
			t.Errorf("%s: status=%s difference=%s ledger=%s chain=%s unmatched=%d; want matched at %s",
				addr, r.status, r.difference, r.ledgerTotal, r.chainBalance, len(r.unmatched), want)
		}
	}

	// Every symbol of the chain is reconciled (tokens and the native coin).
	var recorded, mismatches int
	if err := db.QueryRow("SELECT COUNT(*), COALESCE(SUM(status='mismatch'),0) FROM reconciliations WHERE run_id=?",
		res.RunID).Scan(&recorded, &mismatches); err != nil {
		t.Fatal(err)
	}
	if res.Checked != recorded || res.Mismatches != mismatches || res.Mismatches < 1 {
		t.Errorf("result checked=%d mismatches=%d; the run recorded %d rows, %d mismatches", res.Checked, res.Mismatches,
			recorded, mismatches)
	}
	found := false
	for _, m := range res.Mismatched {
		if m.Address == injected && m.Difference.Equal(injectedAmount) {
			found = true
		}
	}
	if !found {
		t.Errorf("result does not list %s among its mismatches: %+v", injected, res.Mismatched)
	}
	if s := statusAttribute(t, tc, id); s != workflows.ReconStatusMismatch {
		t.Errorf("PayflowStatus = %q, want %q", s, workflows.ReconStatusMismatch)
	}
}

// TestSweepTopsUpGasThenCollects sweeps a fresh deposit wallet that payflow
// credited through a topup and that holds no ether: the gas wallet tops it
// up, the sweep is signed only after that top-up is confirmed, and the whole
// balance moves to the collection wallet, on chain and in the ledger.
func TestSweepTopsUpGasThenCollects(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	tc := st.Temporal(t)
	ctx := context.Background()

	dep := createWallet(t, stacktest.RandomID("it-sweep-"))
	gas := walletByLabel(t, db, "gas")
	collection := strings.ToLower(st.CollectionAddress)
	const units = 25_500_000
	amount := decimal.RequireFromString("25.5")
	fundThroughTopup(t, st, db, eth, usdt, dep, units)
	if wei, err := eth.BalanceAt(ctx, common.HexToAddress(dep), nil); err != nil || wei.Sign() != 0 {
		t.Fatalf("fresh deposit wallet holds %v wei (%v), want none", wei, err)
	}

	wctx, cancel := context.WithTimeout(ctx, workflowWait)
	defer cancel()
	id := stacktest.RandomID("it-sweep-run-")
	run, err := tc.ExecuteWorkflow(wctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.DefaultTaskQueue},
		workflows.Sweep, workflows.SweepInput{Symbols: []string{"USDT"}, Threshold: protocol.MustAmount("1"),
			Addresses: []string{dep}, ConfirmTimeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.SweepResult
	if err := run.Get(wctx, &res); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if res.StartedCount != 1 || len(res.Started) != 1 || res.Started[0].Address != dep || res.Collection != collection {
		t.Fatalf("sweep started %+v into %s; want one sweep of %s into %s", res.Started, res.Collection, dep, collection)
	}
	if want := "sweep-ETH-" + dep + "-"; !strings.HasPrefix(res.Started[0].WorkflowID, want) {
		t.Errorf("wallet sweep id %q, want %s<time>", res.Started[0].WorkflowID, want)
	}
	var ws workflows.WalletSweepResult
	if err := tc.GetWorkflow(wctx, res.Started[0].WorkflowID, "").Get(wctx, &ws); err != nil {
		t.Fatalf("WalletSweep %s: %v", res.Started[0].WorkflowID, err)
	}
	if ws.TopUpTxHash == "" || len(ws.Swept) != 1 || !ws.Swept[0].Amount.Equal(amount) {
		t.Fatalf("wallet sweep result %+v; want a top-up and one sweep of 25.5", ws)
	}

	// The top-up: a native transfer from the gas wallet to the deposit
	// wallet, confirmed before the sweep was mined.
	signer := types.LatestSignerForChainID(big.NewInt(st.ChainID))
	topTx, _, err := eth.TransactionByHash(ctx, common.HexToHash(ws.TopUpTxHash))
	if err != nil {
		t.Fatalf("top-up %s: %v", ws.TopUpTxHash, err)
	}
	if from, _ := types.Sender(signer, topTx); evm.Lower(from) != gas || topTx.To() == nil ||
		evm.Lower(*topTx.To()) != dep || topTx.Value().Sign() <= 0 || len(topTx.Data()) != 0 {
		t.Errorf("top-up %s: from %s to %v value %s; want ETH from the gas wallet %s to %s", ws.TopUpTxHash,
			evm.Lower(from), topTx.To(), topTx.Value(), gas, dep)
	}
	topRcpt, err := eth.TransactionReceipt(ctx, topTx.Hash())
	if err != nil || topRcpt.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("top-up receipt: %v", err)
	}
	sweepRcpt, err := eth.TransactionReceipt(ctx, common.HexToHash(ws.Swept[0].TxHash))
	if err != nil || sweepRcpt.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("sweep receipt %s: %v", ws.Swept[0].TxHash, err)
	}
	// Confirmed at head = top + confirmations - 1; the sweep was signed after.
	if minBlock := topRcpt.BlockNumber.Uint64() + uint64(st.Confirmations); sweepRcpt.BlockNumber.Uint64() < minBlock {
		t.Errorf("sweep mined in block %d, top-up in %d: the sweep did not wait for %d confirmations (want block >= %d)",
			sweepRcpt.BlockNumber, topRcpt.BlockNumber, st.Confirmations, minBlock)
	}
	var topState string
	if err := db.QueryRow("SELECT state FROM tracked_txs WHERE tx_hash=? AND workflow_id=?", topTx.Hash().Hex(),
		res.Started[0].WorkflowID).Scan(&topState); err != nil || (topState != "confirmed" && topState != "done") {
		t.Errorf("top-up tracked for the wallet sweep: state %q (%v), want confirmed", topState, err)
	}

	// The sweep: one Transfer of the whole balance to collection, first log of its transaction.
	if len(sweepRcpt.Logs) != 1 {
		t.Fatalf("sweep has %d logs, want 1", len(sweepRcpt.Logs))
	}
	ev, err := usdt.ParseTransfer(*sweepRcpt.Logs[0])
	if err != nil || evm.Lower(ev.From) != dep || evm.Lower(ev.To) != collection || ev.Value.Int64() != units {
		t.Fatalf("sweep log: %+v (%v); want %d units from %s to %s", ev, err, units, dep, collection)
	}
	if b := stacktest.TokenBalance(t, usdt, dep); b.Sign() != 0 {
		t.Errorf("deposit wallet still holds %s units on chain", b)
	}

	// The ledger: the deposit wallet's reservation settled by the sweep, its
	// balance zero; collection credited once, keyed by the sweep and log 0.
	if b := balance2(t, db, dep); !b.available.IsZero() || !b.held.IsZero() {
		t.Errorf("deposit wallet ledger: available %s held %s, want 0 and 0", b.available, b.held)
	}
	var state, rtx string
	key := workflows.SweepReservationKey(res.Started[0].WorkflowID, "USDT")
	if err := db.QueryRow("SELECT state, COALESCE(tx_hash,'') FROM reservations WHERE reservation_key=?", key).Scan(&state, &rtx); err != nil ||
		state != "settled" || !strings.EqualFold(rtx, ws.Swept[0].TxHash) {
		t.Errorf("reservation %s: state %q tx %q (%v); want settled by %s", key, state, rtx, err, ws.Swept[0].TxHash)
	}
	var credits int
	var credited decimal.Decimal
	var logIndex sql.NullInt64
	if err := db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(amount),0), MAX(log_index) FROM journal
		WHERE op='credit' AND chain='ETH' AND address=? AND tx_hash=?`, collection, strings.ToLower(ws.Swept[0].TxHash)).
		Scan(&credits, &credited, &logIndex); err != nil {
		t.Fatal(err)
	}
	if credits != 1 || !credited.Equal(amount) || !logIndex.Valid || logIndex.Int64 != 0 {
		t.Errorf("collection credits for the sweep: %d totalling %s at log %v; want one of 25.5 at log 0", credits, credited, logIndex)
	}
	if s := statusAttribute(t, tc, res.Started[0].WorkflowID); s != workflows.SweepStepSwept {
		t.Errorf("wallet sweep PayflowStatus = %q, want %q", s, workflows.SweepStepSwept)
	}
}

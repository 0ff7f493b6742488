package integration

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/client"

	"payflow/chain/evm"
	"payflow/custody/hd"
	"payflow/custody/kms"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/workflows"
)

// hex64 is a run of exactly 64 hex digits: the shape of a 32-byte secret
// (a master key, a private key) written as hex.
var hex64 = regexp.MustCompile(`(?i)(^|[^0-9a-f])(0x)?[0-9a-f]{64}([^0-9a-f]|$)`)

// devLegacyMasterKey is secrets.json's master_key: the key that sealed the
// dev wallets before payflow-signer ("" on a stack made since).
func devLegacyMasterKey(t *testing.T, dev string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dev, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		MasterKey string `json:"master_key"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("secrets.json: %v", err)
	}
	return s.MasterKey
}

// payflowPIDs is the pid of every worker and of the starter, by name.
func payflowPIDs(t *testing.T) map[string]string {
	t.Helper()
	pids := workerPIDs(t)
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".dev", "pids", "starter.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pids["starter"] = strings.TrimSpace(string(b))
	return pids
}

// TestNoKeyMaterialInWorkerEnvironment: payflow-signer alone reaches keys.
// No worker and not the starter has PAYFLOW_MASTER_KEY, the legacy master
// key, the faucet's key or any other 64-hex secret in its environment, nor
// does the env file and config they start from; no wallet's key is held
// under the master key or sealed in the wallets table; and every key the
// signer keeps (its keys and its mnemonic) is a KMS envelope that the legacy
// master key does not open.
func TestNoKeyMaterialInWorkerEnvironment(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	dev := filepath.Join(repoRoot(t), ".dev")
	master := devLegacyMasterKey(t, dev)
	secrets := map[string]string{"the faucet's key": strings.TrimPrefix(st.FaucetPrivateKey, "0x")}
	if master != "" {
		secrets["the legacy master key"] = strings.TrimPrefix(master, "0x")
	}

	for name, pid := range payflowPIDs(t) {
		raw, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
		if err != nil {
			t.Fatalf("%s (pid %s): %v", name, pid, err)
		}
		for _, kv := range bytes.Split(raw, []byte{0}) {
			k, v, _ := strings.Cut(string(kv), "=")
			if k == "PAYFLOW_MASTER_KEY" {
				t.Errorf("%s (pid %s) has PAYFLOW_MASTER_KEY in its environment", name, pid)
			}
			if hex64.MatchString(v) {
				t.Errorf("%s (pid %s): %s holds 64 hex digits, the shape of a secret key", name, pid, k)
			}
			for what, s := range secrets {
				if strings.Contains(strings.ToLower(v), strings.ToLower(s)) {
					t.Errorf("%s (pid %s): %s holds %s", name, pid, k, what)
				}
			}
		}
	}
	for _, f := range []string{"payflow.env", "config.json"} {
		b, err := os.ReadFile(filepath.Join(dev, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("PAYFLOW_MASTER_KEY")) || bytes.Contains(b, []byte("master_key")) {
			t.Errorf(".dev/%s names the master key", f)
		}
		for what, s := range secrets {
			if bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(s))) {
				t.Errorf(".dev/%s holds %s", f, what)
			}
		}
	}

	// The ledger: every wallet with a key is the signer's, none sealed here.
	var legacy, sealed, signerHeld int
	if err := db.QueryRow(`SELECT COALESCE(SUM(key_holder='master'),0), COUNT(enc_key), COALESCE(SUM(key_holder='signer'),0)
		FROM wallets`).Scan(&legacy, &sealed, &signerHeld); err != nil {
		t.Fatal(err)
	}
	if legacy != 0 || sealed != 0 {
		t.Errorf("wallets: %d held under the master key, %d with a sealed key; want none (payflowctl wallet migrate)", legacy, sealed)
	}
	if signerHeld == 0 {
		t.Error("no wallet's key is held by payflow-signer")
	}

	// The signer's tables: envelopes only, which the legacy key cannot open.
	var sealer *ledger.KeySealer
	if master != "" {
		mk, err := hex.DecodeString(strings.TrimPrefix(master, "0x"))
		if err != nil {
			t.Fatal("secrets.json's master_key is not hex")
		}
		if sealer, err = ledger.NewKeySealer(mk); err != nil {
			t.Fatal(err)
		}
	}
	checkEnvelope := func(what, aad string, b []byte) {
		if _, err := kms.UnmarshalSealed(b); err != nil {
			t.Errorf("%s is not a KMS envelope (%d bytes): %v", what, len(b), err)
		}
		if sealer != nil {
			if _, err := sealer.Open(aad, b); !errors.Is(err, ledger.ErrKeyDecrypt) {
				t.Errorf("%s opens under the legacy master key", what)
			}
		}
	}
	rows, err := db.Query("SELECT address, backend, sealed FROM signer_keys")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys int
	for rows.Next() {
		var addr, backend string
		var b []byte
		if err := rows.Scan(&addr, &backend, &b); err != nil {
			t.Fatal(err)
		}
		keys++
		switch {
		case backend == signerapi.BackendKMS && len(b) != 0:
			t.Errorf("signer key %s is a KMS key and has key material beside it (%d bytes)", addr, len(b))
		case backend == signerapi.BackendEnvelope:
			checkEnvelope("the signer's key of "+addr, addr, b)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if keys == 0 {
		t.Error("signer_keys is empty: payflow-signer holds no key")
	}
	var mnemonic []byte
	if err := db.QueryRow("SELECT sealed_mnemonic FROM signer_state").Scan(&mnemonic); err != nil {
		t.Fatalf("signer_state: %v", err)
	}
	checkEnvelope("the signer's mnemonic", "", mnemonic)
}

// newHDAddress runs `payflowctl address new` against the dev stack and
// returns what it printed.
func newHDAddress(t *testing.T, c ctl, chainName, label string) addressOut {
	t.Helper()
	out, errOut, code := c.exec(t, "", "address", "new", "-chain", chainName, "-label", label,
		"-config", filepath.Join(c.dev, "config.json"), "-env-file", filepath.Join(c.dev, "payflow.env"))
	if code != 0 {
		t.Fatalf("payflowctl address new: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var a addressOut
	if err := json.Unmarshal([]byte(out), &a); err != nil || !common.IsHexAddress(a.Address) || a.Index == nil {
		t.Fatalf("payflowctl address new printed %q (%v)", out, err)
	}
	return a
}

type addressOut struct {
	Chain   string  `json:"chain"`
	Address string  `json:"address"`
	Index   *uint32 `json:"index"`
}

// devAccountXPub is the account xpub of the worker's config.json.
func devAccountXPub(t *testing.T, dev string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dev, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Custody struct {
			AccountXPub string `json:"account_xpub"`
		} `json:"custody"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Custody.AccountXPub == "" {
		t.Fatalf("config.json names no custody.account_xpub (%v)", err)
	}
	return cfg.Custody.AccountXPub
}

// TestHDDepositCreditedAndSwept: `payflowctl address new --chain ETH`
// hands out the account's next child address (no key anywhere but in the
// signer's mnemonic); a business system watches it, USDT sent to it is
// announced status=2 then status=1 and credited once; a sweep tops it up
// with gas and payflow-signer signs its sweep with the derived child key:
// the whole balance moves to the collection wallet, and the ledger equals
// the chain for both addresses.
func TestHDDepositCreditedAndSwept(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	tc := st.Temporal(t)
	c := buildCtl(t)
	ctx := context.Background()
	topups := st.Collect(t, topupResp, "address")

	a := newHDAddress(t, c, "ETH", stacktest.RandomID("it-hd-"))
	dep := strings.ToLower(a.Address)
	acct, err := hd.NewAccount(devAccountXPub(t, c.dev))
	if err != nil {
		t.Fatal(err)
	}
	if want, err := acct.DepositAddress(*a.Index); err != nil || evm.Lower(want) != dep || a.Chain != "ETH" {
		t.Fatalf("address new gave %+v; the account's child %d is %s (%v)", a, *a.Index, want.Hex(), err)
	}
	w, err := ledger.NewWallets(db, nil).Get(ctx, "ETH", dep)
	if err != nil || w.Kind != ledger.KindDeposit || w.KeyHolder != ledger.KeySigner || w.HDIndex == nil || *w.HDIndex != *a.Index {
		t.Fatalf("wallet of %s: %+v (%v); want a deposit wallet held by the signer at index %d", dep, w, err, *a.Index)
	}
	second := newHDAddress(t, c, "ETH", stacktest.RandomID("it-hd-"))
	if *second.Index <= *a.Index || strings.EqualFold(second.Address, dep) {
		t.Fatalf("second address %+v after %+v: want the next index", second, a)
	}

	const units = 31_250_000
	amount := decimal.New(units, -6)
	r := fundThroughTopup(t, st, db, eth, usdt, dep, units)
	got := topups.Wait(t, dep, 2, responseWait)
	if len(got) != 2 || status(got[0]) != "2" || status(got[1]) != "1" {
		t.Fatalf("topup answers for %s: %v; want status 2 then 1", dep, got)
	}
	for _, d := range got {
		if !strings.EqualFold(fmt.Sprint(d.Body["tx_hash"]), r.TxHash.Hex()) || fmt.Sprint(d.Body["amount"]) != amount.String() {
			t.Errorf("topup answer %s: want %s USDT of %s", d.Raw, amount, r.TxHash.Hex())
		}
	}

	wctx, cancel := context.WithTimeout(ctx, workflowWait)
	defer cancel()
	run, err := tc.ExecuteWorkflow(wctx, client.StartWorkflowOptions{ID: stacktest.RandomID("it-hd-sweep-run-"),
		TaskQueue: workflows.DefaultTaskQueue}, workflows.Sweep, workflows.SweepInput{Symbols: []string{"USDT"},
		Threshold: protocol.MustAmount("1"), Addresses: []string{dep}, ConfirmTimeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.SweepResult
	if err := run.Get(wctx, &res); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	collection := strings.ToLower(st.CollectionAddress)
	if len(res.Started) != 1 || res.Started[0].Address != dep {
		t.Fatalf("sweep started %+v; want one sweep of %s", res.Started, dep)
	}
	var ws workflows.WalletSweepResult
	if err := tc.GetWorkflow(wctx, res.Started[0].WorkflowID, "").Get(wctx, &ws); err != nil {
		t.Fatalf("WalletSweep %s: %v", res.Started[0].WorkflowID, err)
	}
	if len(ws.Swept) != 1 || !ws.Swept[0].Amount.Equal(amount) {
		t.Fatalf("wallet sweep result %+v; want one sweep of %s", ws, amount)
	}
	rcpt, err := eth.TransactionReceipt(ctx, common.HexToHash(ws.Swept[0].TxHash))
	if err != nil || rcpt.Status != types.ReceiptStatusSuccessful || len(rcpt.Logs) != 1 {
		t.Fatalf("sweep receipt %s: %+v, %v", ws.Swept[0].TxHash, rcpt, err)
	}
	ev, err := usdt.ParseTransfer(*rcpt.Logs[0])
	if err != nil || evm.Lower(ev.From) != dep || evm.Lower(ev.To) != collection || ev.Value.Int64() != units {
		t.Fatalf("sweep log %+v (%v); want %d units from %s to %s", ev, err, units, dep, collection)
	}
	if b := stacktest.TokenBalance(t, usdt, dep); b.Sign() != 0 {
		t.Errorf("the HD address still holds %s units", b)
	}
	if b := balance2(t, db, dep); !b.available.IsZero() || !b.held.IsZero() {
		t.Errorf("HD address ledger: available %s held %s, want 0 and 0", b.available, b.held)
	}
	var credits int
	if err := db.QueryRow("SELECT COUNT(*) FROM journal WHERE op='credit' AND chain='ETH' AND address=? AND tx_hash=?",
		collection, strings.ToLower(ws.Swept[0].TxHash)).Scan(&credits); err != nil || credits != 1 {
		t.Errorf("collection credits for the sweep: %d (%v), want 1", credits, err)
	}
	requireLedgerMatchesChain(t, st, dep)
	requireLedgerMatchesChain(t, st, collection)
}

// signerStatus runs `payflowctl signer status --json` against the dev stack.
func signerStatus(t *testing.T, c ctl) signerapi.Status {
	t.Helper()
	out, errOut, code := c.exec(t, "", "signer", "status", "-json",
		"-config", filepath.Join(c.dev, "config.json"), "-env-file", filepath.Join(c.dev, "payflow.env"))
	if code != 0 {
		t.Fatalf("payflowctl signer status: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var s signerapi.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("payflowctl signer status printed %q: %v", out, err)
	}
	return s
}

// kmsHotWallet is a hot wallet of ETH whose key is a KMS key, by the
// signer's status.
func kmsHotWallet(t *testing.T, db *sql.DB, s signerapi.Status) string {
	t.Helper()
	hot, err := ledger.NewWallets(db, nil).List(context.Background(), "ETH", ledger.KindHot)
	if err != nil {
		t.Fatal(err)
	}
	backend := map[string]signerapi.KeyInfo{}
	for _, k := range s.Keys {
		backend[strings.ToLower(k.Address)] = k
	}
	for _, w := range hot {
		if k := backend[w.Address]; k.Backend == signerapi.BackendKMS && k.KMSKeyID != "" && w.KeyHolder == ledger.KeySigner {
			return w.Address
		}
	}
	t.Fatalf("no ETH hot wallet is a KMS key of payflow-signer (hot wallets %+v, signer keys %+v)", hot, s.Keys)
	return ""
}

// TestKMSHotWalletPays: a withdraw and a payment from a hot wallet whose key
// is a KMS key (it never leaves the KMS) are signed by payflow-signer, paid
// on chain from that wallet and answered once each; the signer's audit shows
// both signatures; the ledger equals the chain.
func TestKMSHotWalletPays(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	c := buildCtl(t)
	ctx := context.Background()
	wresp := st.Collect(t, withdrawResp, "queue_id")
	presp := st.Collect(t, payResp, "queue_id")

	hot := kmsHotWallet(t, db, signerStatus(t, c))
	if b := balance(t, st, hot); b.available.LessThan(decimal.NewFromInt(10)) {
		t.Fatalf("KMS hot wallet %s has %s USDT available; `make up` funds it", hot, b.available)
	}
	wq, pq, order := stacktest.RandomID("it-kms-withdraw-"), stacktest.RandomID("it-kms-pay-"), stacktest.RandomID("order-")
	wto, pto := stacktest.RandomAddress(), stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(wq, hot, wto, "3.25"), true)
	st.Publish(t, payKey, payBody(pq, order, hot, pto, "1.75"), true)

	signer := types.LatestSignerForChainID(big.NewInt(st.ChainID))
	for _, p := range []struct {
		resp      *stacktest.Collector
		qid, to   string
		units     int64
		workflow  string
		flowLabel string
	}{
		{wresp, wq, wto, 3_250_000, workflows.WithdrawWorkflowID(wq), "withdraw"},
		{presp, pq, pto, 1_750_000, workflows.PayWorkflowID(pq), "pay"},
	} {
		got := onlyOne(t, p.resp, p.qid)
		if status(got) != "1" || fmt.Sprint(got.Body["from_address"]) != hot {
			t.Fatalf("%s answer %s; want status 1 from %s", p.flowLabel, got.Raw, hot)
		}
		txHash := fmt.Sprint(got.Body["tx_hash"])
		tx, _, err := eth.TransactionByHash(ctx, common.HexToHash(txHash))
		if err != nil {
			t.Fatalf("%s tx %s: %v", p.flowLabel, txHash, err)
		}
		if from, err := types.Sender(signer, tx); err != nil || evm.Lower(from) != hot {
			t.Errorf("%s tx %s is signed by %s (%v), want the KMS hot wallet %s", p.flowLabel, txHash, from.Hex(), err, hot)
		}
		if r, err := eth.TransactionReceipt(ctx, tx.Hash()); err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("%s tx %s: receipt %v", p.flowLabel, txHash, err)
		}
		if b := stacktest.TokenBalance(t, usdt, p.to); b.Cmp(big.NewInt(p.units)) != 0 {
			t.Errorf("%s recipient holds %s units, want %d", p.flowLabel, b, p.units)
		}
		var audited int
		if err := db.QueryRow("SELECT COUNT(*) FROM signer_audit WHERE workflow_id=? AND verdict='signed' AND LOWER(tx_hash)=LOWER(?)",
			p.workflow, txHash).Scan(&audited); err != nil || audited == 0 {
			t.Errorf("the signer's audit has no signature of %s for %s (%d rows, %v)", txHash, p.workflow, audited, err)
		}
	}
	requireLedgerMatchesChain(t, st, hot)
}

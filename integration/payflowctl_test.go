package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
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
	"github.com/ethereum/go-ethereum/params"
	"github.com/shopspring/decimal"

	"payflow/audit"
	"payflow/internal/stacktest"
	"payflow/workflows"
)

// `payflowctl payment …` on the real stack: the binary built from this
// tree, run against the dev stack's configuration as an operator runs it.

// ctl runs one payflowctl build.
type ctl struct {
	bin, dev string
}

// buildCtl builds payflowctl from the working tree into a temporary directory.
func buildCtl(t *testing.T) ctl {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "payflowctl")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/payflowctl")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building payflowctl: %v\n%s", err, out)
	}
	p, err := stacktest.Path()
	if err != nil {
		t.Fatal(err)
	}
	return ctl{bin: bin, dev: filepath.Dir(p)}
}

// run runs `payflowctl payment args…` with the dev stack's config and env
// file (as scripts/stack.sh starts the worker) and returns stdout, stderr and
// the exit status.
func (c ctl) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	full := append([]string{"payment"}, args...)
	full = append(full, "--config", filepath.Join(c.dev, "config.json"), "--env-file", filepath.Join(c.dev, "payflow.env"))
	return c.exec(t, "", full...)
}

// exec runs payflowctl in dir with the test's environment minus PAYFLOW_*.
func (c ctl) exec(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = dir
	cmd.Env = withoutPayflowEnv(os.Environ())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("payflowctl %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// trail returns the audit records of the payment queueID (payflowctl audit
// list --payment, newest first).
func (c ctl) trail(t *testing.T, queueID string) []audit.Entry {
	t.Helper()
	out, errOut, code := c.exec(t, "", "audit", "list", "-payment", queueID, "-json",
		"-config", filepath.Join(c.dev, "config.json"), "-env-file", filepath.Join(c.dev, "payflow.env"))
	var es []audit.Entry
	if code != 0 || json.Unmarshal([]byte(out), &es) != nil {
		t.Fatalf("payflowctl audit list -payment %s: exit %d\nstdout: %s\nstderr: %s", queueID, code, out, errOut)
	}
	return es
}

// requireRecorded fails unless the trail of queueID holds a payflowctl
// record of action by actor with reason, done.
func (c ctl) requireRecorded(t *testing.T, queueID, action, actor, reason string) audit.Entry {
	t.Helper()
	es := c.trail(t, queueID)
	for _, e := range es {
		if e.Action == action && e.Source == audit.SourceCLI && e.Actor == actor && e.Reason == reason && e.Outcome == audit.OutcomeDone {
			return e
		}
	}
	t.Fatalf("no %s by %s (%q) in the audit trail of %s: %+v", action, actor, reason, queueID, es)
	return audit.Entry{}
}

// ok runs a command that must succeed and returns its stdout.
func (c ctl) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := c.run(t, args...)
	if code != 0 {
		t.Fatalf("payflowctl payment %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// json runs a command with --json that must succeed and decodes its output.
func (c ctl) json(t *testing.T, v any, args ...string) {
	t.Helper()
	out := c.ok(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("payflowctl payment %v --json printed %q: %v", args, out, err)
	}
}

// refused runs a command that must be refused (exit 3) with a reason
// containing want, and returns that reason.
func (c ctl) refused(t *testing.T, want string, args ...string) string {
	t.Helper()
	out, errOut, code := c.run(t, args...)
	if code != 3 || !strings.Contains(errOut, want) {
		t.Fatalf("payflowctl payment %v: exit %d, want 3 (refused) saying %q\nstdout: %s\nstderr: %s", args, code, want, out, errOut)
	}
	var r struct {
		Refused bool   `json:"refused"`
		Reason  string `json:"reason"`
	}
	out, _, code = c.run(t, append(args, "--json")...)
	if code != 3 || json.Unmarshal([]byte(out), &r) != nil || !r.Refused || !strings.Contains(r.Reason, want) {
		t.Fatalf("payflowctl payment %v --json: exit %d, printed %q; want {\"refused\":true,…}", args, code, out)
	}
	return r.Reason
}

// ctlShow is the part of `payment show --json` the tests read.
type ctlShow struct {
	QueueID    string `json:"queue_id"`
	Flow       string `json:"flow"`
	WorkflowID string `json:"workflow_id"`
	Step       string `json:"step"`
	Summary    string `json:"summary"`
	Workflow   *struct {
		Status  string `json:"status"`
		Running bool   `json:"running"`
	} `json:"workflow"`
	Request *struct {
		ToAddress string `json:"to_address"`
		OrderID   string `json:"order_id"`
	} `json:"request"`
	Reservation *struct {
		State   string `json:"state"`
		Amount  string `json:"amount"`
		Address string `json:"address"`
	} `json:"reservation"`
	Transfers []struct {
		State     string `json:"state"`
		TxHash    string `json:"tx_hash"`
		Confirmed bool   `json:"confirmed"`
		Paid      bool   `json:"paid"`
		Attempts  []struct {
			TxHash     string `json:"tx_hash"`
			Nonce      uint64 `json:"nonce"`
			ChainState string `json:"chain_state"`
			Block      uint64 `json:"block_number"`
		} `json:"attempts"`
	} `json:"transfers"`
	Answer struct {
		Recorded  bool `json:"recorded"`
		Published bool `json:"published"`
		Response  *struct {
			Status int    `json:"status"`
			Error  string `json:"error"`
			TxHash string `json:"tx_hash"`
		} `json:"response"`
	} `json:"answer"`
}

type ctlListRow struct {
	QueueID    string `json:"queue_id"`
	WorkflowID string `json:"workflow_id"`
	Status     string `json:"status"`
	Workflow   string `json:"workflow"`
}

// awaitListed polls `payment list` (Temporal's visibility lags a little)
// until every one of wfIDs is listed.
func (c ctl) awaitListed(t *testing.T, wfIDs []string, args ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var rows []ctlListRow
		c.json(t, &rows, append([]string{"list", "--limit", "1000"}, args...)...)
		seen := map[string]bool{}
		for _, r := range rows {
			seen[r.WorkflowID] = true
		}
		missing := 0
		for _, id := range wfIDs {
			if !seen[id] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("payflowctl payment list %v never listed all of %v", args, wfIDs)
		}
		time.Sleep(time.Second)
	}
}

// TestPaymentCLIShowListApproveReject: show and list on payments waiting for
// approval and on a paid one; approve and reject through the CLI (each
// answers once: status 1 paid, status 0 with the operator's reason); approve
// of a payment that no longer waits and release of an answered payment are
// refused; the ledger equals the chain afterwards. (The dev approval timeout
// is 30 s: the waiting payments are decided first.)
func TestPaymentCLIShowListApproveReject(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	tc := st.Temporal(t)
	usdt := st.USDT(t, st.Eth(t))
	c := buildCtl(t)
	wresp := st.Collect(t, withdrawResp, "queue_id")
	presp := st.Collect(t, payResp, "queue_id")

	from := walletByLabel(t, db, "user-1")
	paid := stacktest.RandomID("it-ctl-paid-")
	paidTo := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(paid, from, paidTo, "1.25"), true)

	// Above the dev approval threshold (50,000): they wait for an operator,
	// for 30 s, so they are decided first.
	approveQ, rejectQ := stacktest.RandomID("it-ctl-approve-"), stacktest.RandomID("it-ctl-reject-")
	approveWF, rejectWF := workflows.WithdrawWorkflowID(approveQ), workflows.PayWorkflowID(rejectQ)
	approveTo := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(approveQ, st.CollectionAddress, approveTo, "50001"), true)
	st.Publish(t, payKey, payBody(rejectQ, "order-"+rejectQ, st.CollectionAddress, stacktest.RandomAddress(), "50002"), true)
	awaitStep(t, tc, approveWF, workflows.StepApproval)
	awaitStep(t, tc, rejectWF, workflows.StepApproval)

	var waiting ctlShow
	c.json(t, &waiting, "show", approveQ)
	if waiting.Flow != "withdraw" || waiting.WorkflowID != approveWF || waiting.Step != workflows.StepApproval ||
		waiting.Workflow == nil || !waiting.Workflow.Running || waiting.Reservation == nil || waiting.Reservation.State != "held" ||
		waiting.Reservation.Amount != "50001" || waiting.Reservation.Address != st.CollectionAddress ||
		len(waiting.Transfers) != 0 || waiting.Answer.Recorded {
		t.Errorf("show of a payment awaiting approval: %+v", waiting)
	}
	if text := c.ok(t, "show", rejectQ, "--flow", "pay"); !strings.Contains(text, "awaiting-approval") ||
		!strings.Contains(text, "held: 50002 USDT") || !strings.Contains(text, "order_id order-"+rejectQ) ||
		!strings.Contains(text, "nothing signed") || !strings.Contains(text, "none recorded") {
		t.Errorf("show (text) of a pay awaiting approval:\n%s", text)
	}
	c.awaitListed(t, []string{approveWF, rejectWF}, "--status", "awaiting-approval")

	c.ok(t, "approve", approveQ, "--as", "it-operator", "--reason", "customer verified by phone")
	c.ok(t, "reject", rejectQ, "--by", "it-operator", "--reason", "looks wrong")
	if got := onlyOne(t, wresp, approveQ); status(got) != "1" {
		t.Errorf("approved through the CLI: status %s error %v", status(got), got.Body["error"])
	}
	got := onlyOne(t, presp, rejectQ)
	if status(got) != "0" || fmt.Sprint(got.Body["error"]) != "rejected by it-operator: looks wrong" {
		t.Errorf("rejected through the CLI: status %s error %v", status(got), got.Body["error"])
	}
	c.refused(t, "needs --reason", "approve", rejectQ)
	c.requireRecorded(t, approveQ, audit.ActionApprove, "it-operator", "customer verified by phone")
	c.requireRecorded(t, rejectQ, audit.ActionReject, "it-operator", "looks wrong")
	c.refused(t, "only a running payment waiting for approval", "approve", rejectQ, "--reason", "second thoughts")
	if b := stacktest.TokenBalance(t, usdt, approveTo); b.Cmp(big.NewInt(50001_000_000)) != 0 {
		t.Errorf("approved recipient holds %s units, want 50001000000", b)
	}
	// Other tests move the collection wallet too: its part of this test is
	// read from the two reservations.
	var approved, rejected ctlShow
	c.json(t, &approved, "show", approveQ)
	c.json(t, &rejected, "show", rejectQ)
	if approved.Reservation == nil || approved.Reservation.State != "settled" || rejected.Reservation == nil ||
		rejected.Reservation.State != "released" || len(rejected.Transfers) != 0 || rejected.Answer.Response == nil ||
		rejected.Answer.Response.Error != "rejected by it-operator: looks wrong" {
		t.Errorf("after approve and reject: approved %+v\nrejected %+v", approved, rejected)
	}

	if got := wresp.Wait(t, paid, 1, responseWait)[0]; status(got) != "1" {
		t.Fatalf("paid withdraw: status %s error %v", status(got), got.Body["error"])
	}
	var done ctlShow
	c.json(t, &done, "show", paid)
	if done.Step != workflows.StepSucceeded || done.Workflow == nil || done.Workflow.Status != "Completed" ||
		done.Reservation == nil || done.Reservation.State != "settled" || len(done.Transfers) != 1 ||
		done.Transfers[0].State != "mined" || !done.Transfers[0].Paid || !done.Transfers[0].Confirmed ||
		len(done.Transfers[0].Attempts) != 1 || done.Transfers[0].Attempts[0].ChainState != "mined" ||
		done.Transfers[0].Attempts[0].Block == 0 || !done.Answer.Published || done.Answer.Response == nil ||
		done.Answer.Response.Status != 1 || done.Answer.Response.TxHash != done.Transfers[0].TxHash {
		t.Errorf("show of a paid withdraw: %+v", done)
	}
	// Run as an operator on the dev machine runs it: from the repository,
	// no flags; the dev stack's config is found.
	if c.dev == filepath.Join(repoRoot(t), ".dev") {
		out, errOut, code := c.exec(t, repoRoot(t), "payment", "show", paid)
		if code != 0 || !strings.Contains(out, "paid in "+done.Transfers[0].TxHash) || !strings.Contains(out, "settled: 1.25 USDT") ||
			!strings.Contains(out, "status 1, published") || !strings.Contains(out, "mined at block") {
			t.Errorf("show (text, dev config found) of a paid withdraw: exit %d\n%s%s", code, out, errOut)
		}
	}
	c.awaitListed(t, []string{workflows.WithdrawWorkflowID(paid), approveWF}, "--status", "succeeded")
	c.awaitListed(t, []string{rejectWF}, "--status", "failed", "--execution", "completed")
	c.refused(t, "already recorded", "release", paid, "--reason", "it-test")
	if n := len(wresp.Get(paid)); n != 1 {
		t.Errorf("%d answers for the paid withdraw, want 1", n)
	}
	requireLedgerMatchesChain(t, st, from)
	requireLedgerMatchesChain(t, st, st.CollectionAddress)
}

// TestPaymentCLIRelease: a withdraw from a fresh wallet is signed and
// broadcast but cannot be mined yet (its wallet's previous nonce was signed
// and never sent: a nonce gap). Release is refused while the workflow runs,
// and, once it is terminated, while its transfer can still be mined; the
// ledger equals the chain then (the amount is held). The operator then uses
// the nonce with a 0-value self-transfer (and fills the gap); once that is
// confirmed, release records and publishes exactly one status=0 answer and
// releases the reservation; the ledger equals the chain; a second release is
// refused.
func TestPaymentCLIRelease(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	tc := st.Temporal(t)
	c := buildCtl(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	ctx := context.Background()

	// A fresh wallet: the nonce gap below blocks no other test's payments.
	// Its key is handed to payflow-signer and kept here, to play the
	// operator's self-transfer below.
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	w := importWalletOn(t, "ETH", stacktest.RandomID("it-ctl-release-"), key)
	fundThroughTopup(t, st, db, eth, usdt, w, 10_000_000)
	sendEther(t, st, eth, w, big.NewInt(100_000_000_000_000_000)) // 0.1 ETH of gas
	// The wallet is watched: the listener sees the ether as a native deposit,
	// and the ledger, which the gas is held from, is credited with it.
	waitFor(t, workflowWait, "the credit of 0.1 ETH to "+w, func() bool {
		var avail decimal.Decimal
		_ = db.QueryRow("SELECT available FROM balances WHERE chain='ETH' AND address=? AND symbol='ETH'", w).Scan(&avail)
		return avail.Equal(decimal.RequireFromString("0.1"))
	})
	gap, err := eth.PendingNonceAt(ctx, common.HexToAddress(w))
	if err != nil {
		t.Fatal(err)
	}
	// Its nonce lane one ahead of the chain: what a transfer signed and
	// never sent (a workflow terminated between the two) leaves behind.
	if _, err := db.Exec(`INSERT INTO nonces (chain, address, next_nonce) VALUES ('ETH', ?, ?)
		ON DUPLICATE KEY UPDATE next_nonce=VALUES(next_nonce)`, w, gap+1); err != nil {
		t.Fatal(err)
	}

	qid := stacktest.RandomID("it-ctl-release-")
	wfID := workflows.WithdrawWorkflowID(qid)
	to := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, withdrawBody(qid, w, to, "2"), true)
	awaitStep(t, tc, wfID, workflows.StepConfirming) // signed and broadcast
	var orig types.Transaction
	var raw []byte
	var nonce uint64
	if err := db.QueryRow("SELECT nonce, raw FROM signed_txs WHERE workflow_id=? AND attempt=0", wfID).Scan(&nonce, &raw); err != nil {
		t.Fatal(err)
	}
	if err := orig.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	if nonce != gap+1 {
		t.Fatalf("transfer signed at nonce %d, want %d (behind the gap)", nonce, gap+1)
	}

	var running ctlShow
	c.json(t, &running, "show", qid, "--flow", "withdraw")
	if running.Workflow == nil || !running.Workflow.Running || running.Reservation == nil || running.Reservation.State != "held" ||
		len(running.Transfers) != 1 || running.Transfers[0].State != "pending" || len(running.Transfers[0].Attempts) != 1 ||
		running.Transfers[0].Attempts[0].ChainState != "pending" || running.Transfers[0].Attempts[0].Nonce != nonce {
		t.Errorf("show of a broadcast, unmined withdraw: %+v", running)
	}
	c.refused(t, "still running", "release", qid, "--reason", "it-test")
	requireLedgerMatchesChain(t, st, w)

	if err := tc.TerminateWorkflow(ctx, wfID, "", "integration test: an abandoned payment"); err != nil {
		t.Fatal(err)
	}
	c.refused(t, "can still be mined", "release", qid, "--reason", "it-test")
	if n := len(resp.Get(qid)); n != 0 {
		t.Fatalf("%d answers after a refused release", n)
	}
	if b := balance(t, st, w); !b.held.Equal(decimal.NewFromInt(2)) {
		t.Errorf("held %s after a refused release, want 2", b.held)
	}
	requireLedgerMatchesChain(t, st, w)

	// The operator uses the payment's nonce with a 0-value self-transfer at a
	// higher fee (it replaces the queued transfer), and fills the gap.
	cancel := sendSelf(t, st, eth, key, nonce, new(big.Int).Mul(orig.GasTipCap(), big.NewInt(3)),
		new(big.Int).Mul(orig.GasFeeCap(), big.NewInt(3)))
	fill := sendSelf(t, st, eth, key, gap, nil, nil)
	for _, tx := range []*types.Transaction{fill, cancel} {
		wctx, stop := context.WithTimeout(ctx, 2*time.Minute)
		r, err := bind.WaitMined(wctx, eth, tx)
		stop()
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("self-transfer %s: %v", tx.Hash().Hex(), err)
		}
	}
	if _, err := eth.TransactionReceipt(ctx, orig.Hash()); err == nil {
		t.Fatalf("the payment's transfer %s was mined; its nonce was to be used by %s", orig.Hash().Hex(), cancel.Hash().Hex())
	}

	// The chain proves it once the self-transfer is confirmations deep.
	var dropped ctlShow
	waitFor(t, 2*time.Minute, "show to say the transfer is dropped", func() bool {
		c.json(t, &dropped, "show", qid)
		return len(dropped.Transfers) == 1 && dropped.Transfers[0].State == "dropped"
	})
	if dropped.Workflow == nil || dropped.Workflow.Status != "Terminated" || dropped.Answer.Recorded ||
		dropped.Transfers[0].Attempts[0].ChainState != "dropped" {
		t.Errorf("show of a terminated, dropped withdraw: %+v", dropped)
	}
	if out := c.ok(t, "release", qid, "--dry-run"); !strings.Contains(out, "may be released") {
		t.Errorf("release --dry-run printed %q", out)
	}
	if n := len(resp.Get(qid)); n != 0 {
		t.Fatalf("%d answers after release --dry-run", n)
	}

	var rel struct {
		Answer struct {
			Status      int    `json:"status"`
			Error       string `json:"error"`
			FromAddress string `json:"from_address"`
		} `json:"answer"`
		Reservation struct {
			State string `json:"state"`
		} `json:"reservation"`
	}
	c.json(t, &rel, "release", qid, "--as", "it-releaser", "--reason", "the transfer was replaced by hand")
	if rel.Answer.Status != 0 || !strings.HasPrefix(rel.Answer.Error, "released by an operator: ") || rel.Reservation.State != "released" {
		t.Errorf("release printed %+v", rel)
	}
	got := onlyOne(t, resp, qid)
	if status(got) != "0" || !strings.HasPrefix(fmt.Sprint(got.Body["error"]), "released by an operator: ") ||
		fmt.Sprint(got.Body["from_address"]) != w || fmt.Sprint(got.Body["to_address"]) != to ||
		!strings.EqualFold(fmt.Sprint(got.Body["tx_hash"]), orig.Hash().Hex()) || got.MessageID != workflows.AnswerID(wfID) {
		t.Errorf("release answer: %s (message id %s)", got.Raw, got.MessageID)
	}
	if b := balance(t, st, w); !b.available.Equal(decimal.NewFromInt(10)) || !b.held.IsZero() {
		t.Errorf("ledger of %s after release: available %s held %s, want 10 and 0", w, b.available, b.held)
	}
	if b := stacktest.TokenBalance(t, usdt, to); b.Sign() != 0 {
		t.Errorf("recipient holds %s units: the released payment paid", b)
	}
	requireLedgerMatchesChain(t, st, w)

	c.refused(t, "already recorded", "release", qid, "--reason", "it-test")
	rec := c.requireRecorded(t, qid, audit.ActionRelease, "it-releaser", "the transfer was replaced by hand")
	var changed struct {
		AnswerStatus *int `json:"answer_status"`
	}
	if rec.Payment != wfID || json.Unmarshal(rec.Changes, &changed) != nil || changed.AnswerStatus == nil || *changed.AnswerStatus != 0 {
		t.Errorf("release record: %+v (changes %s)", rec, rec.Changes)
	}
	var after ctlShow
	c.json(t, &after, "show", qid)
	if !after.Answer.Published || after.Answer.Response == nil || after.Answer.Response.Status != 0 ||
		after.Reservation == nil || after.Reservation.State != "released" {
		t.Errorf("show after release: %+v", after)
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(qid)); n != 1 {
		t.Errorf("%d answers, want exactly 1", n)
	}
}

// sendSelf sends a 0-value self-transfer from key's address at nonce, with
// the given fees (nil: what the network asks now), and returns it.
func sendSelf(t *testing.T, st *stacktest.Stack, eth *ethclient.Client, key *ecdsa.PrivateKey, nonce uint64, tip, feeCap *big.Int) *types.Transaction {
	t.Helper()
	ctx := context.Background()
	if tip == nil {
		var err error
		if tip, err = eth.SuggestGasTipCap(ctx); err != nil {
			t.Fatal(err)
		}
		head, err := eth.HeaderByNumber(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		feeCap = new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	}
	self := crypto.PubkeyToAddress(key.PublicKey)
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(big.NewInt(st.ChainID)), &types.DynamicFeeTx{
		ChainID: big.NewInt(st.ChainID), Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: params.TxGas, To: &self,
		Value: new(big.Int)})
	if err != nil {
		t.Fatal(err)
	}
	if err := eth.SendTransaction(ctx, tx); err != nil {
		t.Fatalf("sending a self-transfer at nonce %d: %v", nonce, err)
	}
	return tx
}

// sendEther sends wei from the stack's faucet to addr and waits for it.
func sendEther(t *testing.T, st *stacktest.Stack, eth *ethclient.Client, addr string, wei *big.Int) {
	t.Helper()
	to := common.HexToAddress(addr)
	faucetTx(t, st, eth, &to, wei, params.TxGas, nil)
}

// faucetTx sends a transaction from the stack's faucet (to nil: a contract
// creation) and waits until it is mined successfully. The faucet is shared:
// a nonce taken by someone else is retried.
func faucetTx(t *testing.T, st *stacktest.Stack, eth *ethclient.Client, to *common.Address, wei *big.Int, gas uint64,
	data []byte) *types.Receipt {
	t.Helper()
	fk, err := crypto.HexToECDSA(strings.TrimPrefix(st.FaucetPrivateKey, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	faucet := crypto.PubkeyToAddress(fk.PublicKey)
	var tx *types.Transaction
	for attempt := 0; ; attempt++ {
		nonce, err := eth.PendingNonceAt(ctx, faucet)
		if err != nil {
			t.Fatal(err)
		}
		tip, err := eth.SuggestGasTipCap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		head, err := eth.HeaderByNumber(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		tx, err = types.SignNewTx(fk, types.LatestSignerForChainID(big.NewInt(st.ChainID)), &types.DynamicFeeTx{
			ChainID: big.NewInt(st.ChainID), Nonce: nonce, GasTipCap: tip,
			GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip), Gas: gas, To: to, Value: wei,
			Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if err = eth.SendTransaction(ctx, tx); err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("sending from the faucet: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	r, err := bind.WaitMined(ctx, eth, tx)
	if err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("faucet transaction %s: %v (receipt %+v)", tx.Hash().Hex(), err, r)
	}
	return r
}

// TestWalletMigrateIsAudited: wallet migrate without --reason is refused
// before it acts; with one it is recorded in the audit trail with who and
// why, and what it moved (nothing, on a stack devstack migrated already).
func TestWalletMigrateIsAudited(t *testing.T) {
	c := buildCtl(t)
	flags := []string{"-config", filepath.Join(c.dev, "config.json"), "-env-file", filepath.Join(c.dev, "payflow.env")}
	if out, errOut, code := c.exec(t, "", append([]string{"wallet", "migrate"}, flags...)...); code != 3 ||
		!strings.Contains(errOut, "needs --reason") {
		t.Fatalf("wallet migrate without --reason: exit %d, want 3 (refused)\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	reason := stacktest.RandomID("it-migrate-")
	if out, errOut, code := c.exec(t, "", append([]string{"wallet", "migrate", "-as", "it-custodian", "-reason", reason, "-json"},
		flags...)...); code != 0 {
		t.Fatalf("wallet migrate: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	out, errOut, code := c.exec(t, "", append([]string{"audit", "list", "-action", audit.ActionWalletMigrate, "-json"}, flags...)...)
	var es []audit.Entry
	if code != 0 || json.Unmarshal([]byte(out), &es) != nil {
		t.Fatalf("audit list -action %s: exit %d\nstdout: %s\nstderr: %s", audit.ActionWalletMigrate, code, out, errOut)
	}
	for _, e := range es {
		if e.Reason == reason {
			if e.Actor != "it-custodian" || e.Source != audit.SourceCLI || e.Outcome != audit.OutcomeDone ||
				!strings.Contains(string(e.Changes), "wallets") {
				t.Errorf("the migration's record: %+v (changes %s)", e, e.Changes)
			}
			return
		}
	}
	t.Fatalf("no wallet.migrate record with reason %q in %+v", reason, es)
}

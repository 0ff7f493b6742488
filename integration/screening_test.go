package integration

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/client"

	"payflow/audit"
	"payflow/chain"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/risk/denylist"
	"payflow/risk/holds"
	"payflow/workflows"
)

// screeningWait is how soon a change of the deny list file is in force in
// every worker and in payflow-signer.
const screeningWait = 30 * time.Second

// denyListOf is the stack's deny list file; the test's additions to it are
// removed when it ends, so other tests see the file as it was.
func denyListOf(t *testing.T, st *stacktest.Stack, listed ...string) string {
	t.Helper()
	if st.DenyList == "" {
		t.Fatal("stack.json names no deny_list: run `make up` (payflowctl devstack writes it)")
	}
	t.Cleanup(func() {
		for _, a := range listed {
			if _, err := denylist.Remove(st.DenyList, a); err != nil && !errors.Is(err, denylist.ErrNotListed) {
				t.Errorf("removing %s from the deny list: %v", a, err)
			}
		}
	})
	return st.DenyList
}

// appendListing appends a line to the file in place, as an operator's
// export job might.
func appendListing(t *testing.T, path, address, source string) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := address + " " + source + "\n"
	if len(body) > 0 && body[len(body)-1] != '\n' {
		line = "\n" + line
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
}

// awaitListed waits until every worker and payflow-signer have loaded a
// version of the deny list listing address (their entries gauge counts it,
// and their last load is not older than since), within screeningWait of
// since.
func awaitListed(t *testing.T, st *stacktest.Stack, since time.Time) {
	t.Helper()
	urls := workerMetrics(t, st)
	signer := st.MetricsURLs["signer"]
	if signer == "" {
		t.Fatal("stack.json has no metrics_urls.signer: run `make up`")
	}
	urls = append(urls, signer)
	deadline := since.Add(screeningWait)
	for {
		stale := []string{}
		for _, u := range urls {
			if reloadedAt(u) < float64(since.Unix()) {
				stale = append(stale, u)
			}
		}
		if len(stale) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deny list changed at %s and %v had not reloaded it %s later", since.Format(time.RFC3339), stale, screeningWait)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// reloadedAt is the deny list's last load time a /metrics endpoint shows;
// 0 when it does not answer (yet).
func reloadedAt(url string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "payflow_denylist_last_reload_timestamp_seconds "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// TestWithdrawToAListedAddressIsRefusedAndNothingSigned: an address
// appended to the deny list file while the stack runs is in force within
// 30 s: a withdraw to it is answered status=0 "recipient is blocked", and
// nothing was reserved, signed or sent for it.
func TestWithdrawToAListedAddressIsRefusedAndNothingSigned(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	to := stacktest.RandomAddress()
	path := denyListOf(t, st, to)
	from := walletByLabel(t, db, "user-1")

	time.Sleep(1100 * time.Millisecond) // a reload earlier in this second cannot pass for ours
	listedAt := time.Now()
	appendListing(t, path, strings.ToUpper(to[:2])+strings.ToUpper(to[2:]), "TEST-screening "+listedAt.Format("2006-01-02"))
	awaitListed(t, st, listedAt)

	queueID := stacktest.RandomID("it-screen-withdraw-")
	body, err := protocol.SignBody(st.SignKey, withdrawBody(queueID, from, to, "1.5"))
	if err != nil {
		t.Fatal(err)
	}
	st.Publish(t, withdrawKey, body, false)
	got := resp.Wait(t, queueID, 1, time.Until(listedAt.Add(screeningWait))+5*time.Second)[0]
	if s := fmt.Sprint(got.Body["status"]); s != "0" {
		t.Fatalf("status %s (error %v), want 0", s, got.Body["error"])
	}
	want := fmt.Sprintf("recipient is blocked: %s is on the deny list (TEST-screening %s)", to, listedAt.Format("2006-01-02"))
	if e := fmt.Sprint(got.Body["error"]); e != want {
		t.Fatalf("error %q, want %q", e, want)
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(queueID)); n != 1 {
		t.Fatalf("%d answers, want 1", n)
	}
	wfID := workflows.WithdrawWorkflowID(queueID)
	for q, what := range map[string]string{
		"SELECT COUNT(*) FROM reservations WHERE reservation_key=?": "reservations",
		"SELECT COUNT(*) FROM signer_steps WHERE workflow_id=?":     "signer steps",
		"SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?":       "signed transactions",
	} {
		var n int
		if err := db.QueryRow(q, wfID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d %s for %s, want none", n, what, wfID)
		}
	}
}

// runCtl runs payflowctl (deposit or denylist) with the dev stack's
// configuration; it must succeed.
func (c ctl) screening(t *testing.T, args ...string) string {
	t.Helper()
	full := append(args, "--config", filepath.Join(c.dev, "config.json"), "--env-file", filepath.Join(c.dev, "payflow.env"))
	out, errOut, code := c.exec(t, "", full...)
	if code != 0 {
		t.Fatalf("payflowctl %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// sendNative pays amount of the native coin from key to to and returns the
// transaction's hash.
func sendNative(t *testing.T, c *devChain, key *ecdsa.PrivateKey, to string, amount decimal.Decimal) string {
	t.Helper()
	eth := c.eth(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tx, err := c.signFaucetTx(ctx, eth, key, c.Native.Symbol, to, amount)
	if err != nil {
		t.Fatal(err)
	}
	if err := eth.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	r, err := bind.WaitMined(ctx, eth, tx)
	if err != nil || r.Status != 1 {
		t.Fatalf("%s failed: %v", tx.Hash().Hex(), err)
	}
	return strings.ToLower(tx.Hash().Hex())
}

// sweepNative runs one sweep of dep's native coin and waits for the wallet
// sweeps it started; it returns how many it started.
func sweepNative(t *testing.T, st *stacktest.Stack, dep string) int {
	t.Helper()
	tc := st.Temporal(t)
	ctx, cancel := context.WithTimeout(context.Background(), workflowWait)
	defer cancel()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: stacktest.RandomID("it-screen-sweep-"),
		TaskQueue: workflows.DefaultTaskQueue}, workflows.Sweep, workflows.SweepInput{Symbols: []string{"ETH"},
		Threshold: protocol.MustAmount("0.01"), Addresses: []string{dep}, ConfirmTimeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.SweepResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	for _, s := range res.Started {
		if err := tc.GetWorkflow(ctx, s.WorkflowID, "").Get(ctx, nil); err != nil {
			t.Fatalf("wallet sweep %s: %v", s.WorkflowID, err)
		}
	}
	return res.StartedCount
}

// TestDepositFromAListedSenderIsHeldReleasedAndReturned: a deposit from a
// sender listed with `payflowctl denylist add` is announced with its risk,
// credited held and left alone by a sweep; released with `payflowctl
// deposit release`, it is swept like any deposit. A second deposit from the
// same sender is returned with `payflowctl deposit return`: a transfer
// signed by payflow-signer against its hold, confirmed, and the hold
// settled. Every change is in the audit trail with who and why.
func TestDepositFromAListedSenderIsHeldReleasedAndReturned(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	c := firstChain(t, st)
	eth := c.eth(t)
	ctl := buildCtl(t)
	topups := st.Collect(t, topupResp, "address")
	ctx := context.Background()
	actor := stacktest.RandomID("it-screening-")

	// A sender with money of its own, listed as an operator does.
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sender := strings.ToLower(crypto.PubkeyToAddress(key.PublicKey).Hex())
	c.faucetSend(t, eth, c.Native.Symbol, sender, decimal.RequireFromString("3"))
	path := denyListOf(t, st, sender)
	time.Sleep(1100 * time.Millisecond)
	listedAt := time.Now()
	ctl.screening(t, "denylist", "add", "-address", sender, "-source", "TEST-screening", "--reason", "sanctions hit in test", "--as", actor)
	awaitListed(t, st, listedAt)
	if out := ctl.screening(t, "denylist", "list"); !strings.Contains(out, sender) {
		t.Fatalf("denylist list does not show %s:\n%s", sender, out)
	}

	// A managed deposit wallet, watched for the native coin.
	dep := createWallet(t, stacktest.RandomID("it-screen-dep-"))
	st.Publish(t, topupKey, []byte(fmt.Sprintf(`{"chain":"ETH","symbol":%q,"address":%q,"timestamp":%d}`,
		c.Native.Symbol, dep, time.Now().Unix())), true)
	waitFor(t, time.Minute, "the watch of "+dep, func() bool {
		var n int
		_ = db.QueryRow("SELECT COUNT(*) FROM watched_addresses WHERE address=?", dep).Scan(&n)
		return n > 0
	})

	// The deposit: announced twice with its risk, credited held.
	one := decimal.RequireFromString("1")
	tx1 := sendNative(t, c, key, dep, one)
	native := chain.NativeLogIndex // a native transfer's deposit key
	risk := fmt.Sprintf("sender %s is on the deny list (TEST-screening)", sender)
	notices := func(tx string) []stacktest.Delivery {
		var mine []stacktest.Delivery
		for _, d := range topups.Get(strings.ToLower(dep)) {
			if strings.EqualFold(fmt.Sprint(d.Body["tx_hash"]), tx) {
				mine = append(mine, d)
			}
		}
		return mine
	}
	waitFor(t, workflowWait, "the credited notice of "+tx1, func() bool { return len(notices(tx1)) >= 2 })
	for _, d := range notices(tx1) {
		if d.Body["risk"] != risk || !strings.EqualFold(fmt.Sprint(d.Body["from_address"]), sender) {
			t.Errorf("notice status %v: risk %v, from %v; want %q from %s", d.Body["status"], d.Body["risk"], d.Body["from_address"], risk, sender)
		}
	}
	held := func() ledgerRow { return balanceOf(t, st, dep, c.Native.Symbol) }
	if b := held(); !b.held.Equal(one) || !b.available.IsZero() {
		t.Fatalf("after the deposit: available %s held %s; want all of 1 held", b.available, b.held)
	}
	hs := holds.New(db)
	h, err := hs.Get(ctx, "ETH", tx1, native)
	if err != nil || h.State != holds.StateHeld || h.Risk != risk || h.Sender != sender {
		t.Fatalf("hold %+v, %v", h, err)
	}
	if out := ctl.screening(t, "deposit", "list-held"); !strings.Contains(out, tx1) {
		t.Fatalf("deposit list-held does not show %s:\n%s", tx1, out)
	}

	// A sweep pass leaves it where it is.
	if n := sweepNative(t, st, dep); n != 0 {
		t.Fatalf("a sweep started %d wallet sweeps of a held deposit", n)
	}
	if b := held(); !b.held.Equal(one) || !b.available.IsZero() {
		t.Fatalf("after a sweep: available %s held %s; want all of 1 held", b.available, b.held)
	}
	if on := c.balance(t, eth, c.Native.Symbol, dep); !on.Equal(one) {
		t.Fatalf("the deposit wallet holds %s on chain after a sweep, want 1", on)
	}

	// Released: available, and swept.
	ctl.screening(t, "deposit", "release", "-chain", "ETH", "-tx", tx1, "-log", fmt.Sprint(native), "--reason", "false positive, cleared", "--as", actor)
	if b := held(); !b.available.Equal(one) || !b.held.IsZero() {
		t.Fatalf("after the release: available %s held %s; want 1 available", b.available, b.held)
	}
	if h, _ := hs.Get(ctx, "ETH", tx1, native); h.State != holds.StateReleased {
		t.Fatalf("hold state %s after the release", h.State)
	}
	if n := sweepNative(t, st, dep); n != 1 {
		t.Fatalf("the released deposit started %d wallet sweeps, want 1", n)
	}
	if on := c.balance(t, eth, c.Native.Symbol, dep); !on.LessThan(decimal.RequireFromString("0.1")) {
		t.Fatalf("the deposit wallet holds %s on chain after the sweep: not swept", on)
	}

	// A second deposit, returned to its sender.
	half := decimal.RequireFromString("0.5")
	tx2 := sendNative(t, c, key, dep, half)
	waitFor(t, workflowWait, "the credited notice of "+tx2, func() bool { return len(notices(tx2)) >= 2 })
	if b := held(); !b.held.Equal(half) {
		t.Fatalf("second deposit: held %s, want 0.5", b.held)
	}
	senderBefore := c.balance(t, eth, c.Native.Symbol, sender)
	if out := ctl.screening(t, "deposit", "return", "-chain", "ETH", "-tx", tx2, "-log", fmt.Sprint(native), "--reason", "returned per compliance",
		"--as", actor, "--wait"); !strings.Contains(out, "returned 0.5") {
		t.Fatalf("deposit return printed %q", out)
	}
	if got := c.balance(t, eth, c.Native.Symbol, sender).Sub(senderBefore); !got.Equal(half) {
		t.Fatalf("the sender got %s back, want 0.5", got)
	}
	h, err = hs.Get(ctx, "ETH", tx2, native)
	if err != nil || h.State != holds.StateReturned || h.ReturnTxHash == "" {
		t.Fatalf("hold after the return: %+v, %v", h, err)
	}
	r, err := ledger.New(db).GetReservation(ctx, h.Key())
	if err != nil || r.State != "settled" {
		t.Fatalf("the hold's reservation: %+v, %v; want settled", r, err)
	}
	var signed int
	if err := db.QueryRow("SELECT COUNT(*) FROM signer_steps WHERE workflow_id=? AND reservation_key=?",
		workflows.ReturnDepositWorkflowID("ETH", tx2, native), h.Key()).Scan(&signed); err != nil || signed != 1 {
		t.Fatalf("%d signer steps paid the return from its hold (%v), want 1", signed, err)
	}
	if b := held(); !b.held.IsZero() {
		t.Fatalf("held %s after the return, want 0", b.held)
	}

	// Who and why, for each action, as `payflowctl audit list` shows them.
	var entries []audit.Entry
	if err := json.Unmarshal([]byte(ctl.screening(t, "audit", "list", "--limit", "500", "--json")), &entries); err != nil {
		t.Fatalf("payflowctl audit list --json: %v", err)
	}
	want := map[string]string{
		audit.ActionDenyListChange + " " + path:                               "sanctions hit in test",
		audit.ActionDepositRelease + " " + ledger.HoldKey("ETH", tx1, native): "false positive, cleared",
		audit.ActionDepositReturn + " " + ledger.HoldKey("ETH", tx2, native):  "returned per compliance",
	}
	for _, e := range entries {
		k := e.Action + " " + e.Subject
		if e.Actor == actor && want[k] == e.Reason && e.Outcome == audit.OutcomeDone {
			delete(want, k)
		}
	}
	if len(want) > 0 {
		t.Fatalf("not in the audit trail with actor %s: %v", actor, want)
	}
}

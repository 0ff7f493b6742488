package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/client"

	"payflow/audit"
	"payflow/internal/stacktest"
	"payflow/workflows"
)

// The velocity tests pay ETH's USDC from hot wallets of their own: the dev
// config limits what one wallet sends of it in 24 h to 100,000
// (velocity_wallet_24h), which no other test comes near, and holds payments
// above 40,000 for approval; so 35,000 at a time crosses the velocity limit
// at the third payment and never the threshold. A new wallet's 24 h sum
// starts at zero.
const (
	velocityChain  = "ETH"
	velocitySymbol = "USDC"
	velocityStep   = "35000"
)

// velocityLimit checks the dev config gives the test's asset the limits
// the test was written for, and returns the wallet limit.
func velocityLimit(t *testing.T) decimal.Decimal {
	t.Helper()
	ch, ok := devConfig(t).Chain(velocityChain)
	if !ok {
		t.Fatalf("the dev config has no chain %s", velocityChain)
	}
	a, _ := ch.Asset(velocitySymbol)
	limit, _ := a.VelocityLimits()
	threshold, err := decimal.NewFromString(a.ApprovalThreshold)
	if limit.Sign() <= 0 || err != nil || !limit.Equal(decimal.RequireFromString("100000")) || threshold.LessThan(decimal.RequireFromString(velocityStep)) {
		t.Fatalf("dev config: %s %s velocity_wallet_24h %q, approval_threshold %q; this test needs 100000 and at least %s "+
			"(devAmounts in cmd/payflowctl/devstack.go; run make up to write them)", velocityChain, velocitySymbol,
			a.VelocityWallet24h, a.ApprovalThreshold, velocityStep)
	}
	return limit
}

// newFundedHotWallet creates a hot wallet (a key in payflow-signer) with
// `payflowctl wallet create`, funds it from the faucet with tokens of the
// test's asset and 1 of the native coin for gas, and waits until the
// ledger has booked both.
func newFundedHotWallet(t *testing.T, st *stacktest.Stack, c ctl, tokens string) string {
	t.Helper()
	out, errOut, code := c.exec(t, "", "wallet", "create", "-kind", "hot", "-chain", velocityChain, "-backend", "envelope",
		"-label", stacktest.RandomID("it-velocity-"), "-config", filepath.Join(c.dev, "config.json"),
		"-env-file", filepath.Join(c.dev, "payflow.env"))
	w := strings.ToLower(strings.TrimSpace(out))
	if code != 0 || !common.IsHexAddress(w) {
		t.Fatalf("payflowctl wallet create: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	ch := chainByName(t, velocityChain)
	eth := ch.eth(t)
	amount := decimal.RequireFromString(tokens)
	ch.faucetSend(t, eth, velocitySymbol, w, amount)
	ch.faucetSend(t, eth, ch.Native.Symbol, w, decimal.NewFromInt(1))
	db := st.DB(t)
	booked := func(symbol string, want decimal.Decimal) func() bool {
		return func() bool {
			var got decimal.Decimal
			err := db.QueryRow("SELECT COALESCE(SUM(available), 0) FROM balances WHERE chain=? AND address=? AND symbol=?",
				velocityChain, w, symbol).Scan(&got)
			return err == nil && got.Equal(want)
		}
	}
	waitFor(t, workflowWait, fmt.Sprintf("the ledger to book %s %s to %s", tokens, velocitySymbol, w), booked(velocitySymbol, amount))
	waitFor(t, workflowWait, "the ledger to book the gas money of "+w, booked(ch.Native.Symbol, decimal.NewFromInt(1)))
	return w
}

// velocityPaid publishes a withdraw of amount from from and requires it
// paid (status 1) without waiting for anyone.
func velocityPaid(t *testing.T, st *stacktest.Stack, resp *stacktest.Collector, from, amount string) {
	t.Helper()
	q := stacktest.RandomID("it-velocity-paid-")
	st.Publish(t, withdrawKey, chainWithdrawBody(q, from, stacktest.RandomAddress(), amount, velocityChain, velocitySymbol), true)
	if got := onlyOne(t, resp, q); status(got) != "1" {
		t.Fatalf("withdraw of %s %s within the wallet's limit: status %s error %v", amount, velocitySymbol, status(got), got.Body["error"])
	}
}

// paymentStatus is the payment's status query.
func paymentStatus(t *testing.T, tc client.Client, wfID string) workflows.PaymentStatus {
	t.Helper()
	var s workflows.PaymentStatus
	v, err := tc.QueryWorkflow(context.Background(), wfID, "", workflows.QueryStatus)
	if err == nil {
		err = v.Get(&s)
	}
	if err != nil {
		t.Fatalf("status of %s: %v", wfID, err)
	}
	return s
}

// workflowApproval is the approval the payment's workflow recorded in the
// audit trail (source temporal); it fails unless there is exactly one.
func workflowApproval(t *testing.T, st *stacktest.Stack, wfID string) audit.Entry {
	t.Helper()
	all, err := audit.New(st.DB(t)).List(context.Background(), audit.Filter{Payment: wfID, Action: audit.ActionApprove})
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	for _, e := range all {
		if e.Source == audit.SourceTemporal {
			out = append(out, e)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d approvals of %s recorded by its workflow, want 1: %+v", len(out), wfID, all)
	}
	return out[0]
}

// TestVelocityLimitHoldsForApproval: a withdraw that would take its wallet
// over the 24 h limit is not refused: it waits for an operator, its status
// (the query, `payflowctl payment show`) saying why, nothing signed. Approved
// with `payflowctl payment approve`, it is paid, and the workflow's own
// record of the approval is in the audit trail. A second one, approved by a
// signal sent straight to Temporal (as the Web UI does), is recorded with
// the identity Temporal gave the signal's sender.
func TestVelocityLimitHoldsForApproval(t *testing.T) {
	limit := velocityLimit(t)
	st := stacktest.Load(t)
	tc := st.Temporal(t)
	c := buildCtl(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	w := newFundedHotWallet(t, st, c, "120000")

	velocityPaid(t, st, resp, w, velocityStep)
	velocityPaid(t, st, resp, w, velocityStep)

	q := stacktest.RandomID("it-velocity-held-")
	wf := workflows.WithdrawWorkflowID(q)
	to := stacktest.RandomAddress()
	st.Publish(t, withdrawKey, chainWithdrawBody(q, w, to, velocityStep, velocityChain, velocitySymbol), true)
	awaitStep(t, tc, wf, workflows.StepApproval)
	want := fmt.Sprintf("wallet %s would send 105000 %s in 24 h, above its limit %s %s; waiting up to", w, velocitySymbol,
		limit, velocitySymbol)
	if s := paymentStatus(t, tc, wf); !strings.HasPrefix(s.Summary, want) {
		t.Errorf("status of the held withdraw: %q, want it to start %q", s.Summary, want)
	}
	var shown ctlShow
	c.json(t, &shown, "show", q)
	if shown.Step != workflows.StepApproval || !strings.HasPrefix(shown.Summary, want) || len(shown.Transfers) != 0 {
		t.Errorf("payflowctl payment show of the held withdraw: %+v", shown)
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(q)); n != 0 || signedCount(t, st, wf) != 0 {
		t.Fatalf("the held withdraw was answered %d times, signed %d times, before any operator decision", n, signedCount(t, st, wf))
	}

	c.ok(t, "approve", q, "--reason", "velocity integration test")
	if got := onlyOne(t, resp, q); status(got) != "1" {
		t.Fatalf("approved withdraw: status %s error %v", status(got), got.Body["error"])
	}
	ch := chainByName(t, velocityChain)
	if got := ch.balance(t, ch.eth(t), velocitySymbol, to); !got.Equal(decimal.RequireFromString(velocityStep)) {
		t.Errorf("the approved withdraw's recipient holds %s %s, want %s", got, velocitySymbol, velocityStep)
	}
	rec := workflowApproval(t, st, wf)
	// payflowctl's signal carries the identity "payflowctl <user>@<host>".
	if rec.Subject != wf || !strings.HasPrefix(rec.Actor, "payflowctl ") || !strings.Contains(string(rec.Changes), "above its limit") {
		t.Errorf("the workflow's record of the approval: %+v", rec)
	}

	// Still over (105,000 + 1): a raw signal, as the Web UI sends it.
	q2 := stacktest.RandomID("it-velocity-signal-")
	wf2 := workflows.WithdrawWorkflowID(q2)
	st.Publish(t, withdrawKey, chainWithdrawBody(q2, w, stacktest.RandomAddress(), "1", velocityChain, velocitySymbol), true)
	awaitStep(t, tc, wf2, workflows.StepApproval)
	opts, err := st.TemporalOptions()
	if err != nil {
		t.Fatal(err)
	}
	const identity = "velocity-it@temporal-web-ui"
	opts.Identity = identity
	webUI, err := client.Dial(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer webUI.Close()
	if err := webUI.SignalWorkflow(context.Background(), wf2, "", workflows.SignalApproval,
		workflows.Approval{Approve: true, By: "typed-in-the-payload", Reason: "checked by phone"}); err != nil {
		t.Fatal(err)
	}
	if got := onlyOne(t, resp, q2); status(got) != "1" {
		t.Fatalf("withdraw approved by a raw signal: status %s error %v", status(got), got.Body["error"])
	}
	rec = workflowApproval(t, st, wf2)
	if rec.Actor != identity || rec.Reason != "checked by phone" || rec.Source != audit.SourceTemporal ||
		!strings.Contains(string(rec.Changes), "typed-in-the-payload") {
		t.Errorf("the record of an approval signalled straight to Temporal: %+v; want actor %s", rec, identity)
	}
}

// TestVelocityRaceForTheLastHeadroom: two withdraws racing for a wallet's
// last headroom: exactly one is paid, the other waits for an operator.
func TestVelocityRaceForTheLastHeadroom(t *testing.T) {
	velocityLimit(t)
	st := stacktest.Load(t)
	tc := st.Temporal(t)
	c := buildCtl(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	w := newFundedHotWallet(t, st, c, "110000")
	velocityPaid(t, st, resp, w, velocityStep)

	// 35,000 sent: room for one more 35,000 (70,000), not for two (105,000).
	qs := []string{stacktest.RandomID("it-velocity-race-"), stacktest.RandomID("it-velocity-race-")}
	for _, q := range qs {
		st.Publish(t, withdrawKey, chainWithdrawBody(q, w, stacktest.RandomAddress(), velocityStep, velocityChain, velocitySymbol), true)
	}
	var paid, held []string
	waitFor(t, responseWait, "one withdraw paid and the other held", func() bool {
		paid, held = nil, nil
		for _, q := range qs {
			if got := resp.Get(q); len(got) > 0 {
				if status(got[0]) != "1" {
					t.Fatalf("racing withdraw %s: status %s error %v", q, status(got[0]), got[0].Body["error"])
				}
				paid = append(paid, q)
				continue
			}
			var s workflows.PaymentStatus
			if v, err := tc.QueryWorkflow(context.Background(), workflows.WithdrawWorkflowID(q), "", workflows.QueryStatus); err == nil &&
				v.Get(&s) == nil && s.Step == workflows.StepApproval {
				held = append(held, q)
			}
		}
		return len(paid)+len(held) == 2
	})
	if len(paid) != 1 || len(held) != 1 {
		t.Fatalf("racing for the last headroom: paid %v, held %v; want one of each", paid, held)
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(held[0])); n != 0 {
		t.Fatalf("the held withdraw was answered %d times", n)
	}
	// The operator rejects it: released, status 0.
	if err := tc.SignalWorkflow(context.Background(), workflows.WithdrawWorkflowID(held[0]), "", workflows.SignalApproval,
		workflows.Approval{Approve: false, By: "integration-test", Reason: "test cleanup"}); err != nil {
		t.Fatal(err)
	}
	if got := onlyOne(t, resp, held[0]); status(got) != "0" {
		t.Fatalf("rejected withdraw: status %s error %v", status(got), got.Body["error"])
	}
}

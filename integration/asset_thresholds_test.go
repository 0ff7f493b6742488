package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/api/workflowservice/v1"

	"payflow/config"
	"payflow/internal/stacktest"
	"payflow/workflows"
)

// devConfig reads the worker's dev config (.dev/config.json, next to
// stack.json) as the worker does, without its secrets.
func devConfig(t *testing.T) config.Config {
	t.Helper()
	p, err := stacktest.Path()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg config.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.ResolveChains()
	return cfg
}

// TestApprovalThresholdIsPerAsset: the approval
// threshold is the asset's own. On ETH the dev config holds native ETH above
// 10 and USDT above 50,000: a withdraw of 11 ETH waits for an operator (its
// status query and its PayflowStatus say awaiting-approval, nothing is
// signed), while a withdraw of the same number of USDT is paid without one.
// The held ETH payment is then rejected: status=0, nothing moved.
//
// With one shared threshold (the old dev config's payment.approval_threshold
// of 50,000) the 11 ETH left with no approval and this test fails at
// awaitStep.
func TestApprovalThresholdIsPerAsset(t *testing.T) {
	st := stacktest.Load(t)
	tc := st.Temporal(t)
	hot := hotWallet(t, st)
	resp := st.Collect(t, withdrawResp, "queue_id")
	const amount = "11"
	eleven := decimal.RequireFromString(amount)

	// The dev config gives every asset of every chain its own thresholds;
	// ETH's native one is below 11 and USDT's above it.
	cfg := devConfig(t)
	for _, name := range cfg.ChainNames() {
		ch := cfg.Chains[name]
		for _, sym := range ch.Symbols() {
			a, _ := ch.Asset(sym)
			if a.ApprovalThreshold == "" || a.SweepThreshold == "" {
				t.Errorf("dev config: %s %s has approval_threshold %q and sweep_threshold %q; every asset states its own",
					name, sym, a.ApprovalThreshold, a.SweepThreshold)
			}
		}
	}
	ethChain, _ := cfg.Chain("ETH")
	native, _ := ethChain.Asset("ETH")
	usdtAsset, _ := ethChain.Asset("USDT")
	if d, err := decimal.NewFromString(native.ApprovalThreshold); err != nil || !eleven.GreaterThan(d) {
		t.Errorf("dev config: native ETH approval_threshold %q, want below %s", native.ApprovalThreshold, amount)
	}
	if d, err := decimal.NewFromString(usdtAsset.ApprovalThreshold); err != nil || eleven.GreaterThan(d) {
		t.Errorf("dev config: ETH USDT approval_threshold %q, want at least %s", usdtAsset.ApprovalThreshold, amount)
	}

	ethQ, usdtQ := stacktest.RandomID("it-thr-eth-"), stacktest.RandomID("it-thr-usdt-")
	ethTo, usdtTo := stacktest.RandomAddress(), stacktest.RandomAddress()
	ethWF := workflows.WithdrawWorkflowID(ethQ)
	st.Publish(t, withdrawKey, chainWithdrawBody(ethQ, hot, ethTo, amount, "ETH", "ETH"), true)
	st.Publish(t, withdrawKey, chainWithdrawBody(usdtQ, hot, usdtTo, amount, "ETH", "USDT"), true)

	// 11 ETH waits for an operator, visible to the Web UI as awaiting-approval.
	awaitStep(t, tc, ethWF, workflows.StepApproval)
	waitFor(t, 30*time.Second, "the ETH withdraw listed as awaiting-approval", func() bool {
		ls, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("PayflowStatus = '%s' AND PayflowQueueId = '%s'", workflows.StepApproval, ethQ)})
		return err == nil && len(ls.Executions) == 1
	})

	// 11 USDT is paid with no approval.
	if got := onlyOne(t, resp, usdtQ); status(got) != "1" {
		t.Fatalf("11 USDT (below USDT's threshold): status %s error %v", status(got), got.Body["error"])
	}
	c := chainByName(t, "ETH")
	eth := c.eth(t)
	if got := c.balance(t, eth, "USDT", usdtTo); !got.Equal(eleven) {
		t.Errorf("USDT recipient holds %s, want %s", got, amount)
	}

	// The ETH payment is still held, unsigned; the operator rejects it.
	if n := len(resp.Get(ethQ)); n != 0 {
		t.Fatalf("the held ETH withdraw was answered %d times before any operator decision", n)
	}
	awaitStep(t, tc, ethWF, workflows.StepApproval)
	if err := tc.SignalWorkflow(context.Background(), ethWF, "", workflows.SignalApproval,
		workflows.Approval{Approve: false, By: "integration-test", Reason: "test cleanup"}); err != nil {
		t.Fatal(err)
	}
	if got := onlyOne(t, resp, ethQ); status(got) != "0" {
		t.Fatalf("rejected ETH withdraw: status %s error %v", status(got), got.Body["error"])
	}
	if got := c.balance(t, eth, "ETH", ethTo); !got.IsZero() {
		t.Errorf("rejected ETH withdraw moved %s ETH", got)
	}
}

// chainByName is stack.json's chain name.
func chainByName(t *testing.T, name string) *devChain {
	t.Helper()
	for _, c := range devChains(t) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("stack.json has no chain %s", name)
	return nil
}

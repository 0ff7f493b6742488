package integration

import (
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"payflow/internal/stacktest"
	"payflow/workflows"
)

// signerPID is payflow-signer's pid, from .dev/pids.
func signerPID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".dev", "pids", "signer.pid"))
	if err != nil {
		t.Fatalf("the stack runs no signer: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// TestSignerKilledDuringBurst: payflow-signer is SIGKILLed while a burst of
// withdrawals is being signed, and more arrive while it is down. Nothing is
// signed without it; once it is back every withdrawal is paid once and
// answered once, and no step was signed twice.
func TestSignerKilledDuringBurst(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	usdt := st.USDT(t, st.Eth(t))
	resp := st.Collect(t, withdrawResp, "queue_id")
	from := walletByLabel(t, db, "user-1")

	type payment struct{ qid, wfID, to string }
	var burst []payment
	publish := func(n int) {
		for range n {
			p := payment{qid: stacktest.RandomID("it-signer-kill-"), to: stacktest.RandomAddress()}
			p.wfID = workflows.WithdrawWorkflowID(p.qid)
			st.Publish(t, withdrawKey, withdrawBody(p.qid, from, p.to, "0.75"), true)
			burst = append(burst, p)
		}
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			stack(t, "start-payflow", "signer")
		}
	})

	publish(8)
	waitFor(t, time.Minute, "the first signature of the burst", func() bool { return signedCount(t, st, burst[0].wfID) > 0 })
	if err := exec.Command("kill", "-9", signerPID(t)).Run(); err != nil {
		t.Fatalf("killing the signer: %v", err)
	}
	signedBefore := 0
	for _, p := range burst {
		signedBefore += signedCount(t, st, p.wfID)
	}
	down := len(burst)
	publish(4) // arrive while the signer is down

	// Nothing new is signed without the signer.
	time.Sleep(5 * time.Second)
	for _, p := range burst[down:] {
		if n := signedCount(t, st, p.wfID); n != 0 {
			t.Fatalf("%s was signed while the signer was down (%d transfers)", p.wfID, n)
		}
	}
	t.Logf("%d of the first %d were signed before the kill", signedBefore, down)

	stack(t, "start-payflow", "signer")
	restarted = true

	answers := map[string]stacktest.Delivery{}
	for _, p := range burst {
		answers[p.qid] = resp.Wait(t, p.qid, 1, responseWait)[0]
	}
	time.Sleep(quietInterval)
	for _, p := range burst {
		if n := len(resp.Get(p.qid)); n != 1 {
			t.Errorf("%s: %d answers, want exactly 1", p.qid, n)
		}
		got := answers[p.qid]
		if status(got) != "1" {
			t.Errorf("%s: status %s error %v", p.qid, status(got), got.Body["error"])
			continue
		}
		if n := signedCount(t, st, p.wfID); n != 1 {
			t.Errorf("%s: %d transfers signed, want 1", p.qid, n)
		}
		if b := stacktest.TokenBalance(t, usdt, p.to); b.Cmp(big.NewInt(750_000)) != 0 {
			t.Errorf("%s: recipient holds %s units, want 750000", p.qid, b)
		}
	}
}

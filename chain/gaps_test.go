package chain_test

import (
	"errors"
	"testing"

	"payflow/chain"
)

// TestHealGapsCancelsAbandonedSignature: a transfer signed but never sent
// (its workflow was terminated) leaves a nonce gap that blocks every later
// transfer of the wallet. HealGaps uses the nonce for a 0-value self-transfer,
// the blocked transfer mines, and the abandoned one can never be sent.
func TestHealGapsCancelsAbandonedSignature(t *testing.T) {
	f := newChainFixture(t)
	abandoned, err := f.bc.SignTransfer(f.ctx, f.request("wf-abandoned", 11))
	if err != nil {
		t.Fatal(err)
	}
	abandoned2, err := f.bc.SignTransfer(f.ctx, f.request("wf-abandoned-2", 33))
	if err != nil {
		t.Fatal(err)
	}
	blocked := f.signAndSend(f.request("wf-blocked", 22))
	if abandoned.Nonce != 0 || abandoned2.Nonce != 1 || blocked.Nonce != 2 {
		t.Fatalf("nonces %d, %d, %d; want 0, 1, 2", abandoned.Nonce, abandoned2.Nonce, blocked.Nonce)
	}
	f.sim.Commit()
	if _, err := f.client.TransactionReceipt(f.ctx, blocked.Hash); err == nil {
		t.Fatal("nonce 1 mined over a gap")
	}
	// Too young: a transfer may be between signing and sending.
	if reps, err := f.bc.HealGaps(f.ctx, 1<<40); err != nil || len(reps) != 0 {
		t.Fatalf("young gap healed: %v %v", reps, err)
	}
	reps, err := f.bc.HealGaps(f.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Both gaps in one pass.
	if len(reps) != 2 || reps[0].Action != "filled" || reps[0].Nonce != 0 || reps[1].Nonce != 1 || reps[0].Address != f.sender {
		t.Fatalf("reports %+v, want filled gaps at nonces 0 and 1", reps)
	}
	f.sim.Commit()
	f.requireSuccess(reps[0].TxHash)
	f.requireSuccess(reps[1].TxHash)
	f.requireSuccess(blocked.Hash)
	if b := f.tokenBalance(recipient); b.Int64() != 22 {
		t.Fatalf("recipient holds %s, want only the blocked transfer's 22", b)
	}
	// The abandoned workflow, were it alive, now learns its nonce is gone.
	if _, err := f.bc.Send(f.ctx, "wf-abandoned", "transfer"); !errors.Is(err, chain.ErrNonceTooLow) {
		t.Fatalf("sending the abandoned transfer: %v, want ErrNonceTooLow", err)
	}
	if n := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-abandoned' AND state='failed'"); n != 1 {
		t.Fatalf("abandoned transfer not marked failed (%d)", n)
	}
	// Nothing left to heal.
	if reps, err := f.bc.HealGaps(f.ctx, 0); err != nil || len(reps) != 0 {
		t.Fatalf("second pass: %v %v", reps, err)
	}
}

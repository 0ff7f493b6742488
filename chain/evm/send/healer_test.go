package send_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/custody/signerapi"

	"payflow/chain/evm/evmtest"
)

// TestHealGapsCancelsAbandonedSignature: a transfer signed but never sent
// (its workflow was terminated) leaves a nonce gap that blocks every later
// transfer of the wallet. HealGaps uses the nonce for a 0-value self-transfer,
// the blocked transfer mines, and the abandoned one can never be sent.
func TestHealGapsCancelsAbandonedSignature(t *testing.T) {
	f := newChainFixture(t)
	owners := &fakeOwners{} // nobody runs
	abandoned, err := f.BC.Signer.SignTransfer(f.Ctx, f.Request("wf-abandoned", 11))
	if err != nil {
		t.Fatal(err)
	}
	abandoned2, err := f.BC.Signer.SignTransfer(f.Ctx, f.Request("wf-abandoned-2", 33))
	if err != nil {
		t.Fatal(err)
	}
	blocked := f.SignAndSend(f.Request("wf-blocked", 22))
	if abandoned.Nonce != 0 || abandoned2.Nonce != 1 || blocked.Nonce != 2 {
		t.Fatalf("nonces %d, %d, %d; want 0, 1, 2", abandoned.Nonce, abandoned2.Nonce, blocked.Nonce)
	}
	f.Sim.Commit()
	if _, err := f.Client.TransactionReceipt(f.Ctx, blocked.Hash); err == nil {
		t.Fatal("nonce 1 mined over a gap")
	}
	// Too young: a transfer may be between signing and sending.
	if reps, err := f.BC.Healer.HealGaps(f.Ctx, 1<<40, owners); err != nil || len(reps) != 0 {
		t.Fatalf("young gap healed: %v %v", reps, err)
	}
	reps, err := f.BC.Healer.HealGaps(f.Ctx, 0, owners)
	if err != nil {
		t.Fatal(err)
	}
	// Both gaps in one pass.
	if len(reps) != 2 || reps[0].Action != "filled" || reps[0].Nonce != 0 || reps[1].Nonce != 1 || reps[0].Address != f.Sender {
		t.Fatalf("reports %+v, want filled gaps at nonces 0 and 1", reps)
	}
	// The fillers move no money: asked for as the gap's own step, with no
	// reservation, a 0-value transfer to the wallet itself.
	asked := f.Signer.Asked()
	filler := asked[len(asked)-2]
	if wf, step, attempt := evm.GapFiller(f.Sender, 0); filler.WorkflowID != wf || filler.Step != step ||
		filler.Attempt != attempt || filler.Reservation != "" || filler.Tx.To != evm.Lower(f.Sender) ||
		filler.Tx.Value != "0" || filler.Tx.Data != "" || filler.Tx.Nonce != 0 {
		t.Fatalf("the gap filler was asked as %+v", filler)
	}
	f.Sim.Commit()
	f.RequireSuccess(reps[0].TxHash)
	f.RequireSuccess(reps[1].TxHash)
	f.RequireSuccess(blocked.Hash)
	if b := f.TokenBalance(evmtest.Recipient); b.Int64() != 22 {
		t.Fatalf("recipient holds %s, want only the blocked transfer's 22", b)
	}
	// The abandoned workflow, were it alive, now learns its nonce is gone.
	if _, err := f.BC.Sender.Send(f.Ctx, "wf-abandoned", "transfer"); !errors.Is(err, chain.ErrNonceTooLow) {
		t.Fatalf("sending the abandoned transfer: %v, want ErrNonceTooLow", err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-abandoned' AND state='failed'"); n != 1 {
		t.Fatalf("abandoned transfer not marked failed (%d)", n)
	}
	// Nothing left to heal.
	if reps, err := f.BC.Healer.HealGaps(f.Ctx, 0, owners); err != nil || len(reps) != 0 {
		t.Fatalf("second pass: %v %v", reps, err)
	}
}

// TestHealGapsLeavesARefusedFillerToAnOperator: a signer that will not
// sign the gap filler leaves the gap as it is, reported "refused" (an
// operator's case, like a foreign nonce) and not an error every pass;
// nothing is stored and the abandoned transfer is not cancelled.
func TestHealGapsLeavesARefusedFillerToAnOperator(t *testing.T) {
	f := newChainFixture(t)
	abandoned, err := f.BC.Signer.SignTransfer(f.Ctx, f.Request("wf-abandoned", 11))
	if err != nil {
		t.Fatal(err)
	}
	f.SignAndSend(f.Request("wf-blocked", 22))
	refusing := f.BroadcasterWith(f.Client, signerFunc(func(context.Context, signerapi.SignRequest) (signerapi.SignResponse, error) {
		return signerapi.SignResponse{}, &signerapi.Error{Code: signerapi.CodeRefused, Message: "names no reservation"}
	}), evmtest.MaxFeeWei, 0)
	reps, err := refusing.Healer.HealGaps(f.Ctx, 0, &fakeOwners{})
	if err != nil || len(reps) != 1 || reps[0].Action != "refused" || reps[0].Nonce != abandoned.Nonce {
		t.Fatalf("reports %+v, %v; want the gap at nonce %d refused", reps, err, abandoned.Nonce)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id LIKE 'nonce-gap-%' OR state='failed'"); n != 0 {
		t.Fatalf("%d filler or cancelled rows after a refused filler", n)
	}
}

// fakeOwners is an OwnerChecker: the workflows in running run; err, when
// set, is every answer. It records whom it was asked about.
type fakeOwners struct {
	mu      sync.Mutex
	running map[string]bool
	err     error
	asked   []string
}

func (o *fakeOwners) OwnerRunning(_ context.Context, workflowID string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.asked = append(o.asked, workflowID)
	return o.running[workflowID], o.err
}

// TestHealGapsSendsLiveOwnersTransfer (the gap healer must not cancel a
// live payment): a transfer signed but not yet sent whose workflow still runs
// (it is retrying its broadcast) is sent by the healer, never cancelled.
// While the owner cannot be asked, the wallet is left alone. The same gap
// left by a workflow that has ended is cancelled.
func TestHealGapsSendsLiveOwnersTransfer(t *testing.T) {
	f := newChainFixture(t)
	owners := &fakeOwners{running: map[string]bool{"wf-live": true}}
	live, err := f.BC.Signer.SignTransfer(f.Ctx, f.Request("wf-live", 11))
	if err != nil {
		t.Fatal(err)
	}
	blocked := f.SignAndSend(f.Request("wf-blocked", 22))
	f.Sim.Commit()

	// Temporal unreachable: skip the wallet this pass, touch nothing.
	down := &fakeOwners{err: errors.New("temporal unavailable")}
	if reps, err := f.BC.Healer.HealGaps(f.Ctx, 0, down); err == nil || len(reps) != 0 {
		t.Fatalf("with the owner checker failing: %v, %v; want an error and no action", reps, err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id LIKE 'nonce-gap-%'"); n != 0 {
		t.Fatal("a gap was filled without asking the owner")
	}

	reps, err := f.BC.Healer.HealGaps(f.Ctx, 0, owners)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Action != "resent" || reps[0].TxHash != live.Hash {
		t.Fatalf("reports %+v, want the live transfer %s re-sent", reps, live.Hash.Hex())
	}
	if len(owners.asked) != 1 || owners.asked[0] != "wf-live" {
		t.Fatalf("owners asked about %v, want wf-live only (a sent transfer needs no owner)", owners.asked)
	}
	f.Sim.Commit()
	f.RequireSuccess(live.Hash)
	f.RequireSuccess(blocked.Hash)
	if b := f.TokenBalance(evmtest.Recipient); b.Int64() != 33 {
		t.Fatalf("recipient holds %s, want 11+22", b)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id LIKE 'nonce-gap-%'"); n != 0 {
		t.Fatal("the live transfer's nonce was cancelled")
	}

	// The same gap, its workflow ended: cancelled.
	dead, err := f.BC.Signer.SignTransfer(f.Ctx, f.Request("wf-dead", 44))
	if err != nil {
		t.Fatal(err)
	}
	after := f.SignAndSend(f.Request("wf-after", 55))
	f.Sim.Commit()
	reps, err = f.BC.Healer.HealGaps(f.Ctx, 0, owners)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Action != "filled" || reps[0].Nonce != dead.Nonce {
		t.Fatalf("reports %+v, want the dead owner's nonce %d filled", reps, dead.Nonce)
	}
	f.Sim.Commit()
	f.RequireSuccess(reps[0].TxHash)
	f.RequireSuccess(after.Hash)
	if b := f.TokenBalance(evmtest.Recipient); b.Int64() != 33+55 {
		t.Fatalf("recipient holds %s, want 33+55 (the dead owner's 44 never sent)", b)
	}
}

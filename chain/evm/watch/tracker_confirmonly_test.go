package watch_test

import (
	"testing"

	"payflow/chain"

	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
)

// TestTrackerConfirmedOnlyOwnersHearOneSignal: a payment tracks its transfer
// for "confirmed" only — no "seen" — and hears exactly one signal; the
// tracker still records the block it was seen in.
func TestTrackerConfirmedOnlyOwnersHearOneSignal(t *testing.T) {
	f := newTrackerFixture(t)
	stx := f.SignAndSend(f.Request("wf-pay", 9))
	if err := evm.TrackTxConfirmedOnly(f.Ctx, f.DB, evmtest.ChainName, stx.Hash, "wf-pay"); err != nil {
		t.Fatal(err)
	}
	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-pay", stx.Hash.Hex())
	if s := f.State(stx.Hash); s != "seen" {
		t.Fatalf("state %q, want seen (recorded, not announced)", s)
	}
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
		f.Check()
	}
	evmtest.Expect(t, f.Rec.Take(), "wf-pay", stx.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	f.Sim.Commit()
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-pay", stx.Hash.Hex())
}

package evm_test

import (
	"testing"

	"payflow/chain"
	"payflow/chain/evm"
)

// TestTrackerConfirmedOnlyOwnersHearOneSignal: a payment tracks its transfer
// for "confirmed" only — no "seen" — and hears exactly one signal; the
// tracker still records the block it was seen in.
func TestTrackerConfirmedOnlyOwnersHearOneSignal(t *testing.T) {
	f := newTrackerFixture(t)
	stx := f.signAndSend(f.request("wf-pay", 9))
	if err := evm.TrackTxConfirmedOnly(f.ctx, f.db, chainName, stx.Hash, "wf-pay"); err != nil {
		t.Fatal(err)
	}
	minedAt := f.sim.Commit()
	bn, _ := f.head()
	f.check()
	expect(t, f.rec.take(), "wf-pay", stx.Hash.Hex())
	if s := f.state(stx.Hash); s != "seen" {
		t.Fatalf("state %q, want seen (recorded, not announced)", s)
	}
	for range confirmations - 1 {
		f.sim.Commit()
		f.check()
	}
	expect(t, f.rec.take(), "wf-pay", stx.Hash.Hex(), want{chain.MilestoneConfirmed, bn, minedAt, true})
	f.sim.Commit()
	f.check()
	expect(t, f.rec.take(), "wf-pay", stx.Hash.Hex())
}

package evm_test

import (
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"payflow/chain"
	"payflow/chain/evm"
)

// stuckRows is more open rows than the tracker checks in one pass.
const stuckRows = 5001

// insertStuck tracks n transactions that no node has ever heard of, tracked
// an hour ago (before anything else): they can never mine.
func (f *trackerFixture) insertStuck(n int) {
	f.t.Helper()
	var q strings.Builder
	q.WriteString("INSERT INTO tracked_txs (tx_hash, chain, workflow_id, notify_seen, created_at) VALUES ")
	args := make([]any, 0, 3*n)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,FALSE,NOW(6) - INTERVAL 1 HOUR)")
		args = append(args, crypto.Keccak256Hash([]byte(fmt.Sprint("stuck-", i))).Hex(), chainName, fmt.Sprint("wf-stuck-", i))
	}
	if _, err := f.db.ExecContext(f.ctx, q.String(), args...); err != nil {
		f.t.Fatal(err)
	}
}

// TestTrackerChecksEveryOpenRow (defect 9, the tracker starves): more than a
// pass's worth of transactions that can never mine were tracked first; a real
// transfer tracked after them is still seen and confirmed.
func TestTrackerChecksEveryOpenRow(t *testing.T) {
	f := newTrackerFixture(t)
	f.insertStuck(stuckRows)
	stx := f.signAndSend(f.request("wf-real", 5))
	if err := evm.TrackTxConfirmedOnly(f.ctx, f.db, chainName, stx.Hash, "wf-real"); err != nil {
		t.Fatal(err)
	}
	minedAt := f.sim.Commit()
	bn, _ := f.head()
	for range confirmations - 1 {
		f.sim.Commit()
	}
	var got []notified
	for range 3 { // a few heads: every open row is checked within them
		f.check()
		got = append(got, f.rec.take()...)
		f.sim.Commit()
	}
	expect(t, got, "wf-real", stx.Hash.Hex(), want{chain.MilestoneConfirmed, bn, minedAt, true})
	if n := f.count("SELECT COUNT(*) FROM tracked_txs WHERE state IN ('pending','seen') AND checked_at IS NULL"); n != 0 {
		t.Fatalf("%d open rows never checked", n)
	}
}

// TestTrackerRetiresDroppedTransfer (defect 9): a transfer payflow signed
// whose nonce another transaction took can never mine. Once the stranger is
// confirmations deep, its owner is told "dropped" (a payment tracking
// "confirmed" only, too) and the row is no longer polled; before that the
// tracker says nothing.
func TestTrackerRetiresDroppedTransfer(t *testing.T) {
	f := newTrackerFixture(t)
	req := f.request("wf-dropped", 8)
	stuck := f.sendStuck(req)
	if err := evm.TrackTxConfirmedOnly(f.ctx, f.db, chainName, stuck.Hash, "wf-dropped"); err != nil {
		t.Fatal(err)
	}
	foreign, err := types.SignNewTx(mustKey(t, senderKeyHex), types.LatestSignerForChainID(big.NewInt(simChainID)),
		&types.DynamicFeeTx{ChainID: big.NewInt(simChainID), Nonce: stuck.Nonce, GasTipCap: big.NewInt(1_000_000_000),
			GasFeeCap: maxFeeWei, Gas: 21000, To: &f.sender, Value: new(big.Int)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.SendTransaction(f.ctx, foreign); err != nil {
		t.Fatal(err)
	}
	f.sim.Commit()
	f.requireSuccess(foreign.Hash())
	for range confirmations - 1 { // the stranger is 1 … confirmations-1 deep
		f.check()
		expect(t, f.rec.take(), "wf-dropped", stuck.Hash.Hex())
		f.sim.Commit()
	}
	f.check()
	expect(t, f.rec.take(), "wf-dropped", stuck.Hash.Hex(), want{milestone: chain.MilestoneDropped})
	if s := f.state(stuck.Hash); s != "done" {
		t.Fatalf("state %q after the drop, want done", s)
	}
	checkedAt := func() string {
		var at string
		if err := f.db.QueryRowContext(f.ctx, "SELECT COALESCE(checked_at,'') FROM tracked_txs WHERE tx_hash=?",
			stuck.Hash.Hex()).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	checked1 := checkedAt()
	f.sim.Commit()
	f.check()
	expect(t, f.rec.take(), "wf-dropped", stuck.Hash.Hex())
	checked2 := checkedAt()
	if checked1 != checked2 {
		t.Fatalf("a retired row was checked again (%s, then %s)", checked1, checked2)
	}
}

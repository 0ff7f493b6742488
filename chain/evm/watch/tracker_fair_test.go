package watch_test

import (
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"payflow/chain"

	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
)

// stuckRows is more open rows than the tracker checks in one pass.
const stuckRows = 5001

// insertStuck tracks n transactions that no node has ever heard of, tracked
// an hour ago (before anything else): they can never mine.
func (f *trackerFixture) insertStuck(n int) {
	f.T.Helper()
	var q strings.Builder
	q.WriteString("INSERT INTO tracked_txs (tx_hash, chain, workflow_id, notify_seen, created_at) VALUES ")
	args := make([]any, 0, 3*n)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,FALSE,NOW(6) - INTERVAL 1 HOUR)")
		args = append(args, crypto.Keccak256Hash([]byte(fmt.Sprint("stuck-", i))).Hex(), evmtest.ChainName, fmt.Sprint("wf-stuck-", i))
	}
	if _, err := f.DB.ExecContext(f.Ctx, q.String(), args...); err != nil {
		f.T.Fatal(err)
	}
}

// TestTrackerChecksEveryOpenRow: more than a
// pass's worth of transactions that can never mine were tracked first; a real
// transfer tracked after them is still seen and confirmed.
func TestTrackerChecksEveryOpenRow(t *testing.T) {
	f := newTrackerFixture(t)
	f.insertStuck(stuckRows)
	stx := f.SignAndSend(f.Request("wf-real", 5))
	if err := evm.TrackTxConfirmedOnly(f.Ctx, f.DB, evmtest.ChainName, stx.Hash, "wf-real"); err != nil {
		t.Fatal(err)
	}
	minedAt := f.Sim.Commit()
	bn, _ := f.Head()
	for range evmtest.Confirmations - 1 {
		f.Sim.Commit()
	}
	var got []evmtest.Notified
	for range 3 { // a few heads: every open row is checked within them
		f.Check()
		got = append(got, f.Rec.Take()...)
		f.Sim.Commit()
	}
	evmtest.Expect(t, got, "wf-real", stx.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneConfirmed, BlockNumber: bn, BlockHash: minedAt, Succeeded: true})
	if n := f.Count("SELECT COUNT(*) FROM tracked_txs WHERE state IN ('pending','seen') AND checked_at IS NULL"); n != 0 {
		t.Fatalf("%d open rows never checked", n)
	}
}

// TestTrackerRetiresDroppedTransfer: a transfer payflow signed
// whose nonce another transaction took can never mine. Once the stranger is
// confirmations deep, its owner is told "dropped" (a payment tracking
// "confirmed" only, too) and the row is no longer polled; before that the
// tracker says nothing.
func TestTrackerRetiresDroppedTransfer(t *testing.T) {
	f := newTrackerFixture(t)
	req := f.Request("wf-dropped", 8)
	stuck := f.SendStuck(req)
	if err := evm.TrackTxConfirmedOnly(f.Ctx, f.DB, evmtest.ChainName, stuck.Hash, "wf-dropped"); err != nil {
		t.Fatal(err)
	}
	foreign, err := types.SignNewTx(evmtest.MustKey(t, evmtest.SenderKeyHex), types.LatestSignerForChainID(big.NewInt(evmtest.SimChainID)),
		&types.DynamicFeeTx{ChainID: big.NewInt(evmtest.SimChainID), Nonce: stuck.Nonce, GasTipCap: big.NewInt(1_000_000_000),
			GasFeeCap: evmtest.MaxFeeWei, Gas: 21000, To: &f.Sender, Value: new(big.Int)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Client.SendTransaction(f.Ctx, foreign); err != nil {
		t.Fatal(err)
	}
	f.Sim.Commit()
	f.RequireSuccess(foreign.Hash())
	for range evmtest.Confirmations - 1 { // the stranger is 1 … confirmations-1 deep
		f.Check()
		evmtest.Expect(t, f.Rec.Take(), "wf-dropped", stuck.Hash.Hex())
		f.Sim.Commit()
	}
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-dropped", stuck.Hash.Hex(), evmtest.Want{Milestone: chain.MilestoneDropped})
	if s := f.State(stuck.Hash); s != "done" {
		t.Fatalf("state %q after the drop, want done", s)
	}
	checkedAt := func() string {
		var at string
		if err := f.DB.QueryRowContext(f.Ctx, "SELECT COALESCE(checked_at,'') FROM tracked_txs WHERE tx_hash=?",
			stuck.Hash.Hex()).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	checked1 := checkedAt()
	f.Sim.Commit()
	f.Check()
	evmtest.Expect(t, f.Rec.Take(), "wf-dropped", stuck.Hash.Hex())
	checked2 := checkedAt()
	if checked1 != checked2 {
		t.Fatalf("a retired row was checked again (%s, then %s)", checked1, checked2)
	}
}

package evm_test

import (
	"context"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
)

// TestWatchesAndCursor: a watch is registered once (the first from_block
// stands), is seen by IsWatched and listed until marked backfilled, and the
// listener's cursor reads back as saved.
func TestWatchesAndCursor(t *testing.T) {
	ctx, db := context.Background(), evmtest.TestDB(t)
	a := common.HexToAddress("0x00000000000000000000000000000000000a11ce")
	if isNew, err := evm.Watch(ctx, db, "ETH", "USDT", a, 7); err != nil || !isNew {
		t.Fatalf("first watch: new=%v err=%v", isNew, err)
	}
	if isNew, err := evm.Watch(ctx, db, "ETH", "USDT", a, 9); err != nil || isNew {
		t.Fatalf("second watch: new=%v err=%v", isNew, err)
	}
	if from, err := evm.WatchedFrom(ctx, db, "ETH", "USDT", a); err != nil || from != 7 {
		t.Fatalf("watched from %d (%v), want 7", from, err)
	}
	for chainName, want := range map[string]bool{"ETH": true, "BSC": false} {
		if got, err := evm.IsWatched(ctx, db, chainName, a); err != nil || got != want {
			t.Fatalf("watched on %s: %v (%v), want %v", chainName, got, err, want)
		}
	}
	rows, err := evm.WatchesAfter(ctx, db, "ETH", 0, 10)
	if err != nil || len(rows) != 1 || rows[0].Address != a || rows[0].FromBlock != 7 || rows[0].Backfilled {
		t.Fatalf("watches: %+v (%v)", rows, err)
	}
	if err := evm.MarkBackfilled(ctx, db, []int64{rows[0].ID}, 12); err != nil {
		t.Fatal(err)
	}
	if rows, err = evm.WatchesAfter(ctx, db, "ETH", 0, 10); err != nil || !rows[0].Backfilled {
		t.Fatalf("after backfill: %+v (%v)", rows, err)
	}

	if _, ok, err := evm.LoadCursor(ctx, db, "ETH"); err != nil || ok {
		t.Fatalf("a cursor before any was saved: ok=%v err=%v", ok, err)
	}
	c := evm.Cursor{Number: 42, Hash: common.HexToHash("0x42")}
	for range 2 {
		if err := evm.SaveCursor(ctx, db, "ETH", c); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok, err := evm.LoadCursor(ctx, db, "ETH"); err != nil || !ok || got != c {
		t.Fatalf("cursor %+v ok=%v (%v), want %+v", got, ok, err, c)
	}
	if n, ok, err := evm.NewStats(db).CursorBlock(ctx, "ETH"); err != nil || !ok || n != 42 {
		t.Fatalf("stats cursor %d ok=%v (%v)", n, ok, err)
	}
}

// TestInFlightRows: rows stored by StoreInFlight are signed, sent and
// tracked: SignedOf, Summary, OpenCount and StateOf all see them.
func TestInFlightRows(t *testing.T) {
	ctx, db := context.Background(), evmtest.TestDB(t)
	from := common.HexToAddress("0x000000000000000000000000000000000000fee0")
	rows := []evm.InFlight{
		{WorkflowID: "wf-a", Hash: common.HexToHash("0xa1"), From: from, Nonce: 5},
		{WorkflowID: "wf-b", Hash: common.HexToHash("0xb1"), From: from, Nonce: 6},
	}
	if err := evm.StoreInFlight(ctx, db, "ETH", rows); err != nil {
		t.Fatal(err)
	}
	signed, err := evm.SignedOf(ctx, db, "wf-a")
	if err != nil || len(signed) != 1 || signed[0].Chain != "ETH" || signed[0].Nonce != 5 || signed[0].TxHash != rows[0].Hash.Hex() {
		t.Fatalf("signed of wf-a: %+v (%v)", signed, err)
	}
	store, err := evm.NewTxStore("ETH", db)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := store.Summary(ctx)
	if err != nil || sum != (evm.NonceSummary{Count: 2, Distinct: 2, Sent: 2, Lowest: 5, Highest: 6}) {
		t.Fatalf("summary %+v (%v)", sum, err)
	}
	tracked, err := evm.NewTracked("ETH", db)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tracked.OpenCount(ctx); err != nil || n != 2 {
		t.Fatalf("open %d (%v), want 2", n, err)
	}
	if s, err := tracked.StateOf(ctx, rows[1].Hash.Hex(), "wf-b"); err != nil || s != "pending" {
		t.Fatalf("state %q (%v), want pending", s, err)
	}
}

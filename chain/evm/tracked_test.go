package evm_test

import (
	"context"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
	"payflow/internal/callcount"
	"payflow/internal/stacktest"
)

// TestRecordOfOneRowIsOneStatement: the tracker records a confirmation
// with nothing to retire in one statement, with no transaction of its own
// (a begin and a commit per payment before); with replacements to retire,
// both updates stay in one transaction. The row says the same either way.
func TestRecordOfOneRowIsOneStatement(t *testing.T) {
	ctx := context.Background()
	base := evmtest.TestDB(t)
	var name string
	if err := base.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	cfg, err := mysql.ParseDSN(stacktest.Load(t).MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = name
	db, err := callcount.OpenDB(cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tracked, err := evm.NewTracked(evmtest.ChainName, db)
	if err != nil {
		t.Fatal(err)
	}
	count := func(c prometheus.Counter) float64 {
		var m dto.Metric
		if err := c.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	begins := func() float64 { return count(callcount.Statements.WithLabelValues("begin", "")) }
	updates := func() float64 { return count(callcount.Statements.WithLabelValues("update", "tracked_txs")) }

	block := common.HexToHash("0xb10c")
	for i, retire := range []bool{false, true} {
		hash := common.BigToHash(common.Big1)
		if retire {
			hash = common.BigToHash(common.Big2)
		}
		wf := "withdraw-record"
		if err := evm.TrackTx(ctx, db, evmtest.ChainName, hash, wf); err != nil {
			t.Fatal(err)
		}
		b0, u0 := begins(), updates()
		if _, err := tracked.Record(ctx, evm.TrackedKey{Hash: hash.Hex(), WorkflowID: wf}, "confirmed", 7, &block, retire); err != nil {
			t.Fatal(err)
		}
		wantBegins, wantUpdates := 0.0, 1.0
		if retire {
			wantBegins, wantUpdates = 1, 2
		}
		if got := begins() - b0; got != wantBegins {
			t.Errorf("case %d (retire %v): %v transactions begun, want %v", i, retire, got, wantBegins)
		}
		if got := updates() - u0; got != wantUpdates {
			t.Errorf("case %d (retire %v): %v updates, want %v", i, retire, got, wantUpdates)
		}
		var state, blockHash string
		var number uint64
		if err := db.QueryRowContext(ctx, "SELECT state, block_number, block_hash FROM tracked_txs WHERE tx_hash=? AND workflow_id=?",
			hash.Hex(), wf).Scan(&state, &number, &blockHash); err != nil {
			t.Fatal(err)
		}
		if state != "confirmed" || number != 7 || blockHash != block.Hex() {
			t.Errorf("case %d: recorded %s at %d %s", i, state, number, blockHash)
		}
	}
}

package callcount_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"payflow/internal/callcount"
	"payflow/internal/stacktest"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct{ q, verb, table string }{
		{"SELECT a FROM `balances` WHERE x = ?", "select", "balances"},
		{"select a from payflow.journal j join balances b on 1", "select", "journal"},
		{"SELECT held FROM reservations WHERE k = ? FOR UPDATE", "select_for_update", "reservations"},
		{"SELECT n FROM nonces WHERE w = ? FOR UPDATE SKIP LOCKED", "select_for_update", "nonces"},
		{"\n  INSERT INTO journal (a, b) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE a = a", "insert", "journal"},
		{"UPDATE balances SET held = held + ? WHERE id = ?", "update", "balances"},
		{"DELETE FROM sign_intents WHERE id = ?", "delete", "sign_intents"},
		{"SELECT 1", "select", ""},
		{"SELECT s.a FROM (SELECT 1) one LEFT JOIN (SELECT a FROM signed_txs WHERE x = ?) s ON TRUE", "select", "signed_txs"},
		{"SAVEPOINT hook", "other", ""},
		{"", "other", ""},
	} {
		verb, table := callcount.Classify(c.q)
		if verb != c.verb || table != c.table {
			t.Errorf("callcount.Classify(%q) = %q, %q; want %q, %q", c.q, verb, table, c.verb, c.table)
		}
	}
}

func TestMethods(t *testing.T) {
	one := []byte(`{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}`)
	batch := []byte(`[{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x01"]},` +
		`{"jsonrpc":"2.0","id":2,"method":"eth_getTransactionCount","params":["0xab","pending"]}]`)
	if got := callcount.Methods(one); len(got) != 1 || got[0] != "eth_blockNumber" {
		t.Errorf("one call: %v", got)
	}
	if got := callcount.Methods(batch); len(got) != 2 || got[0] != "eth_sendRawTransaction" || got[1] != "eth_getTransactionCount" {
		t.Errorf("batch: %v", got)
	}
}

// The counting database behaves as the driver does and counts each
// statement once, a transaction's begin and commit included.
func TestOpenDBCounts(t *testing.T) {
	st := stacktest.Load(t)
	db, err := callcount.OpenDB(st.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	sel := callcount.Statements.WithLabelValues("select", "")
	begin, commit := callcount.Statements.WithLabelValues("begin", ""), callcount.Statements.WithLabelValues("commit", "")
	s0, b0, c0 := value(sel), value(begin), value(commit)
	var n int
	if err := db.QueryRowContext(ctx, "SELECT ? + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("SELECT ? + 1 = %d, %v", n, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := value(sel) - s0; got != 2 {
		t.Errorf("selects counted: %v, want 2", got)
	}
	if b, c := value(begin)-b0, value(commit)-c0; b != 1 || c != 1 {
		t.Errorf("begin %v commit %v, want 1 and 1", b, c)
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

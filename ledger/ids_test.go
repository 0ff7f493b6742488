package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"payflow/ledger"
)

// TestQueueIDsTheProtocolAccepts: every queue_id the protocol
// accepts — up to 128 characters of any Unicode, case-sensitive — is stored
// under payflow's prefixes, reserved, settled and released by key, and two
// queue_ids differing only in case are two payments. On the schema as it was
// this failed with "Data too long" (1406) and "Illegal mix of collations"
// (1267), which reached the business as its error text.
func TestQueueIDsTheProtocolAccepts(t *testing.T) {
	ctx := context.Background()
	l, db := newLedger(t)
	addr := "0x00000000000000000000000000000000000000a1"
	if _, err := l.Credit(ctx, ledger.CreditInput{Chain: "ETH", Address: addr, Symbol: "USDT", Amount: d("100"),
		TxHash: "0x" + strings.Repeat("1", 64), LogIndex: 0}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("支", 120) + "-ünï😀"
	if n := len([]rune(long)); n != 125 {
		t.Fatalf("test id has %d characters", n)
	}
	keys := []string{"withdraw-" + long, "withdraw-Q-case", "withdraw-q-case", "pay-" + strings.Repeat("x", 128)}
	for _, k := range keys {
		if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: k, Chain: "ETH", Address: addr, Symbol: "USDT",
			Amount: d("1"), WorkflowID: k}); err != nil {
			t.Fatalf("reserving %q: %v", k, err)
		}
		r, err := l.GetReservation(ctx, k)
		if err != nil || r.QueueID != k || r.State != "held" {
			t.Fatalf("reading back %q: %+v, %v", k, r, err)
		}
	}
	if _, err := l.Settle(ctx, keys[0], "0x"+strings.Repeat("2", 64)); err != nil {
		t.Fatalf("settling the unicode id: %v", err)
	}
	if _, err := l.Release(ctx, keys[1]); err != nil {
		t.Fatal(err)
	}
	if r, _ := l.GetReservation(ctx, keys[2]); r.State != "held" {
		t.Errorf("releasing %q touched %q (state %s): ids must be case-sensitive", keys[1], keys[2], r.State)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM journal WHERE reference=?", keys[0]).Scan(&n); err != nil || n != 2 {
		t.Errorf("journal rows for the unicode id: %d, %v", n, err)
	}
	// The same ids as workflow ids and outbox message ids.
	for _, k := range keys {
		if _, err := db.Exec("INSERT INTO outbox (message_id, flow, body) VALUES (?,?,?)",
			k+"/result", "withdraw", "{}"); err != nil {
			t.Errorf("outbox id %q: %v", k, err)
		}
		if _, err := db.Exec(`INSERT INTO tracked_txs (tx_hash, chain, workflow_id) VALUES (?,?,?)`,
			"0x"+strings.Repeat("3", 64), "ETH", k); err != nil {
			t.Errorf("tracked workflow id %q: %v", k, err)
		}
	}
	var got string
	err := db.QueryRow("SELECT message_id FROM outbox WHERE message_id=?", "withdraw-q-case/result").Scan(&got)
	if errors.Is(err, sql.ErrNoRows) || got != "withdraw-q-case/result" {
		t.Errorf("outbox lookup is not exact: %q, %v", got, err)
	}
}

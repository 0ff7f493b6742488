// Package integration drives payflow end to end on the real local stack
// (MariaDB, RabbitMQ, the Temporal dev server, geth --dev, the worker and the
// starter started by `make up`), through RabbitMQ and the chain only.
package integration

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/shopspring/decimal"

	"payflow/internal/stacktest"
	"payflow/protocol"
)

const (
	withdrawKey   = "pay.withdraw.routing.key"
	withdrawResp  = "pay.withdraw.return.queue"
	responseWait  = 3 * time.Minute
	quietInterval = 8 * time.Second // after the answer, how long we watch for a duplicate
)

func withdrawBody(queueID, from, to, amount string) []byte {
	return []byte(fmt.Sprintf(`{"queue_id":%q,"from_address":%q,"to_address":%q,"amount":%s,"chain":"ETH","symbol":"USDT","timestamp":%d}`,
		queueID, from, to, amount, time.Now().Unix()))
}

type ledgerRow struct{ available, held decimal.Decimal }

// balance is addr's USDT ledger row on the first chain.
func balance(t *testing.T, st *stacktest.Stack, addr string) ledgerRow {
	t.Helper()
	return balanceOf(t, st, addr, "USDT")
}

// balanceOf is addr's ledger row of symbol on the first chain.
func balanceOf(t *testing.T, st *stacktest.Stack, addr, symbol string) ledgerRow {
	t.Helper()
	db := st.DB(t)
	var r ledgerRow
	if err := db.QueryRow("SELECT available, held FROM balances WHERE chain='ETH' AND address=? AND symbol=?", addr, symbol).
		Scan(&r.available, &r.held); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestWithdrawEndToEnd publishes one signed withdraw and checks the single
// response, the on-chain transfer, and the ledger rows; then redelivers the
// same request and checks that nothing is doubled.
func TestWithdrawEndToEnd(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	resp := st.Collect(t, withdrawResp, "queue_id")

	from := walletByLabel(t, db, "user-1")
	to := stacktest.RandomAddress()
	queueID := stacktest.RandomID("it-withdraw-")
	before := balance(t, st, from)
	chainBefore := stacktest.TokenBalance(t, usdt, from)
	if before.available.LessThan(decimal.RequireFromString("12.5")) {
		t.Fatalf("dev wallet user-1 has only %s USDT available; `make up` funds it", before.available)
	}

	body, err := protocol.SignBody(st.SignKey, withdrawBody(queueID, from, to, "12.5"))
	if err != nil {
		t.Fatal(err)
	}
	st.Publish(t, withdrawKey, body, false)

	got := resp.Wait(t, queueID, 1, responseWait)[0]
	if got.Body["status"].(interface{ String() string }).String() != "1" {
		t.Fatalf("status = %v, error = %v; want 1", got.Body["status"], got.Body["error"])
	}
	if a := fmt.Sprint(got.Body["amount"]); a != "12.5" {
		t.Errorf("amount = %s, want 12.5 (a JSON number)", a)
	}
	if fa := got.Body["from_address"]; fa != from {
		t.Errorf("from_address = %v, want %s", fa, from)
	}
	if got.MessageID != "withdraw-"+queueID+"/result" {
		t.Errorf("message id = %q, want a stable id", got.MessageID)
	}
	txHash, _ := got.Body["tx_hash"].(string)

	// The chain: one successful transfer of 12.5 USDT from → to.
	rcpt, err := eth.TransactionReceipt(context.Background(), common.HexToHash(txHash))
	if err != nil {
		t.Fatalf("receipt of %s: %v", txHash, err)
	}
	if rcpt.Status != 1 {
		t.Fatalf("transfer %s reverted", txHash)
	}
	head, _ := eth.BlockNumber(context.Background())
	if head+1 < rcpt.BlockNumber.Uint64()+uint64(st.Confirmations) {
		t.Errorf("answered at head %d before %d confirmations of block %d", head, st.Confirmations, rcpt.BlockNumber)
	}
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(big.NewInt(12_500_000)) != 0 {
		t.Fatalf("recipient holds %s units, want 12500000", b)
	}
	if d := new(big.Int).Sub(chainBefore, stacktest.TokenBalance(t, usdt, from)); d.Cmp(big.NewInt(12_500_000)) != 0 {
		t.Errorf("sender lost %s units on chain, want 12500000", d)
	}

	// The ledger: reserved then settled once; available down by 12.5, held back.
	wfID := "withdraw-" + queueID
	var state, rtx string
	if err := db.QueryRow("SELECT state, tx_hash FROM reservations WHERE reservation_key=?", wfID).Scan(&state, &rtx); err != nil {
		t.Fatalf("reservation: %v", err)
	}
	if state != "settled" || rtx != txHash {
		t.Errorf("reservation state=%s tx=%s, want settled %s", state, rtx, txHash)
	}
	ops := map[string]int{}
	rows, err := db.Query("SELECT op FROM journal WHERE reference=?", wfID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var op string
		_ = rows.Scan(&op)
		ops[op]++
	}
	rows.Close()
	if ops["reserve"] != 1 || ops["settle"] != 1 || len(ops) != 2 {
		t.Errorf("journal ops = %v, want one reserve and one settle", ops)
	}
	after := balance(t, st, from)
	if !before.available.Sub(after.available).Equal(decimal.RequireFromString("12.5")) {
		t.Errorf("available went %s → %s, want -12.5", before.available, after.available)
	}
	if !after.held.Equal(before.held) {
		t.Errorf("held went %s → %s, want unchanged", before.held, after.held)
	}

	// A redelivery of the same signed request starts nothing and answers nothing.
	st.Publish(t, withdrawKey, body, false)
	deadline := time.Now().Add(30 * time.Second)
	for st.QueueDepth(t, "pay.withdraw.queue") > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(quietInterval)
	if n := len(resp.Get(queueID)); n != 1 {
		t.Errorf("got %d responses for %s, want exactly 1", n, queueID)
	}
	var signed int
	_ = db.QueryRow("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", wfID).Scan(&signed)
	if signed != 1 {
		t.Errorf("%d signed transactions for %s, want 1", signed, wfID)
	}
	if b := stacktest.TokenBalance(t, usdt, to); b.Cmp(big.NewInt(12_500_000)) != 0 {
		t.Errorf("recipient holds %s units after the redelivery, want 12500000", b)
	}
}

// TestWithdrawBadSignature answers a tampered request with status=0 and a
// clear error, and the consumer keeps going.
func TestWithdrawBadSignature(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	resp := st.Collect(t, withdrawResp, "queue_id")
	queueID := stacktest.RandomID("it-badsig-")
	body := withdrawBody(queueID, walletByLabel(t, db, "user-2"), stacktest.RandomAddress(), "1")
	body = append(body[:len(body)-1], []byte(`,"sign":"00ff"}`)...)
	st.Publish(t, withdrawKey, body, false)
	got := resp.Wait(t, queueID, 1, time.Minute)[0]
	if s := fmt.Sprint(got.Body["status"]); s != "0" {
		t.Fatalf("status = %s, want 0", s)
	}
	if e := fmt.Sprint(got.Body["error"]); e == "" || !strings.Contains(e, "signature") {
		t.Errorf("error = %q, want it to name the signature", e)
	}
}

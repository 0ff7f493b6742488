package integration

import (
	"context"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/shopspring/decimal"

	"payflow/internal/stacktest"
)

const (
	topupKey  = "pay.recharge.routing.key"
	topupResp = "pay.recharge.return.queue"
)

// TestTopupTwoDepositsInOneTransaction watches a fresh address, sends it two
// Transfer logs in one transaction, and expects four responses (status 2 then
// 1 for each log) and two ledger credits; a repeated topup changes nothing.
func TestTopupTwoDepositsInOneTransaction(t *testing.T) {
	st := stacktest.Load(t)
	db := st.DB(t)
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	resp := st.Collect(t, topupResp, "address")

	// A fresh address, registered like a business system would (a key we
	// make up: payflow only watches it).
	key, _ := crypto.GenerateKey()
	addr := common.Address(crypto.PubkeyToAddress(key.PublicKey))
	lower := stacktestLower(addr)
	body := []byte(fmt.Sprintf(`{"chain":"ETH","symbol":"USDT","address":%q,"timestamp":%d}`, addr.Hex(), time.Now().Unix()))
	st.Publish(t, topupKey, body, true)
	st.Publish(t, topupKey, body, true) // a repeat is not an error and starts nothing

	// Wait until the watch is registered, then pay it twice in one transaction.
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		_ = db.QueryRow("SELECT COUNT(*) FROM watched_addresses WHERE address=?", lower).Scan(&n)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("address %s never registered for watching", lower)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fk, err := crypto.HexToECDSA(st.FaucetPrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := bind.NewKeyedTransactorWithChainID(fk, big.NewInt(st.ChainID))
	tx, err := usdt.BatchTransfer(opts, []common.Address{addr, addr}, []*big.Int{big.NewInt(7_250_000), big.NewInt(3_000_000)})
	if err != nil {
		t.Fatal(err)
	}
	rcpt, err := bind.WaitMined(context.Background(), eth, tx)
	if err != nil || rcpt.Status != 1 {
		t.Fatalf("batch transfer failed: %v", err)
	}

	got := resp.Wait(t, lower, 4, 2*time.Minute)
	time.Sleep(quietInterval)
	got = resp.Get(lower)
	if len(got) != 4 {
		t.Fatalf("got %d responses, want 4: %v", len(got), got)
	}
	type key2 struct{ logIndex, status string }
	seen := map[key2]string{}
	for _, d := range got {
		if d.Body["tx_hash"] != tx.Hash().Hex() {
			t.Errorf("tx_hash %v, want %s", d.Body["tx_hash"], tx.Hash().Hex())
		}
		k := key2{fmt.Sprint(d.Body["log_index"]), fmt.Sprint(d.Body["status"])}
		if _, dup := seen[k]; dup {
			t.Errorf("duplicate response %v", k)
		}
		seen[k] = fmt.Sprint(d.Body["amount"])
	}
	for _, want := range []struct{ idx, amount string }{{"0", "7.25"}, {"1", "3"}} {
		for _, status := range []string{"2", "1"} {
			if a, ok := seen[key2{want.idx, status}]; !ok || a != want.amount {
				t.Errorf("log %s status %s: amount %q present=%v, want %s", want.idx, status, a, ok, want.amount)
			}
		}
	}
	// status=2 comes before status=1 for each log.
	for i, d := range got {
		if fmt.Sprint(d.Body["status"]) == "1" {
			idx := fmt.Sprint(d.Body["log_index"])
			for _, e := range got[i:] {
				if fmt.Sprint(e.Body["log_index"]) == idx && fmt.Sprint(e.Body["status"]) == "2" {
					t.Errorf("status 2 for log %s arrived after status 1", idx)
				}
			}
		}
	}

	// Ledger: credited exactly once per log.
	var total decimal.Decimal
	var credits int
	if err := db.QueryRow("SELECT COUNT(*), COALESCE(SUM(amount),0) FROM journal WHERE op='credit' AND tx_hash=?",
		stacktestLowerHash(tx.Hash())).Scan(&credits, &total); err != nil {
		t.Fatal(err)
	}
	if credits != 2 || !total.Equal(decimal.RequireFromString("10.25")) {
		t.Fatalf("%d credits totalling %s, want 2 totalling 10.25", credits, total)
	}
	var available decimal.Decimal
	_ = db.QueryRow("SELECT available FROM balances WHERE address=? AND symbol='USDT'", lower).Scan(&available)
	if !available.Equal(decimal.RequireFromString("10.25")) {
		t.Errorf("available = %s, want 10.25", available)
	}
}

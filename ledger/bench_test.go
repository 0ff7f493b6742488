package ledger_test

import (
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shopspring/decimal"

	"payflow/internal/stacktest"
	"payflow/ledger"
)

// benchPostings runs b.N durable credits (each its own committed transaction)
// from writers goroutines spread round-robin over wallets wallets, reports
// postings/s and checks that every credit landed exactly once.
func benchPostings(b *testing.B, writers, wallets int, newLedger func(*sql.DB) *ledger.Ledger) {
	db := stacktest.TestDB(b, "bench")
	if err := ledger.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	l := newLedger(db)
	addrs := make([]string, wallets)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("0x%040x", 0xb0000+i)
		// The balance row exists before the race: concurrent first postings
		// to a fresh wallet deadlock on gap locks (see history_test.go).
		if _, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: addrs[i], Symbol: usdt, Amount: decimal.New(1, 0),
			TxHash: fmt.Sprintf("0x%064x", 1<<40+i)}); err != nil {
			b.Fatal(err)
		}
	}
	amount := decimal.RequireFromString("0.000001")
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				// Unique (tx hash, log index): every posting is a new credit, none a replay.
				r, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: addrs[int(i)%wallets], Symbol: usdt,
					Amount: amount, TxHash: fmt.Sprintf("0x%064x", i/4), LogIndex: uint(i % 4), Reference: "bench"})
				if err != nil || r.Replayed {
					b.Errorf("posting %d: replayed=%v, %v", i, r.Replayed, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "postings/s")

	var total decimal.Decimal
	for _, a := range addrs {
		bal, err := l.Balance(ctx, chainETH, a, usdt)
		if err != nil {
			b.Fatal(err)
		}
		total = total.Add(bal.Available)
	}
	if want := amount.Mul(decimal.New(int64(b.N), 0)).Add(decimal.New(int64(wallets), 0)); !total.Equal(want) {
		b.Fatalf("balances sum to %s, want %s", total, want)
	}
}

// BenchmarkPostingsOneHotWallet: 64 writers posting to one wallet, the worst
// case of a row-locking ledger: every posting needs the same balance row.
// Group commit (batch.go) takes the lock once per batch.
func BenchmarkPostingsOneHotWallet(b *testing.B) { benchPostings(b, 64, 1, ledger.New) }

// BenchmarkPostingsSpreadWallets: the same 64 writers over 64 wallets, so
// that row locks do not collide; the gap to the hot wallet is the cost of
// the single row lock.
func BenchmarkPostingsSpreadWallets(b *testing.B) { benchPostings(b, 64, 64, ledger.New) }

// BenchmarkPostingsSerial: one writer, one wallet: the latency of one posting
// (six round trips and a durable commit) as postings/s.
func BenchmarkPostingsSerial(b *testing.B) { benchPostings(b, 1, 1, ledger.New) }

// BenchmarkPostingsOneHotWalletUnbatched: the hot wallet with one
// transaction per posting (batches of one through the same code).
func BenchmarkPostingsOneHotWalletUnbatched(b *testing.B) {
	benchPostings(b, 64, 1, ledger.NewUnbatched)
}

// benchMixed: 64 writers on one wallet, each iteration three postings: a
// credit, a reservation and its settlement (the hot wallet's mix), reported
// as postings/s.
func benchMixed(b *testing.B, newLedger func(*sql.DB) *ledger.Ledger) {
	db := stacktest.TestDB(b, "bench")
	if err := ledger.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	l := newLedger(db)
	const addr = "0x00000000000000000000000000000000000c0c0c"
	if _, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: addr, Symbol: usdt, Amount: decimal.New(1, 0),
		TxHash: "0xfeed"}); err != nil {
		b.Fatal(err)
	}
	one := decimal.New(1, 0)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				q := fmt.Sprintf("m%d", i)
				if _, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: addr, Symbol: usdt, Amount: one,
					TxHash: fmt.Sprintf("0x%x", i)}); err != nil {
					b.Error(err)
					return
				}
				if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: q, Chain: chainETH, Address: addr, Symbol: usdt, Amount: one}); err != nil {
					b.Error(err)
					return
				}
				if _, err := l.Settle(ctx, q, "0xab"); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(3*b.N)/b.Elapsed().Seconds(), "postings/s")
	bal, err := l.Balance(ctx, chainETH, addr, usdt)
	if err != nil || !bal.Available.Equal(one) || !bal.Held.IsZero() {
		b.Fatalf("balance %+v %v, want 1 available", bal, err)
	}
}

// BenchmarkMixedOneHotWallet: credits, reservations and settlements on one
// wallet, group-committed.
func BenchmarkMixedOneHotWallet(b *testing.B) { benchMixed(b, ledger.New) }

// BenchmarkMixedOneHotWalletUnbatched: the same, one transaction per posting
// (batches of one).
func BenchmarkMixedOneHotWalletUnbatched(b *testing.B) { benchMixed(b, ledger.NewUnbatched) }

package main

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/shopspring/decimal"

	"payflow/internal/stacktest"
	"payflow/ledger"
)

// benchDB creates a scratch database on the stack's MariaDB with the schema.
func benchDB(ctx context.Context, st *stacktest.Stack, name string) (*sql.DB, func(), error) {
	cfg, err := mysql.ParseDSN(st.MySQLDSN)
	if err != nil {
		return nil, nil, err
	}
	dbName := "payflow_test_bench_" + name + "_" + stacktest.RandomID("")
	admin, err := sql.Open("mysql", st.MySQLDSN)
	if err != nil {
		return nil, nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+dbName+"`"); err != nil {
		return nil, nil, err
	}
	cfg.DBName = dbName
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(128)
	db.SetMaxIdleConns(128)
	drop := func() {
		db.Close()
		if a, err := sql.Open("mysql", st.MySQLDSN); err == nil {
			_, _ = a.Exec("DROP DATABASE IF EXISTS `" + dbName + "`")
			a.Close()
		}
	}
	if err := ledger.Migrate(ctx, db); err != nil {
		drop()
		return nil, nil, err
	}
	return db, drop, nil
}

// benchLedger: 64 writers post n credits to one hot wallet, once through
// today's ledger (group commit: the wallet's writer applies the postings
// queued meanwhile in one transaction) and once through the algorithm before
// it (one committed transaction per posting, each row-locking the balance),
// in the same invocation, each in a fresh database; then checks that every
// posting landed once and the balance equals the sum of the journal.
func benchLedger(ctx context.Context, st *stacktest.Stack, n, nOld int) result {
	name := "ledger postings, one hot wallet, 64 writers"
	old, err := runPostings(ctx, st, nOld, ledger.NewUnbatched)
	if err != nil {
		return result{Name: name, Measured: "error", Verdict: "FAIL (correctness)", Note: "one transaction per posting: " + err.Error()}
	}
	el, err := runPostings(ctx, st, n, ledger.New)
	if err != nil {
		return result{Name: name, Measured: "error", Verdict: "FAIL (correctness)", Note: "group commit: " + err.Error()}
	}
	rate, oldRate := float64(n)/el.Seconds(), float64(nOld)/old.Seconds()
	return result{Name: name, Measured: fmt.Sprintf("%.0f postings/s", rate), Target: "≥ 5,000/s", Verdict: verdict(rate >= 5000),
		Note: fmt.Sprintf("group commit, %d postings in %s; one transaction per posting (before): %.0f postings/s over %d, same run; %.1f×",
			n, el.Round(time.Millisecond), oldRate, nOld, rate/oldRate)}
}

// runPostings posts n credits of 1 from 64 writers to one wallet of a fresh
// database through the ledger newLedger makes, and returns the time taken;
// an error if a posting failed or the balance is not n and the sum of the
// journal.
func runPostings(ctx context.Context, st *stacktest.Stack, n int, newLedger func(*sql.DB) *ledger.Ledger) (time.Duration, error) {
	db, drop, err := benchDB(ctx, st, "ledger")
	if err != nil {
		return 0, err
	}
	defer drop()
	l := newLedger(db)
	const wallet = "0x00000000000000000000000000000000000b0b0b"
	var failures atomic.Int64
	start := time.Now()
	fanOut(64, n, func(i int) {
		if _, err := l.Credit(ctx, ledger.CreditInput{Chain: "ETH", Address: wallet, Symbol: "USDT",
			Amount: decimal.NewFromInt(1), TxHash: fmt.Sprintf("0x%064x", i), LogIndex: 0}); err != nil {
			failures.Add(1)
		}
	})
	el := time.Since(start)
	b, _ := l.Balance(ctx, "ETH", wallet, "USDT")
	sum, _ := l.JournalSum(ctx, "ETH", wallet, "USDT")
	if failures.Load() > 0 || !b.Total().Equal(decimal.NewFromInt(int64(n))) || !sum.Equal(b.Total()) {
		return el, fmt.Errorf("%d failures, balance %s, journal sum %s, want %d", failures.Load(), b.Total(), sum, n)
	}
	return el, nil
}

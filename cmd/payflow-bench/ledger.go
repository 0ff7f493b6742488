package main

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
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

// benchLedger: 64 writers post n credits (one committed transaction each,
// row-locking the same balance) to one hot wallet, then checks that the
// balance equals the sum of the journal.
func benchLedger(ctx context.Context, st *stacktest.Stack, n int) result {
	name := "ledger postings, one hot wallet, 64 writers"
	db, drop, err := benchDB(ctx, st, "ledger")
	if err != nil {
		return result{Name: name, Measured: "error", Verdict: "FAIL (correctness)", Note: err.Error()}
	}
	defer drop()
	l := ledger.New(db)
	const wallet = "0x00000000000000000000000000000000000b0b0b"
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if _, err := l.Credit(ctx, ledger.CreditInput{Chain: "ETH", Address: wallet, Symbol: "USDT",
					Amount: decimal.NewFromInt(1), TxHash: fmt.Sprintf("0x%064x", i), LogIndex: 0}); err != nil {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b, _ := l.Balance(ctx, "ETH", wallet, "USDT")
	var sum decimal.Decimal
	_ = db.QueryRowContext(ctx, "SELECT COALESCE(SUM(amount),0) FROM journal").Scan(&sum)
	rate := float64(n) / el.Seconds()
	r := result{Name: name, Measured: fmt.Sprintf("%.0f postings/s", rate), Target: "≥ 2,000/s", Verdict: verdict(rate >= 2000),
		Note: fmt.Sprintf("%d postings in %s", n, el.Round(time.Millisecond))}
	if failures.Load() > 0 || !b.Total().Equal(decimal.NewFromInt(int64(n))) || !sum.Equal(b.Total()) {
		r.Verdict = "FAIL (correctness)"
		r.Note = fmt.Sprintf("%d failures, balance %s, journal sum %s, want %d", failures.Load(), b.Total(), sum, n)
	}
	return r
}

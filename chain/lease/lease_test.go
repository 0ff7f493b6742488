package lease_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"payflow/chain/lease"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// TestLeaseOneHolderAndTakeover: two workers compete for the chain lease;
// only one runs the leased task; when it dies without releasing (its renewals
// stop), the other takes over after the TTL; a clean stop releases at once.
func TestLeaseOneHolderAndTakeover(t *testing.T) {
	db := testDB(t)
	const ttl = 900 * time.Millisecond
	var running atomic.Int32
	var maxRunning atomic.Int32
	var mu sync.Mutex
	var holders []string
	task := func(name string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			n := running.Add(1)
			for {
				m := maxRunning.Load()
				if n <= m || maxRunning.CompareAndSwap(m, n) {
					break
				}
			}
			mu.Lock()
			holders = append(holders, name)
			mu.Unlock()
			<-ctx.Done()
			running.Add(-1)
			return nil
		}
	}
	ctxA, killA := context.WithCancel(context.Background())
	doneA := make(chan struct{})
	go func() {
		lease.RunWithLease(ctxA, db, "chain-test", "worker-a", ttl, slog.New(slog.NewTextHandler(io.Discard, nil)), task("a"))
		close(doneA)
	}()
	waitFor(t, func() bool { return running.Load() == 1 })

	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneB := make(chan struct{})
	go func() {
		lease.RunWithLease(ctxB, db, "chain-test", "worker-b", ttl, slog.New(slog.NewTextHandler(io.Discard, nil)), task("b"))
		close(doneB)
	}()
	time.Sleep(2 * ttl) // b keeps trying while a renews
	mu.Lock()
	if len(holders) != 1 || holders[0] != "a" {
		mu.Unlock()
		t.Fatalf("holders %v while a renews, want only a", holders)
	}
	mu.Unlock()

	// a "dies": simulate a crash by freezing its lease row's renewals — cancel
	// it and put back its row as if the DELETE on exit never happened.
	killA()
	<-doneA
	if _, err := db.Exec("INSERT INTO leases (name, holder, expires_at) VALUES ('chain-test','worker-a', NOW(6) + INTERVAL 900000 MICROSECOND) ON DUPLICATE KEY UPDATE holder='worker-a', expires_at=NOW(6) + INTERVAL 900000 MICROSECOND"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(holders) == 2 && holders[1] == "b"
	})
	if time.Since(start) < ttl/2 {
		t.Errorf("b took over after %s, before a's lease could expire", time.Since(start))
	}
	if maxRunning.Load() != 1 {
		t.Fatalf("%d leased tasks ran at once", maxRunning.Load())
	}
	stopB()
	<-doneB
	var n int
	_ = db.QueryRow("SELECT COUNT(*) FROM leases WHERE name='chain-test'").Scan(&n)
	if n != 0 {
		t.Errorf("lease not released on a clean stop")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testDB is a fresh database of the stack's MariaDB with payflow's tables.
func testDB(t testing.TB) *sql.DB {
	t.Helper()
	db := stacktest.TestDB(t, "lease")
	if err := ledger.Migrate(context.Background(), db); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return db
}

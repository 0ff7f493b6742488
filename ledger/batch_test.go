package ledger

// Group commit (batch.go) against the real MariaDB of the dev stack. Tests
// that need a posting in a given batch hold the wallet's writer busy (a
// closing whose hook waits) while they queue the batch, then let it go.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/stacktest"
)

var bctx = context.Background()

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func newBatchLedger(t *testing.T) (*Ledger, *sql.DB) {
	t.Helper()
	db := stacktest.TestDB(t, "batch")
	if err := Migrate(bctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE hook_log (k VARCHAR(64) PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	return New(db), db
}

// call is one Ledger call run in its own goroutine.
type call struct {
	res  Result
	err  error
	done chan struct{}
}

func (c *call) wait(t *testing.T) (Result, error) {
	t.Helper()
	select {
	case <-c.done:
		return c.res, c.err
	case <-time.After(time.Minute):
		t.Fatal("a posting never returned")
		return Result{}, nil
	}
}

func start(fn func() (Result, error)) *call {
	c := &call{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.res, c.err = fn()
	}()
	return c
}

func queued(l *Ledger, k walletKey) int { return l.queue.Queued(k) }

// waitQueued waits until k's queue holds n postings.
func waitQueued(t *testing.T, l *Ledger, k walletKey, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for queued(l, k) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d postings queued, want %d", queued(l, k), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdWriter busies k's writer: it credits 1, reserves it and releases it
// with a hook that waits for the returned release. The wallet's available
// ends 1 higher.
func holdWriter(t *testing.T, l *Ledger, k walletKey, name string) (release func(), held *call) {
	t.Helper()
	if _, err := l.Credit(bctx, CreditInput{Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("1"),
		TxHash: "0xh01d" + name}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(bctx, ReserveInput{QueueID: "hold-" + name, Chain: k.chain, Address: k.address, Symbol: k.symbol,
		Amount: dec("1")}); err != nil {
		t.Fatal(err)
	}
	entered, gate := make(chan struct{}), make(chan struct{})
	held = start(func() (Result, error) {
		return l.Close(bctx, "hold-"+name, "", OpRelease, func(context.Context, *sql.Tx) error {
			close(entered)
			<-gate
			return nil
		})
	})
	<-entered
	return func() { close(gate) }, held
}

// checkWallet asserts the wallet's invariants: every journal row starts
// where the one before ended (a serial history), the balance is where the
// last ends and equals the sum of the journal, held equals what its open
// reservations hold, available is never negative.
func checkWallet(t *testing.T, db *sql.DB, k walletKey) Balance {
	t.Helper()
	rows, err := db.Query(`SELECT idem_key, amount, available_before, available_after, held_before, held_after FROM journal
		WHERE chain=? AND address=? AND symbol=? ORDER BY id`, k.chain, k.address, k.symbol)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var prev Balance
	var sum decimal.Decimal
	for rows.Next() {
		var idem string
		var amt decimal.Decimal
		var before, after Balance
		if err := rows.Scan(&idem, &amt, &before.Available, &after.Available, &before.Held, &after.Held); err != nil {
			t.Fatal(err)
		}
		if !before.Available.Equal(prev.Available) || !before.Held.Equal(prev.Held) {
			t.Fatalf("%s starts at %+v, the entry before ended at %+v", idem, before, prev)
		}
		if !after.Total().Sub(before.Total()).Equal(amt) || after.Available.Sign() < 0 || after.Held.Sign() < 0 {
			t.Fatalf("%s: %+v → %+v for amount %s", idem, before, after, amt)
		}
		prev = after
		sum = sum.Add(amt)
	}
	var b Balance
	if err := db.QueryRow("SELECT available, held FROM balances WHERE chain=? AND address=? AND symbol=?",
		k.chain, k.address, k.symbol).Scan(&b.Available, &b.Held); err != nil {
		t.Fatal(err)
	}
	if !b.Available.Equal(prev.Available) || !b.Held.Equal(prev.Held) || !sum.Equal(b.Total()) {
		t.Fatalf("balance %+v, last entry ends at %+v, journal sums to %s", b, prev, sum)
	}
	var held decimal.Decimal
	if err := db.QueryRow("SELECT COALESCE(SUM(amount),0) FROM reservations WHERE chain=? AND address=? AND symbol=? AND state='held'",
		k.chain, k.address, k.symbol).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if !held.Equal(b.Held) {
		t.Fatalf("open reservations hold %s, balance holds %s", held, b.Held)
	}
	return b
}

func hookLogged(t *testing.T, db *sql.DB, k string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM hook_log WHERE k=?", k).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func logHook(k string, fail error) Also {
	return func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT IGNORE INTO hook_log (k) VALUES (?)", k); err != nil {
			return err
		}
		return fail
	}
}

// TestBatchOneBadPostingFailsAlone queues one batch holding good postings,
// refused ones (short funds, a mismatched and a closed reservation, a
// failing closing hook) and replays of postings of the same batch: each
// gets its own result, the refused ones leave no trace, the rest commit.
func TestBatchOneBadPostingFailsAlone(t *testing.T) {
	l, db := newBatchLedger(t)
	k := walletKey{"ETH", "0x3333333333333333333333333333333333333333", "USDT"}
	credit := func(h string, amt string) CreditInput {
		return CreditInput{Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec(amt), TxHash: h}
	}
	reserve := func(q, amt string) ReserveInput {
		return ReserveInput{QueueID: q, Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec(amt), WorkflowID: "w-" + q}
	}
	if _, err := l.Credit(bctx, credit("0xc0", "100")); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"settle-me", "release-me", "hook-ok", "hook-bad", "released", "spend-me"} {
		if _, err := l.Reserve(bctx, reserve(q, "10")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Release(bctx, "released"); err != nil {
		t.Fatal(err)
	}
	// available 100-60+10 = 50, held 50; holdWriter adds 1 available.
	release, held := holdWriter(t, l, k, "a")
	hookErr := errors.New("the hook refused")
	steps := []func() (Result, error){
		/* 0 */ func() (Result, error) { return l.Credit(bctx, credit("0xc1", "5")) },
		/* 1 */ func() (Result, error) { return l.Reserve(bctx, reserve("r1", "40")) },
		/* 2 */ func() (Result, error) { return l.Reserve(bctx, reserve("r2", "1000")) }, // short
		/* 3 */ func() (Result, error) { return l.Reserve(bctx, reserve("r1", "41")) }, // mismatch
		/* 4 */ func() (Result, error) { return l.Credit(bctx, credit("0xc1", "5")) }, // replay of 0
		/* 5 */ func() (Result, error) { return l.Settle(bctx, "settle-me", "0xdd") },
		/* 6 */ func() (Result, error) { return l.Settle(bctx, "released", "0xde") }, // closed the other way
		/* 7 */ func() (Result, error) { return l.Close(bctx, "hook-bad", "0xdf", OpSettle, logHook("bad", hookErr)) },
		/* 8 */ func() (Result, error) { return l.Close(bctx, "hook-ok", "", OpRelease, logHook("ok", nil)) },
		/* 9 */ func() (Result, error) { return l.Release(bctx, "release-me") },
		/* 10 */ func() (Result, error) { return l.Reserve(bctx, reserve("r1", "40")) }, // replay of 1
		/* 11 */ func() (Result, error) { return l.CloseSpent(bctx, "spend-me", "0xe0", dec("12")) },
		/* 12 */ func() (Result, error) { return l.Settle(bctx, "settle-me", "0xdd") }, // replay of 5
		/* 13 */ func() (Result, error) { return l.Reserve(bctx, reserve("r3", "34")) }, // fits exactly: 51+5-40+10+10-2-34 = 0
	}
	calls := make([]*call, len(steps))
	for i, s := range steps {
		calls[i] = start(s)
		waitQueued(t, l, k, i+1) // queued in this order, all in the next batch
	}
	release()
	if _, err := held.wait(t); err != nil {
		t.Fatal(err)
	}
	res := make([]Result, len(calls))
	errs := make([]error, len(calls))
	for i, c := range calls {
		res[i], errs[i] = c.wait(t)
	}
	for i, want := range map[int]error{2: ErrInsufficientFunds, 3: ErrReservationMismatch, 6: ErrReservationClosed, 7: hookErr} {
		if !errors.Is(errs[i], want) {
			t.Errorf("posting %d: %v, want %v", i, errs[i], want)
		}
	}
	for _, i := range []int{0, 1, 4, 5, 8, 9, 10, 11, 12, 13} {
		if errs[i] != nil {
			t.Errorf("posting %d failed: %v", i, errs[i])
		}
		if replay := i == 4 || i == 10 || i == 12; res[i].Replayed != replay {
			t.Errorf("posting %d: replayed=%v", i, res[i].Replayed)
		}
	}
	if res[4].JournalID != res[0].JournalID || res[12].JournalID != res[5].JournalID || res[0].JournalID == 0 || res[5].JournalID == 0 {
		t.Errorf("replays in the batch name other entries: %d/%d, %d/%d", res[4].JournalID, res[0].JournalID, res[12].JournalID, res[5].JournalID)
	}
	if !res[13].After.Available.IsZero() {
		t.Errorf("last posting left %+v, want 0 available", res[13].After)
	}
	b := checkWallet(t, db, k)
	if !b.Available.IsZero() || !b.Held.Equal(dec("84")) { // r1 40, r3 34, hook-bad 10
		t.Fatalf("balance %+v, want 0 available and 84 held", b)
	}
	// The failed hook's posting left nothing: its reservation is held, no
	// journal entry, no hook row. The good hook's row is there.
	if r, err := l.GetReservation(bctx, "hook-bad"); err != nil || r.State != "held" {
		t.Fatalf("hook-bad: %+v %v", r, err)
	}
	var n int
	_ = db.QueryRow("SELECT COUNT(*) FROM journal WHERE idem_key IN ('settle:hook-bad', 'reserve:r2')").Scan(&n)
	if n != 0 || hookLogged(t, db, "bad") || !hookLogged(t, db, "ok") {
		t.Fatalf("refused postings left traces: %d entries, bad hook row %v, good hook row %v", n, hookLogged(t, db, "bad"), hookLogged(t, db, "ok"))
	}
	for q, want := range map[string]string{"r1": "held", "r3": "held", "settle-me": "settled", "release-me": "released",
		"hook-ok": "released", "spend-me": "settled", "released": "released"} {
		if r, err := l.GetReservation(bctx, q); err != nil || r.State != want {
			t.Errorf("%s: %+v %v, want %s", q, r, err, want)
		}
	}
	if _, err := l.GetReservation(bctx, "r2"); !errors.Is(err, ErrReservationNotFound) {
		t.Errorf("refused reservation r2: %v", err)
	}

	// The same postings again, in one batch: every good one replays with
	// its entry, the refused ones are refused again (the failed hook's
	// posting now passes), and nothing moves but that.
	release, held = holdWriter(t, l, k, "b")
	steps[7] = func() (Result, error) { return l.Close(bctx, "hook-bad", "0xdf", OpSettle, logHook("bad", nil)) }
	again := make([]*call, len(steps))
	for i, s := range steps {
		again[i] = start(s)
		waitQueued(t, l, k, i+1)
	}
	release()
	if _, err := held.wait(t); err != nil {
		t.Fatal(err)
	}
	for i, c := range again {
		r, err := c.wait(t)
		switch i {
		case 2, 3, 6:
			if want := map[int]error{2: ErrInsufficientFunds, 3: ErrReservationMismatch, 6: ErrReservationClosed}[i]; !errors.Is(err, want) {
				t.Errorf("posting %d again: %v", i, err)
			}
		case 7:
			if err != nil || r.Replayed {
				t.Errorf("hook-bad again: %+v %v", r, err)
			}
		case 1, 10, 13: // a reservation's replay names no entry, as before group commit
			if err != nil || !r.Replayed || r.JournalID != 0 {
				t.Errorf("posting %d again: %+v %v, want a replay", i, r, err)
			}
		default:
			if err != nil || !r.Replayed || r.JournalID != res[i].JournalID {
				t.Errorf("posting %d again: %+v %v, want a replay of entry %d", i, r, err, res[i].JournalID)
			}
		}
	}
	b = checkWallet(t, db, k)
	if !b.Available.Equal(dec("1")) || !b.Held.Equal(dec("74")) { // +1 from holdWriter, hook-bad settled
		t.Fatalf("after the replays: %+v", b)
	}
	if !hookLogged(t, db, "bad") {
		t.Fatal("the hook of the now settled posting did not commit")
	}
}

// TestBatchedEqualsSerial runs one mixed workload (credits, each also
// replayed; reservations; settles, releases and gas closings of them; each
// closing also replayed) from 64 goroutines on one wallet through the
// group-committing ledger (batches of up to 256) and one posting at a time
// through batches of one (NewUnbatched, the same code): the same balance,
// the same journal keys, a serial history.
func TestBatchedEqualsSerial(t *testing.T) {
	k := walletKey{"ETH", "0x4444444444444444444444444444444444444444", "USDT"}
	type op func(l *Ledger) error
	var setup, work []op
	setup = append(setup, func(l *Ledger) error {
		_, err := l.Credit(bctx, CreditInput{Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("100000"), TxHash: "0xf00d"})
		return err
	})
	for i := 0; i < 150; i++ {
		q := fmt.Sprintf("pre%d", i)
		setup = append(setup, func(l *Ledger) error {
			_, err := l.Reserve(bctx, ReserveInput{QueueID: q, Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("3")})
			return err
		})
	}
	for i := 0; i < 150; i++ {
		credit := CreditInput{Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("1.5"), TxHash: fmt.Sprintf("0x%x", i)}
		q := fmt.Sprintf("pre%d", i)
		var closing op
		switch i % 3 {
		case 0:
			closing = func(l *Ledger) error { _, err := l.Settle(bctx, q, "0xab"); return err }
		case 1:
			closing = func(l *Ledger) error { _, err := l.Release(bctx, q); return err }
		default:
			closing = func(l *Ledger) error { _, err := l.CloseSpent(bctx, q, "0xac", dec("0.25")); return err }
		}
		fresh := fmt.Sprintf("new%d", i)
		reserve := func(l *Ledger) error {
			_, err := l.Reserve(bctx, ReserveInput{QueueID: fresh, Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("2")})
			return err
		}
		creditOp := func(l *Ledger) error { _, err := l.Credit(bctx, credit); return err }
		work = append(work, creditOp, creditOp, closing, closing, reserve, reserve)
	}
	rand.New(rand.NewSource(1)).Shuffle(len(work), func(i, j int) { work[i], work[j] = work[j], work[i] })

	run := func(l *Ledger, db *sql.DB, concurrent bool) (Balance, []string) {
		for _, o := range setup {
			if err := o(l); err != nil {
				t.Fatal(err)
			}
		}
		if concurrent {
			var wg sync.WaitGroup
			next := make(chan op)
			for w := 0; w < 64; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for o := range next {
						if err := o(l); err != nil {
							t.Error(err)
						}
					}
				}()
			}
			for _, o := range work {
				next <- o
			}
			close(next)
			wg.Wait()
		} else {
			for _, o := range work {
				if err := o(l); err != nil {
					t.Fatal(err)
				}
			}
		}
		b := checkWallet(t, db, k)
		rows, err := db.Query("SELECT idem_key FROM journal ORDER BY idem_key")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var keys []string
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			keys = append(keys, s)
		}
		return b, keys
	}
	batched, db1 := newBatchLedger(t)
	gotB, gotKeys := run(batched, db1, true)
	_, db2 := newBatchLedger(t)
	wantB, wantKeys := run(NewUnbatched(db2), db2, false)
	if !gotB.Available.Equal(wantB.Available) || !gotB.Held.Equal(wantB.Held) {
		t.Fatalf("batched %+v, serial %+v", gotB, wantB)
	}
	if fmt.Sprint(gotKeys) != fmt.Sprint(wantKeys) {
		t.Fatalf("batched journal has %d keys, serial %d", len(gotKeys), len(wantKeys))
	}
}

// TestCancelledWaiterNeitherLostNorDuplicated: callers that give up while
// their postings wait in the queue get their context's error; retried, every
// posting lands exactly once.
func TestCancelledWaiterNeitherLostNorDuplicated(t *testing.T) {
	l, db := newBatchLedger(t)
	k := walletKey{"ETH", "0x5555555555555555555555555555555555555555", "USDT"}
	credit := func(i int) CreditInput {
		return CreditInput{Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("1"), TxHash: fmt.Sprintf("0xca%d", i)}
	}
	release, held := holdWriter(t, l, k, "c")
	const n = 40
	calls := make([]*call, n)
	cancels := make([]context.CancelFunc, n)
	for i := range calls {
		ctx, cancel := context.WithCancel(bctx)
		cancels[i] = cancel
		calls[i] = start(func() (Result, error) { return l.Credit(ctx, credit(i)) })
	}
	waitQueued(t, l, k, n)
	for i := 0; i < n; i += 2 {
		cancels[i]()
	}
	for i := 0; i < n; i += 2 {
		if _, err := calls[i].wait(t); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled posting %d: %v", i, err)
		}
	}
	release()
	if _, err := held.wait(t); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i += 2 {
		if r, err := calls[i].wait(t); err != nil || r.Replayed {
			t.Fatalf("posting %d: %+v %v", i, r, err)
		}
	}
	// Given up before its batch started: not applied.
	if b := checkWallet(t, db, k); !b.Available.Equal(dec(fmt.Sprint(1 + n/2))) {
		t.Fatalf("available %s, want %d", b.Available, 1+n/2)
	}
	for i := range calls {
		r, err := l.Credit(bctx, credit(i))
		if err != nil || r.Replayed != (i%2 == 1) {
			t.Fatalf("retry of %d: %+v %v", i, r, err)
		}
	}
	if b := checkWallet(t, db, k); !b.Available.Equal(dec(fmt.Sprint(1 + n))) {
		t.Fatalf("available %s, want %d", b.Available, 1+n)
	}
	for _, c := range cancels {
		c()
	}
}

// TestBatchRetriesARaceOnAQueueID: a reservation of the same queue_id to
// another wallet, committed while the batch waits on it, makes the batch's
// insert a duplicate: the batch is retried whole, that posting is refused
// as a mismatch and the others commit.
func TestBatchRetriesARaceOnAQueueID(t *testing.T) {
	l, db := newBatchLedger(t)
	k := walletKey{"ETH", "0x6666666666666666666666666666666666666666", "USDT"}
	if _, err := l.Credit(bctx, CreditInput{Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("50"), TxHash: "0x50"}); err != nil {
		t.Fatal(err)
	}
	other, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.Exec(`INSERT INTO reservations (reservation_key, chain, address, symbol, amount, state, workflow_id)
		VALUES ('raced', 'ETH', '0x7777777777777777777777777777777777777777', 'USDT', 5, 'held', 'w')`); err != nil {
		t.Fatal(err)
	}
	release, held := holdWriter(t, l, k, "d")
	a := start(func() (Result, error) {
		return l.Reserve(bctx, ReserveInput{QueueID: "fine", Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("5")})
	})
	waitQueued(t, l, k, 1)
	b := start(func() (Result, error) {
		return l.Reserve(bctx, ReserveInput{QueueID: "raced", Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("5")})
	})
	waitQueued(t, l, k, 2)
	c := start(func() (Result, error) {
		return l.Credit(bctx, CreditInput{Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("1"), TxHash: "0x51"})
	})
	waitQueued(t, l, k, 3)
	release()
	if _, err := held.wait(t); err != nil {
		t.Fatal(err)
	}
	// The batch now waits on the other transaction's row lock (or has not
	// reached the insert yet: the outcome is the same).
	time.Sleep(200 * time.Millisecond)
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.wait(t); err != nil {
		t.Fatalf("fine: %v", err)
	}
	if _, err := b.wait(t); !errors.Is(err, ErrReservationMismatch) {
		t.Fatalf("raced: %v", err)
	}
	if _, err := c.wait(t); err != nil {
		t.Fatalf("credit: %v", err)
	}
	if bal := checkWallet(t, db, k); !bal.Available.Equal(dec("47")) || !bal.Held.Equal(dec("5")) {
		t.Fatalf("balance %+v", bal)
	}
}

// TestBatchKnownRowRecreatedIfGone: once a batch committed on a wallet the
// writer locks its balance row in one read; were the row gone, the posting
// creates it as for a new wallet instead of failing.
func TestBatchKnownRowRecreatedIfGone(t *testing.T) {
	l, db := newBatchLedger(t)
	k := walletKey{"ETH", "0x5555555555555555555555555555555555555555", "USDT"}
	credit := func(hash string) {
		t.Helper()
		if _, err := l.Credit(bctx, CreditInput{Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("2"),
			TxHash: hash}); err != nil {
			t.Fatal(err)
		}
	}
	credit("0x01")
	l.mu.Lock()
	known := l.known[k]
	l.mu.Unlock()
	if !known {
		t.Fatal("the wallet's row is not known after a committed batch")
	}
	if _, err := db.ExecContext(bctx, "DELETE FROM balances WHERE chain=? AND address=? AND symbol=?", k.chain, k.address, k.symbol); err != nil {
		t.Fatal(err)
	}
	credit("0x02")
	var avail string
	if err := db.QueryRowContext(bctx, "SELECT available FROM balances WHERE chain=? AND address=? AND symbol=?",
		k.chain, k.address, k.symbol).Scan(&avail); err != nil || !dec(avail).Equal(dec("2")) {
		t.Fatalf("balance row after re-creation: %s (%v), want 2", avail, err)
	}
}

// TestCloseWithRoutesByRememberedWallets: CloseWith routes its postings by
// the wallets this process remembers (no read), by one read of the others
// (another process's reservations), and a remembered wallet gone wrong
// costs a second run routed by the database, never a wrong closing.
func TestCloseWithRoutesByRememberedWallets(t *testing.T) {
	l, db := newBatchLedger(t)
	tok := walletKey{"ETH", "0x6666666666666666666666666666666666666666", "USDT"}
	gas := walletKey{"ETH", tok.address, "ETH"}
	other := walletKey{"ETH", "0x7777777777777777777777777777777777777777", "USDT"}
	for _, k := range []walletKey{tok, gas, other} {
		if _, err := l.Credit(bctx, CreditInput{Chain: k.chain, Address: k.address, Symbol: k.symbol, Amount: dec("10"),
			TxHash: "0xcredit-" + k.address + k.symbol, Reference: "deposit"}); err != nil {
			t.Fatal(err)
		}
	}
	reserve := func(l *Ledger, key string, k walletKey, amount string) {
		t.Helper()
		if _, err := l.Reserve(bctx, ReserveInput{QueueID: key, Chain: k.chain, Address: k.address, Symbol: k.symbol,
			Amount: dec(amount), WorkflowID: key}); err != nil {
			t.Fatal(err)
		}
	}
	remembered := func(key string) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		_, ok := l.routes[key]
		return ok
	}
	spend := func(key, amount string) []Spend { return []Spend{{QueueID: key, TxHash: "0xabc", Spent: dec(amount)}} }

	// Remembered, both.
	reserve(l, "pay-1", tok, "4")
	reserve(l, "gas:pay-1/transfer", gas, "0.5")
	if _, err := l.CloseWith(bctx, "pay-1", "0xabc", OpSettle, spend("gas:pay-1/transfer", "0.1"), logHook("pay-1", nil)); err != nil {
		t.Fatal(err)
	}
	if remembered("pay-1") || remembered("gas:pay-1/transfer") {
		t.Fatal("a closed reservation's wallet is still remembered")
	}

	// Reserved by another process: read.
	l2 := New(db)
	reserve(l2, "pay-2", tok, "1")
	reserve(l2, "gas:pay-2/transfer", gas, "0.5")
	if _, err := l.CloseWith(bctx, "pay-2", "", OpRelease, spend("gas:pay-2/transfer", "0"), logHook("pay-2", nil)); err != nil {
		t.Fatal(err)
	}

	// A remembered wallet gone wrong: the payment's closing reaches
	// another wallet's batch, and the whole runs again, read.
	reserve(l, "pay-3", tok, "2")
	reserve(l, "gas:pay-3/transfer", gas, "0.5")
	l.remember("pay-3", other)
	if _, err := l.CloseWith(bctx, "pay-3", "0xdef", OpSettle, spend("gas:pay-3/transfer", "0.2"), logHook("pay-3", nil)); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"pay-1": "settled", "gas:pay-1/transfer": "settled", "pay-2": "released",
		"gas:pay-2/transfer": "released", "pay-3": "settled", "gas:pay-3/transfer": "settled"} {
		if r, err := l.GetReservation(bctx, key); err != nil || r.State != want {
			t.Fatalf("%s: %+v %v, want %s", key, r, err, want)
		}
	}
	for _, k := range []string{"pay-1", "pay-2", "pay-3"} {
		if !hookLogged(t, db, k) {
			t.Fatalf("the closing of %s ran without its hook", k)
		}
	}
	if b := checkWallet(t, db, tok); !b.Available.Equal(dec("4")) || !b.Held.IsZero() {
		t.Fatalf("token wallet: %+v, want 4 available (10 - 4 - 2), none held", b)
	}
	if b := checkWallet(t, db, gas); !b.Available.Equal(dec("9.7")) || !b.Held.IsZero() {
		t.Fatalf("gas wallet: %+v, want 9.7 available (10 - 0.1 - 0.2), none held", b)
	}
	if b := checkWallet(t, db, other); !b.Available.Equal(dec("10")) || !b.Held.IsZero() {
		t.Fatalf("other wallet: %+v, want untouched", b)
	}
	if _, err := l.CloseWith(bctx, "missing", "", OpRelease, spend("gas:pay-1/transfer", "0"), nil); !errors.Is(err, ErrReservationNotFound) {
		t.Fatalf("missing reservation: %v", err)
	}
}

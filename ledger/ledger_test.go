package ledger_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/shopspring/decimal"

	"payflow/internal/stacktest"
	"payflow/ledger"
)

var ctx = context.Background()

func newLedger(t *testing.T) (*ledger.Ledger, *sql.DB) {
	t.Helper()
	db := stacktest.TestDB(t, "ledger")
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Migrate(ctx, db); err != nil { // idempotent
		t.Fatalf("second migrate: %v", err)
	}
	return ledger.New(db), db
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

const (
	chainETH = "ETH"
	wallet   = "0x1111111111111111111111111111111111111111"
	usdt     = "USDT"
)

// assertJournalSumsToBalance checks balance = sum of journal.
func assertJournalSumsToBalance(t *testing.T, db *sql.DB, l *ledger.Ledger, addr string) {
	t.Helper()
	var sum decimal.Decimal
	if err := db.QueryRow("SELECT COALESCE(SUM(amount),0) FROM journal WHERE chain=? AND address=? AND symbol=?",
		chainETH, addr, usdt).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	b, err := l.Balance(ctx, chainETH, addr, usdt)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Equal(b.Total()) {
		t.Fatalf("journal sums to %s, balance total is %s", sum, b.Total())
	}
}

func TestOperationsReplayChangeNothing(t *testing.T) {
	l, db := newLedger(t)
	credit := ledger.CreditInput{Chain: chainETH, Address: strings.ToUpper(wallet[:2]) + wallet[2:], Symbol: usdt,
		Amount: d("100.123456789012345678"), TxHash: "0xAB", LogIndex: 3, Reference: "deposit-1"}
	for i := 0; i < 3; i++ {
		r, err := l.Credit(ctx, credit)
		if err != nil {
			t.Fatal(err)
		}
		if r.Replayed != (i > 0) {
			t.Fatalf("credit %d: replayed=%v", i, r.Replayed)
		}
	}
	// Same tx, other log index: a separate credit.
	credit2 := credit
	credit2.LogIndex, credit2.Amount = 4, d("1")
	if _, err := l.Credit(ctx, credit2); err != nil {
		t.Fatal(err)
	}
	b, _ := l.Balance(ctx, chainETH, wallet, usdt)
	if !b.Available.Equal(d("101.123456789012345678")) {
		t.Fatalf("available = %s", b.Available)
	}

	res := ledger.ReserveInput{QueueID: "q1", Chain: chainETH, Address: wallet, Symbol: usdt, Amount: d("40"), WorkflowID: "withdraw-q1"}
	for i := 0; i < 2; i++ {
		r, err := l.Reserve(ctx, res)
		if err != nil || r.Replayed != (i > 0) {
			t.Fatalf("reserve %d: %v replayed=%v", i, err, r.Replayed)
		}
	}
	other := res
	other.Amount = d("41")
	if _, err := l.Reserve(ctx, other); !errors.Is(err, ledger.ErrReservationMismatch) {
		t.Fatalf("reused queue_id with other amount: %v", err)
	}
	b, _ = l.Balance(ctx, chainETH, wallet, usdt)
	if !b.Available.Equal(d("61.123456789012345678")) || !b.Held.Equal(d("40")) {
		t.Fatalf("after reserve: %+v", b)
	}
	for i := 0; i < 2; i++ {
		r, err := l.Settle(ctx, "q1", "0xCD")
		if err != nil || r.Replayed != (i > 0) {
			t.Fatalf("settle %d: %v replayed=%v", i, err, r.Replayed)
		}
	}
	if _, err := l.Release(ctx, "q1"); !errors.Is(err, ledger.ErrReservationClosed) {
		t.Fatalf("release after settle: %v", err)
	}
	b, _ = l.Balance(ctx, chainETH, wallet, usdt)
	if !b.Available.Equal(d("61.123456789012345678")) || !b.Held.IsZero() {
		t.Fatalf("after settle: %+v", b)
	}

	res2 := ledger.ReserveInput{QueueID: "q2", Chain: chainETH, Address: wallet, Symbol: usdt, Amount: d("10"), WorkflowID: "withdraw-q2"}
	if _, err := l.Reserve(ctx, res2); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		r, err := l.Release(ctx, "q2")
		if err != nil || r.Replayed != (i > 0) {
			t.Fatalf("release %d: %v replayed=%v", i, err, r.Replayed)
		}
	}
	if _, err := l.Settle(ctx, "q2", "0xEE"); !errors.Is(err, ledger.ErrReservationClosed) {
		t.Fatalf("settle after release: %v", err)
	}
	for i := 0; i < 2; i++ {
		r, err := l.Reverse(ctx, chainETH, "0xab", 4, "reorg")
		if err != nil || r.Replayed != (i > 0) {
			t.Fatalf("reverse %d: %v replayed=%v", i, err, r.Replayed)
		}
	}
	b, _ = l.Balance(ctx, chainETH, wallet, usdt)
	if !b.Available.Equal(d("60.123456789012345678")) || !b.Held.IsZero() {
		t.Fatalf("final: %+v", b)
	}
	assertJournalSumsToBalance(t, db, l, wallet)
	var n int
	_ = db.QueryRow("SELECT COUNT(*) FROM journal").Scan(&n)
	if n != 7 { // 2 credits, reserve, settle, reserve, release, reverse
		t.Fatalf("journal has %d rows, want 7", n)
	}
}

func TestInsufficientFunds(t *testing.T) {
	l, _ := newLedger(t)
	_, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: "q", Chain: chainETH, Address: wallet, Symbol: usdt, Amount: d("1")})
	if !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("err = %v", err)
	}
	if _, err := l.GetReservation(ctx, "q"); !errors.Is(err, ledger.ErrReservationNotFound) {
		t.Fatalf("a failed reservation left a row: %v", err)
	}
}

// TestConcurrentReservationsNeverOverdraw: 64 writers race for one wallet
// holding enough for 40 of them.
func TestConcurrentReservationsNeverOverdraw(t *testing.T) {
	l, db := newLedger(t)
	if _, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: wallet, Symbol: usdt, Amount: d("400"),
		TxHash: "0x01", LogIndex: 0}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, short := 0, 0
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: fmt.Sprintf("c%d", i), Chain: chainETH, Address: wallet,
				Symbol: usdt, Amount: d("10")})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ledger.ErrInsufficientFunds):
				short++
			default:
				t.Errorf("reserve c%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok != 40 || short != 24 {
		t.Fatalf("%d reservations succeeded and %d were refused; want 40 and 24", ok, short)
	}
	b, _ := l.Balance(ctx, chainETH, wallet, usdt)
	if !b.Available.IsZero() || !b.Held.Equal(d("400")) {
		t.Fatalf("balance %+v", b)
	}
	assertJournalSumsToBalance(t, db, l, wallet)
}

func TestWalletKeysAreEncrypted(t *testing.T) {
	_, db := newLedger(t)
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	sealer, err := ledger.NewKeySealer(master)
	if err != nil {
		t.Fatal(err)
	}
	w := ledger.NewWallets(db, sealer)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	wl, err := w.Store(ctx, chainETH, ledger.KindHot, "hot", "0x00000000000000000000000000000000000000a1", key)
	if err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	_ = db.QueryRow("SELECT enc_key FROM wallets WHERE address=?", wl.Address).Scan(&sealed)
	if strings.Contains(string(sealed), string(key)) || len(sealed) == 0 {
		t.Fatal("key stored in clear")
	}
	got, err := w.Open(ctx, chainETH, wl.Address)
	if err != nil || string(got) != string(key) {
		t.Fatalf("key round trip: %v", err)
	}
	// Another master key cannot open it, and the error says nothing of the key.
	other := make([]byte, 32)
	s2, _ := ledger.NewKeySealer(other)
	_, err = ledger.NewWallets(db, s2).Open(ctx, chainETH, wl.Address)
	if !errors.Is(err, ledger.ErrKeyDecrypt) {
		t.Fatalf("wrong master key: %v", err)
	}
	// A ciphertext moved to another wallet row does not open.
	wl2, _ := w.Store(ctx, chainETH, ledger.KindDeposit, "d", "0x00000000000000000000000000000000000000a2", key)
	_, _ = db.Exec("UPDATE wallets SET enc_key=? WHERE address=?", sealed, wl2.Address)
	if _, err := w.Open(ctx, chainETH, wl2.Address); !errors.Is(err, ledger.ErrKeyDecrypt) {
		t.Fatalf("moved ciphertext opened: %v", err)
	}
}

// TestConcurrentFirstPostingsToANewWallet: many writers make the very first
// postings of a wallet at once; none may fail on a lock conflict.
func TestConcurrentFirstPostingsToANewWallet(t *testing.T) {
	l, db := newLedger(t)
	for round := 0; round < 5; round++ {
		addr := fmt.Sprintf("0x%040x", round+100)
		var wg sync.WaitGroup
		errs := make(chan error, 48)
		for i := 0; i < 48; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: addr, Symbol: usdt, Amount: d("1"),
					TxHash: fmt.Sprintf("0x%x", round*1000+i), LogIndex: 0}); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		assertJournalSumsToBalance(t, db, l, addr)
	}
}

// TestCloseSpentPaysTheFeeOnce: a gas reservation holds the most a transfer
// may cost; closing it pays what the receipt says once, returns the rest,
// and a replay (retry, reset) pays nothing more.
func TestCloseSpentPaysTheFeeOnce(t *testing.T) {
	l, db := newLedger(t)
	addr := "0x2222222222222222222222222222222222222222"
	if _, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: addr, Symbol: usdt, Amount: d("1"),
		TxHash: "0xfee1", LogIndex: 0}); err != nil {
		t.Fatal(err)
	}
	key := "gas:withdraw-q1/transfer"
	if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: chainETH, Address: addr, Symbol: usdt,
		Amount: d("0.03"), WorkflowID: "withdraw-q1"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		r, err := l.CloseSpent(ctx, key, "0xabc", d("0.000021"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Replayed != (i > 0) {
			t.Fatalf("close %d: replayed=%v", i, r.Replayed)
		}
	}
	b, _ := l.Balance(ctx, chainETH, addr, usdt)
	if !b.Available.Equal(d("0.999979")) || !b.Held.IsZero() {
		t.Fatalf("balance = %+v, want 0.999979 available and nothing held", b)
	}
	assertJournalSumsToBalance(t, db, l, addr)
	// A closed reservation is never closed again, even for another amount.
	if r, err := l.CloseSpent(ctx, key, "0xabc", d("0.5")); err != nil || !r.Replayed {
		t.Fatalf("closing again: %+v %v", r, err)
	}
	// Nothing spent (no attempt mined): the whole reservation comes back.
	key2 := "gas:withdraw-q2/transfer"
	if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: key2, Chain: chainETH, Address: addr, Symbol: usdt,
		Amount: d("0.5"), WorkflowID: "withdraw-q2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CloseSpent(ctx, key2, "", decimal.Zero); err != nil {
		t.Fatal(err)
	}
	b, _ = l.Balance(ctx, chainETH, addr, usdt)
	if !b.Available.Equal(d("0.999979")) || !b.Held.IsZero() {
		t.Fatalf("after release: %+v", b)
	}
	assertJournalSumsToBalance(t, db, l, addr)
}

// TestCloseWithIsAllOrNothing: a payment's gas spend (the native coin's
// wallet) and its settling (the asset's) with its answer (the hook) commit
// together or not at all, through the same money rules as every posting:
// a spend the wallet cannot pay, or a failing hook, leaves no trace; the
// good closing commits all three, and its replay changes nothing. Group
// commit on or off (a batch of one) behaves the same.
func TestCloseWithIsAllOrNothing(t *testing.T) {
	for name, newL := range map[string]func(*sql.DB) *ledger.Ledger{"batched": ledger.New, "batch of one": ledger.NewUnbatched} {
		t.Run(name, func(t *testing.T) {
			_, db := newLedger(t)
			l := newL(db)
			if _, err := db.Exec("CREATE TABLE answers (k VARCHAR(64) PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			const addr = "0x3333333333333333333333333333333333333333"
			for i, c := range []ledger.CreditInput{{Symbol: usdt, Amount: d("10")}, {Symbol: "ETH", Amount: d("0.01")}} {
				c.Chain, c.Address, c.TxHash = chainETH, addr, fmt.Sprintf("0xc%d", i)
				if _, err := l.Credit(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			reserve := func(key, symbol, amount string) {
				t.Helper()
				if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: chainETH, Address: addr, Symbol: symbol,
					Amount: d(amount), WorkflowID: "w"}); err != nil {
					t.Fatal(err)
				}
			}
			reserve("pay-1", usdt, "4")
			reserve("gas:pay-1/transfer", "ETH", "0.002")
			answer := func(fail error) ledger.Also {
				return func(ctx context.Context, tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, "INSERT IGNORE INTO answers (k) VALUES ('pay-1')"); err != nil {
						return err
					}
					return fail
				}
			}
			state := func() string {
				t.Helper()
				var answers int
				if err := db.QueryRow("SELECT COUNT(*) FROM answers").Scan(&answers); err != nil {
					t.Fatal(err)
				}
				pay, _ := l.GetReservation(ctx, "pay-1")
				gas, _ := l.GetReservation(ctx, "gas:pay-1/transfer")
				u, _ := l.Balance(ctx, chainETH, addr, usdt)
				e, _ := l.Balance(ctx, chainETH, addr, "ETH")
				return fmt.Sprintf("%s %s answers=%d usdt=%s/%s eth=%s/%s", pay.State, gas.State, answers,
					u.Available, u.Held, e.Available, e.Held)
			}
			untouched := state()
			// 0.002 held + 0.008 available: a spend of 0.02 cannot be paid.
			spend := func(amount string) []ledger.Spend {
				return []ledger.Spend{{QueueID: "gas:pay-1/transfer", TxHash: "0xabc", Spent: d(amount)}}
			}
			if _, err := l.CloseWith(ctx, "pay-1", "0xabc", ledger.OpSettle, spend("0.02"), answer(nil)); !errors.Is(err, ledger.ErrInsufficientFunds) {
				t.Fatalf("unpayable spend: %v", err)
			}
			hookErr := errors.New("outbox down")
			if _, err := l.CloseWith(ctx, "pay-1", "0xabc", ledger.OpSettle, spend("0.0005"), answer(hookErr)); !errors.Is(err, hookErr) {
				t.Fatalf("failing hook: %v", err)
			}
			if got := state(); got != untouched {
				t.Fatalf("a failed CloseWith left traces: %s, was %s", got, untouched)
			}
			for i := range 2 {
				r, err := l.CloseWith(ctx, "pay-1", "0xabc", ledger.OpSettle, spend("0.0005"), answer(nil))
				if err != nil || r.Replayed != (i == 1) {
					t.Fatalf("CloseWith %d: %+v %v", i, r, err)
				}
			}
			if got, want := state(), "settled settled answers=1 usdt=6/0 eth=0.0095/0"; got != want {
				t.Fatalf("after CloseWith: %s, want %s", got, want)
			}
			if _, err := l.CloseWith(ctx, "missing", "", ledger.OpRelease, spend("0"), nil); !errors.Is(err, ledger.ErrReservationNotFound) {
				t.Fatalf("missing reservation: %v", err)
			}
			assertJournalSumsToBalance(t, db, l, addr)
		})
	}
}

// GetReservations reads several keys in one go: those that exist, by the
// key as given, as GetReservation reads each.
func TestGetReservationsReadsTheKeysThatExist(t *testing.T) {
	l, _ := newLedger(t)
	if _, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: wallet, Symbol: usdt, Amount: d("10"),
		TxHash: "0x01", Reference: "deposit"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"gas:pay-1/transfer", "gas:pay-2/transfer"} {
		if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: k, Chain: chainETH, Address: wallet, Symbol: usdt,
			Amount: d("1"), WorkflowID: "pay"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Settle(ctx, "gas:pay-2/transfer", "0xab"); err != nil {
		t.Fatal(err)
	}
	got, err := l.GetReservations(ctx, "gas:pay-1/transfer", "gas:pay-1/transfer+replace", "gas:pay-2/transfer")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d reservations, want 2: %+v", len(got), got)
	}
	for k, want := range map[string]string{"gas:pay-1/transfer": "held", "gas:pay-2/transfer": "settled"} {
		one, err := l.GetReservation(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		g := got[k]
		if g.QueueID != one.QueueID || g.Chain != one.Chain || g.Address != one.Address || g.Symbol != one.Symbol ||
			!g.Amount.Equal(one.Amount) || g.Recipient != one.Recipient || g.State != one.State || g.State != want {
			t.Errorf("%s: %+v, GetReservation says %+v (want state %s)", k, got[k], one, want)
		}
	}
	if none, err := l.GetReservations(ctx); err != nil || len(none) != 0 {
		t.Errorf("no key: %v, %v", none, err)
	}
}

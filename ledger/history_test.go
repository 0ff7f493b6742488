package ledger_test

import (
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"payflow/internal/stacktest"
	"payflow/ledger"
)

const symETH = "ETH"

// txHash returns a distinct, well-formed transaction hash for n.
func txHash(n int) string { return fmt.Sprintf("0x%064x", n) }

// credit posts deposit n (amount n+1.000001) to addr.
func credit(l *ledger.Ledger, addr, symbol string, n int) error {
	_, err := l.Credit(ctx, ledger.CreditInput{Chain: chainETH, Address: addr, Symbol: symbol,
		Amount: d(fmt.Sprintf("%d.000001", n+1)), TxHash: txHash(n), LogIndex: uint(n % 3), Reference: fmt.Sprintf("deposit-%d", n)})
	if err != nil {
		return fmt.Errorf("credit %d: %w", n, err)
	}
	return nil
}

func creditN(t testing.TB, l *ledger.Ledger, addr, symbol string, n int) {
	t.Helper()
	if err := credit(l, addr, symbol, n); err != nil {
		t.Fatal(err)
	}
}

// mixedCase is a wallet whose address has letters, to show that addresses
// are compared lowercase.
const mixedCase = "0xabcdefabcdef0123456789abcdefabcdef012345"

// pageAll reads every page of q and fails on a page larger than the limit or
// a runaway cursor chain.
func pageAll(t *testing.T, l *ledger.Ledger, q ledger.HistoryQuery) (entries []ledger.JournalEntry, pages int) {
	t.Helper()
	limit := q.Limit
	if limit == 0 {
		limit = ledger.DefaultPageLimit
	}
	for pages = 1; ; pages++ {
		if pages > 1000 {
			t.Fatal("cursor chain does not end")
		}
		p, err := l.History(ctx, q)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(p.Entries) > limit {
			t.Fatalf("page %d has %d entries, limit %d", pages, len(p.Entries), limit)
		}
		if p.NextCursor != "" && len(p.Entries) != limit {
			t.Fatalf("page %d has %d entries and a next cursor", pages, len(p.Entries))
		}
		entries = append(entries, p.Entries...)
		if p.NextCursor == "" {
			return entries, pages
		}
		q.Cursor = p.NextCursor
	}
}

// newestFirst sorts by (created_at, id) descending, the order History promises.
func newestFirst(es []ledger.JournalEntry) []ledger.JournalEntry {
	out := slices.Clone(es)
	slices.SortFunc(out, func(a, b ledger.JournalEntry) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return int(b.ID - a.ID)
	})
	return out
}

func ids(es []ledger.JournalEntry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func filter(es []ledger.JournalEntry, keep func(ledger.JournalEntry) bool) []ledger.JournalEntry {
	var out []ledger.JournalEntry
	for _, e := range es {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// assertSameOrder compares id sequences; equal sequences mean every expected
// entry appears exactly once, in the expected order.
func assertSameOrder(t *testing.T, what string, got, want []ledger.JournalEntry) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: test expects no entries; it would prove nothing", what)
	}
	g, w := ids(got), ids(want)
	if !slices.Equal(g, w) {
		t.Fatalf("%s: got %d entries, want %d\n got ids  %v\n want ids %v", what, len(g), len(w), g, w)
	}
}

func journalOf(t *testing.T, l *ledger.Ledger, addr string, symbols ...string) []ledger.JournalEntry {
	t.Helper()
	var all []ledger.JournalEntry
	for _, s := range symbols {
		es, err := l.Journal(ctx, chainETH, addr, s)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	return all
}

func TestHistoryPagesEveryEntryOnceNewestFirst(t *testing.T) {
	l, db := newLedger(t)
	symbolOf := func(i int) string {
		if i%4 == 0 {
			return symETH
		}
		return usdt
	}
	// Batch A, then a time boundary, then batch B (with a reserve and a
	// settle among the credits), and noise on another wallet throughout.
	const nA, nB = 100, 148
	other := "0x2222222222222222222222222222222222222222"
	for i := 0; i < nA; i++ {
		creditN(t, l, mixedCase, symbolOf(i), i)
	}
	creditN(t, l, other, usdt, 10_000)
	var boundary time.Time
	if err := db.QueryRow("SELECT CURRENT_TIMESTAMP(6)").Scan(&boundary); err != nil {
		t.Fatal(err)
	}
	for i := nA; i < nA+nB; i++ {
		creditN(t, l, mixedCase, symbolOf(i), i)
		if i == nA+nB/2 {
			if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: "h-q1", Chain: chainETH, Address: mixedCase, Symbol: usdt,
				Amount: d("1"), WorkflowID: "withdraw-h-q1"}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Settle(ctx, "h-q1", txHash(99_999)); err != nil {
				t.Fatal(err)
			}
		}
	}
	creditN(t, l, other, usdt, 10_001)

	all := newestFirst(journalOf(t, l, mixedCase, usdt, symETH))
	if len(all) != nA+nB+2 {
		t.Fatalf("journal has %d entries for the wallet, want %d", len(all), nA+nB+2)
	}
	before := filter(all, func(e ledger.JournalEntry) bool { return e.CreatedAt.Before(boundary) })
	after := filter(all, func(e ledger.JournalEntry) bool { return !e.CreatedAt.Before(boundary) })
	if len(before) != nA || len(after) != nB+2 {
		t.Fatalf("precondition: %d entries before the boundary and %d after, want %d and %d", len(before), len(after), nA, nB+2)
	}

	t.Run("all symbols", func(t *testing.T) {
		// Mixed-case address: compared lowercase.
		got, pages := pageAll(t, l, ledger.HistoryQuery{Chain: chainETH, Address: "0x" + strings.ToUpper(mixedCase[2:]), Limit: 100})
		assertSameOrder(t, "all", got, all)
		if pages != 3 {
			t.Fatalf("%d pages, want 3 (100, 100, %d)", pages, len(all)-200)
		}
	})
	t.Run("default limit and exact fit", func(t *testing.T) {
		p, err := l.History(ctx, ledger.HistoryQuery{Chain: chainETH, Address: mixedCase})
		if err != nil || len(p.Entries) != ledger.DefaultPageLimit || p.NextCursor == "" {
			t.Fatalf("default limit: %d entries, cursor %q, %v", len(p.Entries), p.NextCursor, err)
		}
		// A page that ends exactly at the last entry says so: no cursor to an empty page.
		p, err = l.History(ctx, ledger.HistoryQuery{Chain: chainETH, Address: mixedCase, Limit: len(all)})
		if err != nil || len(p.Entries) != len(all) || p.NextCursor != "" {
			t.Fatalf("exact fit: %d entries, cursor %q, %v", len(p.Entries), p.NextCursor, err)
		}
	})
	t.Run("symbol", func(t *testing.T) {
		got, _ := pageAll(t, l, ledger.HistoryQuery{Chain: chainETH, Address: mixedCase, Symbol: symETH, Limit: 10})
		assertSameOrder(t, "ETH", got, filter(all, func(e ledger.JournalEntry) bool { return e.Symbol == symETH }))
		got, _ = pageAll(t, l, ledger.HistoryQuery{Chain: chainETH, Address: mixedCase, Symbol: usdt, Limit: 100})
		assertSameOrder(t, "USDT", got, filter(all, func(e ledger.JournalEntry) bool { return e.Symbol == usdt }))
	})
	t.Run("time range", func(t *testing.T) {
		got, _ := pageAll(t, l, ledger.HistoryQuery{Chain: chainETH, Address: mixedCase, To: boundary, Limit: 30})
		assertSameOrder(t, "[-inf, boundary)", got, before)
		got, _ = pageAll(t, l, ledger.HistoryQuery{Chain: chainETH, Address: mixedCase, From: boundary, Limit: 30})
		assertSameOrder(t, "[boundary, +inf)", got, after)
		got, _ = pageAll(t, l, ledger.HistoryQuery{Chain: chainETH, Address: mixedCase, Symbol: usdt, From: boundary, Limit: 7})
		assertSameOrder(t, "USDT in [boundary, +inf)", got, filter(after, func(e ledger.JournalEntry) bool { return e.Symbol == usdt }))
		// Half-open: an entry's own timestamp as To excludes it, as From includes it.
		pivot := all[len(all)/2]
		got, _ = pageAll(t, l, ledger.HistoryQuery{Chain: chainETH, Address: mixedCase, From: pivot.CreatedAt, To: all[0].CreatedAt})
		assertSameOrder(t, "[pivot, newest)", got, filter(all, func(e ledger.JournalEntry) bool {
			return !e.CreatedAt.Before(pivot.CreatedAt) && e.CreatedAt.Before(all[0].CreatedAt)
		}))
	})
	t.Run("bad queries", func(t *testing.T) {
		other := base64.RawURLEncoding.EncodeToString([]byte("r1:1700000000000000:5")) // a reconciliations cursor
		for _, tc := range []struct {
			name, param string
			q           ledger.HistoryQuery
		}{
			{"garbage cursor", "cursor", ledger.HistoryQuery{Chain: chainETH, Cursor: "garbage!"}},
			{"base64 garbage cursor", "cursor", ledger.HistoryQuery{Chain: chainETH, Cursor: base64.RawURLEncoding.EncodeToString([]byte("j1:x:1"))}},
			{"cursor of another listing", "cursor", ledger.HistoryQuery{Chain: chainETH, Cursor: other}},
			{"cursor past year 9999", "cursor", ledger.HistoryQuery{Chain: chainETH, Cursor: base64.RawURLEncoding.EncodeToString([]byte("j1:999999999999999999:1"))}},
			{"limit too large", "limit", ledger.HistoryQuery{Chain: chainETH, Limit: ledger.MaxPageLimit + 1}},
			{"negative limit", "limit", ledger.HistoryQuery{Chain: chainETH, Limit: -1}},
			{"empty range", "to", ledger.HistoryQuery{Chain: chainETH, From: boundary, To: boundary}},
			{"no chain", "chain", ledger.HistoryQuery{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				q := tc.q
				q.Address = mixedCase
				_, err := l.History(ctx, q)
				var qe *ledger.QueryError
				if !errors.Is(err, ledger.ErrInvalidQuery) || !errors.As(err, &qe) || qe.Param != tc.param {
					t.Fatalf("err = %v, want a QueryError on %s", err, tc.param)
				}
				t.Log(err)
			})
		}
	})
}

// frozenClockLedger returns a ledger on db's database whose sessions all see
// the same CURRENT_TIMESTAMP(6) (MariaDB's and MySQL's session timestamp), so
// that every entry it posts has the same created_at.
func frozenClockLedger(t *testing.T, db *sql.DB, unixMicros int64) *ledger.Ledger {
	t.Helper()
	var name string
	if err := db.QueryRow("SELECT DATABASE()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	cfg, err := mysql.ParseDSN(stacktest.Load(t).MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = name
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["timestamp"] = fmt.Sprintf("%d.%06d", unixMicros/1e6, unixMicros%1e6)
	fdb, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fdb.Close() })
	return ledger.New(fdb)
}

// TestHistoryKeysetHandlesTimestampTies: 250 entries with one created_at, so
// that every page boundary falls inside a tie; (created_at, id) must still
// give each entry exactly once.
func TestHistoryKeysetHandlesTimestampTies(t *testing.T) {
	l, db := newLedger(t)
	frozen := frozenClockLedger(t, db, time.Date(2020, 1, 2, 3, 4, 5, 678901000, time.UTC).UnixMicro())
	const n = 250
	// The first posting creates the balance row alone: concurrent first
	// postings to a fresh wallet can exhaust the ledger's deadlock retries
	// (gap locks of SELECT ... FOR UPDATE on a missing row).
	creditN(t, frozen, wallet, usdt, 0)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1 + w; i < n; i += 8 {
				if err := credit(frozen, wallet, usdt, i); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	creditN(t, l, wallet, usdt, n) // one on the real clock: newer than all the tied ones
	all := newestFirst(journalOf(t, l, wallet, usdt))
	if len(all) != n+1 {
		t.Fatalf("%d entries, want %d", len(all), n+1)
	}
	for _, e := range all[1:] {
		if !e.CreatedAt.Equal(all[1].CreatedAt) {
			t.Fatalf("precondition: entry %d at %s, not at the frozen %s", e.ID, e.CreatedAt, all[1].CreatedAt)
		}
	}
	for _, symbol := range []string{"", usdt} { // both indexes
		for _, limit := range []int{100, 1, 7} {
			got, _ := pageAll(t, l, ledger.HistoryQuery{Chain: chainETH, Address: wallet, Symbol: symbol, Limit: limit})
			assertSameOrder(t, fmt.Sprintf("symbol %q, limit %d", symbol, limit), got, all)
		}
	}
}

func TestBalances(t *testing.T) {
	l, _ := newLedger(t)
	creditN(t, l, mixedCase, usdt, 1) // 2.000001
	creditN(t, l, mixedCase, symETH, 2)
	if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: "b-q1", Chain: chainETH, Address: mixedCase, Symbol: usdt,
		Amount: d("0.5"), WorkflowID: "w"}); err != nil {
		t.Fatal(err)
	}
	bs, err := l.Balances(ctx, chainETH, "0x"+strings.ToUpper(mixedCase[2:]))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Symbol != symETH || bs[1].Symbol != usdt {
		t.Fatalf("balances %+v", bs)
	}
	if !bs[0].Available.Equal(d("3.000001")) || !bs[0].Held.IsZero() ||
		!bs[1].Available.Equal(d("1.500001")) || !bs[1].Held.Equal(d("0.5")) {
		t.Fatalf("balances %+v", bs)
	}
	none, err := l.Balances(ctx, chainETH, "0x3333333333333333333333333333333333333333")
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("unknown wallet: %#v, %v", none, err)
	}
}

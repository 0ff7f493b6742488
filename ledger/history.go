package ledger

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/sqlrows"
)

// Query errors. A *QueryError matches ErrInvalidQuery with errors.Is.
var (
	ErrInvalidQuery = errors.New("invalid query")
)

// QueryError is a rejected query parameter; its message is safe to show to
// the caller. errors.Is(err, ErrInvalidQuery) holds for it.
type QueryError struct {
	Param  string // the offending parameter, e.g. "cursor"
	Reason string
}

// Error says which parameter is invalid and why.
func (e *QueryError) Error() string { return "invalid " + e.Param + ": " + e.Reason }

// Is makes a QueryError match ErrInvalidQuery.
func (e *QueryError) Is(target error) bool { return target == ErrInvalidQuery }

// Page sizes of the keyset-paginated reads.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// HistoryQuery selects a wallet's journal entries, newest first.
type HistoryQuery struct {
	Chain   string // required
	Address string // required; compared lowercase
	Symbol  string // optional; empty means every symbol of the wallet
	// From and To bound created_at as the half-open range [From, To); a zero
	// value leaves that side unbounded.
	From, To time.Time
	// Limit is the page size: 0 means DefaultPageLimit; above MaxPageLimit or
	// negative is an error.
	Limit int
	// Cursor is a HistoryPage.NextCursor from the same query; empty starts at
	// the newest entry.
	Cursor string
}

// HistoryPage is one page of a wallet's history.
type HistoryPage struct {
	// Entries are newest first by (created_at, id); never nil.
	Entries []JournalEntry `json:"entries"`
	// NextCursor continues after the last entry; empty when there are no more.
	NextCursor string `json:"next_cursor"`
}

// History returns one page of a wallet's journal, newest first, keyset
// paginated on (created_at, id) so that pages stay stable and cheap however
// deep the caller reads, and entries sharing a timestamp are neither skipped
// nor repeated. Entries posted after the first page was read sort before the
// cursor and so do not appear in later pages. Bad parameters fail with a
// *QueryError (errors.Is ErrInvalidQuery).
func (l *Ledger) History(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
	addr := norm(q.Address)
	limit, err := pageStart(q.Limit, q.Chain)
	if err != nil {
		return HistoryPage{}, err
	}
	if addr == "" {
		return HistoryPage{}, &QueryError{"address", "required"}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return HistoryPage{}, &QueryError{"to", "must be after from"}
	}
	cur, err := decodeCursor(cursorJournal, q.Cursor)
	if err != nil {
		return HistoryPage{}, err
	}

	// Equalities first, then the range on (created_at, id): the rows come off
	// ix_journal_wallet_time (with a symbol) or ix_journal_wallet_all_time
	// (without) already in order, and LIMIT stops the scan. The index is
	// forced because MariaDB 10.11, left alone, reads the all-symbols case by
	// ref on (chain, address) from the newest row and filters down to the
	// cursor: a page deep in the history would then read every newer entry.
	index, where := "ix_journal_wallet_all_time", "chain=? AND address=?"
	args := []any{q.Chain, addr}
	if q.Symbol != "" {
		index, where = "ix_journal_wallet_time", where+" AND symbol=?"
		args = append(args, q.Symbol)
	}
	query, args := pageSQL("SELECT "+journalColumns+" FROM journal FORCE INDEX ("+index+") WHERE "+where, args,
		q.From, q.To, cur, q.Cursor != "", limit)
	entries, err := sqlrows.Collect(ctx, l.db, scanJournalEntry, query, args...)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("reading history of %s: %w", addr, err)
	}
	var page HistoryPage
	page.Entries, page.NextCursor = pageOf(entries, limit, cursorJournal, func(e JournalEntry) keyset { return keyset{e.CreatedAt, e.ID} })
	return page, nil
}

// SymbolBalance is a wallet's holding of one symbol.
type SymbolBalance struct {
	Symbol    string          `json:"symbol"`
	Available decimal.Decimal `json:"available"`
	Held      decimal.Decimal `json:"held"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Balances returns every balance row of a wallet, by symbol. A wallet the
// ledger has never posted to has none: the result is empty, not an error.
func (l *Ledger) Balances(ctx context.Context, chain, address string) ([]SymbolBalance, error) {
	out, err := sqlrows.Collect(ctx, l.db, func(rows sqlrows.Scanner) (b SymbolBalance, err error) {
		return b, rows.Scan(&b.Symbol, &b.Available, &b.Held, &b.UpdatedAt)
	}, "SELECT symbol, available, held, updated_at FROM balances WHERE chain=? AND address=? ORDER BY symbol",
		chain, norm(address))
	if err != nil {
		return nil, fmt.Errorf("reading balances of %s: %w", address, err)
	}
	if out == nil {
		out = []SymbolBalance{}
	}
	return out, nil
}

// pageStart checks what every page query needs: a limit (0: the default)
// and a chain.
func pageStart(limit int, chain string) (int, error) {
	limit, err := pageLimit(limit)
	if err == nil && strings.TrimSpace(chain) == "" {
		err = &QueryError{"chain", "required"}
	}
	return limit, err
}

// pageSQL completes a page's query, selectWhere, with the time range, the
// cursor, the order (newest first) and a limit one above the page's, which
// tells whether a next page exists.
func pageSQL(selectWhere string, args []any, from, to time.Time, cur keyset, hasCursor bool, limit int) (string, []any) {
	var sb strings.Builder
	sb.WriteString(selectWhere)
	args = appendTimeRange(&sb, args, from, to, cur, hasCursor)
	sb.WriteString(" ORDER BY created_at DESC, id DESC LIMIT ?")
	return sb.String(), append(args, limit+1)
}

// pageOf cuts rows, read by a pageSQL query, to one page (never nil) and
// the cursor of the next ("" when there is none).
func pageOf[T any](rows []T, limit int, kind string, at func(T) keyset) ([]T, string) {
	if len(rows) <= limit {
		return append([]T{}, rows...), ""
	}
	return rows[:limit], encodeCursor(kind, at(rows[limit-1]))
}

func pageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageLimit, nil
	case n < 0 || n > MaxPageLimit:
		return 0, &QueryError{"limit", fmt.Sprintf("must be between 1 and %d", MaxPageLimit)}
	}
	return n, nil
}

// appendTimeRange adds [from, to) and, with a cursor, "strictly before the
// cursor's (created_at, id)". The cursor condition is spelled out rather than
// written as a row comparison so that the range optimiser uses the index.
func appendTimeRange(sb *strings.Builder, args []any, from, to time.Time, cur keyset, hasCursor bool) []any {
	if !from.IsZero() {
		sb.WriteString(" AND created_at >= ?")
		args = append(args, from.UTC())
	}
	if !to.IsZero() {
		sb.WriteString(" AND created_at < ?")
		args = append(args, to.UTC())
	}
	if hasCursor {
		sb.WriteString(" AND created_at <= ? AND (created_at < ? OR id < ?)")
		args = append(args, cur.at, cur.at, cur.id)
	}
	return args
}

// keyset is the position of a row in (created_at DESC, id DESC) order.
type keyset struct {
	at time.Time
	id int64
}

// Cursor kinds, so that a cursor of one listing is refused by another.
const (
	cursorJournal = "j1"
	cursorRecon   = "r1"
)

// encodeCursor makes an opaque, URL-safe cursor. It is not a secret: a
// forged one only moves the caller's own position in a listing it may read.
func encodeCursor(kind string, k keyset) string {
	raw := kind + ":" + strconv.FormatInt(k.at.UnixMicro(), 10) + ":" + strconv.FormatInt(k.id, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

const maxCursorMicros = 253402300800_000000 // 10000-01-01T00:00:00Z

func decodeCursor(kind, s string) (keyset, error) {
	if s == "" {
		return keyset{}, nil // the first page
	}
	bad := &QueryError{"cursor", "not a cursor returned by this listing"}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return keyset{}, bad
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != kind {
		return keyset{}, bad
	}
	micros, err1 := strconv.ParseInt(parts[1], 10, 64)
	id, err2 := strconv.ParseInt(parts[2], 10, 64)
	// Cursors we issue are well inside [1970, 10000): the bounds keep a forged
	// one from reaching the database as a date it cannot parse.
	if err1 != nil || err2 != nil || micros < 0 || micros >= maxCursorMicros || id <= 0 {
		return keyset{}, bad
	}
	return keyset{at: time.UnixMicro(micros).UTC(), id: id}, nil
}

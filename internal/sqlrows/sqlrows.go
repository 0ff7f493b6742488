// Package sqlrows reads the rows of a query: the one loop of QueryContext,
// Next, Scan, Close and Err that every store of payflow would otherwise
// write again. It knows nothing of payflow's tables; callers give the
// query, the arguments and how one row is read, and wrap the error with
// what they were doing.
package sqlrows

import (
	"context"
	"database/sql"
)

// Querier is a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Scanner is a *sql.Rows or a *sql.Row: what reads one row. A scan written
// against it serves QueryRowContext as well as Collect.
type Scanner = interface{ Scan(dest ...any) error }

// Each runs query with args on q and calls row for each row, in order. It
// stops at the first error, of the query, of row or of the iteration, and
// returns it as it is; the rows are closed before it returns.
func Each(ctx context.Context, q Querier, row func(Scanner) error, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Collect runs query with args on q and returns scan's value of each row,
// in order: nil when there is none, and nil with the first error, as it is,
// when the query, a scan or the iteration fails.
func Collect[T any](ctx context.Context, q Querier, scan func(Scanner) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := Each(ctx, q, func(rows Scanner) error {
		v, err := scan(rows)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	}, query, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// String scans a row of one string column: the scan of Collect for a list
// of ids or addresses.
func String(rows Scanner) (s string, err error) {
	return s, rows.Scan(&s)
}

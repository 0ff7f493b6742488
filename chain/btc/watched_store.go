package btc

import (
	"context"
	"database/sql"
	"fmt"
)

// WatchedAddress is a watched deposit address: its row's position (ID,
// increasing in the order watches began), the address and the height from
// which its deposits count.
type WatchedAddress struct {
	ID         int64
	Address    string
	FromHeight int64
}

// Watched is a chain's watched deposit addresses, in the btc_watched table:
// the only SQL on it.
type Watched struct {
	db    *sql.DB
	chain string
}

// NewWatched returns chain's watched addresses.
func NewWatched(db *sql.DB, chain string) *Watched { return &Watched{db: db, chain: chain} }

// Watch starts watching address (canonical: lowercase bech32) from height
// from (the node's head, typically) and says from which height its
// deposits count; a repeat keeps the first watch (isNew false).
func (w *Watched) Watch(ctx context.Context, address string, from int64) (fromHeight int64, isNew bool, err error) {
	res, err := w.db.ExecContext(ctx, "INSERT IGNORE INTO btc_watched (chain, address, from_height) VALUES (?, ?, ?)",
		w.chain, address, from)
	if err != nil {
		return 0, false, fmt.Errorf("watching %s: %w", address, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, false, err
	}
	if err := w.db.QueryRowContext(ctx, "SELECT from_height FROM btc_watched WHERE chain = ? AND address = ?",
		w.chain, address).Scan(&fromHeight); err != nil {
		return 0, false, fmt.Errorf("reading the watch of %s: %w", address, err)
	}
	return fromHeight, n == 1, nil
}

// After returns at most limit watched addresses whose ID is above after, in
// ID order: a scanner calls it again with the last ID it got to find the
// watches begun since.
func (w *Watched) After(ctx context.Context, after int64, limit int) ([]WatchedAddress, error) {
	rows, err := w.db.QueryContext(ctx, "SELECT id, address, from_height FROM btc_watched WHERE chain = ? AND id > ? ORDER BY id LIMIT ?",
		w.chain, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WatchedAddress
	for rows.Next() {
		var a WatchedAddress
		if err := rows.Scan(&a.ID, &a.Address, &a.FromHeight); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

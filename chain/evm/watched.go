package evm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"payflow/internal/sqlrows"
)

// Watch registers address for deposits of symbol from fromBlock on (a row
// of watched_addresses). Idempotent: a second registration keeps the first
// from_block; it reports whether this one was new.
func Watch(ctx context.Context, db *sql.DB, chainName, symbol string, address common.Address, fromBlock uint64) (bool, error) {
	res, err := db.ExecContext(ctx, "INSERT IGNORE INTO watched_addresses (chain, address, symbol, from_block) VALUES (?,?,?,?)",
		chainName, Lower(address), symbol, fromBlock)
	if err != nil {
		return false, fmt.Errorf("watching %s: %w", Lower(address), err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// WatchedFrom is the block from which deposits to address in symbol are
// looked for (see Watch).
func WatchedFrom(ctx context.Context, db *sql.DB, chainName, symbol string, address common.Address) (uint64, error) {
	var from uint64
	if err := db.QueryRowContext(ctx, "SELECT from_block FROM watched_addresses WHERE chain=? AND address=? AND symbol=?",
		chainName, Lower(address), symbol).Scan(&from); err != nil {
		return 0, fmt.Errorf("reading watch of %s: %w", Lower(address), err)
	}
	return from, nil
}

// IsWatched reports whether address is watched on the chain, in any symbol.
func IsWatched(ctx context.Context, db *sql.DB, chainName string, address common.Address) (bool, error) {
	var watched bool
	if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM watched_addresses WHERE chain=? AND address=?)",
		chainName, Lower(address)).Scan(&watched); err != nil {
		return false, fmt.Errorf("looking up the watch of %s: %w", Lower(address), err)
	}
	return watched, nil
}

// WatchRow is a watched address as the listener loads it.
type WatchRow struct {
	ID        int64
	Address   common.Address
	FromBlock uint64
	// Backfilled is set once the listener backfilled the address up to its
	// cursor (see MarkBackfilled).
	Backfilled bool
}

// WatchesAfter lists the chain's watched addresses with an id above after,
// by id, at most limit.
func WatchesAfter(ctx context.Context, db *sql.DB, chainName string, after int64, limit int) ([]WatchRow, error) {
	out, err := sqlrows.Collect(ctx, db, func(rows sqlrows.Scanner) (w WatchRow, err error) {
		var a string
		var filled sql.NullInt64
		err = rows.Scan(&w.ID, &a, &w.FromBlock, &filled)
		w.Address, w.Backfilled = common.HexToAddress(a), filled.Valid
		return w, err
	}, `SELECT id, address, from_block, backfilled_to FROM watched_addresses
		WHERE chain=? AND id > ? ORDER BY id LIMIT ?`, chainName, after, limit)
	if err != nil {
		return nil, fmt.Errorf("loading watched addresses: %w", err)
	}
	return out, nil
}

// MarkBackfilled records that the watched rows ids were backfilled up to
// block to.
func MarkBackfilled(ctx context.Context, db *sql.DB, ids []int64, to uint64) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{to}
	for _, id := range ids {
		args = append(args, id)
	}
	q := "UPDATE watched_addresses SET backfilled_to=? WHERE id IN (?" + strings.Repeat(",?", len(ids)-1) + ")"
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("recording backfill: %w", err)
	}
	return nil
}

// Cursor is the listener's last fully processed block (chain_cursor).
type Cursor struct {
	Number uint64
	Hash   common.Hash
}

// LoadCursor reads the chain's persisted cursor; ok is false when there is
// none.
func LoadCursor(ctx context.Context, db *sql.DB, chainName string) (Cursor, bool, error) {
	var c Cursor
	var h string
	err := db.QueryRowContext(ctx, "SELECT block_number, block_hash FROM chain_cursor WHERE chain=?", chainName).Scan(&c.Number, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return Cursor{}, false, nil
	}
	if err != nil {
		return Cursor{}, false, fmt.Errorf("reading cursor: %w", err)
	}
	c.Hash = common.HexToHash(h)
	return c, true, nil
}

// SaveCursor persists the chain's cursor.
func SaveCursor(ctx context.Context, db *sql.DB, chainName string, c Cursor) error {
	_, err := db.ExecContext(ctx, `INSERT INTO chain_cursor (chain, block_number, block_hash) VALUES (?,?,?)
		ON DUPLICATE KEY UPDATE block_number=VALUES(block_number), block_hash=VALUES(block_hash)`,
		chainName, c.Number, c.Hash.Hex())
	if err != nil {
		return fmt.Errorf("saving cursor %d: %w", c.Number, err)
	}
	return nil
}

package btc

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// Blocks is a chain's scanner BlockLog in the btc_blocks table: the only
// SQL on it.
type Blocks struct {
	db    *sql.DB
	chain string
}

// NewBlocks returns the scanner's block log of chain.
func NewBlocks(db *sql.DB, chain string) *Blocks { return &Blocks{db: db, chain: chain} }

// Cursor is the height of the last block the scanner read; ok is false
// before its first.
func (b *Blocks) Cursor(ctx context.Context) (height uint64, ok bool, err error) {
	var h sql.NullInt64
	if err := b.db.QueryRowContext(ctx, "SELECT MAX(height) FROM btc_blocks WHERE chain = ?", b.chain).Scan(&h); err != nil {
		return 0, false, fmt.Errorf("reading the scanner's cursor: %w", err)
	}
	return uint64(max(h.Int64, 0)), h.Valid, nil
}

// Load returns the kept blocks, ascending.
func (b *Blocks) Load(ctx context.Context) ([]BlockRef, error) {
	rows, err := b.db.QueryContext(ctx, "SELECT height, hash FROM btc_blocks WHERE chain = ? ORDER BY height", b.chain)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BlockRef
	for rows.Next() {
		var ref BlockRef
		var hash string
		if err := rows.Scan(&ref.Height, &hash); err != nil {
			return nil, err
		}
		h, err := chainhash.NewHashFromStr(hash)
		if err != nil {
			return nil, fmt.Errorf("btc_blocks %s %d: %w", b.chain, ref.Height, err)
		}
		ref.Hash = *h
		out = append(out, ref)
	}
	return out, rows.Err()
}

// Save replaces the blocks from height from on with blocks and forgets
// those below keepFrom, in one transaction.
func (b *Blocks) Save(ctx context.Context, from int64, blocks []BlockRef, keepFrom int64) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM btc_blocks WHERE chain = ? AND (height >= ? OR height < ?)",
		b.chain, from, keepFrom); err != nil {
		return err
	}
	if len(blocks) > 0 {
		var q strings.Builder
		args := make([]any, 0, 3*len(blocks))
		q.WriteString("INSERT INTO btc_blocks (chain, height, hash) VALUES ")
		for i, ref := range blocks {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?, ?, ?)")
			args = append(args, b.chain, ref.Height, ref.Hash.String())
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

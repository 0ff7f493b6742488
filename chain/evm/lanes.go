package evm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"

	"payflow/internal/sqlrows"
)

// NonceLane is one sending wallet and the next nonce payflow signs it with.
type NonceLane struct {
	Address common.Address
	Next    uint64
}

// Lanes is one chain's rows of the nonces table: per sending wallet, the
// next nonce payflow signs with. The row, locked in the transaction that
// stores a signed transaction, is the single writer of its lane.
type Lanes struct{ chainTable }

// NewLanes wires Lanes for one chain (its protocol name).
func NewLanes(chainName string, db *sql.DB) (*Lanes, error) {
	return newChainTable[Lanes]("nonce lanes", chainName, db)
}

// Begin begins the database transaction a lane is locked and advanced in.
func (l *Lanes) Begin(ctx context.Context) (*sql.Tx, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("beginning nonce transaction: %w", err)
	}
	return tx, nil
}

// Lock locks from's lane row in tx and returns its next nonce.
func (l *Lanes) Lock(ctx context.Context, tx *sql.Tx, from common.Address) (uint64, error) {
	var nonce uint64
	if err := tx.QueryRowContext(ctx, "SELECT next_nonce FROM nonces WHERE chain=? AND address=? FOR UPDATE",
		l.chain, Lower(from)).Scan(&nonce); err != nil {
		return 0, fmt.Errorf("locking nonce lane of %s: %w", Lower(from), err)
	}
	return nonce, nil
}

// Advance checkpoints from's lane at next in tx.
func (l *Lanes) Advance(ctx context.Context, tx *sql.Tx, from common.Address, next uint64) error {
	if _, err := tx.ExecContext(ctx, "UPDATE nonces SET next_nonce=? WHERE chain=? AND address=?",
		next, l.chain, Lower(from)); err != nil {
		return fmt.Errorf("advancing nonce: %w", err)
	}
	return nil
}

// Exists reports whether from has a lane.
func (l *Lanes) Exists(ctx context.Context, from common.Address) (bool, error) {
	var one int
	err := l.db.QueryRowContext(ctx, "SELECT 1 FROM nonces WHERE chain=? AND address=?", l.chain, Lower(from)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading nonce lane of %s: %w", Lower(from), err)
	}
	return true, nil
}

// Create creates from's lane at next unless it exists.
func (l *Lanes) Create(ctx context.Context, from common.Address, next uint64) error {
	if _, err := l.db.ExecContext(ctx, "INSERT IGNORE INTO nonces (chain, address, next_nonce) VALUES (?,?,?)",
		l.chain, Lower(from), next); err != nil {
		return fmt.Errorf("creating nonce lane of %s: %w", Lower(from), err)
	}
	return nil
}

// List lists every wallet that has signed on this chain, with its lane's
// next nonce.
func (l *Lanes) List(ctx context.Context) ([]NonceLane, error) {
	lanes, err := sqlrows.Collect(ctx, l.db, func(rows sqlrows.Scanner) (n NonceLane, err error) {
		var a string
		err = rows.Scan(&a, &n.Next)
		n.Address = common.HexToAddress(a)
		return n, err
	}, "SELECT address, next_nonce FROM nonces WHERE chain=?", l.chain)
	if err != nil {
		return nil, fmt.Errorf("listing nonce lanes: %w", err)
	}
	return lanes, nil
}

package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/shopspring/decimal"
)

// SeenDeposit is a transfer to a watched or managed address as the chain's
// listener delivered it: recorded before anything is booked or announced.
type SeenDeposit struct {
	Chain    string
	TxHash   string
	LogIndex uint // the log's position within its transaction's receipt
	Symbol   string
	Address  string // the recipient, stored lowercase
	From     string // stored lowercase
	Amount   decimal.Decimal
	// BlockNumber and BlockHash are the block it was last delivered in.
	BlockNumber uint64
	BlockHash   string
	Dust        bool // below the asset's dust limit: recorded, not announced
}

// Deposits is the record of the deposits the listeners delivered, one row
// per (chain, tx_hash, log_index). Crediting is the Ledger's.
type Deposits struct{ db *sql.DB }

// NewDeposits returns the deposit record over db.
func NewDeposits(db *sql.DB) *Deposits { return &Deposits{db: db} }

// Record stores d, idempotently by (chain, tx_hash, log_index). A deposit
// delivered again (mined again after a reorg) keeps its first row but
// moves to d's block.
func (s *Deposits) Record(ctx context.Context, d SeenDeposit) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO deposits
		(chain, tx_hash, log_index, symbol, address, from_address, amount, block_number, block_hash, dust)
		VALUES (?,?,?,?,?,?,?,?,?,?) ON DUPLICATE KEY UPDATE block_number=VALUES(block_number), block_hash=VALUES(block_hash)`,
		d.Chain, d.TxHash, d.LogIndex, d.Symbol, norm(d.Address), norm(d.From), d.Amount,
		d.BlockNumber, d.BlockHash, d.Dust); err != nil {
		return fmt.Errorf("recording deposit %s/%d: %w", d.TxHash, d.LogIndex, err)
	}
	return nil
}

// Block returns the block a recorded deposit was last delivered in; found
// is false when the deposit was never recorded.
func (s *Deposits) Block(ctx context.Context, chain, txHash string, logIndex uint) (number uint64, hash string, found bool, err error) {
	err = s.db.QueryRowContext(ctx, "SELECT block_number, block_hash FROM deposits WHERE chain=? AND tx_hash=? AND log_index=?",
		chain, txHash, logIndex).Scan(&number, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("reading deposit %s/%d: %w", txHash, logIndex, err)
	}
	return number, hash, true, nil
}

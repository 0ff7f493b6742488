package btc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

// UTXOState is where an output of a managed wallet is in its life.
type UTXOState string

// States of a managed wallet's output.
const (
	// UTXOUnconfirmed: known (in the pool, or mined fewer than the
	// confirmations deep), not yet spendable.
	UTXOUnconfirmed UTXOState = "unconfirmed"
	// UTXOSpendable: confirmed and free.
	UTXOSpendable UTXOState = "spendable"
	// UTXOReserved: confirmed and held for one payment (ReservedBy).
	UTXOReserved UTXOState = "reserved"
	// UTXOSpent: consumed by a transaction of payflow's (SpentTxID).
	UTXOSpent UTXOState = "spent"
)

// ErrInsufficientCoins: a wallet's spendable outputs do not cover a
// payment and its fee.
var ErrInsufficientCoins = errors.New("the wallet's spendable coins do not cover the payment and its fee")

// UTXO is one output of a managed wallet.
type UTXO struct {
	TxID    string
	Vout    uint32
	Address string
	Sats    int64
	State   UTXOState
	// Height and BlockHash: the block that holds it (0 and "" when not
	// mined).
	Height     int64
	BlockHash  string
	ReservedBy string
	SpentTxID  string
}

// OutPoint is the output's outpoint.
func (u UTXO) OutPoint() (wire.OutPoint, error) {
	h, err := chainhash.NewHashFromStr(u.TxID)
	if err != nil {
		return wire.OutPoint{}, err
	}
	return wire.OutPoint{Hash: *h, Index: u.Vout}, nil
}

// UTXOs is the UTXO set of one chain's managed wallets, in the btc_utxos
// table: the only SQL on it. Payments select their coins here, never from
// the node (btcd has no wallet). The ledger's balance of a wallet is kept in
// its journal as on every chain; Confirmed here must equal it, which
// reconciliation checks.
type UTXOs struct {
	db    *sql.DB
	chain string
}

// NewUTXOs returns chain's UTXO set.
func NewUTXOs(db *sql.DB, chain string) *UTXOs { return &UTXOs{db: db, chain: chain} }

const utxoColumns = "txid, vout, address, sats, state, COALESCE(block_height, 0), COALESCE(block_hash, ''), COALESCE(reserved_by, ''), COALESCE(spent_txid, '')"

func scanUTXO(rows interface{ Scan(...any) error }) (UTXO, error) {
	var u UTXO
	var state string
	err := rows.Scan(&u.TxID, &u.Vout, &u.Address, &u.Sats, &state, &u.Height, &u.BlockHash, &u.ReservedBy, &u.SpentTxID)
	u.State = UTXOState(state)
	return u, err
}

// Add records an output paying a managed wallet, unconfirmed: seen in the
// pool (Height 0), or in a block (Height, BlockHash) not yet confirmed. A
// repeat keeps the first record, except that a block is noted on an output
// that had none (the pool's transaction mined).
func (u *UTXOs) Add(ctx context.Context, o UTXO) error {
	if o.Sats <= 0 {
		return fmt.Errorf("output %s:%d of %d satoshis: not positive", o.TxID, o.Vout, o.Sats)
	}
	var height, hash any
	if o.BlockHash != "" {
		height, hash = o.Height, o.BlockHash
	}
	_, err := u.db.ExecContext(ctx, `INSERT INTO btc_utxos (chain, txid, vout, address, sats, state, block_height, block_hash)
		VALUES (?, ?, ?, ?, ?, 'unconfirmed', ?, ?)
		ON DUPLICATE KEY UPDATE block_height = COALESCE(block_height, VALUES(block_height)),
		                        block_hash = COALESCE(block_hash, VALUES(block_hash))`,
		u.chain, o.TxID, o.Vout, o.Address, o.Sats, height, hash)
	if err != nil {
		return fmt.Errorf("recording output %s:%d: %w", o.TxID, o.Vout, err)
	}
	return nil
}

// Confirm makes an unconfirmed output spendable, mined in block hash at
// height (confirmations deep: the scanner's DepositConfirmed). Outputs in
// any other state keep it; a repeat is harmless.
func (u *UTXOs) Confirm(ctx context.Context, txid string, vout uint32, height int64, hash string) error {
	_, err := u.db.ExecContext(ctx, `UPDATE btc_utxos SET state = IF(state = 'unconfirmed', 'spendable', state),
		block_height = ?, block_hash = ? WHERE chain = ? AND txid = ? AND vout = ?`, height, hash, u.chain, txid, vout)
	if err != nil {
		return fmt.Errorf("confirming output %s:%d: %w", txid, vout, err)
	}
	return nil
}

// Unconfirm takes back the outputs of a block that left the best chain:
// spendable ones become unconfirmed, and every one loses its block (it may
// be mined again elsewhere). A reserved or spent output stays so: its
// payment's transaction decides. It returns how many outputs it touched.
func (u *UTXOs) Unconfirm(ctx context.Context, blockHash string) (int64, error) {
	res, err := u.db.ExecContext(ctx, `UPDATE btc_utxos SET state = IF(state = 'spendable', 'unconfirmed', state),
		block_height = NULL, block_hash = NULL WHERE chain = ? AND block_hash = ?`, u.chain, blockHash)
	if err != nil {
		return 0, fmt.Errorf("unconfirming the outputs of block %s: %w", blockHash, err)
	}
	return res.RowsAffected()
}

// Reserve holds spendable outputs of address for the payment key (a
// reservation key): the largest first, until they cover need(n), the
// payment plus the fee of spending n inputs. A repeat with the same key
// returns what it holds, whatever need says: a retried step gets the same
// coins. ErrInsufficientCoins when all spendable outputs do not cover it;
// nothing is held then.
func (u *UTXOs) Reserve(ctx context.Context, key, address string, need func(inputs int) int64) ([]UTXO, error) {
	if key == "" {
		return nil, errors.New("reserving coins without a reservation key")
	}
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	held, err := queryUTXOs(ctx, tx, "SELECT "+utxoColumns+` FROM btc_utxos WHERE chain = ? AND reserved_by = ?
		ORDER BY sats DESC, txid, vout`, u.chain, key)
	if err != nil {
		return nil, err
	}
	if len(held) > 0 {
		return held, tx.Commit()
	}
	// The wallet's spendable outputs, locked: two payments of one wallet
	// take turns.
	free, err := queryUTXOs(ctx, tx, "SELECT "+utxoColumns+` FROM btc_utxos WHERE chain = ? AND address = ? AND state = 'spendable'
		ORDER BY sats DESC, txid, vout FOR UPDATE`, u.chain, address)
	if err != nil {
		return nil, err
	}
	var picked []UTXO
	var sum int64
	for _, o := range free {
		picked = append(picked, o)
		sum += o.Sats
		if sum >= need(len(picked)) {
			break
		}
	}
	if len(picked) == 0 || sum < need(len(picked)) {
		return nil, fmt.Errorf("%w: %s holds %s spendable, %s needed", ErrInsufficientCoins, address,
			btcutil.Amount(sum), btcutil.Amount(need(max(len(picked), 1))))
	}
	var q strings.Builder
	args := []any{key, u.chain}
	q.WriteString("UPDATE btc_utxos SET state = 'reserved', reserved_by = ? WHERE chain = ? AND (txid, vout) IN (")
	for i := range picked {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?, ?)")
		args = append(args, picked[i].TxID, picked[i].Vout)
		picked[i].State, picked[i].ReservedBy = UTXOReserved, key
	}
	q.WriteString(")")
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return nil, err
	}
	return picked, tx.Commit()
}

// Release frees the outputs key holds (reserved, not spent) and returns how
// many. A repeat frees nothing.
func (u *UTXOs) Release(ctx context.Context, key string) (int64, error) {
	res, err := u.db.ExecContext(ctx, `UPDATE btc_utxos SET state = 'spendable', reserved_by = NULL
		WHERE chain = ? AND reserved_by = ? AND state = 'reserved'`, u.chain, key)
	if err != nil {
		return 0, fmt.Errorf("releasing the coins of %s: %w", key, err)
	}
	return res.RowsAffected()
}

// Spend marks the outputs key holds as consumed by transaction txid
// (stored before it is sent). A repeat with the same txid is harmless.
func (u *UTXOs) Spend(ctx context.Context, key, txid string) error {
	_, err := u.db.ExecContext(ctx, `UPDATE btc_utxos SET state = 'spent', spent_txid = ?
		WHERE chain = ? AND reserved_by = ? AND state IN ('reserved', 'spent')`, txid, u.chain, key)
	if err != nil {
		return fmt.Errorf("spending the coins of %s: %w", key, err)
	}
	return nil
}

// Held returns the outputs the reservation key holds, in any state
// (reserved, or spent by the key's payment), in the order Reserve picked
// them.
func (u *UTXOs) Held(ctx context.Context, key string) ([]UTXO, error) {
	return queryUTXOs(ctx, u.db, "SELECT "+utxoColumns+` FROM btc_utxos WHERE chain = ? AND reserved_by = ?
		ORDER BY sats DESC, txid, vout`, u.chain, key)
}

// Spendable returns address's spendable outputs, the largest first (the
// order Reserve picks them in).
func (u *UTXOs) Spendable(ctx context.Context, address string) ([]UTXO, error) {
	return queryUTXOs(ctx, u.db, "SELECT "+utxoColumns+` FROM btc_utxos WHERE chain = ? AND address = ? AND state = 'spendable'
		ORDER BY sats DESC, txid, vout`, u.chain, address)
}

// Balance is what address holds: confirmed (spendable and reserved
// outputs: the balance the ledger must equal) and unconfirmed.
func (u *UTXOs) Balance(ctx context.Context, address string) (confirmed, unconfirmed int64, err error) {
	err = u.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(IF(state IN ('spendable', 'reserved'), sats, 0)), 0),
		COALESCE(SUM(IF(state = 'unconfirmed', sats, 0)), 0) FROM btc_utxos WHERE chain = ? AND address = ?`,
		u.chain, address).Scan(&confirmed, &unconfirmed)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the balance of %s: %w", address, err)
	}
	return confirmed, unconfirmed, nil
}

// List returns address's outputs not spent, the largest first.
func (u *UTXOs) List(ctx context.Context, address string) ([]UTXO, error) {
	return queryUTXOs(ctx, u.db, "SELECT "+utxoColumns+` FROM btc_utxos WHERE chain = ? AND address = ? AND state <> 'spent'
		ORDER BY sats DESC, txid, vout`, u.chain, address)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryUTXOs(ctx context.Context, q querier, query string, args ...any) ([]UTXO, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []UTXO
	for rows.Next() {
		o, err := scanUTXO(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// Apply keeps the set up to date from the scanner's events for the
// managed wallets it watches: seen adds the output (unconfirmed, with its
// block), confirmed makes it spendable, reorged takes its block's outputs
// back to unconfirmed. Events of other addresses (deposit addresses the
// scanner watches for topups) must not be given: the set holds only what
// payflow may spend. A repeat of events is harmless.
func (u *UTXOs) Apply(ctx context.Context, evs []Event) error {
	for _, e := range evs {
		var err error
		switch e.Kind {
		case DepositSeen:
			err = u.Add(ctx, UTXO{TxID: e.TxID, Vout: e.Vout, Address: e.Address, Sats: e.Sats, Height: e.Height, BlockHash: e.BlockHash})
		case DepositConfirmed:
			err = u.Confirm(ctx, e.TxID, e.Vout, e.Height, e.BlockHash)
		case DepositReorged:
			_, err = u.Unconfirm(ctx, e.BlockHash)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

package btc

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"payflow/internal/sqlerr"
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

// Errors of choosing a payment's coins.
var (
	// ErrInsufficientCoins: a wallet's spendable outputs do not cover a
	// payment and its fee.
	ErrInsufficientCoins = errors.New("the wallet's spendable coins do not cover the payment and its fee")
	// ErrCoinsDisagree: a wallet's spendable outputs cannot make up exactly
	// the amount a step spends whole (ReserveExact): the ledger, which gave
	// the amount, and the UTXO set disagree about what the wallet holds.
	ErrCoinsDisagree = errors.New("the wallet's spendable coins do not make up the amount to spend whole")
)

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
	err := retryDeadlock(func() error {
		_, err := u.db.ExecContext(ctx, `INSERT INTO btc_utxos (chain, txid, vout, address, sats, state, block_height, block_hash)
			VALUES (?, ?, ?, ?, ?, 'unconfirmed', ?, ?)
			ON DUPLICATE KEY UPDATE block_height = COALESCE(block_height, VALUES(block_height)),
			                        block_hash = COALESCE(block_hash, VALUES(block_hash))`,
			u.chain, o.TxID, o.Vout, o.Address, o.Sats, height, hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("recording output %s:%d: %w", o.TxID, o.Vout, err)
	}
	return nil
}

// Confirm makes an unconfirmed output spendable, mined in block hash at
// height (confirmations deep: the scanner's DepositConfirmed). Outputs in
// any other state keep it; a repeat is harmless.
func (u *UTXOs) Confirm(ctx context.Context, txid string, vout uint32, height int64, hash string) error {
	err := retryDeadlock(func() error {
		_, err := u.db.ExecContext(ctx, `UPDATE btc_utxos SET state = IF(state = 'unconfirmed', 'spendable', state),
			block_height = ?, block_hash = ? WHERE chain = ? AND txid = ? AND vout = ?`, height, hash, u.chain, txid, vout)
		return err
	})
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
	var n int64
	err := retryDeadlock(func() error {
		res, err := u.db.ExecContext(ctx, `UPDATE btc_utxos SET state = IF(state = 'spendable', 'unconfirmed', state),
			block_height = NULL, block_hash = NULL WHERE chain = ? AND block_hash = ?`, u.chain, blockHash)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("unconfirming the outputs of block %s: %w", blockHash, err)
	}
	return n, nil
}

// Reserve holds spendable outputs of address for the payment key (a
// reservation key): the largest first, until they cover need(n), the
// payment plus the fee of spending n inputs. A repeat with the same key
// returns what it holds, whatever need says: a retried step gets the same
// coins, reserved or spent.
// ErrInsufficientCoins when all spendable outputs do not cover it;
// nothing is held then.
func (u *UTXOs) Reserve(ctx context.Context, key, address string, need func(inputs int) int64) ([]UTXO, error) {
	return reserveCoins(ctx, u, key, address, func(_ *sql.Tx, free []UTXO) ([]UTXO, error) {
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
		return picked, nil
	})
}

// reserveCoins holds for key the outputs of u that pick chooses among
// address's spendable ones (the largest first, locked), or returns what key
// holds already. A deadlock with another wallet's reservation is run again.
func reserveCoins(ctx context.Context, u *UTXOs, key, address string, pick func(tx *sql.Tx, free []UTXO) ([]UTXO, error)) ([]UTXO, error) {
	if key == "" {
		return nil, errors.New("reserving coins without a reservation key")
	}
	var held []UTXO
	err := retryDeadlock(func() error {
		var err error
		held, err = reserveOnce(ctx, u, key, address, pick)
		return err
	})
	return held, err
}

func reserveOnce(ctx context.Context, u *UTXOs, key, address string, pick func(tx *sql.Tx, free []UTXO) ([]UTXO, error)) ([]UTXO, error) {
	// Read committed: each read sees what others committed before it, and
	// a locking read locks the rows it returns, not the gaps around them.
	tx, err := u.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// The wallet's spendable outputs, locked: two payments of one wallet
	// take turns.
	free, err := queryUTXOs(ctx, tx, "SELECT "+utxoColumns+` FROM btc_utxos WHERE chain = ? AND address = ? AND state = 'spendable'
		ORDER BY sats DESC, txid, vout FOR UPDATE`, u.chain, address)
	if err != nil {
		return nil, err
	}
	// What the key holds, read once the wallet is locked: read before, it
	// could miss the coins the same step, signed twice at once (a retry
	// started while the first try runs), was reserving meanwhile, and the
	// step would hold coins twice, the second set marked spent by a
	// transaction that does not spend them.
	held, err := queryUTXOs(ctx, tx, "SELECT "+utxoColumns+` FROM btc_utxos WHERE chain = ? AND reserved_by = ?
		ORDER BY sats DESC, txid, vout`, u.chain, key)
	if err != nil {
		return nil, err
	}
	if len(held) > 0 {
		return held, tx.Commit()
	}
	picked, err := pick(tx, free)
	if err != nil {
		return nil, err
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

// ReserveExact holds for key spendable outputs of address in u worth exactly
// sats, for a step that spends all it is given (a sweep): every spendable
// output when they are worth that, the usual case (the ledger's balance is
// the set's), else the oldest first up to exactly sats (a deposit the
// ledger has not credited yet is the newest, and stays). A repeat with the
// same key returns what it holds. Nothing is held on an error:
// ErrInsufficientCoins when the spendable outputs are worth less but
// unconfirmed ones would make it up (a retry may cure it),
// ErrCoinsDisagree otherwise.
func ReserveExact(ctx context.Context, u *UTXOs, key, address string, sats int64) ([]UTXO, error) {
	return reserveCoins(ctx, u, key, address, func(tx *sql.Tx, free []UTXO) ([]UTXO, error) {
		var all int64
		for _, o := range free {
			all += o.Sats
		}
		if all == sats {
			return free, nil
		}
		oldest := slices.Clone(free)
		slices.SortStableFunc(oldest, func(a, b UTXO) int {
			return cmp.Or(cmp.Compare(a.Height, b.Height), strings.Compare(a.TxID, b.TxID), cmp.Compare(a.Vout, b.Vout))
		})
		var sum int64
		for i, o := range oldest {
			if sum += o.Sats; sum == sats {
				return oldest[:i+1], nil
			} else if sum > sats {
				break
			}
		}
		if all < sats {
			var unconfirmed int64
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(sats), 0) FROM btc_utxos WHERE chain = ? AND address = ?
				AND state = 'unconfirmed'`, u.chain, address).Scan(&unconfirmed); err != nil {
				return nil, err
			}
			if all+unconfirmed >= sats {
				return nil, fmt.Errorf("%w: %s holds %s spendable and %s unconfirmed, %s to spend whole", ErrInsufficientCoins,
					address, btcutil.Amount(all), btcutil.Amount(unconfirmed), btcutil.Amount(sats))
			}
		}
		return nil, fmt.Errorf("%w: %s holds %s spendable in %d outputs, none of whose oldest make up exactly %s",
			ErrCoinsDisagree, address, btcutil.Amount(all), len(free), btcutil.Amount(sats))
	})
}

// Release frees the outputs key holds (reserved, not spent) and returns how
// many. A repeat frees nothing.
func (u *UTXOs) Release(ctx context.Context, key string) (int64, error) {
	var n int64
	err := retryDeadlock(func() error {
		res, err := u.db.ExecContext(ctx, `UPDATE btc_utxos SET state = 'spendable', reserved_by = NULL
			WHERE chain = ? AND reserved_by = ? AND state = 'reserved'`, u.chain, key)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("releasing the coins of %s: %w", key, err)
	}
	return n, nil
}

// Spend marks the outputs key holds as consumed by transaction txid
// (stored before it is sent). A repeat with the same txid is harmless.
func (u *UTXOs) Spend(ctx context.Context, key, txid string) error {
	err := retryDeadlock(func() error {
		_, err := u.db.ExecContext(ctx, `UPDATE btc_utxos SET state = 'spent', spent_txid = ?
			WHERE chain = ? AND reserved_by = ? AND state IN ('reserved', 'spent')`, txid, u.chain, key)
		return err
	})
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

// deadlockAttempts bounds the runs of a write of the set that deadlocks
// rolled back.
const deadlockAttempts = 5

// retryDeadlock runs f, a write of the set that is whole or nothing, again
// when a deadlock rolled it back: payments of one wallet meet in its index
// entries in different orders (a reservation's locking read of the
// wallet's spendable outputs, another payment's coins moving to spent, the
// scanner confirming an output), and InnoDB breaks the cycle by rolling
// one of them back.
func retryDeadlock(f func() error) error {
	err := f()
	for attempt := 1; err != nil && sqlerr.IsDeadlock(err) && attempt < deadlockAttempts; attempt++ {
		err = f()
	}
	return err
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

// Apply keeps the set u up to date from the scanner's events for the
// managed wallets it watches: seen adds the output (unconfirmed, with its
// block), confirmed makes it spendable, reorged takes its block's outputs
// back to unconfirmed. Events of other addresses (deposit addresses the
// scanner watches for topups) must not be given: the set holds only what
// payflow may spend. A repeat of events is harmless.
func Apply(ctx context.Context, u *UTXOs, evs []Event) error {
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

// Settle confirms the set's unconfirmed outputs that the node c shows
// mined at least confirmations deep on its best chain: outputs whose
// confirmation the scanner never told (a worker restarted between a
// block and its depth, a block read before its output's wallet was
// watched). It returns how many it confirmed.
func Settle(ctx context.Context, u *UTXOs, c *Client, confirmations int64) (int, error) {
	open, err := queryUTXOs(ctx, u.db, "SELECT "+utxoColumns+` FROM btc_utxos WHERE chain = ? AND state = 'unconfirmed'
		ORDER BY txid, vout LIMIT 500`, u.chain)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range open {
		op, err := o.OutPoint()
		if err != nil {
			return n, err
		}
		m, _, mined, err := minedAt(ctx, c, op.Hash)
		if err != nil {
			return n, err
		}
		if !mined || m.Confirmations < confirmations {
			continue
		}
		if err := u.Confirm(ctx, o.TxID, o.Vout, m.Height, m.BlockHash); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

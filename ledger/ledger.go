// Package ledger is payflow's double-checked money store in MariaDB: wallets
// with encrypted keys, balances (available and held) per (chain, address,
// symbol), reservations per key (a payment's workflow id) and an append-only
// journal; also the deposits the listeners saw and reconciliation results.
//
// Every operation runs in a database transaction that locks the balance row
// and is idempotent by a key in a unique index: replaying it changes nothing
// and returns Replayed=true. Available never goes negative (checked under the
// row lock, and by a CHECK constraint). The postings of one wallet are
// group-committed: concurrent ones share one transaction, each with its own
// result (batch.go).
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/sqlerr"
)

// Sentinel errors. Activities turn the permanent ones into non-retryable errors.
var (
	ErrInsufficientFunds   = errors.New("insufficient available balance")
	ErrReservationNotFound = errors.New("reservation not found")
	ErrReservationClosed   = errors.New("reservation already closed the other way")
	ErrReservationMismatch = errors.New("queue_id already reserved with different content")
	ErrCreditNotFound      = errors.New("credit not found")
	ErrWalletNotFound      = errors.New("wallet not found")
	ErrBadAmount           = errors.New("amount must be > 0")
)

// Op is the kind of a journal entry.
type Op string

// Journal operations.
const (
	OpCredit  Op = "credit"
	OpReserve Op = "reserve"
	OpSettle  Op = "settle"
	OpRelease Op = "release"
	OpReverse Op = "reverse"
)

// Ledger is the MariaDB-backed ledger.
type Ledger struct {
	db *sql.DB
	// batches group-commits the postings of each wallet (batch.go); nil:
	// one transaction per posting.
	batches *batcher
}

// New returns a Ledger over db that group-commits the postings of each
// wallet (batch.go). Call Migrate first.
func New(db *sql.DB) *Ledger {
	l := &Ledger{db: db}
	l.batches = newBatcher(l)
	return l
}

// NewUnbatched returns a Ledger over db that runs every posting in its own
// database transaction: the algorithm before group commit, kept for the
// benchmark's comparison and as the fallback of a failed batch.
func NewUnbatched(db *sql.DB) *Ledger { return &Ledger{db: db} }

// DB exposes the handle for packages that share the schema (chain stores).
func (l *Ledger) DB() *sql.DB { return l.db }

// Balance is one wallet's holding of one asset.
type Balance struct {
	Available decimal.Decimal
	Held      decimal.Decimal
}

// Total is available + held.
func (b Balance) Total() decimal.Decimal { return b.Available.Add(b.Held) }

// Result says what an operation did.
type Result struct {
	// Replayed is true when the idempotency key was already there: nothing changed.
	Replayed bool
	// JournalID of the entry (the existing one on replay).
	JournalID int64
	// After is the balance after the operation (current balance on replay).
	After Balance
}

// Balance reads a wallet's balance; zero when it has none.
func (l *Ledger) Balance(ctx context.Context, chain, address, symbol string) (Balance, error) {
	var b Balance
	err := l.db.QueryRowContext(ctx,
		"SELECT available, held FROM balances WHERE chain=? AND address=? AND symbol=?",
		chain, norm(address), symbol).Scan(&b.Available, &b.Held)
	if errors.Is(err, sql.ErrNoRows) {
		return Balance{}, nil
	}
	if err != nil {
		return Balance{}, fmt.Errorf("reading balance of %s: %w", address, err)
	}
	return b, nil
}

func norm(a string) string { return strings.ToLower(strings.TrimSpace(a)) }

type entry struct {
	idem, chain, address, symbol string
	op                           Op
	amount                       decimal.Decimal
	before, after                Balance
	reference, txHash            string
	logIndex                     *uint
}

func (l *Ledger) inTx(ctx context.Context, fn func(tx *sql.Tx) (Result, error)) (Result, error) {
	for attempt := 0; ; attempt++ {
		tx, err := l.db.BeginTx(ctx, nil)
		if err != nil {
			return Result{}, fmt.Errorf("beginning transaction: %w", err)
		}
		res, err := fn(tx)
		if err != nil {
			_ = tx.Rollback()
			if (sqlerr.IsDeadlock(err) || errors.Is(err, errRetryRace)) && attempt < 5 {
				continue
			}
			return res, err
		}
		if err := tx.Commit(); err != nil {
			if sqlerr.IsDeadlock(err) && attempt < 5 {
				continue
			}
			return Result{}, fmt.Errorf("committing: %w", err)
		}
		return res, nil
	}
}

// replayed returns the existing journal entry for idem, if any.
func replayed(ctx context.Context, tx *sql.Tx, idem string) (int64, bool, error) {
	var id int64
	err := tx.QueryRowContext(ctx, "SELECT id FROM journal WHERE idem_key=?", idem).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("checking idempotency key: %w", err)
	}
	return id, true, nil
}

// lockBalance locks the balance row, creating it if needed, with one upsert:
// it takes the exclusive row lock directly. (INSERT IGNORE on an existing row
// takes a shared lock that deadlocks when upgraded, and a locking read of a
// missing row takes gap locks that deadlock concurrent first inserts.)
func lockBalance(ctx context.Context, tx *sql.Tx, chain, address, symbol string) (Balance, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO balances (chain, address, symbol, available, held) VALUES (?,?,?,0,0)
		ON DUPLICATE KEY UPDATE available=available`, chain, address, symbol); err != nil {
		return Balance{}, fmt.Errorf("locking balance: %w", err)
	}
	var b Balance
	if err := tx.QueryRowContext(ctx, "SELECT available, held FROM balances WHERE chain=? AND address=? AND symbol=? FOR UPDATE",
		chain, address, symbol).Scan(&b.Available, &b.Held); err != nil {
		return Balance{}, fmt.Errorf("locking balance: %w", err)
	}
	return b, nil
}

func post(ctx context.Context, tx *sql.Tx, e entry) (int64, error) {
	if _, err := tx.ExecContext(ctx,
		"UPDATE balances SET available=?, held=? WHERE chain=? AND address=? AND symbol=?",
		e.after.Available, e.after.Held, e.chain, e.address, e.symbol); err != nil {
		return 0, fmt.Errorf("updating balance: %w", err)
	}
	var txHash any
	if e.txHash != "" {
		txHash = norm(e.txHash)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO journal
		(idem_key, chain, address, symbol, op, amount, available_before, available_after, held_before, held_after, reference, tx_hash, log_index)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.idem, e.chain, e.address, e.symbol, string(e.op), e.amount,
		e.before.Available, e.after.Available, e.before.Held, e.after.Held, e.reference, txHash, e.logIndex)
	if err != nil {
		return 0, fmt.Errorf("appending journal: %w", err)
	}
	return res.LastInsertId()
}

// CreditInput is a confirmed deposit.
type CreditInput struct {
	Chain, Address, Symbol string
	Amount                 decimal.Decimal
	TxHash                 string
	LogIndex               uint
	Reference              string // e.g. the deposit workflow id
}

// CreditKey is the idempotency key of a credit: an on-chain transfer is
// credited at most once.
func CreditKey(chain, txHash string, logIndex uint) string {
	return fmt.Sprintf("credit:%s:%s:%d", chain, norm(txHash), logIndex)
}

// creditTx is Credit in a transaction of its own.
func (l *Ledger) creditTx(ctx context.Context, in CreditInput) (Result, error) {
	if in.Amount.Sign() <= 0 {
		return Result{}, ErrBadAmount
	}
	addr := norm(in.Address)
	idem := CreditKey(in.Chain, in.TxHash, in.LogIndex)
	return l.inTx(ctx, func(tx *sql.Tx) (Result, error) {
		b, err := lockBalance(ctx, tx, in.Chain, addr, in.Symbol)
		if err != nil {
			return Result{}, err
		}
		if id, ok, err := replayed(ctx, tx, idem); err != nil || ok {
			return Result{Replayed: ok, JournalID: id, After: b}, err
		}
		after := Balance{Available: b.Available.Add(in.Amount), Held: b.Held}
		li := in.LogIndex
		id, err := post(ctx, tx, entry{idem: idem, chain: in.Chain, address: addr, symbol: in.Symbol, op: OpCredit,
			amount: in.Amount, before: b, after: after, reference: in.Reference, txHash: in.TxHash, logIndex: &li})
		if err != nil {
			return Result{}, fmt.Errorf("crediting %s to %s: %w", in.Amount, addr, err)
		}
		return Result{JournalID: id, After: after}, nil
	})
}

// Reverse undoes a credit whose block was reorganised away. It may drive
// available negative only if the money was already spent; then it fails with
// ErrInsufficientFunds and the caller must escalate.
func (l *Ledger) Reverse(ctx context.Context, chain, txHash string, logIndex uint, reference string) (Result, error) {
	idem := fmt.Sprintf("reverse:%s:%s:%d", chain, norm(txHash), logIndex)
	return l.inTx(ctx, func(tx *sql.Tx) (Result, error) {
		var addr, symbol string
		var amt decimal.Decimal
		err := tx.QueryRowContext(ctx, "SELECT address, symbol, amount FROM journal WHERE idem_key=?",
			CreditKey(chain, txHash, logIndex)).Scan(&addr, &symbol, &amt)
		if errors.Is(err, sql.ErrNoRows) {
			return Result{}, ErrCreditNotFound
		}
		if err != nil {
			return Result{}, fmt.Errorf("finding credit: %w", err)
		}
		b, err := lockBalance(ctx, tx, chain, addr, symbol)
		if err != nil {
			return Result{}, err
		}
		if id, ok, err := replayed(ctx, tx, idem); err != nil || ok {
			return Result{Replayed: ok, JournalID: id, After: b}, err
		}
		if b.Available.LessThan(amt) {
			return Result{}, fmt.Errorf("reversing %s from %s: %w", amt, addr, ErrInsufficientFunds)
		}
		after := Balance{Available: b.Available.Sub(amt), Held: b.Held}
		li := logIndex
		id, err := post(ctx, tx, entry{idem: idem, chain: chain, address: addr, symbol: symbol, op: OpReverse,
			amount: amt.Neg(), before: b, after: after, reference: reference, txHash: txHash, logIndex: &li})
		if err != nil {
			return Result{}, err
		}
		return Result{JournalID: id, After: after}, nil
	})
}

// ReserveInput holds an amount of a wallet for a payment request.
type ReserveInput struct {
	QueueID                string
	Chain, Address, Symbol string
	Amount                 decimal.Decimal
	WorkflowID             string
}

// reserveTx is Reserve in a transaction of its own.
func (l *Ledger) reserveTx(ctx context.Context, in ReserveInput) (Result, error) {
	if in.Amount.Sign() <= 0 {
		return Result{}, ErrBadAmount
	}
	addr := norm(in.Address)
	return l.inTx(ctx, func(tx *sql.Tx) (Result, error) {
		var r reservation
		found, err := getReservation(ctx, tx, in.QueueID, false, &r)
		if err != nil {
			return Result{}, err
		}
		if found {
			if r.address != addr || r.chain != in.Chain || r.symbol != in.Symbol || !r.amount.Equal(in.Amount) {
				return Result{}, fmt.Errorf("reserving for %s: %w", in.QueueID, ErrReservationMismatch)
			}
			b, err := l.Balance(ctx, in.Chain, addr, in.Symbol)
			return Result{Replayed: true, After: b}, err
		}
		b, err := lockBalance(ctx, tx, in.Chain, addr, in.Symbol)
		if err != nil {
			return Result{}, err
		}
		if b.Available.LessThan(in.Amount) {
			return Result{After: b}, fmt.Errorf("reserving %s of %s on %s for %s (available %s): %w",
				in.Amount, in.Symbol, addr, in.QueueID, b.Available, ErrInsufficientFunds)
		}
		after := Balance{Available: b.Available.Sub(in.Amount), Held: b.Held.Add(in.Amount)}
		if _, err := tx.ExecContext(ctx, `INSERT INTO reservations (reservation_key, chain, address, symbol, amount, state, workflow_id)
			VALUES (?,?,?,?,?,'held',?)`, in.QueueID, in.Chain, addr, in.Symbol, in.Amount, in.WorkflowID); err != nil {
			if sqlerr.IsDuplicateKey(err) {
				return Result{}, errRetryRace
			}
			return Result{}, fmt.Errorf("inserting reservation: %w", err)
		}
		id, err := post(ctx, tx, entry{idem: "reserve:" + in.QueueID, chain: in.Chain, address: addr, symbol: in.Symbol,
			op: OpReserve, amount: decimal.Zero, before: b, after: after, reference: in.QueueID})
		if err != nil {
			return Result{}, err
		}
		return Result{JournalID: id, After: after}, nil
	})
}

var errRetryRace = errors.New("concurrent reservation for the same queue_id; retry")

type reservation struct {
	chain, address, symbol, state string
	amount                        decimal.Decimal
}

func getReservation(ctx context.Context, tx interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, queueID string, lock bool, r *reservation) (bool, error) {
	q := "SELECT chain, address, symbol, amount, state FROM reservations WHERE reservation_key=?"
	if lock {
		q += " FOR UPDATE"
	}
	err := tx.QueryRowContext(ctx, q, queueID).Scan(&r.chain, &r.address, &r.symbol, &r.amount, &r.state)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading reservation %s: %w", queueID, err)
	}
	return true, nil
}

// Reservation describes a held amount.
type Reservation struct {
	QueueID, Chain, Address, Symbol, State string
	Amount                                 decimal.Decimal
}

// GetReservation reads the reservation of queueID (one statement: no
// transaction needed).
func (l *Ledger) GetReservation(ctx context.Context, queueID string) (Reservation, error) {
	var r reservation
	found, err := getReservation(ctx, l.db, queueID, false, &r)
	if err != nil {
		return Reservation{}, err
	}
	if !found {
		return Reservation{}, ErrReservationNotFound
	}
	return Reservation{QueueID: queueID, Chain: r.chain, Address: r.address, Symbol: r.symbol, State: r.state, Amount: r.amount}, nil
}

// Settle debits a held reservation after its transfer confirmed: held goes
// down, the money has left. Replays are no-ops; settling a released
// reservation fails with ErrReservationClosed.
func (l *Ledger) Settle(ctx context.Context, queueID, txHash string) (Result, error) {
	return l.close(ctx, queueID, txHash, OpSettle, nil)
}

// Release returns a held reservation to available (compensation). Replays are
// no-ops; releasing a settled reservation fails with ErrReservationClosed.
func (l *Ledger) Release(ctx context.Context, queueID string) (Result, error) {
	return l.close(ctx, queueID, "", OpRelease, nil)
}

// Also runs inside the database transaction that closes a reservation, after
// the reservation is closed and before the commit: what it writes (a
// payment's answer, say) is committed together with the closing or not at
// all. It runs on replays too, and again when its batch is retried after a
// deadlock; it must be idempotent. It runs on the wallet's writer (batch.go),
// inside the batch's transaction: it must not call the Ledger, and it fails
// only its own posting (a savepoint undoes its writes and the closing).
type Also func(ctx context.Context, tx *sql.Tx) error

// Close settles (OpSettle, with the transfer's txHash) or releases
// (OpRelease) the reservation of queueID and runs also in the same database
// transaction, so that the ledger and what also records can never disagree.
// Otherwise it behaves as Settle and Release.
func (l *Ledger) Close(ctx context.Context, queueID, txHash string, op Op, also Also) (Result, error) {
	if op != OpSettle && op != OpRelease {
		return Result{}, fmt.Errorf("closing %s with %q: not a closing operation", queueID, op)
	}
	return l.close(ctx, queueID, txHash, op, also)
}

// Spend names a reservation of which only Spent was used (a transfer's gas
// budget, of which the receipt's fee was paid), for CloseWith.
type Spend struct {
	QueueID string
	TxHash  string // the transfer's mined attempt, journaled with the spend ("" when none was mined)
	Spent   decimal.Decimal
}

// CloseWith is Close that first closes, in the same database transaction,
// each of spends as CloseSpent would: a payment's gas
// is charged together with its settling or release and its answer (also),
// or none of them is. A spend whose reservation is closed already is a
// replay and changes nothing. It does not go through the wallet's batch
// writer: it touches two wallets' balances (the asset's and the native
// coin's), each under its row lock.
func (l *Ledger) CloseWith(ctx context.Context, queueID, txHash string, op Op, spends []Spend, also Also) (Result, error) {
	if len(spends) == 0 {
		return l.Close(ctx, queueID, txHash, op, also)
	}
	if op != OpSettle && op != OpRelease {
		return Result{}, fmt.Errorf("closing %s with %q: not a closing operation", queueID, op)
	}
	for _, sp := range spends {
		if sp.Spent.Sign() < 0 {
			return Result{}, ErrBadAmount
		}
	}
	res, err := l.inTx(ctx, func(tx *sql.Tx) (Result, error) {
		for _, sp := range spends {
			if _, err := closeSpentIn(ctx, tx, sp.QueueID, sp.TxHash, sp.Spent); err != nil {
				return Result{}, err
			}
		}
		return closeIn(ctx, tx, queueID, txHash, op, also)
	})
	if err == nil && l.batches != nil {
		l.batches.forget(queueID)
		for _, sp := range spends {
			l.batches.forget(sp.QueueID)
		}
	}
	return res, err
}

func (l *Ledger) closeTx(ctx context.Context, queueID, txHash string, op Op, also Also) (Result, error) {
	return l.inTx(ctx, func(tx *sql.Tx) (Result, error) { return closeIn(ctx, tx, queueID, txHash, op, also) })
}

// closeIn settles or releases queueID's reservation in tx (see Close).
func closeIn(ctx context.Context, tx *sql.Tx, queueID, txHash string, op Op, also Also) (Result, error) {
	want := map[Op]string{OpSettle: "settled", OpRelease: "released"}[op]
	var r reservation
	found, err := getReservation(ctx, tx, queueID, true, &r)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{}, fmt.Errorf("%s %s: %w", op, queueID, ErrReservationNotFound)
	}
	b, err := lockBalance(ctx, tx, r.chain, r.address, r.symbol)
	if err != nil {
		return Result{}, err
	}
	switch r.state {
	case want:
		id, _, err := replayed(ctx, tx, string(op)+":"+queueID)
		if err == nil && also != nil {
			err = also(ctx, tx)
		}
		return Result{Replayed: true, JournalID: id, After: b}, err
	case "held":
	default:
		return Result{}, fmt.Errorf("%s %s (state %s): %w", op, queueID, r.state, ErrReservationClosed)
	}
	after := Balance{Available: b.Available, Held: b.Held.Sub(r.amount)}
	amount := r.amount.Neg()
	if op == OpRelease {
		after.Available = b.Available.Add(r.amount)
		amount = decimal.Zero
	}
	var txh any
	if txHash != "" {
		txh = norm(txHash)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE reservations SET state=?, tx_hash=COALESCE(?, tx_hash) WHERE reservation_key=?",
		want, txh, queueID); err != nil {
		return Result{}, fmt.Errorf("closing reservation: %w", err)
	}
	id, err := post(ctx, tx, entry{idem: string(op) + ":" + queueID, chain: r.chain, address: r.address, symbol: r.symbol,
		op: op, amount: amount, before: b, after: after, reference: queueID, txHash: txHash})
	if err != nil {
		return Result{}, err
	}
	if also != nil {
		if err := also(ctx, tx); err != nil {
			return Result{}, err
		}
	}
	return Result{JournalID: id, After: after}, nil
}

// closeSpentTx is CloseSpent in a transaction of its own.
func (l *Ledger) closeSpentTx(ctx context.Context, queueID, txHash string, spent decimal.Decimal) (Result, error) {
	if spent.Sign() < 0 {
		return Result{}, ErrBadAmount
	}
	return l.inTx(ctx, func(tx *sql.Tx) (Result, error) { return closeSpentIn(ctx, tx, queueID, txHash, spent) })
}

// closeSpentIn closes queueID's reservation in tx with only spent used (see
// CloseSpent); spent zero releases it.
func closeSpentIn(ctx context.Context, tx *sql.Tx, queueID, txHash string, spent decimal.Decimal) (Result, error) {
	if spent.IsZero() {
		return closeIn(ctx, tx, queueID, txHash, OpRelease, nil)
	}
	var r reservation
	found, err := getReservation(ctx, tx, queueID, true, &r)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{}, fmt.Errorf("settling %s: %w", queueID, ErrReservationNotFound)
	}
	b, err := lockBalance(ctx, tx, r.chain, r.address, r.symbol)
	if err != nil {
		return Result{}, err
	}
	if r.state != "held" {
		id, _, err := replayed(ctx, tx, string(OpSettle)+":"+queueID)
		return Result{Replayed: true, JournalID: id, After: b}, err
	}
	after := Balance{Available: b.Available.Add(r.amount).Sub(spent), Held: b.Held.Sub(r.amount)}
	if after.Available.Sign() < 0 {
		return Result{After: b}, fmt.Errorf("settling %s of %s on %s for %s (held %s, available %s): %w",
			spent, r.symbol, r.address, queueID, r.amount, b.Available, ErrInsufficientFunds)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE reservations SET state='settled', tx_hash=? WHERE reservation_key=?",
		norm(txHash), queueID); err != nil {
		return Result{}, fmt.Errorf("closing reservation: %w", err)
	}
	id, err := post(ctx, tx, entry{idem: string(OpSettle) + ":" + queueID, chain: r.chain, address: r.address,
		symbol: r.symbol, op: OpSettle, amount: spent.Neg(), before: b, after: after, reference: queueID, txHash: txHash})
	if err != nil {
		return Result{}, err
	}
	return Result{JournalID: id, After: after}, nil
}

// JournalEntry is one row of a wallet's history.
type JournalEntry struct {
	ID              int64           `json:"id"`
	Op              Op              `json:"op"`
	Symbol          string          `json:"symbol"`
	Amount          decimal.Decimal `json:"amount"`
	AvailableBefore decimal.Decimal `json:"available_before"`
	AvailableAfter  decimal.Decimal `json:"available_after"`
	HeldBefore      decimal.Decimal `json:"held_before"`
	HeldAfter       decimal.Decimal `json:"held_after"`
	Reference       string          `json:"reference"`
	TxHash          string          `json:"tx_hash,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
}

// Journal returns a wallet's entries for symbol, oldest first.
func (l *Ledger) Journal(ctx context.Context, chain, address, symbol string) ([]JournalEntry, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT id, op, symbol, amount, available_before, available_after, held_before, held_after,
		reference, COALESCE(tx_hash,''), created_at FROM journal WHERE chain=? AND address=? AND symbol=? ORDER BY id`,
		chain, norm(address), symbol)
	if err != nil {
		return nil, fmt.Errorf("reading journal: %w", err)
	}
	defer rows.Close()
	var out []JournalEntry
	for rows.Next() {
		var e JournalEntry
		var op string
		if err := rows.Scan(&e.ID, &op, &e.Symbol, &e.Amount, &e.AvailableBefore, &e.AvailableAfter,
			&e.HeldBefore, &e.HeldAfter, &e.Reference, &e.TxHash, &e.CreatedAt); err != nil {
			return nil, err
		}
		e.Op = Op(op)
		out = append(out, e)
	}
	return out, rows.Err()
}

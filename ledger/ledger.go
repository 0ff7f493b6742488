// Package ledger is payflow's double-checked money store in MariaDB: wallets
// with encrypted keys, balances (available and held) per (chain, address,
// symbol), reservations per key (a payment's workflow id) and an append-only
// journal; also the deposits the listeners saw and reconciliation results.
//
// Every posting runs in a database transaction that locks the balance row
// and is idempotent by a key in a unique index: replaying it changes nothing
// and returns Replayed=true. Available never goes negative (checked under the
// row lock, and by a CHECK constraint). The postings of one wallet are
// group-committed: concurrent ones share one transaction, each with its own
// result, and one set of money rules decides them all (batch.go).
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/groupcommit"
	"payflow/internal/sqlrows"
)

// Sentinel errors. Activities turn the permanent ones into non-retryable errors.
var (
	// ErrInsufficientFunds: a reservation, a reversal or a gas closing
	// would take available below zero; nothing was posted.
	ErrInsufficientFunds = errors.New("insufficient available balance")
	// ErrReservationNotFound: no reservation holds the queue_id closed.
	ErrReservationNotFound = errors.New("reservation not found")
	// ErrReservationClosed: settling a released reservation, or releasing
	// a settled one.
	ErrReservationClosed = errors.New("reservation already closed the other way")
	// ErrReservationMismatch: the queue_id is reserved with another wallet
	// or amount.
	ErrReservationMismatch = errors.New("queue_id already reserved with different content")
	// ErrCreditNotFound: Reverse found no credit of the transfer.
	ErrCreditNotFound = errors.New("credit not found")
	// ErrWalletNotFound: no wallet of that chain and address.
	ErrWalletNotFound = errors.New("wallet not found")
	// ErrColdWallet: a cold wallet's key would be given to payflow, or an
	// address payflow may hold the key of would become a cold wallet.
	ErrColdWallet = errors.New("cold wallets are watch-only")
	// ErrBadAmount: an amount to post is not above zero, or a spend is below
	// zero.
	ErrBadAmount = errors.New("amount must be > 0")

	// errRetryRace: a reservation of the same queue_id was inserted
	// concurrently; the batch runs again and sees it.
	errRetryRace = errors.New("concurrent reservation for the same queue_id; retry")
	// errMisrouted: a closing reached a batch of a wallet its reservation
	// does not hold money of; the caller routes it again.
	errMisrouted = errors.New("reservation not of the batch's wallet")
)

// Ledger is the MariaDB-backed ledger.
type Ledger struct {
	db *sql.DB
	// queue group-commits the postings of each wallet (batch.go).
	queue *groupcommit.Queue[walletKey, *posting, Result]
	mu    sync.Mutex
	// routes remembers the wallet of the reservations this process made,
	// until closed, to route their closing without reading it (a
	// reservation's wallet never changes).
	routes map[string]walletKey
	// known: wallets whose balance row a transaction of this process
	// committed (rows are never deleted).
	known map[walletKey]bool
}

// New returns a Ledger over db that group-commits the postings of each
// wallet (batch.go). Call Migrate first.
func New(db *sql.DB) *Ledger { return newLedger(db, maxBatch) }

// NewUnbatched returns a Ledger over db whose batches hold one posting
// each: every posting in a database transaction of its own, through the
// same code and money rules as New's. The benchmark compares the two.
func NewUnbatched(db *sql.DB) *Ledger { return newLedger(db, 1) }

func newLedger(db *sql.DB, batch int) *Ledger {
	l := &Ledger{db: db, routes: map[string]walletKey{}, known: map[walletKey]bool{}}
	l.queue = groupcommit.New(groupcommit.Config[walletKey, *posting, Result]{MaxBatch: batch, Commit: l.commitBatch})
	return l
}

// Drain waits until every posting already queued is committed, and refuses
// later ones (ErrClosed of internal/groupcommit). Call it after the last
// caller has returned and before the database closes. (Close closes a
// reservation.)
func (l *Ledger) Drain() { l.queue.Close() }

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

func reverseKey(chain, txHash string, logIndex uint) string {
	return fmt.Sprintf("reverse:%s:%s:%d", chain, norm(txHash), logIndex)
}

// Credit adds a confirmed deposit to available.
func (l *Ledger) Credit(ctx context.Context, in CreditInput) (Result, error) {
	if in.Amount.Sign() <= 0 {
		return Result{}, ErrBadAmount
	}
	in.Address = norm(in.Address)
	return l.post(ctx, walletKey{in.Chain, in.Address, in.Symbol}, &posting{kind: kindCredit, credit: in})
}

// Reverse undoes a credit whose block was reorganised away. It may drive
// available negative only if the money was already spent; then it fails with
// ErrInsufficientFunds and the caller must escalate.
func (l *Ledger) Reverse(ctx context.Context, chain, txHash string, logIndex uint, reference string) (Result, error) {
	// A journal row never changes: the credit's wallet and amount read here
	// are those the reversal's transaction would read.
	in := CreditInput{Chain: chain, TxHash: txHash, LogIndex: logIndex, Reference: reference}
	err := l.db.QueryRowContext(ctx, "SELECT address, symbol, amount FROM journal WHERE idem_key=?",
		CreditKey(chain, txHash, logIndex)).Scan(&in.Address, &in.Symbol, &in.Amount)
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, ErrCreditNotFound
	}
	if err != nil {
		return Result{}, fmt.Errorf("finding credit: %w", err)
	}
	return l.post(ctx, walletKey{chain, in.Address, in.Symbol}, &posting{kind: kindReverse, credit: in})
}

// ReserveInput holds an amount of a wallet for a payment request.
type ReserveInput struct {
	QueueID                string
	Chain, Address, Symbol string
	Amount                 decimal.Decimal
	WorkflowID             string
	// Recipient is who the held money is for: the signer signs a transfer
	// of it to this address only. Lower-cased; "" names none.
	Recipient string
}

// Reserve moves Amount from available to held for QueueID. A replay with the
// same content is a no-op; the same queue_id with other content fails with
// ErrReservationMismatch. Not enough available fails with ErrInsufficientFunds.
func (l *Ledger) Reserve(ctx context.Context, in ReserveInput) (Result, error) {
	if in.Amount.Sign() <= 0 {
		return Result{}, ErrBadAmount
	}
	in.Address, in.Recipient = norm(in.Address), norm(in.Recipient)
	k := walletKey{in.Chain, in.Address, in.Symbol}
	res, err := l.post(ctx, k, &posting{kind: kindReserve, reserve: in})
	if err == nil {
		l.remember(in.QueueID, k)
	}
	return res, err
}

// Reservation describes a held amount.
type Reservation struct {
	QueueID, Chain, Address, Symbol, State string
	Amount                                 decimal.Decimal
	// Recipient is who the money is held for ("" when none was named).
	Recipient string
}

// GetReservation reads the reservation of queueID (one statement: no
// transaction needed).
func (l *Ledger) GetReservation(ctx context.Context, queueID string) (Reservation, error) {
	r := Reservation{QueueID: queueID}
	err := l.db.QueryRowContext(ctx, "SELECT chain, address, symbol, amount, state, COALESCE(recipient, '') FROM reservations WHERE reservation_key=?",
		queueID).Scan(&r.Chain, &r.Address, &r.Symbol, &r.Amount, &r.State, &r.Recipient)
	if errors.Is(err, sql.ErrNoRows) {
		return Reservation{}, ErrReservationNotFound
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("reading reservation %s: %w", queueID, err)
	}
	return r, nil
}

// GetReservations reads the reservations of the keys that exist, in one
// statement, by the key as given (keys compare as the database does, case
// aside); a key with no reservation is absent from the map.
func (l *Ledger) GetReservations(ctx context.Context, keys ...string) (map[string]Reservation, error) {
	out := map[string]Reservation{}
	if len(keys) == 0 {
		return out, nil
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	rs, err := sqlrows.Collect(ctx, l.db, func(rows sqlrows.Scanner) (r Reservation, err error) {
		return r, rows.Scan(&r.QueueID, &r.Chain, &r.Address, &r.Symbol, &r.Amount, &r.State, &r.Recipient)
	}, "SELECT reservation_key, chain, address, symbol, amount, state, COALESCE(recipient, '') FROM reservations WHERE reservation_key IN ("+
		marks(len(keys))+")", args...)
	if err != nil {
		return nil, fmt.Errorf("reading reservations: %w", err)
	}
	for _, r := range rs {
		for _, k := range keys {
			if strings.EqualFold(k, r.QueueID) {
				out[k] = r
			}
		}
	}
	return out, nil
}

// Settle debits a held reservation after its transfer confirmed: held goes
// down, the money has left. Replays are no-ops; settling a released
// reservation fails with ErrReservationClosed.
func (l *Ledger) Settle(ctx context.Context, queueID, txHash string) (Result, error) {
	return l.close(ctx, &posting{kind: kindClose, queueID: queueID, txHash: txHash, op: OpSettle})
}

// Release returns a held reservation to available (compensation). Replays are
// no-ops; releasing a settled reservation fails with ErrReservationClosed.
func (l *Ledger) Release(ctx context.Context, queueID string) (Result, error) {
	return l.close(ctx, &posting{kind: kindClose, queueID: queueID, op: OpRelease})
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
	return l.close(ctx, &posting{kind: kindClose, queueID: queueID, txHash: txHash, op: op, also: also})
}

// CloseSpent closes a reservation of which only spent was used: spent leaves
// the wallet (a settle entry of -spent, with txHash), the rest returns to
// available, in one posting. It closes gas reservations: a transfer holds
// the most its gas may cost, and pays what its receipt says. spent zero
// releases the reservation. A replay of a closed reservation changes
// nothing. spent above the reservation takes the difference from available
// (ErrInsufficientFunds when that is short).
func (l *Ledger) CloseSpent(ctx context.Context, queueID, txHash string, spent decimal.Decimal) (Result, error) {
	if spent.Sign() < 0 {
		return Result{}, ErrBadAmount
	}
	return l.close(ctx, spendPosting(Spend{QueueID: queueID, TxHash: txHash, Spent: spent}))
}

// Spend names a reservation of which only Spent was used (a transfer's gas
// budget, of which the receipt's fee was paid), for CloseWith.
type Spend struct {
	QueueID string
	TxHash  string // the transfer's mined attempt, journaled with the spend ("" when none was mined)
	Spent   decimal.Decimal
}

// spendPosting is the posting of CloseSpent: spent zero releases.
func spendPosting(sp Spend) *posting {
	if sp.Spent.IsZero() {
		return &posting{kind: kindClose, queueID: sp.QueueID, txHash: sp.TxHash, op: OpRelease}
	}
	return &posting{kind: kindCloseSpent, queueID: sp.QueueID, txHash: sp.TxHash, spent: sp.Spent}
}

// CloseWith is Close that first closes, in the same database transaction,
// each of spends as CloseSpent would: a payment's gas is charged together
// with its settling or release and its answer (also), or none of them is.
// A spend whose reservation is closed already is a replay and changes
// nothing; any other refusal of one of them (or a failure of also) fails
// the whole. It touches two wallets' balances (the asset's and the native
// coin's), each under its row lock, in one transaction of its own through
// the batches' money rules, beside the wallets' writers.
func (l *Ledger) CloseWith(ctx context.Context, queueID, txHash string, op Op, spends []Spend, also Also) (Result, error) {
	if len(spends) == 0 {
		return l.Close(ctx, queueID, txHash, op, also)
	}
	if op != OpSettle && op != OpRelease {
		return Result{}, fmt.Errorf("closing %s with %q: not a closing operation", queueID, op)
	}
	ps := make([]*posting, 0, len(spends)+1)
	for _, sp := range spends {
		if sp.Spent.Sign() < 0 {
			return Result{}, ErrBadAmount
		}
		ps = append(ps, spendPosting(sp))
	}
	ps = append(ps, &posting{kind: kindClose, queueID: queueID, txHash: txHash, op: op, also: also})
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	// Routed by the remembered wallets, the others read in one statement;
	// a posting misrouted by a remembered one runs the whole again, routed
	// by the database.
	for cached := true; ; cached = false {
		if err := l.route(ctx, ps, cached); err != nil {
			return Result{}, err
		}
		outs, err := l.transact(ps, true)
		if errors.Is(err, errMisrouted) && cached {
			for _, p := range ps {
				l.forget(p.queueID)
			}
			continue
		}
		if err != nil {
			return Result{}, ps[len(ps)-1].notFound(err)
		}
		for _, p := range ps {
			l.forget(p.queueID)
		}
		return outs[len(outs)-1].Res, nil
	}
}

// route sets the wallet (and ctx) of each of ps, closings of reservations:
// remembered when cached and known, the others read in one statement.
func (l *Ledger) route(ctx context.Context, ps []*posting, cached bool) error {
	var unknown []*posting
	var keys []any
	for _, p := range ps {
		p.ctx = ctx
		l.mu.Lock()
		k, ok := l.routes[p.queueID]
		l.mu.Unlock()
		if ok && cached {
			p.k = k
			continue
		}
		unknown, keys = append(unknown, p), append(keys, p.queueID)
	}
	if len(unknown) == 0 {
		return nil
	}
	type route struct {
		key string
		k   walletKey
	}
	rs, err := sqlrows.Collect(ctx, l.db, func(rows sqlrows.Scanner) (r route, err error) {
		return r, rows.Scan(&r.key, &r.k.chain, &r.k.address, &r.k.symbol)
	}, "SELECT reservation_key, chain, address, symbol FROM reservations WHERE reservation_key IN ("+marks(len(keys))+")", keys...)
	if err != nil {
		return fmt.Errorf("reading reservations: %w", err)
	}
	for _, p := range unknown {
		i := slices.IndexFunc(rs, func(r route) bool { return fold(r.key) == fold(p.queueID) })
		if i < 0 {
			return p.notFound(ErrReservationNotFound)
		}
		p.k = rs[i].k
	}
	return nil
}

// close queues p, a closing of a reservation, on the writer of the
// reservation's wallet. A posting its batch found routed to another wallet
// (a remembered route gone wrong) runs once more, routed by the database.
func (l *Ledger) close(ctx context.Context, p *posting) (Result, error) {
	for cached := true; ; cached = false {
		k, err := l.reservationWallet(ctx, p.queueID, cached)
		if err != nil {
			return Result{}, p.notFound(err)
		}
		res, err := l.post(ctx, k, p)
		if errors.Is(err, errMisrouted) && cached {
			l.forget(p.queueID)
			continue
		}
		if err == nil {
			l.forget(p.queueID)
		}
		return res, p.notFound(err)
	}
}

// post queues p on the writer of k, the wallet it moves, and waits for its
// outcome.
func (l *Ledger) post(ctx context.Context, k walletKey, p *posting) (Result, error) {
	p.ctx, p.k = ctx, k
	return l.queue.Do(ctx, k, p)
}

// notFound names p in err when err is a missing (or misrouted) reservation.
func (p *posting) notFound(err error) error {
	if !errors.Is(err, ErrReservationNotFound) && !errors.Is(err, errMisrouted) {
		return err
	}
	what := string(p.op)
	if p.kind == kindCloseSpent {
		what = "settling"
	}
	return fmt.Errorf("%s %s: %w", what, p.queueID, ErrReservationNotFound)
}

func (l *Ledger) remember(queueID string, k walletKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.routes) >= maxRoutes {
		clear(l.routes) // forgotten routes are read again
	}
	l.routes[queueID] = k
}

func (l *Ledger) forget(queueID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.routes, queueID)
}

// reservationWallet is the wallet a reservation holds money of (it never
// changes), to route its closing to that wallet's writer: remembered when
// cached and known, else read.
func (l *Ledger) reservationWallet(ctx context.Context, queueID string, cached bool) (walletKey, error) {
	l.mu.Lock()
	k, ok := l.routes[queueID]
	l.mu.Unlock()
	if ok && cached {
		return k, nil
	}
	err := l.db.QueryRowContext(ctx, "SELECT chain, address, symbol FROM reservations WHERE reservation_key=?", queueID).
		Scan(&k.chain, &k.address, &k.symbol)
	if errors.Is(err, sql.ErrNoRows) {
		return walletKey{}, ErrReservationNotFound
	}
	if err != nil {
		return walletKey{}, fmt.Errorf("reading reservation %s: %w", queueID, err)
	}
	return k, nil
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

// Journal returns a wallet's entries for symbol, oldest first.
func (l *Ledger) Journal(ctx context.Context, chain, address, symbol string) ([]JournalEntry, error) {
	entries, err := sqlrows.Collect(ctx, l.db, scanJournalEntry, "SELECT "+journalColumns+
		" FROM journal WHERE chain=? AND address=? AND symbol=? ORDER BY id", chain, norm(address), symbol)
	if err != nil {
		return nil, fmt.Errorf("reading journal: %w", err)
	}
	return entries, nil
}

// journalColumns are the columns scanJournalEntry reads.
const journalColumns = `id, op, symbol, amount, available_before, available_after, held_before, held_after,
	reference, COALESCE(tx_hash,''), created_at`

func scanJournalEntry(rows sqlrows.Scanner) (e JournalEntry, err error) {
	return e, rows.Scan(&e.ID, (*string)(&e.Op), &e.Symbol, &e.Amount, &e.AvailableBefore, &e.AvailableAfter,
		&e.HeldBefore, &e.HeldAfter, &e.Reference, &e.TxHash, &e.CreatedAt)
}

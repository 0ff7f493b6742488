package ledger

// Group commit, and the money rules. Every wallet (chain, address, symbol)
// has at most one writer goroutine in a process (internal/groupcommit).
// Callers queue their postings to it and wait; it takes everything queued
// (up to maxBatch) and applies it in ONE database transaction: one balance
// row lock, the idempotency keys and reservations of the whole batch read in
// one query each, the postings decided in order in memory, their journal
// rows inserted in one statement, the balance written once, one commit (one
// fsync). While it commits, the next batch queues up, so batches grow with
// the load and a lone posting waits for nobody. A batch of one is a posting
// in a transaction of its own (NewUnbatched); CloseWith applies its postings
// of two wallets in one transaction through the same rules.
//
// Each posting keeps its own idempotency key and gets its own Result or
// error: a posting refused on the business rules (insufficient funds, a
// mismatched or closed reservation) is decided in memory and leaves no trace,
// so it fails alone while the rest commit. A Close hook (Also) runs inside the
// batch's transaction under a SAVEPOINT, after its posting's writes and
// before the commit; when it fails, the transaction is rolled back to the
// savepoint and only that posting fails.
//
// A caller whose context ends while its posting waits in the queue gets the
// context's error and the posting is not applied; once its batch took it, the
// caller waits for the batch's outcome (bounded by batchTimeout), so that a
// posting is never committed after its caller was told otherwise.
//
// A deadlock or a duplicate key (a concurrent writer of another wallet or
// process) retries the whole batch; any other failure of the batch runs each
// of its postings again as a batch of one, so that no posting fails for
// another's sake.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/groupcommit"
	"payflow/internal/sqlerr"
	"payflow/internal/sqlrows"
)

const (
	// maxBatch bounds one transaction: its statements and its lock time.
	maxBatch = 256
	// batchAttempts bounds the retries of a batch after deadlocks.
	batchAttempts = 5
	// batchTimeout bounds one batch's transaction; callers wait on their
	// own contexts until their posting is taken, then for its outcome.
	batchTimeout = time.Minute
	// maxRoutes bounds the remembered wallets of open reservations.
	maxRoutes = 100_000
)

type walletKey struct{ chain, address, symbol string }

type postingKind int

const (
	kindCredit postingKind = iota
	kindReverse
	kindReserve
	kindClose
	kindCloseSpent
	kindCreditHeld
)

// posting is one queued call of Credit, Reverse (the credit's wallet and
// amount in credit), Reserve, Close (Settle, Release), CloseSpent or
// CreditHeld (the credit in credit, the hold in reserve).
type posting struct {
	ctx     context.Context // the caller's: its values reach the hook
	k       walletKey       // the wallet it moves
	kind    postingKind
	credit  CreditInput  // Address normalised
	reserve ReserveInput // Address normalised
	queueID string
	txHash  string
	op      Op
	also    Also
	spent   decimal.Decimal
}

type outcome = groupcommit.Outcome[Result]

// commitBatch is the writer's commit: batch in one transaction, or each of
// its postings alone when that fails.
func (l *Ledger) commitBatch(_ walletKey, batch []*posting) []outcome {
	outs, err := l.transact(batch, false)
	if err == nil {
		return outs
	}
	outs = make([]outcome, len(batch))
	if len(batch) == 1 {
		outs[0].Err = err
		return outs
	}
	for i, p := range batch {
		one, err := l.transact([]*posting{p}, false)
		if err != nil {
			one = []outcome{{Err: err}}
		}
		outs[i] = one[0]
	}
	return outs
}

// transact applies ps in one database transaction, run again whole after a
// deadlock or a duplicate key. With all, a posting refused fails the whole
// transaction with its error; otherwise each gets its own outcome.
func (l *Ledger) transact(ps []*posting, all bool) ([]outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		outs, err := l.applyBatch(ctx, ps, all)
		if err == nil || attempt >= batchAttempts ||
			!(sqlerr.IsDeadlock(err) || sqlerr.IsDuplicateKey(err) || errors.Is(err, errRetryRace)) {
			return outs, err
		}
	}
}

// fold is the identity of a key under the columns' PAD SPACE collation:
// trailing spaces do not count.
func fold(s string) string { return strings.TrimRight(s, " ") }

type newReservation struct {
	k                   walletKey
	queueID, workflowID string
	recipient           any // nil: none named
	amount              decimal.Decimal
}

type closedReservation struct {
	queueID, state string
	txHash         any  // nil keeps the stored hash when coalesce
	coalesce       bool // Close keeps a stored hash when given none; CloseSpent overwrites
}

// walletTx is one wallet's balance in a batch's transaction.
type walletTx struct {
	k       walletKey
	bal     Balance // after the postings applied so far
	written Balance // as the balance row holds it in the transaction
}

// entry is a journal row to insert.
type entry struct {
	idem              string
	op                Op
	amount            decimal.Decimal
	w                 *walletTx
	before, after     Balance
	reference, txHash string
	logIndex          *uint
}

// batchTx is one batch's transaction: the running balances and what is
// waiting to be written.
type batchTx struct {
	ctx     context.Context
	tx      *sql.Tx
	wallets map[walletKey]*walletTx
	order   []*walletTx             // in the order their rows were locked
	journal map[string]int64        // fold(idem key) → id, committed before the batch
	resv    map[string]*reservation // fold(queue id) → reservation, as the batch left it
	ours    map[string]int          // fold(idem key) → the posting of this batch that posts it
	ids     []int64                 // each posting's journal id, once inserted
	refs    []int                   // a replay of a posting of this batch: its index; else -1
	newRes  []newReservation
	closed  []closedReservation
	rows    []entry
	rowOf   []int // posting index of each of rows
}

type reservation struct {
	queueID, chain, address, symbol, state string
	amount                                 decimal.Decimal
}

// applyBatch applies ps in order in one transaction and commits it. A
// non-nil error concerns the whole batch: nothing was committed.
func (l *Ledger) applyBatch(ctx context.Context, ps []*posting, all bool) (outs []outcome, err error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	bt := &batchTx{ctx: ctx, tx: tx, wallets: map[walletKey]*walletTx{}, journal: map[string]int64{},
		resv: map[string]*reservation{}, ours: map[string]int{}, ids: make([]int64, len(ps)), refs: make([]int, len(ps))}
	for _, p := range ps {
		if err := l.lockWallet(bt, p.k); err != nil {
			return nil, err
		}
	}
	if err := bt.load(ps); err != nil {
		return nil, err
	}
	outs = make([]outcome, len(ps))
	for i, p := range ps {
		bt.refs[i] = -1
		if outs[i], err = bt.apply(i, p); err != nil {
			return nil, err
		}
		if all && outs[i].Err != nil {
			return nil, outs[i].Err
		}
	}
	if err := bt.flush(); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing: %w", err)
	}
	l.mu.Lock()
	for k := range bt.wallets {
		l.known[k] = true
	}
	l.mu.Unlock()
	for i := range outs {
		if bt.refs[i] >= 0 {
			outs[i].Res.JournalID = bt.ids[bt.refs[i]]
		} else if outs[i].Err == nil && !outs[i].Res.Replayed {
			outs[i].Res.JournalID = bt.ids[i]
		}
	}
	return outs, nil
}

// lockWallet locks k's balance row in bt, once. A row this process
// committed on is locked in one round trip (were it gone, the locking read
// finds nothing and the row is created as for an unknown wallet).
func (l *Ledger) lockWallet(bt *batchTx, k walletKey) error {
	if bt.wallets[k] != nil {
		return nil
	}
	l.mu.Lock()
	known := l.known[k]
	l.mu.Unlock()
	var b Balance
	err := sql.ErrNoRows
	if known {
		err = bt.tx.QueryRowContext(bt.ctx, "SELECT available, held FROM balances WHERE chain=? AND address=? AND symbol=? FOR UPDATE",
			k.chain, k.address, k.symbol).Scan(&b.Available, &b.Held)
	}
	if errors.Is(err, sql.ErrNoRows) {
		b, err = lockBalance(bt.ctx, bt.tx, k)
	}
	if err != nil {
		return fmt.Errorf("locking balance: %w", err)
	}
	w := &walletTx{k: k, bal: b, written: b}
	bt.wallets[k] = w
	bt.order = append(bt.order, w)
	return nil
}

// lockBalance locks the balance row, creating it if needed, with one upsert:
// it takes the exclusive row lock directly. (INSERT IGNORE on an existing row
// takes a shared lock that deadlocks when upgraded, and a locking read of a
// missing row takes gap locks that deadlock concurrent first inserts.)
func lockBalance(ctx context.Context, tx *sql.Tx, k walletKey) (Balance, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO balances (chain, address, symbol, available, held) VALUES (?,?,?,0,0)
		ON DUPLICATE KEY UPDATE available=available`, k.chain, k.address, k.symbol); err != nil {
		return Balance{}, err
	}
	var b Balance
	err := tx.QueryRowContext(ctx, "SELECT available, held FROM balances WHERE chain=? AND address=? AND symbol=? FOR UPDATE",
		k.chain, k.address, k.symbol).Scan(&b.Available, &b.Held)
	return b, err
}

// idemKey is the idempotency key of p's journal entry ("" for a
// reservation, whose key is its queue_id's row).
func (p *posting) idemKey() string {
	switch p.kind {
	case kindCredit, kindCreditHeld:
		return CreditKey(p.credit.Chain, p.credit.TxHash, p.credit.LogIndex)
	case kindReverse:
		return reverseKey(p.credit.Chain, p.credit.TxHash, p.credit.LogIndex)
	case kindClose:
		return string(p.op) + ":" + p.queueID
	case kindCloseSpent:
		return string(OpSettle) + ":" + p.queueID
	}
	return ""
}

// load reads, in one query each, the journal entries of the batch's
// idempotency keys and the reservations it reserves or closes (those it
// closes locked).
func (bt *batchTx) load(ps []*posting) error {
	var idems, closing, reserving []any
	for _, p := range ps {
		switch p.kind {
		case kindReserve:
			reserving = append(reserving, p.reserve.QueueID)
			continue
		case kindClose, kindCloseSpent:
			closing = append(closing, p.queueID)
		}
		idems = append(idems, p.idemKey())
	}
	if len(idems) > 0 {
		ids, err := sqlrows.Collect(bt.ctx, bt.tx, scanJournalID, "SELECT id, idem_key FROM journal WHERE idem_key IN ("+
			marks(len(idems))+")", idems...)
		if err != nil {
			return fmt.Errorf("checking idempotency keys: %w", err)
		}
		for _, j := range ids {
			bt.journal[fold(j.idem)] = j.id
		}
	}
	// Closed reservations exist (the caller found them): lock them. Those
	// being reserved are read without locks: a locking read of a missing
	// key takes gap locks that deadlock concurrent reservations. They
	// cannot change under the balance lock, except for a concurrent
	// reservation of the same queue_id to another wallet, which fails the
	// insert with a duplicate key and retries the batch.
	if len(closing) > 0 {
		if err := bt.readReservations(closing, " FOR UPDATE"); err != nil {
			return err
		}
	}
	if len(reserving) > 0 {
		return bt.readReservations(reserving, "")
	}
	return nil
}

func (bt *batchTx) readReservations(ids []any, lock string) error {
	rs, err := sqlrows.Collect(bt.ctx, bt.tx, func(rows sqlrows.Scanner) (r reservation, err error) {
		return r, rows.Scan(&r.queueID, &r.chain, &r.address, &r.symbol, &r.amount, &r.state)
	}, "SELECT reservation_key, chain, address, symbol, amount, state FROM reservations WHERE reservation_key IN ("+
		marks(len(ids))+")"+lock, ids...)
	if err != nil {
		return fmt.Errorf("reading reservations: %w", err)
	}
	for _, r := range rs {
		if _, ok := bt.resv[fold(r.queueID)]; !ok {
			bt.resv[fold(r.queueID)] = &r
		}
	}
	return nil
}

// journalID is a journal row's id and idempotency key.
type journalID struct {
	id   int64
	idem string
}

func scanJournalID(rows sqlrows.Scanner) (j journalID, err error) {
	return j, rows.Scan(&j.id, &j.idem)
}

// replayed is posting i as a replay of idem, posted before the batch or by
// a posting of this batch.
func (bt *batchTx) replayed(i int, idem string, w *walletTx) outcome {
	var id int64
	if j, ok := bt.ours[fold(idem)]; ok {
		bt.refs[i] = j
	} else {
		id = bt.journal[fold(idem)]
	}
	return outcome{Res: Result{Replayed: true, JournalID: id, After: w.bal}}
}

// posted: idem is in the journal or posted by this batch.
func (bt *batchTx) posted(idem string) bool {
	_, ours := bt.ours[fold(idem)]
	_, before := bt.journal[fold(idem)]
	return ours || before
}

// post queues posting i's journal row and moves the running balance.
func (bt *batchTx) post(i int, e entry) outcome {
	e.before = e.w.bal
	bt.rows = append(bt.rows, e)
	bt.rowOf = append(bt.rowOf, i)
	bt.ours[fold(e.idem)] = i
	e.w.bal = e.after
	return outcome{Res: Result{After: e.after}}
}

// apply decides posting i: these are the ledger's money rules. A refused
// posting gets its error in the outcome; an error returned concerns the
// batch.
func (bt *batchTx) apply(i int, p *posting) (outcome, error) {
	w := bt.wallets[p.k]
	switch p.kind {
	case kindCredit, kindReverse:
		in, idem := p.credit, p.idemKey()
		if bt.posted(idem) {
			return bt.replayed(i, idem, w), nil
		}
		e := entry{idem: idem, op: OpCredit, amount: in.Amount, w: w, reference: in.Reference, txHash: in.TxHash, logIndex: &in.LogIndex}
		if p.kind == kindReverse {
			if w.bal.Available.LessThan(in.Amount) {
				return outcome{Err: fmt.Errorf("reversing %s from %s: %w", in.Amount, in.Address, ErrInsufficientFunds)}, nil
			}
			e.op, e.amount = OpReverse, in.Amount.Neg()
		}
		e.after = Balance{Available: w.bal.Available.Add(e.amount), Held: w.bal.Held}
		return bt.post(i, e), nil

	case kindReserve:
		in := p.reserve
		if r, ok := bt.resv[fold(in.QueueID)]; ok {
			if r.address != in.Address || r.chain != in.Chain || r.symbol != in.Symbol || !r.amount.Equal(in.Amount) {
				return outcome{Err: fmt.Errorf("reserving for %s: %w", in.QueueID, ErrReservationMismatch)}, nil
			}
			return outcome{Res: Result{Replayed: true, After: w.bal}}, nil
		}
		if w.bal.Available.LessThan(in.Amount) {
			return outcome{Res: Result{After: w.bal}, Err: fmt.Errorf("reserving %s of %s on %s for %s (available %s): %w",
				in.Amount, in.Symbol, in.Address, in.QueueID, w.bal.Available, ErrInsufficientFunds)}, nil
		}
		bt.resv[fold(in.QueueID)] = &reservation{chain: in.Chain, address: in.Address, symbol: in.Symbol, state: "held", amount: in.Amount}
		bt.newRes = append(bt.newRes, newReservation{k: p.k, queueID: in.QueueID, workflowID: in.WorkflowID,
			recipient: nullable(in.Recipient), amount: in.Amount})
		return bt.post(i, entry{idem: "reserve:" + in.QueueID, op: OpReserve, amount: decimal.Zero, w: w,
			after: Balance{Available: w.bal.Available.Sub(in.Amount), Held: w.bal.Held.Add(in.Amount)}, reference: in.QueueID}), nil

	case kindCreditHeld:
		// The credit and its hold, or neither. A credit posted before is
		// a replay whatever it was: a deposit credited free stays free,
		// one credited held stays held (its reservation tells).
		in, idem := p.credit, p.idemKey()
		if bt.posted(idem) {
			return bt.replayed(i, idem, w), nil
		}
		credited := Balance{Available: w.bal.Available.Add(in.Amount), Held: w.bal.Held}
		bt.post(i, entry{idem: idem, op: OpCredit, amount: in.Amount, w: w, after: credited, reference: in.Reference,
			txHash: in.TxHash, logIndex: &in.LogIndex})
		h := p.reserve
		bt.resv[fold(h.QueueID)] = &reservation{chain: h.Chain, address: h.Address, symbol: h.Symbol, state: "held", amount: h.Amount}
		bt.newRes = append(bt.newRes, newReservation{k: p.k, queueID: h.QueueID, workflowID: h.WorkflowID,
			recipient: nullable(h.Recipient), amount: h.Amount})
		o := bt.post(i, entry{idem: "reserve:" + h.QueueID, op: OpReserve, amount: decimal.Zero, w: w,
			after: Balance{Available: credited.Available.Sub(h.Amount), Held: credited.Held.Add(h.Amount)}, reference: h.QueueID})
		return o, nil

	case kindClose, kindCloseSpent:
		return bt.close(i, p, w)
	}
	return outcome{Err: fmt.Errorf("unknown posting kind %d", p.kind)}, nil
}

// closedState is the state a closing operation leaves a reservation in.
var closedState = map[Op]string{OpSettle: "settled", OpRelease: "released"}

// close settles, releases or (CloseSpent) settles with only p.spent used a
// reservation, running its hook, if any, under a savepoint.
func (bt *batchTx) close(i int, p *posting, w *walletTx) (outcome, error) {
	r, ok := bt.resv[fold(p.queueID)]
	if !ok || r.chain != p.k.chain || r.address != p.k.address || r.symbol != p.k.symbol {
		return outcome{Err: errMisrouted}, nil
	}
	op, idem := p.op, p.idemKey()
	// Settle uses the whole reservation, release none of it.
	spent, closing := r.amount, closedReservation{queueID: p.queueID, coalesce: true}
	if p.txHash != "" {
		closing.txHash = norm(p.txHash)
	}
	switch p.kind {
	case kindCloseSpent:
		// Closed either way before: a replay.
		if r.state != "held" {
			return bt.replayed(i, idem, w), nil
		}
		op, spent, closing.txHash, closing.coalesce = OpSettle, p.spent, norm(p.txHash), false
	case kindClose:
		if r.state == closedState[op] {
			return bt.replayedWithHook(i, idem, p, w)
		}
		if r.state != "held" {
			return outcome{Err: fmt.Errorf("%s %s (state %s): %w", op, p.queueID, r.state, ErrReservationClosed)}, nil
		}
		if op == OpRelease {
			spent = decimal.Zero
		}
	}
	after := Balance{Available: w.bal.Available.Add(r.amount).Sub(spent), Held: w.bal.Held.Sub(r.amount)}
	if after.Available.Sign() < 0 {
		return outcome{Res: Result{After: w.bal}, Err: fmt.Errorf("settling %s of %s on %s for %s (held %s, available %s): %w",
			spent, r.symbol, r.address, p.queueID, r.amount, w.bal.Available, ErrInsufficientFunds)}, nil
	}
	closing.state = closedState[op]
	e := entry{idem: idem, op: op, amount: spent.Neg(), w: w, after: after, reference: p.queueID, txHash: p.txHash}
	if p.also == nil {
		r.state = closing.state
		bt.closed = append(bt.closed, closing)
		return bt.post(i, e), nil
	}
	// With a hook: the batch so far is written, then this posting and its
	// hook under a savepoint, so that the hook sees the ledger as a
	// transaction of its own would show it and its failure undoes only
	// this posting.
	if err := bt.savepoint(); err != nil {
		return outcome{}, err
	}
	before, beforeWritten := w.bal, w.written
	r.state = closing.state
	bt.closed = append(bt.closed, closing)
	o := bt.post(i, e)
	if err := bt.flush(); err != nil {
		return outcome{}, err
	}
	failed, err := bt.hookUnderSavepoint(p)
	if err != nil {
		return outcome{}, err
	}
	if failed != nil {
		r.state = "held"
		w.bal, w.written = before, beforeWritten
		delete(bt.ours, fold(idem))
		bt.ids[i] = 0
		return outcome{Err: failed}, nil
	}
	return o, nil
}

// replayedWithHook is posting i as a replay of idem whose hook, if any,
// runs again (it sees what the batch wrote so far).
func (bt *batchTx) replayedWithHook(i int, idem string, p *posting, w *walletTx) (outcome, error) {
	o := bt.replayed(i, idem, w)
	if p.also == nil {
		return o, nil
	}
	if err := bt.savepoint(); err != nil {
		return outcome{}, err
	}
	failed, err := bt.hookUnderSavepoint(p)
	o.Err = failed
	return o, err
}

// savepoint writes what the batch decided so far and sets SAVEPOINT
// posting.
func (bt *batchTx) savepoint() error {
	if err := bt.flush(); err != nil {
		return err
	}
	if _, err := bt.tx.ExecContext(bt.ctx, "SAVEPOINT posting"); err != nil {
		return fmt.Errorf("setting a savepoint: %w", err)
	}
	return nil
}

// hookUnderSavepoint runs p's hook after SAVEPOINT posting. failed is the
// hook's error, its writes and the posting's rolled back to the savepoint;
// err fails the batch (a deadlock rolled the whole transaction back).
func (bt *batchTx) hookUnderSavepoint(p *posting) (failed, err error) {
	failed = runHook(callerValues{Context: bt.ctx, values: p.ctx}, bt.tx, p.also)
	if failed == nil {
		return nil, nil
	}
	if sqlerr.IsDeadlock(failed) {
		return nil, failed
	}
	if _, err := bt.tx.ExecContext(bt.ctx, "ROLLBACK TO SAVEPOINT posting"); err != nil {
		return nil, fmt.Errorf("rolling back to savepoint: %w (after %v)", err, failed)
	}
	return failed, nil
}

func runHook(ctx context.Context, tx *sql.Tx, also Also) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("closing hook panicked: %v", v)
		}
	}()
	return also(ctx, tx)
}

// callerValues is the batch's context (its deadline and cancellation) with
// the values of a caller's.
type callerValues struct {
	context.Context
	values context.Context
}

func (c callerValues) Value(key any) any { return c.values.Value(key) }

// flush writes what the batch decided so far: new reservations, closed
// ones, journal rows (one statement each) and the balances.
func (bt *batchTx) flush() error {
	if err := bt.writeReservations(); err != nil {
		return err
	}
	if err := bt.insertJournal(); err != nil {
		return err
	}
	for _, w := range bt.order {
		if w.bal.Available.Equal(w.written.Available) && w.bal.Held.Equal(w.written.Held) {
			continue
		}
		if _, err := bt.tx.ExecContext(bt.ctx, "UPDATE balances SET available=?, held=? WHERE chain=? AND address=? AND symbol=?",
			w.bal.Available, w.bal.Held, w.k.chain, w.k.address, w.k.symbol); err != nil {
			return fmt.Errorf("updating balance: %w", err)
		}
		w.written = w.bal
	}
	return nil
}

// writeReservations inserts the batch's new reservations and closes those
// it closed, one statement each.
func (bt *batchTx) writeReservations() error {
	if len(bt.newRes) > 0 {
		values, args := valuesOf(bt.newRes, "(?,?,?,?,?,?,'held',?)", func(r newReservation) []any {
			return []any{r.queueID, r.k.chain, r.k.address, r.k.symbol, r.recipient, r.amount, r.workflowID}
		})
		q := "INSERT INTO reservations (reservation_key, chain, address, symbol, recipient, amount, state, workflow_id) VALUES " +
			values
		if _, err := bt.tx.ExecContext(bt.ctx, q, args...); err != nil {
			if sqlerr.IsDuplicateKey(err) {
				return errRetryRace
			}
			return fmt.Errorf("inserting reservations: %w", err)
		}
		bt.newRes = bt.newRes[:0]
	}
	if len(bt.closed) == 0 {
		return nil
	}
	var hash strings.Builder
	var sargs, hargs, iargs []any
	for _, c := range bt.closed {
		sargs = append(sargs, c.queueID, c.state)
		if c.coalesce {
			hash.WriteString(" WHEN ? THEN COALESCE(?, tx_hash)")
		} else {
			hash.WriteString(" WHEN ? THEN ?")
		}
		hargs = append(hargs, c.queueID, c.txHash)
		iargs = append(iargs, c.queueID)
	}
	q := "UPDATE reservations SET state = CASE reservation_key" + strings.Repeat(" WHEN ? THEN ?", len(bt.closed)) +
		" END, tx_hash = CASE reservation_key" + hash.String() + " END WHERE reservation_key IN (" + marks(len(bt.closed)) + ")"
	if _, err := bt.tx.ExecContext(bt.ctx, q, append(append(sargs, hargs...), iargs...)...); err != nil {
		return fmt.Errorf("closing reservations: %w", err)
	}
	var released []string
	for _, c := range bt.closed {
		if c.state == closedState[OpRelease] {
			released = append(released, c.queueID)
		}
	}
	if err := releaseVelocity(bt.ctx, bt.tx, released); err != nil {
		return err
	}
	bt.closed = bt.closed[:0]
	return nil
}

func (bt *batchTx) insertJournal() error {
	if len(bt.rows) == 0 {
		return nil
	}
	values, args := valuesOf(bt.rows, "(?,?,?,?,?,?,?,?,?,?,?,?,?)", func(e entry) []any {
		var txHash any
		if e.txHash != "" {
			txHash = norm(e.txHash)
		}
		return []any{e.idem, e.w.k.chain, e.w.k.address, e.w.k.symbol, string(e.op), e.amount,
			e.before.Available, e.after.Available, e.before.Held, e.after.Held, e.reference, txHash, e.logIndex}
	})
	q := `INSERT INTO journal
		(idem_key, chain, address, symbol, op, amount, available_before, available_after, held_before, held_after, reference, tx_hash, log_index)
		VALUES ` + values + " RETURNING id, idem_key"
	inserted, err := sqlrows.Collect(bt.ctx, bt.tx, scanJournalID, q, args...)
	if err != nil {
		return fmt.Errorf("appending journal: %w", err)
	}
	ids := make(map[string]int64, len(inserted))
	for _, j := range inserted {
		ids[fold(j.idem)] = j.id
	}
	for j, e := range bt.rows {
		id, ok := ids[fold(e.idem)]
		if !ok {
			return fmt.Errorf("appending journal: no id returned for %s", e.idem)
		}
		if bt.ids[bt.rowOf[j]] == 0 { // a posting of two rows (CreditHeld) is known by its first
			bt.ids[bt.rowOf[j]] = id
		}
	}
	bt.rows, bt.rowOf = bt.rows[:0], bt.rowOf[:0]
	return nil
}

// marks is n comma-separated placeholders.
func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// valuesOf is the VALUES list of a multi-row insert of items, row's
// placeholders once per item, and its arguments.
func valuesOf[T any](items []T, row string, args func(T) []any) (string, []any) {
	var all []any
	for _, it := range items {
		all = append(all, args(it)...)
	}
	return strings.TrimSuffix(strings.Repeat(row+",", len(items)), ","), all
}

// nullable is s for a nullable column, nil (NULL) when empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

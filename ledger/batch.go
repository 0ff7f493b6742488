package ledger

// Group commit. Every wallet (chain, address, symbol) has at most one writer
// goroutine in a process. Callers queue their postings to it and wait; it
// takes everything queued (up to maxBatch) and applies it in ONE database
// transaction: one balance row lock, the idempotency keys and reservations of
// the whole batch read in one query each, the postings applied in order in
// memory, their journal rows inserted in one statement, the balance written
// once, one commit (one fsync). While it commits, the next batch queues up, so
// batches grow with the load and a lone posting waits for nobody.
//
// Each posting keeps its own idempotency key and gets its own Result or
// error: a posting refused on the business rules (insufficient funds, a
// mismatched or closed reservation) is decided in memory and leaves no trace,
// so it fails alone while the rest commit. A Close hook (Also) runs inside the
// batch's transaction under a SAVEPOINT, after its posting's writes and
// before the commit; when it fails, the transaction is rolled back to the
// savepoint and only that posting fails. A caller returns only after its
// batch committed (or with its own context's error: its posting may then be
// committed or not, as with a transaction of its own, and a retry replays).
//
// A deadlock or a duplicate key (a concurrent writer of another wallet or
// process) retries the whole batch; any other failure of the batch runs each
// of its postings alone, in a transaction of its own (the algorithm before
// group commit), so that no posting fails for another's sake.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"payflow/internal/sqlerr"
)

const (
	// maxBatch bounds one transaction: its statements and its lock time.
	maxBatch = 256
	// batchAttempts bounds the retries of a batch after deadlocks.
	batchAttempts = 5
	// batchTimeout bounds one batch's transaction; callers wait on their
	// own contexts.
	batchTimeout = time.Minute
	// maxRoutes bounds the remembered wallets of open reservations.
	maxRoutes = 100_000
)

type walletKey struct{ chain, address, symbol string }

type postingKind int

const (
	kindCredit postingKind = iota
	kindReserve
	kindClose
	kindCloseSpent
)

// posting is one queued call of Credit, Reserve, Close (Settle, Release) or
// CloseSpent.
type posting struct {
	ctx     context.Context
	kind    postingKind
	credit  CreditInput  // Address normalised
	reserve ReserveInput // Address normalised
	queueID string
	txHash  string
	op      Op
	also    Also
	spent   decimal.Decimal
	done    chan outcome // buffered: the writer never waits for a gone caller
}

type outcome struct {
	res Result
	err error
}

// batcher holds the queues of the wallets that have a writer running.
type batcher struct {
	l      *Ledger
	mu     sync.Mutex
	queues map[walletKey][]*posting // present: a writer runs for the wallet
	// routes remembers the wallet of the reservations this process made,
	// until closed, to route their closing without reading it (a
	// reservation's wallet never changes).
	routes map[string]walletKey
	// known: wallets whose balance row a batch of this process committed.
	known map[walletKey]bool
}

func newBatcher(l *Ledger) *batcher {
	return &batcher{l: l, queues: map[walletKey][]*posting{}, routes: map[string]walletKey{},
		known: map[walletKey]bool{}}
}

func (b *batcher) remember(queueID string, k walletKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.routes) >= maxRoutes {
		clear(b.routes) // forgotten routes are read again
	}
	b.routes[queueID] = k
}

func (b *batcher) forget(queueID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.routes, queueID)
}

// do queues p on k's writer, starting one if none runs, and waits for its
// outcome or for ctx.
func (b *batcher) do(ctx context.Context, k walletKey, p *posting) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	p.ctx, p.done = ctx, make(chan outcome, 1)
	b.mu.Lock()
	q, running := b.queues[k]
	b.queues[k] = append(q, p)
	b.mu.Unlock()
	if !running {
		go b.run(k)
	}
	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// run is k's writer: it commits batches until the queue is empty.
func (b *batcher) run(k walletKey) {
	// rowKnown: a batch of this process committed on k, so the wallet's
	// balance row exists (rows are never deleted; were one, the locking read
	// finds nothing and the row is created as for an unknown one).
	b.mu.Lock()
	rowKnown := b.known[k]
	b.mu.Unlock()
	for {
		b.mu.Lock()
		q := b.queues[k]
		if len(q) == 0 {
			delete(b.queues, k)
			b.mu.Unlock()
			return
		}
		n := min(len(q), maxBatch)
		batch := q[:n:n]
		b.queues[k] = q[n:]
		b.mu.Unlock()
		if b.l.commitBatch(k, batch, rowKnown) && !rowKnown {
			rowKnown = true
			b.mu.Lock()
			b.known[k] = true
			b.mu.Unlock()
		}
	}
}

// commitBatch applies batch in one transaction, retrying it whole after a
// deadlock, and hands every posting its outcome once committed. It reports
// whether the batch committed.
func (l *Ledger) commitBatch(k walletKey, batch []*posting, rowKnown bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	var live []*posting
	for attempt := 0; ; attempt++ {
		live = live[:0]
		for _, p := range batch {
			if p.ctx.Err() == nil { // a gone caller's posting is not applied
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			return false
		}
		outs, alone, err := l.applyBatch(ctx, k, live, rowKnown)
		if err == nil {
			for i, p := range live {
				if alone[i] {
					p.done <- l.alone(p)
				} else {
					p.done <- outs[i]
				}
			}
			return true
		}
		if !retryable(err) || attempt >= batchAttempts {
			break
		}
	}
	for _, p := range live {
		p.done <- l.alone(p)
	}
	return false
}

func retryable(err error) bool {
	return sqlerr.IsDeadlock(err) || sqlerr.IsDuplicateKey(err) || errors.Is(err, errRetryRace)
}

// alone runs p in a transaction of its own.
func (l *Ledger) alone(p *posting) outcome {
	var o outcome
	switch p.kind {
	case kindCredit:
		o.res, o.err = l.creditTx(p.ctx, p.credit)
	case kindReserve:
		o.res, o.err = l.reserveTx(p.ctx, p.reserve)
	case kindClose:
		o.res, o.err = l.closeTx(p.ctx, p.queueID, p.txHash, p.op, p.also)
	case kindCloseSpent:
		o.res, o.err = l.closeSpentTx(p.ctx, p.queueID, p.txHash, p.spent)
	}
	return o
}

// fold is the identity of a key under the columns' PAD SPACE collation:
// trailing spaces do not count.
func fold(s string) string { return strings.TrimRight(s, " ") }

type newReservation struct {
	queueID, workflowID string
	amount              decimal.Decimal
}

type closedReservation struct {
	queueID, state string
	txHash         any  // nil keeps the stored hash when coalesce
	coalesce       bool // Close keeps a stored hash when given none; CloseSpent overwrites
}

// batchTx is one batch's transaction: the running balance and what is
// waiting to be written.
type batchTx struct {
	ctx     context.Context
	tx      *sql.Tx
	k       walletKey
	bal     Balance                 // after the postings applied so far
	written Balance                 // as the balance row holds it in tx
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

// applyBatch applies ps in order in one transaction and commits it. alone
// marks postings that must run in a transaction of their own. A non-nil
// error concerns the whole batch: nothing was committed. rowKnown: the
// balance row exists, so a locking read locks it in one round trip.
func (l *Ledger) applyBatch(ctx context.Context, k walletKey, ps []*posting, rowKnown bool) (outs []outcome, alone []bool, err error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var b Balance
	err = sql.ErrNoRows
	if rowKnown {
		err = tx.QueryRowContext(ctx, "SELECT available, held FROM balances WHERE chain=? AND address=? AND symbol=? FOR UPDATE",
			k.chain, k.address, k.symbol).Scan(&b.Available, &b.Held)
	}
	if errors.Is(err, sql.ErrNoRows) {
		b, err = lockBalance(ctx, tx, k.chain, k.address, k.symbol)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("locking balance: %w", err)
	}
	bt := &batchTx{ctx: ctx, tx: tx, k: k, bal: b, written: b, journal: map[string]int64{},
		resv: map[string]*reservation{}, ours: map[string]int{}, ids: make([]int64, len(ps)), refs: make([]int, len(ps))}
	if err := bt.load(ps); err != nil {
		return nil, nil, err
	}
	outs, alone = make([]outcome, len(ps)), make([]bool, len(ps))
	for i, p := range ps {
		bt.refs[i] = -1
		if outs[i], alone[i], err = bt.apply(i, p); err != nil {
			return nil, nil, err
		}
	}
	if err := bt.flush(); err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, fmt.Errorf("committing: %w", err)
	}
	for i := range outs {
		if bt.refs[i] >= 0 {
			outs[i].res.JournalID = bt.ids[bt.refs[i]]
		} else if outs[i].err == nil && !outs[i].res.Replayed {
			outs[i].res.JournalID = bt.ids[i]
		}
	}
	return outs, alone, nil
}

// load reads, in one query each, the journal entries of the batch's
// idempotency keys and the reservations it reserves or closes (those it
// closes locked).
func (bt *batchTx) load(ps []*posting) error {
	var idems, closing, reserving []any
	for _, p := range ps {
		switch p.kind {
		case kindCredit:
			idems = append(idems, CreditKey(p.credit.Chain, p.credit.TxHash, p.credit.LogIndex))
		case kindReserve:
			reserving = append(reserving, p.reserve.QueueID)
		case kindClose:
			idems = append(idems, string(p.op)+":"+p.queueID)
			closing = append(closing, p.queueID)
		case kindCloseSpent:
			idems = append(idems, string(OpSettle)+":"+p.queueID)
			closing = append(closing, p.queueID)
		}
	}
	if len(idems) > 0 {
		rows, err := bt.tx.QueryContext(bt.ctx, "SELECT id, idem_key FROM journal WHERE idem_key IN ("+marks(len(idems))+")", idems...)
		if err != nil {
			return fmt.Errorf("checking idempotency keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var idem string
			if err := rows.Scan(&id, &idem); err != nil {
				return fmt.Errorf("checking idempotency keys: %w", err)
			}
			bt.journal[fold(idem)] = id
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("checking idempotency keys: %w", err)
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
		if err := bt.readReservations(reserving, ""); err != nil {
			return err
		}
	}
	return nil
}

func (bt *batchTx) readReservations(ids []any, lock string) error {
	rows, err := bt.tx.QueryContext(bt.ctx, "SELECT reservation_key, chain, address, symbol, amount, state FROM reservations WHERE reservation_key IN ("+
		marks(len(ids))+")"+lock, ids...)
	if err != nil {
		return fmt.Errorf("reading reservations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var q string
		var r reservation
		if err := rows.Scan(&q, &r.chain, &r.address, &r.symbol, &r.amount, &r.state); err != nil {
			return fmt.Errorf("reading reservations: %w", err)
		}
		if _, ok := bt.resv[fold(q)]; !ok {
			bt.resv[fold(q)] = &r
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading reservations: %w", err)
	}
	return nil
}

// replayOf is the journal id of idem, posted before the batch (id) or by
// posting ref of this batch (ref ≥ 0).
func (bt *batchTx) replayOf(idem string) (id int64, ref int) {
	if j, ok := bt.ours[fold(idem)]; ok {
		return 0, j
	}
	return bt.journal[fold(idem)], -1
}

// post queues posting i's journal row and moves the running balance.
func (bt *batchTx) post(i int, e entry) {
	e.chain, e.address, e.symbol, e.before = bt.k.chain, bt.k.address, bt.k.symbol, bt.bal
	bt.rows = append(bt.rows, e)
	bt.rowOf = append(bt.rowOf, i)
	bt.ours[fold(e.idem)] = i
	bt.bal = e.after
}

// apply decides posting i. A refused posting gets its error in the outcome;
// an error returned concerns the batch.
func (bt *batchTx) apply(i int, p *posting) (o outcome, alone bool, err error) {
	switch p.kind {
	case kindCredit:
		in := p.credit
		idem := CreditKey(in.Chain, in.TxHash, in.LogIndex)
		if id, ref := bt.replayOf(idem); id != 0 || ref >= 0 {
			bt.refs[i] = ref
			return outcome{res: Result{Replayed: true, JournalID: id, After: bt.bal}}, false, nil
		}
		after := Balance{Available: bt.bal.Available.Add(in.Amount), Held: bt.bal.Held}
		li := in.LogIndex
		bt.post(i, entry{idem: idem, op: OpCredit, amount: in.Amount, after: after, reference: in.Reference,
			txHash: in.TxHash, logIndex: &li})
		return outcome{res: Result{After: after}}, false, nil

	case kindReserve:
		in := p.reserve
		if r, ok := bt.resv[fold(in.QueueID)]; ok {
			if r.address != in.Address || r.chain != in.Chain || r.symbol != in.Symbol || !r.amount.Equal(in.Amount) {
				return outcome{err: fmt.Errorf("reserving for %s: %w", in.QueueID, ErrReservationMismatch)}, false, nil
			}
			return outcome{res: Result{Replayed: true, After: bt.bal}}, false, nil
		}
		if bt.bal.Available.LessThan(in.Amount) {
			return outcome{res: Result{After: bt.bal}, err: fmt.Errorf("reserving %s of %s on %s for %s (available %s): %w",
				in.Amount, in.Symbol, in.Address, in.QueueID, bt.bal.Available, ErrInsufficientFunds)}, false, nil
		}
		after := Balance{Available: bt.bal.Available.Sub(in.Amount), Held: bt.bal.Held.Add(in.Amount)}
		bt.resv[fold(in.QueueID)] = &reservation{chain: in.Chain, address: in.Address, symbol: in.Symbol, state: "held", amount: in.Amount}
		bt.newRes = append(bt.newRes, newReservation{queueID: in.QueueID, workflowID: in.WorkflowID, amount: in.Amount})
		bt.post(i, entry{idem: "reserve:" + in.QueueID, op: OpReserve, amount: decimal.Zero, after: after, reference: in.QueueID})
		return outcome{res: Result{After: after}}, false, nil

	case kindClose:
		return bt.close(i, p)

	case kindCloseSpent:
		r, ok := bt.resv[fold(p.queueID)]
		if !ok || !bt.owns(r) {
			return outcome{}, true, nil
		}
		if r.state != "held" {
			id, ref := bt.replayOf(string(OpSettle) + ":" + p.queueID)
			bt.refs[i] = ref
			return outcome{res: Result{Replayed: true, JournalID: id, After: bt.bal}}, false, nil
		}
		after := Balance{Available: bt.bal.Available.Add(r.amount).Sub(p.spent), Held: bt.bal.Held.Sub(r.amount)}
		if after.Available.Sign() < 0 {
			return outcome{res: Result{After: bt.bal}, err: fmt.Errorf("settling %s of %s on %s for %s (held %s, available %s): %w",
				p.spent, r.symbol, r.address, p.queueID, r.amount, bt.bal.Available, ErrInsufficientFunds)}, false, nil
		}
		r.state = "settled"
		bt.closed = append(bt.closed, closedReservation{queueID: p.queueID, state: "settled", txHash: norm(p.txHash)})
		bt.post(i, entry{idem: string(OpSettle) + ":" + p.queueID, op: OpSettle, amount: p.spent.Neg(), after: after,
			reference: p.queueID, txHash: p.txHash})
		return outcome{res: Result{After: after}}, false, nil
	}
	return outcome{err: fmt.Errorf("unknown posting kind %d", p.kind)}, false, nil
}

// owns: r is a reservation of the batch's wallet. The caller routed its
// posting by the reservation's wallet, which never changes; anything else
// runs alone.
func (bt *batchTx) owns(r *reservation) bool {
	return r.chain == bt.k.chain && r.address == bt.k.address && r.symbol == bt.k.symbol
}

// close settles or releases a reservation, running its hook, if any, under
// a savepoint.
func (bt *batchTx) close(i int, p *posting) (outcome, bool, error) {
	want := map[Op]string{OpSettle: "settled", OpRelease: "released"}[p.op]
	idem := string(p.op) + ":" + p.queueID
	r, ok := bt.resv[fold(p.queueID)]
	if !ok || !bt.owns(r) {
		return outcome{}, true, nil
	}
	switch r.state {
	case want:
		id, ref := bt.replayOf(idem)
		bt.refs[i] = ref
		o := outcome{res: Result{Replayed: true, JournalID: id, After: bt.bal}}
		if p.also != nil {
			// The replay's hook sees what the batch wrote so far.
			if err := bt.flush(); err != nil {
				return outcome{}, false, err
			}
			failed, err := bt.hook(p)
			if err != nil {
				return outcome{}, false, err
			}
			o.err = failed
		}
		return o, false, nil
	case "held":
	default:
		return outcome{err: fmt.Errorf("%s %s (state %s): %w", p.op, p.queueID, r.state, ErrReservationClosed)}, false, nil
	}
	after := Balance{Available: bt.bal.Available, Held: bt.bal.Held.Sub(r.amount)}
	amount := r.amount.Neg()
	if p.op == OpRelease {
		after.Available = bt.bal.Available.Add(r.amount)
		amount = decimal.Zero
	}
	var txh any
	if p.txHash != "" {
		txh = norm(p.txHash)
	}
	e := entry{idem: idem, op: p.op, amount: amount, after: after, reference: p.queueID, txHash: p.txHash}
	if p.also == nil {
		r.state = want
		bt.closed = append(bt.closed, closedReservation{queueID: p.queueID, state: want, txHash: txh, coalesce: true})
		bt.post(i, e)
		return outcome{res: Result{After: after}}, false, nil
	}
	// With a hook: the batch so far is written, then this posting and its
	// hook under a savepoint, so that the hook sees the ledger as a
	// transaction of its own would show it and its failure undoes only
	// this posting.
	if err := bt.flush(); err != nil {
		return outcome{}, false, err
	}
	if _, err := bt.tx.ExecContext(bt.ctx, "SAVEPOINT posting"); err != nil {
		return outcome{}, false, fmt.Errorf("savepoint: %w", err)
	}
	before, beforeWritten := bt.bal, bt.written
	r.state = want
	bt.closed = append(bt.closed, closedReservation{queueID: p.queueID, state: want, txHash: txh, coalesce: true})
	bt.post(i, e)
	if err := bt.flush(); err != nil {
		return outcome{}, false, err
	}
	failed, err := bt.hookUnderSavepoint(p)
	if err != nil {
		return outcome{}, false, err
	}
	if failed != nil {
		r.state = "held"
		bt.bal, bt.written = before, beforeWritten
		delete(bt.ours, fold(idem))
		bt.ids[i] = 0
		return outcome{err: failed}, false, nil
	}
	return outcome{res: Result{After: after}}, false, nil
}

// hook runs p's hook under its own savepoint; see hookUnderSavepoint.
func (bt *batchTx) hook(p *posting) (failed, err error) {
	if _, err := bt.tx.ExecContext(bt.ctx, "SAVEPOINT posting"); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	return bt.hookUnderSavepoint(p)
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
// ones, journal rows (one statement each) and the balance.
func (bt *batchTx) flush() error {
	if len(bt.newRes) > 0 {
		var q strings.Builder
		args := make([]any, 0, 6*len(bt.newRes))
		q.WriteString("INSERT INTO reservations (reservation_key, chain, address, symbol, amount, state, workflow_id) VALUES ")
		for j, r := range bt.newRes {
			if j > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,'held',?)")
			args = append(args, r.queueID, bt.k.chain, bt.k.address, bt.k.symbol, r.amount, r.workflowID)
		}
		if _, err := bt.tx.ExecContext(bt.ctx, q.String(), args...); err != nil {
			if sqlerr.IsDuplicateKey(err) {
				return errRetryRace
			}
			return fmt.Errorf("inserting reservations: %w", err)
		}
		bt.newRes = bt.newRes[:0]
	}
	if len(bt.closed) > 0 {
		var state, hash, in strings.Builder
		var sargs, hargs, iargs []any
		for j, c := range bt.closed {
			state.WriteString(" WHEN ? THEN ?")
			sargs = append(sargs, c.queueID, c.state)
			if c.coalesce {
				hash.WriteString(" WHEN ? THEN COALESCE(?, tx_hash)")
			} else {
				hash.WriteString(" WHEN ? THEN ?")
			}
			hargs = append(hargs, c.queueID, c.txHash)
			if j > 0 {
				in.WriteByte(',')
			}
			in.WriteByte('?')
			iargs = append(iargs, c.queueID)
		}
		q := "UPDATE reservations SET state = CASE reservation_key" + state.String() + " END, tx_hash = CASE reservation_key" +
			hash.String() + " END WHERE reservation_key IN (" + in.String() + ")"
		args := append(append(sargs, hargs...), iargs...)
		if _, err := bt.tx.ExecContext(bt.ctx, q, args...); err != nil {
			return fmt.Errorf("closing reservations: %w", err)
		}
		bt.closed = bt.closed[:0]
	}
	if len(bt.rows) > 0 {
		var q strings.Builder
		args := make([]any, 0, 13*len(bt.rows))
		q.WriteString(`INSERT INTO journal
		(idem_key, chain, address, symbol, op, amount, available_before, available_after, held_before, held_after, reference, tx_hash, log_index)
		VALUES `)
		for j, e := range bt.rows {
			if j > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?)")
			var txHash any
			if e.txHash != "" {
				txHash = norm(e.txHash)
			}
			args = append(args, e.idem, e.chain, e.address, e.symbol, string(e.op), e.amount,
				e.before.Available, e.after.Available, e.before.Held, e.after.Held, e.reference, txHash, e.logIndex)
		}
		q.WriteString(" RETURNING id, idem_key")
		rows, err := bt.tx.QueryContext(bt.ctx, q.String(), args...)
		if err != nil {
			return fmt.Errorf("appending journal: %w", err)
		}
		ids := make(map[string]int64, len(bt.rows))
		for rows.Next() {
			var id int64
			var idem string
			if err := rows.Scan(&id, &idem); err != nil {
				rows.Close()
				return fmt.Errorf("appending journal: %w", err)
			}
			ids[fold(idem)] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("appending journal: %w", err)
		}
		for j, e := range bt.rows {
			id, ok := ids[fold(e.idem)]
			if !ok {
				return fmt.Errorf("appending journal: no id returned for %s", e.idem)
			}
			bt.ids[bt.rowOf[j]] = id
		}
		bt.rows, bt.rowOf = bt.rows[:0], bt.rowOf[:0]
	}
	if !bt.bal.Available.Equal(bt.written.Available) || !bt.bal.Held.Equal(bt.written.Held) {
		if _, err := bt.tx.ExecContext(bt.ctx, "UPDATE balances SET available=?, held=? WHERE chain=? AND address=? AND symbol=?",
			bt.bal.Available, bt.bal.Held, bt.k.chain, bt.k.address, bt.k.symbol); err != nil {
			return fmt.Errorf("updating balance: %w", err)
		}
		bt.written = bt.bal
	}
	return nil
}

// marks is n comma-separated placeholders.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// Credit adds a confirmed deposit to available.
func (l *Ledger) Credit(ctx context.Context, in CreditInput) (Result, error) {
	if in.Amount.Sign() <= 0 {
		return Result{}, ErrBadAmount
	}
	if l.batches == nil {
		return l.creditTx(ctx, in)
	}
	in.Address = norm(in.Address)
	return l.batches.do(ctx, walletKey{in.Chain, in.Address, in.Symbol}, &posting{kind: kindCredit, credit: in})
}

// Reserve moves Amount from available to held for QueueID. A replay with the
// same content is a no-op; the same queue_id with other content fails with
// ErrReservationMismatch. Not enough available fails with ErrInsufficientFunds.
func (l *Ledger) Reserve(ctx context.Context, in ReserveInput) (Result, error) {
	if in.Amount.Sign() <= 0 {
		return Result{}, ErrBadAmount
	}
	if l.batches == nil {
		return l.reserveTx(ctx, in)
	}
	in.Address = norm(in.Address)
	k := walletKey{in.Chain, in.Address, in.Symbol}
	res, err := l.batches.do(ctx, k, &posting{kind: kindReserve, reserve: in})
	if err == nil {
		l.batches.remember(in.QueueID, k)
	}
	return res, err
}

func (l *Ledger) close(ctx context.Context, queueID, txHash string, op Op, also Also) (Result, error) {
	if l.batches == nil {
		return l.closeTx(ctx, queueID, txHash, op, also)
	}
	k, err := l.reservationWallet(ctx, queueID)
	if errors.Is(err, ErrReservationNotFound) {
		return Result{}, fmt.Errorf("%s %s: %w", op, queueID, ErrReservationNotFound)
	}
	if err != nil {
		return Result{}, err
	}
	res, err := l.batches.do(ctx, k, &posting{kind: kindClose, queueID: queueID, txHash: txHash, op: op, also: also})
	if err == nil {
		l.batches.forget(queueID)
	}
	return res, err
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
	if spent.IsZero() {
		return l.close(ctx, queueID, txHash, OpRelease, nil)
	}
	if l.batches == nil {
		return l.closeSpentTx(ctx, queueID, txHash, spent)
	}
	k, err := l.reservationWallet(ctx, queueID)
	if errors.Is(err, ErrReservationNotFound) {
		return Result{}, fmt.Errorf("settling %s: %w", queueID, ErrReservationNotFound)
	}
	if err != nil {
		return Result{}, err
	}
	res, err := l.batches.do(ctx, k, &posting{kind: kindCloseSpent, queueID: queueID, txHash: txHash, spent: spent})
	if err == nil {
		l.batches.forget(queueID)
	}
	return res, err
}

// reservationWallet is the wallet a reservation holds money of (it never
// changes), to route its closing to that wallet's writer.
func (l *Ledger) reservationWallet(ctx context.Context, queueID string) (walletKey, error) {
	l.batches.mu.Lock()
	k, ok := l.batches.routes[queueID]
	l.batches.mu.Unlock()
	if ok {
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

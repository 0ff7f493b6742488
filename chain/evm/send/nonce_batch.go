package send

// Group commit of nonces. Every sending wallet has at most one writer
// goroutine in a process. WithNonce queues its use to it and waits; the writer
// takes everything queued (up to maxNonceBatch) and, in ONE database
// transaction, locks the wallet's lane row once, hands the callers
// consecutive nonces from memory (each use under a savepoint, or none for a
// use of one statement), checkpoints the lane's next nonce with one update
// and commits once: one lock, one fsync per batch. While it commits, the
// next batch queues up, so batches grow with the load and a lone signature
// waits for nobody (the queue is internal/groupcommit's).
//
// The Signer's use is one statement: it inserts the step's signing intent
// (the unsigned transaction with its nonce). The order of a signature is
// intent (nonce) → sign → store: the batch commits the intents, and only
// then, outside the lane, is payflow-signer asked for each intent's
// transaction and the answer stored in signed_txs. No lane waits for the
// signer; a worker that dies after the signer answered leaves the intent,
// and the retry asks for the same transaction on the same nonce (the signer
// replays its signature).
//
// Safety is that of a transaction per nonce: the lane row, locked FOR UPDATE, is
// the single writer across processes (a second worker signing for the same
// wallet waits for the row, then reads the checkpoint this one committed);
// the checkpoint commits with the intents or not at all, so a crash (a
// restart) loses either both or neither. A nonce is taken only if its use
// returned nil and the batch committed; a failed use is rolled back (to its
// savepoint, or by InnoDB for one statement) and its nonce goes to the next
// caller. The lane starts at the larger of the row and the chain's pending
// nonce (a transaction sent outside payflow), read once per batch outside
// the lock after all of the batch's requests were queued. Should a use
// collide on a unique nonce key (a lane row
// left behind what was stored), the lane resyncs past the largest nonce held
// by a transaction or an intent and that use runs again. A deadlock (or a
// lock wait timeout) rolls back the whole transaction, the uses before it
// included: the batch then runs again whole, up to maxDeadlockRetries times,
// and no caller hears of a use that was rolled back (a one-statement use,
// which has no savepoint, checks that its failure left the transaction
// open). A batch that fails as a whole after its uses ran (a lost
// connection, a failed commit, deadlocks every time) runs each of them again
// in a transaction of its own; an intent stored by the commit after all is
// found by its (workflow, step) key.
//
// A caller whose context ends before the writer took its use returns at once
// and its use never runs; once taken, the caller waits for its batch (bounded
// by nonceBatchTimeout), so use never runs after its caller returned (the
// rules of groupcommit.Queue).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"payflow/internal/groupcommit"
	"payflow/internal/sqlerr"

	"payflow/chain/evm"
)

const (
	// maxNonceBatch bounds one transaction: its statements and lock time.
	maxNonceBatch = 256
	// nonceBatchTimeout bounds one batch's transaction.
	nonceBatchTimeout = time.Minute
	// maxDeadlockRetries bounds how often a deadlocked transaction of
	// signatures runs again before its callers hear the deadlock.
	maxDeadlockRetries = 5
)

// nonceReq is one WithNonce call.
type nonceReq struct {
	ctx context.Context // the caller's: the fallback of a failed batch runs under it
	use func(tx *sql.Tx, nonce uint64) error
	// oneStatement: use writes with at most one statement, which InnoDB
	// rolls back alone when it fails; it needs no savepoint.
	oneStatement bool
}

// laneBatcher group-commits the nonce uses of each wallet.
type laneBatcher struct {
	lanes *NonceLanes
	queue *groupcommit.Queue[common.Address, nonceReq, struct{}]
	mu    sync.Mutex
	known map[common.Address]bool // lanes whose row exists (rows are never deleted)
}

func newLaneBatcher(n *NonceLanes) *laneBatcher {
	b := &laneBatcher{lanes: n, known: map[common.Address]bool{}}
	b.queue = groupcommit.New(groupcommit.Config[common.Address, nonceReq, struct{}]{MaxBatch: maxNonceBatch,
		Commit: b.commit})
	return b
}

// do queues use on from's writer and waits for the outcome.
func (b *laneBatcher) do(ctx context.Context, from common.Address, use func(tx *sql.Tx, nonce uint64) error,
	oneStatement bool) error {
	_, err := b.queue.Do(ctx, from, nonceReq{ctx: ctx, use: use, oneStatement: oneStatement})
	return err
}

// pendingRead is the chain's pending nonce of a wallet, read for one batch.
type pendingRead struct {
	next uint64
	err  error
}

// readPending reads from's pending nonce on the chain.
func (b *laneBatcher) readPending(ctx context.Context, from common.Address) pendingRead {
	next, err := b.lanes.backend.PendingNonceAt(ctx, from)
	if err != nil {
		err = fmt.Errorf("reading pending nonce of %s: %w", evm.Lower(from), err)
	}
	return pendingRead{next: next, err: err}
}

// commit applies the uses of live in one transaction and returns each
// one's outcome. The chain's pending nonce is read first, outside the lane's
// lock, after every use of the batch was queued (a transaction sent outside
// payflow before a use is seen by its batch).
func (b *laneBatcher) commit(from common.Address, live []nonceReq) []groupcommit.Outcome[struct{}] {
	ctx, cancel := context.WithTimeout(context.Background(), nonceBatchTimeout)
	defer cancel()
	pending := b.readPending(ctx, from)
	errs, used, err := b.apply(ctx, from, live, pending)
	// A deadlock rolled the whole transaction back (every use of the
	// batch, not only the one that met it): run the batch again.
	for attempt := 1; err != nil && sqlerr.IsDeadlock(err) && attempt < maxDeadlockRetries; attempt++ {
		b.lanes.log.Warn("nonce batch deadlocked; running it again", "address", evm.Lower(from), "transfers", len(live),
			"attempt", attempt)
		errs, used, err = b.apply(ctx, from, live, pending)
	}
	outs := make([]groupcommit.Outcome[struct{}], len(live))
	switch {
	case err == nil:
		for i := range live {
			outs[i].Err = errs[i]
		}
	case !used: // nothing ran: the error is every caller's, as it would be alone
		for i := range live {
			outs[i].Err = err
		}
	default:
		b.lanes.log.Warn("nonce batch failed; signing its transfers one by one", "address", evm.Lower(from),
			"transfers", len(live), "err", err)
		for i, r := range live {
			outs[i].Err = b.lanes.withNonceAlone(r.ctx, from, r.use)
		}
	}
	return outs
}

// apply runs live's uses in one transaction, each with the next nonce, and
// commits. It returns each use's error; an error of the batch as a whole,
// and whether any use ran before it.
func (b *laneBatcher) apply(ctx context.Context, from common.Address, live []nonceReq, pending pendingRead) ([]error, bool, error) {
	n, addr := b.lanes, evm.Lower(from)
	b.mu.Lock()
	known := b.known[from]
	b.mu.Unlock()
	if !known {
		if err := n.ensureLane(ctx, from); err != nil {
			return nil, false, err
		}
		b.mu.Lock()
		b.known[from] = true
		b.mu.Unlock()
	}
	if pending.err != nil {
		return nil, false, pending.err
	}
	chainNext := pending.next
	tx, err := n.rows.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback()
	nonce, err := n.rows.Lock(ctx, tx, from)
	if err != nil {
		return nil, false, err
	}
	// Resync from the chain: a transaction sent from this wallet outside
	// payflow used nonces the lane does not know of.
	if chainNext > nonce {
		n.log.Warn("nonce lane behind the chain; resynced", "address", addr, "lane", nonce, "chain", chainNext)
		nonce = chainNext
	}
	first := nonce
	errs := make([]error, len(live))
	for i, r := range live {
		errs[i] = b.useOne(ctx, tx, from, &nonce, r)
		if errors.Is(errs[i], errBatchBroken) {
			return nil, true, errs[i]
		}
	}
	if nonce == first {
		return errs, true, nil // no use took a nonce: nothing to commit
	}
	if err := n.rows.Advance(ctx, tx, from, nonce); err != nil {
		return nil, true, err
	}
	if err := tx.Commit(); err != nil {
		return nil, true, fmt.Errorf("committing signed transfers: %w", err)
	}
	return errs, true, nil
}

// errBatchBroken marks a failure of the batch's transaction itself (a
// savepoint statement), not of one use.
var errBatchBroken = errors.New("nonce batch transaction failed")

// useOne runs use with *nonce under a savepoint and advances *nonce when it
// succeeds; when it fails its writes are rolled back (by the savepoint, or
// by InnoDB for a use of one statement). When use fails because
// the nonce is already held (a unique nonce key of signed_txs or
// sign_intents: the lane row fell behind them), the lane resyncs to one past
// the largest held nonce and use runs once more.
func (b *laneBatcher) useOne(ctx context.Context, tx *sql.Tx, from common.Address, nonce *uint64, r nonceReq) error {
	for retried := false; ; retried = true {
		if !r.oneStatement {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT nonce_use"); err != nil {
				return fmt.Errorf("%w: savepoint: %w", errBatchBroken, err)
			}
		}
		err := r.use(tx, *nonce)
		if err == nil {
			*nonce++
			return nil
		}
		// A deadlock (or a lock wait timeout) may have rolled back the whole
		// transaction, with the uses before this one: the batch is broken.
		if sqlerr.IsDeadlock(err) {
			return fmt.Errorf("%w: %w", errBatchBroken, err)
		}
		if r.oneStatement {
			// InnoDB rolls back a failed statement alone, unless the failure
			// ended the transaction; the lane's lock and the earlier uses'
			// writes must still be held.
			var open bool
			if qerr := tx.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&open); qerr != nil {
				return fmt.Errorf("%w: after %w: %w", errBatchBroken, err, qerr)
			} else if !open {
				return fmt.Errorf("%w: transaction ended by %w", errBatchBroken, err)
			}
		} else {
			if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT nonce_use"); rerr != nil {
				return fmt.Errorf("%w: rollback to savepoint: %w", errBatchBroken, rerr)
			}
		}
		if retried || !errors.Is(err, evm.ErrAttemptExists) {
			return err
		}
		held, next, qerr := b.lanes.store.NoncesStored(ctx, tx, from, *nonce)
		if qerr != nil {
			return fmt.Errorf("%w: reading stored nonces: %w", errBatchBroken, qerr)
		}
		if !held || next <= *nonce {
			return err // the step itself is stored: the signer replays it
		}
		b.lanes.log.Error("nonce lane behind its stored transactions; resynced", "address", evm.Lower(from),
			"lane", *nonce, "stored", next)
		*nonce = next
	}
}

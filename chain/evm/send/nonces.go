package send

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/ethereum/go-ethereum/common"

	"payflow/internal/sqlerr"

	"payflow/chain/evm"
)

// NonceAllocator hands out the nonces of sending wallets: one writer per
// wallet, no gap and no reuse among what payflow signs. It is all the signer
// knows of nonces, so the allocation strategy can change behind it.
type NonceAllocator interface {
	// WithNonce calls use with from's next nonce and the database
	// transaction what takes the nonce (the Signer's intent) must be
	// stored in. The nonce is
	// taken only if use returns nil and that transaction commits; otherwise
	// (use's error is returned as is) the next caller gets it again. No
	// other WithNonce of the same wallet gets a nonce while use runs, so use
	// must neither wait for another one nor use the database outside tx.
	WithNonce(ctx context.Context, from common.Address, use func(tx *sql.Tx, nonce uint64) error) error
}

// NonceLanes is the NonceAllocator over the nonces table: the wallet's row,
// locked in the transaction that stores the signing intents, is the
// single writer of its lane. A lane starts at the chain's pending nonce and
// is resynced from it when a transaction sent outside payflow took nonces.
//
// The lanes group-commit (see nonce_batch.go): the callers of one
// wallet in this process queue up, and one writer hands out their nonces from
// memory in ONE database transaction, under one lock of the row, checkpointed
// by one update of it and one commit. The row lock still orders the writers
// of several processes, and the chain's pending nonce is read once per batch.
type NonceLanes struct {
	rows    *evm.Lanes
	store   *evm.TxStore // the nonces stored transactions and intents hold, to resync a lane behind them
	backend evm.Backend
	log     *slog.Logger
	batch   *laneBatcher
}

// Close waits until every nonce use already queued is committed, and
// refuses later ones. Call it after the last caller has returned and before
// the database closes.
func (n *NonceLanes) Close() { n.batch.queue.Close() }

// NewNonceLanes wires NonceLanes for one chain (its protocol name), with
// group commit.
func NewNonceLanes(chainName string, db *sql.DB, backend evm.Backend, log *slog.Logger) (*NonceLanes, error) {
	rows, err := evm.NewLanes(chainName, db)
	if err != nil {
		return nil, err
	}
	store, err := evm.NewTxStore(chainName, db)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	n := &NonceLanes{rows: rows, store: store, backend: backend, log: log}
	n.batch = newLaneBatcher(n)
	return n, nil
}

// WithNonce implements NonceAllocator. The lane's row is created (from the
// chain's pending nonce) and the chain's pending nonce read before the
// transaction begins, so no RPC runs under the row lock. use runs in a transaction shared with other callers of the same wallet,
// under a savepoint: when use fails, its writes are rolled back and its
// nonce goes to the next caller of the batch; the others commit. WithNonce
// returns only once its batch committed (or with ctx's error: the nonce may
// then be taken or not, as with a transaction of its own).
func (n *NonceLanes) WithNonce(ctx context.Context, from common.Address, use func(tx *sql.Tx, nonce uint64) error) error {
	return n.batch.do(ctx, from, use, false)
}

// withNonceOneStatement is WithNonce for a use that writes with at most one
// statement (the signer's insert of its intent): when that
// statement fails, InnoDB rolls it back alone, so a batch spares its
// savepoint (two round trips under the lane's lock).
func (n *NonceLanes) withNonceOneStatement(ctx context.Context, from common.Address,
	use func(tx *sql.Tx, nonce uint64) error) error {
	return n.batch.do(ctx, from, use, true)
}

// withNonceAlone is WithNonce in a transaction of its own: the fallback of a
// batch that failed as a whole.
func (n *NonceLanes) withNonceAlone(ctx context.Context, from common.Address, use func(tx *sql.Tx, nonce uint64) error) error {
	err := n.withNonceOnce(ctx, from, use)
	// A deadlock rolled the transaction back whole: nothing was taken.
	for attempt := 1; err != nil && sqlerr.IsDeadlock(err) && attempt < maxDeadlockRetries; attempt++ {
		err = n.withNonceOnce(ctx, from, use)
	}
	return err
}

// withNonceOnce is one attempt of withNonceAlone.
func (n *NonceLanes) withNonceOnce(ctx context.Context, from common.Address, use func(tx *sql.Tx, nonce uint64) error) error {
	addr := evm.Lower(from)
	if err := n.ensureLane(ctx, from); err != nil {
		return err
	}
	chainNext, err := n.backend.PendingNonceAt(ctx, from)
	if err != nil {
		return fmt.Errorf("reading pending nonce of %s: %w", addr, err)
	}
	tx, err := n.rows.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	nonce, err := n.rows.Lock(ctx, tx, from)
	if err != nil {
		return err
	}
	// Resync from the chain: a transaction sent from this wallet outside
	// payflow used nonces the lane does not know of. (The chain's pending
	// nonce can only lag the lane otherwise, so taking the larger is safe.)
	if chainNext > nonce {
		n.log.Warn("nonce lane behind the chain; resynced", "address", addr, "lane", nonce, "chain", chainNext)
		nonce = chainNext
	}
	if nonce, err = n.pastStored(ctx, tx, from, nonce); err != nil {
		return err
	}
	if err := use(tx, nonce); err != nil {
		return err
	}
	if err := n.rows.Advance(ctx, tx, from, nonce+1); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing signed transfer: %w", err)
	}
	return nil
}

// pastStored returns nonce, or one past the largest nonce a stored
// transaction or a signing intent of from holds when that is larger (a lane
// row left behind them): read in tx, under the lane's lock, once per
// transaction, so no nonce an intent took is handed out again.
func (n *NonceLanes) pastStored(ctx context.Context, tx *sql.Tx, from common.Address, nonce uint64) (uint64, error) {
	_, next, err := n.store.NoncesStored(ctx, tx, from, nonce)
	if err != nil {
		return 0, fmt.Errorf("reading the stored nonces of %s: %w", evm.Lower(from), err)
	}
	if next > nonce {
		n.log.Error("nonce lane behind its stored transactions; resynced", "address", evm.Lower(from), "lane", nonce,
			"stored", next)
		return next, nil
	}
	return nonce, nil
}

// Lanes lists every wallet that has signed on this chain, with its lane's
// next nonce.
func (n *NonceLanes) Lanes(ctx context.Context) ([]evm.NonceLane, error) {
	return n.rows.List(ctx)
}

// ensureLane creates the wallet's nonce row from the chain's pending nonce the
// first time it sends. It runs before, and outside, the signing transaction:
// there a locking read of a missing row takes a gap lock, and two first
// signers inserting into the same gap deadlock each other.
func (n *NonceLanes) ensureLane(ctx context.Context, from common.Address) error {
	exists, err := n.rows.Exists(ctx, from)
	if err != nil || exists {
		return err
	}
	pending, err := n.backend.PendingNonceAt(ctx, from)
	if err != nil {
		return fmt.Errorf("reading pending nonce of %s: %w", evm.Lower(from), err)
	}
	return n.rows.Create(ctx, from, pending)
}

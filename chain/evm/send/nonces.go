package send

import (
	"context"
	"database/sql"
	"errors"
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
	// transaction the signed transaction must be stored in. The nonce is
	// taken only if use returns nil and that transaction commits; otherwise
	// (use's error is returned as is) the next caller gets it again. No
	// other WithNonce of the same wallet gets a nonce while use runs, so use
	// must neither wait for another one nor use the database outside tx.
	WithNonce(ctx context.Context, from common.Address, use func(tx *sql.Tx, nonce uint64) error) error
}

// NonceLane is one sending wallet and the next nonce payflow signs it with.
type NonceLane struct {
	Address common.Address
	Next    uint64
}

// NonceLanes is the NonceAllocator over the nonces table: the wallet's row,
// locked in the transaction that stores the signed transaction, is the
// single writer of its lane. A lane starts at the chain's pending nonce and
// is resynced from it when a transaction sent outside payflow took nonces.
//
// The lanes group-commit (see nonce_batch.go): the callers of one
// wallet in this process queue up, and one writer hands out their nonces from
// memory in ONE database transaction, under one lock of the row, checkpointed
// by one update of it and one commit. The row lock still orders the writers
// of several processes, and the chain's pending nonce is read once per batch.
type NonceLanes struct {
	chain   string
	db      *sql.DB
	backend evm.Backend
	log     *slog.Logger
	batch   *laneBatcher
}

// NewNonceLanes wires NonceLanes for one chain (its protocol name), with
// group commit.
func NewNonceLanes(chainName string, db *sql.DB, backend evm.Backend, log *slog.Logger) (*NonceLanes, error) {
	if chainName == "" || db == nil {
		return nil, errors.New("nonce lanes: chain name and database are required")
	}
	if log == nil {
		log = slog.Default()
	}
	n := &NonceLanes{chain: chainName, db: db, backend: backend, log: log}
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
// statement (the signer's insert of its signed transaction): when that
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
	tx, err := n.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning nonce transaction: %w", err)
	}
	defer tx.Rollback()
	var nonce uint64
	if err := tx.QueryRowContext(ctx, "SELECT next_nonce FROM nonces WHERE chain=? AND address=? FOR UPDATE",
		n.chain, addr).Scan(&nonce); err != nil {
		return fmt.Errorf("locking nonce lane of %s: %w", addr, err)
	}
	// Resync from the chain: a transaction sent from this wallet outside
	// payflow used nonces the lane does not know of. (The chain's pending
	// nonce can only lag the lane otherwise, so taking the larger is safe.)
	if chainNext > nonce {
		n.log.Warn("nonce lane behind the chain; resynced", "address", addr, "lane", nonce, "chain", chainNext)
		nonce = chainNext
	}
	if err := use(tx, nonce); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE nonces SET next_nonce=? WHERE chain=? AND address=?",
		nonce+1, n.chain, addr); err != nil {
		return fmt.Errorf("advancing nonce: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing signed transfer: %w", err)
	}
	return nil
}

// Lanes lists every wallet that has signed on this chain, with its lane's
// next nonce.
func (n *NonceLanes) Lanes(ctx context.Context) ([]NonceLane, error) {
	rows, err := n.db.QueryContext(ctx, "SELECT address, next_nonce FROM nonces WHERE chain=?", n.chain)
	if err != nil {
		return nil, fmt.Errorf("listing nonce lanes: %w", err)
	}
	defer rows.Close()
	var lanes []NonceLane
	for rows.Next() {
		var a string
		var l NonceLane
		if err := rows.Scan(&a, &l.Next); err != nil {
			return nil, fmt.Errorf("listing nonce lanes: %w", err)
		}
		l.Address = common.HexToAddress(a)
		lanes = append(lanes, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing nonce lanes: %w", err)
	}
	return lanes, nil
}

// ensureLane creates the wallet's nonce row from the chain's pending nonce the
// first time it sends. It runs before, and outside, the signing transaction:
// there a locking read of a missing row takes a gap lock, and two first
// signers inserting into the same gap deadlock each other.
func (n *NonceLanes) ensureLane(ctx context.Context, from common.Address) error {
	var one int
	err := n.db.QueryRowContext(ctx, "SELECT 1 FROM nonces WHERE chain=? AND address=?", n.chain, evm.Lower(from)).Scan(&one)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading nonce lane of %s: %w", evm.Lower(from), err)
	}
	pending, err := n.backend.PendingNonceAt(ctx, from)
	if err != nil {
		return fmt.Errorf("reading pending nonce of %s: %w", evm.Lower(from), err)
	}
	if _, err := n.db.ExecContext(ctx, "INSERT IGNORE INTO nonces (chain, address, next_nonce) VALUES (?,?,?)",
		n.chain, evm.Lower(from), pending); err != nil {
		return fmt.Errorf("creating nonce lane of %s: %w", evm.Lower(from), err)
	}
	return nil
}

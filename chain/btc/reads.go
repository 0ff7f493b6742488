package btc

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"payflow/chain"
)

// ErrNoTokens: a Bitcoin chain carries no tokens; a claim or a question
// about one is refused.
var ErrNoTokens = errors.New("a bitcoin chain carries no tokens")

// Reads answers the family-neutral chain.Reader for a Bitcoin chain: a
// deposit's Position is its output index, its units satoshis, its Token "".
type Reads struct {
	c        *Client
	deposits *Deposits
	watched  *Watched
}

var _ chain.Reader = (*Reads)(nil)

// NewReads returns the reader of c's chain, its watches kept in watched.
func NewReads(c *Client, watched *Watched) *Reads {
	return &Reads{c: c, deposits: NewDeposits(c), watched: watched}
}

// Head is the best block's height.
func (r *Reads) Head(ctx context.Context) (uint64, error) {
	h, _, err := r.c.Head(ctx)
	return uint64(h), err
}

// BlockHash is the hash of the best chain's block at number.
func (r *Reads) BlockHash(ctx context.Context, number uint64) (string, error) {
	h, err := r.c.BlockHash(ctx, int64(number))
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// Pending reports whether the node holds txHash in its pool, not mined.
func (r *Reads) Pending(ctx context.Context, txHash string) (bool, error) {
	h, err := chainhash.NewHashFromStr(txHash)
	if err != nil {
		return false, fmt.Errorf("txid %q: %w", txHash, err)
	}
	tx, err := r.c.Tx(ctx, *h)
	if IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return tx.Confirmations == 0, nil
}

// ProveDeposit checks a claimed deposit (Position: the output index;
// Units: satoshis) against the best chain. A transaction that fails does
// not exist on Bitcoin: Reverted is never set.
func (r *Reads) ProveDeposit(ctx context.Context, c chain.DepositClaim) (chain.DepositProof, error) {
	if c.Token != "" {
		return chain.DepositProof{}, fmt.Errorf("deposit %s:%d of token %s: %w", c.TxHash, c.Position, c.Token, ErrNoTokens)
	}
	sats, err := strconv.ParseInt(c.Units, 10, 64)
	if err != nil || sats <= 0 {
		return chain.DepositProof{}, fmt.Errorf("deposit %s:%d: units %q are not satoshis", c.TxHash, c.Position, c.Units)
	}
	p, err := r.deposits.Prove(ctx, c.TxHash, uint32(c.Position), c.To, sats)
	if err != nil {
		return chain.DepositProof{}, err
	}
	return chain.DepositProof{Present: p.Present, Mined: p.Mined, BlockNumber: uint64(p.Height), BlockHash: p.BlockHash,
		BlockLogIndex: c.Position}, nil
}

// TokenTransfers lists no transfers: Bitcoin has no tokens.
func (r *Reads) TokenTransfers(context.Context, string) ([]chain.TokenTransfer, error) {
	return nil, nil
}

// TokenHistory lists no transfers: Bitcoin has no tokens.
func (r *Reads) TokenHistory(context.Context, string, string, uint64, uint64) ([]chain.TokenTransfer, error) {
	return nil, nil
}

// Position is blockLogIndex itself: a deposit's position is its output
// index, the same in whatever block holds the transaction.
func (r *Reads) Position(_ context.Context, _ string, blockLogIndex uint) (uint, error) {
	return blockLogIndex, nil
}

// Watch watches address for deposits of symbol (the native coin, the only
// asset) from the node's head on, and says from which block; a repeat
// keeps the first watch.
func (r *Reads) Watch(ctx context.Context, symbol, address string) (uint64, bool, error) {
	if symbol != Symbol {
		return 0, false, fmt.Errorf("watching %s for %s: %w", address, symbol, ErrNoTokens)
	}
	a, _, err := ParseAddress(address, r.c.Params())
	if err != nil {
		return 0, false, err
	}
	head, _, err := r.c.Head(ctx)
	if err != nil {
		return 0, false, err
	}
	from, isNew, err := r.watched.Watch(ctx, a.EncodeAddress(), head)
	return uint64(from), isNew, err
}

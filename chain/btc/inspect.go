package btc

import (
	"context"
	"fmt"
	"slices"

	"github.com/btcsuite/btcd/btcjson"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// SpendState is what the chain proves about all attempts of one payment.
type SpendState string

// States of a payment's attempts.
const (
	// SpendPending: nothing proven: no attempt is mined and not every
	// input is spent, confirmations deep, by another transaction.
	SpendPending SpendState = "pending"
	// SpendMined: one attempt is in a block of the best chain (it may not
	// be confirmations deep yet).
	SpendMined SpendState = "mined"
	// SpendDropped: proven that no attempt can ever be mined: every input
	// is spent, confirmations deep, by a transaction that is none of the
	// attempts.
	SpendDropped SpendState = "dropped"
)

// SpendInspection is the chain's proof about a payment's attempts.
type SpendInspection struct {
	State SpendState
	// TxID, Height, BlockHash, Confirmations: the mined attempt
	// (SpendMined only).
	TxID          string
	Height        int64
	BlockHash     string
	Confirmations int64
	// Reason says in business words why the payment failed (SpendDropped).
	Reason string
}

// Spends proves what became of payments' transactions on the node.
type Spends struct {
	c *Client
}

// NewSpends returns the proofs of c's node.
func NewSpends(c *Client) *Spends { return &Spends{c: c} }

// Inspect tells what the node proves about the attempts (txids: the
// first transaction and its replacements, which all spend inputs) of one
// payment. An attempt in the pool is pending. Dropped needs every input
// spent by another transaction at least confirmations deep: a conflict
// still in the pool, or shallower, can be reorganised away, and then an
// attempt could be mined again.
func (s *Spends) Inspect(ctx context.Context, attempts []string, inputs []UTXO, confirmations int64) (SpendInspection, error) {
	for _, id := range attempts {
		h, err := chainhash.NewHashFromStr(id)
		if err != nil {
			return SpendInspection{}, fmt.Errorf("attempt %q: %w", id, err)
		}
		m, _, ok, err := minedAt(ctx, s.c, *h)
		if err != nil {
			return SpendInspection{}, err
		}
		if ok {
			return SpendInspection{State: SpendMined, TxID: id, Height: m.Height, BlockHash: m.BlockHash,
				Confirmations: m.Confirmations}, nil
		}
	}
	if len(inputs) == 0 {
		return SpendInspection{State: SpendPending}, nil
	}
	for _, in := range inputs {
		spender, depth, err := s.spentBy(ctx, in)
		if err != nil {
			return SpendInspection{}, err
		}
		if spender == "" || slices.Contains(attempts, spender) || depth < confirmations {
			return SpendInspection{State: SpendPending}, nil
		}
	}
	return SpendInspection{State: SpendDropped,
		Reason: "the payment's coins were spent by another transaction: it can never be mined"}, nil
}

// spentBy finds the mined transaction that spends in on the best chain and
// its depth, through the address index ("" when the output is unspent, or
// spent only in the pool).
func (s *Spends) spentBy(ctx context.Context, in UTXO) (string, int64, error) {
	op, err := in.OutPoint()
	if err != nil {
		return "", 0, err
	}
	if out, err := s.c.TxOut(ctx, op, false); err != nil || out != nil {
		return "", 0, err
	}
	a, _, err := ParseAddress(in.Address, s.c.Params())
	if err != nil {
		return "", 0, err
	}
	const page = 100
	for skip := 0; ; skip += page {
		txs, err := s.c.AddressTxs(ctx, a, skip, page, true)
		if err != nil {
			return "", 0, err
		}
		for _, tx := range txs {
			for _, vin := range tx.Vin {
				if vin.Txid == in.TxID && vin.Vout == in.Vout && tx.Confirmations > 0 {
					return tx.Txid, int64(tx.Confirmations), nil
				}
			}
		}
		if len(txs) < page {
			return "", 0, nil
		}
	}
}

// Mined is where a transaction is on the node's best chain.
type Mined struct {
	Height    int64
	BlockHash string
	// Confirmations is its block's depth (1: the head).
	Confirmations int64
}

// minedAt says where txid is mined on the node's best chain (btcd
// --txindex), with the node's view of it, ok false when the node does not know it, holds it in its
// pool only, or names a block that is not the best chain's at its height.
// The head may move between the reads: they are made again, three times
// at most, before the transaction counts as not mined (for this call).
func minedAt(ctx context.Context, c *Client, txid chainhash.Hash) (Mined, *btcjson.TxRawResult, bool, error) {
	for range 3 {
		tx, err := c.Tx(ctx, txid)
		if IsNotFound(err) {
			return Mined{}, nil, false, nil
		}
		if err != nil {
			return Mined{}, nil, false, err
		}
		if tx.BlockHash == "" || tx.Confirmations == 0 {
			return Mined{}, tx, false, nil
		}
		head, _, err := c.Head(ctx)
		if err != nil {
			return Mined{}, nil, false, err
		}
		height := head - int64(tx.Confirmations) + 1
		at, err := c.BlockHash(ctx, height)
		if err != nil {
			return Mined{}, nil, false, err
		}
		if at.String() == tx.BlockHash {
			return Mined{Height: height, BlockHash: tx.BlockHash, Confirmations: head - height + 1}, tx, true, nil
		}
	}
	return Mined{}, nil, false, nil
}

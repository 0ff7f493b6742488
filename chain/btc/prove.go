package btc

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// DepositProof is what the node's best chain says of a claimed deposit.
type DepositProof struct {
	// Present: the transaction is in a block of the best chain and its
	// output Vout pays the claimed address the claimed satoshis.
	Present bool
	// Mined: the transaction is in a block of the best chain (whatever
	// its output says).
	Mined     bool
	Height    int64
	BlockHash string
	// Confirmations is the depth of its block (1: the head).
	Confirmations int64
}

// Deposits proves claimed deposits against the node (btcd --txindex).
type Deposits struct {
	c *Client
}

// NewDeposits returns the deposit proofs of c's node.
func NewDeposits(c *Client) *Deposits { return &Deposits{c: c} }

// Prove checks a claimed deposit, output vout of txid paying sats to
// address, against the best chain. A transaction the node does not know,
// or holds only in its pool, is not mined; one whose block left the best
// chain is not mined either (the index may still name that block).
func (d *Deposits) Prove(ctx context.Context, txid string, vout uint32, address string, sats int64) (DepositProof, error) {
	h, err := chainhash.NewHashFromStr(txid)
	if err != nil {
		return DepositProof{}, fmt.Errorf("txid %q: %w", txid, err)
	}
	_, script, err := ParseAddress(address, d.c.Params())
	if err != nil {
		return DepositProof{}, err
	}
	m, tx, ok, err := minedAt(ctx, d.c, *h)
	if err != nil || !ok {
		return DepositProof{}, err
	}
	p := DepositProof{Mined: true, Height: m.Height, BlockHash: m.BlockHash, Confirmations: m.Confirmations}
	for _, out := range tx.Vout {
		if out.N != vout || out.ScriptPubKey.Hex != hex.EncodeToString(script) {
			continue
		}
		v, err := btcutil.NewAmount(out.Value)
		if err != nil {
			return DepositProof{}, err
		}
		p.Present = int64(v) == sats
	}
	return p, nil
}

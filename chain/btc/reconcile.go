package btc

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

// Reconciliation is one wallet's UTXO set compared with the node.
type Reconciliation struct {
	Address string
	// Height is the node's head when the comparison began (the node
	// moves on while it runs: an output mined meanwhile may show as
	// unknown until the next run).
	Height int64
	// Confirmed is the set's confirmed balance (spendable and reserved);
	// OnNode is the part of it the node holds unspent.
	Confirmed, OnNode int64
	// Missing: confirmed in the set, but spent or unknown on the node.
	Missing []UTXO
	// Unknown: unspent on the node, paying the wallet at least the
	// confirmations deep, and not in the set (a deposit payflow missed).
	Unknown []Coin
}

// Matched says whether the set and the node agree.
func (r Reconciliation) Matched() bool { return len(r.Missing) == 0 && len(r.Unknown) == 0 }

// Reconcile compares address's UTXO set with the node c: every confirmed
// output of the set must be unspent on the node with its value, and every
// unspent output the node's address index shows paying address, at least
// confirmations deep, must be in the set (in any state: one payflow spent
// in a transaction not yet mined is still unspent on the node).
func (u *UTXOs) Reconcile(ctx context.Context, c *Client, address string, confirmations int64) (Reconciliation, error) {
	a, script, err := ParseAddress(address, c.Params())
	if err != nil {
		return Reconciliation{}, err
	}
	r := Reconciliation{Address: a.EncodeAddress()}
	if r.Height, _, err = c.Head(ctx); err != nil {
		return r, err
	}
	all, err := queryUTXOs(ctx, u.db, "SELECT "+utxoColumns+" FROM btc_utxos WHERE chain = ? AND address = ? ORDER BY txid, vout",
		u.chain, r.Address)
	if err != nil {
		return r, err
	}
	known := map[wire.OutPoint]bool{}
	for _, o := range all {
		op, err := o.OutPoint()
		if err != nil {
			return r, fmt.Errorf("btc_utxos %s:%d: %w", o.TxID, o.Vout, err)
		}
		known[op] = true
		if o.State != UTXOSpendable && o.State != UTXOReserved {
			continue
		}
		r.Confirmed += o.Sats
		out, err := c.TxOut(ctx, op, false)
		if err != nil {
			return r, err
		}
		if out == nil {
			r.Missing = append(r.Missing, o)
			continue
		}
		v, err := btcutil.NewAmount(out.Value)
		if err != nil || int64(v) != o.Sats {
			r.Missing = append(r.Missing, o)
			continue
		}
		r.OnNode += o.Sats
	}
	want := hex.EncodeToString(script)
	const page = 100
	for skip := 0; ; skip += page {
		txs, err := c.AddressTxs(ctx, a, skip, page, false)
		if err != nil {
			return r, err
		}
		for _, tx := range txs {
			if int64(tx.Confirmations) < confirmations {
				continue
			}
			h, err := chainhash.NewHashFromStr(tx.Txid)
			if err != nil {
				return r, fmt.Errorf("reading txid %q: %w", tx.Txid, err)
			}
			for _, out := range tx.Vout {
				op := wire.OutPoint{Hash: *h, Index: out.N}
				if out.ScriptPubKey.Hex != want || known[op] {
					continue
				}
				unspent, err := c.TxOut(ctx, op, false)
				if err != nil {
					return r, err
				}
				if unspent == nil {
					continue
				}
				v, err := btcutil.NewAmount(out.Value)
				if err != nil {
					return r, err
				}
				r.Unknown = append(r.Unknown, Coin{OutPoint: op, Value: int64(v)})
			}
		}
		if len(txs) < page {
			return r, nil
		}
	}
}

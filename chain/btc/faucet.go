package btc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
)

// ErrFaucetEmpty: the faucet found too few spendable coins for a payment.
var ErrFaucetEmpty = errors.New("the faucet holds too few spendable coins")

// Coinbase outputs are spendable this many blocks deep (every network).
const coinbaseMaturity = 100

// Faucet pays from one key's P2WPKH address, finding its coins through the
// node's address index (btcd --addrindex): the dev stack's and the tests'
// source of coins, mined to it by btcd (--miningaddr). It is a tool of the
// dev stack, not of payments: payments spend the ledger's own UTXO set.
// One Faucet serialises its payments; two processes paying from one key at
// once may pick the same coin: the node refuses the second, which chooses
// its coins again.
type Faucet struct {
	c      *Client
	wif    *btcutil.WIF
	addr   btcutil.Address
	script []byte
	mu     sync.Mutex
}

// NewFaucet makes a faucet of a WIF's key on c's network.
func NewFaucet(c *Client, wif string) (*Faucet, error) {
	w, err := DecodeWIF(wif, c.Params())
	if err != nil {
		return nil, err
	}
	a, err := KeyAddress(w.PrivKey.PubKey(), c.Params())
	if err != nil {
		return nil, err
	}
	script, err := txscript.PayToAddrScript(a)
	if err != nil {
		return nil, err
	}
	return &Faucet{c: c, wif: w, addr: a, script: script}, nil
}

// Address is the faucet's address.
func (f *Faucet) Address() string { return f.addr.EncodeAddress() }

// faucetFeeRate is what the faucet pays, in satoshis per virtual byte: well
// above btcd's relay minimum (1 sat/vB).
const faucetFeeRate = 5

// Output is a payment to one address: Sats satoshis to Address (P2WPKH).
type Output struct {
	Address string
	Sats    int64
}

// Pay sends sats to the address to (P2WPKH) from the faucet's coins; see
// PayMany.
func (f *Faucet) Pay(ctx context.Context, to string, sats int64) (*wire.MsgTx, error) {
	return f.PayMany(ctx, []Output{{Address: to, Sats: sats}})
}

// PayMany sends one transaction paying each output, in order (output i of
// the transaction is outs[i]), from the faucet's coins, the change back to
// the faucet as the last output, and returns it once the node has accepted
// it into its pool (it is mined with the next block).
func (f *Faucet) PayMany(ctx context.Context, outs []Output) (*wire.MsgTx, error) {
	if len(outs) == 0 {
		return nil, errors.New("paying nothing")
	}
	var sats int64
	scripts := make([][]byte, len(outs))
	for i, o := range outs {
		_, script, err := ParseAddress(o.Address, f.c.Params())
		if err != nil {
			return nil, err
		}
		if o.Sats < DustLimit {
			return nil, fmt.Errorf("paying %d satoshis to %s: below the dust limit %d", o.Sats, o.Address, DustLimit)
		}
		scripts[i] = script
		sats += o.Sats
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Another process paying from the same key may take a coin between our
	// choice and our send: the node refuses ours, and the coin is then seen
	// spent. Choose again, a few times.
	for attempt := 1; ; attempt++ {
		tx, err := f.pay(ctx, outs, scripts, sats)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "already spent") {
			return tx, err
		}
	}
}

// pay builds, signs and sends one payment from coins the faucet finds now.
func (f *Faucet) pay(ctx context.Context, outs []Output, scripts [][]byte, sats int64) (*wire.MsgTx, error) {
	coins, err := f.coins(ctx, sats, len(outs)+1)
	if err != nil {
		return nil, err
	}
	tx := wire.NewMsgTx(2)
	var in int64
	prev := txscript.NewMultiPrevOutFetcher(nil)
	for _, c := range coins {
		// A final sequence: not replaceable, so a payment from the same
		// coin by another process is refused rather than replacing this one.
		tx.AddTxIn(&wire.TxIn{PreviousOutPoint: c.OutPoint, Sequence: wire.MaxTxInSequenceNum})
		prev.AddPrevOut(c.OutPoint, &wire.TxOut{Value: c.Value, PkScript: f.script})
		in += c.Value
	}
	for i, o := range outs {
		tx.AddTxOut(wire.NewTxOut(o.Sats, scripts[i]))
	}
	fee := int64(P2WPKHVSize(len(coins), len(outs)+1)) * faucetFeeRate
	if change := in - sats - fee; change >= DustLimit {
		tx.AddTxOut(wire.NewTxOut(change, f.script))
	}
	hashes := txscript.NewTxSigHashes(tx, prev)
	for i, c := range coins {
		w, err := txscript.WitnessSignature(tx, hashes, i, c.Value, f.script, txscript.SigHashAll, f.wif.PrivKey, true)
		if err != nil {
			return nil, fmt.Errorf("signing input %d: %w", i, err)
		}
		tx.TxIn[i].Witness = w
	}
	if _, err := f.c.Send(ctx, tx); err != nil {
		return nil, err
	}
	return tx, nil
}

// Coin is an unspent output: its outpoint and value in satoshis.
type Coin struct {
	wire.OutPoint
	Value int64
}

// coins picks spendable faucet outputs worth at least sats plus the fee of
// spending them, newest first: the newest change and the youngest mature
// coinbases come first, so a long-lived faucet reads few pages.
func (f *Faucet) coins(ctx context.Context, sats int64, outputs int) ([]Coin, error) {
	const page, maxPages, maxInputs = 100, 50, 200
	var picked []Coin
	var sum int64
	for p := 0; p < maxPages; p++ {
		txs, err := f.c.AddressTxs(ctx, f.addr, p*page, page, true)
		if err != nil {
			return nil, err
		}
		for _, tx := range txs {
			coinbase := len(tx.Vin) > 0 && tx.Vin[0].IsCoinBase()
			if coinbase && tx.Confirmations < coinbaseMaturity {
				continue
			}
			h, err := chainhash.NewHashFromStr(tx.Txid)
			if err != nil {
				return nil, fmt.Errorf("reading txid %q: %w", tx.Txid, err)
			}
			for _, out := range tx.Vout {
				if out.ScriptPubKey.Hex != hex.EncodeToString(f.script) {
					continue
				}
				op := wire.OutPoint{Hash: *h, Index: out.N}
				unspent, err := f.c.TxOut(ctx, op, true)
				if err != nil {
					return nil, err
				}
				if unspent == nil {
					continue
				}
				v, err := btcutil.NewAmount(out.Value)
				if err != nil {
					return nil, err
				}
				picked = append(picked, Coin{OutPoint: op, Value: int64(v)})
				sum += int64(v)
				if sum >= sats+int64(P2WPKHVSize(len(picked), outputs))*faucetFeeRate {
					return picked, nil
				}
				if len(picked) == maxInputs {
					return nil, fmt.Errorf("%w: %d coins hold %d of the %d satoshis asked", ErrFaucetEmpty, len(picked), sum, sats)
				}
			}
		}
		if len(txs) < page {
			break
		}
	}
	return nil, fmt.Errorf("%w: %d satoshis found of the %d asked", ErrFaucetEmpty, sum, sats)
}

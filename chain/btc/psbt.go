package btc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
)

// Errors of building and signing a payment's transaction.
var (
	// ErrFeeTooLow: a fee rate below the node's relay minimum (1 sat/vB).
	ErrFeeTooLow = errors.New("fee rate below 1 satoshi per virtual byte")
	// ErrNotOurInput: a PSBT input that the key asked to sign does not
	// pay (the signer refuses it).
	ErrNotOurInput = errors.New("the input is not the signing key's")
)

// replaceable is the sequence of every input payflow signs: below
// 0xfffffffe, so the transaction signals replaceability (BIP125) and a
// stuck payment can be replaced at a higher fee on the same inputs.
const replaceable = wire.MaxTxInSequenceNum - 2

// Spend is one transaction to build: it spends Inputs (a managed wallet's
// reserved P2WPKH outputs) to Outputs, in order, and returns the rest less
// the fee to Change (the last output, left out when below DustLimit: the
// fee takes it). FeeRate is in satoshis per virtual byte.
type Spend struct {
	Inputs  []UTXO
	Outputs []Output
	Change  string
	FeeRate int64
}

// Built is an unsigned transaction as a PSBT, with its fee and the change it
// returns (0 when none).
type Built struct {
	Packet *psbt.Packet
	Fee    int64
	Change int64
}

// BuildPSBT builds s as a version 2 transaction in a PSBT (BIP174), each
// input carrying the output it spends (its witness UTXO: what a segwit
// signature commits to), ready for the signer. The fee is the transaction's
// virtual size times FeeRate, with the change output counted. A replacement
// is the same Spend at a higher FeeRate: the same inputs, so exactly one of
// the two can be mined (BIP125 asks its fee to exceed the first's by at
// least 1 sat/vB of its size). ErrInsufficientCoins when the inputs do not
// cover the outputs and the fee.
func BuildPSBT(s Spend, params *chaincfg.Params) (Built, error) {
	if s.FeeRate < 1 {
		return Built{}, fmt.Errorf("%w: %d", ErrFeeTooLow, s.FeeRate)
	}
	if len(s.Inputs) == 0 || len(s.Outputs) == 0 {
		return Built{}, errors.New("a transaction needs inputs and outputs")
	}
	tx := wire.NewMsgTx(2)
	var in, out int64
	witnessUTXOs := make([]*wire.TxOut, len(s.Inputs))
	for i, u := range s.Inputs {
		op, err := u.OutPoint()
		if err != nil {
			return Built{}, fmt.Errorf("input %d: %w", i, err)
		}
		_, script, err := ParseAddress(u.Address, params)
		if err != nil {
			return Built{}, fmt.Errorf("input %d: %w", i, err)
		}
		tx.AddTxIn(&wire.TxIn{PreviousOutPoint: op, Sequence: replaceable})
		witnessUTXOs[i] = wire.NewTxOut(u.Sats, script)
		in += u.Sats
	}
	for i, o := range s.Outputs {
		_, script, err := ParseAddress(o.Address, params)
		if err != nil {
			return Built{}, fmt.Errorf("output %d: %w", i, err)
		}
		if o.Sats < DustLimit {
			return Built{}, fmt.Errorf("output %d of %d satoshis: below the dust limit %d", i, o.Sats, DustLimit)
		}
		tx.AddTxOut(wire.NewTxOut(o.Sats, script))
		out += o.Sats
	}
	_, changeScript, err := ParseAddress(s.Change, params)
	if err != nil {
		return Built{}, fmt.Errorf("change: %w", err)
	}
	b := Built{Fee: int64(P2WPKHVSize(len(s.Inputs), len(s.Outputs)+1)) * s.FeeRate}
	if in < out+b.Fee {
		// Without change the transaction is smaller; it may still fit.
		b.Fee = int64(P2WPKHVSize(len(s.Inputs), len(s.Outputs))) * s.FeeRate
		if in < out+b.Fee {
			return Built{}, fmt.Errorf("%w: inputs %d, outputs %d, fee %d", ErrInsufficientCoins, in, out, b.Fee)
		}
	}
	if change := in - out - b.Fee; change >= DustLimit {
		tx.AddTxOut(wire.NewTxOut(change, changeScript))
		b.Change = change
	} else {
		b.Fee = in - out // the dust goes to the fee
	}
	p, err := psbt.NewFromUnsignedTx(tx)
	if err != nil {
		return Built{}, fmt.Errorf("making the PSBT: %w", err)
	}
	for i := range p.Inputs {
		p.Inputs[i].WitnessUtxo = witnessUTXOs[i]
		p.Inputs[i].SighashType = txscript.SigHashAll
	}
	b.Packet = p
	return b, nil
}

// SignPSBT signs every input listed in inputs with key (SIGHASH_ALL, a
// segwit v0 signature over the input's witness UTXO), as payflow-signer
// will: an input whose witness UTXO does not pay key's P2WPKH address is
// refused (ErrNotOurInput), and nothing is signed then.
func SignPSBT(p *psbt.Packet, key *btcec.PrivateKey, inputs []int, params *chaincfg.Params) error {
	addr, err := KeyAddress(key.PubKey(), params)
	if err != nil {
		return err
	}
	own, err := txscript.PayToAddrScript(addr)
	if err != nil {
		return err
	}
	prev := txscript.NewMultiPrevOutFetcher(nil)
	for i, in := range p.Inputs {
		if in.WitnessUtxo == nil {
			return fmt.Errorf("input %d carries no witness UTXO", i)
		}
		prev.AddPrevOut(p.UnsignedTx.TxIn[i].PreviousOutPoint, in.WitnessUtxo)
	}
	for _, i := range inputs {
		if i < 0 || i >= len(p.Inputs) {
			return fmt.Errorf("input %d: the transaction has %d", i, len(p.Inputs))
		}
		if !bytes.Equal(p.Inputs[i].WitnessUtxo.PkScript, own) {
			return fmt.Errorf("input %d: %w", i, ErrNotOurInput)
		}
	}
	hashes := txscript.NewTxSigHashes(p.UnsignedTx, prev)
	u, err := psbt.NewUpdater(p)
	if err != nil {
		return err
	}
	for _, i := range inputs {
		in := p.Inputs[i]
		sig, err := txscript.RawTxInWitnessSignature(p.UnsignedTx, hashes, i, in.WitnessUtxo.Value, in.WitnessUtxo.PkScript,
			txscript.SigHashAll, key)
		if err != nil {
			return fmt.Errorf("signing input %d: %w", i, err)
		}
		if _, err := u.Sign(i, sig, key.PubKey().SerializeCompressed(), nil, nil); err != nil {
			return fmt.Errorf("adding the signature of input %d: %w", i, err)
		}
	}
	return nil
}

// Finalize completes a fully signed PSBT and returns the transaction to
// send.
func Finalize(p *psbt.Packet) (*wire.MsgTx, error) {
	if err := psbt.MaybeFinalizeAll(p); err != nil {
		return nil, fmt.Errorf("finalising the PSBT: %w", err)
	}
	tx, err := psbt.Extract(p)
	if err != nil {
		return nil, fmt.Errorf("extracting the transaction: %w", err)
	}
	return tx, nil
}

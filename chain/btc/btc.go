// Package btc is payflow's side of a Bitcoin chain, served by a btcd node
// (a node without a wallet): its JSON-RPC client, native segwit (BIP84)
// deposit addresses derived from an account xpub, the deposit scanner that
// reads each new block, and the store of the chain's tables (the scanner's
// blocks and the UTXO set of the managed wallets). Amounts are satoshis
// (int64, as the wire format has them); addresses are bech32 strings in
// lowercase; transaction ids are the usual byte-reversed hex.
package btc

import (
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/chaincfg"
)

// Decimals is the number of decimals of BTC: amounts are satoshis.
const Decimals = 8

// Symbol is the native coin's symbol.
const Symbol = "BTC"

// Errors of the package.
var (
	// ErrNetwork: a network name payflow does not know.
	ErrNetwork = errors.New("unknown bitcoin network")
	// ErrAddress: a string is not an address of the chain's network, or not
	// one payflow pays or watches (native segwit v0 key hash).
	ErrAddress = errors.New("not a bitcoin address of this network")
	// ErrKey: a private key (WIF) is malformed or of another network.
	ErrKey = errors.New("not a private key of this network")
)

// Params returns the chain parameters of a network: "mainnet", "testnet"
// (testnet3), "signet", "regtest" or "simnet" (btcd's private network, the
// dev stack's: unlike regtest, btcd keeps its chain across restarts).
func Params(network string) (*chaincfg.Params, error) {
	switch network {
	case "mainnet":
		return &chaincfg.MainNetParams, nil
	case "testnet", "testnet3":
		return &chaincfg.TestNet3Params, nil
	case "signet":
		return &chaincfg.SigNetParams, nil
	case "regtest":
		return &chaincfg.RegressionNetParams, nil
	case "simnet":
		return &chaincfg.SimNetParams, nil
	}
	return nil, fmt.Errorf("%w: %q (mainnet, testnet, signet, regtest or simnet)", ErrNetwork, network)
}

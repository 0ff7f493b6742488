package btc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
)

// Errors of account keys.
var (
	// ErrAccountKey: a string is not the public extended key of a BIP84
	// account on the chain's network.
	ErrAccountKey = errors.New("not a BIP84 account xpub of this network")
)

// hardened is added to an index to name its hardened child.
const hardened = hdkeychain.HardenedKeyStart

// AccountPath is the BIP84 path of account 0 on params' network,
// m/84'/coin'/0' (coin 0 on mainnet, 1 on the test networks, 115 on
// simnet): the level whose xpub the worker holds.
func AccountPath(params *chaincfg.Params) []uint32 {
	return []uint32{84 + hardened, params.HDCoinType + hardened, 0 + hardened}
}

// Account derives native segwit (P2WPKH) deposit addresses from a BIP84
// account's public key alone, m/84'/coin'/0'/0/i: what the worker holds,
// with no private key.
type Account struct {
	key    *hdkeychain.ExtendedKey
	params *chaincfg.Params
}

// NewAccount reads an account xpub serialised with the network's public
// version bytes (xpub on mainnet, tpub on testnet, signet and regtest, spub
// on simnet; the SLIP-132 zpub/vpub forms are not read), at depth 3 with a
// hardened index. A private key is refused: the worker must never hold one.
// Its errors never quote the key.
func NewAccount(xpub string, params *chaincfg.Params) (*Account, error) {
	k, err := hdkeychain.NewKeyFromString(xpub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAccountKey, err)
	}
	if k.IsPrivate() {
		k.Zero()
		return nil, fmt.Errorf("%w: a private key was given", ErrAccountKey)
	}
	if !bytes.Equal(k.Version(), params.HDPublicKeyID[:]) {
		return nil, fmt.Errorf("%w: version %x is not %s's", ErrAccountKey, k.Version(), params.Name)
	}
	if k.Depth() != 3 || k.ChildIndex() < hardened {
		return nil, fmt.Errorf("%w: depth %d, index %d (want m/84'/coin'/account')", ErrAccountKey, k.Depth(), k.ChildIndex())
	}
	return &Account{key: k, params: params}, nil
}

// Address is the receive address i, m/84'/coin'/0'/0/i, in lowercase
// bech32. i must be below 2^31. An index whose key falls off the curve
// (odds below 2^-127) is an error: the caller takes the next index.
func (a *Account) Address(i uint32) (string, error) {
	if i >= hardened {
		return "", fmt.Errorf("address index %d: a public key derives no hardened child", i)
	}
	external, err := a.key.Derive(0)
	if err != nil {
		return "", fmt.Errorf("deriving the receive chain: %w", err)
	}
	child, err := external.Derive(i)
	if err != nil {
		return "", fmt.Errorf("deriving address %d: %w", i, err)
	}
	pub, err := child.ECPubKey()
	if err != nil {
		return "", fmt.Errorf("reading the key of address %d: %w", i, err)
	}
	addr, err := KeyAddress(pub, a.params)
	if err != nil {
		return "", err
	}
	return addr.EncodeAddress(), nil
}

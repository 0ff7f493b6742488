package btc

import (
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
)

// NewWIF makes a new private key and returns it as a WIF of params'
// network, for a compressed public key. The string is a secret.
func NewWIF(params *chaincfg.Params) (string, error) {
	k, err := btcec.NewPrivateKey()
	if err != nil {
		return "", fmt.Errorf("making a key: %w", err)
	}
	w, err := btcutil.NewWIF(k, params, true)
	if err != nil {
		return "", fmt.Errorf("encoding a key: %w", err)
	}
	return w.String(), nil
}

// DecodeWIF reads a WIF of params' network with a compressed public key.
// Its errors never quote the key.
func DecodeWIF(s string, params *chaincfg.Params) (*btcutil.WIF, error) {
	w, err := btcutil.DecodeWIF(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	if !w.IsForNet(params) {
		return nil, fmt.Errorf("%w: the key is for another network than %s", ErrKey, params.Name)
	}
	if !w.CompressPubKey {
		return nil, fmt.Errorf("%w: an uncompressed key has no segwit address", ErrKey)
	}
	return w, nil
}

// KeyAddress is the native segwit (P2WPKH) address of a compressed public
// key on params' network.
func KeyAddress(pub *btcec.PublicKey, params *chaincfg.Params) (*btcutil.AddressWitnessPubKeyHash, error) {
	return btcutil.NewAddressWitnessPubKeyHash(btcutil.Hash160(pub.SerializeCompressed()), params)
}

// WIFAddress is the P2WPKH address of a WIF's key.
func WIFAddress(wif string, params *chaincfg.Params) (string, error) {
	w, err := DecodeWIF(wif, params)
	if err != nil {
		return "", err
	}
	a, err := KeyAddress(w.PrivKey.PubKey(), params)
	if err != nil {
		return "", err
	}
	return a.EncodeAddress(), nil
}

// ParseAddress reads a P2WPKH address of params' network, the only kind
// payflow derives, watches and pays to so far, and returns it with its
// output script. Bech32 is case-insensitive: the address returned is the
// lowercase form.
func ParseAddress(s string, params *chaincfg.Params) (btcutil.Address, []byte, error) {
	a, err := btcutil.DecodeAddress(s, params)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %q: %v", ErrAddress, s, err)
	}
	if !a.IsForNet(params) {
		return nil, nil, fmt.Errorf("%w: %q is for another network than %s", ErrAddress, s, params.Name)
	}
	if _, ok := a.(*btcutil.AddressWitnessPubKeyHash); !ok {
		return nil, nil, fmt.Errorf("%w: %q is not a native segwit key-hash address", ErrAddress, s)
	}
	script, err := txscript.PayToAddrScript(a)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %q: %v", ErrAddress, s, err)
	}
	return a, script, nil
}

package hd

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

var (
	// ErrExtendedKey: a string is not a mainnet xprv or xpub (bad base58,
	// checksum, length, version, or a key off the curve).
	ErrExtendedKey = errors.New("not an extended key")
	// ErrNotPublic: a private extended key was given where only an xpub
	// belongs (the worker's account key).
	ErrNotPublic = errors.New("an xprv was given where an xpub belongs")
	// ErrNotAccount: the xpub is not at an account's depth (3) with a
	// hardened index, as m/44'/60'/0' is.
	ErrNotAccount = errors.New("the xpub is not an account key")
	// ErrHardenedFromPublic: a public key cannot derive a hardened child.
	ErrHardenedFromPublic = errors.New("a public key derives no hardened child")
)

// The version bytes of BIP32's mainnet serialisation (xprv, xpub), which
// Ethereum wallets use too.
var (
	versionPrivate = chaincfg.MainNetParams.HDPrivateKeyID[:]
	versionPublic  = chaincfg.MainNetParams.HDPublicKeyID[:]
)

// Key is a BIP32 extended key, private or public. It has no String method,
// so that fmt and loggers never print an xprv: XPub is safe to show, XPrv
// is asked for by name.
type Key struct {
	ek *hdkeychain.ExtendedKey
}

// NewMasterKey derives the master key from a seed (16 to 64 bytes; a BIP39
// seed is 64).
func NewMasterKey(seed []byte) (*Key, error) {
	ek, err := hdkeychain.NewMaster(seed, &chaincfg.MainNetParams)
	if err != nil {
		return nil, fmt.Errorf("deriving the master key: %w", err)
	}
	return &Key{ek: ek}, nil
}

// ParseKey reads a mainnet xprv or xpub. Its errors never quote the input.
func ParseKey(s string) (*Key, error) {
	ek, err := hdkeychain.NewKeyFromString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrExtendedKey, err)
	}
	want := versionPublic
	if ek.IsPrivate() {
		want = versionPrivate
	}
	if !bytes.Equal(ek.Version(), want) {
		return nil, fmt.Errorf("%w: version %x", ErrExtendedKey, ek.Version())
	}
	return &Key{ek: ek}, nil
}

// Derive returns the key at p below k: p's levels are applied from k, so
// Derive(DepositPath(i)) on the master key gives deposit key i. A public
// key derives normal levels only (ErrHardenedFromPublic).
func (k *Key) Derive(p Path) (*Key, error) {
	ek := k.ek
	for _, i := range p {
		if i >= Hardened && !ek.IsPrivate() {
			return nil, ErrHardenedFromPublic
		}
		child, err := ek.Derive(i)
		if err != nil {
			// An index whose key falls off the curve (odds below 2^-127):
			// BIP32 says to skip it; callers pick another index.
			return nil, fmt.Errorf("deriving child %d: %w", i, err)
		}
		ek = child
	}
	return &Key{ek: ek}, nil
}

// Public is k without its private part (k itself if already public).
func (k *Key) Public() *Key {
	if !k.ek.IsPrivate() {
		return k
	}
	pub, err := k.ek.Neuter()
	if err != nil {
		// Neuter fails only for a version with no public pair; a Key has
		// the mainnet version.
		panic(fmt.Sprintf("hd: neutering a mainnet key: %v", err))
	}
	return &Key{ek: pub}
}

// IsPrivate says whether k holds a private key.
func (k *Key) IsPrivate() bool { return k.ek.IsPrivate() }

// Depth is k's level below the master key (0 for the master key).
func (k *Key) Depth() uint8 { return k.ek.Depth() }

// ChildIndex is the index k was derived at (0 for the master key).
func (k *Key) ChildIndex() uint32 { return k.ek.ChildIndex() }

// XPub serialises k's public part (base58check, xpub...).
func (k *Key) XPub() string { return k.Public().ek.String() }

// XPubWithVersion serialises k's public part with other version bytes than
// mainnet's xpub: a Bitcoin test network's (tpub, spub), whose wallets read
// only their own. The key is the same.
func (k *Key) XPubWithVersion(version [4]byte) (string, error) {
	pub, err := k.Public().ek.CloneWithVersion(version[:])
	if err != nil {
		return "", fmt.Errorf("serialising an xpub: %w", err)
	}
	return pub.String(), nil
}

// XPrv serialises k with its private key (xprv...), or fails when k is
// public. The string is a secret.
func (k *Key) XPrv() (string, error) {
	if !k.ek.IsPrivate() {
		return "", errors.New("serialising an xprv: the key is public")
	}
	return k.ek.String(), nil
}

// PublicKey is k's public key.
func (k *Key) PublicKey() (*ecdsa.PublicKey, error) {
	pub, err := k.ek.ECPubKey()
	if err != nil {
		return nil, fmt.Errorf("reading the public key: %w", err)
	}
	return crypto.UnmarshalPubkey(pub.SerializeUncompressed())
}

// Address is the Ethereum address of k's public key.
func (k *Key) Address() (common.Address, error) {
	pub, err := k.PublicKey()
	if err != nil {
		return common.Address{}, err
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// PrivateKey is k's private key for go-ethereum's signers, or an error when
// k is public.
func (k *Key) PrivateKey() (*ecdsa.PrivateKey, error) {
	priv, err := k.ek.ECPrivKey()
	if err != nil {
		return nil, fmt.Errorf("reading the private key: %w", err)
	}
	b := priv.Serialize()
	defer clear(b)
	return crypto.ToECDSA(b)
}

// Zero clears k's key material and chain code; k is unusable after.
func (k *Key) Zero() { k.ek.Zero() }

// Account derives deposit addresses from an account's xpub alone: what the
// worker holds, with no private key.
type Account struct {
	key *Key
}

// NewAccount reads an account xpub, the public key at m/44'/60'/0' (depth
// 3, a hardened index). An xprv is refused (ErrNotPublic): the worker must
// never hold one.
func NewAccount(xpub string) (*Account, error) {
	k, err := ParseKey(xpub)
	if err != nil {
		return nil, err
	}
	if k.IsPrivate() {
		k.Zero()
		return nil, ErrNotPublic
	}
	if k.Depth() != uint8(len(AccountPath)) || k.ChildIndex() < Hardened {
		return nil, fmt.Errorf("%w: depth %d, index %d", ErrNotAccount, k.Depth(), k.ChildIndex())
	}
	return &Account{key: k}, nil
}

// XPub is the account's xpub.
func (a *Account) XPub() string { return a.key.XPub() }

// DepositAddress is the address at DepositPath(i), derived from the xpub:
// m/44'/60'/0' then 0 then i. i must be below Hardened.
func (a *Account) DepositAddress(i uint32) (common.Address, error) {
	if i >= Hardened {
		return common.Address{}, fmt.Errorf("deposit index %d: %w", i, ErrHardenedFromPublic)
	}
	k, err := a.key.Derive(Path{0, i})
	if err != nil {
		return common.Address{}, fmt.Errorf("deriving deposit address %d: %w", i, err)
	}
	return k.Address()
}

package signer

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"payflow/custody/hd"
	custodykms "payflow/custody/kms"
	"payflow/custody/signerapi"
	"payflow/ledger"
)

// KMS is the part of the AWS KMS API the signer calls: signing, data keys
// and creating keys. *kms.Client (custody/kms.NewClient) implements it.
type KMS interface {
	custodykms.API
	custodykms.KeyCreator
}

// mnemonicAAD binds the sealed mnemonic to its use: a key row's sealed
// bytes (bound to their address) do not open as the mnemonic, nor the
// other way round.
var mnemonicAAD = []byte("payflow-signer mnemonic")

// keys reaches the signer's keys: rows of signer_keys (KMS keys and
// envelope-sealed keys) and children of the sealed mnemonic. Plain key
// material lives only for one signature and is cleared after it.
type keys struct {
	kms      KMS
	envelope *custodykms.Envelope
	store    *store
	wallets  *ledger.Wallets
	state    state

	mu         sync.Mutex
	kmsSigners map[string]*custodykms.Signer // by KMS key id
}

// signingKey signs for one address with one backend.
type signingKey struct {
	Address common.Address
	Backend string
	sign    func(ctx context.Context, tx *types.Transaction, s types.Signer) (*types.Transaction, error)
}

// find returns the key of from for a transaction on chain: its signer_keys
// row or, without one, the mnemonic's child named by the chain's ledger
// wallet of that address (its hd_index). No key: *unknownKey.
func (k *keys) find(ctx context.Context, chain string, from common.Address) (signingKey, error) {
	a := addr(from)
	row, ok, err := k.store.key(ctx, a)
	if err != nil {
		return signingKey{}, err
	}
	if ok {
		switch row.Backend {
		case signerapi.BackendKMS:
			return signingKey{Address: from, Backend: row.Backend, sign: func(ctx context.Context, tx *types.Transaction, s types.Signer) (*types.Transaction, error) {
				ks, err := k.kmsSigner(ctx, row.KMSKeyID, from)
				if err != nil {
					return nil, err
				}
				return ks.SignTx(ctx, tx, s)
			}}, nil
		case signerapi.BackendEnvelope:
			return signingKey{Address: from, Backend: row.Backend, sign: func(ctx context.Context, tx *types.Transaction, s types.Signer) (*types.Transaction, error) {
				return k.signEnvelope(ctx, row, from, tx, s)
			}}, nil
		}
		return signingKey{}, fmt.Errorf("the key of %s has backend %q, which this signer does not know", a, row.Backend)
	}
	w, err := k.wallets.Get(ctx, chain, a)
	if errors.Is(err, ledger.ErrWalletNotFound) {
		return signingKey{}, &unknownKey{msg: fmt.Sprintf("the signer holds no key for %s, and %s has no wallet of that address", a, chain)}
	}
	if err != nil {
		return signingKey{}, err
	}
	if w.HDIndex == nil {
		return signingKey{}, &unknownKey{msg: fmt.Sprintf("the signer holds no key for %s (wallet %q on %s, key held by %s)", a, w.Label, chain, w.KeyHolder)}
	}
	i := *w.HDIndex
	return signingKey{Address: from, Backend: signerapi.BackendHD, sign: func(ctx context.Context, tx *types.Transaction, s types.Signer) (*types.Transaction, error) {
		return k.signHD(ctx, chain, i, from, tx, s)
	}}, nil
}

// kmsSigner returns the cached Signer of a KMS key, reading its public key
// the first time, and checks it is the key of address.
func (k *keys) kmsSigner(ctx context.Context, keyID string, address common.Address) (*custodykms.Signer, error) {
	k.mu.Lock()
	s := k.kmsSigners[keyID]
	k.mu.Unlock()
	if s == nil {
		var err error
		if s, err = custodykms.NewSigner(ctx, k.kms, keyID); err != nil {
			return nil, err
		}
		k.mu.Lock()
		k.kmsSigners[keyID] = s
		k.mu.Unlock()
	}
	if s.Address() != address {
		return nil, fmt.Errorf("KMS key %s is the key of %s, not of %s", keyID, addr(s.Address()), addr(address))
	}
	return s, nil
}

func (k *keys) signEnvelope(ctx context.Context, row keyRow, address common.Address, tx *types.Transaction, s types.Signer) (*types.Transaction, error) {
	sealed, err := custodykms.UnmarshalSealed(row.Sealed)
	if err != nil {
		return nil, fmt.Errorf("reading the sealed key of %s: %w", row.Address, err)
	}
	plain, err := k.envelope.Open(ctx, sealed, []byte(row.Address))
	if err != nil {
		return nil, fmt.Errorf("opening the key of %s: %w", row.Address, err)
	}
	priv, err := crypto.ToECDSA(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("the sealed key of %s is not a secp256k1 key", row.Address)
	}
	defer zeroKey(priv)
	if crypto.PubkeyToAddress(priv.PublicKey) != address {
		return nil, fmt.Errorf("the sealed key of %s is another address's key", row.Address)
	}
	return types.SignTx(tx, s, priv)
}

// signHD derives child i of the mnemonic, checks it is address and signs.
func (k *keys) signHD(ctx context.Context, chain string, i uint32, address common.Address, tx *types.Transaction, s types.Signer) (*types.Transaction, error) {
	child, err := k.child(ctx, hd.DepositPath(i))
	if err != nil {
		return nil, err
	}
	defer child.Zero()
	got, err := child.Address()
	if err != nil {
		return nil, err
	}
	if got != address {
		return nil, &unknownKey{msg: fmt.Sprintf("wallet %s on %s has hd_index %d, but the signer's child %d is %s: the wallet was derived from another account",
			addr(address), chain, i, i, addr(got))}
	}
	priv, err := child.PrivateKey()
	if err != nil {
		return nil, err
	}
	defer zeroKey(priv)
	return types.SignTx(tx, s, priv)
}

// child opens the mnemonic and derives the key at p. The caller zeroes it.
// (The mnemonic is a Go string for hd.Seed only as long as the call, and
// Go strings cannot be cleared: the sealed bytes are opened per use, never
// kept.)
func (k *keys) child(ctx context.Context, p hd.Path) (*hd.Key, error) {
	sealed, err := custodykms.UnmarshalSealed(k.state.SealedMnemonic)
	if err != nil {
		return nil, fmt.Errorf("reading the sealed mnemonic: %w", err)
	}
	words, err := k.envelope.Open(ctx, sealed, mnemonicAAD)
	if err != nil {
		return nil, fmt.Errorf("opening the mnemonic: %w", err)
	}
	return derive(words, p)
}

// derive derives the key at p from a mnemonic's words and clears them.
func derive(words []byte, p hd.Path) (*hd.Key, error) {
	defer clear(words)
	seed, err := hd.Seed(string(words), "")
	if err != nil {
		return nil, fmt.Errorf("%w: the sealed mnemonic does not validate", ErrState)
	}
	defer clear(seed)
	master, err := hd.NewMasterKey(seed)
	if err != nil {
		return nil, err
	}
	defer master.Zero()
	return master.Derive(p)
}

// zeroKey clears a private key's scalar.
func zeroKey(k *ecdsa.PrivateKey) {
	if k != nil && k.D != nil {
		clear(k.D.Bits())
		k.D.SetInt64(0)
	}
}

// newKey creates a key on backend and stores it.
func (k *keys) newKey(ctx context.Context, backend string) (keyRow, error) {
	switch backend {
	case signerapi.BackendKMS:
		id, err := custodykms.CreateSigningKey(ctx, k.kms, "payflow-signer key")
		if err != nil {
			return keyRow{}, err
		}
		s, err := custodykms.NewSigner(ctx, k.kms, id)
		if err != nil {
			return keyRow{}, err
		}
		row := keyRow{Address: addr(s.Address()), Backend: backend, KMSKeyID: id}
		if _, err := k.store.insertKey(ctx, row); err != nil {
			return keyRow{}, err
		}
		k.mu.Lock()
		k.kmsSigners[id] = s
		k.mu.Unlock()
		return k.stored(ctx, row.Address)
	case signerapi.BackendEnvelope:
		priv, err := crypto.GenerateKey()
		if err != nil {
			return keyRow{}, fmt.Errorf("drawing a key: %w", err)
		}
		defer zeroKey(priv)
		return k.seal(ctx, priv)
	}
	return keyRow{}, fmt.Errorf("%w %q: a new key is %s or %s", ErrBackend, clip(backend), signerapi.BackendKMS, signerapi.BackendEnvelope)
}

// importKey seals a legacy private key (hex) as an envelope key. A key
// imported before keeps its row.
func (k *keys) importKey(ctx context.Context, privateKeyHex string) (keyRow, error) {
	h := strings.TrimPrefix(strings.TrimSpace(privateKeyHex), "0x")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		clear(b)
		return keyRow{}, ErrPrivateKey
	}
	priv, err := crypto.ToECDSA(b)
	clear(b)
	if err != nil {
		return keyRow{}, ErrPrivateKey
	}
	defer zeroKey(priv)
	return k.seal(ctx, priv)
}

// seal stores priv sealed under a new data key, bound to its address.
func (k *keys) seal(ctx context.Context, priv *ecdsa.PrivateKey) (keyRow, error) {
	a := addr(crypto.PubkeyToAddress(priv.PublicKey))
	if row, ok, err := k.store.key(ctx, a); err != nil || ok {
		return row, err
	}
	plain := crypto.FromECDSA(priv)
	sealed, err := k.envelope.Seal(ctx, plain, []byte(a))
	clear(plain)
	if err != nil {
		return keyRow{}, err
	}
	b, err := sealed.MarshalBinary()
	if err != nil {
		return keyRow{}, err
	}
	if _, err := k.store.insertKey(ctx, keyRow{Address: a, Backend: signerapi.BackendEnvelope, Sealed: b}); err != nil {
		return keyRow{}, err
	}
	return k.stored(ctx, a)
}

func (k *keys) stored(ctx context.Context, address string) (keyRow, error) {
	row, ok, err := k.store.key(ctx, address)
	if err == nil && !ok {
		err = fmt.Errorf("the key of %s was stored but does not read back", address)
	}
	return row, err
}

func keyInfo(r keyRow) signerapi.KeyInfo {
	return signerapi.KeyInfo{Address: r.Address, Backend: r.Backend, KMSKeyID: r.KMSKeyID, Created: r.Created}
}

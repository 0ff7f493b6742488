package evm

import (
	"context"
	"crypto/ecdsa"
	"fmt"

	"github.com/ethereum/go-ethereum/crypto"

	"payflow/ledger"
)

// Keys are an EVM chain's legacy wallet keys: secp256k1 keys, named by
// their addresses and kept sealed under the master key in the ledger's
// wallets (ledger.Wallets), until `payflowctl wallet migrate` hands them to
// payflow-signer. Only payflowctl and tests open them: the worker signs
// through payflow-signer and holds no key.
type Keys struct{ Wallets *ledger.Wallets }

// Create generates a new key, stores it sealed and returns the wallet.
func (k Keys) Create(ctx context.Context, chain string, kind ledger.WalletKind, label string) (ledger.Wallet, error) {
	key, err := crypto.GenerateKey()
	if err != nil {
		return ledger.Wallet{}, fmt.Errorf("generating key: %w", err)
	}
	return k.Import(ctx, chain, kind, label, key)
}

// Import stores key sealed. Importing the same address again keeps the
// stored row (and key) and returns it: the operation is idempotent.
func (k Keys) Import(ctx context.Context, chain string, kind ledger.WalletKind, label string, key *ecdsa.PrivateKey) (ledger.Wallet, error) {
	plain := crypto.FromECDSA(key)
	defer clear(plain)
	return k.Wallets.Store(ctx, chain, kind, label, Lower(crypto.PubkeyToAddress(key.PublicKey)), plain)
}

// Key opens a wallet's private key for signing. The caller must not keep it
// beyond the signature, log it or return it.
func (k Keys) Key(ctx context.Context, chain, address string) (*ecdsa.PrivateKey, error) {
	plain, err := k.Wallets.Open(ctx, chain, address)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	key, err := crypto.ToECDSA(plain)
	if err != nil {
		return nil, fmt.Errorf("key of %s is not a valid secp256k1 key", address)
	}
	return key, nil
}

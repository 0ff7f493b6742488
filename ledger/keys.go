package ledger

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySealer encrypts wallet private keys with AES-256-GCM under the master key.
// The wallet address is the additional data, so a ciphertext moved to another
// wallet row does not open. Errors never contain key material.
type KeySealer struct{ aead cipher.AEAD }

// ErrKeyDecrypt means a stored key did not open under the master key: wrong
// master key, corrupted row, or a key copied from another wallet.
var ErrKeyDecrypt = errors.New("wallet key does not decrypt under the master key")

// NewKeySealer takes the 32-byte master key.
func NewKeySealer(masterKey []byte) (*KeySealer, error) {
	if len(masterKey) != 32 {
		return nil, fmt.Errorf("master key must be 32 bytes, got %d", len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return &KeySealer{aead: aead}, nil
}

// Seal returns nonce||ciphertext of plain, bound to address.
func (s *KeySealer) Seal(address string, plain []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("reading nonce: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plain, []byte(address)), nil
}

// Open decrypts a sealed key bound to address. The caller must zero the result
// when done with it.
func (s *KeySealer) Open(address string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrKeyDecrypt
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(address))
	if err != nil {
		return nil, ErrKeyDecrypt
	}
	return plain, nil
}

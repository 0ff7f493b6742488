package kms

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

var (
	// ErrOpen: a sealed value does not open: its ciphertext, its
	// associated data or its encrypted data key is not the one sealed.
	ErrOpen = errors.New("the sealed value does not open")
	// ErrSealedFormat: bytes given to UnmarshalSealed are not a sealed value.
	ErrSealedFormat = errors.New("not a sealed value")
)

// sealedVersion is the first byte of a marshalled Sealed.
const sealedVersion = 1

// Envelope seals key material under a fresh KMS data key per value: the
// KMS generates an AES-256 key, AES-GCM seals the value with it, and only
// the data key as the KMS encrypted it is kept beside the ciphertext.
// Opening asks the KMS to decrypt that data key. Safe for concurrent use.
type Envelope struct {
	api   API
	keyID string
}

// NewEnvelope returns an Envelope whose data keys are generated and
// decrypted under the symmetric KMS key keyID (an id, ARN or alias).
func NewEnvelope(api API, keyID string) *Envelope {
	return &Envelope{api: api, keyID: keyID}
}

// Sealed is one value sealed by an Envelope. It holds no secret: the data
// key in it is encrypted under the KMS key.
type Sealed struct {
	// EncryptedKey is the data key as the KMS encrypted it.
	EncryptedKey []byte
	// Nonce is the AES-GCM nonce.
	Nonce []byte
	// Ciphertext is the sealed value with its AES-GCM tag.
	Ciphertext []byte
}

// Seal encrypts plaintext under a new data key. aad (which may be nil) is
// authenticated, not encrypted: Open needs the same aad, which binds the
// sealed value to what it belongs to (a wallet's address, say).
func (e *Envelope) Seal(ctx context.Context, plaintext, aad []byte) (Sealed, error) {
	out, err := e.api.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:   aws.String(e.keyID),
		KeySpec: kmstypes.DataKeySpecAes256,
	})
	if err != nil {
		return Sealed{}, fmt.Errorf("generating a data key under KMS key %s: %w", e.keyID, err)
	}
	defer clear(out.Plaintext)
	aead, err := newGCM(out.Plaintext)
	if err != nil {
		return Sealed{}, fmt.Errorf("sealing under KMS key %s: %w", e.keyID, err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("drawing a nonce: %w", err)
	}
	return Sealed{EncryptedKey: out.CiphertextBlob, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plaintext, aad)}, nil
}

// Open decrypts a value sealed by Seal with the same aad. It fails with
// ErrOpen when the ciphertext, the nonce or aad differ from those sealed,
// and with the KMS's error when the KMS refuses the data key (another KMS
// key's, or altered). The caller should clear the plaintext once used.
func (e *Envelope) Open(ctx context.Context, s Sealed, aad []byte) ([]byte, error) {
	out, err := e.api.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(e.keyID), CiphertextBlob: s.EncryptedKey})
	if err != nil {
		return nil, fmt.Errorf("decrypting the data key under KMS key %s: %w", e.keyID, err)
	}
	defer clear(out.Plaintext)
	aead, err := newGCM(out.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("opening under KMS key %s: %w", e.keyID, err)
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, ErrOpen
	}
	plaintext, err := aead.Open(nil, s.Nonce, s.Ciphertext, aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plaintext, nil
}

// newGCM is AES-GCM under a 32-byte data key. (The AES key schedule it
// expands stays in memory until collected: the Go runtime offers no way to
// clear it.)
func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("the KMS returned a data key of %d bytes, not 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// MarshalBinary encodes s as one byte string (for one column): a version
// byte, the encrypted key's length (2 bytes, big-endian) and the encrypted
// key, the nonce's length (1 byte) and the nonce, then the ciphertext.
func (s Sealed) MarshalBinary() ([]byte, error) {
	if len(s.EncryptedKey) > 0xffff || len(s.Nonce) > 0xff {
		return nil, ErrSealedFormat
	}
	b := make([]byte, 0, 1+2+len(s.EncryptedKey)+1+len(s.Nonce)+len(s.Ciphertext))
	b = append(b, sealedVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.EncryptedKey)))
	b = append(b, s.EncryptedKey...)
	b = append(b, byte(len(s.Nonce)))
	b = append(b, s.Nonce...)
	return append(b, s.Ciphertext...), nil
}

// UnmarshalSealed decodes what Sealed.MarshalBinary wrote, or fails with
// ErrSealedFormat.
func UnmarshalSealed(b []byte) (Sealed, error) {
	if len(b) < 3 || b[0] != sealedVersion {
		return Sealed{}, ErrSealedFormat
	}
	n := int(binary.BigEndian.Uint16(b[1:3]))
	b = b[3:]
	if len(b) < n+1 {
		return Sealed{}, ErrSealedFormat
	}
	ek, b := b[:n], b[n:]
	n = int(b[0])
	b = b[1:]
	if len(b) < n {
		return Sealed{}, ErrSealedFormat
	}
	nonce, ct := b[:n], b[n:]
	return Sealed{EncryptedKey: bytes.Clone(ek), Nonce: bytes.Clone(nonce), Ciphertext: bytes.Clone(ct)}, nil
}

package kms

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

var (
	// ErrKeySpec: the KMS key is not an ECC_SECG_P256K1 signing key.
	ErrKeySpec = errors.New("the KMS key is not a secp256k1 signing key")
	// ErrDigestLength: the digest to sign is not 32 bytes.
	ErrDigestLength = errors.New("the digest is not 32 bytes")
	// ErrMalformedSignature: the KMS returned a signature that is not a DER
	// ECDSA (r, s) pair in range.
	ErrMalformedSignature = errors.New("the KMS returned a malformed signature")
	// ErrNotRecovered: neither recovery id recovers the key's address from
	// the KMS's signature (the KMS signed with another key, or another
	// digest).
	ErrNotRecovered = errors.New("the KMS signature does not recover to the key's address")
)

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}

	secp256k1N     = crypto.S256().Params().N
	secp256k1HalfN = new(big.Int).Rsh(secp256k1N, 1)
)

// Signer signs Ethereum digests and transactions with one KMS key of spec
// ECC_SECG_P256K1. The private key stays in the KMS; the Signer holds the
// key's id, its public key and its address. Safe for concurrent use.
type Signer struct {
	api   API
	keyID string
	pub   *ecdsa.PublicKey
	addr  common.Address
}

// NewSigner reads the public key of the KMS key keyID (an id, ARN or alias)
// and returns a Signer for it. It fails with ErrKeySpec when the key is
// not a secp256k1 key for signing.
func NewSigner(ctx context.Context, api API, keyID string) (*Signer, error) {
	out, err := api.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, fmt.Errorf("reading the public key of KMS key %s: %w", keyID, err)
	}
	if out.KeySpec != "" && out.KeySpec != kmstypes.KeySpecEccSecgP256k1 {
		return nil, fmt.Errorf("KMS key %s has spec %s: %w", keyID, out.KeySpec, ErrKeySpec)
	}
	if out.KeyUsage != "" && out.KeyUsage != kmstypes.KeyUsageTypeSignVerify {
		return nil, fmt.Errorf("KMS key %s has usage %s: %w", keyID, out.KeyUsage, ErrKeySpec)
	}
	pub, err := parsePublicKey(out.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("parsing the public key of KMS key %s: %w", keyID, err)
	}
	return &Signer{api: api, keyID: keyID, pub: pub, addr: crypto.PubkeyToAddress(*pub)}, nil
}

// parsePublicKey reads a DER SubjectPublicKeyInfo holding an uncompressed
// secp256k1 point. (crypto/x509 knows no secp256k1, hence the hand parse.)
func parsePublicKey(der []byte) (*ecdsa.PublicKey, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &spki)
	if err != nil {
		return nil, fmt.Errorf("decoding the SubjectPublicKeyInfo: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("decoding the SubjectPublicKeyInfo: trailing data")
	}
	if !spki.Algorithm.Algorithm.Equal(oidECPublicKey) {
		return nil, fmt.Errorf("algorithm %v is not an EC public key: %w", spki.Algorithm.Algorithm, ErrKeySpec)
	}
	var curve asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(spki.Algorithm.Parameters.FullBytes, &curve); err != nil || !curve.Equal(oidSecp256k1) {
		return nil, fmt.Errorf("the curve is not secp256k1: %w", ErrKeySpec)
	}
	pub, err := crypto.UnmarshalPubkey(spki.PublicKey.RightAlign())
	if err != nil {
		return nil, fmt.Errorf("decoding the curve point: %w", err)
	}
	return pub, nil
}

// KeyID is the KMS key the Signer signs with, as given to NewSigner.
func (s *Signer) KeyID() string { return s.keyID }

// Address is the Ethereum address of the KMS key.
func (s *Signer) Address() common.Address { return s.addr }

// PublicKey is the KMS key's public key.
func (s *Signer) PublicKey() *ecdsa.PublicKey { return s.pub }

// SignDigest signs a 32-byte digest with the KMS key and returns the
// 65-byte Ethereum signature [R || S || V], V being 0 or 1, with S in the
// lower half of the curve order (as go-ethereum and EIP-2 require). Before
// it returns, the signature is proven: it recovers to the key's address,
// else ErrNotRecovered.
func (s *Signer) SignDigest(ctx context.Context, digest []byte) ([]byte, error) {
	if len(digest) != 32 {
		return nil, fmt.Errorf("signing with KMS key %s: %d bytes: %w", s.keyID, len(digest), ErrDigestLength)
	}
	out, err := s.api.Sign(ctx, &kms.SignInput{
		KeyId:            aws.String(s.keyID),
		Message:          digest,
		MessageType:      kmstypes.MessageTypeDigest,
		SigningAlgorithm: kmstypes.SigningAlgorithmSpecEcdsaSha256,
	})
	if err != nil {
		return nil, fmt.Errorf("signing with KMS key %s: %w", s.keyID, err)
	}
	sig, err := ethereumSignature(out.Signature, digest, s.addr)
	if err != nil {
		return nil, fmt.Errorf("signing with KMS key %s: %w", s.keyID, err)
	}
	return sig, nil
}

// ethereumSignature turns a DER ECDSA signature of digest into the 65-byte
// Ethereum form that recovers to addr: S normalised to the low half, then
// the recovery id found by recovering with each.
func ethereumSignature(der, digest []byte, addr common.Address) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 {
		return nil, ErrMalformedSignature
	}
	if rs.R.Sign() <= 0 || rs.R.Cmp(secp256k1N) >= 0 || rs.S.Sign() <= 0 || rs.S.Cmp(secp256k1N) >= 0 {
		return nil, ErrMalformedSignature
	}
	s := rs.S
	if s.Cmp(secp256k1HalfN) > 0 {
		s = new(big.Int).Sub(secp256k1N, s)
	}
	sig := make([]byte, 65)
	rs.R.FillBytes(sig[0:32])
	s.FillBytes(sig[32:64])
	for v := byte(0); v < 2; v++ {
		sig[64] = v
		pub, err := crypto.SigToPub(digest, sig)
		if err == nil && crypto.PubkeyToAddress(*pub) == addr {
			return sig, nil
		}
	}
	return nil, ErrNotRecovered
}

// SignTx signs tx for signer (types.LatestSignerForChainID, say) with the
// KMS key and returns the signed transaction, whose types.Sender is the
// key's address.
func (s *Signer) SignTx(ctx context.Context, tx *types.Transaction, signer types.Signer) (*types.Transaction, error) {
	h := signer.Hash(tx)
	sig, err := s.SignDigest(ctx, h[:])
	if err != nil {
		return nil, err
	}
	signed, err := tx.WithSignature(signer, sig)
	if err != nil {
		return nil, fmt.Errorf("attaching the KMS signature to transaction %s: %w", h, err)
	}
	return signed, nil
}

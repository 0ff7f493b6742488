package kms_test

import (
	"encoding/asn1"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/stretchr/testify/require"

	custodykms "payflow/custody/kms"
)

func derS(t *testing.T, der []byte) *big.Int {
	t.Helper()
	var rs struct{ R, S *big.Int }
	_, err := asn1.Unmarshal(der, &rs)
	require.NoError(t, err)
	return rs.S
}

// TestEthereumSignatureFromDER converts DER signatures made with a known
// key, with S low and S high (the same signature, S mirrored), and some
// that must be refused.
func TestEthereumSignatureFromDER(t *testing.T) {
	key, err := crypto.HexToECDSA("b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291")
	require.NoError(t, err)
	addr := crypto.PubkeyToAddress(key.PublicKey)
	other, err := crypto.GenerateKey()
	require.NoError(t, err)
	n := crypto.S256().Params().N

	seen := map[byte]bool{}
	for i := 0; i < 16; i++ {
		digest := crypto.Keccak256([]byte{byte(i)})
		want, err := crypto.Sign(digest, key)
		require.NoError(t, err)
		r, s := new(big.Int).SetBytes(want[:32]), new(big.Int).SetBytes(want[32:64])
		low, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		require.NoError(t, err)
		high, err := asn1.Marshal(struct{ R, S *big.Int }{r, new(big.Int).Sub(n, s)})
		require.NoError(t, err)
		for _, der := range [][]byte{low, high} {
			got, err := custodykms.EthereumSignature(der, digest, addr)
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
		seen[want[64]] = true
		_, err = custodykms.EthereumSignature(low, digest, crypto.PubkeyToAddress(other.PublicKey))
		require.ErrorIs(t, err, custodykms.ErrNotRecovered)
	}
	require.Len(t, seen, 2, "both recovery ids")

	digest := crypto.Keccak256([]byte("x"))
	for name, der := range map[string][]byte{
		"not DER":  {0x30, 0x01},
		"r zero":   mustDER(t, big.NewInt(0), big.NewInt(1)),
		"s = n":    mustDER(t, big.NewInt(1), n),
		"trailing": append(mustDER(t, big.NewInt(1), big.NewInt(1)), 0),
	} {
		_, err := custodykms.EthereumSignature(der, digest, addr)
		require.ErrorIs(t, err, custodykms.ErrMalformedSignature, name)
	}
}

func mustDER(t *testing.T, r, s *big.Int) []byte {
	b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	require.NoError(t, err)
	return b
}

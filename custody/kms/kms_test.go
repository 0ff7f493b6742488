package kms_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/stretchr/testify/require"

	custodykms "payflow/custody/kms"
	"payflow/internal/stacktest"
)

// devKMS is a client of the dev stack's local-kms: the endpoint is
// stack.json's kms_endpoint or, with no stack.json or one written before
// local-kms joined the stack, $PAYFLOW_KMS_ENDPOINT (start local-kms with
// `scripts/stack.sh start-kms`, then PAYFLOW_KMS_ENDPOINT=http://127.0.0.1:8390).
func devKMS(t *testing.T) *kms.Client {
	t.Helper()
	var endpoint string
	if _, err := stacktest.Path(); err == nil {
		endpoint = stacktest.Load(t).KMSEndpoint
	}
	if endpoint == "" {
		endpoint = os.Getenv("PAYFLOW_KMS_ENDPOINT")
	}
	if endpoint == "" {
		t.Fatal("no KMS: stack.json has no kms_endpoint and PAYFLOW_KMS_ENDPOINT is unset (make up, or scripts/stack.sh start-kms)")
	}
	c, err := custodykms.NewClient(context.Background(), custodykms.DevConfig(endpoint))
	require.NoError(t, err)
	return c
}

// newKey creates a KMS key for one test and schedules its deletion after it.
func newKey(t *testing.T, c *kms.Client, in *kms.CreateKeyInput) string {
	t.Helper()
	ctx := context.Background()
	in.Description = aws.String("payflow test " + t.Name())
	out, err := c.CreateKey(ctx, in)
	require.NoError(t, err)
	id := aws.ToString(out.KeyMetadata.KeyId)
	t.Cleanup(func() {
		_, _ = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)})
	})
	return id
}

func newSigningKey(t *testing.T, c *kms.Client) string {
	return newKey(t, c, &kms.CreateKeyInput{KeySpec: kmstypes.KeySpecEccSecgP256k1, KeyUsage: kmstypes.KeyUsageTypeSignVerify})
}

func TestSignTxRecoversToTheKeyAddress(t *testing.T) {
	ctx := context.Background()
	c := devKMS(t)
	s, err := custodykms.NewSigner(ctx, c, newSigningKey(t, c))
	require.NoError(t, err)
	require.Equal(t, crypto.PubkeyToAddress(*s.PublicKey()), s.Address())

	to := common.HexToAddress("0x00000000000000000000000000000000000000aa")
	chainID := big.NewInt(1337)
	for _, tx := range []*types.Transaction{
		types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: 7, GasTipCap: big.NewInt(1e9), GasFeeCap: big.NewInt(3e9),
			Gas: 21000, To: &to, Value: big.NewInt(12345)}),
		types.NewTx(&types.LegacyTx{Nonce: 8, GasPrice: big.NewInt(2e9), Gas: 60000, To: &to, Data: []byte{0xa9, 0x05, 0x9c, 0xbb}}),
	} {
		signer := types.LatestSignerForChainID(chainID)
		signed, err := s.SignTx(ctx, tx, signer)
		require.NoError(t, err)
		from, err := types.Sender(signer, signed)
		require.NoError(t, err)
		require.Equal(t, s.Address(), from, "tx type %d", tx.Type())
		require.Equal(t, tx.Nonce(), signed.Nonce())
	}
}

// recordingAPI keeps the DER signatures the KMS returned.
type recordingAPI struct {
	custodykms.API
	der [][]byte
}

func (r *recordingAPI) Sign(ctx context.Context, in *kms.SignInput, optFns ...func(*kms.Options)) (*kms.SignOutput, error) {
	out, err := r.API.Sign(ctx, in, optFns...)
	if err == nil {
		r.der = append(r.der, out.Signature)
	}
	return out, err
}

// TestSignDigestNormalisesSAndFindsBothRecoveryIDs signs until both
// recovery ids and a high S from the KMS have shown (each about half the
// time; 64 signatures miss one with odds 2^-63).
func TestSignDigestNormalisesSAndFindsBothRecoveryIDs(t *testing.T) {
	ctx := context.Background()
	c := devKMS(t)
	api := &recordingAPI{API: c}
	s, err := custodykms.NewSigner(ctx, api, newSigningKey(t, c))
	require.NoError(t, err)
	halfN := new(big.Int).Rsh(crypto.S256().Params().N, 1)

	var vs [2]int
	highS := 0
	for i := 0; i < 64; i++ {
		digest := make([]byte, 32)
		_, _ = rand.Read(digest)
		sig, err := s.SignDigest(ctx, digest)
		require.NoError(t, err)
		require.Len(t, sig, 65)
		require.LessOrEqual(t, new(big.Int).SetBytes(sig[32:64]).Cmp(halfN), 0, "S is not low")
		require.True(t, crypto.VerifySignature(crypto.FromECDSAPub(s.PublicKey()), digest, sig[:64]))
		pub, err := crypto.SigToPub(digest, sig)
		require.NoError(t, err)
		require.Equal(t, s.Address(), crypto.PubkeyToAddress(*pub))
		vs[sig[64]]++
		if derS(t, api.der[len(api.der)-1]).Cmp(halfN) > 0 {
			highS++
		}
	}
	require.Positive(t, vs[0], "recovery id 0 never seen")
	require.Positive(t, vs[1], "recovery id 1 never seen")
	require.Positive(t, highS, "the KMS never returned a high S")
	require.Less(t, highS, 64, "the KMS always returned a high S")
}

func TestSignDigestRefusesAWrongLength(t *testing.T) {
	ctx := context.Background()
	c := devKMS(t)
	s, err := custodykms.NewSigner(ctx, c, newSigningKey(t, c))
	require.NoError(t, err)
	_, err = s.SignDigest(ctx, make([]byte, 31))
	require.ErrorIs(t, err, custodykms.ErrDigestLength)
}

func TestNewSignerRefusesAnotherKeySpec(t *testing.T) {
	ctx := context.Background()
	c := devKMS(t)
	id := newKey(t, c, &kms.CreateKeyInput{KeySpec: kmstypes.KeySpecEccNistP256, KeyUsage: kmstypes.KeyUsageTypeSignVerify})
	_, err := custodykms.NewSigner(ctx, c, id)
	require.ErrorIs(t, err, custodykms.ErrKeySpec)
}

// forgingAPI answers Sign with another key's signature.
type forgingAPI struct {
	custodykms.API
	other *kms.Client
	key   string
}

func (f *forgingAPI) Sign(ctx context.Context, in *kms.SignInput, optFns ...func(*kms.Options)) (*kms.SignOutput, error) {
	in2 := *in
	in2.KeyId = aws.String(f.key)
	return f.other.Sign(ctx, &in2, optFns...)
}

func TestSignDigestRefusesASignatureOfAnotherKey(t *testing.T) {
	ctx := context.Background()
	c := devKMS(t)
	api := &forgingAPI{API: c, other: c, key: newSigningKey(t, c)}
	s, err := custodykms.NewSigner(ctx, api, newSigningKey(t, c))
	require.NoError(t, err)
	digest := crypto.Keccak256([]byte("payflow"))
	_, err = s.SignDigest(ctx, digest)
	require.ErrorIs(t, err, custodykms.ErrNotRecovered)
}

func TestEnvelopeRoundTripAndTampering(t *testing.T) {
	ctx := context.Background()
	c := devKMS(t)
	env := custodykms.NewEnvelope(c, newKey(t, c, &kms.CreateKeyInput{}))
	secret := crypto.Keccak256([]byte("a private key's 32 bytes"))
	aad := []byte("0x00000000000000000000000000000000000000aa")

	sealed, err := env.Seal(ctx, secret, aad)
	require.NoError(t, err)
	require.False(t, bytes.Contains(sealed.Ciphertext, secret))
	got, err := env.Open(ctx, sealed, aad)
	require.NoError(t, err)
	require.Equal(t, secret, got)

	b, err := sealed.MarshalBinary()
	require.NoError(t, err)
	back, err := custodykms.UnmarshalSealed(b)
	require.NoError(t, err)
	require.Equal(t, sealed, back)
	got, err = env.Open(ctx, back, aad)
	require.NoError(t, err)
	require.Equal(t, secret, got)

	again, err := env.Seal(ctx, secret, aad)
	require.NoError(t, err)
	require.NotEqual(t, sealed.EncryptedKey, again.EncryptedKey, "a data key per value")

	t.Run("tampered ciphertext", func(t *testing.T) {
		bad := sealed
		bad.Ciphertext = bytes.Clone(sealed.Ciphertext)
		bad.Ciphertext[0] ^= 1
		_, err := env.Open(ctx, bad, aad)
		require.ErrorIs(t, err, custodykms.ErrOpen)
	})
	t.Run("other associated data", func(t *testing.T) {
		_, err := env.Open(ctx, sealed, []byte("0x00000000000000000000000000000000000000bb"))
		require.ErrorIs(t, err, custodykms.ErrOpen)
	})
	t.Run("another value's data key", func(t *testing.T) {
		bad := sealed
		bad.EncryptedKey = again.EncryptedKey
		_, err := env.Open(ctx, bad, aad)
		require.ErrorIs(t, err, custodykms.ErrOpen)
	})
	t.Run("tampered data key", func(t *testing.T) {
		bad := sealed
		bad.EncryptedKey = bytes.Clone(sealed.EncryptedKey)
		bad.EncryptedKey[len(bad.EncryptedKey)-1] ^= 1
		_, err := env.Open(ctx, bad, aad)
		require.Error(t, err)
	})
	t.Run("another KMS key", func(t *testing.T) {
		other := custodykms.NewEnvelope(c, newKey(t, c, &kms.CreateKeyInput{}))
		_, err := other.Open(ctx, sealed, aad)
		require.Error(t, err)
		require.False(t, errors.Is(err, custodykms.ErrOpen))
	})
	t.Run("errors hold no secret", func(t *testing.T) {
		bad := sealed
		bad.Ciphertext = bytes.Clone(sealed.Ciphertext)
		bad.Ciphertext[1] ^= 1
		_, err := env.Open(ctx, bad, aad)
		require.NotContains(t, err.Error(), common.Bytes2Hex(secret))
	})
}

func TestUnmarshalSealedRefusesGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {1}, {2, 0, 0, 0}, {1, 0, 5, 1, 2}, {1, 0, 1, 9, 12, 1}} {
		_, err := custodykms.UnmarshalSealed(b)
		require.ErrorIs(t, err, custodykms.ErrSealedFormat, "%x", b)
	}
}

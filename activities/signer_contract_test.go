package activities_test

import (
	"context"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/activities"
	"payflow/config"
	custodykms "payflow/custody/kms"
	"payflow/custody/signer"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
)

// TestPayflowSignerSignsWhatTheActivitiesAsk runs the activities against
// payflow-signer itself (its HTTP handler on a Unix socket, reached with the
// worker's client, on the test's database and the dev stack's local-kms),
// with a wallet whose key only the signer holds: a
// payment reserved for its recipient is signed, and so is its replacement
// and a gas top-up; a transfer whose reservation names no recipient is
// refused, and the payment fails with the signer's reason.
func TestPayflowSignerSignsWhatTheActivitiesAsk(t *testing.T) {
	f := newReconFixture(t)
	st := stacktest.Load(t)
	require.NotEmpty(t, st.KMSEndpoint, "stack.json has no kms_endpoint: run `make up`")
	kms, err := custodykms.NewClient(f.ctx, custodykms.DevConfig(st.KMSEndpoint))
	require.NoError(t, err)
	sig, err := signer.New(f.ctx, f.led.DB(), signer.Config{KMS: kms, KMSName: "local-kms",
		Chains: map[string]config.ChainConfig{"ETH": {ChainID: simChainID, MaxFeeGwei: 100, Native: config.NativeCoin{Symbol: "ETH"},
			Tokens: map[string]config.Token{"USDT": {Address: f.acts.Assets.Tokens["USDT"].Address, Decimals: 6}}}}})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = kms.ScheduleKeyDeletion(context.Background(), &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(sig.EnvelopeKeyID()),
			PendingWindowInDays: aws.Int32(7)})
	})
	dir, err := os.MkdirTemp("", "signer")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "s.sock"))
	require.NoError(t, err)
	srv := &http.Server{Handler: sig.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.withSigner(signerapi.NewClient(filepath.Join(dir, "s.sock")))
	key, err := sig.NewKey(f.ctx, signerapi.BackendEnvelope)
	require.NoError(t, err)
	hot := key.Address
	_, err = f.acts.Wallets.Register(f.ctx, "ETH", ledger.KindHot, "signer-held", hot)
	require.NoError(t, err)
	f.fundOnChain(common.HexToAddress(hot))
	f.fund(hot, "USDT", "100")
	f.fund(hot, "ETH", "10")
	const payee, deposit = "0x00000000000000000000000000000000000b0d9e", "0x00000000000000000000000000000000000de901"

	// A payment: reserved for its recipient, signed, then replaced.
	_, err = f.env.ExecuteActivity(f.acts.ReserveFunds, activities.ReserveInput{Key: "withdraw-signer", Chain: "ETH",
		Symbol: "USDT", FromAddress: hot, Amount: protocol.MustAmount("2.5"), ToAddress: payee})
	require.NoError(t, err)
	v, err := f.env.ExecuteActivity(f.acts.SignTransfer, activities.TransferInput{WorkflowID: "withdraw-signer", Step: "transfer",
		Guard: "withdraw-signer", Symbol: "USDT", From: hot, To: payee, Amount: protocol.MustAmount("2.5")})
	require.NoError(t, err, "payflow-signer refused the payment")
	var signed activities.TransferResult
	require.NoError(t, v.Get(&signed))
	require.Equal(t, hot, signed.From)
	v, err = f.env.ExecuteActivity(f.acts.ReplaceTransfer, activities.ReplaceInput{WorkflowID: "withdraw-signer", Step: "transfer",
		Attempt: 1})
	require.NoError(t, err)
	var replaced activities.ReplaceResult
	require.NoError(t, v.Get(&replaced))
	require.Empty(t, replaced.Stuck, "payflow-signer refused the replacement")
	require.Equal(t, 1, replaced.Attempt)

	// A gas top-up from the same wallet: its value reserved for the deposit wallet.
	_, err = f.env.ExecuteActivity(f.acts.SignTopUp, activities.TopUpInput{WorkflowID: "sweep-signer", Step: "gas-topup",
		From: hot, To: deposit, Wei: "1000000000000000"})
	require.NoError(t, err, "payflow-signer refused the top-up")

	// A reservation that names no recipient (made before reservations named
	// one) is not paid out.
	_, err = f.led.Reserve(f.ctx, ledger.ReserveInput{QueueID: "withdraw-unnamed", Chain: "ETH", Address: hot, Symbol: "USDT",
		Amount: decimal.RequireFromString("1"), WorkflowID: "withdraw-unnamed"})
	require.NoError(t, err)
	_, err = f.env.ExecuteActivity(f.acts.SignTransfer, activities.TransferInput{WorkflowID: "withdraw-unnamed", Step: "transfer",
		Guard: "withdraw-unnamed", Symbol: "USDT", From: hot, To: payee, Amount: protocol.MustAmount("1")})
	requireErrType(t, err, activities.ErrTypeSignerRefused, "names no recipient")
}

// fundOnChain sends addr 10 ETH and 100 USDT from the deployer.
func (f *reconFixture) fundOnChain(addr common.Address) {
	f.t.Helper()
	key, err := crypto.HexToECDSA(deployerKeyHex)
	require.NoError(f.t, err)
	deployer := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := f.sim.Client().PendingNonceAt(f.ctx, deployer)
	require.NoError(f.t, err)
	ten := new(big.Int).Mul(big.NewInt(10), new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil))
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(big.NewInt(simChainID)), &types.DynamicFeeTx{
		ChainID: big.NewInt(simChainID), Nonce: nonce, GasTipCap: big.NewInt(1e9), GasFeeCap: big.NewInt(100e9), Gas: 21000,
		To: &addr, Value: ten})
	require.NoError(f.t, err)
	require.NoError(f.t, f.sim.Client().SendTransaction(f.ctx, tx))
	f.mine(tx)
	f.send(addr, 100_000_000)
}

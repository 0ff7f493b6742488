package activities_test

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"payflow/activities"
	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
	"payflow/chain/evm/send"
	"payflow/config"
	"payflow/ledger"
	"payflow/protocol"
)

// TestGasIsHeldBeforeSigningAndChargedFromTheReceipt: a wallet whose ledger
// holds no native coin is refused before anything is signed; a held gas
// budget is charged exactly the receipt's fee once the transfer is decided,
// the rest returned, and a repeat charges nothing more.
func TestGasIsHeldBeforeSigningAndChargedFromTheReceipt(t *testing.T) {
	f := newReconFixture(t)
	f.acts.Assets.Native.Symbol = "ETH"
	f.acts.Assets.MaxFeeGwei = 100
	key, err := crypto.HexToECDSA(deployerKeyHex)
	require.NoError(t, err)
	from := evm.Lower(crypto.PubkeyToAddress(key.PublicKey))

	// Nothing native in the ledger: refused before signing.
	_, err = f.env.ExecuteActivity(f.acts.SignTransfer, activities.TransferInput{WorkflowID: "withdraw-gas-1", Step: "transfer",
		Symbol: "USDT", From: from, To: evm.Lower(f.token), Amount: protocol.MustAmount("1")})
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "err = %v", err)
	require.Equal(t, activities.ErrTypeInsufficientGas, appErr.Type())
	var signed int
	require.NoError(t, f.led.DB().QueryRow("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='withdraw-gas-1'").Scan(&signed))
	require.Zero(t, signed, "signed without gas held")

	// A held budget is charged the receipt's fee.
	_, err = f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: from, Symbol: "ETH", Amount: decimal.RequireFromString("1"),
		TxHash: "0x01", LogIndex: chain.NativeLogIndex})
	require.NoError(t, err)
	gasKey := activities.GasKey("withdraw-gas-2", "transfer")
	_, err = f.led.Reserve(f.ctx, ledger.ReserveInput{QueueID: gasKey, Chain: "ETH", Address: from, Symbol: "ETH",
		Amount: decimal.RequireFromString("0.01"), WorkflowID: "withdraw-gas-2"})
	require.NoError(t, err)
	r := f.send(crypto.PubkeyToAddress(key.PublicKey), 5)
	fee := decimal.NewFromBigInt(new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice), -18)
	require.True(t, fee.IsPositive())
	for i := 0; i < 2; i++ {
		_, err = f.env.ExecuteActivity(f.acts.ChargeGas, activities.ChargeInput{WorkflowID: "withdraw-gas-2", Step: "transfer",
			TxHash: r.TxHash.Hex()})
		require.NoError(t, err)
	}
	b, err := f.led.Balance(f.ctx, "ETH", from, "ETH")
	require.NoError(t, err)
	require.True(t, b.Held.IsZero(), "held %s", b.Held)
	require.Equal(t, decimal.RequireFromString("1").Sub(fee).String(), b.Available.String())

	// No receipt (no attempt mined): the whole budget returns.
	gasKey = activities.GasKey("withdraw-gas-3", "transfer")
	_, err = f.led.Reserve(f.ctx, ledger.ReserveInput{QueueID: gasKey, Chain: "ETH", Address: from, Symbol: "ETH",
		Amount: decimal.RequireFromString("0.01"), WorkflowID: "withdraw-gas-3"})
	require.NoError(t, err)
	_, err = f.env.ExecuteActivity(f.acts.ChargeGas, activities.ChargeInput{WorkflowID: "withdraw-gas-3", Step: "transfer",
		TxHash: "0x" + strings.Repeat("ab", 32)})
	require.NoError(t, err)
	b2, err := f.led.Balance(f.ctx, "ETH", from, "ETH")
	require.NoError(t, err)
	require.Equal(t, b.Available.String(), b2.Available.String())
	require.True(t, b2.Held.IsZero())
}

// TestChargeGasOfAReplacementAboveTheFirstBudget: a transfer replaced at a
// higher fee may cost more gas than its first budget; the replacement held
// the rest first (ReplaceGasKey), so the mined attempt's fee is booked in
// full, from what was held, and the payment can answer. Before, the whole
// fee was charged to the first budget alone, and with the rest of the
// wallet's native coin held elsewhere the charge failed with insufficient
// funds after the chain had paid: the payment never answered.
func TestChargeGasOfAReplacementAboveTheFirstBudget(t *testing.T) {
	f := newReconFixture(t)
	f.acts.Assets.Native.Symbol = "ETH"
	f.acts.Assets.MaxFeeGwei = 100
	key, err := crypto.HexToECDSA(deployerKeyHex)
	require.NoError(t, err)
	from := evm.Lower(crypto.PubkeyToAddress(key.PublicKey))
	_, err = f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: from, Symbol: "ETH", Amount: decimal.RequireFromString("1"),
		TxHash: "0x01", LogIndex: chain.NativeLogIndex})
	require.NoError(t, err)
	wf := "withdraw-gas-replaced"
	for k, amt := range map[string]string{activities.GasKey(wf, "transfer"): "0.000000001",
		activities.ReplaceGasKey(wf, "transfer"): "0.999999999"} {
		_, err = f.led.Reserve(f.ctx, ledger.ReserveInput{QueueID: k, Chain: "ETH", Address: from, Symbol: "ETH",
			Amount: decimal.RequireFromString(amt), WorkflowID: wf})
		require.NoError(t, err)
	}
	r := f.send(crypto.PubkeyToAddress(key.PublicKey), 5)
	fee := decimal.NewFromBigInt(new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice), -18)
	require.True(t, fee.GreaterThan(decimal.RequireFromString("0.000000001")), "fee %s", fee)
	for i := 0; i < 2; i++ {
		_, err = f.env.ExecuteActivity(f.acts.ChargeGas, activities.ChargeInput{WorkflowID: wf, Step: "transfer", TxHash: r.TxHash.Hex()})
		require.NoError(t, err)
	}
	b, err := f.led.Balance(f.ctx, "ETH", from, "ETH")
	require.NoError(t, err)
	require.True(t, b.Held.IsZero(), "held %s", b.Held)
	require.Equal(t, decimal.RequireFromString("1").Sub(fee).String(), b.Available.String())
}

// TestDecidePaymentChargesGasWithItsAnswerOrNotAtAll: a payment's gas is
// charged in the database transaction that records its answer and closes
// its reservation. When the closing fails, the gas stays held and nothing is
// recorded; a later decision books all three. Before, the gas was charged in
// a transaction of its own, first, and stayed charged without an answer.
func TestDecidePaymentChargesGasWithItsAnswerOrNotAtAll(t *testing.T) {
	f := newReconFixture(t)
	f.acts.Assets.Native.Symbol = "ETH"
	q := config.QueueConfig{Queue: "resp", Exchange: "x", Routing: []string{"resp.key"}}
	f.acts.Responses = map[protocol.Flow]config.QueueConfig{protocol.FlowWithdraw: q}
	addr := "0x00000000000000000000000000000000000000b7"
	for sym, amt := range map[string]string{"ETH": "1", "USDT": "10"} {
		_, err := f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: addr, Symbol: sym, Amount: decimal.RequireFromString(amt),
			TxHash: "0x0a" + sym, LogIndex: 3})
		require.NoError(t, err)
	}
	wf := "withdraw-atomic"
	_, err := f.led.Reserve(f.ctx, ledger.ReserveInput{QueueID: activities.GasKey(wf, "transfer"), Chain: "ETH", Address: addr,
		Symbol: "ETH", Amount: decimal.RequireFromString("0.01"), WorkflowID: wf})
	require.NoError(t, err)
	decide := activities.DecideInput{Flow: protocol.FlowWithdraw, Key: wf, AnswerID: wf + "/result",
		Answer: protocol.PaymentResponse{QueueID: "atomic", Status: protocol.StatusFailed, Error: "dropped"},
		Gas:    &activities.ChargeInput{WorkflowID: wf, Step: "transfer"}}

	// The payment's own reservation is missing: the closing fails.
	_, err = f.env.ExecuteActivity(f.acts.DecidePayment, decide)
	require.Error(t, err)
	g, err := f.led.GetReservation(f.ctx, activities.GasKey(wf, "transfer"))
	require.NoError(t, err)
	require.Equal(t, "held", g.State, "gas charged without the payment's answer")
	var answers int
	require.NoError(t, f.led.DB().QueryRow("SELECT COUNT(*) FROM outbox WHERE message_id=?", wf+"/result").Scan(&answers))
	require.Zero(t, answers)

	// With its reservation, all three are booked together.
	_, err = f.led.Reserve(f.ctx, ledger.ReserveInput{QueueID: wf, Chain: "ETH", Address: addr, Symbol: "USDT",
		Amount: decimal.RequireFromString("4"), WorkflowID: wf})
	require.NoError(t, err)
	_, err = f.env.ExecuteActivity(f.acts.DecidePayment, decide)
	require.NoError(t, err)
	g, err = f.led.GetReservation(f.ctx, activities.GasKey(wf, "transfer"))
	require.NoError(t, err)
	require.Equal(t, "released", g.State)
	require.NoError(t, f.led.DB().QueryRow("SELECT COUNT(*) FROM outbox WHERE message_id=?", wf+"/result").Scan(&answers))
	require.Equal(t, 1, answers)
	b, err := f.led.Balance(f.ctx, "ETH", addr, "USDT")
	require.NoError(t, err)
	require.Equal(t, "10", b.Available.String())
}

// TestGasBudgetFollowsTheChainsFee: the gas held for a transfer is its gas
// limit at twice the chain's current fee, not at the configured cap. Before,
// the cap alone was held: on a chain whose real fee is hundreds of times
// below the cap, payments were refused for gas the wallet had.
func TestGasBudgetFollowsTheChainsFee(t *testing.T) {
	f := newReconFixture(t)
	f.acts.Assets.Native.Symbol = "ETH"
	f.acts.Assets.MaxFeeGwei = 100_000 // far above the simulated chain's fee
	key, err := crypto.HexToECDSA(deployerKeyHex)
	require.NoError(t, err)
	from := evm.Lower(crypto.PubkeyToAddress(key.PublicKey))
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: "ETH", ChainID: big.NewInt(simChainID),
		MaxFeeWei: f.acts.Assets.MaxFeeWei()}, f.led.DB(), f.sim.Client(), evmtest.NewLocalSigner(key), nil)
	require.NoError(t, err)
	useFamily(t, f.acts, f.led.DB(), f.sim.Client(), bc)
	for sym, amt := range map[string]string{"USDT": "100", "ETH": "1"} {
		_, err = f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: from, Symbol: sym,
			Amount: decimal.RequireFromString(amt), TxHash: "0x0b" + sym, LogIndex: 1})
		require.NoError(t, err)
	}
	_, err = f.env.ExecuteActivity(f.acts.SignTransfer, activities.TransferInput{WorkflowID: "withdraw-budget", Step: "transfer",
		Symbol: "USDT", From: from, To: "0x00000000000000000000000000000000000b0d9e", Amount: protocol.MustAmount("1")})
	require.NoError(t, err)
	g, err := f.led.GetReservation(f.ctx, activities.GasKey("withdraw-budget", "transfer"))
	require.NoError(t, err)
	stx, err := bc.Store.Stored(f.ctx, "withdraw-budget", "transfer")
	require.NoError(t, err)
	var tx types.Transaction
	require.NoError(t, tx.UnmarshalBinary(stx.Raw))
	atCap := decimal.NewFromBigInt(new(big.Int).Mul(new(big.Int).SetUint64(tx.Gas()), f.acts.Assets.MaxFeeWei()), -18)
	signedMost := decimal.NewFromBigInt(new(big.Int).Mul(new(big.Int).SetUint64(tx.Gas()), tx.GasFeeCap()), -18)
	require.True(t, g.Amount.LessThan(atCap.Div(decimal.NewFromInt(100))), "held %s, the cap's budget is %s", g.Amount, atCap)
	require.True(t, g.Amount.GreaterThanOrEqual(signedMost), "held %s, below the most the signed transfer may cost (%s)",
		g.Amount, signedMost)
}

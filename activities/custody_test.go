package activities_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"payflow/activities"
	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
	"payflow/chain/evm/send"
	"payflow/custody/signerapi"
	"payflow/ledger"
	"payflow/protocol"
)

// signerFunc is a send.TxSigner.
type signerFunc func(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error)

func (f signerFunc) Sign(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error) {
	return f(ctx, req)
}

// withSigner wires f's activities to a broadcaster whose transactions signer
// signs, with the chain's native coin ETH (gas is held) and the deployer,
// funded in the ledger, as the paying wallet (returned).
func (f *reconFixture) withSigner(signer send.TxSigner) (*send.Broadcaster, string) {
	f.t.Helper()
	f.acts.Assets.Native.Symbol = "ETH"
	f.acts.Assets.MaxFeeGwei = 100
	key, err := crypto.HexToECDSA(deployerKeyHex)
	require.NoError(f.t, err)
	from := evm.Lower(crypto.PubkeyToAddress(key.PublicKey))
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: "ETH", ChainID: big.NewInt(simChainID),
		MaxFeeWei: f.acts.Assets.MaxFeeWei()}, f.led.DB(), f.sim.Client(), signer, nil)
	require.NoError(f.t, err)
	f.t.Cleanup(bc.Close)
	useFamily(f.t, f.acts, f.led.DB(), f.sim.Client(), bc)
	return bc, from
}

// fund credits the ledger with amount of symbol on addr, a new deposit
// every call.
func (f *reconFixture) fund(addr, symbol, amount string) {
	f.t.Helper()
	funded++
	_, err := f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: addr, Symbol: symbol,
		Amount: decimal.RequireFromString(amount), TxHash: fmt.Sprintf("0x0f%d", funded), LogIndex: 1})
	require.NoError(f.t, err)
}

// funded numbers fund's deposits.
var funded int

// TestReservationsNameTheirRecipients: every reservation of money that
// leaves a wallet names who it is for (a payment's to_address, a sweep's
// collection wallet, a top-up's deposit wallet), and the signer is asked to
// pay each transfer from its own reservation; the gas budget, which pays
// nobody, names no one.
func TestReservationsNameTheirRecipients(t *testing.T) {
	f := newReconFixture(t)
	key, err := crypto.HexToECDSA(deployerKeyHex)
	require.NoError(t, err)
	local := evmtest.NewLocalSigner(key)
	_, from := f.withSigner(local)
	f.acts.Collection = "0x00000000000000000000000000000000000c011e"
	const (
		payee   = "0x00000000000000000000000000000000000b0d9e"
		deposit = "0x00000000000000000000000000000000000de901"
	)
	for _, w := range []struct{ addr, kind string }{{from, "hot"}, {deposit, "deposit"}} {
		_, err := f.led.DB().Exec("INSERT INTO wallets (chain, address, kind, label, key_holder) VALUES ('ETH', ?, ?, 'custody test', 'signer')",
			w.addr, w.kind)
		require.NoError(t, err)
	}
	f.fund(from, "USDT", "100")
	f.fund(from, "ETH", "10")
	f.fund(deposit, "USDT", "150")
	usdt := f.acts.Assets.Tokens["USDT"]
	usdt.SweepThreshold = "100"
	f.acts.Assets.Tokens["USDT"] = usdt

	// A payment: reserved for its to_address, signed from that reservation.
	pay := activities.ReserveInput{Key: "withdraw-named", Chain: "ETH", Symbol: "USDT", FromAddress: from,
		Amount: protocol.MustAmount("2"), ToAddress: "0x00000000000000000000000000000000000B0D9E"}
	_, err = f.env.ExecuteActivity(f.acts.ReserveFunds, pay)
	require.NoError(t, err)
	requireRecipient(t, f, "withdraw-named", payee)
	_, err = f.env.ExecuteActivity(f.acts.SignTransfer, activities.TransferInput{WorkflowID: "withdraw-named", Step: "transfer",
		Guard: "withdraw-named", Symbol: "USDT", From: from, To: payee, Amount: protocol.MustAmount("2")})
	require.NoError(t, err)
	requireRecipient(t, f, activities.GasKey("withdraw-named", "transfer"), "")
	// The same payment for another recipient is no replay.
	pay.ToAddress = "0x00000000000000000000000000000000000bad01"
	_, err = f.env.ExecuteActivity(f.acts.ReserveFunds, pay)
	requireErrType(t, err, activities.ErrTypeReservationMismatch, "not for 0x00000000000000000000000000000000000bad01")

	// A sweep: reserved for the collection wallet, its plan's or the configured one.
	const planned = "0x00000000000000000000000000000000000c0112"
	_, err = f.env.ExecuteActivity(f.acts.ReserveSweep, activities.SweepReserveInput{Key: "sweep-named/USDT",
		WorkflowID: "sweep-named", Address: deposit, Symbol: "USDT", Collection: planned})
	require.NoError(t, err)
	requireRecipient(t, f, "sweep-named/USDT", planned)
	f.fund(deposit, "USDT", "150") // above the threshold again
	_, err = f.env.ExecuteActivity(f.acts.ReserveSweep, activities.SweepReserveInput{Key: "sweep-named/USDT-2",
		WorkflowID: "sweep-named", Address: deposit, Symbol: "USDT"})
	require.NoError(t, err)
	requireRecipient(t, f, "sweep-named/USDT-2", f.acts.Collection)

	// A gas top-up: its value is reserved for the deposit wallet and signed from that.
	_, err = f.env.ExecuteActivity(f.acts.SignTopUp, activities.TopUpInput{WorkflowID: "sweep-named", Step: "gas-topup",
		From: from, To: deposit, Wei: "1000000000000000", Guard: "sweep-named/USDT"})
	require.NoError(t, err)
	requireRecipient(t, f, activities.TopUpKey("sweep-named", "gas-topup"), deposit)
	requireRecipient(t, f, activities.GasKey("sweep-named", "gas-topup"), "")

	asked := local.Asked()
	require.Len(t, asked, 2)
	require.Equal(t, "withdraw-named", asked[0].Reservation, "the payment is paid from its own reservation")
	require.Equal(t, activities.TopUpKey("sweep-named", "gas-topup"), asked[1].Reservation,
		"the top-up is paid from its value's reservation, not the sweep's it serves")
}

// requireRecipient fails unless the reservation key names recipient.
func requireRecipient(t *testing.T, f *reconFixture, key, recipient string) {
	t.Helper()
	r, err := f.led.GetReservation(f.ctx, key)
	require.NoError(t, err)
	require.Equal(t, recipient, r.Recipient, "recipient of %s", key)
}

// requireErrType fails unless err is a non-retryable application error of
// type errType whose message contains says.
func requireErrType(t *testing.T, err error, errType, says string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "err = %v", err)
	require.True(t, appErr.NonRetryable(), "retried: %v", err)
	require.Equal(t, errType, appErr.Type(), "%v", err)
	require.Contains(t, appErr.Message(), says)
}

// TestSignerRefusalIsTheAnswer: a transfer the signer refuses fails for
// good (ErrTypeSignerRefused), with the signer's reason as the message the
// payment is answered with, and nothing stored; a signer that does not
// answer is retried; a replacement it refuses leaves the transfer waiting
// on its earlier attempts (Stuck), never failed.
func TestSignerRefusalIsTheAnswer(t *testing.T) {
	f := newReconFixture(t)
	key, err := crypto.HexToECDSA(deployerKeyHex)
	require.NoError(t, err)
	reason := "reservation withdraw-refused holds 5 USDT for 0xabc, not 6 USDT for 0xdef"
	var answer error // nil: sign
	local := evmtest.NewLocalSigner(key)
	_, from := f.withSigner(signerFunc(func(ctx context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error) {
		if answer != nil {
			return signerapi.SignResponse{}, answer
		}
		return local.Sign(ctx, req)
	}))
	f.fund(from, "USDT", "100")
	f.fund(from, "ETH", "10")
	sign := func(wf string) error {
		_, err := f.env.ExecuteActivity(f.acts.SignTransfer, activities.TransferInput{WorkflowID: wf, Step: "transfer",
			Symbol: "USDT", From: from, To: "0x00000000000000000000000000000000000b0d9e", Amount: protocol.MustAmount("1")})
		return err
	}
	stored := func(wf string) int {
		var n int
		require.NoError(t, f.led.DB().QueryRow("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", wf).Scan(&n))
		return n
	}

	answer = &signerapi.Error{Code: signerapi.CodeRefused, Message: reason}
	requireErrType(t, sign("withdraw-refused"), activities.ErrTypeSignerRefused, reason)
	require.Zero(t, stored("withdraw-refused"))

	answer = fmt.Errorf("%w: /run/signer.sock: connection refused", signerapi.ErrUnavailable)
	err = sign("withdraw-unavailable")
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.False(t, errors.As(err, &appErr) && appErr.NonRetryable(), "an unavailable signer fails the payment: %v", err)
	require.Zero(t, stored("withdraw-unavailable"))

	// Signed (and never mined); then the signer refuses its replacement.
	answer = nil
	require.NoError(t, sign("withdraw-replace"))
	answer = &signerapi.Error{Code: signerapi.CodeRefused, Message: "reservation withdraw-replace is released"}
	v, err := f.env.ExecuteActivity(f.acts.ReplaceTransfer, activities.ReplaceInput{WorkflowID: "withdraw-replace",
		Step: "transfer", Attempt: 1})
	require.NoError(t, err)
	var res activities.ReplaceResult
	require.NoError(t, v.Get(&res))
	require.Contains(t, res.Stuck, "is released")
	require.False(t, res.Settled)
	require.Equal(t, 1, stored("withdraw-replace"))
}

package activities_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"payflow/activities"
	"payflow/chain/evm"
	"payflow/ledger"
	"payflow/protocol"
)

// TestTokenShortOnChainIsRefusedBeforeSigning: a wallet whose ledger says
// it holds 10 USDT while the chain says 0 (the ledger is above the chain)
// is refused for good with a clear error, before gas is held or anything
// signed. Before, the gas estimate reverted, no sentinel matched, and the
// payment retried for ever with its funds held.
func TestTokenShortOnChainIsRefusedBeforeSigning(t *testing.T) {
	f := newReconFixture(t)
	f.acts.Assets.Native.Symbol = "ETH"
	f.acts.Assets.MaxFeeGwei = 100
	key, err := crypto.GenerateKey()
	require.NoError(t, err)
	from := evm.Lower(crypto.PubkeyToAddress(key.PublicKey))
	for sym, amt := range map[string]string{"USDT": "10", "ETH": "1"} {
		_, err = f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: from, Symbol: sym,
			Amount: decimal.RequireFromString(amt), TxHash: "0x0" + sym, LogIndex: 1})
		require.NoError(t, err)
	}
	_, err = f.env.ExecuteActivity(f.acts.SignTransfer, activities.TransferInput{WorkflowID: "withdraw-short-1", Step: "transfer",
		Symbol: "USDT", From: from, To: evm.Lower(f.token), Amount: protocol.MustAmount("5")})
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "err = %v", err)
	require.True(t, appErr.NonRetryable(), "a refusal that will not go away is retried: %v", err)
	require.Equal(t, activities.ErrTypeInsufficientFunds, appErr.Type())
	require.Contains(t, appErr.Message(), "holds less USDT on chain")
	var signed int
	require.NoError(t, f.led.DB().QueryRow("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='withdraw-short-1'").Scan(&signed))
	require.Zero(t, signed)
	b, err := f.led.Balance(f.ctx, "ETH", from, "ETH")
	require.NoError(t, err)
	require.True(t, b.Held.IsZero(), "gas held for a refused transfer: %s", b.Held)
}

// TestReservationReplayMustMatchTheRequest: a held reservation is handed
// back to a replay only for the same chain, asset and amount. Before, any
// held reservation under the key was returned, and a request rewritten
// under the same workflow id would have been signed against it.
func TestReservationReplayMustMatchTheRequest(t *testing.T) {
	f := newReconFixture(t)
	w, err := f.acts.Wallets.Register(f.ctx, "ETH", ledger.KindHot, "replay-test", "0x00000000000000000000000000000000000a1a01")
	require.NoError(t, err)
	_, err = f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: w.Address, Symbol: "USDT",
		Amount: decimal.RequireFromString("100"), TxHash: "0x0replay", LogIndex: 1})
	require.NoError(t, err)
	in := activities.ReserveInput{Key: "withdraw-replay-1", Chain: "ETH", Symbol: "USDT", FromAddress: w.Address,
		Amount: protocol.MustAmount("3")}
	for i := 0; i < 2; i++ { // the same request twice: one reservation
		_, err = f.env.ExecuteActivity(f.acts.ReserveFunds, in)
		require.NoError(t, err)
	}
	for _, changed := range []func(activities.ReserveInput) activities.ReserveInput{
		func(r activities.ReserveInput) activities.ReserveInput {
			r.Amount = protocol.MustAmount("30")
			return r
		},
		func(r activities.ReserveInput) activities.ReserveInput { r.Symbol = "ETH"; return r },
		func(r activities.ReserveInput) activities.ReserveInput { r.Chain = "BSC"; return r },
	} {
		_, err = f.env.ExecuteActivity(f.acts.ReserveFunds, changed(in))
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr), "a changed request got the held reservation: %v", err)
		if appErr.Type() != activities.ErrTypeUnknownWallet { // BSC has no such wallet: refused before
			require.Equal(t, activities.ErrTypeReservationMismatch, appErr.Type(), "%v", err)
			require.True(t, strings.Contains(appErr.Message(), "withdraw-replay-1"), appErr.Message())
		}
	}
	b, err := f.led.Balance(f.ctx, "ETH", w.Address, "USDT")
	require.NoError(t, err)
	require.Equal(t, "3", b.Held.String())
}

// TestClosedReservationIsNeverReservedAgain: a payment whose reservation was
// released (or settled) gets no new one under its key, whatever the sender
// holds: a second transfer on it could pay twice.
func TestClosedReservationIsNeverReservedAgain(t *testing.T) {
	f := newReconFixture(t)
	w, err := f.acts.Wallets.Register(f.ctx, "ETH", ledger.KindHot, "closed-test", "0x00000000000000000000000000000000000c1c01")
	require.NoError(t, err)
	_, err = f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: w.Address, Symbol: "USDT",
		Amount: decimal.RequireFromString("100"), TxHash: "0x0closed", LogIndex: 1})
	require.NoError(t, err)
	in := activities.ReserveInput{Key: "withdraw-closed-1", Chain: "ETH", Symbol: "USDT", FromAddress: w.Address,
		Amount: protocol.MustAmount("3")}
	_, err = f.env.ExecuteActivity(f.acts.ReserveFunds, in)
	require.NoError(t, err)
	_, err = f.led.Release(f.ctx, in.Key)
	require.NoError(t, err)
	_, err = f.env.ExecuteActivity(f.acts.ReserveFunds, in)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "a released reservation was handed out again: %v", err)
	require.Equal(t, activities.ErrTypeReservationClosed, appErr.Type(), "%v", err)
	b, err := f.led.Balance(f.ctx, "ETH", w.Address, "USDT")
	require.NoError(t, err)
	require.True(t, b.Held.IsZero(), "held after the refusal: %s", b.Held)
}

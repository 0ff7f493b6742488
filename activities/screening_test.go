package activities_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"payflow/activities"
	"payflow/internal/stacktest"
	"payflow/ledger"
	"payflow/protocol"
	"payflow/risk/denylist"
	"payflow/risk/holds"
)

// screened is a fixture whose Activities screen against a deny list file
// listing one random address.
func screened(t *testing.T) (*reconFixture, string, string) {
	f := newReconFixture(t)
	listed := stacktest.RandomAddress()
	path := filepath.Join(t.TempDir(), "deny.txt")
	require.NoError(t, os.WriteFile(path, []byte(listed+" OFAC-SDN 2026-11-30\n"), 0o644))
	screen, err := denylist.Open(path, nil)
	require.NoError(t, err)
	f.acts.Screen, f.acts.Holds = screen, holds.New(f.led.DB())
	return f, listed, path
}

// TestPaymentToAListedRecipientIsRefusedBeforeAnythingIsReserved: the
// answer's words, nothing reserved; a payment already holding its
// reservation (a reset) goes on, to be refused at signing, which signs
// nothing.
func TestPaymentToAListedRecipientIsRefusedBeforeAnythingIsReserved(t *testing.T) {
	f, listed, _ := screened(t)
	w, err := f.acts.Wallets.Register(f.ctx, "ETH", ledger.KindHot, "screen-test", stacktest.RandomAddress())
	require.NoError(t, err)
	_, err = f.led.Credit(f.ctx, ledger.CreditInput{Chain: "ETH", Address: w.Address, Symbol: "USDT",
		Amount: decimal.RequireFromString("100"), TxHash: stacktest.RandomID("0x"), LogIndex: 1})
	require.NoError(t, err)
	in := activities.BeginInput{AnswerID: "withdraw-s1/result", ReserveInput: activities.ReserveInput{Key: "withdraw-s1",
		Chain: "ETH", Symbol: "USDT", FromAddress: w.Address, ToAddress: listed, Amount: protocol.MustAmount("3")}}
	_, err = f.env.ExecuteActivity(f.acts.BeginPayment, in)
	requireErrType(t, err, activities.ErrTypeRecipientBlocked,
		"recipient is blocked: "+listed+" is on the deny list (OFAC-SDN 2026-11-30)")
	_, err = f.led.GetReservation(f.ctx, "withdraw-s1")
	require.ErrorIs(t, err, ledger.ErrReservationNotFound)
	b, err := f.led.Balance(f.ctx, "ETH", w.Address, "USDT")
	require.NoError(t, err)
	require.True(t, b.Held.IsZero())

	// Reserved before the address was listed: BeginPayment replays it ...
	_, err = f.led.Reserve(f.ctx, ledger.ReserveInput{QueueID: "withdraw-s2", Chain: "ETH", Address: w.Address, Symbol: "USDT",
		Amount: decimal.RequireFromString("3"), WorkflowID: "withdraw-s2", Recipient: listed})
	require.NoError(t, err)
	in.Key, in.AnswerID = "withdraw-s2", "withdraw-s2/result"
	_, err = f.env.ExecuteActivity(f.acts.BeginPayment, in)
	require.NoError(t, err)
	// ... and SignTransfer refuses it, signing nothing.
	_, err = f.env.ExecuteActivity(f.acts.SignTransfer, activities.TransferInput{WorkflowID: "withdraw-s2", Step: "transfer",
		Guard: "withdraw-s2", Symbol: "USDT", From: w.Address, To: listed, Amount: protocol.MustAmount("3")})
	requireErrType(t, err, activities.ErrTypeRecipientBlocked, "is on the deny list")
	var signed int
	require.NoError(t, f.led.DB().QueryRow("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='withdraw-s2'").Scan(&signed))
	require.Zero(t, signed)
}

// TestDepositFromAListedSenderIsCreditedHeldAndStaysSo: credited and held
// at once, recorded with its risk; a retry after the sender was delisted
// finds it held all the same; a clean sender's deposit is available.
func TestDepositFromAListedSenderIsCreditedHeldAndStaysSo(t *testing.T) {
	f, listed, path := screened(t)
	wallet := stacktest.RandomAddress()
	tx := stacktest.RandomID("0x")
	in := activities.CreditInput{Chain: "ETH", Address: wallet, Symbol: "USDT", Amount: protocol.MustAmount("40"),
		TxHash: tx, LogIndex: 2, WorkflowID: "deposit-x", From: listed, Screened: true}
	v, err := f.env.ExecuteActivity(f.acts.CreditDeposit, in)
	require.NoError(t, err)
	var res activities.CreditResult
	require.NoError(t, v.Get(&res))
	risk := "sender " + listed + " is on the deny list (OFAC-SDN 2026-11-30)"
	require.Equal(t, risk, res.Risk)
	b, err := f.led.Balance(f.ctx, "ETH", wallet, "USDT")
	require.NoError(t, err)
	require.True(t, b.Available.IsZero(), "available %s", b.Available)
	require.True(t, b.Held.Equal(decimal.RequireFromString("40")), "held %s", b.Held)
	h, err := f.acts.Holds.Get(f.ctx, "ETH", tx, 2)
	require.NoError(t, err)
	require.Equal(t, holds.StateHeld, h.State)
	require.Equal(t, risk, h.Risk)
	require.Equal(t, listed, h.Sender)

	_, err = denylist.Remove(path, listed)
	require.NoError(t, err)
	require.NoError(t, f.acts.Screen.Reload())
	v, err = f.env.ExecuteActivity(f.acts.CreditDeposit, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	require.Equal(t, risk, res.Risk, "a retry keeps the first decision")
	b, _ = f.led.Balance(f.ctx, "ETH", wallet, "USDT")
	require.True(t, b.Held.Equal(decimal.RequireFromString("40")))

	// Not listed (any more): available.
	in.TxHash = stacktest.RandomID("0x")
	v, err = f.env.ExecuteActivity(f.acts.CreditDeposit, in)
	require.NoError(t, err)
	res = activities.CreditResult{}
	require.NoError(t, v.Get(&res))
	require.Empty(t, res.Risk)
	b, _ = f.led.Balance(f.ctx, "ETH", wallet, "USDT")
	require.True(t, b.Available.Equal(decimal.RequireFromString("40")))

	// Announced risky, delisted before the credit: held all the same.
	in.TxHash, in.Risk = stacktest.RandomID("0x"), "sender was listed"
	v, err = f.env.ExecuteActivity(f.acts.CreditDeposit, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	require.Equal(t, "sender was listed", res.Risk)
}

// TestReturnMarksTheHoldAndSettlesIt: BeginReturn takes a held deposit for
// one return workflow; EndReturn settles the hold when paid (the deposit is
// returned), or marks it held again.
func TestReturnMarksTheHoldAndSettlesIt(t *testing.T) {
	f, listed, _ := screened(t)
	wallet := stacktest.RandomAddress()
	tx := stacktest.RandomID("0x")
	_, err := f.env.ExecuteActivity(f.acts.CreditDeposit, activities.CreditInput{Chain: "ETH", Address: wallet, Symbol: "USDT",
		Amount: protocol.MustAmount("5"), TxHash: tx, WorkflowID: "deposit-y", From: listed, Screened: true})
	require.NoError(t, err)
	ref := activities.ReturnInput{Chain: "ETH", TxHash: tx, WorkflowID: "deposit-return-1"}
	v, err := f.env.ExecuteActivity(f.acts.BeginReturn, ref)
	require.NoError(t, err)
	var plan activities.ReturnPlan
	require.NoError(t, v.Get(&plan))
	require.Equal(t, ledger.HoldKey("ETH", tx, 0), plan.Hold)
	require.Equal(t, listed, plan.Sender)
	require.Equal(t, wallet, plan.Address)
	_, err = f.env.ExecuteActivity(f.acts.BeginReturn, ref) // a repeat
	require.NoError(t, err)
	other := ref
	other.WorkflowID = "deposit-return-2"
	_, err = f.env.ExecuteActivity(f.acts.BeginReturn, other)
	requireErrType(t, err, activities.ErrTypeReservationClosed, "cannot be returned")

	// Not paid: held again, its money too.
	_, err = f.env.ExecuteActivity(f.acts.EndReturn, activities.EndReturnInput{ReturnInput: ref})
	require.NoError(t, err)
	h, _ := f.acts.Holds.Get(f.ctx, "ETH", tx, 0)
	require.Equal(t, holds.StateHeld, h.State)

	_, err = f.env.ExecuteActivity(f.acts.BeginReturn, other)
	require.NoError(t, err)
	end := activities.EndReturnInput{ReturnInput: other, Paid: true, ReturnTx: "0x" + stacktest.RandomID("")}
	for i := 0; i < 2; i++ {
		_, err = f.env.ExecuteActivity(f.acts.EndReturn, end)
		require.NoError(t, err)
	}
	h, _ = f.acts.Holds.Get(f.ctx, "ETH", tx, 0)
	require.Equal(t, holds.StateReturned, h.State)
	r, err := f.led.GetReservation(f.ctx, plan.Hold)
	require.NoError(t, err)
	require.Equal(t, "settled", r.State)
	b, _ := f.led.Balance(f.ctx, "ETH", wallet, "USDT")
	require.True(t, b.Total().IsZero(), "the returned deposit left the wallet: %+v", b)
}

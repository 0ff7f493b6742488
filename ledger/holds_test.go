package ledger_test

import (
	"errors"
	"testing"

	"payflow/ledger"
)

const sender = "0x9999999999999999999999999999999999999999"

func TestCreditHeldCreditsAndHoldsInOneGo(t *testing.T) {
	l, db := newLedger(t)
	in := ledger.HeldCredit{CreditInput: ledger.CreditInput{Chain: chainETH, Address: wallet, Symbol: usdt, Amount: d("7.5"),
		TxHash: "0xAA", LogIndex: 3, Reference: "deposit-x"}, Sender: "0x9999999999999999999999999999999999999999"}
	res, err := l.CreditHeld(ctx, in)
	if err != nil || res.Replayed || res.JournalID == 0 {
		t.Fatalf("CreditHeld = %+v, %v", res, err)
	}
	if !res.After.Available.IsZero() || !res.After.Held.Equal(d("7.5")) {
		t.Fatalf("after a held credit: %+v, want all of it held", res.After)
	}
	r, err := l.GetReservation(ctx, ledger.HoldKey(chainETH, "0xaa", 3))
	if err != nil || r.State != "held" || r.Recipient != sender || !r.Amount.Equal(d("7.5")) || r.Address != wallet {
		t.Fatalf("hold = %+v, %v", r, err)
	}
	if !ledger.IsHoldKey(r.QueueID) {
		t.Fatalf("%s is not a hold key", r.QueueID)
	}
	// A replay changes nothing, and a plain Credit of the same deposit neither.
	if res, err := l.CreditHeld(ctx, in); err != nil || !res.Replayed {
		t.Fatalf("replayed CreditHeld = %+v, %v", res, err)
	}
	if res, err := l.Credit(ctx, in.CreditInput); err != nil || !res.Replayed {
		t.Fatalf("Credit after CreditHeld = %+v, %v", res, err)
	}
	b, _ := l.Balance(ctx, chainETH, wallet, usdt)
	if !b.Available.IsZero() || !b.Held.Equal(d("7.5")) {
		t.Fatalf("balance %+v after replays", b)
	}
	assertJournalSumsToBalance(t, db, l, wallet)
	// Nothing can reserve it.
	if _, err := l.Reserve(ctx, ledger.ReserveInput{QueueID: "sweep", Chain: chainETH, Address: wallet, Symbol: usdt,
		Amount: d("1"), WorkflowID: "sweep"}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("reserving held money: %v", err)
	}
	// Released, it is available.
	if _, err := l.Release(ctx, r.QueueID); err != nil {
		t.Fatal(err)
	}
	b, _ = l.Balance(ctx, chainETH, wallet, usdt)
	if !b.Available.Equal(d("7.5")) || !b.Held.IsZero() {
		t.Fatalf("balance %+v after the release", b)
	}
	assertJournalSumsToBalance(t, db, l, wallet)
}

func TestCreditHeldAfterAFreeCreditHoldsNothing(t *testing.T) {
	l, _ := newLedger(t)
	in := ledger.HeldCredit{CreditInput: ledger.CreditInput{Chain: chainETH, Address: wallet, Symbol: usdt, Amount: d("2"),
		TxHash: "0xbb", LogIndex: 0, Reference: "deposit-y"}, Sender: sender}
	if _, err := l.Credit(ctx, in.CreditInput); err != nil {
		t.Fatal(err)
	}
	res, err := l.CreditHeld(ctx, in)
	if err != nil || !res.Replayed {
		t.Fatalf("CreditHeld after Credit = %+v, %v", res, err)
	}
	if _, err := l.GetReservation(ctx, ledger.HoldKey(chainETH, "0xbb", 0)); !errors.Is(err, ledger.ErrReservationNotFound) {
		t.Fatalf("a deposit credited free got a hold: %v", err)
	}
	if _, err := l.CreditHeld(ctx, ledger.HeldCredit{CreditInput: ledger.CreditInput{Chain: chainETH, Address: wallet,
		Symbol: usdt, TxHash: "0xcc"}}); !errors.Is(err, ledger.ErrBadAmount) {
		t.Fatalf("zero amount: %v", err)
	}
}

package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/activity"

	"payflow/ledger"
	"payflow/risk/holds"
)

// Screening against the deny list (Activities.Screen). A payment to a
// listed address is refused before anything is reserved (BeginPayment) and
// again right before it is signed (SignTransfer: the address may have been
// listed while the payment waited for approval), so it is answered status=0
// and its reservation released. A deposit from a listed sender is credited
// held (CreditDeposit): nothing moves it until an operator releases it or
// returns it to the sender — the one payment to a listed address that is
// let through, because it spends that deposit's own hold.

// screenRecipient refuses a transfer to a listed address with
// ErrTypeRecipientBlocked, unless guard is a deposit hold being returned to
// its sender (the hold's recipient).
func (a *Activities) screenRecipient(ctx context.Context, guard, to string) error {
	e, listed := a.Screen.Check(to)
	if !listed {
		return nil
	}
	if guard != "" && ledger.IsHoldKey(guard) {
		r, err := a.Ledger.GetReservation(ctx, guard)
		if err != nil && !errors.Is(err, ledger.ErrReservationNotFound) {
			return err
		}
		if err == nil && strings.EqualFold(r.Recipient, to) {
			return nil // a return of a held deposit to its sender
		}
	}
	return permanent(ErrTypeRecipientBlocked, fmt.Errorf("recipient is blocked: %s is on the deny list (%s)",
		strings.ToLower(strings.TrimSpace(to)), e.Source))
}

// screenBeforeReserving refuses a payment to a listed recipient before
// anything is reserved. A payment that holds its reservation already (a
// reset of one waiting for approval) goes on to SignTransfer, which refuses
// it there, so that its reservation is released.
func (a *Activities) screenBeforeReserving(ctx context.Context, in ReserveInput) error {
	err := a.screenRecipient(ctx, "", in.ToAddress)
	if err == nil {
		return nil
	}
	if _, rerr := a.Ledger.GetReservation(ctx, in.Key); errors.Is(rerr, ledger.ErrReservationNotFound) {
		return err
	} else if rerr != nil {
		return rerr
	}
	return nil
}

// senderRisk is what a deposit's notices say of a listed sender, "" for
// one that is not listed.
func (a *Activities) senderRisk(from string) string {
	e, listed := a.Screen.Check(from)
	if !listed {
		return ""
	}
	return fmt.Sprintf("sender %s is on the deny list (%s)", e.Address, e.Source)
}

// ScreenInput names a deposit's sender.
type ScreenInput struct {
	From string
}

// ScreenResult is what screening says of it.
type ScreenResult struct {
	// Risk is set when the sender is listed: the deposit will be held.
	Risk string `json:",omitempty"`
}

// ScreenSender screens a deposit's sender against the deny list as it is
// now: a Deposit announces what it says with its first notice.
func (a *Activities) ScreenSender(_ context.Context, in ScreenInput) (ScreenResult, error) {
	return ScreenResult{Risk: a.senderRisk(in.From)}, nil
}

// CreditResult says how a deposit was credited.
type CreditResult struct {
	// Risk is set when the deposit was credited held: why.
	Risk string `json:",omitempty"`
}

// creditDeposit credits a confirmed deposit once per (chain, tx_hash,
// log_index): held (ledger.CreditHeld, and recorded in holds) when in.Risk
// says so or its sender is listed now, else available. How it was first
// credited stands: a retry, or a replay after the list changed, finds the
// hold (or its absence) and says so.
func (a *Activities) creditDeposit(ctx context.Context, in CreditInput) (CreditResult, error) {
	credit := ledger.CreditInput{Chain: in.Chain, Address: in.Address, Symbol: in.Symbol, Amount: in.Amount.Decimal,
		TxHash: in.TxHash, LogIndex: in.LogIndex, Reference: in.WorkflowID}
	key := ledger.HoldKey(in.Chain, in.TxHash, in.LogIndex)
	risk := in.Risk
	_, err := a.Ledger.GetReservation(ctx, key)
	switch {
	case err == nil:
		// Credited held before: make sure it is recorded (a crash may have
		// come between the two).
		if h, err := a.Holds.Get(ctx, in.Chain, in.TxHash, in.LogIndex); err == nil {
			return CreditResult{Risk: h.Risk}, nil
		} else if !errors.Is(err, holds.ErrNotFound) {
			return CreditResult{}, err
		}
		if risk == "" {
			if risk = a.senderRisk(in.From); risk == "" {
				risk = fmt.Sprintf("sender %s was on the deny list when the deposit was credited", strings.ToLower(in.From))
			}
		}
		return CreditResult{Risk: risk}, a.recordHold(ctx, in, risk)
	case !errors.Is(err, ledger.ErrReservationNotFound):
		return CreditResult{}, err
	}
	if risk == "" && in.Screened {
		risk = a.senderRisk(in.From)
	}
	if risk == "" {
		_, err := a.Ledger.Credit(ctx, credit)
		return CreditResult{}, classify(err)
	}
	res, err := a.Ledger.CreditHeld(ctx, ledger.HeldCredit{CreditInput: credit, Sender: in.From})
	if err != nil {
		return CreditResult{}, classify(err)
	}
	if res.Replayed {
		// Credited before: held only if it was then.
		if _, err := a.Ledger.GetReservation(ctx, key); errors.Is(err, ledger.ErrReservationNotFound) {
			return CreditResult{}, nil
		} else if err != nil {
			return CreditResult{}, err
		}
	}
	activity.GetLogger(ctx).Warn("deposit from a sender on the deny list credited held", "tx_hash", in.TxHash,
		"log_index", in.LogIndex, "address", in.Address, "from_address", in.From, "symbol", in.Symbol, "risk", risk)
	return CreditResult{Risk: risk}, a.recordHold(ctx, in, risk)
}

func (a *Activities) recordHold(ctx context.Context, in CreditInput, risk string) error {
	if a.Holds == nil {
		return nil
	}
	return a.Holds.Record(ctx, holds.Hold{Chain: in.Chain, TxHash: in.TxHash, LogIndex: in.LogIndex, Address: in.Address,
		Symbol: in.Symbol, Amount: in.Amount.Decimal, Sender: in.From, Risk: risk})
}

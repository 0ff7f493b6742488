package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"payflow/ledger"
	"payflow/protocol"
	"payflow/risk/holds"
)

// A held deposit is returned to its sender by a transfer that spends its
// hold (ledger.HoldKey) as a payment spends its reservation: signed by the
// signer against it, broadcast, confirmed, then the hold is settled. Should
// the chain prove the transfer can never pay, the deposit stays held.

// ReturnInput names the held deposit a return workflow returns.
type ReturnInput struct {
	Chain      string
	TxHash     string
	LogIndex   uint
	WorkflowID string // the return's
}

// ReturnPlan is what the return pays: the hold, from the deposit wallet to
// the sender.
type ReturnPlan struct {
	Hold    string
	Address string
	Sender  string
	Symbol  string
	Amount  protocol.Amount
}

// BeginReturn checks that the deposit is held and marks it returning by
// WorkflowID. A repeat by the same workflow is a no-op. A deposit that is
// not held (released, returned, or being returned by another workflow)
// fails with ErrTypeReservationClosed.
func (a *Activities) BeginReturn(ctx context.Context, in ReturnInput) (ReturnPlan, error) {
	h, err := a.Holds.Get(ctx, in.Chain, in.TxHash, in.LogIndex)
	if errors.Is(err, holds.ErrNotFound) {
		return ReturnPlan{}, permanent(ErrTypeReservationClosed, err)
	}
	if err != nil {
		return ReturnPlan{}, err
	}
	if err := a.requireHeld(ctx, h.Key()); err != nil {
		return ReturnPlan{}, err
	}
	err = a.Holds.Mark(ctx, in.Chain, in.TxHash, in.LogIndex, []string{holds.StateHeld}, holds.StateReturning, in.WorkflowID)
	if errors.Is(err, holds.ErrState) {
		return ReturnPlan{}, permanent(ErrTypeReservationClosed, fmt.Errorf("the deposit cannot be returned: %w", err))
	}
	if err != nil {
		return ReturnPlan{}, err
	}
	return ReturnPlan{Hold: h.Key(), Address: strings.ToLower(h.Address), Sender: strings.ToLower(h.Sender), Symbol: h.Symbol,
		Amount: protocol.NewAmount(h.Amount)}, nil
}

// EndReturnInput records how a return ended.
type EndReturnInput struct {
	ReturnInput
	// Paid: the return confirmed in TxHash; else the chain proved it can
	// never pay (or nothing was signed) and the deposit is held again.
	Paid     bool
	ReturnTx string
	// Gas names the return's transfer, whose gas is charged first.
	Gas *ChargeInput `json:",omitempty"`
}

// EndReturn closes a decided return: paid, the hold is settled with the
// return's transaction and the deposit marked returned, in one database
// transaction with the gas charge; not paid, the gas is charged and the
// deposit marked held again (its hold never left). Repeats change nothing.
func (a *Activities) EndReturn(ctx context.Context, in EndReturnInput) error {
	key := ledger.HoldKey(in.Chain, in.TxHash, in.LogIndex)
	if !in.Paid {
		if err := a.chargeGas(ctx, in.Gas); err != nil {
			return err
		}
		return a.Holds.Mark(ctx, in.Chain, in.TxHash, in.LogIndex, []string{holds.StateReturning}, holds.StateHeld, "")
	}
	var spends []ledger.Spend
	if in.Gas != nil {
		var err error
		if spends, err = a.gasSpends(ctx, *in.Gas); err != nil {
			return err
		}
	}
	_, err := a.Ledger.CloseWith(ctx, key, in.ReturnTx, ledger.OpSettle, spends,
		holds.Move(in.Chain, in.TxHash, in.LogIndex, []string{holds.StateReturning}, holds.StateReturned, "", in.ReturnTx))
	return classify(err)
}

package ledger

import (
	"context"
	"fmt"
	"strings"
)

// A deposit from a sender on the deny list is credited held: in the one
// database transaction of its credit, a reservation of the whole amount is
// placed on it under HoldKey, naming the sender as its recipient. Sweeps and
// payments take available only, so nothing moves it until an operator
// releases the reservation (the money becomes available) or a return spends
// it: a transfer of exactly that amount back to the sender, which the signer
// checks against the reservation as it checks any payment.

// holdPrefix starts the key of every deposit hold.
const holdPrefix = "risk-hold:"

// HoldKey is the reservation key of the hold on a deposit.
func HoldKey(chain, txHash string, logIndex uint) string {
	return fmt.Sprintf("%s%s:%s:%d", holdPrefix, chain, norm(txHash), logIndex)
}

// IsHoldKey says whether a reservation key is a deposit hold's.
func IsHoldKey(key string) bool { return strings.HasPrefix(key, holdPrefix) }

// HeldCredit is a deposit credited held.
type HeldCredit struct {
	CreditInput
	// Sender is the deposit's sender: the hold's recipient, the one address
	// a return may pay it to.
	Sender string
}

// CreditHeld credits a confirmed deposit and holds all of it under
// HoldKey, in one database transaction. A replay of a credit posted before
// (held or not) changes nothing and returns Replayed: whether it is held
// is its reservation's to say (GetReservation of HoldKey).
func (l *Ledger) CreditHeld(ctx context.Context, in HeldCredit) (Result, error) {
	if in.Amount.Sign() <= 0 {
		return Result{}, ErrBadAmount
	}
	in.Address, in.Sender = norm(in.Address), norm(in.Sender)
	k := walletKey{in.Chain, in.Address, in.Symbol}
	key := HoldKey(in.Chain, in.TxHash, in.LogIndex)
	return l.post(ctx, k, &posting{kind: kindCreditHeld, credit: in.CreditInput,
		reserve: ReserveInput{QueueID: key, Chain: in.Chain, Address: in.Address, Symbol: in.Symbol, Amount: in.Amount,
			WorkflowID: in.Reference, Recipient: in.Sender}})
}

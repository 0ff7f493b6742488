package btc

import (
	"context"
	"errors"

	"payflow/chain"
)

// ErrPaymentsNotServed: payflow does not pay on a Bitcoin chain yet
// (payflow-signer signs no Bitcoin transaction yet); intake refuses such
// payments before any workflow asks.
var ErrPaymentsNotServed = errors.New("payments on a bitcoin chain are not served yet")

// Transfers is a Bitcoin chain's chain.Transfers while only deposits are
// served: Track has the Tracker follow a deposit's transaction; signing,
// sending, replacing and inspecting a payment fail with
// ErrPaymentsNotServed.
type Transfers struct {
	tracked *Tracked
}

var _ chain.Transfers = (*Transfers)(nil)

// NewTransfers returns the transfers of the chain whose tracked
// transactions are tracked.
func NewTransfers(tracked *Tracked) *Transfers { return &Transfers{tracked: tracked} }

// Track has the Tracker follow txHash for workflowID: every milestone (a
// deposit), or confirmed only.
func (t *Transfers) Track(ctx context.Context, txHash, workflowID string, everyMilestone bool) error {
	return t.tracked.Track(ctx, txHash, workflowID, everyMilestone)
}

// Sign fails: no payment is served.
func (t *Transfers) Sign(context.Context, chain.Transfer) (chain.Signed, error) {
	return chain.Signed{}, ErrPaymentsNotServed
}

// Stored fails: no payment is served.
func (t *Transfers) Stored(context.Context, string, string) (chain.Signed, error) {
	return chain.Signed{}, ErrPaymentsNotServed
}

// Send fails: no payment is served.
func (t *Transfers) Send(context.Context, chain.Signed) error { return ErrPaymentsNotServed }

// Replace fails: no payment is served.
func (t *Transfers) Replace(context.Context, string, string, int) (chain.Signed, error) {
	return chain.Signed{}, ErrPaymentsNotServed
}

// Inspect fails: no payment is served.
func (t *Transfers) Inspect(context.Context, string, string, uint64) (chain.Inspection, error) {
	return chain.Inspection{}, ErrPaymentsNotServed
}

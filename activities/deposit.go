package activities

import (
	"context"

	"payflow/chain"
	"payflow/protocol"
)

// WatchInput registers a deposit address.
type WatchInput struct {
	Chain   string
	Symbol  string
	Address string
}

// WatchResult says from which block deposits are looked for.
type WatchResult struct {
	FromBlock uint64
	New       bool
}

// RegisterWatch adds the address to the watched set from the current head on.
// Idempotent: a repeat keeps the first registration.
func (a *Activities) RegisterWatch(ctx context.Context, in WatchInput) (WatchResult, error) {
	from, isNew, err := a.Reads.Watch(ctx, in.Symbol, in.Address)
	if err != nil {
		return WatchResult{}, err
	}
	return WatchResult{FromBlock: from, New: isNew}, nil
}

// TrackInput asks the confirmation tracker to follow a transaction for a workflow.
type TrackInput struct {
	TxHash     string
	WorkflowID string
}

// TrackTx registers the transaction with the confirmation tracker, for
// every milestone. Idempotent.
func (a *Activities) TrackTx(ctx context.Context, in TrackInput) error {
	return a.Transfers.Track(ctx, in.TxHash, in.WorkflowID, true)
}

// DepositRef identifies one deposit log.
type DepositRef struct {
	TxHash   string
	LogIndex uint // position within the transaction's receipt
	Token    string
	To       string
	Units    string // base units, decimal string
}

// DepositCheck is what the chain says of a deposit now.
type DepositCheck struct {
	Present bool
	// Reverted: the transaction is mined and failed (no deposit in it).
	Reverted      bool
	BlockNumber   uint64
	BlockHash     string
	BlockLogIndex uint
}

// VerifyDeposit reads the receipt and checks the log at LogIndex is the same
// Transfer (token, recipient, value). Present=false when the transaction is
// not mined (reorganised away) or failed.
func (a *Activities) VerifyDeposit(ctx context.Context, in DepositRef) (DepositCheck, error) {
	chk, _, err := a.depositOnChain(ctx, in)
	return chk, err
}

// depositOnChain is VerifyDeposit; mined says whether the transaction has a
// receipt at all (reverted, or carrying another log, when not Present).
func (a *Activities) depositOnChain(ctx context.Context, in DepositRef) (chk DepositCheck, mined bool, err error) {
	p, err := a.Reads.ProveDeposit(ctx, chain.DepositClaim{TxHash: in.TxHash, Position: in.LogIndex, Token: in.Token,
		To: in.To, Units: in.Units})
	if err != nil {
		return DepositCheck{}, false, err
	}
	return DepositCheck{Present: p.Present, Reverted: p.Reverted, BlockNumber: p.BlockNumber, BlockHash: p.BlockHash,
		BlockLogIndex: p.BlockLogIndex}, p.Mined, nil
}

// CreditInput credits a confirmed deposit.
type CreditInput struct {
	Chain, Address, Symbol string
	Amount                 protocol.Amount
	TxHash                 string
	LogIndex               uint
	WorkflowID             string
	// From is the transfer's sender ("" in runs from before it was
	// passed): screened against the deny list (when Screened), and a cold
	// wallet's side is booked too (bookFromCold).
	From string `json:",omitempty"`
	// Screened: the deposit's notices were screened (runs from before the
	// deny list are not: their sender is not looked up).
	Screened bool `json:",omitempty"`
	// Risk is what the deposit's first notice said (ScreenSender): set, the
	// deposit is held whatever the list says now.
	Risk string `json:",omitempty"`
}

// CreditDeposit credits the ledger once per (chain, tx_hash, log_index). A
// deposit whose sender is on the deny list (or was, when its first notice
// went out: Risk) is credited held, in the same database transaction, and
// recorded in Holds; the result then says why. How a deposit was first
// credited stands on every retry. A transfer from one of the chain's cold
// wallets (an operator's refill of the hot tier) is booked on the cold side
// too (bookFromCold).
func (a *Activities) CreditDeposit(ctx context.Context, in CreditInput) (CreditResult, error) {
	res, err := a.creditDeposit(ctx, in)
	if err != nil {
		return res, err
	}
	return res, a.bookFromCold(ctx, in)
}

package activities

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"payflow/chain"
	"payflow/config"
	"payflow/ledger"
)

// Gas is money too: every transaction a wallet sends costs it native coin,
// and the ledger's native balance must follow the chain's. So each transfer
// holds, before it is signed, the most its gas may cost (its gas limit at the
// chain's fee cap, which no replacement exceeds) as a reservation keyed
// GasKey(workflow, step); the activity that decides the transfer's money
// (DecidePayment, SettleFunds, ReleaseFunds, BookTopUp) first charges it
// (ChargeGas): what the mined attempt's receipt says (gas used × effective
// price) is paid, the rest returned. A wallet whose ledger cannot hold the
// budget gets ErrTypeInsufficientGas before anything is signed.

// GasKey is the reservation key of the gas of one transfer step.
func GasKey(workflowID, step string) string { return "gas:" + workflowID + "/" + step }

// reserveGas holds the gas budget of a transfer of units of asset from from
// to to. A reservation already made for the step is kept as it is (a retry
// may estimate differently). No native coin configured: nothing is held.
func (a *Activities) reserveGas(ctx context.Context, workflowID, step string, asset config.Asset, from, to string,
	units *big.Int) error {
	native := a.Assets.Native.Symbol
	if native == "" {
		return nil
	}
	key := GasKey(workflowID, step)
	// The budget is reserved straight away: a retry's reservation, held
	// before (at whatever fee), is a replay or a mismatch of the same key
	// and stands. Only when the budget cannot be priced is the key read,
	// so a retry whose budget is held goes on as before.
	heldBefore := func() (bool, error) {
		_, err := a.Ledger.GetReservation(ctx, key)
		if errors.Is(err, ledger.ErrReservationNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	gas, err := a.Fees.Gas(ctx, tokenOf(asset), from, to, units)
	if err != nil {
		if held, herr := heldBefore(); herr != nil || held {
			return herr
		}
		return a.refusedBeforeSigning(ctx, workflowID, asset, from, to, err)
	}
	fee, err := a.gasBudgetFee(ctx)
	if err != nil {
		if held, herr := heldBefore(); herr != nil || held {
			return herr
		}
		return classify(err)
	}
	budget := new(big.Int).Mul(new(big.Int).SetUint64(gas), fee)
	_, err = a.Ledger.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: a.Chain, Address: strings.ToLower(from), Symbol: native,
		Amount: chain.FromUnits(budget, a.Assets.NativeScale()), WorkflowID: workflowID})
	if errors.Is(err, ledger.ErrReservationMismatch) {
		return nil // held before, at another fee
	}
	if errors.Is(err, ledger.ErrInsufficientFunds) {
		return permanent(ErrTypeInsufficientGas, fmt.Errorf("%s cannot pay the gas of this transfer: it may cost up to %s %s: %w",
			strings.ToLower(from), chain.FromUnits(budget, a.Assets.NativeScale()), native, chain.ErrInsufficientGas))
	}
	return classify(err)
}

// gasBudgetFee is the fee per gas a first attempt's budget is held at: twice
// what the chain asks now (the max fee a first signature uses, see
// chain.Fees.MaxFee), so a base fee that rises before the signature is
// covered, and never above the chain's cap. Holding the cap itself would
// hold hundreds of times the real fee on a cheap chain and refuse payments
// for gas the wallet has. A replacement, which may cost up to the cap,
// holds the rest first (holdReplacementGas).
func (a *Activities) gasBudgetFee(ctx context.Context) (*big.Int, error) {
	maxFee, err := a.Fees.MaxFee(ctx)
	if err != nil {
		return nil, err
	}
	fee := new(big.Int).Mul(maxFee, big.NewInt(2))
	if limit := a.Assets.FeeCap(); fee.Cmp(limit) > 0 {
		fee = limit
	}
	return fee, nil
}

// ReplaceGasKey is the reservation key of the gas a transfer step's
// replacements may cost beyond its first budget (GasKey).
func ReplaceGasKey(workflowID, step string) string { return GasKey(workflowID, step) + "+replace" }

// holdReplacementGas makes sure that the gas held for a transfer step
// covers any replacement: its gas limit at the chain's fee cap, which no
// attempt exceeds. What the first budget lacks is held under
// ReplaceGasKey, once. ChargeGas then never charges more than is held, so
// a mined transfer's gas can always be booked. A wallet whose ledger cannot
// hold it gets chain.ErrInsufficientGas (the transfer is not replaced; its
// earlier attempts stay in flight).
func (a *Activities) holdReplacementGas(ctx context.Context, workflowID, step string) error {
	native := a.Assets.Native.Symbol
	if native == "" {
		return nil
	}
	first, err := a.Ledger.GetReservation(ctx, GasKey(workflowID, step))
	if errors.Is(err, ledger.ErrReservationNotFound) {
		return nil // signed before gas was accounted: nothing to add to
	} else if err != nil {
		return err
	}
	if _, err := a.Ledger.GetReservation(ctx, ReplaceGasKey(workflowID, step)); err == nil {
		return nil
	} else if !errors.Is(err, ledger.ErrReservationNotFound) {
		return err
	}
	if first.State != "held" {
		return nil // decided already: nothing more will be charged
	}
	stx, err := a.Transfers.Stored(ctx, workflowID, step)
	if err != nil {
		return err
	}
	most := chain.FromUnits(new(big.Int).Mul(new(big.Int).SetUint64(stx.Gas), a.Assets.FeeCap()), a.Assets.NativeScale())
	extra := most.Sub(first.Amount)
	if extra.Sign() <= 0 {
		return nil
	}
	_, err = a.Ledger.Reserve(ctx, ledger.ReserveInput{QueueID: ReplaceGasKey(workflowID, step), Chain: a.Chain,
		Address: first.Address, Symbol: native, Amount: extra, WorkflowID: workflowID})
	if errors.Is(err, ledger.ErrInsufficientFunds) {
		return fmt.Errorf("%s cannot hold the %s %s a replacement may cost in gas: %w", first.Address, extra, native,
			chain.ErrInsufficientGas)
	}
	return err
}

// ChargeInput names a decided transfer: TxHash is the attempt the chain
// mined, or any attempt (or "") when none was mined.
type ChargeInput struct {
	WorkflowID string
	Step       string
	TxHash     string
}

// chargeGas is ChargeGas for an optional input.
func (a *Activities) chargeGas(ctx context.Context, in *ChargeInput) error {
	if in == nil {
		return nil
	}
	return a.ChargeGas(ctx, *in)
}

// ChargeGas closes the gas reservation of a decided transfer: the fee of the
// mined attempt (its receipt's gas used × effective gas price) leaves the
// sender's native balance, the rest of the budget returns. No receipt (no
// attempt mined: dropped, or nothing signed) returns the whole budget. No
// reservation (a transfer signed before gas was accounted) charges nothing.
// Call it only once the chain has decided (confirmed, or proven dropped):
// a repeat charges nothing more.
func (a *Activities) ChargeGas(ctx context.Context, in ChargeInput) error {
	spends, err := a.gasSpends(ctx, in)
	if err != nil {
		return err
	}
	for _, sp := range spends {
		if _, err := a.Ledger.CloseSpent(ctx, sp.QueueID, sp.TxHash, sp.Spent); err != nil {
			return classify(err)
		}
	}
	return nil
}

// gasSpends says how a decided transfer's gas reservations close: the fee
// of the mined attempt (its receipt's gas used × effective gas price; zero
// when no attempt was mined) is charged to the first budget (GasKey) up to
// its amount, the rest to what a replacement held (ReplaceGasKey), which
// covers it (holdReplacementGas). The split depends only on the stored
// amounts and the receipt, so a repeat closes the same way. None: no gas
// was held for the transfer.
func (a *Activities) gasSpends(ctx context.Context, in ChargeInput) ([]ledger.Spend, error) {
	key, replaceKey := GasKey(in.WorkflowID, in.Step), ReplaceGasKey(in.WorkflowID, in.Step)
	held, err := a.Ledger.GetReservations(ctx, key, replaceKey) // one read for both
	if err != nil {
		return nil, err
	}
	first, ok := held[key]
	if !ok {
		return nil, nil
	}
	spent := decimal.Zero
	if in.TxHash != "" {
		fee, mined, err := a.Fees.Paid(ctx, in.TxHash)
		if err != nil {
			return nil, err
		}
		if mined {
			spent = chain.FromUnits(fee, a.Assets.NativeScale())
		}
	}
	if _, ok := held[replaceKey]; !ok {
		return []ledger.Spend{{QueueID: key, TxHash: in.TxHash, Spent: spent}}, nil
	}
	onFirst := decimal.Min(spent, first.Amount)
	return []ledger.Spend{{QueueID: key, TxHash: in.TxHash, Spent: onFirst},
		{QueueID: replaceKey, TxHash: in.TxHash, Spent: spent.Sub(onFirst)}}, nil
}

// checkTokenTransfer checks, before anything is held for gas or signed,
// that the token accepts transfer(to, units) from from, simulated on the
// node's latest state; a refusal because from holds less on chain than the
// ledger says is told apart for the answer.
func (a *Activities) checkTokenTransfer(ctx context.Context, workflowID string, asset config.Asset, from, to string,
	units *big.Int) error {
	token := asset.Address
	err := a.Fees.Simulate(ctx, token, from, to, units)
	if errors.Is(err, chain.ErrWouldRevert) {
		// Refused: say why in the business's terms. A sender short of the
		// token on chain is the usual reason; the balance is read only
		// here, off the common path (a simulated transfer is signed
		// without reading it: chain.Transfer.Simulated).
		if short := a.Balances.RequireToken(ctx, token, from, units); errors.Is(short, chain.ErrInsufficientToken) {
			err = short
		}
	}
	if err != nil {
		return a.refusedBeforeSigning(ctx, workflowID, asset, from, to, err)
	}
	return nil
}

// refusedBeforeSigning turns the chain's refusal of a transfer that was
// only simulated into the payment's answer, in the business's words (the
// node's own text goes to the log); other errors are classified as usual.
func (a *Activities) refusedBeforeSigning(ctx context.Context, workflowID string, asset config.Asset, from, to string,
	err error) error {
	from, to = strings.ToLower(from), strings.ToLower(to)
	shortOnChain := errors.Is(err, chain.ErrWouldRevert) && strings.Contains(strings.ToLower(err.Error()), "insufficient funds")
	switch {
	case errors.Is(err, chain.ErrInsufficientToken), shortOnChain:
		activity.GetLogger(ctx).Warn("the wallet holds less on chain than the ledger says", "workflow_id", workflowID,
			"address", from, "symbol", asset.Symbol, "err", err)
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"insufficient funds: %s holds less %s on chain than this payment needs; nothing was signed",
			from, asset.Symbol), ErrTypeInsufficientFunds, err)
	case errors.Is(err, chain.ErrWouldRevert):
		activity.GetLogger(ctx).Warn("the chain refuses the transfer; answering before signing", "workflow_id", workflowID,
			"address", from, "to_address", to, "symbol", asset.Symbol, "err", err)
		what := fmt.Sprintf("the token %s refuses this transfer to %s", asset.Symbol, to)
		if asset.Native {
			what = fmt.Sprintf("the recipient %s does not accept %s (its code reverts)", to, asset.Symbol)
		}
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("refused by the chain: %s; nothing was signed", what),
			ErrTypeRefusedByChain, err)
	}
	return classify(err)
}

// tokenOf is the contract address of asset for package chain: "" for the
// native coin.
func tokenOf(asset config.Asset) string {
	if asset.Native {
		return ""
	}
	return asset.Address
}

package activities

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/shopspring/decimal"

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
func (a *Activities) reserveGas(ctx context.Context, workflowID, step string, asset config.Asset, from, to common.Address,
	units *big.Int) error {
	native := a.Assets.Native.Symbol
	if native == "" {
		return nil
	}
	key := GasKey(workflowID, step)
	if _, err := a.Ledger.GetReservation(ctx, key); err == nil {
		return nil
	} else if !errors.Is(err, ledger.ErrReservationNotFound) {
		return err
	}
	var gas uint64
	var err error
	if asset.Native {
		gas, err = a.Broadcaster.Fees.NativeGas(ctx, from, to, units)
	} else {
		gas, err = a.Broadcaster.Fees.TransferGas(ctx, common.HexToAddress(asset.Address), from, to, units)
	}
	if err != nil {
		return classify(err)
	}
	budget := new(big.Int).Mul(new(big.Int).SetUint64(gas), a.Assets.MaxFeeWei())
	_, err = a.Ledger.Reserve(ctx, ledger.ReserveInput{QueueID: key, Chain: a.Chain, Address: chain.Lower(from), Symbol: native,
		Amount: chain.FromUnits(budget, config.NativeDecimals), WorkflowID: workflowID})
	if errors.Is(err, ledger.ErrInsufficientFunds) {
		return permanent(ErrTypeInsufficientGas, fmt.Errorf("%s cannot pay the gas of this transfer: it may cost up to %s %s: %w",
			chain.Lower(from), chain.FromUnits(budget, config.NativeDecimals), native, chain.ErrInsufficientGas))
	}
	return classify(err)
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
	key := GasKey(in.WorkflowID, in.Step)
	if _, err := a.Ledger.GetReservation(ctx, key); errors.Is(err, ledger.ErrReservationNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	spent := decimal.Zero
	if in.TxHash != "" {
		r, err := a.Eth.TransactionReceipt(ctx, common.HexToHash(in.TxHash))
		switch {
		case errors.Is(err, ethereum.NotFound) || (err == nil && r == nil):
		case err != nil:
			return fmt.Errorf("reading receipt %s: %w", in.TxHash, err)
		default:
			fee := new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice)
			spent = chain.FromUnits(fee, config.NativeDecimals)
		}
	}
	_, err := a.Ledger.CloseSpent(ctx, key, in.TxHash, spent)
	return classify(err)
}

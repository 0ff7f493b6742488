package chain

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/params"
)

// NativeTransferRequest is one transfer of the chain's native coin (ETH), such
// as a gas top-up of a deposit wallet before it sweeps its tokens.
type NativeTransferRequest struct {
	WorkflowID string
	Step       string // unique within the workflow, e.g. "gas-topup"
	From       common.Address
	To         common.Address
	Wei        *big.Int
}

// SignNative signs a native transfer once and stores it before anything is
// sent, exactly like SignTransfer: called again for the same (WorkflowID,
// Step) it returns the stored transaction with Replayed=true and signs
// nothing. It draws its nonce from From's own lane, so it never waits behind
// (or holds up) another wallet's transfers. A sender that cannot pay Wei plus
// the most the gas may cost fails with ErrInsufficientGas; Wei ≤ 0 fails with
// ErrBadAmount.
func (b *Broadcaster) SignNative(ctx context.Context, req NativeTransferRequest) (SignedTx, error) {
	if stx, err := b.Stored(ctx, req.WorkflowID, req.Step); err == nil {
		stx.Replayed = true
		return stx, nil
	} else if !errors.Is(err, ErrNotSigned) {
		return SignedTx{}, err
	}
	if req.Wei == nil || req.Wei.Sign() <= 0 {
		return SignedTx{}, fmt.Errorf("sending %v wei: %w", req.Wei, ErrBadAmount)
	}
	gas := params.TxGas
	code, err := b.backend.CodeAt(ctx, req.To, nil)
	if err != nil {
		return SignedTx{}, fmt.Errorf("reading code at %s: %w", Lower(req.To), err)
	}
	if len(code) > 0 { // a contract recipient may run code on receipt
		est, err := b.backend.EstimateGas(ctx, ethereum.CallMsg{From: req.From, To: &req.To, Value: req.Wei})
		if err != nil {
			return SignedTx{}, fmt.Errorf("estimating gas of native transfer from %s: %w", Lower(req.From), err)
		}
		gas = est * 12 / 10
	}
	tip, maxFee, err := b.fees(ctx)
	if err != nil {
		return SignedTx{}, err
	}
	need := new(big.Int).Add(req.Wei, new(big.Int).Mul(maxFee, new(big.Int).SetUint64(gas)))
	if err := b.requireNative(ctx, req.From, need, "sending "+req.Wei.String()+" wei with gas"); err != nil {
		return SignedTx{}, err
	}
	key, err := b.keys.Key(ctx, b.cfg.Chain, Lower(req.From))
	if err != nil {
		return SignedTx{}, fmt.Errorf("opening key of %s: %w", Lower(req.From), err)
	}
	defer key.D.SetInt64(0)

	to := req.To
	return b.signAndStore(ctx, TransferRequest{WorkflowID: req.WorkflowID, Step: req.Step, From: req.From, To: req.To},
		key, &types.DynamicFeeTx{ChainID: b.cfg.ChainID, GasTipCap: tip, GasFeeCap: maxFee, Gas: gas, To: &to,
			Value: new(big.Int).Set(req.Wei)})
}

// MaxTransferFee returns the most native coin (wei) a token transfer of units
// from from to to may cost at the current fees: the same estimate, headroom
// and fee cap SignTransfer requires the sender to hold. A sender holding less
// is refused by SignTransfer with ErrInsufficientGas.
func (b *Broadcaster) MaxTransferFee(ctx context.Context, token, from, to common.Address, units *big.Int) (*big.Int, error) {
	data, err := b.erc20.Pack("transfer", to, units)
	if err != nil {
		return nil, fmt.Errorf("packing transfer: %w", err)
	}
	// The same gas limit and fees SignTransfer will use (caches included).
	gas, err := b.transferGas(ctx, TransferRequest{From: from, To: to, Token: token, Units: units}, data)
	if err != nil {
		return nil, err
	}
	_, maxFee, err := b.fees(ctx)
	if err != nil {
		return nil, err
	}
	return new(big.Int).Mul(maxFee, new(big.Int).SetUint64(gas)), nil
}

// NativeBalance returns owner's native balance (wei) at block (nil = latest).
func (b *Broadcaster) NativeBalance(ctx context.Context, owner common.Address, block *big.Int) (*big.Int, error) {
	bal, err := b.backend.BalanceAt(ctx, owner, block)
	if err != nil {
		return nil, fmt.Errorf("reading native balance of %s: %w", Lower(owner), err)
	}
	return bal, nil
}

package send

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/chain"

	"payflow/chain/evm"
)

// FeeConfig configures a FeeOracle.
type FeeConfig struct {
	// MaxFeeWei caps maxFeePerGas. A network fee above it fails with ErrFeeCapExceeded.
	MaxFeeWei *big.Int
	// FeeCacheTTL reuses the base fee and tip suggestion for this long
	// (about one block) instead of two RPCs per signature. Zero: no cache.
	FeeCacheTTL time.Duration
	// GasCacheTTL reuses a token's transfer gas estimate for this long (see
	// TransferGas). Zero: estimate every transfer.
	GasCacheTTL time.Duration
}

// FeeOracle prices transactions: EIP-1559 fees within the configured cap,
// the fees of a replacement, and gas limits. It is safe for concurrent use.
type FeeOracle struct {
	cfg     FeeConfig
	backend evm.Backend

	mu       sync.Mutex
	feesAt   time.Time
	feeBase  *big.Int
	feeTip   *big.Int
	gasByTok map[common.Address]cachedGas
}

type cachedGas struct {
	gas uint64
	at  time.Time
}

// NewFeeOracle wires a FeeOracle. MaxFeeWei is required.
func NewFeeOracle(cfg FeeConfig, backend evm.Backend) (*FeeOracle, error) {
	if cfg.MaxFeeWei == nil || cfg.MaxFeeWei.Sign() <= 0 {
		return nil, errors.New("fee oracle: max fee is required")
	}
	return &FeeOracle{cfg: cfg, backend: backend, gasByTok: map[common.Address]cachedGas{}}, nil
}

// Fees returns the EIP-1559 tip and max fee of a first signature: the node's
// suggested tip and 2×base fee + tip, the max fee held to MaxFeeWei. When
// base fee + tip alone exceed MaxFeeWei it fails with ErrFeeCapExceeded.
func (o *FeeOracle) Fees(ctx context.Context) (tip, maxFee *big.Int, err error) {
	base, tip, err := o.networkFees(ctx)
	if err != nil {
		return nil, nil, err
	}
	maxFee = new(big.Int).Add(new(big.Int).Mul(base, big.NewInt(2)), tip)
	if new(big.Int).Add(base, tip).Cmp(o.cfg.MaxFeeWei) > 0 {
		return nil, nil, fmt.Errorf("base fee %s + tip %s wei > cap %s: %w", base, tip, o.cfg.MaxFeeWei, chain.ErrFeeCapExceeded)
	}
	if maxFee.Cmp(o.cfg.MaxFeeWei) > 0 {
		maxFee = new(big.Int).Set(o.cfg.MaxFeeWei)
	}
	return tip, maxFee, nil
}

// ReplacementFees returns the tip and fee cap of a replacement for prev:
// each at least 12.5% above prev's (geth's pool replaces on 10%), raised to
// what the network asks now (as Fees), the fee cap held to MaxFeeWei. When
// even the minimal bump is above MaxFeeWei it fails with ErrFeeCapExceeded.
// A capped replacement may not be mined while the base fee stays above the
// cap, but it is the most the configuration allows.
func (o *FeeOracle) ReplacementFees(ctx context.Context, prev *types.Transaction) (tip, feeCap *big.Int, err error) {
	minTip, minFee := bumpFee(prev.GasTipCap()), bumpFee(prev.GasFeeCap())
	if minFee.Cmp(o.cfg.MaxFeeWei) > 0 {
		return nil, nil, fmt.Errorf("bumped fee cap %s wei > cap %s: %w", minFee, o.cfg.MaxFeeWei, chain.ErrFeeCapExceeded)
	}
	base, suggested, err := o.networkFees(ctx)
	if err != nil {
		return nil, nil, err
	}
	tip = maxWei(minTip, suggested)
	feeCap = maxWei(minFee, new(big.Int).Add(new(big.Int).Mul(base, big.NewInt(2)), tip))
	if feeCap.Cmp(o.cfg.MaxFeeWei) > 0 {
		feeCap = new(big.Int).Set(o.cfg.MaxFeeWei) // still >= minFee, checked above
	}
	if tip.Cmp(feeCap) > 0 {
		tip = new(big.Int).Set(feeCap) // still >= minTip: a tip never exceeds its fee cap
	}
	return tip, feeCap, nil
}

// TransferGas is the gas limit of a transfer of units of token from from to
// to: the node's estimate with 20% headroom (state may change before
// inclusion). With GasCacheTTL set, the estimate is made once per token for
// that long, and made for the worst case of a standard token — a recipient
// that has never held it, whose balance slot goes from zero to non-zero — so
// it covers every transfer (a transfer it still cannot cover reverts on
// chain, and its payment is released and answered status=0).
func (o *FeeOracle) TransferGas(ctx context.Context, token, from, to common.Address, units *big.Int) (uint64, error) {
	if o.cfg.GasCacheTTL > 0 {
		o.mu.Lock()
		c, ok := o.gasByTok[token]
		o.mu.Unlock()
		if ok && time.Since(c.at) < o.cfg.GasCacheTTL {
			return c.gas, nil
		}
		if _, err := rand.Read(to[:]); err != nil { // a fresh recipient: the worst case
			return 0, err
		}
	}
	data, err := evm.ERC20.Pack("transfer", to, units)
	if err != nil {
		return 0, fmt.Errorf("packing transfer: %w", err)
	}
	est, err := o.backend.EstimateGas(ctx, ethereum.CallMsg{From: from, To: &token, Data: data})
	if err != nil {
		return 0, fmt.Errorf("estimating gas of transfer from %s: %w", evm.Lower(from), refusal(err))
	}
	gas := est * 12 / 10
	if o.cfg.GasCacheTTL > 0 {
		o.mu.Lock()
		o.gasByTok[token] = cachedGas{gas: gas, at: time.Now()}
		o.mu.Unlock()
	}
	return gas, nil
}

// NativeGas is the gas limit of sending wei from from to to: the intrinsic
// 21000 to an account without code; the node's estimate with 20% headroom to
// a contract, which may run code on receipt.
func (o *FeeOracle) NativeGas(ctx context.Context, from, to common.Address, wei *big.Int) (uint64, error) {
	code, err := o.backend.CodeAt(ctx, to, nil)
	if err != nil {
		return 0, fmt.Errorf("reading code at %s: %w", evm.Lower(to), err)
	}
	if len(code) == 0 {
		return params.TxGas, nil
	}
	est, err := o.backend.EstimateGas(ctx, ethereum.CallMsg{From: from, To: &to, Value: wei})
	if err != nil {
		return 0, fmt.Errorf("estimating gas of native transfer from %s to %s: %w", evm.Lower(from), evm.Lower(to), refusal(err))
	}
	return est * 12 / 10, nil
}

// SimulateTransfer runs transfer(to, units) of token from from on the
// node's latest state (eth_call) and fails with ErrWouldRevert when the
// token would refuse it: the call reverts (a recipient the token refuses, a
// sender short of tokens on chain) or returns false. TransferGas may answer
// from its cache, estimated for another recipient; this call is the check of
// this recipient, made before anything is signed. Other errors (the node
// unreachable) are returned wrapped, to be retried.
func (o *FeeOracle) SimulateTransfer(ctx context.Context, token, from, to common.Address, units *big.Int) error {
	data, err := evm.ERC20.Pack("transfer", to, units)
	if err != nil {
		return fmt.Errorf("packing transfer: %w", err)
	}
	out, err := o.backend.CallContract(ctx, ethereum.CallMsg{From: from, To: &token, Data: data}, nil)
	if err != nil {
		return fmt.Errorf("simulating transfer from %s to %s: %w", evm.Lower(from), evm.Lower(to), refusal(err))
	}
	// A token that returns nothing (USDT) succeeded by not reverting; one
	// that returns a bool must return true.
	if len(out) >= 32 && new(big.Int).SetBytes(out[:32]).Sign() == 0 {
		return fmt.Errorf("simulating transfer from %s to %s: the token returned false: %w", evm.Lower(from), evm.Lower(to),
			chain.ErrWouldRevert)
	}
	return nil
}

// refusal marks err with ErrWouldRevert when it is the node's verdict on
// the simulated transaction (the EVM reverted or ran out of every gas a
// block allows, or the sender cannot fund it): that verdict does not change
// by asking again. Anything else (the node unreachable, a timeout) is
// returned as it is, to be retried.
func refusal(err error) error {
	if IsRefusal(err) {
		return fmt.Errorf("%w: %w", chain.ErrWouldRevert, err)
	}
	return err
}

// IsRefusal reports whether err is a node's verdict that a simulated
// transaction fails (see refusal), as opposed to a failure to reach it.
func IsRefusal(err error) bool {
	if err == nil {
		return false
	}
	var rpcErr rpc.Error
	if errors.As(err, &rpcErr) && rpcErr.ErrorCode() == 3 { // geth: execution reverted, with revert data
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, verdict := range []string{"execution reverted", "invalid opcode", "gas required exceeds allowance",
		"insufficient funds for", "stack underflow", "invalid jump destination", "write protection"} {
		if strings.Contains(msg, verdict) {
			return true
		}
	}
	return false
}

// MaxTransferFee returns the most native coin (wei) a token transfer of units
// from from to to may cost at the current fees: the same gas limit (caches
// included), headroom and fee cap Signer.SignTransfer requires the sender to
// hold. A sender holding less is refused by SignTransfer with
// ErrInsufficientGas.
func (o *FeeOracle) MaxTransferFee(ctx context.Context, token, from, to common.Address, units *big.Int) (*big.Int, error) {
	gas, err := o.TransferGas(ctx, token, from, to, units)
	if err != nil {
		return nil, err
	}
	_, maxFee, err := o.Fees(ctx)
	if err != nil {
		return nil, err
	}
	return gasCost(maxFee, gas), nil
}

// networkFees returns the latest block's base fee (zero before London) and
// the node's suggested tip, cached for FeeCacheTTL (about a block).
func (o *FeeOracle) networkFees(ctx context.Context) (base, tip *big.Int, err error) {
	if o.cfg.FeeCacheTTL > 0 {
		o.mu.Lock()
		if o.feeBase != nil && time.Since(o.feesAt) < o.cfg.FeeCacheTTL {
			base, tip = new(big.Int).Set(o.feeBase), new(big.Int).Set(o.feeTip)
		}
		o.mu.Unlock()
		if base != nil {
			return base, tip, nil
		}
	}
	head, err := o.backend.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reading latest header: %w", err)
	}
	tip, err = o.backend.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("suggesting tip: %w", err)
	}
	base = head.BaseFee
	if base == nil {
		base = big.NewInt(0)
	}
	if o.cfg.FeeCacheTTL > 0 {
		o.mu.Lock()
		o.feesAt, o.feeBase, o.feeTip = time.Now(), new(big.Int).Set(base), new(big.Int).Set(tip)
		o.mu.Unlock()
	}
	return base, tip, nil
}

// gasCost is the most gas units at feeCap wei each may cost.
func gasCost(feeCap *big.Int, gas uint64) *big.Int {
	return new(big.Int).Mul(feeCap, new(big.Int).SetUint64(gas))
}

// bumpFee returns x raised by 12.5%, rounded up, and by at least 1 wei: the pool
// wants both fees strictly higher and at least 10% higher.
func bumpFee(x *big.Int) *big.Int {
	step := new(big.Int).Add(x, big.NewInt(7))
	step.Rsh(step, 3)
	if step.Sign() == 0 {
		step.SetInt64(1)
	}
	return step.Add(step, x)
}

func maxWei(a, b *big.Int) *big.Int {
	if a.Cmp(b) >= 0 {
		return new(big.Int).Set(a)
	}
	return new(big.Int).Set(b)
}

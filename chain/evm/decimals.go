package evm

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rpc"
)

// ErrNotAToken marks an address whose decimals() answers nothing a token
// would: no contract there, or one without a decimals() of ERC20's shape.
// It is the configuration that is wrong, not the node.
var ErrNotAToken = errors.New("no ERC20 token at this address")

// TokenDecimals returns the decimals() of the token contract at token, read
// at the latest block. Amounts are converted with the configured decimals; a
// contract that says otherwise makes every amount wrong by a power of ten,
// so the worker checks them before serving a chain.
// A call the node fails is returned as is (try again); an answer that is no
// uint8 is ErrNotAToken.
func TokenDecimals(ctx context.Context, backend bind.ContractCaller, token common.Address) (uint8, error) {
	data, err := ERC20.Pack("decimals")
	if err != nil {
		return 0, err
	}
	out, err := backend.CallContract(ctx, ethereum.CallMsg{To: &token, Data: data}, nil)
	if err != nil && callReverted(err) {
		return 0, fmt.Errorf("decimals() of %s reverted: %w", Lower(token), ErrNotAToken)
	}
	if err != nil {
		return 0, fmt.Errorf("calling decimals() of %s: %w", Lower(token), err)
	}
	if len(out) < 32 {
		return 0, fmt.Errorf("decimals() of %s returned %d bytes: %w", Lower(token), len(out), ErrNotAToken)
	}
	v := new(big.Int).SetBytes(out[:32])
	if !v.IsUint64() || v.Uint64() > 255 {
		return 0, fmt.Errorf("decimals() of %s returned %s, not a uint8: %w", Lower(token), v, ErrNotAToken)
	}
	return uint8(v.Uint64()), nil
}

// callReverted tells whether err is the node's answer that the call reverted
// (JSON-RPC error code 3, or geth's message when the revert carries no data),
// as opposed to the node failing to answer.
func callReverted(err error) bool {
	var rerr rpc.Error
	if errors.As(err, &rerr) && rerr.ErrorCode() == 3 {
		return true
	}
	return strings.Contains(err.Error(), "execution reverted")
}

// Package chain is payflow's side of the Ethereum chain. Sending, one type per
// concern (wired together by NewBroadcaster): FeeOracle (fees and gas),
// Balances, NonceLanes (the NonceAllocator), TxStore (signed_txs), Signer,
// Sender (send, replace, inspect) and Healer (nonce gaps). Receiving: the
// Listener (deposits) and the Tracker (confirmations), fed by new heads over
// WebSocket. It knows nothing of Temporal: whoever owns a transfer is told
// through the Notifier interface.
package chain

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/shopspring/decimal"
)

// Backend is what payflow needs from a node. *ethclient.Client and
// simulated.Backend.Client() both satisfy it.
type Backend interface {
	bind.ContractBackend
	BalanceAt(ctx context.Context, account common.Address, blockNumber *big.Int) (*big.Int, error)
	NonceAt(ctx context.Context, account common.Address, blockNumber *big.Int) (uint64, error)
	TransactionReceipt(ctx context.Context, txHash common.Hash) (*types.Receipt, error)
	BlockNumber(ctx context.Context) (uint64, error)
}

// Sentinel errors. The permanent ones (insufficient funds, fee cap) are
// reported to the requester; the rest are retried. From Replace,
// ErrFeeCapExceeded, ErrInsufficientGas and ErrTooManyAttempts leave the
// earlier attempts in flight: any of them may still be mined. ErrNonceTooLow
// from Send or Replace is no proof of failure by itself (the node's head may
// still be reorganised): Sender.Inspect proves it (TransferDropped).
// ErrAttemptExists is TxStore.Insert's: the signer resolves it by returning
// what the other writer stored.
// A reverted transfer is no error: Inspect and the tracker report it mined
// with Succeeded=false. ErrWouldRevert is the node's simulation refusing a
// transfer before it is signed (the recipient's code reverts, the token
// refuses the transfer, the sender cannot fund it): permanent for that
// request.
var (
	ErrWouldRevert       = errors.New("the chain refuses this transfer: its simulation reverted")
	ErrInsufficientToken = errors.New("insufficient token balance")
	ErrInsufficientGas   = errors.New("insufficient native balance for gas")
	ErrFeeCapExceeded    = errors.New("network fee above the configured cap")
	ErrNonceTooLow       = errors.New("nonce already used on chain by another transaction")
	ErrNotSigned         = errors.New("no signed transaction stored for this step")
	ErrBadAmount         = errors.New("amount is not representable in token units")
	ErrTooManyAttempts   = errors.New("step has reached its maximum number of signed attempts")
	ErrAttemptExists     = errors.New("this attempt of the step is already stored")
)

// ToUnits converts a decimal token amount into integer base units.
func ToUnits(amount decimal.Decimal, decimals int32) (*big.Int, error) {
	u := amount.Shift(decimals)
	if !u.Equal(u.Truncate(0)) || u.Sign() < 0 {
		return nil, fmt.Errorf("%s with %d decimals: %w", amount, decimals, ErrBadAmount)
	}
	return u.BigInt(), nil
}

// FromUnits converts integer base units into a decimal token amount.
func FromUnits(units *big.Int, decimals int32) decimal.Decimal {
	return decimal.NewFromBigInt(units, -decimals)
}

// Lower returns the lowercase hex of an address, payflow's canonical form.
func Lower(a common.Address) string { return strings.ToLower(a.Hex()) }

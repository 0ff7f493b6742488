// Package evm is payflow's implementation of the chain contract (package
// chain) for EVM chains. Sending, one type per concern (wired together by
// NewBroadcaster): FeeOracle (fees and gas), Balances, NonceLanes (the
// NonceAllocator), TxStore (signed_txs), Signer, Sender (send, replace,
// inspect) and Healer (nonce gaps). Receiving: the Listener (deposits) and
// the Tracker (confirmations), fed by new heads over WebSocket. Family (family.go)
// answers the contract's interfaces for activities. It knows nothing of
// Temporal: whoever owns a transfer is told through chain.Notifier.
package evm

import (
	"context"
	"errors"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
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

// ErrAttemptExists is TxStore.Insert's: the signer resolves it by returning
// what the other writer stored.
var ErrAttemptExists = errors.New("this attempt of the step is already stored")

// Lower returns the lowercase hex of an address, payflow's canonical form.
func Lower(a common.Address) string { return strings.ToLower(a.Hex()) }

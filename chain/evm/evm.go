// Package evm holds what payflow's EVM packages share: the node (Backend,
// DialNode), ERC20 calls and balances (Balances, TokenDecimals), reads
// shared by concurrent callers, and the chain's store, the one package that
// writes SQL on the chain's tables: TxStore (signed_txs), Intents
// (sign_intents, the nonces taken before the signer is asked), Lanes (nonces),
// Tracked (tracked_txs), Watch and the cursor (watched_addresses,
// chain_cursor), Stats (what the metrics read of them). Sending is package
// send, watching package watch, and package family answers the chain
// contract (package chain) over them.
package evm

import (
	"context"
	"errors"
	"fmt"
	"github.com/ethereum/go-ethereum"
	"math/big"
	"strings"
	"time"

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

// ErrAttemptExists is TxStore.Insert's and Intents.Insert's: the signer
// resolves it by using what the other writer stored.
var ErrAttemptExists = errors.New("this attempt of the step is already stored")

// Lower returns the lowercase hex of an address, payflow's canonical form.
func Lower(a common.Address) string { return strings.ToLower(a.Hex()) }

// ReceiptOf returns hash's receipt, or nil when the node has none.
func ReceiptOf(ctx context.Context, backend Backend, hash common.Hash) (*types.Receipt, error) {
	r, err := backend.TransactionReceipt(ctx, hash)
	if errors.Is(err, ethereum.NotFound) || (err == nil && r == nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading receipt of %s: %w", hash.Hex(), err)
	}
	return r, nil
}

// Node is a node client as the worker's metrics sampler asks it: its head,
// and when a block was made.
type Node struct{ Backend Backend }

// BlockNumber is the latest block number.
func (n Node) BlockNumber(ctx context.Context) (uint64, error) { return n.Backend.BlockNumber(ctx) }

// BlockTime is when block number was made, by its header.
func (n Node) BlockTime(ctx context.Context, number uint64) (time.Time, error) {
	h, err := n.Backend.HeaderByNumber(ctx, new(big.Int).SetUint64(number))
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(h.Time), 0), nil
}

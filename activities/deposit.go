package activities

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"
	"payflow/ledger"
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
	head, err := a.Eth.BlockNumber(ctx)
	if err != nil {
		return WatchResult{}, fmt.Errorf("reading head: %w", err)
	}
	isNew, err := chain.Watch(ctx, a.DB, in.Chain, in.Symbol, common.HexToAddress(in.Address), head)
	if err != nil {
		return WatchResult{}, err
	}
	var from uint64
	if err := a.DB.QueryRowContext(ctx, "SELECT from_block FROM watched_addresses WHERE chain=? AND address=? AND symbol=?",
		in.Chain, strings.ToLower(in.Address), in.Symbol).Scan(&from); err != nil {
		return WatchResult{}, fmt.Errorf("reading watch of %s: %w", in.Address, err)
	}
	return WatchResult{FromBlock: from, New: isNew}, nil
}

// TrackInput asks the confirmation tracker to follow a transaction for a workflow.
type TrackInput struct {
	TxHash     string
	WorkflowID string
}

// TrackTx registers the transaction with the confirmation tracker. Idempotent.
func (a *Activities) TrackTx(ctx context.Context, in TrackInput) error {
	return chain.TrackTx(ctx, a.DB, a.Chain, common.HexToHash(in.TxHash), in.WorkflowID)
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
	r, err := a.Eth.TransactionReceipt(ctx, common.HexToHash(in.TxHash))
	if errors.Is(err, ethereum.NotFound) || (err == nil && r == nil) {
		return DepositCheck{}, false, nil
	}
	if err != nil {
		return DepositCheck{}, false, fmt.Errorf("reading receipt %s: %w", in.TxHash, err)
	}
	if r.Status != 1 {
		return DepositCheck{Reverted: true}, true, nil
	}
	if in.LogIndex == chain.NativeLogIndex {
		return a.nativeDepositOnChain(ctx, in, r)
	}
	if int(in.LogIndex) >= len(r.Logs) {
		return DepositCheck{}, true, nil
	}
	lg := r.Logs[in.LogIndex]
	if len(lg.Topics) != 3 || lg.Topics[0] != chain.TransferTopic || !strings.EqualFold(lg.Address.Hex(), in.Token) ||
		!strings.EqualFold(common.BytesToAddress(lg.Topics[2].Bytes()).Hex(), in.To) || len(lg.Data) < 32 {
		return DepositCheck{}, true, nil
	}
	if new(big.Int).SetBytes(lg.Data[:32]).String() != in.Units {
		return DepositCheck{}, true, nil
	}
	return DepositCheck{Present: true, BlockNumber: r.BlockNumber.Uint64(), BlockHash: r.BlockHash.Hex(),
		BlockLogIndex: lg.Index}, true, nil
}

// nativeDepositOnChain checks that the successful transaction of receipt r
// pays in.Units of the native coin to in.To (a native deposit has no log).
func (a *Activities) nativeDepositOnChain(ctx context.Context, in DepositRef, r *types.Receipt) (DepositCheck, bool, error) {
	tb, ok := a.Eth.(interface {
		TransactionByHash(ctx context.Context, hash common.Hash) (*types.Transaction, bool, error)
	})
	if !ok {
		return DepositCheck{}, false, errors.New("the node client cannot look transactions up by hash")
	}
	tx, _, err := tb.TransactionByHash(ctx, common.HexToHash(in.TxHash))
	if errors.Is(err, ethereum.NotFound) {
		return DepositCheck{}, false, nil
	}
	if err != nil {
		return DepositCheck{}, false, fmt.Errorf("reading transaction %s: %w", in.TxHash, err)
	}
	if tx.To() == nil || !strings.EqualFold(tx.To().Hex(), in.To) || tx.Value().String() != in.Units {
		return DepositCheck{}, true, nil
	}
	return DepositCheck{Present: true, BlockNumber: r.BlockNumber.Uint64(), BlockHash: r.BlockHash.Hex(),
		BlockLogIndex: chain.NativeLogIndex}, true, nil
}

// CreditInput credits a confirmed deposit.
type CreditInput struct {
	Chain, Address, Symbol string
	Amount                 protocol.Amount
	TxHash                 string
	LogIndex               uint
	WorkflowID             string
}

// CreditDeposit credits the ledger once per (chain, tx_hash, log_index).
func (a *Activities) CreditDeposit(ctx context.Context, in CreditInput) error {
	_, err := a.Ledger.Credit(ctx, ledger.CreditInput{Chain: in.Chain, Address: in.Address, Symbol: in.Symbol,
		Amount: in.Amount.Decimal, TxHash: in.TxHash, LogIndex: in.LogIndex, Reference: in.WorkflowID})
	return classify(err)
}

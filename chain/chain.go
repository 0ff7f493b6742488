// Package chain is the contract between payflow's workflows and activities
// and a chain family: what they say about transfers, milestones, proofs,
// balances and fees, in family-neutral terms. Addresses and hashes are
// strings in the family's canonical form (for EVM chains, lowercase 0x hex
// for addresses), amounts are *big.Int base units or decimals. A family
// implements the small interfaces below (payflow/chain/evm for EVM chains);
// workers wire it into the activities. Nothing here knows a family's types.
package chain

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/shopspring/decimal"
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

// Sentinel errors, in two blocks so that each group's rules stand beside it.
//
// Errors of the request, reported to the requester: what it asks cannot be
// done as asked. ErrWouldRevert is the node's simulation refusing a transfer
// before it is signed (the recipient's code reverts, the token refuses the
// transfer, the sender cannot fund it): permanent for that request. A
// reverted transfer is no error: Inspect and the tracker report it mined with
// Succeeded=false.
var (
	ErrWouldRevert       = errors.New("the chain refuses this transfer: its simulation reverted")
	ErrInsufficientToken = errors.New("insufficient token balance")
	ErrInsufficientGas   = errors.New("insufficient native balance for gas")
	ErrBadAmount         = errors.New("amount is not representable in token units")
)

// Errors of signing and sending a step's attempts. The permanent ones (such
// as the fee cap) are reported to the requester; the rest are retried. From
// Replace, ErrFeeCapExceeded, ErrInsufficientGas and
// ErrTooManyAttempts leave the earlier attempts in flight: any of them may
// still be mined. ErrNonceTooLow from Send or Replace is no proof of failure
// by itself (the node's head may still be reorganised): Sender.Inspect proves
// it (TransferDropped). ErrNotSigned: no attempt of the step is stored.
var (
	ErrFeeCapExceeded  = errors.New("network fee above the configured cap")
	ErrNonceTooLow     = errors.New("nonce already used on chain by another transaction")
	ErrTooManyAttempts = errors.New("step has reached its maximum number of signed attempts")
	ErrNotSigned       = errors.New("no signed transaction stored for this step")
	// ErrSignerRefused: the process that holds the keys will not sign this
	// transaction (it does not match its reservation, no key is held for
	// the sender, ...); its reason follows in the error. Permanent for the
	// attempt: no transaction was stored; the nonce the step took is used
	// by a gap filler instead.
	ErrSignerRefused = errors.New("the signer refused to sign")
)

// TxEvent tells a transaction's owner about a milestone.
type TxEvent struct {
	TxHash      string    `json:"tx_hash"`
	Milestone   Milestone `json:"milestone"`
	BlockNumber uint64    `json:"block_number"`
	BlockHash   string    `json:"block_hash"`
	// Succeeded is the receipt status (true = 1). A reverted transfer is
	// confirmed with Succeeded=false.
	Succeeded bool `json:"succeeded"`
}

// Milestone is a step in a transaction's life the owner is told about, once.
type Milestone string

// Milestones of a tracked transaction.
const (
	// MilestoneSeen: included in a block, counting confirmations.
	MilestoneSeen Milestone = "seen"
	// MilestoneConfirmed: Confirmations blocks deep on the canonical chain.
	MilestoneConfirmed Milestone = "confirmed"
	// MilestoneReorged: the block it was in left the canonical chain; waiting again.
	MilestoneReorged Milestone = "reorged"
	// MilestoneDropped: never to be mined: its sender's nonce is consumed, at
	// confirmed depth, by another transaction. Always told, like confirmed.
	MilestoneDropped Milestone = "dropped"
)

// Notifier delivers milestones to a transaction's owner (in payflow a
// Temporal signal to the workflow). Delivery is at least once: owners ignore
// repeats. ErrOwnerGone means the owner no longer exists; tracking stops.
type Notifier interface {
	NotifyTx(ctx context.Context, workflowID string, ev TxEvent) error
}

// ErrOwnerGone is returned by a Notifier whose owner has finished.
var ErrOwnerGone = errors.New("owner of the tracked transaction is gone")

// OwnerChecker tells whether the workflow that owns a signed transaction
// still runs. In payflow it asks Temporal; a workflow that does not exist is
// not running.
type OwnerChecker interface {
	OwnerRunning(ctx context.Context, workflowID string) (bool, error)
}

// TransferState is what the chain proves about all attempts of one step.
type TransferState string

// States of a step's transfer, as Inspect reports them.
const (
	// TransferPending: nothing proven yet. No attempt has a receipt and the
	// sender's nonce is not consumed at confirmed depth: an attempt may still
	// be mined (or is in a pool, or was dropped by a node and can be re-sent).
	TransferPending TransferState = "pending"
	// TransferMined: one attempt has a receipt (see Inspection). It may not
	// be confirmations deep yet; Inspection.BlockNumber says where it is.
	TransferMined TransferState = "mined"
	// TransferDropped: proven that no attempt can ever be mined. The sender's
	// nonce is consumed at confirmed depth and none of the step's attempts
	// has a receipt: another transaction took the nonce.
	TransferDropped TransferState = "dropped"
)

// NativeLogIndex is the LogIndex of every native deposit. A native deposit
// has no log: it is keyed (tx_hash, NativeLogIndex), a value no log index can
// reach (INT UNSIGNED max, the deposits.log_index column's), so a transaction
// that both pays native coin and emits token Transfer logs to watched
// addresses gives distinct deposits.
const NativeLogIndex uint = 4294967295

// NodeRefusal is a node's answer refusing a transaction it was sent (its
// nonce is used, its fee is too low, …), as opposed to a failure to reach
// the node. The transaction was signed and may have reached other nodes
// before, so a refusal is no proof the transfer failed.
type NodeRefusal struct {
	Err error // the node's answer
}

func (e *NodeRefusal) Error() string { return e.Err.Error() }

// Unwrap returns the node's answer.
func (e *NodeRefusal) Unwrap() error { return e.Err }

// Transfer is a transfer to sign: Units of Token (its contract address; ""
// is the chain's native coin) from From to To, as step Step of workflow
// WorkflowID. Reservation is the held ledger reservation whose money it
// moves: the signer signs only a transfer of exactly that money to that
// reservation's recipient.
//
// FeeFromAmount makes it a transfer whose fee is paid out of Units: From
// spends exactly Units of the native coin, To receives Units less the fee
// of the attempt mined, and nothing comes back (no change). A sweep moves
// a wallet's whole balance so on a family whose transactions spend coins
// (Bitcoin); a family that pays fees apart (EVM gas) refuses it with
// ErrBadAmount.
type Transfer struct {
	WorkflowID, Step string
	From, To         string
	Token            string
	Units            *big.Int
	Reservation      string
	FeeFromAmount    bool
	// Simulated: the caller ran this very transfer on the node's latest
	// state just before (Fees.Simulate) and the token took it, which a
	// sender short of the token cannot pass: the family does not read the
	// sender's token balance again before signing.
	Simulated bool
}

// Signed is one signed attempt of a step, as stored before anything is
// sent.
type Signed struct {
	WorkflowID, Step string
	Attempt          int // the original is 0
	TxHash           string
	From             string
	Nonce            uint64
	// State is "signed" until a node has accepted it, then "sent".
	State string
	// Mined is set by Replace when an earlier attempt is the one mined:
	// nothing new was signed.
	Mined bool
	// Gas is the attempt's gas limit.
	Gas uint64
	// Raw is the signed transaction as the family stores and sends it.
	Raw []byte
}

// Inspection is what the chain proves about all attempts of one step.
type Inspection struct {
	State TransferState
	// TxHash is the mined attempt when State is TransferMined, else the
	// latest attempt.
	TxHash      string
	BlockNumber uint64 // TransferMined only
	// Succeeded (TransferMined only): the receipt says the transfer had its
	// intended effect (for a token, Transfer logs moving units from the
	// sender to the recipient: all of them, or fewer when the token takes a
	// fee, see Received).
	Succeeded bool
	// Reason says in business words why the transfer failed, for
	// TransferDropped or a TransferMined that did not succeed.
	Reason string
	// Token, Units and Received describe a succeeded token transfer: the
	// token contract, the units signed for and the units that reached the
	// recipient. Token is "" and Units/Received nil for a native transfer,
	// except one whose fee was paid from its amount (FeeFromAmount): Units
	// is what it spent, Received what reached the recipient, at Position
	// (its output index on Bitcoin), the fee the difference.
	Token    string
	Units    *big.Int
	Received *big.Int
	Position uint
}

// Transfers signs, sends, replaces and inspects payflow's transfers on one
// chain, and has the confirmation tracker follow them.
type Transfers interface {
	// Sign signs t once per (workflow, step) and stores it before anything
	// is sent; a repeat returns what is stored.
	Sign(ctx context.Context, t Transfer) (Signed, error)
	// Stored returns the latest attempt stored for the step, or ErrNotSigned.
	Stored(ctx context.Context, workflowID, step string) (Signed, error)
	// Send sends the stored attempt's bytes; sending again is harmless. A
	// node's refusal is a *NodeRefusal or ErrNonceTooLow.
	Send(ctx context.Context, s Signed) error
	// Replace signs attempt number attempt of the step on the same nonce at
	// a higher fee, once per number.
	Replace(ctx context.Context, workflowID, step string, attempt int) (Signed, error)
	// Inspect tells what the chain proves about every attempt of the step,
	// a nonce counting as used by another transaction only confirmations
	// deep.
	Inspect(ctx context.Context, workflowID, step string, confirmations uint64) (Inspection, error)
	// Track has the confirmation tracker follow txHash for workflowID:
	// every milestone, or only confirmed and dropped.
	Track(ctx context.Context, txHash, workflowID string, everyMilestone bool) error
}

// Fees prices transfers. Token "" is the native coin.
type Fees interface {
	// Gas is the gas limit a transfer would be signed with.
	Gas(ctx context.Context, token, from, to string, units *big.Int) (uint64, error)
	// MaxFee is the most per unit of gas a first signature pays now.
	MaxFee(ctx context.Context) (*big.Int, error)
	// Simulate runs a token transfer on the node's latest state: a refusal
	// is ErrWouldRevert.
	Simulate(ctx context.Context, token, from, to string, units *big.Int) error
	// Paid is the fee a mined transaction paid (in the native coin's base
	// units); mined is false when the node has no receipt of it.
	Paid(ctx context.Context, txHash string) (fee *big.Int, mined bool, err error)
}

// Balances reads balances on chain. Token "" is the native coin; block nil
// is the latest.
type Balances interface {
	Balance(ctx context.Context, token, owner string, block *big.Int) (*big.Int, error)
	// RequireToken fails with ErrInsufficientToken when owner holds fewer
	// than units of token.
	RequireToken(ctx context.Context, token, owner string, units *big.Int) error
}

// DepositClaim is a deposit as credited or announced: Units of Token (""
// for the native coin, then Position is NativeLogIndex) paid to To in
// transaction TxHash, at Position among the transaction's token transfers
// (the log's index within its receipt).
type DepositClaim struct {
	TxHash   string
	Position uint
	Token    string
	To       string
	Units    string // base units, decimal
}

// DepositProof is what the chain says of a claimed deposit now.
type DepositProof struct {
	// Present: the transaction is mined, succeeded and pays the claim.
	Present bool
	// Mined: the transaction has a receipt (reverted, or carrying another
	// effect, when not Present).
	Mined bool
	// Reverted: the transaction is mined and failed.
	Reverted      bool
	BlockNumber   uint64
	BlockHash     string
	BlockLogIndex uint // the log's index within its block (NativeLogIndex for a native deposit)
}

// TokenTransfer is one token transfer a transaction made.
type TokenTransfer struct {
	TxHash      string
	BlockNumber uint64
	// Position is its index among the transaction's logs; BlockLogIndex its
	// index within the block.
	Position      uint
	BlockLogIndex uint
	Token         string
	From, To      string
	Units         *big.Int
}

// Reader answers what workflows ask of the chain beyond transfers: blocks,
// proofs of deposits and token transfers, and the watched deposit addresses.
type Reader interface {
	// Head is the latest block number.
	Head(ctx context.Context) (uint64, error)
	// BlockHash is the canonical hash of block number.
	BlockHash(ctx context.Context, number uint64) (string, error)
	// Pending reports whether the node holds txHash in its pool, not mined.
	Pending(ctx context.Context, txHash string) (bool, error)
	// ProveDeposit checks a claimed deposit against the canonical chain.
	ProveDeposit(ctx context.Context, c DepositClaim) (DepositProof, error)
	// TokenTransfers lists the token transfers of a mined transaction (none
	// when it failed); a transaction the node does not have is an error.
	TokenTransfers(ctx context.Context, txHash string) ([]TokenTransfer, error)
	// TokenHistory lists the transfers of token from or to wallet in blocks
	// from..to, each once; Position is left as BlockLogIndex (see Position).
	TokenHistory(ctx context.Context, token, wallet string, from, to uint64) ([]TokenTransfer, error)
	// Position is the index within its transaction of the log at
	// blockLogIndex of its block (blockLogIndex when the transaction has no
	// such log).
	Position(ctx context.Context, txHash string, blockLogIndex uint) (uint, error)
	// Watch adds address to the deposit addresses watched for symbol from
	// the current head on, and says from which block; a repeat keeps the
	// first registration (isNew false).
	Watch(ctx context.Context, symbol, address string) (fromBlock uint64, isNew bool, err error)
}

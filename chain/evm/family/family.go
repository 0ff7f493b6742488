// Package family is the EVM family behind package chain's contract: its
// parts answer chain.Transfers, chain.Fees, chain.Balances and chain.Reader over
// a send.Broadcaster, the node and the chain's tables. workers/ wires one per
// chain into the activities.
package family

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/send"
)

// Family is one EVM chain behind the contract of package chain, one part
// per interface, translating between the contract's strings and
// go-ethereum's types.
type Family struct {
	Transfers *Transfers // chain.Transfers over a send.Broadcaster and the tracker's table
	Fees      *Fees      // chain.Fees
	Balances  *Balances  // chain.Balances
	Reads     *Reads     // chain.Reader: the node and the watched addresses
}

// Transfers implements chain.Transfers.
type Transfers struct {
	chain string
	db    *sql.DB
	b     *send.Broadcaster
}

// Fees implements chain.Fees.
type Fees struct {
	backend evm.Backend
	b       *send.Broadcaster
}

// Balances implements chain.Balances.
type Balances struct{ b *send.Broadcaster }

// Reads implements chain.Reader.
type Reads struct {
	chain   string
	db      *sql.DB
	backend evm.Backend
	b       *send.Broadcaster
}

// The contract's interfaces the parts implement.
var (
	_ chain.Transfers = (*Transfers)(nil)
	_ chain.Fees      = (*Fees)(nil)
	_ chain.Balances  = (*Balances)(nil)
	_ chain.Reader    = (*Reads)(nil)
)

// New wires a Family for chain chainName (its protocol name).
func New(chainName string, db *sql.DB, backend evm.Backend, b *send.Broadcaster) (*Family, error) {
	if chainName == "" || db == nil || b == nil {
		return nil, errors.New("evm family: chain name, database and broadcaster are required")
	}
	return &Family{Transfers: &Transfers{chain: chainName, db: db, b: b}, Fees: &Fees{backend: backend, b: b},
		Balances: &Balances{b: b}, Reads: &Reads{chain: chainName, db: db, backend: backend, b: b}}, nil
}

// Sign implements chain.Transfers: a token transfer, or the native coin when
// t.Token is "". A FeeFromAmount transfer is refused (chain.ErrBadAmount).
func (x *Transfers) Sign(ctx context.Context, t chain.Transfer) (chain.Signed, error) {
	if t.FeeFromAmount {
		// Gas is paid apart from the value: a transfer's fee is never its amount's.
		return chain.Signed{}, fmt.Errorf("%w: an EVM transfer pays its gas apart, never from its amount", chain.ErrBadAmount)
	}
	var stx evm.SignedTx
	var err error
	if t.Token == "" {
		stx, err = x.b.Signer.SignNative(ctx, send.NativeTransferRequest{WorkflowID: t.WorkflowID, Step: t.Step,
			Reservation: t.Reservation, From: common.HexToAddress(t.From), To: common.HexToAddress(t.To), Wei: t.Units})
	} else {
		stx, err = x.b.Signer.SignTransfer(ctx, send.TransferRequest{WorkflowID: t.WorkflowID, Step: t.Step,
			Reservation: t.Reservation, From: common.HexToAddress(t.From), To: common.HexToAddress(t.To),
			Token: common.HexToAddress(t.Token), Units: t.Units, Simulated: t.Simulated})
	}
	if err != nil {
		return chain.Signed{}, err
	}
	return signed(stx)
}

// Stored implements chain.Transfers.
func (x *Transfers) Stored(ctx context.Context, workflowID, step string) (chain.Signed, error) {
	stx, err := x.b.Store.Stored(ctx, workflowID, step)
	if err != nil {
		return chain.Signed{}, err
	}
	return signed(stx)
}

// Send implements chain.Transfers. A JSON-RPC error from the node is its
// refusal: a *chain.NodeRefusal.
func (x *Transfers) Send(ctx context.Context, s chain.Signed) error {
	_, err := x.b.Sender.SendStored(ctx, evm.SignedTx{WorkflowID: s.WorkflowID, Step: s.Step, Attempt: s.Attempt,
		From: common.HexToAddress(s.From), Nonce: s.Nonce, Hash: common.HexToHash(s.TxHash), Raw: s.Raw, State: s.State})
	return refused(err)
}

// Replace implements chain.Transfers (see Sender.Replace).
func (x *Transfers) Replace(ctx context.Context, workflowID, step string, attempt int) (chain.Signed, error) {
	stx, err := x.b.Sender.Replace(ctx, workflowID, step, attempt)
	if err != nil {
		return chain.Signed{}, refused(err)
	}
	return signed(stx)
}

// Inspect implements chain.Transfers (see Sender.Inspect).
func (x *Transfers) Inspect(ctx context.Context, workflowID, step string, confirmations uint64) (chain.Inspection, error) {
	in, err := x.b.Sender.Inspect(ctx, workflowID, step, confirmations)
	if err != nil {
		return chain.Inspection{}, err
	}
	out := chain.Inspection{State: in.State, TxHash: in.Attempt.Hash.Hex(), BlockNumber: in.BlockNumber,
		Succeeded: in.Succeeded, Reason: in.Reason, Units: in.Units, Received: in.Received}
	if in.Token != (common.Address{}) {
		out.Token = evm.Lower(in.Token)
	}
	return out, nil
}

// Track implements chain.Transfers (TrackTx, or TrackTxConfirmedOnly).
func (x *Transfers) Track(ctx context.Context, txHash, workflowID string, everyMilestone bool) error {
	if everyMilestone {
		return evm.TrackTx(ctx, x.db, x.chain, common.HexToHash(txHash), workflowID)
	}
	return evm.TrackTxConfirmedOnly(ctx, x.db, x.chain, common.HexToHash(txHash), workflowID)
}

// signed is stx in the contract's terms.
func signed(stx evm.SignedTx) (chain.Signed, error) {
	var tx types.Transaction
	if err := tx.UnmarshalBinary(stx.Raw); err != nil {
		return chain.Signed{}, fmt.Errorf("decoding stored transfer %s: %w", stx.Hash.Hex(), err)
	}
	return chain.Signed{WorkflowID: stx.WorkflowID, Step: stx.Step, Attempt: stx.Attempt, TxHash: stx.Hash.Hex(),
		From: evm.Lower(stx.From), Nonce: stx.Nonce, State: stx.State, Mined: stx.Mined, Gas: tx.Gas(), Raw: stx.Raw}, nil
}

// refused marks a node's JSON-RPC answer as its refusal; ErrNonceTooLow
// stays as it is.
func refused(err error) error {
	var rpcErr rpc.Error
	if err == nil || errors.Is(err, chain.ErrNonceTooLow) || !errors.As(err, &rpcErr) {
		return err
	}
	return &chain.NodeRefusal{Err: rpcErr}
}

// Gas implements chain.Fees: FeeOracle.NativeGas when token is "", else
// FeeOracle.TransferGas.
func (x *Fees) Gas(ctx context.Context, token, from, to string, units *big.Int) (uint64, error) {
	if token == "" {
		return x.b.Fees.NativeGas(ctx, common.HexToAddress(from), common.HexToAddress(to), units)
	}
	return x.b.Fees.TransferGas(ctx, common.HexToAddress(token), common.HexToAddress(from), common.HexToAddress(to), units)
}

// MaxFee implements chain.Fees: the max fee per gas of FeeOracle.Fees.
func (x *Fees) MaxFee(ctx context.Context) (*big.Int, error) {
	_, maxFee, err := x.b.Fees.Fees(ctx)
	return maxFee, err
}

// Simulate implements chain.Fees (FeeOracle.SimulateTransfer).
func (x *Fees) Simulate(ctx context.Context, token, from, to string, units *big.Int) error {
	return x.b.Fees.SimulateTransfer(ctx, common.HexToAddress(token), common.HexToAddress(from), common.HexToAddress(to), units)
}

// Paid implements chain.Fees: the receipt's gas used × effective gas price.
// The receipt the payment's inspection just read is used when there is one.
func (x *Fees) Paid(ctx context.Context, txHash string) (*big.Int, bool, error) {
	r, ok := x.b.Sender.RecentReceipt(common.HexToHash(txHash))
	if !ok {
		var err error
		if r, err = receipt(ctx, x.backend, txHash); err != nil || r == nil {
			return nil, false, err
		}
	}
	return new(big.Int).Mul(new(big.Int).SetUint64(r.GasUsed), r.EffectiveGasPrice), true, nil
}

// receipt is txHash's receipt, nil when the node has none.
func receipt(ctx context.Context, backend evm.Backend, txHash string) (*types.Receipt, error) {
	r, err := backend.TransactionReceipt(ctx, common.HexToHash(txHash))
	if errors.Is(err, ethereum.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading receipt %s: %w", txHash, err)
	}
	return r, nil
}

// Balance implements chain.Balances.
func (x *Balances) Balance(ctx context.Context, token, owner string, block *big.Int) (*big.Int, error) {
	return x.b.Balances.Balance(ctx, token, owner, block)
}

// RequireToken implements chain.Balances.
func (x *Balances) RequireToken(ctx context.Context, token, owner string, units *big.Int) error {
	return x.b.Balances.RequireToken(ctx, common.HexToAddress(token), common.HexToAddress(owner), units)
}

// Head implements chain.Reader.
func (x *Reads) Head(ctx context.Context) (uint64, error) {
	return x.backend.BlockNumber(ctx)
}

// BlockHash implements chain.Reader.
func (x *Reads) BlockHash(ctx context.Context, number uint64) (string, error) {
	h, err := x.backend.HeaderByNumber(ctx, new(big.Int).SetUint64(number))
	if err != nil {
		return "", err
	}
	return h.Hash().Hex(), nil
}

// txByHash is a node client that looks transactions up by hash
// (*ethclient.Client and the simulated backend's client are).
type txByHash interface {
	TransactionByHash(ctx context.Context, hash common.Hash) (*types.Transaction, bool, error)
}

// Pending implements chain.Reader. A node client that cannot look
// transactions up says nothing is pending.
func (x *Reads) Pending(ctx context.Context, txHash string) (bool, error) {
	tb, ok := x.backend.(txByHash)
	if !ok {
		return false, nil
	}
	_, pending, err := tb.TransactionByHash(ctx, common.HexToHash(txHash))
	if errors.Is(err, ethereum.NotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up %s: %w", txHash, err)
	}
	return pending, nil
}

// ProveDeposit implements chain.Reader: the receipt must be successful and,
// for a token deposit, hold at c.Position the same Transfer (token,
// recipient, value); for a native one (c.Position is chain.NativeLogIndex)
// the transaction must pay c.Units to c.To.
func (x *Reads) ProveDeposit(ctx context.Context, c chain.DepositClaim) (chain.DepositProof, error) {
	r, err := receipt(ctx, x.backend, c.TxHash)
	if err != nil || r == nil {
		return chain.DepositProof{}, err
	}
	if r.Status != 1 {
		return chain.DepositProof{Mined: true, Reverted: true}, nil
	}
	if c.Position == chain.NativeLogIndex {
		return x.proveNative(ctx, c, r)
	}
	if int(c.Position) >= len(r.Logs) {
		return chain.DepositProof{Mined: true}, nil
	}
	lg := r.Logs[c.Position]
	if len(lg.Topics) != 3 || lg.Topics[0] != evm.TransferTopic || !strings.EqualFold(lg.Address.Hex(), c.Token) ||
		!strings.EqualFold(common.BytesToAddress(lg.Topics[2].Bytes()).Hex(), c.To) || len(lg.Data) < 32 {
		return chain.DepositProof{Mined: true}, nil
	}
	if new(big.Int).SetBytes(lg.Data[:32]).String() != c.Units {
		return chain.DepositProof{Mined: true}, nil
	}
	return chain.DepositProof{Present: true, Mined: true, BlockNumber: r.BlockNumber.Uint64(), BlockHash: r.BlockHash.Hex(),
		BlockLogIndex: lg.Index}, nil
}

// proveNative checks that the successful transaction of receipt r pays
// c.Units of the native coin to c.To (a native deposit has no log).
func (x *Reads) proveNative(ctx context.Context, c chain.DepositClaim, r *types.Receipt) (chain.DepositProof, error) {
	tb, ok := x.backend.(txByHash)
	if !ok {
		return chain.DepositProof{}, errors.New("the node client cannot look transactions up by hash")
	}
	tx, _, err := tb.TransactionByHash(ctx, common.HexToHash(c.TxHash))
	if errors.Is(err, ethereum.NotFound) {
		return chain.DepositProof{}, nil
	}
	if err != nil {
		return chain.DepositProof{}, fmt.Errorf("reading transaction %s: %w", c.TxHash, err)
	}
	if tx.To() == nil || !strings.EqualFold(tx.To().Hex(), c.To) || tx.Value().String() != c.Units {
		return chain.DepositProof{Mined: true}, nil
	}
	return chain.DepositProof{Present: true, Mined: true, BlockNumber: r.BlockNumber.Uint64(), BlockHash: r.BlockHash.Hex(),
		BlockLogIndex: chain.NativeLogIndex}, nil
}

// TokenTransfers implements chain.Reader: the ERC20 Transfer logs of the
// transaction's receipt. A transaction without a receipt is ethereum.NotFound.
func (x *Reads) TokenTransfers(ctx context.Context, txHash string) ([]chain.TokenTransfer, error) {
	r, err := x.b.Sender.Receipt(ctx, common.HexToHash(txHash))
	if err != nil {
		return nil, fmt.Errorf("reading receipt %s: %w", txHash, err)
	}
	var out []chain.TokenTransfer
	for i, lg := range r.Logs {
		t, ok := tokenTransfer(lg)
		if !ok {
			continue
		}
		t.Position = uint(i)
		out = append(out, t)
	}
	return out, nil
}

// tokenTransfer reads an ERC20 Transfer log (Position left as its index
// within the block).
func tokenTransfer(lg *types.Log) (chain.TokenTransfer, bool) {
	if len(lg.Topics) != 3 || lg.Topics[0] != evm.TransferTopic || len(lg.Data) < 32 {
		return chain.TokenTransfer{}, false
	}
	return chain.TokenTransfer{TxHash: strings.ToLower(lg.TxHash.Hex()), BlockNumber: lg.BlockNumber,
		Position: lg.Index, BlockLogIndex: lg.Index, Token: evm.Lower(lg.Address),
		From: evm.Lower(common.BytesToAddress(lg.Topics[1].Bytes())), To: evm.Lower(common.BytesToAddress(lg.Topics[2].Bytes())),
		Units: new(big.Int).SetBytes(lg.Data[:32])}, true
}

// logChunk is how many blocks one eth_getLogs call of TokenHistory spans.
const logChunk = 50_000

// TokenHistory implements chain.Reader with eth_getLogs, logChunk blocks a
// call: the Transfer logs from the wallet, then those to it (a
// self-transfer, in both, is listed once).
func (x *Reads) TokenHistory(ctx context.Context, token, wallet string, from, to uint64) ([]chain.TokenTransfer, error) {
	tok := common.HexToAddress(token)
	w := common.BytesToHash(common.HexToAddress(wallet).Bytes())
	seen := map[[2]uint64]bool{} // (block, log index)
	var out []chain.TokenTransfer
	for _, topics := range [][][]common.Hash{
		{{evm.TransferTopic}, {w}},      // from the wallet
		{{evm.TransferTopic}, nil, {w}}, // to the wallet
	} {
		for lo := from; lo <= to; lo += logChunk {
			hi := min(lo+logChunk-1, to)
			logs, err := x.backend.FilterLogs(ctx, ethereum.FilterQuery{FromBlock: new(big.Int).SetUint64(lo),
				ToBlock: new(big.Int).SetUint64(hi), Addresses: []common.Address{tok}, Topics: topics})
			if err != nil {
				return nil, fmt.Errorf("reading transfers in blocks %d-%d: %w", lo, hi, err)
			}
			for _, lg := range logs {
				k := [2]uint64{lg.BlockNumber, uint64(lg.Index)}
				t, ok := tokenTransfer(&lg)
				if lg.Removed || !ok || seen[k] {
					continue
				}
				seen[k] = true
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// Position implements chain.Reader from the transaction's receipt.
func (x *Reads) Position(ctx context.Context, txHash string, blockLogIndex uint) (uint, error) {
	r, err := x.backend.TransactionReceipt(ctx, common.HexToHash(txHash))
	if err != nil {
		return 0, fmt.Errorf("reading receipt %s: %w", txHash, err)
	}
	for pos, lg := range r.Logs {
		if lg.Index == blockLogIndex {
			return uint(pos), nil
		}
	}
	return blockLogIndex, nil
}

// Watch implements chain.Reader (see the package function Watch) from the
// current head on.
func (x *Reads) Watch(ctx context.Context, symbol, address string) (uint64, bool, error) {
	head, err := x.backend.BlockNumber(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("reading head: %w", err)
	}
	isNew, err := evm.Watch(ctx, x.db, x.chain, symbol, common.HexToAddress(address), head)
	if err != nil {
		return 0, false, err
	}
	from, err := evm.WatchedFrom(ctx, x.db, x.chain, symbol, common.HexToAddress(address))
	return from, isNew, err
}

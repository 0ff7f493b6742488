package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"sync"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/chain"

	"payflow/chain/evm"
)

// errRaced marks blocks, logs or receipts that changed while a range was
// being read (a reorg raced the listener): the range is read again.
var errRaced = errors.New("blocks changed while being read")

// BlockReader reads a whole block, with its transactions, by hash. The
// listener needs it only to watch native deposits. *ethclient.Client and
// simulated.Backend.Client() satisfy it.
type BlockReader interface {
	BlockByHash(ctx context.Context, hash common.Hash) (*types.Block, error)
}

// What native deposits are found, and what not:
//   - found: a transaction whose recipient (tx.To) is watched, whose value is
//     positive and which succeeded (receipt status 1; a reverted call moves
//     no value even though the transaction carries one);
//   - not found: value sent by a contract creation (tx.To is nil), and value
//     moved by contract-internal calls (a multisig, a smart wallet, an
//     exchange's batch payout contract, a bridge paying the address). Such a
//     transfer leaves no transaction to the address and no log; seeing it
//     needs the node's trace APIs (debug_traceBlock / trace_block), which
//     not every node or provider offers and which are costly to run on every
//     block. It still shows in the address's balance, so reconciliation
//     finds it.

// nativeScanner finds native deposits in blocks read by hash, for the
// Listener (which owns the receipt cache of the sync pass).
type nativeScanner struct {
	blocks   BlockReader
	receipts *receiptCache
	log      interface {
		Debug(msg string, args ...any)
		Info(msg string, args ...any)
		Warn(msg string, args ...any)
	}
	// skipped counts, by transaction type, the transactions of blocks read
	// one by one (see readTxByTx) that this code cannot decode.
	skipped skipCounts
}

// skipCounts counts undecodable transactions by type.
type skipCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

// add counts n more transactions of txType and tells whether it is the
// first time the type is met.
func (c *skipCounts) add(txType string, n uint64) (first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]uint64{}
	}
	_, seen := c.n[txType]
	c.n[txType] += n
	return !seen
}

// snapshot returns the counts so far.
func (c *skipCounts) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// scanBlock is what the native scan reads of a block: its place in the
// chain and the transactions it could decode.
type scanBlock struct {
	number       uint64
	hash, parent common.Hash
	txs          []*types.Transaction
}

func fromBlock(b *types.Block) *scanBlock {
	return &scanBlock{number: b.NumberU64(), hash: b.Hash(), parent: b.ParentHash(), txs: b.Transactions()}
}

// rpcClientOf is a BlockReader that also speaks raw JSON-RPC
// (*ethclient.Client): the scan reads through it the blocks go-ethereum
// cannot decode whole.
type rpcClientOf interface {
	Client() *rpc.Client
}

// receiptCache reads each transaction's receipt once per sync pass.
type receiptCache struct {
	backend evm.Backend
	m       map[common.Hash]*types.Receipt
}

func (c *receiptCache) reset() { c.m = map[common.Hash]*types.Receipt{} }

func (c *receiptCache) forget(txHash common.Hash) { delete(c.m, txHash) }

// get returns txHash's receipt, read from the node once per pass.
func (c *receiptCache) get(ctx context.Context, txHash common.Hash) (*types.Receipt, error) {
	if r, ok := c.m[txHash]; ok {
		return r, nil
	}
	r, err := c.backend.TransactionReceipt(ctx, txHash)
	if err != nil {
		return nil, fmt.Errorf("reading receipt %s: %w", txHash.Hex(), err)
	}
	c.m[txHash] = r
	return r, nil
}

// nativeRange reads the blocks after cur up to end by hash, walking parent
// hashes down from end.Hash, so they are gap-free and are exactly the
// blocks the cursor moves to. It checks that they extend cur and that every
// log of the range came from one of them, and returns the native deposits
// to watched addresses in ascending block order.
func (l *nativeScanner) inRange(ctx context.Context, cur, end evm.Cursor, logs []types.Log,
	match func(to common.Address, block uint64) bool) ([]Deposit, error) {
	hashes := make(map[uint64]common.Hash, end.Number-cur.Number)
	var deps []Deposit
	parent, err := l.walkBlocks(ctx, cur.Number+1, end, func(b *scanBlock) error {
		hashes[b.number] = b.hash
		d, err := l.deposits(ctx, b, match)
		deps = append(d, deps...) // the walk goes down
		return err
	})
	if err != nil {
		return nil, err
	}
	if parent != cur.Hash {
		// The cursor's block left the chain after the reorg check: the next
		// sync's check rewinds and rescans.
		return nil, fmt.Errorf("block %d does not extend the cursor %d/%s: reorganised, rescanning on the next head",
			cur.Number+1, cur.Number, cur.Hash.Hex())
	}
	for i := range logs {
		if lg := &logs[i]; !lg.Removed && hashes[lg.BlockNumber] != lg.BlockHash {
			return nil, fmt.Errorf("log of block %d/%s outside the blocks read: %w", lg.BlockNumber, lg.BlockHash.Hex(), errRaced)
		}
	}
	return deps, nil
}

// backfill returns the native deposits match accepts in the blocks from
// `from` up to the cursor, read one by one down from the cursor's hash.
func (l *nativeScanner) backfill(ctx context.Context, from uint64, cur evm.Cursor, match func(to common.Address, block uint64) bool) ([]Deposit, error) {
	for attempt := 0; ; attempt++ {
		var deps []Deposit
		_, err := l.walkBlocks(ctx, from, cur, func(b *scanBlock) error {
			d, err := l.deposits(ctx, b, match)
			deps = append(d, deps...)
			return err
		})
		if errors.Is(err, errRaced) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backfilling native deposits of new watches %d-%d: %w", from, cur.Number, err)
		}
		return deps, nil
	}
}

// walkBlocks calls fn for each block from top down to number `from`,
// following parent hashes, and returns the parent hash of block `from`.
func (l *nativeScanner) walkBlocks(ctx context.Context, from uint64, top evm.Cursor, fn func(*scanBlock) error) (common.Hash, error) {
	h, n := top.Hash, top.Number
	for {
		b, err := l.readBlock(ctx, h, n)
		if err != nil {
			return common.Hash{}, err
		}
		if b.number != n {
			return common.Hash{}, fmt.Errorf("block %s is number %d, want %d", h.Hex(), b.number, n)
		}
		if err := fn(b); err != nil {
			return common.Hash{}, err
		}
		if n <= from {
			return b.parent, nil
		}
		h, n = b.parent, n-1
	}
}

// readBlock reads block n by hash h. On OP-stack and Arbitrum chains every
// block holds a transaction type go-ethereum cannot decode (deposits,
// retryables), so BlockByHash fails on every block and the scan would never
// move. Then the block is read again as raw JSON and its
// transactions decoded one by one (readTxByTx), the undecodable ones
// skipped: they are the rollup's system transactions, and the ordinary
// transfers beside them are still found.
func (l *nativeScanner) readBlock(ctx context.Context, h common.Hash, n uint64) (*scanBlock, error) {
	b, err := l.blocks.BlockByHash(ctx, h)
	if errors.Is(err, ethereum.NotFound) || (err == nil && b == nil) {
		return nil, fmt.Errorf("block %d/%s not found: %w", n, h.Hex(), errRaced)
	}
	if err == nil {
		return fromBlock(b), nil
	}
	raw, ok := l.blocks.(rpcClientOf)
	if !ok || ctx.Err() != nil {
		return nil, fmt.Errorf("reading block %d/%s: %w", n, h.Hex(), err)
	}
	sb, rerr := l.readTxByTx(ctx, raw.Client(), h, n)
	if rerr != nil {
		return nil, fmt.Errorf("reading block %d/%s: %w (transaction by transaction: %w)", n, h.Hex(), err, rerr)
	}
	return sb, nil
}

// rawBlock is the part of eth_getBlockByHash's answer (with full
// transactions) the scan reads itself.
type rawBlock struct {
	Number       hexutil.Uint64    `json:"number"`
	Hash         common.Hash       `json:"hash"`
	ParentHash   common.Hash       `json:"parentHash"`
	Transactions []json.RawMessage `json:"transactions"`
}

// readTxByTx reads block h with eth_getBlockByHash and decodes each of its
// transactions on its own. A transaction that does not decode, or whose
// hash as decoded is not the node's, is skipped and counted by type.
func (l *nativeScanner) readTxByTx(ctx context.Context, c *rpc.Client, h common.Hash, n uint64) (*scanBlock, error) {
	var msg json.RawMessage
	if err := c.CallContext(ctx, &msg, "eth_getBlockByHash", h, true); err != nil {
		return nil, err
	}
	if len(msg) == 0 || string(msg) == "null" {
		return nil, fmt.Errorf("block %d/%s not found: %w", n, h.Hex(), errRaced)
	}
	var rb rawBlock
	if err := json.Unmarshal(msg, &rb); err != nil {
		return nil, fmt.Errorf("decoding block %d/%s: %w", n, h.Hex(), err)
	}
	if rb.Hash != h {
		return nil, fmt.Errorf("asked for block %s, the node answered %s", h.Hex(), rb.Hash.Hex())
	}
	b := &scanBlock{number: uint64(rb.Number), hash: rb.Hash, parent: rb.ParentHash}
	skipped := map[string]uint64{}
	for _, m := range rb.Transactions {
		var id struct {
			Type string      `json:"type"`
			Hash common.Hash `json:"hash"`
		}
		_ = json.Unmarshal(m, &id) // only names what is skipped
		tx := new(types.Transaction)
		if err := tx.UnmarshalJSON(m); err != nil || tx.Hash() != id.Hash {
			skipped[id.Type]++
			continue
		}
		b.txs = append(b.txs, tx)
	}
	for typ, k := range skipped {
		if l.skipped.add(typ, k) {
			l.log.Warn("transactions of a type this code cannot decode are skipped by the native deposit scan",
				"tx_type", typ, "block_number", b.number)
		}
		l.log.Debug("skipped undecodable transactions", "tx_type", typ, "count", k, "block_number", b.number)
	}
	return b, nil
}

// nativeDeposits returns the successful transactions of b that pay a
// positive value to an address match accepts. Only matches cost a receipt.
func (l *nativeScanner) deposits(ctx context.Context, b *scanBlock,
	match func(to common.Address, block uint64) bool) ([]Deposit, error) {
	var deps []Deposit
	for _, tx := range b.txs {
		to := tx.To()
		if to == nil || tx.Value().Sign() <= 0 || !match(*to, b.number) {
			continue
		}
		r, err := l.receipts.get(ctx, tx.Hash())
		if errors.Is(err, ethereum.NotFound) {
			return nil, fmt.Errorf("receipt of %s not found: %w", tx.Hash().Hex(), errRaced)
		}
		if err != nil {
			return nil, err
		}
		if r.BlockHash != b.hash {
			l.receipts.forget(tx.Hash())
			return nil, fmt.Errorf("receipt of %s from block %s, not %s: %w", tx.Hash().Hex(), r.BlockHash.Hex(),
				b.hash.Hex(), errRaced)
		}
		if r.Status != types.ReceiptStatusSuccessful {
			l.log.Info("native payment to a watched address reverted; no deposit", "to", evm.Lower(*to),
				"tx_hash", tx.Hash().Hex(), "block_number", b.number)
			continue
		}
		from, err := txSender(tx)
		if err != nil {
			// A mined transaction has a valid signature; a type this code
			// cannot recover must not stall every deposit behind it.
			l.log.Warn("cannot recover the sender of a native deposit; reporting it without", "tx_hash", tx.Hash().Hex(),
				"err", err)
		}
		deps = append(deps, Deposit{
			From: from, To: *to, Value: new(big.Int).Set(tx.Value()), TxHash: tx.Hash(), LogIndex: chain.NativeLogIndex,
			BlockNumber: b.number, BlockHash: b.hash, Native: true,
		})
	}
	return deps, nil
}

// txSender recovers the signer of a mined transaction.
func txSender(tx *types.Transaction) (common.Address, error) {
	var signer types.Signer = types.HomesteadSigner{}
	if tx.Protected() {
		signer = types.LatestSignerForChainID(tx.ChainId())
	}
	return types.Sender(signer, tx)
}

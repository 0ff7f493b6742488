package watch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain/evm"
)

// errLogQuery marks a failed eth_getLogs, which may be the node refusing a
// range that is too wide.
var errLogQuery = errors.New("log query failed")

// Deposit is one ERC20 Transfer log to a watched address, or one
// transaction paying native coin to a watched address (Native).
type Deposit struct {
	// Token is the token contract; the zero address for a native deposit.
	Token common.Address
	// From is the Transfer's sender, or the transaction's signer for a
	// native deposit.
	From  common.Address
	To    common.Address
	Value *big.Int // token base units, or wei for a native deposit
	// TxHash and LogIndex identify the deposit. LogIndex is the log's
	// position within its transaction's receipt, which stays the same when a
	// reorg re-includes the transaction in another block. A native deposit
	// has no log: its LogIndex is NativeLogIndex.
	TxHash   common.Hash
	LogIndex uint
	// BlockLogIndex is the log's position in the block, as the node reports
	// it; zero (meaningless) for a native deposit.
	BlockLogIndex uint
	BlockNumber   uint64
	BlockHash     common.Hash
	// Native marks a deposit of the chain's native coin (Token is zero,
	// LogIndex is NativeLogIndex).
	Native bool
}

// DepositSink receives matched deposits, at least once each: it must be
// idempotent by (TxHash, LogIndex). An error stops the listener from
// advancing its cursor, so the same blocks are delivered again later.
type DepositSink interface {
	HandleDeposits(ctx context.Context, deps []Deposit) error
}

// ListenerConfig configures a Listener.
type ListenerConfig struct {
	Chain  string
	Tokens []common.Address
	// Native also watches native coin deposits: transactions of each block
	// whose recipient is watched and whose value is positive. It needs a
	// backend that reads whole blocks (BlockReader).
	Native bool
	// MaxRange is the widest eth_getLogs range asked for; the range halves
	// when the node refuses one and grows back after successes.
	MaxRange uint64
	// ReorgDepth is how far back the listener rescans when the block under
	// its cursor is no longer canonical.
	ReorgDepth uint64
	// PollInterval re-checks the head without a WebSocket event.
	PollInterval time.Duration
	// Wallets pages through the chain's managed wallets, which are watched
	// too; nil watches none.
	Wallets ManagedWallets
}

// ManagedWallets pages through a chain's managed wallets in the order they
// were stored: the addresses of at most limit wallets after position after
// (0 from the first), and the position of the last one (after itself when
// none). The ledger owns them: (*ledger.Wallets).AddressesAfter for the
// chain is one.
type ManagedWallets func(ctx context.Context, after int64, limit int) (addresses []string, last int64, err error)

// Listener finds Transfer logs to watched addresses without ever skipping a
// block: it persists the last fully processed block (number and hash) and
// resumes from there after a disconnect or a restart, backfilling the gap
// with eth_getLogs. With ListenerConfig.Native it also finds the
// transactions paying native coin to watched addresses, from the same blocks
// (see native_deposits.go), under the same cursor.
//
// A watched address receives every configured token and, with Native, the
// native coin, whatever symbol its watched_addresses rows name: the symbol
// records what was asked for, the watch set holds addresses only. The
// cursor, the watches and the deposits are all per chain (ListenerConfig.Chain):
// the same address watched on two chains is two independent streams.
//
// Every managed wallet of the chain (a row of the wallets table) is watched
// too, from the first pass after it was stored, so that every transfer into
// it is booked: payments between managed wallets, refills, any
// configured asset. The listener does not say which addresses a topup
// watches; the sink decides what is announced.
type Listener struct {
	cfg     ListenerConfig
	db      *sql.DB
	backend evm.Backend
	dial    func(context.Context) (HeadSubscriber, error)
	watch   *WatchSet
	sink    DepositSink
	log     *slog.Logger

	lastWatchID  int64
	lastWalletID int64
	rng          uint64
	receipts     *receiptCache // per sync pass
	native       *nativeScanner
}

// NewListener wires a Listener. watch may be shared with other readers; the
// listener adds to it the watches it loads through the chain store.
func NewListener(cfg ListenerConfig, db *sql.DB, backend evm.Backend, dial func(context.Context) (HeadSubscriber, error),
	watch *WatchSet, sink DepositSink, log *slog.Logger) (*Listener, error) {
	if len(cfg.Tokens) == 0 && !cfg.Native {
		return nil, errors.New("listener: no token and no native coin to watch")
	}
	var blocks BlockReader
	if cfg.Native {
		var ok bool
		if blocks, ok = backend.(BlockReader); !ok {
			return nil, errors.New("listener: watching native deposits needs a backend that reads blocks")
		}
	}
	if cfg.MaxRange == 0 {
		cfg.MaxRange = 2000
	}
	if cfg.ReorgDepth == 0 {
		cfg.ReorgDepth = 64
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	if watch == nil {
		watch = NewWatchSet(1024)
	}
	receipts := &receiptCache{backend: backend}
	receipts.reset()
	return &Listener{cfg: cfg, db: db, backend: backend, dial: dial, watch: watch, sink: sink, log: log, rng: cfg.MaxRange,
		receipts: receipts, native: &nativeScanner{blocks: blocks, receipts: receipts, log: log}}, nil
}

// Run follows the chain until ctx ends.
func (l *Listener) Run(ctx context.Context) error {
	followHeads(ctx, l.dial, l.backend, l.cfg.PollInterval, l.log, func(ctx context.Context, head uint64) {
		if err := l.SyncTo(ctx, head); err != nil && ctx.Err() == nil {
			l.log.Warn("listener sync failed; will retry", "head", head, "err", err)
		}
	})
	return nil
}

// LoadCursor reads the persisted cursor; ok is false when there is none.
func (l *Listener) LoadCursor(ctx context.Context) (evm.Cursor, bool, error) {
	return evm.LoadCursor(ctx, l.db, l.cfg.Chain)
}

func (l *Listener) saveCursor(ctx context.Context, c evm.Cursor) error {
	return evm.SaveCursor(ctx, l.db, l.cfg.Chain, c)
}

// SyncTo processes every block after the cursor up to head, in ranges, and
// advances the cursor after each range's deposits were accepted by the sink.
func (l *Listener) SyncTo(ctx context.Context, head uint64) error {
	l.receipts.reset()
	cur, ok, err := l.LoadCursor(ctx)
	if err != nil {
		return err
	}
	if !ok {
		// First start: nothing before now is owed to anyone except watches
		// registered earlier, which are backfilled from their from_block.
		h, err := l.backend.HeaderByNumber(ctx, new(big.Int).SetUint64(head))
		if err != nil {
			return fmt.Errorf("reading header %d: %w", head, err)
		}
		cur = evm.Cursor{Number: head, Hash: h.Hash()}
		if err := l.saveCursor(ctx, cur); err != nil {
			return err
		}
	}
	if cur, err = l.checkReorg(ctx, cur); err != nil {
		return err
	}
	if err := l.refreshWatches(ctx, cur); err != nil {
		return err
	}
	for cur.Number < head {
		from := cur.Number + 1
		to := min(from+l.rng-1, head)
		next, err := l.processRange(ctx, cur, to)
		if err != nil {
			// Only a refused log query shrinks the range; a sink failure is
			// returned so the same blocks are delivered again later.
			if errors.Is(err, errLogQuery) && l.rng > 1 && ctx.Err() == nil {
				l.rng = max(1, l.rng/2)
				l.log.Info("shrinking log range after an error", "from", from, "to", to, "range", l.rng, "err", err)
				continue
			}
			return err
		}
		if err := l.saveCursor(ctx, next); err != nil {
			return err
		}
		cur = next
		l.rng = min(l.rng*2, l.cfg.MaxRange)
	}
	return nil
}

// checkReorg rewinds the cursor when its block left the canonical chain,
// including when the new branch is still shorter than the cursor (no block
// at its height yet): waiting for the chain to grow back would hold back the
// deposits re-mined on the new branch, which must be delivered again from
// their new blocks.
func (l *Listener) checkReorg(ctx context.Context, cur evm.Cursor) (evm.Cursor, error) {
	h, err := l.backend.HeaderByNumber(ctx, new(big.Int).SetUint64(cur.Number))
	switch {
	case errors.Is(err, ethereum.NotFound) || (err == nil && h == nil):
	case err != nil:
		return cur, fmt.Errorf("reading header %d: %w", cur.Number, err)
	case h.Hash() == cur.Hash:
		return cur, nil
	}
	back := cur.Number - min(cur.Number, l.cfg.ReorgDepth)
	bh, err := l.backend.HeaderByNumber(ctx, new(big.Int).SetUint64(back))
	if err != nil {
		return cur, fmt.Errorf("reading header %d: %w", back, err)
	}
	l.log.Warn("reorg under the listener cursor; rescanning", "block_number", cur.Number, "rewind_to", back)
	next := evm.Cursor{Number: back, Hash: bh.Hash()}
	return next, l.saveCursor(ctx, next)
}

// processRange fetches the blocks after cur up to `to` and delivers their
// deposits. The header of `to` is read before and after the logs: if it
// changed, a reorg raced the query and the range is fetched again. With
// Native, the range's blocks are read by hash down from that header, so they
// are the very blocks the logs came from (checked) and the cursor moves to.
func (l *Listener) processRange(ctx context.Context, cur evm.Cursor, to uint64) (evm.Cursor, error) {
	from := cur.Number + 1
	for attempt := 0; ; attempt++ {
		before, err := l.backend.HeaderByNumber(ctx, new(big.Int).SetUint64(to))
		if err != nil {
			return evm.Cursor{}, fmt.Errorf("reading header %d: %w", to, err)
		}
		var logs []types.Log
		if len(l.cfg.Tokens) > 0 { // no addresses would mean every contract's logs
			logs, err = l.backend.FilterLogs(ctx, ethereum.FilterQuery{
				FromBlock: new(big.Int).SetUint64(from), ToBlock: new(big.Int).SetUint64(to),
				Addresses: l.cfg.Tokens, Topics: [][]common.Hash{{evm.TransferTopic}},
			})
			if err != nil {
				return evm.Cursor{}, fmt.Errorf("getting logs %d-%d: %w: %w", from, to, errLogQuery, err)
			}
		}
		after, err := l.backend.HeaderByNumber(ctx, new(big.Int).SetUint64(to))
		if err != nil {
			return evm.Cursor{}, fmt.Errorf("reading header %d: %w", to, err)
		}
		if before.Hash() != after.Hash() && attempt < 5 {
			continue
		}
		match := func(to common.Address, _ uint64) bool { return l.watch.Has(to) }
		var native []Deposit
		if l.cfg.Native {
			native, err = l.native.inRange(ctx, cur, evm.Cursor{Number: to, Hash: after.Hash()}, logs, match)
			if errors.Is(err, errRaced) && attempt < 5 {
				continue
			}
			if err != nil {
				return evm.Cursor{}, err
			}
		}
		if err := l.deliver(ctx, logs, match, native); err != nil {
			return evm.Cursor{}, err
		}
		return evm.Cursor{Number: to, Hash: after.Hash()}, nil
	}
}

// deliver matches logs against the watch set and hands matches, with the
// native deposits already found in the same blocks, to the sink in one call.
func (l *Listener) deliver(ctx context.Context, logs []types.Log, match func(to common.Address, block uint64) bool,
	native []Deposit) error {
	deps := MatchTransfers(logs, match)
	for i := range deps {
		idx, err := l.txLogIndex(ctx, deps[i].TxHash, deps[i].BlockLogIndex, deps[i].BlockHash)
		if err != nil {
			return err
		}
		deps[i].LogIndex = idx
	}
	deps = append(deps, native...)
	if len(deps) == 0 {
		return nil
	}
	sort.SliceStable(deps, func(i, j int) bool { return deps[i].BlockNumber < deps[j].BlockNumber })
	if err := l.sink.HandleDeposits(ctx, deps); err != nil {
		return fmt.Errorf("handing over %d deposits: %w", len(deps), err)
	}
	return nil
}

// MatchTransfers returns the ERC20 Transfer logs whose recipient match
// accepts, skipping removed and malformed logs. LogIndex is left zero: the
// listener fills it from the receipt (only matches cost a receipt lookup).
func MatchTransfers(logs []types.Log, match func(to common.Address, block uint64) bool) []Deposit {
	var deps []Deposit
	for i := range logs {
		lg := &logs[i]
		if lg.Removed || len(lg.Topics) != 3 || lg.Topics[0] != evm.TransferTopic || len(lg.Data) < 32 {
			continue
		}
		to := common.BytesToAddress(lg.Topics[2].Bytes())
		if !match(to, lg.BlockNumber) {
			continue
		}
		deps = append(deps, Deposit{
			Token: lg.Address, From: common.BytesToAddress(lg.Topics[1].Bytes()), To: to,
			Value: new(big.Int).SetBytes(lg.Data[:32]), TxHash: lg.TxHash, BlockLogIndex: lg.Index,
			BlockNumber: lg.BlockNumber, BlockHash: lg.BlockHash,
		})
	}
	return deps
}

// txLogIndex is the log's position within its transaction's receipt.
func (l *Listener) txLogIndex(ctx context.Context, txHash common.Hash, blockIndex uint, blockHash common.Hash) (uint, error) {
	r, err := l.receipts.get(ctx, txHash)
	if err != nil {
		return 0, err
	}
	for i, rl := range r.Logs {
		if rl.Index == blockIndex && r.BlockHash == blockHash {
			return uint(i), nil
		}
	}
	// The receipt is from another block than the log: a reorg raced us.
	return 0, fmt.Errorf("log %s/%d not in the receipt's block; retrying", txHash.Hex(), blockIndex)
}

// refreshWatches loads addresses registered since the last call and
// backfills, for each, the blocks from its from_block (or from where an
// earlier backfill stopped) up to the cursor, which the listener already
// passed without knowing the address: token logs with eth_getLogs, and with
// Native the blocks' transactions, read one block at a time down from the
// cursor's hash (one eth_getBlockByHash per block of the backfilled span).
func (l *Listener) refreshWatches(ctx context.Context, cur evm.Cursor) error {
	last, added, err := watchWallets(ctx, l.cfg.Wallets, l.lastWalletID, l.watch)
	if err != nil {
		return err
	}
	l.lastWalletID = last
	if added > 0 {
		l.log.Info("watching managed wallets", "count", added, "watched", l.watch.Len())
	}
	cursor := cur.Number
	loaded, err := evm.WatchesAfter(ctx, l.db, l.cfg.Chain, l.lastWatchID, 100000)
	if err != nil {
		return err
	}
	type w struct {
		id    int64
		addr  common.Address
		start uint64 // first block still owed to this address
	}
	var fresh []w
	for _, r := range loaded {
		x := w{id: r.ID, addr: r.Address, start: r.FromBlock}
		if r.Backfilled {
			// Backfilled once and then in the watch set while the cursor
			// advanced: covered up to the cursor.
			x.start = cursor + 1
		}
		fresh = append(fresh, x)
	}
	if len(fresh) == 0 {
		return nil
	}
	for i := 0; i < len(fresh); i += 200 {
		batch := fresh[i:min(i+200, len(fresh))]
		from := cursor + 1
		owed := map[common.Address]uint64{}
		var topics []common.Hash
		var ids []int64
		for _, x := range batch {
			ids = append(ids, x.id)
			if x.start > cursor {
				continue
			}
			from = min(from, x.start)
			owed[x.addr] = x.start
			topics = append(topics, common.BytesToHash(x.addr.Bytes()))
		}
		match := func(to common.Address, block uint64) bool {
			s, ok := owed[to]
			return ok && block >= s
		}
		span := l.rng
		for start := from; start <= cursor && len(l.cfg.Tokens) > 0; {
			end := min(start+span-1, cursor)
			logs, err := l.backend.FilterLogs(ctx, ethereum.FilterQuery{
				FromBlock: new(big.Int).SetUint64(start), ToBlock: new(big.Int).SetUint64(end),
				Addresses: l.cfg.Tokens, Topics: [][]common.Hash{{evm.TransferTopic}, nil, topics},
			})
			if err != nil {
				if span > 1 && ctx.Err() == nil {
					span = max(1, span/2) // the node refused the range
					continue
				}
				return fmt.Errorf("backfilling new watches %d-%d: %w", start, end, err)
			}
			if err := l.deliver(ctx, logs, match, nil); err != nil {
				return err
			}
			start = end + 1
		}
		if l.cfg.Native && from <= cursor {
			deps, err := l.native.backfill(ctx, from, cur, match)
			if err != nil {
				return err
			}
			if err := l.deliver(ctx, nil, match, deps); err != nil {
				return err
			}
		}
		if err := evm.MarkBackfilled(ctx, l.db, ids, cursor); err != nil {
			return err
		}
		for _, x := range batch {
			l.watch.Add(x.addr)
		}
		l.lastWatchID = batch[len(batch)-1].id
	}
	l.log.Info("watching new addresses", "count", len(fresh), "watched", l.watch.Len())
	return nil
}

// watchWallets adds the chain's wallets stored after position after to
// watch and returns the last position read and how many addresses were new
// to the set.
func watchWallets(ctx context.Context, wallets ManagedWallets, after int64, watch *WatchSet) (last int64, added int,
	err error) {
	const page = 10000
	last = after
	for wallets != nil {
		addrs, next, err := wallets(ctx, last, page)
		if err != nil {
			return last, added, fmt.Errorf("loading managed wallets: %w", err)
		}
		for _, a := range addrs {
			added += watch.Add(common.HexToAddress(a))
		}
		last = next
		if len(addrs) < page {
			break
		}
	}
	return last, added, nil
}

// WatchSet exposes the listener's set (for metrics and tests).
func (l *Listener) WatchSet() *WatchSet { return l.watch }

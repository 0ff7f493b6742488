package btc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
)

// Deposit is one output of a mined transaction paying a watched address:
// each output is its own deposit, keyed (TxID, Vout); Vout is the
// deposit's log_index on the wire and in the ledger.
type Deposit struct {
	TxID    string // the transaction id, byte-reversed hex as nodes show it
	Vout    uint32 // the output's index within its transaction
	Address string
	Sats    int64
	// Coinbase: the output is a block reward, spendable only 100 blocks
	// deep.
	Coinbase  bool
	Height    int64
	BlockHash string
}

// EventKind is what the scanner tells about a deposit.
type EventKind string

// Kinds of events, each told once per (deposit, block): a deposit that a
// reorganisation moves to another block is Reorged, then Seen again there.
const (
	// DepositSeen: mined in a block of the best chain, counting
	// confirmations.
	DepositSeen EventKind = "seen"
	// DepositConfirmed: its block is Confirmations deep on the best chain.
	DepositConfirmed EventKind = "confirmed"
	// DepositReorged: its block left the best chain (WasConfirmed says
	// whether it had been told confirmed: a reorganisation deeper than
	// the confirmations).
	DepositReorged EventKind = "reorged"
)

// Event is one thing the scanner tells about a deposit.
type Event struct {
	Kind EventKind
	Deposit
	// Confirmations is the depth of the deposit's block when told (0 for
	// DepositReorged).
	Confirmations int64
	// WasConfirmed (DepositReorged only): the deposit had been told
	// confirmed.
	WasConfirmed bool
}

// BlockRef is a block of the scanned chain: its height and hash.
type BlockRef struct {
	Height int64
	Hash   chainhash.Hash
}

// BlockLog keeps the scanner's recent blocks across restarts (the store's
// btc_blocks; a slice in tests). Save replaces every block from height from
// on with blocks (all at from or above, ascending) and forgets those below
// keepFrom.
type BlockLog interface {
	Load(ctx context.Context) ([]BlockRef, error)
	Save(ctx context.Context, from int64, blocks []BlockRef, keepFrom int64) error
}

// ErrDeepReorg: the node's best chain no longer holds any block the
// scanner keeps: a reorganisation deeper than its window. The scanner goes
// on from the lowest block it dropped; deposits below it are not
// re-examined (an operator reconciles them).
var ErrDeepReorg = errors.New("reorganisation deeper than the scanner's window")

// ScannerConfig configures a Scanner.
type ScannerConfig struct {
	// Confirmations is the depth at which a deposit is confirmed (1: its
	// own block).
	Confirmations int64
	// StartHeight is the first block read when the log holds none (the
	// node's head at the first start, typically).
	StartHeight int64
	// Window is how many recent blocks the scanner keeps to find
	// reorganisations, at least Confirmations+1; 0 means
	// max(2·Confirmations, Confirmations+10).
	Window int64
}

// WatchSource lists watched addresses in the order their watches began
// (the store's Watched).
type WatchSource interface {
	After(ctx context.Context, after int64, limit int) ([]WatchedAddress, error)
}

// Scanner reads each new block of the node's best chain once, matches its
// outputs against the watched addresses, and tells each deposit's
// milestones: seen, confirmed (by depth) and reorged (by block hash: the
// hash the node now gives for a height differs from the one read). It keeps
// the recent blocks in its BlockLog and the deposits found in them in
// memory; after a restart it reads the kept blocks again and tells their
// deposits again (delivery is at least once: consumers ignore repeats).
// With a WatchSource, each poll first adds the watches begun since the last
// one to the WatchSet, and reads back the blocks from a new watch's height
// to the cursor for it (a watch begun at the node's head while the scanner
// was already there).
// Not safe for concurrent use: one scanner per chain polls.
type Scanner struct {
	cfg       ScannerConfig
	c         *Client
	watch     *WatchSet
	log       BlockLog
	src       WatchSource
	lastWatch int64 // the ID of the last watch added from src
	loaded    bool
	blocks    []BlockRef                  // ascending, contiguous; the last is the cursor
	deposits  map[chainhash.Hash][]*found // by block hash
}

type found struct {
	Deposit
	confirmed bool
}

// NewScanner makes a scanner of c's chain matching outputs against watch,
// keeping its blocks in log. src may be nil: the caller fills watch.
func NewScanner(cfg ScannerConfig, c *Client, watch *WatchSet, log BlockLog, src WatchSource) (*Scanner, error) {
	if cfg.Confirmations < 1 {
		return nil, fmt.Errorf("confirmations %d: at least 1", cfg.Confirmations)
	}
	if cfg.Window == 0 {
		cfg.Window = max(2*cfg.Confirmations, cfg.Confirmations+10)
	}
	if cfg.Window <= cfg.Confirmations {
		return nil, fmt.Errorf("window %d: above the confirmations (%d)", cfg.Window, cfg.Confirmations)
	}
	return &Scanner{cfg: cfg, c: c, watch: watch, log: log, src: src, deposits: map[chainhash.Hash][]*found{}}, nil
}

// Cursor is the last block read (zero before the first).
func (s *Scanner) Cursor() BlockRef {
	if len(s.blocks) == 0 {
		return BlockRef{}
	}
	return s.blocks[len(s.blocks)-1]
}

// Poll reads what the node's best chain changed since the last poll and
// returns the events, in order: reorganised deposits first (newest block
// first), then deposits of new blocks (by height, then transaction order,
// then output index), then confirmations. A node error returns the events
// of the work done before it (nil error only when all is done); the next
// poll goes on from there.
func (s *Scanner) Poll(ctx context.Context) ([]Event, error) {
	var evs []Event
	from := int64(-1) // the lowest height whose block changed, to save
	// The watches begun since the last poll. At the first poll (a start)
	// they are all the watches, and the kept blocks are read again below
	// with every one of them: nothing is read back for them.
	fresh, err := s.loadWatches(ctx)
	if err != nil {
		return nil, err
	}
	backfilled := false
	defer func() {
		if !backfilled {
			s.requeue(fresh)
		}
	}()
	if !s.loaded {
		fresh = nil
		kept, err := s.log.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("loading the scanned blocks: %w", err)
		}
		s.loaded = true
		// Read the kept blocks again for their deposits; a block the node
		// no longer has on its best chain is dropped below.
		for _, b := range kept {
			if len(s.blocks) > 0 && b.Height != s.blocks[len(s.blocks)-1].Height+1 {
				break // a gap: keep what is contiguous
			}
			s.blocks = append(s.blocks, b)
		}
		for i, b := range s.blocks {
			block, err := s.c.Block(ctx, b.Hash)
			if IsNotFound(err) {
				// A node that lost its last blocks (btcd killed before it
				// flushed them) does not know them at all: they are gone
				// from every chain, and so are the deposits the consumers
				// were told of there, which their proofs find missing.
				s.blocks, from = s.blocks[:i], b.Height
				break
			}
			if err != nil {
				s.blocks, s.loaded = nil, false
				clear(s.deposits)
				return nil, err
			}
			s.deposits[b.Hash] = match(s.watch, block.Transactions, b)
		}
		tip := s.Cursor().Height
		for _, b := range s.blocks {
			for _, d := range s.deposits[b.Hash] {
				evs = append(evs, Event{Kind: DepositSeen, Deposit: d.Deposit, Confirmations: tip - b.Height + 1})
			}
		}
	}
	tip, _, err := s.c.Head(ctx)
	if err != nil {
		return evs, err
	}
	// Step back while the node's best chain disagrees with the last kept
	// block (or is shorter than it).
	for len(s.blocks) > 0 {
		last := s.blocks[len(s.blocks)-1]
		if last.Height <= tip {
			h, err := s.c.BlockHash(ctx, last.Height)
			if err != nil {
				return evs, s.persist(ctx, from, err)
			}
			if h == last.Hash {
				break
			}
		}
		evs = append(evs, s.drop(last)...)
		s.blocks = s.blocks[:len(s.blocks)-1]
		from = last.Height
	}
	if len(s.blocks) == 0 && from < 0 && s.cfg.StartHeight > 0 {
		// A first start: the block below StartHeight anchors the chain
		// read, so that a reorganisation of StartHeight itself is found.
		// Its own outputs are not read.
		h, err := s.c.BlockHash(ctx, s.cfg.StartHeight-1)
		if err != nil {
			return evs, err
		}
		s.blocks = []BlockRef{{Height: s.cfg.StartHeight - 1, Hash: h}}
		from = s.cfg.StartHeight - 1
	}
	var deep error
	if len(s.blocks) == 0 && from >= 0 {
		deep = fmt.Errorf("%w: every kept block down to %d left the best chain", ErrDeepReorg, from)
	}
	next := s.cfg.StartHeight
	if len(s.blocks) > 0 {
		next = s.Cursor().Height + 1
	} else if from >= 0 {
		next = from
	}
	if from < 0 || next < from {
		from = next
	}
	back, err := s.backfill(ctx, fresh)
	evs = append(evs, back...)
	if err != nil {
		return evs, s.persist(ctx, from, err)
	}
	backfilled = true
	for ; next <= tip; next++ {
		hash, err := s.c.BlockHash(ctx, next)
		if err != nil {
			return evs, s.persist(ctx, from, err)
		}
		block, err := s.c.Block(ctx, hash)
		if err != nil {
			return evs, s.persist(ctx, from, err)
		}
		if len(s.blocks) > 0 && block.Header.PrevBlock != s.Cursor().Hash {
			break // the node reorganised while we read: the next poll steps back
		}
		ref := BlockRef{Height: next, Hash: hash}
		s.blocks = append(s.blocks, ref)
		ds := match(s.watch, block.Transactions, ref)
		s.deposits[hash] = ds
		for _, d := range ds {
			evs = append(evs, Event{Kind: DepositSeen, Deposit: d.Deposit})
		}
	}
	// Depths, and the window.
	head := s.Cursor().Height
	for i := range evs {
		if evs[i].Kind == DepositSeen {
			evs[i].Confirmations = head - evs[i].Height + 1
		}
	}
	for _, b := range s.blocks {
		depth := head - b.Height + 1
		for _, d := range s.deposits[b.Hash] {
			if !d.confirmed && depth >= s.cfg.Confirmations {
				d.confirmed = true
				evs = append(evs, Event{Kind: DepositConfirmed, Deposit: d.Deposit, Confirmations: depth})
			}
		}
	}
	for int64(len(s.blocks)) > s.cfg.Window {
		delete(s.deposits, s.blocks[0].Hash)
		s.blocks = s.blocks[1:]
	}
	return evs, s.persist(ctx, from, deep)
}

// persist saves the blocks from height from on, and returns cause (or the
// saving's error).
func (s *Scanner) persist(ctx context.Context, from int64, cause error) error {
	if from < 0 {
		return cause
	}
	var changed []BlockRef
	for _, b := range s.blocks {
		if b.Height >= from {
			changed = append(changed, b)
		}
	}
	keepFrom := from
	if len(s.blocks) > 0 {
		keepFrom = s.blocks[0].Height
	}
	if err := s.log.Save(ctx, from, changed, keepFrom); err != nil {
		return errors.Join(cause, fmt.Errorf("saving the scanned blocks: %w", err))
	}
	return cause
}

// drop forgets block b's deposits and tells them reorged, the newest
// first.
func (s *Scanner) drop(b BlockRef) []Event {
	ds := s.deposits[b.Hash]
	delete(s.deposits, b.Hash)
	evs := make([]Event, 0, len(ds))
	for i := len(ds) - 1; i >= 0; i-- {
		evs = append(evs, Event{Kind: DepositReorged, Deposit: ds[i].Deposit, WasConfirmed: ds[i].confirmed})
	}
	return evs
}

// loadWatches adds the watches src has begun since the last call to the
// WatchSet and returns them.
func (s *Scanner) loadWatches(ctx context.Context) ([]WatchedAddress, error) {
	if s.src == nil {
		return nil, nil
	}
	const page = 10_000
	var out []WatchedAddress
	for {
		ws, err := s.src.After(ctx, s.lastWatch, page)
		if err != nil {
			return out, fmt.Errorf("loading the watched addresses: %w", err)
		}
		for _, w := range ws {
			if _, err := s.watch.Add(w.Address); err != nil {
				return out, fmt.Errorf("watched address %d: %w", w.ID, err)
			}
			s.lastWatch = w.ID
			out = append(out, w)
		}
		if len(ws) < page {
			return out, nil
		}
	}
}

// requeue has the next poll load ws again and read back for them, when
// this poll could not: they stay in the WatchSet (the blocks read meanwhile
// match them), and a deposit read back twice is told twice, which
// consumers ignore.
func (s *Scanner) requeue(ws []WatchedAddress) {
	if len(ws) > 0 && ws[0].ID-1 < s.lastWatch {
		s.lastWatch = ws[0].ID - 1
	}
}

// backfill reads the blocks from the lowest height of ws's watches up to
// the cursor for ws's addresses alone: deposits made to them before the
// scanner loaded them. Deposits in the kept window join it (confirmed by
// depth below); older ones are told seen and confirmed at once.
func (s *Scanner) backfill(ctx context.Context, ws []WatchedAddress) ([]Event, error) {
	if len(ws) == 0 || len(s.blocks) == 0 {
		return nil, nil
	}
	cursor := s.Cursor().Height
	only := NewWatchSet(s.c.Params())
	lowest := cursor + 1
	for _, w := range ws {
		if w.FromHeight > cursor {
			continue // the blocks from its height on are still to be read
		}
		if _, err := only.Add(w.Address); err != nil {
			return nil, err
		}
		lowest = min(lowest, w.FromHeight)
	}
	if only.Len() == 0 {
		return nil, nil
	}
	windowStart := s.blocks[0].Height
	var evs []Event
	for h := max(lowest, 0); h <= cursor; h++ {
		var ref BlockRef
		if h >= windowStart {
			ref = s.blocks[h-windowStart]
		} else {
			hash, err := s.c.BlockHash(ctx, h)
			if err != nil {
				return evs, err
			}
			ref = BlockRef{Height: h, Hash: hash}
		}
		block, err := s.c.Block(ctx, ref.Hash)
		if err != nil {
			return evs, err
		}
		ds := match(only, block.Transactions, ref)
		for _, d := range ds {
			evs = append(evs, Event{Kind: DepositSeen, Deposit: d.Deposit})
		}
		if h >= windowStart {
			// A deposit read back before (a poll that failed half-way)
			// is kept once.
			for _, d := range ds {
				if !slices.ContainsFunc(s.deposits[ref.Hash], func(k *found) bool { return k.TxID == d.TxID && k.Vout == d.Vout }) {
					s.deposits[ref.Hash] = append(s.deposits[ref.Hash], d)
				}
			}
			continue
		}
		for _, d := range ds {
			evs = append(evs, Event{Kind: DepositConfirmed, Deposit: d.Deposit, Confirmations: cursor - h + 1})
		}
	}
	return evs, nil
}

// match finds the outputs of txs paying addresses of watch, in transaction
// order then output order.
func match(watch *WatchSet, txs []*wire.MsgTx, b BlockRef) []*found {
	var out []*found
	for _, tx := range txs {
		var txid string
		for i, o := range tx.TxOut {
			addr, ok := watch.Match(o.PkScript)
			if !ok {
				continue
			}
			if txid == "" {
				txid = tx.TxHash().String()
			}
			out = append(out, &found{Deposit: Deposit{TxID: txid, Vout: uint32(i), Address: addr, Sats: o.Value,
				Coinbase: blockchain.IsCoinBaseTx(tx), Height: b.Height, BlockHash: b.Hash.String()}})
		}
	}
	return out
}

// Run polls every interval until ctx ends, handing each poll's events to
// sink in order. A node or sink error is logged by the caller's onErr and
// the poll is repeated at the next interval: events handed to a sink that
// failed are handed again (the scanner's kept blocks are read again only
// after a restart, so Run keeps the undelivered events and delivers them
// first). ErrDeepReorg is handed to onErr too; the scanner goes on.
func (s *Scanner) Run(ctx context.Context, interval time.Duration, sink func(context.Context, []Event) error, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var pending []Event
	for {
		evs, err := s.Poll(ctx)
		pending = append(pending, evs...)
		if err != nil && ctx.Err() == nil {
			onErr(err)
		}
		if len(pending) > 0 {
			if err := sink(ctx, pending); err != nil {
				if ctx.Err() == nil {
					onErr(fmt.Errorf("handing %d events over: %w", len(pending), err))
				}
			} else {
				pending = nil
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

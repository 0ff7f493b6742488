package watch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/chain"
	"payflow/chain/evm"
)

// Confirmation tracking per block: the work per head
// follows the chain, not the number of transfers in flight.
//
// The follower holds every open tracked row in memory, indexed by hash, and
// the hashes of the recent canonical blocks it has read (a window). On each
// pass it:
//  1. picks up rows tracked since the last pass (checked_at IS NULL; the
//     whole open set at start and every trackerReload, which also drops rows
//     closed by anyone else);
//  2. follows the chain from the last block it read to the head: one header
//     and one eth_getBlockReceipts per new block (none for an empty block),
//     matched against the index. A header whose parent is not the block it
//     holds at that height is a reorg: it steps back until the chains agree,
//     forgets the blocks it stepped over (their transfers are no longer
//     included) and reads the new branch. A head at or below the last block
//     read costs one header, to notice a reorg to an equal or shorter chain;
//  3. looks up the receipt of each row it has never placed, once (rows
//     tracked after their transfer was mined, and every row at start);
//  4. settles: a row included in a block it is told "seen" (when it wants
//     seen); Confirmations deep, in a block still on the chain, "confirmed";
//     no longer included, "reorged". Pending rows payflow signed cost one
//     NonceAt per sender and head: a nonce used at confirmed depth by another
//     transaction means "dropped" (or superseded, quietly).
//
// Blocks beyond the window (a long disconnect, a reorg deeper than the
// window) make it start over as at start: every row is looked up once.

// inclusion is where the chain holds a transaction: block and receipt status.
type inclusion struct {
	number uint64
	hash   common.Hash
	ok     bool
}

func includedBy(r *types.Receipt) *inclusion {
	return &inclusion{number: r.BlockNumber.Uint64(), hash: r.BlockHash, ok: r.Status == types.ReceiptStatusSuccessful}
}

func (in *inclusion) event(txHash string, m chain.Milestone) chain.TxEvent {
	return chain.TxEvent{TxHash: txHash, Milestone: m, BlockNumber: in.number, BlockHash: in.hash.Hex(), Succeeded: in.ok}
}

// trackerReload is how often the follower re-reads the whole open set.
const trackerReload = time.Minute

// followed is one open tracked row and what the follower knows of it.
type followed struct {
	trackedTx            // as last recorded in tracked_txs
	in        *inclusion // the block holding it; nil: none known
	look      bool       // its receipt is to be looked up (never placed yet)
	gone      bool       // no longer followed
}

type rowKey struct{ hash, workflowID string }

// follower is the Tracker's memory between passes.
type follower struct {
	t       *Tracker
	rows    map[rowKey]*followed
	byHash  map[common.Hash][]*followed
	perWF   map[string]int                // open rows per workflow
	byBlock map[uint64]map[*followed]bool // rows by the height of their inclusion
	queue   []*followed                   // rows to look up, oldest first
	window  uint64
	started bool
	last    uint64                 // the last block read
	canon   map[uint64]common.Hash // hashes of the blocks read, (last-window, last]
	loaded  time.Time              // when the whole open set was last read
	nonces  map[common.Address][2]uint64
	// noBlockReceipts: the node lacks eth_getBlockReceipts; read the block's
	// transactions and the receipts of the followed ones instead.
	noBlockReceipts bool
}

func newFollower(t *Tracker) *follower {
	return &follower{t: t, rows: map[rowKey]*followed{}, byHash: map[common.Hash][]*followed{}, perWF: map[string]int{},
		byBlock: map[uint64]map[*followed]bool{}, canon: map[uint64]common.Hash{},
		window: max(256, 2*t.cfg.Confirmations), nonces: map[common.Address][2]uint64{}}
}

// pass brings the follower up to head. Errors leave what failed to the next
// pass: every step is repeated until it succeeds.
func (f *follower) pass(ctx context.Context, head uint64) error {
	all := !f.started || time.Since(f.loaded) >= trackerReload
	if err := f.load(ctx, all); err != nil {
		return err
	}
	var errs []error
	if err := f.follow(ctx, head); err != nil {
		errs = append(errs, err)
	}
	if err := f.lookUp(ctx); err != nil {
		errs = append(errs, err)
	}
	if f.started {
		errs = append(errs, f.settle(ctx))
	}
	return errors.Join(errs...)
}

// load reads the open rows tracked since the last pass (all of them when all
// is set, forgetting rows no longer open) and marks them picked up.
func (f *follower) load(ctx context.Context, all bool) error {
	start := time.Now()
	loaded, err := f.t.tracked.Open(ctx, !all)
	if err != nil {
		return err
	}
	var fresh []trackedTx
	open := map[rowKey]bool{}
	for _, l := range loaded {
		r := trackedTx{TrackedRow: l}
		k := rowKey{r.Hash, r.WorkflowID}
		open[k] = true
		if l.Unchecked {
			fresh = append(fresh, r)
		}
		if f.rows[k] == nil {
			f.add(r)
		}
	}
	if all {
		for k, r := range f.rows {
			if !open[k] {
				f.remove(r)
			}
		}
		f.loaded = start
	}
	return f.t.markChecked(ctx, fresh)
}

func (f *follower) add(r trackedTx) {
	e := &followed{trackedTx: r, look: true}
	f.rows[rowKey{r.Hash, r.WorkflowID}] = e
	f.perWF[r.WorkflowID]++
	h := common.HexToHash(r.Hash)
	f.byHash[h] = append(f.byHash[h], e)
	f.queue = append(f.queue, e)
}

func (f *follower) remove(e *followed) {
	if e.gone {
		return
	}
	e.gone = true
	f.place(e, nil)
	delete(f.rows, rowKey{e.Hash, e.WorkflowID})
	if f.perWF[e.WorkflowID]--; f.perWF[e.WorkflowID] <= 0 {
		delete(f.perWF, e.WorkflowID)
	}
	h := common.HexToHash(e.Hash)
	list := f.byHash[h]
	for i, o := range list {
		if o == e {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(f.byHash, h)
	} else {
		f.byHash[h] = list
	}
}

// place records where the chain holds e's transaction (nil: nowhere known).
func (f *follower) place(e *followed, in *inclusion) {
	if e.in != nil {
		if set := f.byBlock[e.in.number]; set != nil {
			delete(set, e)
			if len(set) == 0 {
				delete(f.byBlock, e.in.number)
			}
		}
	}
	e.in = in
	if in != nil {
		if f.byBlock[in.number] == nil {
			f.byBlock[in.number] = map[*followed]bool{}
		}
		f.byBlock[in.number][e] = true
	}
}

// restart forgets the chain: every row is looked up again.
func (f *follower) restart() {
	f.started = false
	f.canon = map[uint64]common.Hash{}
	f.nonces = map[common.Address][2]uint64{}
	f.queue = f.queue[:0]
	for _, e := range f.rows {
		f.place(e, nil)
		e.look = true
		f.queue = append(f.queue, e)
	}
}

// follow reads the chain from the last block read to head (see the file
// comment).
func (f *follower) follow(ctx context.Context, head uint64) error {
	if f.started && (head > f.last+f.window || f.last > head+f.window) {
		f.restart() // too far to walk: start over
	}
	if !f.started {
		hdr, err := headerAt(ctx, f.t.backend, head)
		if err != nil {
			return err
		}
		f.canon[head], f.last, f.started = hdr.Hash(), head, true
		return nil
	}
	if head <= f.last {
		// The head did not move, or went back: is our block at its height
		// still the node's? Step back to where the chains agree.
		n := head
		for {
			want, ok := f.canon[n]
			if !ok {
				f.restart()
				return f.follow(ctx, head)
			}
			hdr, err := headerAt(ctx, f.t.backend, n)
			if err != nil {
				return err
			}
			if hdr.Hash() == want {
				break
			}
			n--
		}
		f.rollback(n)
	}
	for f.last < head {
		hdr, err := headerAt(ctx, f.t.backend, f.last+1)
		if err != nil {
			return err
		}
		if hdr.ParentHash != f.canon[f.last] { // our last block left the chain
			if _, ok := f.canon[f.last-1]; !ok {
				f.restart()
				return f.follow(ctx, head)
			}
			f.rollback(f.last - 1)
			continue
		}
		if err := f.read(ctx, hdr); err != nil {
			return err
		}
	}
	return nil
}

// rollback forgets the blocks above n: their transfers are included nowhere
// known until a block of the new branch holds them.
func (f *follower) rollback(n uint64) {
	for h := n + 1; h <= f.last; h++ {
		for e := range f.byBlock[h] {
			f.place(e, nil)
		}
		delete(f.canon, h)
	}
	if n < f.last {
		f.nonces = map[common.Address][2]uint64{}
	}
	f.last = n
}

// read matches one new block's receipts against the followed rows. A row
// placed at this height in another block (by a receipt lookup) is not there.
func (f *follower) read(ctx context.Context, hdr *types.Header) error {
	n, hash := hdr.Number.Uint64(), hdr.Hash()
	found := map[*followed]bool{}
	if len(f.rows) > 0 && hdr.TxHash != types.EmptyTxsHash {
		rcpts, err := f.receipts(ctx, hash)
		if err != nil {
			return err
		}
		for _, r := range rcpts {
			for _, e := range f.byHash[r.TxHash] {
				f.place(e, &inclusion{number: n, hash: hash, ok: r.Status == types.ReceiptStatusSuccessful})
				e.look = false
				found[e] = true
			}
		}
	}
	for e := range f.byBlock[n] {
		if !found[e] {
			f.place(e, nil)
		}
	}
	f.canon[n], f.last = hash, n
	if n >= f.window {
		delete(f.canon, n-f.window)
	}
	return nil
}

// receipts returns the receipts of block hash that matter: all of them with
// eth_getBlockReceipts, else those of the followed transactions it holds.
func (f *follower) receipts(ctx context.Context, hash common.Hash) ([]*types.Receipt, error) {
	type blockReceipter interface {
		BlockReceipts(ctx context.Context, blockNrOrHash rpc.BlockNumberOrHash) ([]*types.Receipt, error)
	}
	if br, ok := f.t.backend.(blockReceipter); ok && !f.noBlockReceipts {
		rs, err := br.BlockReceipts(ctx, rpc.BlockNumberOrHashWithHash(hash, false))
		var re rpc.Error
		if errors.As(err, &re) && re.ErrorCode() == -32601 { // method not found
			f.noBlockReceipts = true
			f.t.log.Info("node lacks eth_getBlockReceipts; reading block transactions instead")
		} else if err != nil {
			return nil, fmt.Errorf("reading receipts of block %s: %w", hash.Hex(), err)
		} else {
			return rs, nil
		}
	}
	bb, ok := f.t.backend.(interface {
		BlockByHash(ctx context.Context, hash common.Hash) (*types.Block, error)
	})
	if !ok {
		return nil, errors.New("the node client reads neither block receipts nor blocks")
	}
	b, err := bb.BlockByHash(ctx, hash)
	if err != nil {
		return nil, fmt.Errorf("reading block %s: %w", hash.Hex(), err)
	}
	var rs []*types.Receipt
	for _, tx := range b.Transactions() {
		if len(f.byHash[tx.Hash()]) == 0 {
			continue
		}
		r, err := evm.ReceiptOf(ctx, f.t.backend, tx.Hash())
		if err != nil {
			return nil, err
		}
		if r != nil && r.BlockHash == hash {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// lookUp reads, side by side, the receipts of up to BatchSize rows never
// placed. A receipt in a block the window holds another hash for is not
// trusted: the row is looked up again next pass, after the chain is re-read.
func (f *follower) lookUp(ctx context.Context) error {
	if !f.started {
		return nil
	}
	var batch []*followed
	rest := f.queue[:0]
	for _, e := range f.queue {
		switch {
		case e.gone || !e.look:
		case len(batch) < f.t.cfg.BatchSize:
			batch = append(batch, e)
		default:
			rest = append(rest, e)
		}
	}
	f.queue = rest
	found := make([]*types.Receipt, len(batch))
	errs := parallel(len(batch), func(i int) error {
		r, err := evm.ReceiptOf(ctx, f.t.backend, common.HexToHash(batch[i].Hash))
		found[i] = r
		return err
	})
	for i, e := range batch {
		if errs[i] != nil {
			f.queue = append(f.queue, e)
			continue
		}
		r := found[i]
		if r == nil {
			e.look = false
			continue
		}
		in := includedBy(r)
		if h, ok := f.canon[in.number]; ok && h != in.hash {
			f.queue = append(f.queue, e)
			continue
		}
		f.place(e, in)
		e.look = false
	}
	return errors.Join(errs...)
}

// step is one row's work in settle.
type step struct {
	e       *followed
	reorged bool // its block left the chain: back to pending
	seen    bool // announce (record) its block
	confirm bool
	retire  bool // its nonce is used at confirmed depth
	// results
	r          trackedTx
	superseded int64
	lookAgain  bool
}

// settle tells owners what the chain says of their rows (see the file
// comment). Transitions run side by side: each is a notification and a
// database transaction.
func (f *follower) settle(ctx context.Context) error {
	head, conf := f.last, f.t.cfg.Confirmations
	var errs []error
	older := map[uint64]common.Hash{} // headers read for blocks before the window
	var steps []*step
	waiting := map[common.Address][]*followed{}
	for _, e := range f.rows {
		switch {
		case e.look:
		case e.in == nil && e.State == "seen":
			steps = append(steps, &step{e: e, reorged: true})
		case e.in == nil:
			if e.Step != "" && head+1 >= conf {
				waiting[e.From] = append(waiting[e.From], e)
			}
		default:
			s := &step{e: e, seen: e.State == "pending" || e.BlockHash != e.in.hash.Hex()}
			if e.in.number <= head && head+1 >= e.in.number+conf {
				h, ok := f.canon[e.in.number]
				if !ok {
					if h, ok = older[e.in.number]; !ok {
						hdr, err := headerAt(ctx, f.t.backend, e.in.number)
						if err != nil {
							errs = append(errs, err)
							continue
						}
						h = hdr.Hash()
						older[e.in.number] = h
					}
				}
				if h != e.in.hash { // it was in a block the chain no longer has: look again
					f.place(e, nil)
					e.look = true
					f.queue = append(f.queue, e)
					continue
				}
				s.confirm = true
			}
			if s.seen || s.confirm {
				steps = append(steps, s)
			}
		}
	}
	at := head + 1 - conf
	for from, es := range waiting {
		used, err := f.nonceAt(ctx, from, at)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range es {
			if used > e.Nonce {
				steps = append(steps, &step{e: e, retire: true})
			}
		}
	}
	steps, quiet := quietSeen(steps)
	for in, es := range quiet {
		errs = append(errs, f.recordSeen(ctx, in, es))
	}
	for _, s := range steps {
		s.e.alone = f.perWF[s.e.WorkflowID] <= 1
	}
	stepErrs := parallel(len(steps), func(i int) error { return f.run(ctx, head, steps[i]) })
	errs = append(errs, stepErrs...)
	var refresh []string
	for _, s := range steps {
		e := s.e
		e.trackedTx = s.r
		if s.superseded > 0 {
			refresh = append(refresh, e.WorkflowID)
		}
		switch {
		case e.State == "confirmed" || e.State == "done":
			f.remove(e)
		case s.lookAgain:
			f.place(e, nil)
			e.look = true
			f.queue = append(f.queue, e)
		}
	}
	for _, wf := range refresh {
		errs = append(errs, f.refresh(ctx, wf))
	}
	return errors.Join(errs...)
}

// quietSeen takes out of steps the rows whose owners do not want "seen"
// (payments): their block is recorded in one statement per block, or not at
// all when the same pass confirms them (the confirmation records it).
func quietSeen(steps []*step) ([]*step, map[inclusion][]*followed) {
	quiet := map[inclusion][]*followed{}
	kept := steps[:0]
	for _, s := range steps {
		if s.seen && !s.e.NotifySeen {
			if !s.confirm {
				quiet[*s.e.in] = append(quiet[*s.e.in], s.e)
				continue
			}
			s.seen = false
		}
		kept = append(kept, s)
	}
	return kept, quiet
}

// recordSeen records that block in holds the transactions of es, whose
// owners are not told.
func (f *follower) recordSeen(ctx context.Context, in inclusion, es []*followed) error {
	keys := make([]evm.TrackedKey, len(es))
	for i, e := range es {
		keys[i] = evm.TrackedKey{Hash: e.Hash, WorkflowID: e.WorkflowID}
	}
	if err := f.t.tracked.MarkSeen(ctx, in.number, in.hash, keys); err != nil {
		return err
	}
	for _, e := range es {
		e.State, e.BlockHash, e.BlockNumber = "seen", in.hash.Hex(), sql.NullInt64{Int64: int64(in.number), Valid: true}
	}
	return nil
}

// run carries out one step on a copy of its row (s.r), so steps can run side
// by side; settle applies the results.
func (f *follower) run(ctx context.Context, head uint64, s *step) error {
	t, r := f.t, s.e.trackedTx
	defer func() { s.r = r }()
	switch {
	case s.reorged:
		state, _, err := t.transition(ctx, r, "pending", nil, chain.TxEvent{TxHash: r.Hash, Milestone: chain.MilestoneReorged})
		r.State = state
		if err == nil {
			r.BlockHash, r.BlockNumber = "", sql.NullInt64{}
		}
		return err
	case s.retire:
		what, err := retireUnminable(ctx, t, head, r)
		switch what {
		case retiredSuperseded, retiredDropped:
			r.State = "done"
		case retiredMinedItself:
			s.lookAgain = true
		}
		return err
	}
	in := s.e.in
	if s.seen {
		state, _, err := t.transition(ctx, r, "seen", in, in.event(r.Hash, chain.MilestoneSeen))
		r.State = state
		if err != nil {
			return err
		}
		r.BlockHash, r.BlockNumber = in.hash.Hex(), sql.NullInt64{Int64: int64(in.number), Valid: true}
		if state != "seen" {
			return nil // the owner is gone
		}
	}
	if s.confirm {
		state, n, err := t.transition(ctx, r, "confirmed", in, in.event(r.Hash, chain.MilestoneConfirmed))
		r.State, s.superseded = state, n
		return err
	}
	return nil
}

// retired is what retireUnminable did with a row.
type retired int

const (
	retiredNot         retired = iota // nothing: an attempt is mined but not deep yet
	retiredSuperseded                 // another attempt of its step is mined deep: done, quietly
	retiredDropped                    // no attempt is mined: done, owner told "dropped" (or gone)
	retiredMinedItself                // its own receipt exists after all: look again
)

// retireUnminable ends the tracking of pending row r, payflow-signed, whose
// nonce is used at confirmed depth (at block head-Confirmations+1): by none of
// its step's attempts, it is dropped (its owner is told); by another attempt
// that is confirmed deep, it was superseded (the owner follows that attempt)
// and is retired quietly.
func retireUnminable(ctx context.Context, t *Tracker, head uint64, r trackedTx) (retired, error) {
	attempts, err := t.store.Attempts(ctx, r.SignedWF, r.Step)
	if err != nil {
		return retiredNot, err
	}
	for _, a := range attempts {
		rc, err := evm.ReceiptOf(ctx, t.backend, a.Hash)
		if err != nil {
			return retiredNot, err
		}
		if rc == nil {
			continue
		}
		if a.Hash == common.HexToHash(r.Hash) {
			return retiredMinedItself, nil
		}
		if head+1 >= rc.BlockNumber.Uint64()+t.cfg.Confirmations {
			if err := t.tracked.RetireSuperseded(ctx, evm.TrackedKey{Hash: r.Hash, WorkflowID: r.WorkflowID}); err != nil {
				return retiredNot, err
			}
			t.log.Info("tracked transaction superseded", "workflow_id", r.WorkflowID, "tx_hash", r.Hash, "mined", a.Hash.Hex())
			return retiredSuperseded, nil
		}
		return retiredNot, nil
	}
	if _, _, err := t.transition(ctx, r, "done", nil, chain.TxEvent{TxHash: r.Hash, Milestone: chain.MilestoneDropped}); err != nil {
		return retiredNot, err
	}
	return retiredDropped, nil
}

// refresh forgets workflow wf's rows that are no longer open: a confirmation
// retired its other attempts on the same nonce.
func (f *follower) refresh(ctx context.Context, wf string) error {
	open, err := f.t.tracked.OpenHashes(ctx, wf)
	if err != nil {
		return err
	}
	for k, e := range f.rows {
		if k.workflowID == wf && !open[k.hash] {
			f.remove(e)
		}
	}
	return nil
}

// nonceAt is from's nonce after block at, read once per block.
func (f *follower) nonceAt(ctx context.Context, from common.Address, at uint64) (uint64, error) {
	if c, ok := f.nonces[from]; ok && c[0] == at {
		return c[1], nil
	}
	n, err := f.t.backend.NonceAt(ctx, from, new(big.Int).SetUint64(at))
	if err != nil {
		return 0, fmt.Errorf("reading nonce of %s at block %d: %w", evm.Lower(from), at, err)
	}
	f.nonces[from] = [2]uint64{at, n}
	return n, nil
}

func headerAt(ctx context.Context, b evm.Backend, n uint64) (*types.Header, error) {
	hdr, err := b.HeaderByNumber(ctx, new(big.Int).SetUint64(n))
	if errors.Is(err, ethereum.NotFound) || (err == nil && hdr == nil) {
		return nil, fmt.Errorf("reading header %d: %w", n, ethereum.NotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading header %d: %w", n, err)
	}
	return hdr, nil
}

// parallel runs fn(0..n-1) on up to 16 goroutines and returns their errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(16, n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

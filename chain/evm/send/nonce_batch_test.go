package send_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/chain/evm"
	"payflow/chain/evm/send"

	"payflow/chain/evm/evmtest"
)

// ethForward serves eth_sendRawTransaction over JSON-RPC by handing the
// transaction to the simulated node, whose go-ethereum client hides its own
// JSON-RPC client: with it the sender's batches travel as real JSON-RPC
// batches (an in-process rpc.Server decodes them call by call, as geth's
// does) to the real simulated node.
type ethForward struct{ node evm.Backend }

func (e ethForward) SendRawTransaction(ctx context.Context, raw hexutil.Bytes) (common.Hash, error) {
	var tx types.Transaction
	if err := tx.UnmarshalBinary(raw); err != nil {
		return common.Hash{}, err
	}
	return tx.Hash(), e.node.SendTransaction(ctx, &tx)
}

// rpcBacked is the simulated node with a JSON-RPC client to send through.
type rpcBacked struct {
	evm.Backend
	rc *rpc.Client
}

func (b rpcBacked) Client() *rpc.Client { return b.rc }

// newRPCBroadcaster is a broadcaster whose sender batches over JSON-RPC.
func (f *chainFixture) newRPCBroadcaster() *send.Broadcaster {
	f.T.Helper()
	srv := rpc.NewServer()
	if err := srv.RegisterName("eth", ethForward{node: f.Client}); err != nil {
		f.T.Fatal(err)
	}
	rc := rpc.DialInProc(srv)
	f.T.Cleanup(func() { rc.Close(); srv.Stop() })
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: evmtest.ChainName, ChainID: big.NewInt(evmtest.SimChainID),
		MaxFeeWei: evmtest.MaxFeeWei}, f.DB, rpcBacked{Backend: f.Client, rc: rc}, f.Signer, evmtest.DiscardLog())
	if err != nil {
		f.T.Fatal(err)
	}
	return bc
}

// batchedTransfers is how many transfers the one-wallet tests sign (the
// bench signs 10,000 against the dev chain).
const batchedTransfers = 2000

// signAndSendMany signs and sends n transfers (workflow ids prefix-1..n) from
// the sender through callers goroutines, each taking the broadcaster pick
// returns at that moment, with a miner committing blocks meanwhile; then
// mines until the chain's nonce is want. It fails the test on any error.
func (f *chainFixture) signAndSendMany(prefix string, n, callers int, pick func(i int) *send.Broadcaster) {
	f.T.Helper()
	var next atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	mined := make(chan struct{})
	go func() { // the pool holds a few thousand transactions: mine as they come
		defer close(mined)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				f.Sim.Commit()
			}
		}
	}()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n || firstErr.Load() != nil {
					return
				}
				bc := pick(i)
				req := f.Request(fmt.Sprintf("%s-%05d", prefix, i), 3)
				if _, err := bc.Signer.SignTransfer(f.Ctx, req); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("signing %s: %w", req.WorkflowID, err))
					return
				}
				if _, err := bc.Sender.Send(f.Ctx, req.WorkflowID, req.Step); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("sending %s: %w", req.WorkflowID, err))
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-mined
	if err := firstErr.Load(); err != nil {
		f.T.Fatal(err)
	}
}

// requireNoncesExactly checks the sender's stored transactions: exactly n,
// on nonces 0..n-1 each once, one per workflow, all sent, the lane at n;
// then mines until all are on chain and checks the recipient got them all.
func (f *chainFixture) requireNoncesExactly(n, unitsEach int) {
	f.T.Helper()
	var count, distinct, workflows, sent, lo, hi int
	if err := f.DB.QueryRowContext(f.Ctx, `SELECT COUNT(*), COUNT(DISTINCT nonce), COUNT(DISTINCT workflow_id),
		SUM(state='sent'), MIN(nonce), MAX(nonce) FROM signed_txs WHERE chain=? AND from_address=?`,
		evmtest.ChainName, evm.Lower(f.Sender)).Scan(&count, &distinct, &workflows, &sent, &lo, &hi); err != nil {
		f.T.Fatal(err)
	}
	if count != n || distinct != n || workflows != n || lo != 0 || hi != n-1 {
		f.T.Fatalf("stored %d transactions on %d distinct nonces %d..%d for %d workflows; want %d on 0..%d: a gap or a reuse",
			count, distinct, lo, hi, workflows, n, n-1)
	}
	if sent != n {
		f.T.Fatalf("%d of %d marked sent", sent, n)
	}
	if next := f.NextNonce(f.Sender); next != int64(n) {
		f.T.Fatalf("lane checkpointed at %d, want %d", next, n)
	}
	for range 50 {
		if got, err := f.Client.NonceAt(f.Ctx, f.Sender, nil); err == nil && got == uint64(n) {
			break
		}
		f.Sim.Commit()
	}
	if got, err := f.Client.NonceAt(f.Ctx, f.Sender, nil); err != nil || got != uint64(n) {
		f.T.Fatalf("chain nonce %d (%v), want %d: a transfer was not mined", got, err, n)
	}
	if got := f.TokenBalance(evmtest.Recipient); got.Int64() != int64(n*unitsEach) {
		f.T.Fatalf("recipient holds %s, want %d", got, n*unitsEach)
	}
}

// TestBatchedLanesRestartMidwayNoGapNoReuse: 32 callers sign and send
// batchedTransfers from one wallet through the group-committed lanes and
// the batching sender; halfway the process "restarts" (a new broadcaster:
// a new allocator with nothing in memory, a new sender) while calls on the
// old one are still in flight. The stored nonces are exactly 0..n-1, each
// once, all sent, the lane checkpointed at n, and all are mined.
func TestBatchedLanesRestartMidwayNoGapNoReuse(t *testing.T) {
	f := newChainFixture(t)
	var cur atomic.Pointer[send.Broadcaster]
	cur.Store(f.newRPCBroadcaster())
	var restarted atomic.Bool
	f.signAndSendMany("wf-restart", batchedTransfers, 32, func(i int) *send.Broadcaster {
		if i >= batchedTransfers/2 && restarted.CompareAndSwap(false, true) {
			cur.Store(f.newRPCBroadcaster())
		}
		return cur.Load()
	})
	if !restarted.Load() {
		t.Fatal("never restarted")
	}
	f.requireNoncesExactly(batchedTransfers, 3)
}

// TestBatchedLanesTwoProcessesNeverReuse: two broadcasters (two worker
// processes, each with its own in-memory allocator and writer) sign for the
// same wallet at the same time: the lane row serialises their batches, and
// no nonce is used twice or skipped.
func TestBatchedLanesTwoProcessesNeverReuse(t *testing.T) {
	f := newChainFixture(t)
	procs := []*send.Broadcaster{f.BC, f.newRPCBroadcaster()}
	const n = 600
	f.signAndSendMany("wf-two", n, 32, func(i int) *send.Broadcaster { return procs[i%2] })
	f.requireNoncesExactly(n, 3)
}

// TestBatchedLanesFailedUseFailsAlone: 39 callers queued behind a running
// one share ONE transaction (what they write is invisible outside it until
// their batch commits); every third use writes a row and then fails: its
// write is rolled back to its savepoint, its nonce goes to the next caller,
// and the others commit. No two uses run at once.
func TestBatchedLanesFailedUseFailsAlone(t *testing.T) {
	f := newChainFixture(t)
	lanes := f.nonceLanes()
	const n = 40
	refused := errors.New("refused by use")
	var inside, overlaps atomic.Int32
	nonces := make([]uint64, n)
	seen := make([]int, n)    // marker rows this use saw in its transaction
	outside := make([]int, n) // marker rows committed, seen from outside
	errs := make([]error, n)
	entered, gate := make(chan struct{}), make(chan struct{})
	use := func(i int) func(tx *sql.Tx, nonce uint64) error {
		return func(tx *sql.Tx, nonce uint64) error {
			if inside.Add(1) > 1 {
				overlaps.Add(1)
			}
			defer inside.Add(-1)
			if i == 0 {
				close(entered)
				<-gate
			}
			nonces[i] = nonce
			if err := tx.QueryRowContext(f.Ctx, "SELECT COUNT(*) FROM nonces WHERE chain='TST'").Scan(&seen[i]); err != nil {
				return err
			}
			if err := f.DB.QueryRowContext(f.Ctx, "SELECT COUNT(*) FROM nonces WHERE chain='TST'").Scan(&outside[i]); err != nil {
				return err
			}
			if _, err := tx.ExecContext(f.Ctx, "INSERT INTO nonces (chain, address, next_nonce) VALUES ('TST', ?, ?)",
				fmt.Sprintf("use-%02d", i), nonce); err != nil {
				return err
			}
			if i%3 == 1 {
				return refused
			}
			return nil
		}
	}
	f.queueBehindFirst(lanes, lanes.WithNonce, use, errs, entered, gate)

	var taken []uint64
	for i := range n {
		failing := i%3 == 1
		if failing != errors.Is(errs[i], refused) || (!failing && errs[i] != nil) {
			t.Fatalf("caller %d (fails: %v): %v", i, failing, errs[i])
		}
		// Each use sees exactly the markers of the nonces before its own:
		// a failed use's marker was rolled back.
		if seen[i] != int(nonces[i]) {
			t.Fatalf("use %d on nonce %d saw %d markers", i, nonces[i], seen[i])
		}
		if i > 0 && outside[i] != 1 {
			t.Fatalf("use %d saw %d committed markers from outside, want 1 (caller 0's): the 39 did not share one transaction",
				i, outside[i])
		}
		if !failing {
			taken = append(taken, nonces[i])
		}
	}
	if o := overlaps.Load(); o != 0 {
		t.Fatalf("%d uses ran while another held the lane", o)
	}
	got := map[uint64]bool{}
	for _, x := range taken {
		if x >= uint64(len(taken)) || got[x] {
			t.Fatalf("nonces taken %v: not 0..%d each once", taken, len(taken)-1)
		}
		got[x] = true
	}
	if m := f.Count("SELECT COUNT(*) FROM nonces WHERE chain='TST'"); m != len(taken) {
		t.Fatalf("%d markers committed, want %d (failed uses' writes must roll back)", m, len(taken))
	}
	if next := f.NextNonce(f.Sender); next != int64(len(taken)) {
		t.Fatalf("lane at %d, want %d", next, len(taken))
	}
}

// TestBatchedLanesResyncPastStoredNonces: a lane row left behind what is
// stored (here set back by hand) makes the next signature collide on the
// unique (chain, from, nonce, attempt) key: the lane resyncs past the stored
// nonces instead of failing the transfer or reusing a nonce.
func TestBatchedLanesResyncPastStoredNonces(t *testing.T) {
	f := newChainFixture(t)
	for i := range 3 {
		f.SignAndSend(f.Request(fmt.Sprintf("wf-behind-%d", i), 1))
	}
	if _, err := f.DB.ExecContext(f.Ctx, "UPDATE nonces SET next_nonce=1 WHERE chain=? AND address=?",
		evmtest.ChainName, evm.Lower(f.Sender)); err != nil {
		t.Fatal(err)
	}
	stx := f.SignAndSend(f.Request("wf-behind-3", 1))
	if stx.Nonce != 3 || stx.Replayed {
		t.Fatalf("signed %+v, want nonce 3 (past the stored 0..2)", stx)
	}
	f.requireNoncesExactly(4, 1)
}

// TestBatchedSendRefusalFailsAlone: one JSON-RPC batch holds five good
// transfers and one the node refuses (its wallet has no ether for gas): the
// refusal is that send's alone, the five are accepted, marked sent and
// mined, and the refused one stays signed.
func TestBatchedSendRefusalFailsAlone(t *testing.T) {
	f := newChainFixture(t)
	var good []evm.SignedTx
	for i := range 5 {
		stx, err := f.BC.Signer.SignTransfer(f.Ctx, f.Request(fmt.Sprintf("wf-batch-%d", i), 2))
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, stx)
	}
	head, err := f.Client.HeaderByNumber(f.Ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	fee := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), big.NewInt(1e9))
	broke, err := types.SignNewTx(evmtest.MustKey(t, evmtest.BrokeKeyHex), types.LatestSignerForChainID(big.NewInt(evmtest.SimChainID)),
		&types.DynamicFeeTx{ChainID: big.NewInt(evmtest.SimChainID), Nonce: 0, GasTipCap: big.NewInt(1e9), GasFeeCap: fee,
			Gas: 60_000, To: &f.Token, Data: []byte{0xa9, 0x05, 0x9c, 0xbb}})
	if err != nil {
		t.Fatal(err)
	}
	refused, err := f.BC.Store.Insert(f.Ctx, nil, "wf-broke", "transfer", 0, f.Broke, broke)
	if err != nil {
		t.Fatal(err)
	}
	batch := []evm.SignedTx{good[3], refused, good[0], good[4], good[1], good[2]} // the poster orders by nonce
	bc := f.newRPCBroadcaster()
	accepted, errs := send.SendBatch(bc.Sender, batch)
	for i, stx := range batch {
		if stx.WorkflowID == "wf-broke" {
			if accepted[i] || errs[i] == nil || !strings.Contains(strings.ToLower(errs[i].Error()), "insufficient funds") {
				t.Fatalf("the broke wallet's transfer: accepted=%v err=%v, want refused for insufficient funds", accepted[i], errs[i])
			}
			continue
		}
		if !accepted[i] || errs[i] != nil {
			t.Fatalf("%s (nonce %d): accepted=%v err=%v", stx.WorkflowID, stx.Nonce, accepted[i], errs[i])
		}
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE state='sent' AND workflow_id LIKE 'wf-batch-%'"); n != 5 {
		t.Fatalf("%d of 5 marked sent", n)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE state='signed' AND workflow_id='wf-broke'"); n != 1 {
		t.Fatal("the refused transfer is no longer 'signed'")
	}
	// Through Send: the refusal is that caller's error; the good ones are
	// harmlessly sent again (the node knows them).
	if _, err := bc.Sender.Send(f.Ctx, "wf-broke", "transfer"); err == nil {
		t.Fatal("Send of the refused transfer succeeded")
	}
	for _, stx := range good {
		if _, err := bc.Sender.Send(f.Ctx, stx.WorkflowID, stx.Step); err != nil {
			t.Fatalf("re-sending %s: %v", stx.WorkflowID, err)
		}
	}
	f.Sim.Commit()
	for _, stx := range good {
		f.RequireSuccess(stx.Hash)
	}
}

// TestBatchedLanesDeadlockLosesNoUse: a use in the middle of a shared batch
// is chosen as a deadlock's victim. InnoDB then rolls back the WHOLE
// transaction, the uses before it included: no caller may hear nil for a
// write that was rolled back, and no nonce may be taken twice. The batch is
// run again; every caller succeeds once, with a distinct nonce, and its
// write is committed. Both kinds of use: under a savepoint, and of one
// statement (the signer's, which runs without one).
func TestBatchedLanesDeadlockLosesNoUse(t *testing.T) {
	for _, mode := range []string{"savepoint", "one statement"} {
		t.Run(mode, func(t *testing.T) {
			f := newChainFixture(t)
			lanes := f.nonceLanes()
			withNonce := lanes.WithNonce
			if mode == "one statement" {
				withNonce = func(ctx context.Context, from common.Address, use func(*sql.Tx, uint64) error) error {
					return send.WithNonceOneStatement(lanes, ctx, from, use)
				}
			}
			const n, victim = 12, 6
			nonces := make([]uint64, n)
			errs := make([]error, n)
			entered, gate := make(chan struct{}), make(chan struct{})
			var deadlocked atomic.Bool
			rival := make(chan error, 1)
			use := func(i int) func(tx *sql.Tx, nonce uint64) error {
				return func(tx *sql.Tx, nonce uint64) error {
					if i == 0 {
						close(entered)
						<-gate
					}
					nonces[i] = nonce
					if i == victim && deadlocked.CompareAndSwap(false, true) {
						// A heavier transaction holds the row this use
						// writes and waits for the lane this batch holds.
						holding := make(chan int64, 1)
						go func() { rival <- f.heavyRivalWaitingForLane("dl-victim", holding) }()
						<-holding // the deadlock forms whichever of the two waits first
					}
					key := fmt.Sprintf("use-%02d", i)
					if i == victim {
						key = "dl-victim"
					}
					_, err := tx.ExecContext(f.Ctx, "INSERT INTO nonces (chain, address, next_nonce) VALUES ('TST', ?, ?)",
						key, nonce)
					return err
				}
			}
			f.queueBehindFirst(lanes, withNonce, use, errs, entered, gate)
			if err := <-rival; err != nil {
				t.Fatal(err)
			}
			if !deadlocked.Load() {
				t.Fatal("the victim never ran")
			}
			for i := range n {
				key := fmt.Sprintf("use-%02d", i)
				if i == victim {
					key = "dl-victim"
				}
				if errs[i] == nil && f.Count("SELECT COUNT(*) FROM nonces WHERE chain='TST' AND address=?", key) != 1 {
					t.Errorf("caller %d heard nil but its write was rolled back", i)
				}
			}
			got := map[uint64]bool{}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				if got[nonces[i]] || nonces[i] >= n {
					t.Fatalf("nonces %v: not 0..%d each once", nonces, n-1)
				}
				got[nonces[i]] = true
			}
			if m := f.Count("SELECT COUNT(*) FROM nonces WHERE chain='TST'"); m != n {
				t.Fatalf("%d writes committed for %d callers that heard nil: a rolled-back write was reported done", m, n)
			}
			if next := f.NextNonce(f.Sender); next != n {
				t.Fatalf("lane at %d, want %d", next, n)
			}
		})
	}
}

// heavyRivalWaitingForLane is a transaction of another process that writes
// many rows (so InnoDB picks the other side of a deadlock as its victim),
// holds key (uncommitted) and then waits for the sender's lane row. Once it
// gets the lane it rolls back.
func (f *chainFixture) heavyRivalWaitingForLane(key string, holding chan<- int64) error {
	tx, err := f.DB.BeginTx(f.Ctx, nil)
	if err != nil {
		holding <- -1
		return err
	}
	defer tx.Rollback()
	var conn int64
	if err := tx.QueryRowContext(f.Ctx, "SELECT CONNECTION_ID()").Scan(&conn); err != nil {
		holding <- -1
		return err
	}
	for i := range 200 {
		if _, err := tx.ExecContext(f.Ctx, "INSERT INTO nonces (chain, address, next_nonce) VALUES ('TSR', ?, 0)",
			fmt.Sprintf("rival-%03d", i)); err != nil {
			holding <- -1
			return err
		}
	}
	if _, err := tx.ExecContext(f.Ctx, "INSERT INTO nonces (chain, address, next_nonce) VALUES ('TST', ?, 0)", key); err != nil {
		holding <- -1
		return err
	}
	holding <- conn
	var next uint64
	return tx.QueryRowContext(f.Ctx, "SELECT next_nonce FROM nonces WHERE chain=? AND address=? FOR UPDATE",
		evmtest.ChainName, evm.Lower(f.Sender)).Scan(&next)
}

// queueBehindFirst calls withNonce for use(0) .. use(len(errs)-1), putting
// each call's error in errs: caller 0's use runs alone in the first batch
// (it closes entered and waits for gate), the others queue behind it, and
// once all are queued gate opens, so they share the next batch. It returns
// when every call has.
func (f *chainFixture) queueBehindFirst(lanes *send.NonceLanes,
	withNonce func(context.Context, common.Address, func(*sql.Tx, uint64) error) error,
	use func(i int) func(tx *sql.Tx, nonce uint64) error, errs []error, entered, gate chan struct{}) {
	f.T.Helper()
	n := len(errs)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = withNonce(f.Ctx, f.Sender, use(0)) })
	<-entered
	for i := 1; i < n; i++ {
		wg.Go(func() { errs[i] = withNonce(f.Ctx, f.Sender, use(i)) })
	}
	for deadline := time.Now().Add(30 * time.Second); send.QueuedNonces(lanes, f.Sender) < n-1; {
		if time.Now().After(deadline) {
			close(gate)
			wg.Wait()
			f.T.Fatalf("%d of %d callers queued", send.QueuedNonces(lanes, f.Sender), n-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
}

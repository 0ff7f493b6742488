package evm_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain/evm"
)

// depositRecorder is a DepositSink that records what it accepts and can be
// told to fail a given call (a crash in the middle of a range).
type depositRecorder struct {
	mu     sync.Mutex
	calls  int
	failAt int // 1-based call number that fails; 0 = never
	got    map[string]int
}

func (r *depositRecorder) HandleDeposits(_ context.Context, deps []evm.Deposit) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls == r.failAt {
		return errors.New("sink crashed")
	}
	for _, d := range deps {
		r.got[fmt.Sprintf("%s/%d", d.TxHash.Hex(), d.LogIndex)]++
	}
	return nil
}

// narrowNode refuses eth_getLogs over more than maxSpan blocks, like public
// nodes do, so the listener must shrink its range.
type narrowNode struct {
	simulatedClient
	maxSpan uint64
	refused int
}

type simulatedClient interface {
	evm.Backend
}

func (n *narrowNode) FilterLogs(ctx context.Context, q ethereum.FilterQuery) ([]types.Log, error) {
	if q.FromBlock != nil && q.ToBlock != nil && q.ToBlock.Uint64()-q.FromBlock.Uint64()+1 > n.maxSpan {
		n.refused++
		return nil, errors.New("query exceeds max block range")
	}
	return n.simulatedClient.FilterLogs(ctx, q)
}

func noDial(context.Context) (evm.HeadSubscriber, error) {
	return nil, errors.New("no websocket in this test")
}

// TestListenerRestartMidRangeDeliversEveryLogOnce: 200 blocks of transfers,
// some to watched addresses (one batch transfer pays two in one tx); the sink
// crashes in the middle, a new listener resumes from the persisted cursor,
// and every watched log is delivered exactly once; nothing unwatched is.
func TestListenerRestartMidRangeDeliversEveryLogOnce(t *testing.T) {
	f := newChainFixture(t)
	watched := []common.Address{
		common.HexToAddress("0x00000000000000000000000000000000000a0001"),
		common.HexToAddress("0x00000000000000000000000000000000000A0002"),
		common.HexToAddress("0x00000000000000000000000000000000000a0003"),
	}
	for _, a := range watched {
		if _, err := evm.Watch(f.ctx, f.db, chainName, "USDT", a, 0); err != nil {
			t.Fatal(err)
		}
	}
	node := &narrowNode{simulatedClient: f.client, maxSpan: 40}
	newListener := func(sink evm.DepositSink) *evm.Listener {
		l, err := evm.NewListener(evm.ListenerConfig{Chain: chainName, Tokens: []common.Address{f.token}, MaxRange: 64},
			f.db, node, noDial, nil, sink, discardLog())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	rec := &depositRecorder{got: map[string]int{}, failAt: 3}
	first := newListener(rec)
	head, _ := f.client.BlockNumber(f.ctx)
	if err := first.SyncTo(f.ctx, head); err != nil { // sets the cursor here
		t.Fatal(err)
	}

	auth, _ := bind.NewKeyedTransactorWithChainID(mustKey(t, senderKeyHex), big.NewInt(simChainID))
	want := map[string]bool{}
	for i := 0; i < 200; i++ {
		switch {
		case i%50 == 7: // two deposits in one transaction
			tx, err := f.usdt.BatchTransfer(auth, []common.Address{watched[0], watched[1]}, []*big.Int{big.NewInt(1), big.NewInt(2)})
			if err != nil {
				t.Fatal(err)
			}
			want[tx.Hash().Hex()+"/0"], want[tx.Hash().Hex()+"/1"] = true, true
		case i%3 == 0:
			tx, err := f.usdt.Transfer(auth, watched[i%len(watched)], big.NewInt(int64(i+1)))
			if err != nil {
				t.Fatal(err)
			}
			want[tx.Hash().Hex()+"/0"] = true
		default: // unwatched recipient
			if _, err := f.usdt.Transfer(auth, recipient, big.NewInt(1)); err != nil {
				t.Fatal(err)
			}
		}
		f.sim.Commit()
	}
	head, _ = f.client.BlockNumber(f.ctx)
	mid := head - 100
	if err := first.SyncTo(f.ctx, mid); err == nil {
		t.Fatal("the crashing sink did not stop the first listener")
	}
	cur, _, _ := first.LoadCursor(f.ctx)
	if cur.Number >= mid {
		t.Fatalf("cursor advanced to %d past the failed range", cur.Number)
	}

	// "Restart": a new listener over the same database resumes.
	second := newListener(rec)
	if err := second.SyncTo(f.ctx, head); err != nil {
		t.Fatal(err)
	}
	cur, _, _ = second.LoadCursor(f.ctx)
	if cur.Number != head {
		t.Fatalf("cursor at %d, want head %d", cur.Number, head)
	}
	if node.refused == 0 {
		t.Error("the node never refused a range: the shrink path was not exercised")
	}
	if len(rec.got) != len(want) {
		t.Errorf("delivered %d distinct deposits, want %d", len(rec.got), len(want))
	}
	for k := range want {
		if rec.got[k] != 1 {
			t.Errorf("deposit %s delivered %d times, want 1", k, rec.got[k])
		}
	}
	for k, n := range rec.got {
		if !want[k] {
			t.Errorf("unexpected delivery %s (%d)", k, n)
		}
	}
	// Syncing again delivers nothing new.
	before := len(rec.got)
	if err := second.SyncTo(f.ctx, head); err != nil {
		t.Fatal(err)
	}
	for k, n := range rec.got {
		if n != 1 {
			t.Errorf("%s delivered %d times after a second sync", k, n)
		}
	}
	if len(rec.got) != before {
		t.Error("second sync delivered new deposits")
	}
}

// TestListenerBackfillsLateWatch: an address registered with a from_block in
// the past (the head when its topup arrived) gets the deposits the listener
// had already passed.
func TestListenerBackfillsLateWatch(t *testing.T) {
	f := newChainFixture(t)
	late := common.HexToAddress("0x00000000000000000000000000000000000b0001")
	rec := &depositRecorder{got: map[string]int{}}
	l, err := evm.NewListener(evm.ListenerConfig{Chain: chainName, Tokens: []common.Address{f.token}},
		f.db, f.client, noDial, nil, rec, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	head, _ := f.client.BlockNumber(f.ctx)
	if err := l.SyncTo(f.ctx, head); err != nil {
		t.Fatal(err)
	}
	registeredAt := head
	auth, _ := bind.NewKeyedTransactorWithChainID(mustKey(t, senderKeyHex), big.NewInt(simChainID))
	tx, err := f.usdt.Transfer(auth, late, big.NewInt(5))
	if err != nil {
		t.Fatal(err)
	}
	f.sim.Commit()
	head, _ = f.client.BlockNumber(f.ctx)
	if err := l.SyncTo(f.ctx, head); err != nil { // passes the block: address not yet watched
		t.Fatal(err)
	}
	if len(rec.got) != 0 {
		t.Fatal("delivered a deposit to an unwatched address")
	}
	if _, err := evm.Watch(f.ctx, f.db, chainName, "USDT", late, registeredAt); err != nil {
		t.Fatal(err)
	}
	if err := l.SyncTo(f.ctx, head); err != nil {
		t.Fatal(err)
	}
	if rec.got[tx.Hash().Hex()+"/0"] != 1 || len(rec.got) != 1 {
		t.Fatalf("late watch backfill delivered %v", rec.got)
	}
	if !l.WatchSet().Has(late) {
		t.Error("late address not in the watch set")
	}
}

// deliveryLog is a DepositSink that keeps every delivery, in order.
type deliveryLog struct {
	mu   sync.Mutex
	deps []evm.Deposit
}

func (r *deliveryLog) HandleDeposits(_ context.Context, deps []evm.Deposit) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deps = append(r.deps, deps...)
	return nil
}

// blocksOf lists the blocks txHash/logIndex was delivered from, in order.
func (r *deliveryLog) blocksOf(txHash common.Hash, logIndex uint) []common.Hash {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []common.Hash
	for _, d := range r.deps {
		if d.TxHash == txHash && d.LogIndex == logIndex {
			out = append(out, d.BlockHash)
		}
	}
	return out
}

// TestListenerRedeliversRemined: a deposit delivered from block N is
// reorganised away (the simulated node's Fork drops the head back to N-1 and
// its pool re-includes the transfer in the next block). The listener must
// deliver it again from its new block: the sink announces a re-mined deposit
// afresh. That holds when the new branch outgrows the old one, and when it is
// still shorter than the listener's cursor, so the block under the cursor
// does not exist (before, the listener then failed until the chain grew back).
func TestListenerRedeliversRemined(t *testing.T) {
	for _, tc := range []struct {
		name      string
		newBlocks int // mined on the new branch before the listener syncs
	}{
		{"new branch shorter than the cursor", 1},
		{"new branch longer", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newChainFixture(t)
			watched := common.HexToAddress("0x00000000000000000000000000000000000c0001")
			if _, err := evm.Watch(f.ctx, f.db, chainName, "USDT", watched, 0); err != nil {
				t.Fatal(err)
			}
			rec := &deliveryLog{}
			l, err := evm.NewListener(evm.ListenerConfig{Chain: chainName, Tokens: []common.Address{f.token}},
				f.db, f.client, noDial, nil, rec, discardLog())
			if err != nil {
				t.Fatal(err)
			}
			syncHead := func() {
				t.Helper()
				head, err := f.client.BlockNumber(f.ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.SyncTo(f.ctx, head); err != nil {
					t.Fatalf("sync to %d: %v", head, err)
				}
			}
			syncHead()
			parent, err := f.client.HeaderByNumber(f.ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			auth, _ := bind.NewKeyedTransactorWithChainID(mustKey(t, senderKeyHex), big.NewInt(simChainID))
			tx, err := f.usdt.Transfer(auth, watched, big.NewInt(7))
			if err != nil {
				t.Fatal(err)
			}
			minedAt := f.sim.Commit()
			f.sim.Commit() // the cursor ends one block above the deposit
			syncHead()
			if got := rec.blocksOf(tx.Hash(), 0); len(got) != 1 || got[0] != minedAt {
				t.Fatalf("first delivery from %v, want [%s]", got, minedAt.Hex())
			}

			if err := f.sim.Fork(parent.Hash()); err != nil {
				t.Fatal(err)
			}
			for range tc.newBlocks {
				f.sim.Commit()
			}
			r := f.requireSuccess(tx.Hash())
			if r.BlockHash == minedAt {
				t.Fatal("re-included in the orphaned block")
			}
			syncHead()
			got := rec.blocksOf(tx.Hash(), 0)
			if len(got) != 2 || got[1] != r.BlockHash {
				t.Fatalf("delivered from %v, want [%s %s]", got, minedAt.Hex(), r.BlockHash.Hex())
			}
			cur, _, err := l.LoadCursor(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			head, _ := f.client.HeaderByNumber(f.ctx, nil)
			if cur.Number != head.Number.Uint64() || cur.Hash != head.Hash() {
				t.Fatalf("cursor %d/%s, want the head %d/%s", cur.Number, cur.Hash.Hex(), head.Number, head.Hash().Hex())
			}
		})
	}
}

// TestListenerWatchesManagedWallets (issue 19, defects 2 and 11): every
// managed wallet of the listener's chain (a wallets row, no topup watch) is
// watched for tokens and the native coin, including one stored after the
// listener started; a wallet of another chain is not.
func TestListenerWatchesManagedWallets(t *testing.T) {
	f := newChainFixture(t)
	senderKey := mustKey(t, senderKeyHex)
	gas := common.HexToAddress("0x00000000000000000000000000000000000e0001")
	later := common.HexToAddress("0x00000000000000000000000000000000000e0002")
	elsewhere := common.HexToAddress("0x00000000000000000000000000000000000e0003")
	addWallet := func(chainName string, a common.Address, kind string) {
		t.Helper()
		if _, err := f.db.ExecContext(f.ctx, "INSERT INTO wallets (chain, address, kind, label) VALUES (?,?,?,?)",
			chainName, evm.Lower(a), kind, kind); err != nil {
			t.Fatal(err)
		}
	}
	addWallet(chainName, gas, "gas")
	addWallet("OTHER", elsewhere, "hot")
	rec := &deliveryLog{}
	l, err := evm.NewListener(evm.ListenerConfig{Chain: chainName, Tokens: []common.Address{f.token}, Native: true},
		f.db, f.client, noDial, nil, rec, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	syncToHead(t, l, f.client)

	refill := sendNative(t, f.client, senderKey, gas, 500_000_000_000_000_000)
	// Each send is mined before the next asks for a nonce: the simulated
	// pool's pending nonce may lag a send just made, and two transactions
	// on one nonce would leave one unmined.
	f.sim.Commit()
	auth, err := bind.NewKeyedTransactorWithChainID(senderKey, big.NewInt(simChainID))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.usdt.Transfer(auth, gas, big.NewInt(3_500_000))
	if err != nil {
		t.Fatal(err)
	}
	f.sim.Commit()
	sendNative(t, f.client, senderKey, elsewhere, 7)
	f.sim.Commit()
	f.requireSuccess(tok.Hash())
	syncToHead(t, l, f.client)

	addWallet(chainName, later, "deposit")
	late := sendNative(t, f.client, senderKey, later, 9)
	f.sim.Commit()
	syncToHead(t, l, f.client)

	got := map[string]evm.Deposit{}
	for _, d := range rec.deps {
		got[fmt.Sprintf("%s/%d", d.TxHash.Hex(), d.LogIndex)] = d
	}
	if len(rec.deps) != 3 {
		t.Fatalf("delivered %d deposits, want 3 (native and token to the gas wallet, native to the later wallet): %+v",
			len(rec.deps), rec.deps)
	}
	if d, ok := got[nativeKey(refill.Hash())]; !ok || d.To != gas || d.Value.String() != "500000000000000000" || !d.Native {
		t.Errorf("the refill: %+v (found %v)", d, ok)
	}
	if d, ok := got[fmt.Sprintf("%s/%d", tok.Hash().Hex(), 0)]; !ok || d.To != gas || d.Token != f.token ||
		d.Value.Int64() != 3_500_000 {
		t.Errorf("the token transfer: %+v (found %v)", d, ok)
	}
	if d, ok := got[nativeKey(late.Hash())]; !ok || d.To != later || d.Value.Int64() != 9 {
		t.Errorf("the payment to the wallet stored later: %+v (found %v)", d, ok)
	}
}

package watch_test

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
	"payflow/chain/evm/evmtest"
	"payflow/chain/evm/watch"
	"payflow/ledger"
)

// depositRecorder is a DepositSink that records what it accepts and can be
// told to fail a given call (a crash in the middle of a range).
type depositRecorder struct {
	mu     sync.Mutex
	calls  int
	failAt int // 1-based call number that fails; 0 = never
	got    map[string]int
}

func (r *depositRecorder) HandleDeposits(_ context.Context, deps []watch.Deposit) error {
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

func noDial(context.Context) (watch.HeadSubscriber, error) {
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
		if _, err := evm.Watch(f.Ctx, f.DB, evmtest.ChainName, "USDT", a, 0); err != nil {
			t.Fatal(err)
		}
	}
	node := &narrowNode{simulatedClient: f.Client, maxSpan: 40}
	newListener := func(sink watch.DepositSink) *watch.Listener {
		l, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName, Tokens: []common.Address{f.Token}, MaxRange: 64},
			f.DB, node, noDial, nil, sink, evmtest.DiscardLog())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	rec := &depositRecorder{got: map[string]int{}, failAt: 3}
	first := newListener(rec)
	head, _ := f.Client.BlockNumber(f.Ctx)
	if err := first.SyncTo(f.Ctx, head); err != nil { // sets the cursor here
		t.Fatal(err)
	}

	auth, _ := bind.NewKeyedTransactorWithChainID(evmtest.MustKey(t, evmtest.SenderKeyHex), big.NewInt(evmtest.SimChainID))
	want := map[string]bool{}
	for i := 0; i < 200; i++ {
		switch {
		case i%50 == 7: // two deposits in one transaction
			tx, err := f.USDT.BatchTransfer(auth, []common.Address{watched[0], watched[1]}, []*big.Int{big.NewInt(1), big.NewInt(2)})
			if err != nil {
				t.Fatal(err)
			}
			want[tx.Hash().Hex()+"/0"], want[tx.Hash().Hex()+"/1"] = true, true
		case i%3 == 0:
			tx, err := f.USDT.Transfer(auth, watched[i%len(watched)], big.NewInt(int64(i+1)))
			if err != nil {
				t.Fatal(err)
			}
			want[tx.Hash().Hex()+"/0"] = true
		default: // unwatched recipient
			if _, err := f.USDT.Transfer(auth, evmtest.Recipient, big.NewInt(1)); err != nil {
				t.Fatal(err)
			}
		}
		f.Sim.Commit()
	}
	head, _ = f.Client.BlockNumber(f.Ctx)
	mid := head - 100
	if err := first.SyncTo(f.Ctx, mid); err == nil {
		t.Fatal("the crashing sink did not stop the first listener")
	}
	cur, _, _ := first.LoadCursor(f.Ctx)
	if cur.Number >= mid {
		t.Fatalf("cursor advanced to %d past the failed range", cur.Number)
	}

	// "Restart": a new listener over the same database resumes.
	second := newListener(rec)
	if err := second.SyncTo(f.Ctx, head); err != nil {
		t.Fatal(err)
	}
	cur, _, _ = second.LoadCursor(f.Ctx)
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
	if err := second.SyncTo(f.Ctx, head); err != nil {
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
	l, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName, Tokens: []common.Address{f.Token}},
		f.DB, f.Client, noDial, nil, rec, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	head, _ := f.Client.BlockNumber(f.Ctx)
	if err := l.SyncTo(f.Ctx, head); err != nil {
		t.Fatal(err)
	}
	registeredAt := head
	auth, _ := bind.NewKeyedTransactorWithChainID(evmtest.MustKey(t, evmtest.SenderKeyHex), big.NewInt(evmtest.SimChainID))
	tx, err := f.USDT.Transfer(auth, late, big.NewInt(5))
	if err != nil {
		t.Fatal(err)
	}
	f.Sim.Commit()
	head, _ = f.Client.BlockNumber(f.Ctx)
	if err := l.SyncTo(f.Ctx, head); err != nil { // passes the block: address not yet watched
		t.Fatal(err)
	}
	if len(rec.got) != 0 {
		t.Fatal("delivered a deposit to an unwatched address")
	}
	if _, err := evm.Watch(f.Ctx, f.DB, evmtest.ChainName, "USDT", late, registeredAt); err != nil {
		t.Fatal(err)
	}
	if err := l.SyncTo(f.Ctx, head); err != nil {
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
	deps []watch.Deposit
}

func (r *deliveryLog) HandleDeposits(_ context.Context, deps []watch.Deposit) error {
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
			if _, err := evm.Watch(f.Ctx, f.DB, evmtest.ChainName, "USDT", watched, 0); err != nil {
				t.Fatal(err)
			}
			rec := &deliveryLog{}
			l, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName, Tokens: []common.Address{f.Token}},
				f.DB, f.Client, noDial, nil, rec, evmtest.DiscardLog())
			if err != nil {
				t.Fatal(err)
			}
			syncHead := func() {
				t.Helper()
				head, err := f.Client.BlockNumber(f.Ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.SyncTo(f.Ctx, head); err != nil {
					t.Fatalf("sync to %d: %v", head, err)
				}
			}
			syncHead()
			parent, err := f.Client.HeaderByNumber(f.Ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			auth, _ := bind.NewKeyedTransactorWithChainID(evmtest.MustKey(t, evmtest.SenderKeyHex), big.NewInt(evmtest.SimChainID))
			tx, err := f.USDT.Transfer(auth, watched, big.NewInt(7))
			if err != nil {
				t.Fatal(err)
			}
			minedAt := f.Sim.Commit()
			f.Sim.Commit() // the cursor ends one block above the deposit
			syncHead()
			if got := rec.blocksOf(tx.Hash(), 0); len(got) != 1 || got[0] != minedAt {
				t.Fatalf("first delivery from %v, want [%s]", got, minedAt.Hex())
			}

			if err := f.Sim.Fork(parent.Hash()); err != nil {
				t.Fatal(err)
			}
			for range tc.newBlocks {
				f.Sim.Commit()
			}
			r := f.RequireSuccess(tx.Hash())
			if r.BlockHash == minedAt {
				t.Fatal("re-included in the orphaned block")
			}
			syncHead()
			got := rec.blocksOf(tx.Hash(), 0)
			if len(got) != 2 || got[1] != r.BlockHash {
				t.Fatalf("delivered from %v, want [%s %s]", got, minedAt.Hex(), r.BlockHash.Hex())
			}
			cur, _, err := l.LoadCursor(f.Ctx)
			if err != nil {
				t.Fatal(err)
			}
			head, _ := f.Client.HeaderByNumber(f.Ctx, nil)
			if cur.Number != head.Number.Uint64() || cur.Hash != head.Hash() {
				t.Fatalf("cursor %d/%s, want the head %d/%s", cur.Number, cur.Hash.Hex(), head.Number, head.Hash().Hex())
			}
		})
	}
}

// TestListenerWatchesManagedWallets: every
// managed wallet of the listener's chain (a wallets row, no topup watch) is
// watched for tokens and the native coin, including one stored after the
// listener started; a wallet of another chain is not.
func TestListenerWatchesManagedWallets(t *testing.T) {
	f := newChainFixture(t)
	senderKey := evmtest.MustKey(t, evmtest.SenderKeyHex)
	gas := common.HexToAddress("0x00000000000000000000000000000000000e0001")
	later := common.HexToAddress("0x00000000000000000000000000000000000e0002")
	elsewhere := common.HexToAddress("0x00000000000000000000000000000000000e0003")
	addWallet := func(chainName string, a common.Address, kind string) {
		t.Helper()
		if _, err := f.DB.ExecContext(f.Ctx, "INSERT INTO wallets (chain, address, kind, label) VALUES (?,?,?,?)",
			chainName, evm.Lower(a), kind, kind); err != nil {
			t.Fatal(err)
		}
	}
	addWallet(evmtest.ChainName, gas, "gas")
	addWallet("OTHER", elsewhere, "hot")
	rec := &deliveryLog{}
	wallets := ledger.NewWallets(f.DB, nil)
	l, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName, Tokens: []common.Address{f.Token}, Native: true,
		Wallets: func(ctx context.Context, after int64, limit int) ([]string, int64, error) {
			return wallets.AddressesAfter(ctx, evmtest.ChainName, after, limit)
		}}, f.DB, f.Client, noDial, nil, rec, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	syncToHead(t, l, f.Client)

	refill := sendNative(t, f.Client, senderKey, gas, 500_000_000_000_000_000)
	// Each send is mined before the next asks for a nonce: the simulated
	// pool's pending nonce may lag a send just made, and two transactions
	// on one nonce would leave one unmined.
	f.Sim.Commit()
	auth, err := bind.NewKeyedTransactorWithChainID(senderKey, big.NewInt(evmtest.SimChainID))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.USDT.Transfer(auth, gas, big.NewInt(3_500_000))
	if err != nil {
		t.Fatal(err)
	}
	f.Sim.Commit()
	sendNative(t, f.Client, senderKey, elsewhere, 7)
	f.Sim.Commit()
	f.RequireSuccess(tok.Hash())
	syncToHead(t, l, f.Client)

	addWallet(evmtest.ChainName, later, "deposit")
	late := sendNative(t, f.Client, senderKey, later, 9)
	f.Sim.Commit()
	syncToHead(t, l, f.Client)

	got := map[string]watch.Deposit{}
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
	if d, ok := got[fmt.Sprintf("%s/%d", tok.Hash().Hex(), 0)]; !ok || d.To != gas || d.Token != f.Token ||
		d.Value.Int64() != 3_500_000 {
		t.Errorf("the token transfer: %+v (found %v)", d, ok)
	}
	if d, ok := got[nativeKey(late.Hash())]; !ok || d.To != later || d.Value.Int64() != 9 {
		t.Errorf("the payment to the wallet stored later: %+v (found %v)", d, ok)
	}
}

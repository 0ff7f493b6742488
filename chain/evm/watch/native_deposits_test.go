package watch_test

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/watch"

	"payflow/chain/evm/evmtest"
)

// Hand-assembled contracts (no compiler needed):
//   - payAndLogCode, payable: emits Transfer(msg.sender, address(this),
//     msg.value), so one call both pays native coin to the contract and
//     emits a token Transfer log to it;
//   - evmtest.RevertCode reverts every call: value sent to it never arrives.
var (
	payAndLogCode = append(append([]byte{
		0x34,       // CALLVALUE
		0x60, 0x00, // PUSH1 0
		0x52, // MSTORE: mem[0:32] = value
		0x30, // ADDRESS (topic 2: to)
		0x33, // CALLER (topic 1: from)
		0x7f, // PUSH32 topic 0
	}, evm.TransferTopic.Bytes()...),
		0x60, 0x20, // PUSH1 32 (size)
		0x60, 0x00, // PUSH1 0 (offset)
		0xa3, // LOG3
		0x00, // STOP
	)
)

// initCode returns creation code that installs runtime as the contract's code.
func initCode(runtime []byte) []byte {
	return append([]byte{
		0x60, byte(len(runtime)), // PUSH1 len
		0x80,       // DUP1
		0x60, 0x0b, // PUSH1 11: where runtime starts in this code
		0x60, 0x00, // PUSH1 0
		0x39,       // CODECOPY(0, 11, len)
		0x60, 0x00, // PUSH1 0
		0xf3, // RETURN(0, len)
	}, runtime...)
}

// sendTx signs and sends a dynamic-fee transaction from key (to nil creates a
// contract); gas 0 lets the node estimate it.
func sendTx(t *testing.T, client simulated.Client, key *ecdsa.PrivateKey, to *common.Address, wei *big.Int,
	data []byte, gas uint64) *types.Transaction {
	t.Helper()
	ctx := context.Background()
	from := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := client.PendingNonceAt(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	head, err := client.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tip := big.NewInt(1_000_000_000)
	if gas == 0 {
		gas = 200_000
	}
	if wei == nil {
		wei = new(big.Int)
	}
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(big.NewInt(evmtest.SimChainID)), &types.DynamicFeeTx{
		ChainID: big.NewInt(evmtest.SimChainID), Nonce: nonce, GasTipCap: tip,
		GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip),
		Gas:       gas, To: to, Value: wei, Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.SendTransaction(ctx, tx); err != nil {
		t.Fatalf("sending: %v", err)
	}
	// The pool takes a transaction in the background: wait until the next
	// PendingNonceAt (ours or bind's) counts it.
	for i := 0; ; i++ {
		n, err := client.PendingNonceAt(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		if n > nonce {
			return tx
		}
		if i == 500 {
			t.Fatalf("the pool never counted nonce %d of %s", nonce, from.Hex())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sendNative(t *testing.T, client simulated.Client, key *ecdsa.PrivateKey, to common.Address, wei int64) *types.Transaction {
	t.Helper()
	return sendTx(t, client, key, &to, big.NewInt(wei), nil, 21_000)
}

func nativeKey(txHash common.Hash) string {
	return fmt.Sprintf("%s/%d", txHash.Hex(), chain.NativeLogIndex)
}

func syncToHead(t *testing.T, l *watch.Listener, client simulated.Client) {
	t.Helper()
	ctx := context.Background()
	head, err := client.BlockNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SyncTo(ctx, head); err != nil {
		t.Fatalf("sync to %d: %v", head, err)
	}
}

func (f *chainFixture) watch(chainName, symbol string, a common.Address, from uint64) {
	f.T.Helper()
	if _, err := evm.Watch(f.Ctx, f.DB, chainName, symbol, a, from); err != nil {
		f.T.Fatal(err)
	}
}

// TestListenerNativeDepositFoundOnce: a native-only listener (no token)
// delivers a payment to a watched address once, with its sender, recipient,
// value, hash and NativeLogIndex, from its block. It ignores a payment to an
// unwatched address, a reverted payment to a watched contract (the value
// never arrived), and value sent by a contract creation to a watched
// address (no recipient in the transaction: documented as not seen).
func TestListenerNativeDepositFoundOnce(t *testing.T) {
	f := newChainFixture(t)
	if _, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName}, f.DB, f.Client, noDial, nil,
		&deliveryLog{}, evmtest.DiscardLog()); err == nil {
		t.Fatal("a listener with neither tokens nor native was accepted")
	}
	senderKey := evmtest.MustKey(t, evmtest.SenderKeyHex)
	watched := common.HexToAddress("0x00000000000000000000000000000000000d0001")
	unwatched := common.HexToAddress("0x00000000000000000000000000000000000d0002")
	nonce, err := f.Client.PendingNonceAt(f.Ctx, f.Sender)
	if err != nil {
		t.Fatal(err)
	}
	reverter := crypto.CreateAddress(f.Sender, nonce)
	created := crypto.CreateAddress(f.Sender, nonce+1)
	head, _ := f.Client.BlockNumber(f.Ctx)
	for _, a := range []common.Address{watched, reverter, created} {
		f.watch(evmtest.ChainName, "ETH", a, head)
	}
	rec := &deliveryLog{}
	l, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName, Native: true}, f.DB, f.Client, noDial, nil, rec, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	syncToHead(t, l, f.Client)

	sendTx(t, f.Client, senderKey, nil, nil, initCode(evmtest.RevertCode), 0)
	creation := sendTx(t, f.Client, senderKey, nil, big.NewInt(5), initCode(evmtest.RevertCode), 0)
	pay := sendNative(t, f.Client, senderKey, watched, 1_000_000_000_000_000)
	sendNative(t, f.Client, senderKey, unwatched, 3)
	f.Sim.Commit()
	if r := f.RequireSuccess(creation.Hash()); r.ContractAddress != created {
		t.Fatalf("created %s, want %s", r.ContractAddress.Hex(), created.Hex())
	}
	if got, _ := f.Client.BalanceAt(f.Ctx, created, nil); got.Int64() != 5 {
		t.Fatalf("created contract holds %v wei, want 5", got)
	}
	reverted := sendTx(t, f.Client, senderKey, &reverter, big.NewInt(9), nil, 100_000)
	f.Sim.Commit()
	if r, err := f.Client.TransactionReceipt(f.Ctx, reverted.Hash()); err != nil || r.Status != types.ReceiptStatusFailed {
		t.Fatalf("payment to the reverting contract: %v %v, want a mined failure", r, err)
	}
	syncToHead(t, l, f.Client)
	syncToHead(t, l, f.Client) // again: nothing new

	r := f.RequireSuccess(pay.Hash())
	if len(rec.deps) != 1 {
		t.Fatalf("delivered %d deposits, want 1: %+v", len(rec.deps), rec.deps)
	}
	d := rec.deps[0]
	if d.TxHash != pay.Hash() || d.LogIndex != chain.NativeLogIndex || !d.Native || d.Token != (common.Address{}) ||
		d.From != f.Sender || d.To != watched || d.Value.Cmp(big.NewInt(1_000_000_000_000_000)) != 0 ||
		d.BlockNumber != r.BlockNumber.Uint64() || d.BlockHash != r.BlockHash {
		t.Fatalf("delivered %+v, want the payment %s from %s in block %d/%s", d, pay.Hash().Hex(), f.Sender.Hex(),
			r.BlockNumber, r.BlockHash.Hex())
	}
}

// TestListenerNativeAndTokenInOneTx: one transaction pays native coin to a
// watched contract that emits a token Transfer to itself: two deposits,
// (tx, 0) for the token and (tx, NativeLogIndex) for the coin.
func TestListenerNativeAndTokenInOneTx(t *testing.T) {
	f := newChainFixture(t)
	senderKey := evmtest.MustKey(t, evmtest.SenderKeyHex)
	deploy := sendTx(t, f.Client, senderKey, nil, nil, initCode(payAndLogCode), 0)
	f.Sim.Commit()
	payee := f.RequireSuccess(deploy.Hash()).ContractAddress
	f.watch(evmtest.ChainName, "ETH", payee, 0)
	rec := &deliveryLog{}
	l, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName, Tokens: []common.Address{f.Token, payee}, Native: true},
		f.DB, f.Client, noDial, nil, rec, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	syncToHead(t, l, f.Client)

	tx := sendTx(t, f.Client, senderKey, &payee, big.NewInt(7), nil, 100_000)
	f.Sim.Commit()
	r := f.RequireSuccess(tx.Hash())
	if len(r.Logs) != 1 {
		t.Fatalf("the payment emitted %d logs, want 1", len(r.Logs))
	}
	syncToHead(t, l, f.Client)

	if len(rec.deps) != 2 {
		t.Fatalf("delivered %d deposits, want 2: %+v", len(rec.deps), rec.deps)
	}
	got := map[uint]watch.Deposit{}
	for _, d := range rec.deps {
		if d.TxHash != tx.Hash() || d.To != payee || d.From != f.Sender || d.Value.Int64() != 7 || d.BlockHash != r.BlockHash {
			t.Errorf("unexpected deposit %+v", d)
		}
		got[d.LogIndex] = d
	}
	if d, ok := got[0]; !ok || d.Native || d.Token != payee {
		t.Errorf("token deposit (tx, 0): %+v (found %v)", d, ok)
	}
	if d, ok := got[chain.NativeLogIndex]; !ok || !d.Native || d.Token != (common.Address{}) {
		t.Errorf("native deposit (tx, NativeLogIndex): %+v (found %v)", d, ok)
	}
}

// TestListenerBackfillsLateNativeWatch: an address watched late, from a past
// block, gets the native (and token) deposits the listener passed since that
// block, and not those before it.
func TestListenerBackfillsLateNativeWatch(t *testing.T) {
	f := newChainFixture(t)
	senderKey := evmtest.MustKey(t, evmtest.SenderKeyHex)
	late := common.HexToAddress("0x00000000000000000000000000000000000d0101")
	rec := &depositRecorder{got: map[string]int{}}
	l, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName, Tokens: []common.Address{f.Token}, Native: true},
		f.DB, f.Client, noDial, nil, rec, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	syncToHead(t, l, f.Client)
	sendNative(t, f.Client, senderKey, late, 1) // before the watch's from_block
	f.Sim.Commit()
	registeredAt, _ := f.Client.BlockNumber(f.Ctx)
	f.Sim.Commit()
	pay := sendNative(t, f.Client, senderKey, late, 2)
	f.Sim.Commit()
	auth, _ := bind.NewKeyedTransactorWithChainID(senderKey, big.NewInt(evmtest.SimChainID))
	tok, err := f.USDT.Transfer(auth, late, big.NewInt(3))
	if err != nil {
		t.Fatal(err)
	}
	f.Sim.Commit()
	f.Sim.Commit()
	syncToHead(t, l, f.Client) // passes them all: not watched yet
	if len(rec.got) != 0 {
		t.Fatalf("delivered %v to an unwatched address", rec.got)
	}
	f.watch(evmtest.ChainName, "ETH", late, registeredAt+1)
	syncToHead(t, l, f.Client)
	syncToHead(t, l, f.Client)
	want := map[string]int{nativeKey(pay.Hash()): 1, tok.Hash().Hex() + "/0": 1}
	if fmt.Sprint(rec.got) != fmt.Sprint(want) {
		t.Fatalf("backfill delivered %v, want %v", rec.got, want)
	}
}

// fullNarrowNode is a narrowNode that also reads blocks.
type fullNarrowNode struct {
	*narrowNode
	blocks watch.BlockReader
}

func (n *fullNarrowNode) BlockByHash(ctx context.Context, h common.Hash) (*types.Block, error) {
	return n.blocks.BlockByHash(ctx, h)
}

// TestListenerNativeRestartMidRange: native and token deposits over 60
// blocks; the sink crashes in the middle, a new listener resumes from the
// persisted cursor, and every deposit is delivered exactly once.
func TestListenerNativeRestartMidRange(t *testing.T) {
	f := newChainFixture(t)
	senderKey := evmtest.MustKey(t, evmtest.SenderKeyHex)
	watched := []common.Address{
		common.HexToAddress("0x00000000000000000000000000000000000d0201"),
		common.HexToAddress("0x00000000000000000000000000000000000d0202"),
	}
	for _, a := range watched {
		f.watch(evmtest.ChainName, "USDT", a, 0)
	}
	node := &fullNarrowNode{narrowNode: &narrowNode{simulatedClient: f.Client, maxSpan: 10}, blocks: f.Client}
	newListener := func(sink watch.DepositSink) *watch.Listener {
		l, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName, Tokens: []common.Address{f.Token}, Native: true,
			MaxRange: 16}, f.DB, node, noDial, nil, sink, evmtest.DiscardLog())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	rec := &depositRecorder{got: map[string]int{}, failAt: 3}
	first := newListener(rec)
	syncToHead(t, first, f.Client)

	auth, _ := bind.NewKeyedTransactorWithChainID(senderKey, big.NewInt(evmtest.SimChainID))
	want := map[string]bool{}
	for i := 0; i < 60; i++ {
		switch i % 4 {
		case 0:
			want[nativeKey(sendNative(t, f.Client, senderKey, watched[(i/4)%2], int64(i+1)).Hash())] = true
		case 1:
			tx, err := f.USDT.Transfer(auth, watched[1], big.NewInt(int64(i+1)))
			if err != nil {
				t.Fatal(err)
			}
			want[tx.Hash().Hex()+"/0"] = true
		case 2:
			sendNative(t, f.Client, senderKey, evmtest.Recipient, 1) // unwatched
		}
		f.Sim.Commit()
	}
	head, _ := f.Client.BlockNumber(f.Ctx)
	mid := head - 30
	if err := first.SyncTo(f.Ctx, mid); err == nil {
		t.Fatal("the crashing sink did not stop the first listener")
	}
	if cur, _, _ := first.LoadCursor(f.Ctx); cur.Number >= mid {
		t.Fatalf("cursor advanced to %d past the failed range", cur.Number)
	}
	second := newListener(rec)
	syncToHead(t, second, f.Client)
	syncToHead(t, second, f.Client)
	if cur, _, _ := second.LoadCursor(f.Ctx); cur.Number != head {
		t.Fatalf("cursor at %d, want head %d", cur.Number, head)
	}
	if node.refused == 0 {
		t.Error("the node never refused a range: the shrink path was not exercised")
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
}

// TestListenerNativeReorg: a native deposit delivered from block N is
// reorganised away. Re-mined on the new branch (shorter or longer than the
// listener's cursor), it is delivered again from its new block; replaced on
// the new branch by a transaction that does not pay the address, it is not
// delivered again (what the sink was told stays tied to the orphaned block,
// which downstream confirmation finds gone).
func TestListenerNativeReorg(t *testing.T) {
	for _, tc := range []struct {
		name      string
		newBlocks int
		replace   bool
	}{
		{"re-mined, new branch shorter than the cursor", 1, false},
		{"re-mined, new branch longer", 3, false},
		{"replaced on the new branch", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newChainFixture(t)
			senderKey := evmtest.MustKey(t, evmtest.SenderKeyHex)
			watched := common.HexToAddress("0x00000000000000000000000000000000000d0301")
			f.watch(evmtest.ChainName, "ETH", watched, 0)
			rec := &deliveryLog{}
			l, err := watch.NewListener(watch.ListenerConfig{Chain: evmtest.ChainName, Native: true}, f.DB, f.Client, noDial, nil,
				rec, evmtest.DiscardLog())
			if err != nil {
				t.Fatal(err)
			}
			syncToHead(t, l, f.Client)
			parent, err := f.Client.HeaderByNumber(f.Ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			tx := sendNative(t, f.Client, senderKey, watched, 11)
			minedAt := f.Sim.Commit()
			f.Sim.Commit()
			syncToHead(t, l, f.Client)
			if got := rec.blocksOf(tx.Hash(), chain.NativeLogIndex); len(got) != 1 || got[0] != minedAt {
				t.Fatalf("first delivery from %v, want [%s]", got, minedAt.Hex())
			}

			if err := f.Sim.Fork(parent.Hash()); err != nil {
				t.Fatal(err)
			}
			if tc.replace {
				replaceTx(t, f, senderKey, tx)
			}
			for range tc.newBlocks {
				f.Sim.Commit()
			}
			syncToHead(t, l, f.Client)
			got := rec.blocksOf(tx.Hash(), chain.NativeLogIndex)
			if tc.replace {
				if _, err := f.Client.TransactionReceipt(f.Ctx, tx.Hash()); err == nil {
					t.Fatal("the replaced payment is still mined")
				}
				if len(got) != 1 || len(rec.deps) != 1 {
					t.Fatalf("delivered %+v after the payment was replaced, want only the first delivery", rec.deps)
				}
			} else {
				r := f.RequireSuccess(tx.Hash())
				if r.BlockHash == minedAt {
					t.Fatal("re-included in the orphaned block")
				}
				if len(got) != 2 || got[1] != r.BlockHash {
					t.Fatalf("delivered from %v, want [%s %s]", got, minedAt.Hex(), r.BlockHash.Hex())
				}
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

// replaceTx replaces tx (back in the pool after a fork) with a transaction of
// the same nonce and a higher fee that pays an unwatched address. The pool
// takes the fork in the background: until then it refuses the nonce.
func replaceTx(t *testing.T, f *chainFixture, key *ecdsa.PrivateKey, tx *types.Transaction) {
	t.Helper()
	bump := func(x *big.Int) *big.Int { return new(big.Int).Mul(x, big.NewInt(3)) }
	repl, err := types.SignNewTx(key, types.LatestSignerForChainID(big.NewInt(evmtest.SimChainID)), &types.DynamicFeeTx{
		ChainID: big.NewInt(evmtest.SimChainID), Nonce: tx.Nonce(), GasTipCap: bump(tx.GasTipCap()), GasFeeCap: bump(tx.GasFeeCap()),
		Gas: 21_000, To: &evmtest.Recipient, Value: big.NewInt(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		err := f.Client.SendTransaction(f.Ctx, repl)
		if err == nil {
			return
		}
		if i == 200 {
			t.Fatalf("sending the replacement: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestListenerNativeTwoChains: listeners for two chains on one database keep
// separate cursors and watches: an address watched on both receives two
// streams, each from its own chain; an address watched on one chain only is
// not reported from the other.
func TestListenerNativeTwoChains(t *testing.T) {
	f := newChainFixture(t)
	senderKey := evmtest.MustKey(t, evmtest.SenderKeyHex)
	ether := new(big.Int).Exp(big.NewInt(10), big.NewInt(21), nil)
	sim2 := simulated.NewBackend(types.GenesisAlloc{f.Sender: {Balance: ether}})
	t.Cleanup(func() { sim2.Close() })
	client2 := sim2.Client()

	both := common.HexToAddress("0x00000000000000000000000000000000000d0401")
	ethOnly := common.HexToAddress("0x00000000000000000000000000000000000d0402")
	f.watch("ETH", "ETH", both, 0)
	f.watch("BSC", "BNB", both, 0)
	f.watch("ETH", "ETH", ethOnly, 0)
	recETH, recBSC := &deliveryLog{}, &deliveryLog{}
	lETH, err := watch.NewListener(watch.ListenerConfig{Chain: "ETH", Native: true}, f.DB, f.Client, noDial, nil, recETH, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	lBSC, err := watch.NewListener(watch.ListenerConfig{Chain: "BSC", Native: true}, f.DB, client2, noDial, nil, recBSC, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	syncToHead(t, lETH, f.Client)
	syncToHead(t, lBSC, client2)

	onETH := sendNative(t, f.Client, senderKey, both, 21)
	f.Sim.Commit()
	onBSC := sendNative(t, client2, senderKey, both, 22)
	sendNative(t, client2, senderKey, ethOnly, 23)
	for range 4 {
		sim2.Commit()
	}
	syncToHead(t, lETH, f.Client)
	syncToHead(t, lBSC, client2)

	if len(recETH.deps) != 1 || recETH.deps[0].TxHash != onETH.Hash() || recETH.deps[0].Value.Int64() != 21 {
		t.Errorf("ETH listener delivered %+v, want only %s", recETH.deps, onETH.Hash().Hex())
	}
	if len(recBSC.deps) != 1 || recBSC.deps[0].TxHash != onBSC.Hash() || recBSC.deps[0].Value.Int64() != 22 {
		t.Errorf("BSC listener delivered %+v, want only %s", recBSC.deps, onBSC.Hash().Hex())
	}
	for _, c := range []struct {
		l      *watch.Listener
		client simulated.Client
	}{{lETH, f.Client}, {lBSC, client2}} {
		cur, _, err := c.l.LoadCursor(f.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		head, _ := c.client.HeaderByNumber(f.Ctx, nil)
		if cur.Number != head.Number.Uint64() || cur.Hash != head.Hash() {
			t.Errorf("cursor %d/%s, want its chain's head %d/%s", cur.Number, cur.Hash.Hex(), head.Number, head.Hash().Hex())
		}
	}
}

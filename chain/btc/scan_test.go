package btc_test

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
)

// memLog is a BlockLog in memory.
type memLog struct {
	mu     sync.Mutex
	blocks []btc.BlockRef
	saves  int
}

func (m *memLog) Load(context.Context) ([]btc.BlockRef, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]btc.BlockRef(nil), m.blocks...), nil
}

func (m *memLog) Save(_ context.Context, from int64, blocks []btc.BlockRef, keepFrom int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var kept []btc.BlockRef
	for _, b := range m.blocks {
		if b.Height < from && b.Height >= keepFrom {
			kept = append(kept, b)
		}
	}
	m.blocks = append(kept, blocks...)
	m.saves++
	return nil
}

// addresses derives n deposit addresses of a fresh account on the node's
// network.
func addresses(t *testing.T, n *btctest.Node, label string, count int) []string {
	t.Helper()
	seed := sha256.Sum256([]byte(label))
	params := n.Client.Params()
	acct, err := btc.NewAccount(accountXPub(t, seed[:], params), params)
	require.NoError(t, err)
	out := make([]string, count)
	for i := range out {
		out[i], err = acct.Address(uint32(i))
		require.NoError(t, err)
	}
	return out
}

type eventKey struct {
	kind btc.EventKind
	txid string
	vout uint32
}

func keysOf(evs []btc.Event) []eventKey {
	out := make([]eventKey, len(evs))
	for i, e := range evs {
		out[i] = eventKey{e.Kind, e.TxID, e.Vout}
	}
	return out
}

func poll(t *testing.T, s *btc.Scanner) []btc.Event {
	t.Helper()
	evs, err := s.Poll(context.Background())
	require.NoError(t, err)
	return evs
}

// TestScannerDepositsPerOutput: one transaction paying two watched
// addresses three times (and its change to the faucet, not watched) is
// three deposits, keyed by output index, with their exact amounts; each is
// seen once, and confirmed once when its block is 3 deep.
func TestScannerDepositsPerOutput(t *testing.T) {
	n := btctest.Start(t)
	ctx := context.Background()
	addrs := addresses(t, n, "scanner per output", 2)
	watch := btc.NewWatchSet(n.Client.Params())
	for _, a := range addrs {
		_, err := watch.Add(a)
		require.NoError(t, err)
	}
	head, _ := n.Head(t)
	s, err := btc.NewScanner(btc.ScannerConfig{Confirmations: 3, StartHeight: head + 1}, n.Client, watch, &memLog{}, nil)
	require.NoError(t, err)
	require.Empty(t, poll(t, s), "nothing paid yet")

	tx, err := n.Faucet.PayMany(ctx, []btc.Output{{Address: addrs[0], Sats: 100_000_000}, {Address: addrs[1], Sats: 2_500_000},
		{Address: addrs[0], Sats: 777}})
	require.NoError(t, err)
	txid := tx.TxHash().String()
	require.Empty(t, poll(t, s), "a transaction in the pool is no deposit")
	block := n.Mine(t, 1)[0]

	evs := poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositSeen, txid, 0}, {btc.DepositSeen, txid, 1}, {btc.DepositSeen, txid, 2}}, keysOf(evs))
	for i, want := range []struct {
		addr string
		sats int64
	}{{addrs[0], 100_000_000}, {addrs[1], 2_500_000}, {addrs[0], 777}} {
		require.Equal(t, want.addr, evs[i].Address)
		require.Equal(t, want.sats, evs[i].Sats)
		require.Equal(t, head+1, evs[i].Height)
		require.Equal(t, block.String(), evs[i].BlockHash)
		require.EqualValues(t, 1, evs[i].Confirmations)
		require.False(t, evs[i].Coinbase)
	}
	require.Empty(t, poll(t, s), "each deposit is seen once")
	n.Mine(t, 1)
	require.Empty(t, poll(t, s), "2 deep: not confirmed yet")
	n.Mine(t, 1)
	evs = poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositConfirmed, txid, 0}, {btc.DepositConfirmed, txid, 1}, {btc.DepositConfirmed, txid, 2}}, keysOf(evs))
	require.EqualValues(t, 3, evs[0].Confirmations)
	n.Mine(t, 2)
	require.Empty(t, poll(t, s), "confirmed once")
}

// TestScannerReorg: a deposit whose block leaves the best chain is told
// reorged; mined again in the other branch it is seen again there, with
// its new block, and confirmed by that branch's depth. A confirmed deposit
// whose block leaves the chain (a reorganisation deeper than the
// confirmations) is told reorged with WasConfirmed.
func TestScannerReorg(t *testing.T) {
	n := btctest.Start(t)
	addr := addresses(t, n, "scanner reorg", 1)[0]
	watch := btc.NewWatchSet(n.Client.Params())
	_, err := watch.Add(addr)
	require.NoError(t, err)
	head, _ := n.Head(t)
	log := &memLog{}
	s, err := btc.NewScanner(btc.ScannerConfig{Confirmations: 2, StartHeight: head + 1}, n.Client, watch, log, nil)
	require.NoError(t, err)

	txid := n.Pay(t, addr, 50_000).String()
	first := n.Mine(t, 1)[0]
	evs := poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositSeen, txid, 0}}, keysOf(evs))
	require.Equal(t, first.String(), evs[0].BlockHash)

	// The block leaves the chain; its transaction returns to the pool and
	// is mined in the new branch's first block.
	n.Invalidate(t, first)
	second := n.Mine(t, 1)[0]
	require.NotEqual(t, first, second)
	evs = poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositReorged, txid, 0}, {btc.DepositSeen, txid, 0}}, keysOf(evs))
	require.Equal(t, first.String(), evs[0].BlockHash)
	require.False(t, evs[0].WasConfirmed)
	require.Equal(t, second.String(), evs[1].BlockHash)
	require.Equal(t, head+1, evs[1].Height)

	n.Mine(t, 1)
	evs = poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositConfirmed, txid, 0}}, keysOf(evs))
	require.Equal(t, second.String(), evs[0].BlockHash)

	// Deeper than the confirmations: the confirmed deposit's block goes.
	n.Invalidate(t, second)
	n.Mine(t, 3)
	evs = poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositReorged, txid, 0}, {btc.DepositSeen, txid, 0}, {btc.DepositConfirmed, txid, 0}}, keysOf(evs))
	require.True(t, evs[0].WasConfirmed)
	require.NotEqual(t, second.String(), evs[1].BlockHash)

	// The log holds the scanner's blocks as the node has them now.
	tip, tipHash := n.Head(t)
	require.Equal(t, tipHash, log.blocks[len(log.blocks)-1].Hash)
	require.Equal(t, tip, log.blocks[len(log.blocks)-1].Height)
	for _, b := range log.blocks {
		h, err := n.Client.BlockHash(context.Background(), b.Height)
		require.NoError(t, err)
		require.Equal(t, h, b.Hash, "block %d", b.Height)
	}
}

// TestScannerNodeWentBack: a node that comes back lower than the scanner's
// cursor (btcd killed before it flushed its last blocks) is a
// reorganisation: the deposits above its head are told reorged, and the
// blocks it mines next are read.
func TestScannerNodeWentBack(t *testing.T) {
	n := btctest.Start(t)
	addr := addresses(t, n, "scanner node went back", 1)[0]
	watch := btc.NewWatchSet(n.Client.Params())
	_, err := watch.Add(addr)
	require.NoError(t, err)
	head, _ := n.Head(t)
	s, err := btc.NewScanner(btc.ScannerConfig{Confirmations: 6, StartHeight: head + 1}, n.Client, watch, &memLog{}, nil)
	require.NoError(t, err)
	n.Mine(t, 1)
	txid := n.Pay(t, addr, 60_000).String()
	mined := n.Mine(t, 2)
	require.Equal(t, []eventKey{{btc.DepositSeen, txid, 0}}, keysOf(poll(t, s)))

	// The node loses its last two blocks and has mined nothing since: it
	// is lower than the scanner.
	n.Invalidate(t, mined[0])
	evs := poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositReorged, txid, 0}}, keysOf(evs))
	require.Equal(t, head+1, s.Cursor().Height)
	n.Mine(t, 1)
	evs = poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositSeen, txid, 0}}, keysOf(evs), "mined again from the pool")
}

// TestScannerRestart: a new scanner over the same log reads the kept blocks
// again and tells their deposits again, confirmed or not (consumers ignore
// repeats), then goes on: nothing seen before the restart is lost.
func TestScannerRestart(t *testing.T) {
	n := btctest.Start(t)
	addrs := addresses(t, n, "scanner restart", 2)
	watch := btc.NewWatchSet(n.Client.Params())
	for _, a := range addrs {
		_, err := watch.Add(a)
		require.NoError(t, err)
	}
	head, _ := n.Head(t)
	log := &memLog{}
	cfg := btc.ScannerConfig{Confirmations: 3, StartHeight: head + 1}
	s, err := btc.NewScanner(cfg, n.Client, watch, log, nil)
	require.NoError(t, err)
	old := n.Pay(t, addrs[0], 10_000).String()
	n.Mine(t, 3)
	require.Equal(t, []eventKey{{btc.DepositSeen, old, 0}, {btc.DepositConfirmed, old, 0}}, keysOf(poll(t, s)))
	young := n.Pay(t, addrs[1], 20_000).String()
	n.Mine(t, 1)
	require.Equal(t, []eventKey{{btc.DepositSeen, young, 0}}, keysOf(poll(t, s)))
	cursor := s.Cursor()

	// The process restarts; a block is mined meanwhile.
	n.Mine(t, 1)
	s2, err := btc.NewScanner(cfg, n.Client, watch, log, nil)
	require.NoError(t, err)
	evs := poll(t, s2)
	require.Equal(t, []eventKey{{btc.DepositSeen, old, 0}, {btc.DepositSeen, young, 0}, {btc.DepositConfirmed, old, 0}}, keysOf(evs))
	require.Equal(t, cursor.Height+1, s2.Cursor().Height)
	n.Mine(t, 1)
	require.Equal(t, []eventKey{{btc.DepositConfirmed, young, 0}}, keysOf(poll(t, s2)))
}

// TestScannerRestartAfterNodeLostBlocks: the log names a block the node
// does not know at all (btcd was killed before it flushed it): the
// restarted scanner forgets it and reads the node's chain from there on.
func TestScannerRestartAfterNodeLostBlocks(t *testing.T) {
	n := btctest.Start(t)
	addr := addresses(t, n, "scanner lost blocks", 1)[0]
	watch := btc.NewWatchSet(n.Client.Params())
	_, err := watch.Add(addr)
	require.NoError(t, err)
	head, headHash := n.Head(t)
	lost := sha256.Sum256([]byte("a block the node never had"))
	log := &memLog{blocks: []btc.BlockRef{{Height: head, Hash: headHash}, {Height: head + 1, Hash: lost}}}
	s, err := btc.NewScanner(btc.ScannerConfig{Confirmations: 1, StartHeight: head + 1}, n.Client, watch, log, nil)
	require.NoError(t, err)
	txid := n.Pay(t, addr, 30_000).String()
	mined := n.Mine(t, 1)[0]
	evs := poll(t, s)
	require.Equal(t, []eventKey{{btc.DepositSeen, txid, 0}, {btc.DepositConfirmed, txid, 0}}, keysOf(evs))
	require.Equal(t, mined.String(), evs[0].BlockHash)
	require.Equal(t, btc.BlockRef{Height: head + 1, Hash: mined}, s.Cursor())
}

// TestScannerDeepReorg: a reorganisation below every block the scanner
// keeps is reported (ErrDeepReorg) and the scanner goes on reading the new
// branch from the lowest block it dropped (a deposit in the new branch
// below that is not seen: the error asks an operator to reconcile).
func TestScannerDeepReorg(t *testing.T) {
	n := btctest.Start(t)
	addr := addresses(t, n, "scanner deep reorg", 1)[0]
	watch := btc.NewWatchSet(n.Client.Params())
	_, err := watch.Add(addr)
	require.NoError(t, err)
	head, _ := n.Head(t)
	s, err := btc.NewScanner(btc.ScannerConfig{Confirmations: 1, StartHeight: head + 1, Window: 2}, n.Client, watch, &memLog{}, nil)
	require.NoError(t, err)
	mined := n.Mine(t, 3)
	require.Empty(t, poll(t, s))
	// The new branch forks below the kept blocks (head+2 and head+3).
	n.Invalidate(t, mined[0])
	n.Mine(t, 1)
	txid := n.Pay(t, addr, 40_000).String()
	n.Mine(t, 3)
	evs, err := s.Poll(context.Background())
	require.ErrorIs(t, err, btc.ErrDeepReorg)
	require.Equal(t, []eventKey{{btc.DepositSeen, txid, 0}, {btc.DepositConfirmed, txid, 0}}, keysOf(evs))
	tip, tipHash := n.Head(t)
	require.Equal(t, btc.BlockRef{Height: tip, Hash: tipHash}, s.Cursor())
}

// TestScannerRun: the polling loop hands every event to the sink in order;
// events a failing sink did not take are handed again, before new ones.
func TestScannerRun(t *testing.T) {
	n := btctest.Start(t)
	addr := addresses(t, n, "scanner run", 1)[0]
	watch := btc.NewWatchSet(n.Client.Params())
	_, err := watch.Add(addr)
	require.NoError(t, err)
	head, _ := n.Head(t)
	s, err := btc.NewScanner(btc.ScannerConfig{Confirmations: 2, StartHeight: head + 1}, n.Client, watch, &memLog{}, nil)
	require.NoError(t, err)
	var mu sync.Mutex
	var got []eventKey
	failures := 1
	sink := func(_ context.Context, evs []btc.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return context.DeadlineExceeded // the consumer is down once
		}
		got = append(got, keysOf(evs)...)
		return nil
	}
	errs := make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, 50*time.Millisecond, sink, func(err error) { errs <- err })
	}()
	t.Cleanup(func() { cancel(); <-done })

	txid := n.Pay(t, addr, 12_345).String()
	n.Mine(t, 2)
	want := []eventKey{{btc.DepositSeen, txid, 0}, {btc.DepositConfirmed, txid, 0}}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	}, 30*time.Second, 20*time.Millisecond)
	mu.Lock()
	require.Equal(t, want, got, "each event once, in order, after the failed hand-over")
	mu.Unlock()
	require.ErrorIs(t, <-errs, context.DeadlineExceeded, "the sink's failure is reported")
}

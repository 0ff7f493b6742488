package send_test

import (
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"payflow/chain/evm/send"

	"payflow/chain/evm/evmtest"
)

func (f *chainFixture) nonceLanes() *send.NonceLanes {
	f.T.Helper()
	n, err := send.NewNonceLanes(evmtest.ChainName, f.DB, f.Client, evmtest.DiscardLog())
	if err != nil {
		f.T.Fatal(err)
	}
	return n
}

// TestNonceLanesTakeOnlyCommitted: a lane starts at the chain's pending
// nonce; a nonce whose use fails goes to the next caller; a used one is
// never handed out again; Lanes lists the lane.
func TestNonceLanesTakeOnlyCommitted(t *testing.T) {
	f := newChainFixture(t)
	lanes := f.nonceLanes()
	var allocator send.NonceAllocator = lanes
	refused := errors.New("refused by use")
	var got []uint64
	for _, fail := range []bool{true, false, false} {
		err := allocator.WithNonce(f.Ctx, f.Sender, func(_ *sql.Tx, nonce uint64) error {
			got = append(got, nonce)
			if fail {
				return refused
			}
			return nil
		})
		if fail != errors.Is(err, refused) || (!fail && err != nil) {
			t.Fatalf("WithNonce (use fails: %v): %v", fail, err)
		}
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 0 || got[2] != 1 {
		t.Fatalf("nonces handed out %v, want [0 0 1]: a failed use returns its nonce", got)
	}
	if n := f.NextNonce(f.Sender); n != 2 {
		t.Fatalf("lane at %d, want 2", n)
	}
	list, err := lanes.Lanes(f.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Address != f.Sender || list[0].Next != 2 {
		t.Fatalf("lanes %+v, want the sender's at 2", list)
	}
}

// TestNonceLanesOneWriterPerWallet: concurrent callers for one wallet get
// distinct consecutive nonces, and no two of them are inside use at once.
func TestNonceLanesOneWriterPerWallet(t *testing.T) {
	f := newChainFixture(t)
	lanes := f.nonceLanes()
	const n = 40
	var inside, overlaps atomic.Int32
	nonces := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = lanes.WithNonce(f.Ctx, f.Sender, func(_ *sql.Tx, nonce uint64) error {
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				defer inside.Add(-1)
				nonces[i] = nonce
				return nil
			})
		})
	}
	wg.Wait()
	seen := make([]bool, n)
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if nonces[i] >= n || seen[nonces[i]] {
			t.Fatalf("nonce %d handed out twice or out of 0..%d", nonces[i], n-1)
		}
		seen[nonces[i]] = true
	}
	if o := overlaps.Load(); o != 0 {
		t.Fatalf("%d callers used a nonce while another held the lane", o)
	}
	if next := f.NextNonce(f.Sender); next != n {
		t.Fatalf("lane at %d, want %d", next, n)
	}
}

package evm_test

import (
	"context"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain/evm"
)

// heldBackend holds every latest-header and tip read until released, and
// counts them.
type heldBackend struct {
	evm.Backend
	release       chan struct{}
	headers, tips atomic.Int32
}

func (h *heldBackend) HeaderByNumber(ctx context.Context, n *big.Int) (*types.Header, error) {
	h.headers.Add(1)
	<-h.release
	return h.Backend.HeaderByNumber(ctx, n)
}

func (h *heldBackend) SuggestGasTipCap(ctx context.Context) (*big.Int, error) {
	h.tips.Add(1)
	<-h.release
	return h.Backend.SuggestGasTipCap(ctx)
}

// TestSharedReadsOneFeeRefreshForManySigners: 32 signers whose cached fees
// expired together read the latest header and the suggested tip at once:
// the node is asked each question once, and every signer gets the answer
// (its own copy).
func TestSharedReadsOneFeeRefreshForManySigners(t *testing.T) {
	f := newChainFixture(t)
	held := &heldBackend{Backend: f.Client, release: make(chan struct{})}
	shared := evm.NewSharedReads(held)
	const n = 32
	heads := make([]*types.Header, n)
	tips := make([]*big.Int, n)
	errs := make([]error, 2*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { heads[i], errs[i] = shared.HeaderByNumber(f.Ctx, nil) })
		wg.Go(func() { tips[i], errs[n+i] = shared.SuggestGasTipCap(f.Ctx) })
	}
	for deadline := time.Now().Add(30 * time.Second); evm.SharedCallers(shared, "header:latest") < n ||
		evm.SharedCallers(shared, "tip") < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d and %d callers joined", evm.SharedCallers(shared, "header:latest"), evm.SharedCallers(shared, "tip"))
		}
	}
	close(held.release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if h, tp := held.headers.Load(), held.tips.Load(); h != 1 || tp != 1 {
		t.Fatalf("the node was asked %d headers and %d tips for %d signers, want one each", h, tp, n)
	}
	for i := 1; i < n; i++ {
		if heads[i].Hash() != heads[0].Hash() || tips[i].Cmp(tips[0]) != 0 {
			t.Fatalf("signer %d got header %s tip %s; signer 0 %s %s", i, heads[i].Hash(), tips[i], heads[0].Hash(), tips[0])
		}
		if heads[i] == heads[0] || tips[i] == tips[0] {
			t.Fatal("signers share one header or tip value: one could change another's")
		}
	}
	// Past blocks are not shared: they go to the node as asked.
	if _, err := shared.HeaderByNumber(f.Ctx, big.NewInt(0)); err != nil {
		t.Fatal(err)
	}
	if h := held.headers.Load(); h != 2 {
		t.Fatalf("a past header was answered from a shared read (%d node reads)", h)
	}
}

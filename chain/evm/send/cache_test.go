package send_test

import (
	"context"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	gethcommon "github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain/evm/send"

	"payflow/chain/evm"
	"payflow/chain/evm/evmtest"
)

type countingNode struct {
	evm.Backend
	estimates, headers atomic.Int64
}

func (c *countingNode) EstimateGas(ctx context.Context, m ethereum.CallMsg) (uint64, error) {
	c.estimates.Add(1)
	return c.Backend.EstimateGas(ctx, m)
}

func (c *countingNode) HeaderByNumber(ctx context.Context, n *big.Int) (*types.Header, error) {
	c.headers.Add(1)
	return c.Backend.HeaderByNumber(ctx, n)
}

// TestBroadcasterCachesGasAndFees: with the caches on, a second transfer of
// the same token asks the node for no gas estimate and no fee data, and both
// transfers still mine.
func TestBroadcasterCachesGasAndFees(t *testing.T) {
	f := newChainFixture(t)
	node := &countingNode{Backend: f.Client}
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: evmtest.ChainName, ChainID: big.NewInt(evmtest.SimChainID), MaxFeeWei: evmtest.MaxFeeWei,
		FeeCacheTTL: time.Hour, GasCacheTTL: time.Hour}, f.DB, node, f.Signer, evmtest.DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	// The first transfer goes to a wallet that already holds the token (the
	// cheap case), the second to one that never did (the costliest): the
	// gas cached from the first must still cover the second.
	var hashes []string
	for i, wf := range []string{"wf-c1", "wf-c2"} {
		req := f.Request(wf, int64(i+1))
		if i == 0 {
			req.To = f.Broke
		} else {
			req.To = gethcommon.HexToAddress("0x00000000000000000000000000000000000fee99")
		}
		s, err := bc.Signer.SignTransfer(f.Ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bc.Sender.Send(f.Ctx, wf, "transfer"); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, s.Hash.Hex())
	}
	if e, h := node.estimates.Load(), node.headers.Load(); e != 1 || h != 1 {
		t.Fatalf("%d estimates and %d header reads for two transfers, want 1 and 1", e, h)
	}
	f.Sim.Commit()
	for _, h := range hashes {
		r, err := f.Client.TransactionReceipt(f.Ctx, gethcommon.HexToHash(h))
		if err != nil || r.Status != 1 {
			t.Fatalf("%s not mined: %v", h, err)
		}
	}
}

package evm_test

import (
	"context"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	gethcommon "github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain/evm"
)

type countingNode struct {
	simulatedClient
	estimates, headers atomic.Int64
}

func (c *countingNode) EstimateGas(ctx context.Context, m ethereum.CallMsg) (uint64, error) {
	c.estimates.Add(1)
	return c.simulatedClient.EstimateGas(ctx, m)
}

func (c *countingNode) HeaderByNumber(ctx context.Context, n *big.Int) (*types.Header, error) {
	c.headers.Add(1)
	return c.simulatedClient.HeaderByNumber(ctx, n)
}

// TestBroadcasterCachesGasAndFees: with the caches on, a second transfer of
// the same token asks the node for no gas estimate and no fee data, and both
// transfers still mine.
func TestBroadcasterCachesGasAndFees(t *testing.T) {
	f := newChainFixture(t)
	node := &countingNode{simulatedClient: f.client}
	bc, err := evm.NewBroadcaster(evm.BroadcasterConfig{Chain: chainName, ChainID: big.NewInt(simChainID), MaxFeeWei: maxFeeWei,
		FeeCacheTTL: time.Hour, GasCacheTTL: time.Hour}, f.db, node, f.keys, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	// The first transfer goes to a wallet that already holds the token (the
	// cheap case), the second to one that never did (the costliest): the
	// gas cached from the first must still cover the second.
	var hashes []string
	for i, wf := range []string{"wf-c1", "wf-c2"} {
		req := f.request(wf, int64(i+1))
		if i == 0 {
			req.To = f.broke
		} else {
			req.To = gethcommon.HexToAddress("0x00000000000000000000000000000000000fee99")
		}
		s, err := bc.Signer.SignTransfer(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bc.Sender.Send(f.ctx, wf, "transfer"); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, s.Hash.Hex())
	}
	if e, h := node.estimates.Load(), node.headers.Load(); e != 1 || h != 1 {
		t.Fatalf("%d estimates and %d header reads for two transfers, want 1 and 1", e, h)
	}
	f.sim.Commit()
	for _, h := range hashes {
		r, err := f.client.TransactionReceipt(f.ctx, gethcommon.HexToHash(h))
		if err != nil || r.Status != 1 {
			t.Fatalf("%s not mined: %v", h, err)
		}
	}
}

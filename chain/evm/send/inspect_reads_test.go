package send

import (
	"context"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain"
	"payflow/chain/evm"
)

// readsBackend answers receipts from a map, a head and a nonce, and counts
// the calls; any other call panics (the embedded Backend is nil).
type readsBackend struct {
	evm.Backend
	receipts            map[common.Hash]*types.Receipt
	head, nonce         uint64
	receiptN, headN, nN int
}

func (b *readsBackend) TransactionReceipt(_ context.Context, h common.Hash) (*types.Receipt, error) {
	b.receiptN++
	if r, ok := b.receipts[h]; ok {
		return r, nil
	}
	return nil, ethereum.NotFound
}

func (b *readsBackend) BlockNumber(context.Context) (uint64, error) { b.headN++; return b.head, nil }

func (b *readsBackend) NonceAt(context.Context, common.Address, *big.Int) (uint64, error) {
	b.nN++
	return b.nonce, nil
}

// A mined transfer is proven by its receipt alone: no head or nonce read.
// Without a receipt the nonce is read at depth before the receipts are read
// again, so a transfer mined in between shows as mined, and a used nonce as
// dropped.
func TestInspectReadsTheNonceOnlyWithoutAReceipt(t *testing.T) {
	ctx := context.Background()
	a0 := evm.SignedTx{Hash: common.HexToHash("0xa0"), Nonce: 7}
	a1 := evm.SignedTx{Hash: common.HexToHash("0xa1"), Nonce: 7, Attempt: 1}
	b := &readsBackend{head: 100, nonce: 7, receipts: map[common.Hash]*types.Receipt{
		a1.Hash: {Status: types.ReceiptStatusSuccessful, BlockNumber: big.NewInt(99)}}}
	in, err := inspectAttempts(ctx, b, []evm.SignedTx{a0, a1}, 3)
	if err != nil || in.State != chain.TransferMined || in.Attempt.Hash != a1.Hash || in.BlockNumber != 99 {
		t.Fatalf("mined: %+v, %v", in, err)
	}
	if b.headN != 0 || b.nN != 0 || b.receiptN != 2 {
		t.Errorf("mined: %d head, %d nonce, %d receipt reads; want 0, 0, 2", b.headN, b.nN, b.receiptN)
	}

	b = &readsBackend{head: 100, nonce: 7, receipts: map[common.Hash]*types.Receipt{}}
	if in, err := inspectAttempts(ctx, b, []evm.SignedTx{a0}, 3); err != nil || in.State != chain.TransferPending {
		t.Fatalf("pending: %+v, %v", in, err)
	}
	if b.headN != 1 || b.nN != 1 || b.receiptN != 2 {
		t.Errorf("pending: %d head, %d nonce, %d receipt reads; want 1, 1, 2", b.headN, b.nN, b.receiptN)
	}

	b.nonce = 8 // another transaction used nonce 7, three blocks deep
	if in, err := inspectAttempts(ctx, b, []evm.SignedTx{a0}, 3); err != nil || in.State != chain.TransferDropped {
		t.Fatalf("dropped: %+v, %v", in, err)
	}
}

// The receipt an inspection found is the one the gas charge that follows
// reads (RecentReceipt), for a minute.
func TestRecentReceiptIsWhatInspectFound(t *testing.T) {
	var c recentReceipts
	h := common.HexToHash("0xab")
	if _, ok := c.get(h); ok {
		t.Fatal("a receipt before any was found")
	}
	r := &types.Receipt{GasUsed: 21000, EffectiveGasPrice: big.NewInt(3)}
	b := keepingReceipts{Backend: &readsBackend{receipts: map[common.Hash]*types.Receipt{h: r}}, c: &c}
	if _, err := b.TransactionReceipt(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.get(h); !ok || got != r {
		t.Fatalf("kept: %v, %v", got, ok)
	}
	for i := 0; i < maxReceipts+1; i++ { // the bound drops the oldest first
		c.put(common.BigToHash(big.NewInt(int64(i+1000))), r)
	}
	if _, ok := c.get(h); ok {
		t.Error("the oldest receipt outlived the bound")
	}
}

package send

import (
	"context"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain/evm"
)

// recentReceipts keeps, for receiptTTL, the receipts Inspect found: a
// payment decides right after inspecting and charges its transfer's gas from
// the same receipt (Sender.RecentReceipt), which then costs no second
// eth_getTransactionReceipt. The two reads were milliseconds apart before;
// a receipt a reorg replaced within the TTL is as stale as it was then.
type recentReceipts struct {
	mu    sync.Mutex
	byTx  map[common.Hash]recentReceipt
	order []common.Hash // oldest first, for the bound
}

type recentReceipt struct {
	r  *types.Receipt
	at time.Time
}

const (
	receiptTTL   = time.Minute
	maxReceipts  = 8192
	receiptsTrim = maxReceipts / 4
)

func (c *recentReceipts) put(hash common.Hash, r *types.Receipt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byTx == nil {
		c.byTx = map[common.Hash]recentReceipt{}
	}
	if len(c.order) >= maxReceipts {
		for _, h := range c.order[:receiptsTrim] {
			delete(c.byTx, h)
		}
		c.order = append(c.order[:0], c.order[receiptsTrim:]...)
	}
	if _, ok := c.byTx[hash]; !ok {
		c.order = append(c.order, hash)
	}
	c.byTx[hash] = recentReceipt{r: r, at: time.Now()}
}

func (c *recentReceipts) get(hash common.Hash) (*types.Receipt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byTx[hash]
	if !ok || time.Since(e.at) > receiptTTL {
		return nil, false
	}
	return e.r, true
}

// keepingReceipts is a backend whose receipts found are kept in c.
type keepingReceipts struct {
	evm.Backend
	c *recentReceipts
}

func (k keepingReceipts) TransactionReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	r, err := k.Backend.TransactionReceipt(ctx, hash)
	if err == nil && r != nil {
		k.c.put(hash, r)
	}
	return r, err
}

// RecentReceipt is the receipt of hash that Inspect found within the last
// minute, if any.
func (s *Sender) RecentReceipt(hash common.Hash) (*types.Receipt, bool) { return s.recent.get(hash) }

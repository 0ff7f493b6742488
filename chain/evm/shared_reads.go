package evm

import (
	"context"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
)

// sharedReadTimeout bounds a shared read: its first caller's context may
// end while others wait for it.
const sharedReadTimeout = 30 * time.Second

// sharedReads is a Backend whose identical reads of the latest state that
// run at the same time share one RPC. The signers of a hot wallet check its
// token and ether balances before every signature, and all of them refresh
// the fees (latest header, suggested tip) when the cached ones expire:
// under load they ask the same questions together, and a node spends far
// more on each call (about a millisecond of CPU for an eth_call) than on
// the answer. A caller
// may get the answer of a call that started just before it asked: staler by
// at most one call, and the check never counted the wallet's transactions
// still in the pool anyway.
type sharedReads struct {
	Backend
	mu       sync.Mutex
	inflight map[string]*sharedRead
}

type sharedRead struct {
	done chan struct{}
	out  []byte
	num  *big.Int // a balance, or a tip
	head *types.Header
	err  error
	// callers counts who asked (under sharedReads.mu): the tests read it
	// to know every caller joined one read before it returns.
	callers int
}

func NewSharedReads(backend Backend) *sharedReads {
	return &sharedReads{Backend: backend, inflight: map[string]*sharedRead{}}
}

// CallContract shares plain calls (a recipient and data, nothing else) at the
// latest block.
func (s *sharedReads) CallContract(ctx context.Context, msg ethereum.CallMsg, block *big.Int) ([]byte, error) {
	if block != nil || msg.To == nil || msg.From != (common.Address{}) || msg.Gas != 0 || msg.GasPrice != nil ||
		msg.GasFeeCap != nil || msg.GasTipCap != nil || msg.Value != nil || msg.AccessList != nil ||
		msg.BlobGasFeeCap != nil || msg.BlobHashes != nil || msg.AuthorizationList != nil {
		return s.Backend.CallContract(ctx, msg, block)
	}
	r, err := s.share(ctx, "call:"+msg.To.Hex()+":"+hexutil.Encode(msg.Data), func(ctx context.Context, r *sharedRead) {
		r.out, r.err = s.Backend.CallContract(ctx, msg, nil)
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), r.out...), r.err
}

// BalanceAt shares reads of the latest balance.
func (s *sharedReads) BalanceAt(ctx context.Context, account common.Address, block *big.Int) (*big.Int, error) {
	if block != nil {
		return s.Backend.BalanceAt(ctx, account, block)
	}
	r, err := s.share(ctx, "balance:"+account.Hex(), func(ctx context.Context, r *sharedRead) {
		r.num, r.err = s.Backend.BalanceAt(ctx, account, nil)
	})
	if err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	return new(big.Int).Set(r.num), nil
}

// HeaderByNumber shares reads of the latest header (the fee oracle's base
// fee: every signer whose cached fees expired asks at once).
func (s *sharedReads) HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error) {
	if number != nil {
		return s.Backend.HeaderByNumber(ctx, number)
	}
	r, err := s.share(ctx, "header:latest", func(ctx context.Context, r *sharedRead) {
		r.head, r.err = s.Backend.HeaderByNumber(ctx, nil)
	})
	if err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	return types.CopyHeader(r.head), nil
}

// SuggestGasTipCap shares reads of the node's suggested tip.
func (s *sharedReads) SuggestGasTipCap(ctx context.Context) (*big.Int, error) {
	r, err := s.share(ctx, "tip", func(ctx context.Context, r *sharedRead) {
		r.num, r.err = s.Backend.SuggestGasTipCap(ctx)
	})
	if err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	return new(big.Int).Set(r.num), nil
}

// share joins the read of key in flight, or runs it; it returns the read
// once done, or ctx's error.
func (s *sharedReads) share(ctx context.Context, key string, read func(ctx context.Context, r *sharedRead)) (*sharedRead, error) {
	s.mu.Lock()
	r, ok := s.inflight[key]
	if !ok {
		r = &sharedRead{done: make(chan struct{})}
		s.inflight[key] = r
	}
	r.callers++
	s.mu.Unlock()
	if !ok {
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedReadTimeout)
			defer cancel()
			read(rctx, r)
			s.mu.Lock()
			delete(s.inflight, key)
			s.mu.Unlock()
			close(r.done)
		}()
	}
	select {
	case <-r.done:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

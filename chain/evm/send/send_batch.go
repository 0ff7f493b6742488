package send

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/chain/evm"
)

// txPoster puts a stored transaction on the node and records it sent. It
// reports whether the node accepted it (or already had it); then err is the
// failure to record it sent, if any; otherwise err is the node's refusal.
type txPoster interface {
	post(ctx context.Context, stx evm.SignedTx, tx *types.Transaction) (accepted bool, err error)
}

// rpcClient is a Backend that exposes its JSON-RPC client, as
// *ethclient.Client (and the simulated backend's client) do.
type rpcClient interface {
	Client() *rpc.Client
}

const (
	// maxSendBatch bounds one JSON-RPC batch (geth's default batch limit
	// is 1000 requests).
	maxSendBatch = 500
	// sendBatchTimeout bounds one batch's call and its marking.
	sendBatchTimeout = 30 * time.Second
	// sendFlights is how many batches may be in flight at once: one is
	// marked sent while the next is on its way to the node.
	sendFlights = 2
)

// batchPoster collects the transactions its callers send meanwhile and puts
// them on the node in one JSON-RPC batch of eth_sendRawTransaction, ordered
// by sender and nonce, then marks the accepted ones sent in one statement.
// While sendFlights batches are in flight the next one queues up, so batches
// grow with the load and a lone send waits for nobody. Every caller gets its own outcome:
// the node refusing one transaction of a batch fails that send alone.
type batchPoster struct {
	store   *evm.TxStore
	rpc     batchCaller
	mu      sync.Mutex
	queue   []*sendReq
	running int // flushers running
}

type sendReq struct {
	stx  evm.SignedTx
	done chan sendOutcome // buffered: the flusher never waits for its caller
}

type sendOutcome struct {
	accepted bool
	err      error
}

// batchCaller makes JSON-RPC batch calls; *rpc.Client is one.
type batchCaller interface {
	BatchCallContext(ctx context.Context, b []rpc.BatchElem) error
}

// oneByOne is the batchCaller of a backend that exposes no JSON-RPC client
// (go-ethereum's simulated backend hides it): it sends the batch's
// transactions one after another, in its order.
type oneByOne struct{ backend evm.Backend }

func (o oneByOne) BatchCallContext(ctx context.Context, elems []rpc.BatchElem) error {
	for i := range elems {
		raw, err := hexutil.Decode(elems[i].Args[0].(string))
		if err != nil {
			elems[i].Error = err
			continue
		}
		var tx types.Transaction
		if err := tx.UnmarshalBinary(raw); err != nil {
			elems[i].Error = err
			continue
		}
		elems[i].Error = o.backend.SendTransaction(ctx, &tx)
	}
	return nil
}

// newPoster returns a batchPoster over the backend's JSON-RPC client when it
// exposes one, sending one by one otherwise (still marking each batch sent
// in one statement).
func newPoster(store *evm.TxStore, backend evm.Backend) txPoster {
	if c, ok := backend.(rpcClient); ok {
		if rc := c.Client(); rc != nil {
			return &batchPoster{store: store, rpc: rc}
		}
	}
	return &batchPoster{store: store, rpc: oneByOne{backend}}
}

// post implements txPoster. A caller whose ctx ends returns with its error;
// its transaction may still be sent (sending stored bytes is harmless).
func (p *batchPoster) post(ctx context.Context, stx evm.SignedTx, _ *types.Transaction) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r := &sendReq{stx: stx, done: make(chan sendOutcome, 1)}
	p.mu.Lock()
	p.queue = append(p.queue, r)
	start := p.running < sendFlights
	if start {
		p.running++
	}
	p.mu.Unlock()
	if start {
		go p.run()
	}
	select {
	case o := <-r.done:
		return o.accepted, o.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// run flushes batches until the queue is empty.
func (p *batchPoster) run() {
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.running--
			p.mu.Unlock()
			return
		}
		n := min(len(p.queue), maxSendBatch)
		batch := p.queue[:n:n]
		p.queue = p.queue[n:]
		p.mu.Unlock()
		p.flush(batch)
	}
}

// flush sends batch in one JSON-RPC batch, lowest nonces first (the pool
// then never holds a transaction waiting for one still in the batch), marks
// the accepted transactions sent in one statement and hands every caller its
// outcome.
func (p *batchPoster) flush(batch []*sendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), sendBatchTimeout)
	defer cancel()
	slices.SortStableFunc(batch, func(a, b *sendReq) int {
		if c := a.stx.From.Cmp(b.stx.From); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.stx.Nonce, b.stx.Nonce), cmp.Compare(a.stx.Attempt, b.stx.Attempt))
	})
	elems := make([]rpc.BatchElem, len(batch))
	for i, r := range batch {
		elems[i] = rpc.BatchElem{Method: "eth_sendRawTransaction", Args: []any{hexutil.Encode(r.stx.Raw)},
			Result: new(common.Hash)}
	}
	if err := p.rpc.BatchCallContext(ctx, elems); err != nil {
		for _, r := range batch {
			r.done <- sendOutcome{err: fmt.Errorf("sending a batch of %d: %w", len(batch), err)}
		}
		return
	}
	var sent []common.Hash
	for i, r := range batch {
		if elems[i].Error == nil || isKnown(elems[i].Error) {
			sent = append(sent, r.stx.Hash)
		}
	}
	markErr := p.store.MarkSentMany(ctx, sent)
	for i, r := range batch {
		if elems[i].Error == nil || isKnown(elems[i].Error) {
			r.done <- sendOutcome{accepted: true, err: markErr}
		} else {
			r.done <- sendOutcome{err: elems[i].Error}
		}
	}
}

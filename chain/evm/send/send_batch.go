package send

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/internal/groupcommit"

	"payflow/chain/evm"
)

// txPoster puts a stored transaction on the node and records it sent. It
// reports whether the node accepted it (or already had it); then err is the
// failure to record it sent, if any; otherwise err is the node's refusal.
type txPoster interface {
	post(ctx context.Context, stx evm.SignedTx, tx *types.Transaction) (accepted bool, err error)
	// close waits for the batches queued to be sent and marked, and refuses
	// later posts.
	close()
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
	store *evm.TxStore
	rpc   batchCaller
	queue *groupcommit.Queue[struct{}, evm.SignedTx, bool] // one queue for all senders; the outcome is accepted
}

func newBatchPoster(store *evm.TxStore, rpc batchCaller) *batchPoster {
	p := &batchPoster{store: store, rpc: rpc}
	p.queue = groupcommit.New(groupcommit.Config[struct{}, evm.SignedTx, bool]{MaxBatch: maxSendBatch, Flights: sendFlights,
		Commit: p.flush})
	return p
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
			return newBatchPoster(store, rc)
		}
	}
	return newBatchPoster(store, oneByOne{backend})
}

// close implements txPoster.
func (p *batchPoster) close() { p.queue.Close() }

// post implements txPoster. A caller whose ctx ends before its transaction
// was taken into a batch returns with ctx's error and the transaction is not
// sent (the next attempt sends the stored bytes); once taken, the caller
// waits for its batch (bounded by sendBatchTimeout) and hears whether the
// node accepted it.
func (p *batchPoster) post(ctx context.Context, stx evm.SignedTx, _ *types.Transaction) (bool, error) {
	return p.queue.Do(ctx, struct{}{}, stx)
}

// flush sends batch in one JSON-RPC batch, lowest nonces first (the pool
// then never holds a transaction waiting for one still in the batch), marks
// the accepted transactions sent in one statement and returns each one's
// outcome, in batch's order.
func (p *batchPoster) flush(_ struct{}, batch []evm.SignedTx) []groupcommit.Outcome[bool] {
	ctx, cancel := context.WithTimeout(context.Background(), sendBatchTimeout)
	defer cancel()
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		a, b := batch[i], batch[j]
		if c := a.From.Cmp(b.From); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Nonce, b.Nonce), cmp.Compare(a.Attempt, b.Attempt))
	})
	elems := make([]rpc.BatchElem, len(batch))
	for k, i := range order {
		elems[k] = rpc.BatchElem{Method: "eth_sendRawTransaction", Args: []any{hexutil.Encode(batch[i].Raw)},
			Result: new(common.Hash)}
	}
	outs := make([]groupcommit.Outcome[bool], len(batch))
	if err := p.rpc.BatchCallContext(ctx, elems); err != nil {
		for i := range outs {
			outs[i].Err = fmt.Errorf("sending a batch of %d: %w", len(batch), err)
		}
		return outs
	}
	var sent []common.Hash
	for k, i := range order {
		if elems[k].Error == nil || isKnown(elems[k].Error) {
			sent = append(sent, batch[i].Hash)
		}
	}
	markErr := p.store.MarkSentMany(ctx, sent)
	for k, i := range order {
		if elems[k].Error == nil || isKnown(elems[k].Error) {
			outs[i] = groupcommit.Outcome[bool]{Res: true, Err: markErr}
		} else {
			outs[i].Err = elems[k].Error
		}
	}
	return outs
}

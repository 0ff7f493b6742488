package send

import (
	"context"
	"database/sql"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/chain/evm"
)

// SendBatch puts stxs on the node as ONE batch of s's batching poster (the
// test decides what shares a batch) and returns each one's outcome, as send
// reads it: accepted by the node (err is then the failure to mark it sent)
// or refused (err is the node's refusal).
func SendBatch(s *Sender, stxs []evm.SignedTx) (accepted []bool, errs []error) {
	p, ok := s.poster.(*batchPoster)
	if !ok {
		panic("the sender does not batch")
	}
	if _, ok := p.rpc.(*rpc.Client); !ok {
		panic("the sender does not batch over JSON-RPC")
	}
	outs := p.flush(struct{}{}, stxs)
	accepted, errs = make([]bool, len(stxs)), make([]error, len(stxs))
	for i, o := range outs {
		accepted[i], errs[i] = o.Res, o.Err
	}
	return accepted, errs
}

// QueuedNonces is how many WithNonce calls of from wait in n's queue (taken
// ones, whose use runs, are not counted).
func QueuedNonces(n *NonceLanes, from common.Address) int {
	if n.batch == nil {
		return 0
	}
	return n.batch.queue.Queued(from)
}

// WithNonceOneStatement is n's WithNonce for a use of at most one statement
// (the signer's), which a batch runs without a savepoint.
func WithNonceOneStatement(n *NonceLanes, ctx context.Context, from common.Address,
	use func(tx *sql.Tx, nonce uint64) error) error {
	return n.withNonceOneStatement(ctx, from, use)
}

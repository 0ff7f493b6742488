package btc

import (
	"context"
	"errors"
	"time"
)

// Node is a Bitcoin chain's node as the metrics sampler reads it: its head
// and a block's time.
type Node struct{ C *Client }

// BlockNumber is the height of the node's best chain.
func (n Node) BlockNumber(ctx context.Context) (uint64, error) {
	h, _, err := n.C.Head(ctx)
	if err != nil {
		return 0, err
	}
	if h < 0 {
		return 0, errors.New("the node reports a negative height")
	}
	return uint64(h), nil
}

// BlockTime is the time in the header of the best chain's block at height
// number.
func (n Node) BlockTime(ctx context.Context, number uint64) (time.Time, error) {
	hash, err := n.C.BlockHash(ctx, int64(number))
	if err != nil {
		return time.Time{}, err
	}
	b, err := n.C.Block(ctx, hash)
	if err != nil {
		return time.Time{}, err
	}
	return b.Header.Timestamp, nil
}

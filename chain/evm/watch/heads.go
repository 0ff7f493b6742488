package watch

import (
	"context"
	"log/slog"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain/evm"
)

// followHeads calls fn with the latest block number on every new head
// received over the WebSocket, and every poll interval regardless (a silent
// subscription must not stall anything). It redials with backoff after a
// disconnect and calls fn with the latest head right after each (re)connect,
// so whatever happened while disconnected is caught up. Returns when ctx ends.
// Each dialled connection is closed when it is replaced or ctx ends.
func followHeads(ctx context.Context, dial func(context.Context) (HeadSubscriber, error), backend evm.Backend, poll time.Duration, log *slog.Logger, fn func(ctx context.Context, head uint64)) {
	latest := func() {
		n, err := backend.BlockNumber(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("reading block number", "err", err)
			}
			return
		}
		fn(ctx, n)
	}
	backoff := 200 * time.Millisecond
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for ctx.Err() == nil {
		var sub ethereum.Subscription
		heads := make(chan *types.Header, 64)
		src, err := dial(ctx)
		if err == nil {
			sub, err = src.SubscribeNewHead(ctx, heads)
			if err != nil {
				closeConn(src)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("head subscription failed; polling until it is back", "err", err, "retry_in", backoff)
			latest()
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		latest()
	loop:
		for {
			select {
			case <-ctx.Done():
				sub.Unsubscribe()
				closeConn(src)
				return
			case err := <-sub.Err():
				log.Warn("head subscription dropped; reconnecting", "err", err)
				sub.Unsubscribe()
				closeConn(src)
				break loop
			case h := <-heads:
				fn(ctx, h.Number.Uint64())
			case <-tick.C:
				latest()
			}
		}
	}
}

// closeConn closes a dialled connection: each reconnect dials a new client
// (*ethclient.Client in payflow), and one left open leaks its socket and
// goroutines. A HeadSubscriber without a Close method owns nothing to free.
func closeConn(src HeadSubscriber) {
	if c, ok := src.(interface{ Close() }); ok {
		c.Close()
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"

	"payflow/chain/evm"
	"payflow/config"
	"payflow/internal/metrics"
)

// chainNode is what the start-up check asks a chain's node.
// *ethclient.Client and simulated.Client satisfy it.
type chainNode interface {
	ChainID(ctx context.Context) (*big.Int, error)
	bind.ContractCaller
}

// checkChain decides whether this worker may serve a chain: its node must
// serve the configured chain id (else payflow would sign for another chain),
// and every configured token's contract must report the configured decimals
// (else every amount of that token is wrong by a power of ten). A refusal
// wraps config.ErrInvalid and names the chain, and for a token its symbol,
// configured and on-chain decimals; any other error is the node not
// answering, to be asked again.
func checkChain(ctx context.Context, name string, ch config.ChainConfig, node chainNode) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id, err := node.ChainID(cctx)
	if err != nil {
		return fmt.Errorf("reading the chain id: %w", err)
	}
	if id.Cmp(big.NewInt(ch.ChainID)) != 0 {
		return fmt.Errorf("%w: chains.%s.chainId is %d but the node at %s serves chain id %s: refusing to sign for it",
			config.ErrInvalid, name, ch.ChainID, nodeHost(ch.RPCURL), id)
	}
	symbols := make([]string, 0, len(ch.Tokens))
	for sym := range ch.Tokens {
		symbols = append(symbols, sym)
	}
	slices.Sort(symbols)
	for _, sym := range symbols {
		t := ch.Tokens[sym]
		got, err := evm.TokenDecimals(cctx, node, common.HexToAddress(t.Address))
		if errors.Is(err, evm.ErrNotAToken) {
			return fmt.Errorf("%w: chains.%s.tokens.%s: %v", config.ErrInvalid, name, sym, err)
		}
		if err != nil {
			return fmt.Errorf("reading the decimals of %s: %w", sym, err)
		}
		if int32(got) != t.Decimals {
			return fmt.Errorf("%w: chains.%s.tokens.%s.decimals is %d but its contract at %s says %d: refusing to convert its amounts",
				config.ErrInvalid, name, sym, t.Decimals, evm.Lower(common.HexToAddress(t.Address)), got)
		}
	}
	return nil
}

// awaitChain waits until the chain's node answers checkChain: it returns
// nil when the chain may be served (or ctx ended first), the refusal when
// it may not. A node that is down only delays its own chain.
func awaitChain(ctx context.Context, name string, ch config.ChainConfig, node chainNode, log *slog.Logger) error {
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		err := checkChain(ctx, name, ch, node)
		if err == nil || errors.Is(err, config.ErrInvalid) {
			return err
		}
		log.Warn("chain node not reachable; this chain waits, the others go on", "node", nodeHost(ch.RPCURL), "err", err,
			"retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// serveChains runs serve for every chain on its own until ctx ends, and
// returns when all have returned. A chain whose serve returns an error (a
// refusal or a failed setup) is reported to refuse and is not served by this
// process; the others go on and ctx is not cancelled: one chain's bad config
// or node never stops another's payments. The refused chain's workflows wait
// in its task queue for a worker that serves it.
func serveChains(ctx context.Context, names []string, serve func(ctx context.Context, name string) error,
	refuse func(name string, err error)) {
	var served sync.WaitGroup
	for _, name := range names {
		served.Go(func() {
			if err := serve(ctx, name); err != nil {
				refuse(name, err)
			}
		})
	}
	served.Wait()
}

// refuseChain returns how the worker refuses a chain it will not serve: at
// error in the log, with the reason, and payflow_chain_refused{chain} = 1
// for the alert. The reason names no secret: chain ids, symbols, decimals,
// the node's host (never its path or query, where a provider's key goes).
func refuseChain(log *slog.Logger, m *metrics.Metrics) func(name string, err error) {
	return func(name string, err error) {
		log.Error("chain refused: this worker does not serve it; the other chains go on", "chain", name, "err", err)
		m.ChainRefused(name)
	}
}

// nodeHost is a node URL's scheme and host, for logs and errors: providers
// put their API keys in the path or the query, and user info is a password.
func nodeHost(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "(unparsable node URL)"
	}
	return u.Scheme + "://" + u.Host
}

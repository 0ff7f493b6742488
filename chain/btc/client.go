package btc

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/btcsuite/btcd/btcjson"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/rpcclient"
	"github.com/btcsuite/btcd/wire"
)

// ClientConfig says how to reach a btcd node's JSON-RPC.
type ClientConfig struct {
	// URL is the node's JSON-RPC endpoint: http://host:port (https when the
	// node serves TLS; then its certificate must be trusted by the system).
	URL string
	// User and Password are the node's rpcuser and rpcpass. Secrets: never
	// logged.
	User, Password string
	// Network is the network the node must serve: "simnet", "regtest", "testnet",
	// "signet" or "mainnet".
	Network string
}

// Client is a btcd node's JSON-RPC, over HTTP POST (no WebSocket: every
// call is one request). Every method takes a context: rpcclient's own
// calls take none, so a call whose context ends returns at once with the
// context's error, while its request finishes in the background
// (rpcclient retries a node that does not answer, with backoff, for up to
// about a minute).
type Client struct {
	rpc    *rpcclient.Client
	params *chaincfg.Params
}

// Dial makes a client of cfg's node. It does not connect: a node that is
// down shows at the first call.
func Dial(cfg ClientConfig) (*Client, error) {
	params, err := Params(cfg.Network)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("the btcd RPC URL is not http(s)://host:port")
	}
	rc, err := rpcclient.New(&rpcclient.ConnConfig{
		Host:         u.Host + strings.TrimSuffix(u.Path, "/"),
		User:         cfg.User,
		Pass:         cfg.Password,
		HTTPPostMode: true,
		DisableTLS:   u.Scheme == "http",
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("making the btcd client: %w", err)
	}
	return &Client{rpc: rc, params: params}, nil
}

// Close releases the client.
func (c *Client) Close() { c.rpc.Shutdown() }

// Params are the chain parameters of the client's network.
func (c *Client) Params() *chaincfg.Params { return c.params }

// ErrWrongNetwork: the node serves another network than the configured one.
var ErrWrongNetwork = errors.New("the node serves another bitcoin network")

// call runs f, which does not take a context, and returns when it returns
// or when ctx ends, whichever comes first.
func call[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// CheckNetwork fails with ErrWrongNetwork when the node serves another
// network than the client's (payflow would watch and pay on the wrong
// chain); any other error is the node not answering.
func (c *Client) CheckNetwork(ctx context.Context) error {
	info, err := call(ctx, c.rpc.GetBlockChainInfo)
	if err != nil {
		return fmt.Errorf("reading the node's chain: %w", err)
	}
	if info.Chain != c.params.Name {
		return fmt.Errorf("%w: configured %s, the node serves %s", ErrWrongNetwork, c.params.Name, info.Chain)
	}
	return nil
}

// Head is the node's best block: its height and hash.
func (c *Client) Head(ctx context.Context) (int64, chainhash.Hash, error) {
	type best struct {
		hash   *chainhash.Hash
		height int32
	}
	b, err := call(ctx, func() (best, error) {
		h, n, err := c.rpc.GetBestBlock()
		return best{h, n}, err
	})
	if err != nil {
		return 0, chainhash.Hash{}, fmt.Errorf("reading the best block: %w", err)
	}
	return int64(b.height), *b.hash, nil
}

// BlockHash is the hash of the block at height on the node's best chain.
func (c *Client) BlockHash(ctx context.Context, height int64) (chainhash.Hash, error) {
	h, err := call(ctx, func() (*chainhash.Hash, error) { return c.rpc.GetBlockHash(height) })
	if err != nil {
		return chainhash.Hash{}, fmt.Errorf("reading the hash of block %d: %w", height, err)
	}
	return *h, nil
}

// Block is the block of hash, decoded from its raw bytes (amounts exact, in
// satoshis).
func (c *Client) Block(ctx context.Context, hash chainhash.Hash) (*wire.MsgBlock, error) {
	b, err := call(ctx, func() (*wire.MsgBlock, error) { return c.rpc.GetBlock(&hash) })
	if err != nil {
		return nil, fmt.Errorf("reading block %s: %w", hash, err)
	}
	return b, nil
}

// Send hands a signed transaction to the node. Sending it again is
// harmless: the node's answer that it already has it, in its pool or
// mined, is success. Any other refusal is returned as the node's error.
func (c *Client) Send(ctx context.Context, tx *wire.MsgTx) (chainhash.Hash, error) {
	h, err := call(ctx, func() (*chainhash.Hash, error) { return c.rpc.SendRawTransaction(tx, false) })
	if err != nil {
		if alreadyHave(err) {
			return tx.TxHash(), nil
		}
		return chainhash.Hash{}, fmt.Errorf("sending %s: %w", tx.TxHash(), err)
	}
	return *h, nil
}

// alreadyHave says whether err is btcd's refusal of a transaction it holds
// already: in its pool ("already have transaction") or mined ("transaction
// already exists"). btcd gives no distinct code for it.
func alreadyHave(err error) bool {
	var rpcErr *btcjson.RPCError
	if !errors.As(err, &rpcErr) {
		return false
	}
	return strings.Contains(rpcErr.Message, "already have transaction") || strings.Contains(rpcErr.Message, "transaction already exists")
}

// TxOut is the unspent output op as the node sees it, or nil when it is
// spent or unknown. With mempool, an output spent by a transaction in the
// node's pool counts as spent, and one created there counts as unspent.
func (c *Client) TxOut(ctx context.Context, op wire.OutPoint, mempool bool) (*btcjson.GetTxOutResult, error) {
	r, err := call(ctx, func() (*btcjson.GetTxOutResult, error) { return c.rpc.GetTxOut(&op.Hash, op.Index, mempool) })
	if err != nil {
		return nil, fmt.Errorf("reading output %s: %w", op, err)
	}
	return r, nil
}

// AddressTxs lists the transactions paying or spending addr, mined and in
// the pool (the node's address index, btcd --addrindex): count of them from
// skip, newest first when reverse. An address with no transactions gives
// none and no error.
func (c *Client) AddressTxs(ctx context.Context, addr btcutil.Address, skip, count int, reverse bool) ([]*btcjson.SearchRawTransactionsResult, error) {
	r, err := call(ctx, func() ([]*btcjson.SearchRawTransactionsResult, error) {
		return c.rpc.SearchRawTransactionsVerbose(addr, skip, count, false, reverse, nil)
	})
	var rpcErr *btcjson.RPCError
	if errors.As(err, &rpcErr) && rpcErr.Code == btcjson.ErrRPCNoTxInfo {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("searching the transactions of %s: %w", addr, err)
	}
	return r, nil
}

// IsNotFound says whether err is the node's answer that it does not know
// the block or transaction asked for.
func IsNotFound(err error) bool {
	var rpcErr *btcjson.RPCError
	return errors.As(err, &rpcErr) && (rpcErr.Code == btcjson.ErrRPCBlockNotFound || rpcErr.Code == btcjson.ErrRPCNoTxInfo)
}

// Tx is the node's view of transaction txid (btcd --txindex for a mined one
// outside the pool): its block and confirmations (0 in the pool). A
// transaction the node does not know is IsNotFound.
func (c *Client) Tx(ctx context.Context, txid chainhash.Hash) (*btcjson.TxRawResult, error) {
	r, err := call(ctx, func() (*btcjson.TxRawResult, error) { return c.rpc.GetRawTransactionVerbose(&txid) })
	if err != nil {
		return nil, fmt.Errorf("reading transaction %s: %w", txid, err)
	}
	return r, nil
}

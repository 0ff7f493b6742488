package evm

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"payflow/internal/callcount"
)

// nodeConns is how many idle connections to one node an HTTP client keeps:
// as many as the calls a busy worker has in flight, so that under load no
// call opens (and the node accepts) a fresh TCP connection. Go's default
// keeps two.
const nodeConns = 128

// DialNode connects to a node's JSON-RPC endpoint. Over HTTP it keeps
// nodeConns connections open and does not ask for gzip: a payment worker's
// node sits on its host or LAN, where the node's CPU compressing every
// answer (a tenth of geth's time under load, measured by make bench) costs
// more than the bytes it saves. Its calls are counted by method
// (callcount.NodeCalls, on the process's /metrics). Other schemes (ws, ipc) dial as
// ethclient.DialContext does.
func DialNode(ctx context.Context, url string) (*ethclient.Client, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return ethclient.DialContext(ctx, url)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        nodeConns,
		MaxIdleConnsPerHost: nodeConns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
	}
	c, err := rpc.DialOptions(ctx, url, rpc.WithHTTPClient(&http.Client{Transport: callcount.Transport(tr)}))
	if err != nil {
		return nil, err
	}
	return ethclient.NewClient(c), nil
}

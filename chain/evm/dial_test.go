package evm_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"payflow/chain/evm"
)

// TestDialNodeAsksNoGzipAndKeepsConnections: the node is not asked to
// compress its answers, and calls made one after another reuse one
// connection.
func TestDialNodeAsksNoGzipAndKeepsConnections(t *testing.T) {
	var mu sync.Mutex
	encodings := map[string]bool{}
	conns := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		encodings[r.Header.Get("Accept-Encoding")] = true
		conns[r.RemoteAddr] = true
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":"0x539"}`))
	}))
	defer srv.Close()
	eth, err := evm.DialNode(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer eth.Close()
	for range 20 {
		id, err := eth.ChainID(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if id.Int64() != 1337 {
			t.Fatalf("chain id %s", id)
		}
	}
	for e := range encodings {
		if strings.Contains(e, "gzip") {
			t.Fatalf("asked the node for Accept-Encoding %q", e)
		}
	}
	if len(conns) != 1 {
		t.Fatalf("20 calls in a row used %d connections, want 1", len(conns))
	}
}

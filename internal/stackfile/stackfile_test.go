package stackfile

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestWorkerMetricsURLs: every worker's /metrics, the first worker first and
// worker-10 after worker-2; the starter's is none of them.
func TestWorkerMetricsURLs(t *testing.T) {
	var s Stack
	if err := json.Unmarshal([]byte(`{"metrics_urls": {
		"starter": "http://127.0.0.1:8381/metrics",
		"worker-10": "http://127.0.0.1:8390/metrics",
		"worker": "http://127.0.0.1:8380/metrics",
		"worker-2": "http://127.0.0.1:8382/metrics"}}`), &s); err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:8380/metrics", "http://127.0.0.1:8382/metrics", "http://127.0.0.1:8390/metrics"}
	if got := s.WorkerMetricsURLs(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := (Stack{}).WorkerMetricsURLs(); len(got) != 0 {
		t.Errorf("a stack.json without metrics_urls: got %v", got)
	}
}

// TestChainFamilies: chains.BTC reads as a Bitcoin chain, the others as EVM
// chains; EVMChains names these alone, sorted.
func TestChainFamilies(t *testing.T) {
	var s Stack
	if err := json.Unmarshal([]byte(`{"chains": {
		"ETH": {"eth_rpc_url": "http://127.0.0.1:8545", "chain_id": 1337, "native": {"symbol": "ETH", "decimals": 18}},
		"BTC": {"btc_rpc_url": "http://127.0.0.1:18334", "rpc_user": "u", "rpc_password": "p", "network": "simnet",
			"native": {"symbol": "BTC", "decimals": 8}},
		"BSC": {"eth_rpc_url": "http://127.0.0.1:8547", "chain_id": 1397, "native": {"symbol": "BNB", "decimals": 18}}}}`), &s); err != nil {
		t.Fatal(err)
	}
	if !s.Chains["BTC"].IsBTC() || s.Chains["BTC"].Network != "simnet" || s.Chains["ETH"].IsBTC() {
		t.Fatalf("families: %+v", s.Chains)
	}
	if got, want := s.EVMChains(), []string{"BSC", "ETH"}; !reflect.DeepEqual(got, want) {
		t.Errorf("EVMChains: got %v, want %v", got, want)
	}
}

// Package stackfile is the shape of .dev/stack.json: how tools and
// tests outside the repo reach the local stack. `payflowctl devstack` writes
// it; internal/stacktest (the tests and the bench) reads it.
package stackfile

import (
	"sort"
	"strconv"
	"strings"

	"payflow/config"
)

// Stack is .dev/stack.json. Its chain fields describe the first chain;
// Chains describes every chain.
type Stack struct {
	AMQPURL           string `json:"amqp_url"`
	TemporalAddress   string `json:"temporal_address"`
	TemporalNamespace string `json:"temporal_namespace"`
	TemporalUIURL     string `json:"temporal_ui_url"`
	MySQLDSN          string `json:"mysql_dsn"`
	SignKey           string `json:"sign_key"`
	ChainFields
	// Chains describes every dev chain by the name requests carry ("ETH",
	// "BSC"). Empty in a stack.json written before the dev stack ran
	// several chains.
	Chains map[string]Chain `json:"chains"`
	// PrometheusURL is the dev Prometheus server, which scrapes the worker,
	// the starter and Temporal and loads deploy/prometheus/alerts.yml (empty
	// in a stack.json written before it was added).
	PrometheusURL string `json:"prometheus_url,omitempty"`
	// MetricsURLs are the /metrics endpoints, by process: "worker" (on
	// http_addr), "starter" (on metrics_addr) and, in a stack of several
	// workers, "worker-2" … "worker-N"; empty in a stack.json written before
	// they were added.
	MetricsURLs map[string]string `json:"metrics_urls,omitempty"`
	// KMSEndpoint is the dev KMS: local-kms, which speaks the AWS KMS API
	// (empty in a stack.json written before it was added).
	KMSEndpoint string `json:"kms_endpoint,omitempty"`
	// SignerSocket is payflow-signer's Unix socket: the only process that
	// reaches key material (empty in a stack.json written before it was
	// added).
	SignerSocket string `json:"signer_socket,omitempty"`
	// DenyList is the deny list file the worker and payflow-signer screen
	// against (config.json's risk.deny_list); empty in a stack.json written
	// before it was added.
	DenyList string `json:"deny_list,omitempty"`
	// APIURL is the first worker's HTTP API, and APIToken the bearer token
	// its /v1 routes ask for (empty in a stack.json written before the API
	// asked).
	APIURL   string `json:"api_url,omitempty"`
	APIToken string `json:"api_token,omitempty"`
}

// Chain is one entry of stack.json's chains: an EVM chain (eth_rpc_url,
// chain_id, tokens) or a Bitcoin chain (its *BTCFields set: btc_rpc_url,
// network; faucet_private_key is then a WIF).
type Chain struct {
	ChainFields
	*BTCFields
	Native Native `json:"native"`
}

// IsBTC says whether the chain is of the Bitcoin family (else EVM).
func (c Chain) IsBTC() bool { return c.BTCFields != nil }

// ChainFields are a chain's node, token and wallet fields: those of each
// entry of chains, and at the top level those of the first chain. The
// node and token fields are an EVM chain's.
type ChainFields struct {
	ETHRPCURL         string                  `json:"eth_rpc_url,omitempty"`
	ETHWSURL          string                  `json:"eth_ws_url,omitempty"`
	ChainID           int64                   `json:"chain_id,omitempty"`
	Confirmations     int                     `json:"confirmations"`
	Tokens            map[string]config.Token `json:"tokens,omitempty"`
	FaucetPrivateKey  string                  `json:"faucet_private_key"`
	CollectionAddress string                  `json:"collection_address"`
	ManagedWallets    []string                `json:"managed_wallets"`
	// ColdAddress is the chain's cold address (watch-only: no key is
	// held for it; empty in a stack.json written before it was added).
	ColdAddress string `json:"cold_address,omitempty"`
}

// BTCFields are a Bitcoin chain's node fields: btcd's JSON-RPC URL and
// credentials, its network ("regtest" in the dev stack) and the faucet's
// address (its key is the chain's faucet_private_key, a WIF; btcd mines
// every block to it).
type BTCFields struct {
	BTCRPCURL     string `json:"btc_rpc_url"`
	RPCUser       string `json:"rpc_user"`
	RPCPassword   string `json:"rpc_password"`
	Network       string `json:"network"`
	FaucetAddress string `json:"faucet_address"`
	// MinerPauseFile: while this file exists the stack's miner mines no
	// block (a test holds a payment unconfirmed with it).
	MinerPauseFile string `json:"miner_pause_file,omitempty"`
}

// EVMChains is the names of Chains' EVM chains, sorted.
func (s Stack) EVMChains() []string {
	var out []string
	for name, c := range s.Chains {
		if !c.IsBTC() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Native is a chain's native coin.
type Native struct {
	Symbol   string `json:"symbol"`
	Decimals int32  `json:"decimals"`
}

// WorkerMetricsURLs is the /metrics endpoint of every worker process in
// MetricsURLs: "worker" first, then "worker-2" … "worker-N" in order. A
// counter of the workers' events is the sum over these.
func (s Stack) WorkerMetricsURLs() []string {
	var names []string
	for name := range s.MetricsURLs {
		if name == "worker" || strings.HasPrefix(name, "worker-") {
			names = append(names, name)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := workerOrder(names[i]), workerOrder(names[j])
		return a < b || a == b && names[i] < names[j]
	})
	out := make([]string, len(names))
	for i, name := range names {
		out[i] = s.MetricsURLs[name]
	}
	return out
}

// workerOrder is a worker process's place: 1 for "worker", N for
// "worker-N", after them all for any other name.
func workerOrder(name string) int {
	if name == "worker" {
		return 1
	}
	n, err := strconv.Atoi(strings.TrimPrefix(name, "worker-"))
	if err != nil || n < 2 {
		return int(^uint(0) >> 1)
	}
	return n
}

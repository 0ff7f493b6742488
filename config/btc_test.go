package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bip84First is BIP84's first receive address of its test mnemonic
// (mainnet).
const bip84First = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"

// withBTC is the seed shape with btc_chains.BTC set to entry.
func withBTC(t *testing.T, entry string) string {
	t.Helper()
	return strings.Replace(seedShape, `"sign_key"`, `"btc_chains": {"btc": `+entry+`}, "sign_key"`, 1)
}

func credentialsFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rpc-credentials")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBTCChainLoaded(t *testing.T) {
	creds := credentialsFile(t, "payflow:s3cret\n")
	entry := `{"rpc_url": "http://127.0.0.1:18334", "rpc_credentials_file": ` + quote(creds) + `, "network": "mainnet",
		"confirmations": 2, "collection_address": "` + strings.ToUpper(bip84First) + `",
		"native": {"symbol": "btc", "decimals": 8, "dust": "0.00001", "approval_threshold": "2", "sweep_threshold": "0.5"}}`
	cfg, err := Load(write(t, withBTC(t, entry)))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := cfg.BTCChain("btc")
	if !ok || b.RPCUser != "payflow" || b.RPCPassword.Reveal() != "s3cret" || b.Network != "mainnet" {
		t.Fatalf("btc_chains.BTC = %+v", b)
	}
	if cfg.Family("BTC") != FamilyBTC || cfg.Family("ETH") != FamilyEVM || cfg.Family("TRX") != "" {
		t.Errorf("families: %q %q %q", cfg.Family("BTC"), cfg.Family("ETH"), cfg.Family("TRX"))
	}
	if got := cfg.TaskQueue("BTC"); got != "payflow.BTC" {
		t.Errorf("task queue %q", got)
	}
	if names := cfg.ChainNames(); len(names) != 1 || names[0] != "ETH" {
		t.Errorf("the EVM chains are %v: a Bitcoin chain is not one", names)
	}
	assets, _ := cfg.Assets("BTC")
	a, ok := assets.Asset("BTC")
	if !ok || a.Decimals != 8 || !a.Native || a.ApprovalThreshold != "2" || a.DustLimit().String() != "0.00001" {
		t.Errorf("BTC asset %+v", a)
	}
	eth, _ := cfg.Assets("ETH")
	if a, _ := eth.Asset("ETH"); a.Decimals != NativeDecimals {
		t.Errorf("ETH decimals %d", a.Decimals)
	}
	// The password never leaves in JSON (devstack writes the config back).
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") {
		t.Errorf("the node's password is in the marshalled config")
	}

	// The environment wins over the file.
	t.Setenv("PAYFLOW_BTC_RPC_USER", "other")
	t.Setenv("PAYFLOW_BTC_RPC_PASSWORD", "from-env")
	cfg, err = Load(write(t, withBTC(t, entry)))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := cfg.BTCChain("BTC"); b.RPCUser != "other" || b.RPCPassword.Reveal() != "from-env" {
		t.Errorf("env not applied: %s", b.RPCUser)
	}
}

func TestBTCChainValidationNamesTheChain(t *testing.T) {
	entry := `{"rpc_url": "127.0.0.1:18334", "rpc_password": "in-the-file", "network": "mainnet",
		"confirmations": 0, "collection_address": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
		"native": {"symbol": "BTC", "decimals": 18, "dust": "0.000000001", "sweep_threshold": "-1", "hot_ceiling": "10"}}`
	_, err := Load(write(t, withBTC(t, entry)))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"btc_chains.BTC.rpc_url", "btc_chains.BTC.rpc_password must not be in the config file",
		"btc_chains.BTC.rpc_credentials_file or PAYFLOW_BTC_RPC_USER and PAYFLOW_BTC_RPC_PASSWORD are required",
		"btc_chains.BTC.confirmations", "btc_chains.BTC.native.decimals 18",
		"btc_chains.BTC.native.dust", "btc_chains.BTC.native.approval_threshold is required",
		"btc_chains.BTC.native.sweep_threshold", "btc_chains.BTC.native hot_ceiling", "btc_chains.BTC.collection_address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "in-the-file") {
		t.Errorf("the error quotes the password")
	}

	// A name taken by an EVM chain, a credentials file that is not
	// USER:PASSWORD (never quoted), and one that does not exist.
	ok := `"network": "regtest", "confirmations": 1, "native": {"symbol": "BTC", "decimals": 8, "approval_threshold": "1", "sweep_threshold": "1"}}`
	dup := strings.Replace(seedShape, `"sign_key"`, `"btc_chains": {"eth": {"rpc_url": "http://127.0.0.1:1", `+ok+`}, "sign_key"`, 1)
	t.Setenv("PAYFLOW_ETH_RPC_USER", "u")
	t.Setenv("PAYFLOW_ETH_RPC_PASSWORD", "p")
	if _, err := Load(write(t, dup)); err == nil || !strings.Contains(err.Error(), "btc_chains.ETH.chain is chains.ETH too") {
		t.Errorf("a name of two chains: %v", err)
	}
	bad := credentialsFile(t, "just-a-password")
	_, err = Load(write(t, withBTC(t, `{"rpc_url": "http://127.0.0.1:1", "rpc_credentials_file": `+quote(bad)+`, `+ok)))
	if err == nil || !strings.Contains(err.Error(), "btc_chains.BTC.rpc_credentials_file") || strings.Contains(err.Error(), "just-a-password") {
		t.Errorf("a malformed credentials file: %v", err)
	}
	_, err = Load(write(t, withBTC(t, `{"rpc_url": "http://127.0.0.1:1", "rpc_credentials_file": "/nonexistent/creds", `+ok)))
	if err == nil || !strings.Contains(err.Error(), "btc_chains.BTC.rpc_credentials_file") {
		t.Errorf("a missing credentials file: %v", err)
	}
	_, err = Load(write(t, withBTC(t, `{"rpc_url": "http://127.0.0.1:1", "rpc_credentials_file": `+quote(credentialsFile(t, "u:p"))+`, `+
		strings.Replace(ok, "regtest", "bitcoin-cash", 1))))
	if err == nil || !strings.Contains(err.Error(), `btc_chains.BTC.network unknown bitcoin network: "bitcoin-cash"`) {
		t.Errorf("an unknown network: %v", err)
	}
	// An EVM chain's native coin has 18 decimals.
	evm := strings.Replace(seedShape, `"native": {"approval_threshold"`, `"native": {"decimals": 8, "approval_threshold"`, 1)
	if _, err := Load(write(t, evm)); err == nil || !strings.Contains(err.Error(), "eth_config.native.decimals 8") {
		t.Errorf("an EVM native coin with 8 decimals: %v", err)
	}
}

func TestCanonicalAddressByFamily(t *testing.T) {
	cfg := Config{Chains: map[string]ChainConfig{"ETH": {}}, BTCChains: map[string]BTCChain{"BTC": {Network: "mainnet"}}}
	for _, c := range []struct {
		chain, in, want string
		ok              bool
	}{
		{"BTC", strings.ToUpper(bip84First), bip84First, true},
		{"btc", " " + bip84First + " ", bip84First, true},
		{"BTC", "0xdAC17F958D2ee523a2206206994597C13D831ec7", "", false},
		{"BTC", "tb1qcr8te4kr609gcawutmrza0j4xv80jy8zn4ctjv", "", false}, // testnet
		{"BTC", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "", false},         // not native segwit
		{"ETH", "0xdAC17F958D2ee523a2206206994597C13D831ec7", "0xdac17f958d2ee523a2206206994597c13d831ec7", true},
		{"ETH", bip84First, "", false},
	} {
		got, want, ok := cfg.CanonicalAddress(c.chain, c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("%s %q: %q %v, want %q %v", c.chain, c.in, got, ok, c.want, c.ok)
		}
		if !ok && want == "" {
			t.Errorf("%s %q: refused without saying what an address is", c.chain, c.in)
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBTCFeeRates: fee_rate and max_fee_rate default to 2 and 50 satoshis
// per virtual byte; a rate below 1, or a maximum below the rate, is
// refused, naming the field.
func TestBTCFeeRates(t *testing.T) {
	creds := quote(credentialsFile(t, "u:p"))
	entry := func(rates string) string {
		return withBTC(t, `{"rpc_url": "http://127.0.0.1:1", "rpc_credentials_file": `+creds+`, "network": "simnet", "confirmations": 1, `+
			rates+`"native": {"symbol": "BTC", "decimals": 8, "approval_threshold": "1", "sweep_threshold": "1"}}`)
	}
	cfg, err := Load(write(t, entry("")))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := cfg.BTCChain("BTC"); b.FeeRate != DefaultFeeRate || b.MaxFeeRate != DefaultMaxFeeRate {
		t.Errorf("defaults: fee_rate %d, max_fee_rate %d", b.FeeRate, b.MaxFeeRate)
	}
	cfg, err = Load(write(t, entry(`"fee_rate": 5, "max_fee_rate": 5, `)))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := cfg.BTCChain("BTC"); b.FeeRate != 5 || b.MaxFeeRate != 5 {
		t.Errorf("set: fee_rate %d, max_fee_rate %d", b.FeeRate, b.MaxFeeRate)
	}
	for rates, want := range map[string]string{
		`"fee_rate": -1, `:                    "btc_chains.BTC.fee_rate must be >= 1",
		`"fee_rate": 60, `:                    "btc_chains.BTC.max_fee_rate 50 must be >= fee_rate 60",
		`"fee_rate": 3, "max_fee_rate": 2, `:  "btc_chains.BTC.max_fee_rate 2 must be >= fee_rate 3",
		`"fee_rate": 1, "max_fee_rate": -5, `: "btc_chains.BTC.max_fee_rate -5 must be >= fee_rate 1",
	} {
		if _, err := Load(write(t, entry(rates))); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", rates, err, want)
		}
	}
}

// TestLoadSignerReadsBTCChainsWithoutCredentials: payflow-signer reads a
// Bitcoin chain's network, coin and fee rates, not its node's credentials
// (it never calls the node), and still validates what it reads.
func TestLoadSignerReadsBTCChainsWithoutCredentials(t *testing.T) {
	t.Setenv(EnvMySQLDSN, "u:p@tcp(127.0.0.1:3306)/payflow")
	cfg, err := LoadSigner(write(t, `{"btc_chains": {"btc": {"rpc_url": "http://127.0.0.1:1", "network": "simnet", "confirmations": 1,
	  "max_fee_rate": 20, "native": {"symbol": "btc", "decimals": 8, "approval_threshold": "1", "sweep_threshold": "1"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := cfg.BTCChain("BTC")
	if !ok || b.Network != "simnet" || b.Native.Symbol != "BTC" || b.FeeRate != DefaultFeeRate || b.MaxFeeRate != 20 || b.RPCUser != "" {
		t.Fatalf("btc_chains.BTC = %+v", b)
	}
	_, err = LoadSigner(write(t, `{"btc_chains": {"BTC": {"network": "moonnet", "confirmations": 1, "max_fee_rate": 1, "fee_rate": 2,
	  "native": {"symbol": "BTC", "decimals": 8, "approval_threshold": "1", "sweep_threshold": "1"}}}}`))
	for _, want := range []string{"btc_chains.BTC.network", "btc_chains.BTC.max_fee_rate 1 must be >= fee_rate 2"} {
		if !errors.Is(err, ErrInvalid) || !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

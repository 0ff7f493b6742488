package config

import (
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"payflow/chain/btc"
	"payflow/protocol"
)

// Chain families: how a chain's addresses, transactions and node look.
const (
	FamilyEVM = "evm"
	FamilyBTC = "btc"
)

// BTCChain is one chain of the Bitcoin family, served by a btcd node
// (btc_chains.<NAME>): deposits to topup addresses are found by reading
// each block, one deposit per output. Its node's credentials never sit in
// the file: they come from PAYFLOW_<NAME>_RPC_USER and
// PAYFLOW_<NAME>_RPC_PASSWORD, or from rpc_credentials_file.
type BTCChain struct {
	// RPCURL is btcd's JSON-RPC endpoint (http://host:port; HTTP POST).
	RPCURL string `json:"rpc_url"`
	// RPCCredentialsFile holds the node's credentials as USER:PASSWORD
	// (btcd's rpcuser and rpcpass), read at start; the environment wins.
	RPCCredentialsFile string `json:"rpc_credentials_file,omitempty"`
	// Network is the node's network: mainnet, testnet, signet, regtest or
	// simnet. Addresses are checked against it, and the node must serve it.
	Network string `json:"network"`
	// Confirmations is how deep a deposit's block must be (1: its own
	// block) before it is credited.
	Confirmations int `json:"confirmations"`
	// Native is the chain's coin: symbol BTC, decimals 8, and its own dust,
	// approval_threshold and sweep_threshold, in BTC.
	Native NativeCoin `json:"native"`
	// CollectionAddress is the chain's collection wallet ("" = none).
	CollectionAddress string `json:"collection_address,omitempty"`
	// FeeRate is the fee rate, in satoshis per virtual byte, a payment pays
	// when the node has no fee estimate (0 or absent: DefaultFeeRate).
	FeeRate int64 `json:"fee_rate,omitempty"`
	// MaxFeeRate is the highest fee rate, in satoshis per virtual byte,
	// payflow-signer signs a payment or its replacement at (0 or absent:
	// DefaultMaxFeeRate); at least FeeRate.
	MaxFeeRate int64 `json:"max_fee_rate,omitempty"`
	// ConfirmTimeout: a payment on this chain not confirmed within it is
	// replaced at a higher fee rate (BIP125); 0 or absent:
	// payment.confirm_timeout.
	ConfirmTimeout Duration `json:"confirm_timeout,omitzero"`

	// RPCUser and RPCPassword are the node's credentials, from the
	// environment or RPCCredentialsFile (never from the config file).
	RPCUser     string `json:"-"`
	RPCPassword Secret `json:"-"`
	// inFile: the file named rpc_user or rpc_password; refused.
	inFile []string
}

// Fee rates of a Bitcoin chain whose entry names none, in satoshis per
// virtual byte.
const (
	DefaultFeeRate    = 2
	DefaultMaxFeeRate = 50
)

// UnmarshalJSON reads a btc_chains entry, noting credentials written in the
// file (Validate refuses them) without keeping them.
func (b *BTCChain) UnmarshalJSON(data []byte) error {
	type plain BTCChain
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	var secrets struct {
		User     *json.RawMessage `json:"rpc_user"`
		Password *json.RawMessage `json:"rpc_password"`
	}
	if err := json.Unmarshal(data, &secrets); err != nil {
		return err
	}
	*b = BTCChain(p)
	if secrets.User != nil {
		b.inFile = append(b.inFile, "rpc_user")
	}
	if secrets.Password != nil {
		b.inFile = append(b.inFile, "rpc_password")
	}
	return nil
}

// Assets is the chain's assets as the family-neutral code reads a chain's
// (its native coin alone, with its 8 decimals, and its confirmations).
func (b BTCChain) Assets() ChainConfig {
	return ChainConfig{ConfirmHeight: b.Confirmations, Native: b.Native, CollectionAddress: b.CollectionAddress,
		feeCap: big.NewInt(b.MaxFeeRate)}
}

// ConfirmTimeout is how long a payment on chain name waits for its
// confirmations before it is replaced: the Bitcoin chain's own
// confirm_timeout when it states one, else payment.confirm_timeout.
func (c Config) ConfirmTimeout(name string) time.Duration {
	if b, ok := c.BTCChain(name); ok && b.ConfirmTimeout.Duration > 0 {
		return b.ConfirmTimeout.Duration
	}
	return c.Payment.ConfirmTimeout.Duration
}

// BTCEnv names the environment variables of chain name's node credentials.
func BTCEnv(name string) (user, password string) {
	n := strings.ReplaceAll(strings.ToUpper(name), "-", "_")
	return "PAYFLOW_" + n + "_RPC_USER", "PAYFLOW_" + n + "_RPC_PASSWORD"
}

// resolveBTC upper-cases the Bitcoin chains' names and symbols, fills
// their default fee rates and reads their node credentials: the
// environment first, then the credentials file. What is missing is
// Validate's to report.
func (c *Config) resolveBTC(lookup func(string) (string, bool)) error {
	return c.resolveBTCChains(lookup, true)
}

// resolveBTCChains is resolveBTC; without credentials it leaves the node's
// credentials unread (payflow-signer, which never calls the node).
func (c *Config) resolveBTCChains(lookup func(string) (string, bool), credentials bool) error {
	if len(c.BTCChains) == 0 {
		return nil
	}
	out := make(map[string]BTCChain, len(c.BTCChains))
	for name, b := range c.BTCChains {
		name = strings.ToUpper(name)
		b.Native.Symbol = strings.ToUpper(b.Native.Symbol)
		if b.FeeRate == 0 {
			b.FeeRate = DefaultFeeRate
		}
		if b.MaxFeeRate == 0 {
			b.MaxFeeRate = DefaultMaxFeeRate
		}
		if !credentials {
			out[name] = b
			continue
		}
		envUser, envPass := BTCEnv(name)
		if b.RPCCredentialsFile != "" {
			raw, err := os.ReadFile(b.RPCCredentialsFile)
			if err != nil {
				return fmt.Errorf("%w: btc_chains.%s.rpc_credentials_file: %v", ErrInvalid, name, err)
			}
			user, pass, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
			if !ok || user == "" || pass == "" {
				// Never quote the file: it holds the password.
				return fmt.Errorf("%w: btc_chains.%s.rpc_credentials_file %s must hold USER:PASSWORD", ErrInvalid, name,
					b.RPCCredentialsFile)
			}
			b.RPCUser, b.RPCPassword = user, Secret(pass)
		}
		if v, ok := lookup(envUser); ok && v != "" {
			b.RPCUser = v
		}
		if v, ok := lookup(envPass); ok && v != "" {
			b.RPCPassword = Secret(v)
		}
		out[name] = b
	}
	c.BTCChains = out
	return nil
}

// BTCChainNames lists the configured Bitcoin chains, sorted.
func (c Config) BTCChainNames() []string { return sortedKeys(c.BTCChains) }

// BTCChain returns the Bitcoin chain named name (any case).
func (c Config) BTCChain(name string) (BTCChain, bool) {
	b, ok := c.BTCChains[strings.ToUpper(strings.TrimSpace(name))]
	return b, ok
}

// Family says which family chain name is of (FamilyEVM, FamilyBTC), or ""
// when it is not configured.
func (c Config) Family(name string) string {
	if _, ok := c.BTCChain(name); ok {
		return FamilyBTC
	}
	if _, ok := c.Chain(name); ok {
		return FamilyEVM
	}
	return ""
}

// Assets returns the assets of any served chain, of either family: an EVM
// chain's config, or a Bitcoin chain's (BTCChain.Assets).
func (c Config) Assets(name string) (ChainConfig, bool) {
	if b, ok := c.BTCChain(name); ok {
		return b.Assets(), true
	}
	return c.Chain(name)
}

// CanonicalAddress is the address check of a request's chain: s in the
// chain's canonical form (lowercase 0x hex on an EVM chain, lowercase
// bech32 on a Bitcoin chain), or ok false with what an address of the chain
// is, in the business's words. It implements protocol.ChainAddresses.
func (c Config) CanonicalAddress(chainName, s string) (canonical, want string, ok bool) {
	s = strings.TrimSpace(s)
	if b, isBTC := c.BTCChain(chainName); isBTC {
		want = fmt.Sprintf("a native segwit (bech32, P2WPKH) address of %s's network %s", strings.ToUpper(strings.TrimSpace(chainName)),
			b.Network)
		params, err := btc.Params(b.Network)
		if err != nil {
			return "", want, false
		}
		a, _, err := btc.ParseAddress(s, params)
		if err != nil {
			return "", want, false
		}
		return a.EncodeAddress(), want, true
	}
	want = "a 0x-prefixed 20-byte hex address"
	if !protocol.IsAddress(s) {
		return "", want, false
	}
	return strings.ToLower(s), want, true
}

// validateBTC checks the Bitcoin chains, naming each field as
// btc_chains.<NAME>.<field>.
func (c Config) validateBTC() []error { return c.validateBTCChains(true) }

// validateBTCChains is validateBTC; without node it leaves out the node's
// URL and credentials (payflow-signer's check: it never calls the node).
func (c Config) validateBTCChains(node bool) []error {
	var errs []error
	for _, name := range c.BTCChainNames() {
		b := c.BTCChains[name]
		field := func(f string) string { return "btc_chains." + name + "." + f }
		bad := func(f, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%w: %s "+format, append([]any{ErrInvalid, field(f)}, args...)...))
		}
		if !chainNameRE.MatchString(name) {
			bad("chain", "%q: a chain name is 1 to 16 letters, digits, '_' or '-'", name)
		}
		if _, dup := c.Chains[name]; dup {
			bad("chain", "is chains.%s too: a chain name names one chain", name)
		}
		envUser, envPass := BTCEnv(name)
		for _, f := range b.inFile {
			bad(f, "must not be in the config file (it would be a secret in it): set %s and %s, or rpc_credentials_file",
				envUser, envPass)
		}
		if node {
			if !strings.HasPrefix(b.RPCURL, "http://") && !strings.HasPrefix(b.RPCURL, "https://") {
				bad("rpc_url", "must be btcd's http(s) JSON-RPC URL, got %q", b.RPCURL)
			}
			if b.RPCUser == "" || b.RPCPassword == "" {
				bad("rpc_credentials_file", "or %s and %s are required: the node's credentials", envUser, envPass)
			}
		}
		params, err := btc.Params(b.Network)
		if err != nil {
			bad("network", "%v", err)
		}
		if b.Confirmations < 1 {
			bad("confirmations", "must be >= 1, got %d", b.Confirmations)
		}
		if b.FeeRate < 1 {
			bad("fee_rate", "must be >= 1 satoshi per virtual byte (the relay minimum), got %d", b.FeeRate)
		}
		if b.MaxFeeRate < b.FeeRate {
			bad("max_fee_rate", "%d must be >= fee_rate %d (satoshis per virtual byte)", b.MaxFeeRate, b.FeeRate)
		}
		if b.Native.Symbol != btc.Symbol {
			bad("native.symbol", "%q: a Bitcoin chain's coin is %s", b.Native.Symbol, btc.Symbol)
		}
		if b.Native.Decimals != btc.Decimals {
			bad("native.decimals", "%d: %s has %d decimals (satoshis)", b.Native.Decimals, btc.Symbol, btc.Decimals)
		}
		if b.Native.Dust != "" {
			if d, err := decimal.NewFromString(b.Native.Dust); err != nil || d.Sign() < 0 || !d.Equal(d.Truncate(btc.Decimals)) {
				bad("native.dust", "%q must be a decimal >= 0 with at most %d decimals", b.Native.Dust, btc.Decimals)
			}
		}
		errs = append(errs, assetAmounts(field, "native", b.Native.ApprovalThreshold, b.Native.SweepThreshold)...)
		errs = append(errs, velocityLimits(field, "native", b.Native.VelocityWallet24h, b.Native.VelocityRecipient24h)...)
		if b.Native.Treasury != (Treasury{}) {
			bad("native", "hot_ceiling and hot_floor are not served on a Bitcoin chain yet")
		}
		if b.CollectionAddress != "" && params != nil {
			if _, _, err := btc.ParseAddress(b.CollectionAddress, params); err != nil {
				bad("collection_address", "%q is not a native segwit address of %s", b.CollectionAddress, b.Network)
			}
		}
	}
	return errs
}

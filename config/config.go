// Package config loads payflow's configuration: a JSON file in the seed
// system's config.json shape (rmq_config, eth_config with dbConfig) plus the
// sections payflow adds (tokens, temporal, keys), then environment overrides,
// then validation. It is loaded once in main and passed down as structs.
package config

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"payflow/protocol"
)

// Secret is a string that never prints: fmt, slog and JSON all see "[redacted]".
// Use Reveal at the one place the value is needed.
type Secret string

// String implements fmt.Stringer and hides the value.
func (s Secret) String() string { return "[redacted]" }

// GoString hides the value from %#v.
func (s Secret) GoString() string { return "[redacted]" }

// MarshalJSON hides the value from JSON encoders (config dumps, logs).
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// UnmarshalJSON reads a plain JSON string.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Secret(v)
	return nil
}

// Reveal returns the secret value. Call it only where the value is used.
func (s Secret) Reveal() string { return string(s) }

// QueueConfig names one queue and how it is bound, in the seed's shape.
type QueueConfig struct {
	Queue    string   `json:"queue"`
	Exchange string   `json:"exchange"`
	Routing  []string `json:"routing"`
}

// RoutingKey is the first routing key, the one payflow publishes with.
func (q QueueConfig) RoutingKey() string {
	if len(q.Routing) == 0 {
		return q.Queue
	}
	return q.Routing[0]
}

// RMQConfig is the seed's rmq_config plus the dead-letter queue payflow adds.
type RMQConfig struct {
	SubAddr      Secret      `json:"sub_addr"` // AMQP URL; may carry a password
	Topup        QueueConfig `json:"topup"`
	Withdraw     QueueConfig `json:"withdraw"`
	Pay          QueueConfig `json:"pay"`
	TopupResp    QueueConfig `json:"topup_resp"`
	WithdrawResp QueueConfig `json:"withdraw_resp"`
	PayResp      QueueConfig `json:"pay_resp"`
	DeadLetter   QueueConfig `json:"dead_letter"`
}

// DBConfig is the seed's eth_config.dbConfig. DSN, when set, wins over the fields.
type DBConfig struct {
	User         string `json:"user"`
	Password     Secret `json:"password"`
	Host         string `json:"host"`
	Port         int    `json:"port"`
	Database     string `json:"database"`
	MaxOpenConns int    `json:"maxOpenConns"`
	MaxIdleConns int    `json:"maxIdleCoons"` // sic: the seed's spelling
	ConnMaxLife  int    `json:"connMaxLife"`  // seconds
	DSN          Secret `json:"dsn,omitempty"`
}

// MySQLDSN returns the go-sql-driver DSN, with parseTime and UTC location.
func (d DBConfig) MySQLDSN() string {
	if d.DSN != "" {
		return d.DSN.Reveal()
	}
	return fmt.Sprintf("%s:%s@tcp(%s:%d)/%s?parseTime=true&loc=UTC&multiStatements=true",
		d.User, d.Password.Reveal(), d.Host, d.Port, d.Database)
}

// ETHConfig is the seed's eth_config plus chain identity.
type ETHConfig struct {
	Chain         string   `json:"chain"` // protocol name of the chain, e.g. "ETH"
	ChainID       int64    `json:"chainId"`
	RPCURL        string   `json:"rpcUrl"`
	WSURL         string   `json:"wsUrl"`
	ConfirmHeight int      `json:"confirmHeight"`
	DB            DBConfig `json:"dbConfig"`
	// MaxFeeGwei caps the EIP-1559 max fee per gas payflow will sign.
	MaxFeeGwei int64 `json:"maxFeeGwei"`
	// Native is the seed shape's native coin (only when the file has no
	// chains map): its approval_threshold, sweep_threshold and dust, as
	// every token states its own in tokens. Symbol defaults to ETH.
	Native *NativeCoin `json:"native,omitempty"`
	// ColdAddress is the seed shape's chains.<name>.cold_address.
	ColdAddress string `json:"cold_address,omitempty"`
}

// Token is one ERC20 payflow moves.
type Token struct {
	Address  string `json:"address"`
	Decimals int32  `json:"decimals"`
	// Dust: deposits below it are recorded but not announced. Empty = none.
	Dust string `json:"dust,omitempty"`
	// ApprovalThreshold: withdraws and pays of this token above it wait for
	// an operator, in the token's units. Required (Validate).
	ApprovalThreshold string `json:"approval_threshold,omitempty"`
	// SweepThreshold: deposit wallets holding more than this of the token
	// are swept to the collection wallet, in the token's units. Required.
	SweepThreshold string `json:"sweep_threshold,omitempty"`
	// VelocityWallet24h and VelocityRecipient24h bound what one wallet
	// sends, and what one recipient receives, of the token in a rolling
	// 24 h, in the token's units: a withdraw or pay that would go above
	// either waits for an operator's approval. Empty = no limit.
	VelocityWallet24h    string `json:"velocity_wallet_24h,omitempty"`
	VelocityRecipient24h string `json:"velocity_recipient_24h,omitempty"`
	// HotCeiling and HotFloor bound the hot tier (see TreasuryTier).
	Treasury
}

// DustLimit returns Dust as a decimal (zero when unset or invalid; Validate
// rejects invalid values).
func (t Token) DustLimit() decimal.Decimal {
	d, err := decimal.NewFromString(t.Dust)
	if err != nil {
		return decimal.Zero
	}
	return d
}

// NativeDecimals is the decimals of every EVM chain's native coin.
const NativeDecimals = 18

// NativeCoin names a chain's native coin (ETH, BNB, BTC, ...).
type NativeCoin struct {
	Symbol string `json:"symbol"`
	// Decimals: an EVM chain's native coin has 18 (0 means 18, and nothing
	// else is accepted); a Bitcoin chain's BTC has 8, stated.
	Decimals int32 `json:"decimals,omitempty"`
	// Dust: native deposits below it are recorded but not announced. Empty = none.
	Dust string `json:"dust,omitempty"`
	// ApprovalThreshold: withdraws and pays of the native coin above it wait
	// for an operator, in the coin's units. Required (Validate).
	ApprovalThreshold string `json:"approval_threshold,omitempty"`
	// SweepThreshold: deposit wallets holding more than this of the native
	// coin are swept to the collection wallet, in the coin's units. Required.
	SweepThreshold string `json:"sweep_threshold,omitempty"`
	// VelocityWallet24h and VelocityRecipient24h are the native coin's
	// velocity limits, in the coin's units (see Token). Empty = no limit.
	VelocityWallet24h    string `json:"velocity_wallet_24h,omitempty"`
	VelocityRecipient24h string `json:"velocity_recipient_24h,omitempty"`
	// HotCeiling and HotFloor bound the hot tier (see TreasuryTier).
	Treasury
}

// Treasury is one asset's hot tier bounds, in the asset's units; both are
// optional. The hot tier of a chain and asset is what its hot wallets and
// its collection wallet (the wallets that pay) hold available in the
// ledger. Above HotCeiling the excess is swept to the chain's cold_address;
// below HotFloor an alert asks an operator to refill the tier from cold.
type Treasury struct {
	// HotCeiling: a hot tier holding more is swept down to it. Empty: never
	// swept. Setting it requires the chain's cold_address.
	HotCeiling string `json:"hot_ceiling,omitempty"`
	// HotFloor: a hot tier holding less raises PayflowHotWalletBelowFloor.
	// Empty: no alert. Below HotCeiling when both are set.
	HotFloor string `json:"hot_floor,omitempty"`
}

// Ceiling returns HotCeiling as a decimal; ok is false when it is unset or
// invalid (Validate refuses an invalid one).
func (t Treasury) Ceiling() (decimal.Decimal, bool) { return positive(t.HotCeiling) }

// Floor returns HotFloor as a decimal; ok is false when it is unset or
// invalid (Validate refuses an invalid one).
func (t Treasury) Floor() (decimal.Decimal, bool) { return positive(t.HotFloor) }

func positive(s string) (decimal.Decimal, bool) {
	if s == "" {
		return decimal.Decimal{}, false
	}
	d, err := decimal.NewFromString(s)
	if err != nil || d.Sign() <= 0 {
		return decimal.Decimal{}, false
	}
	return d, true
}

// ChainConfig is one EVM chain payflow serves: its node, its assets and its
// wallets. Every chain has its own listener, tracker, lease, nonce lanes,
// reconciliation and sweeps, and its own Temporal task queue (TaskQueue).
type ChainConfig struct {
	ChainID       int64  `json:"chainId"`
	RPCURL        string `json:"rpcUrl"`
	WSURL         string `json:"wsUrl"`
	ConfirmHeight int    `json:"confirmHeight"`
	// MaxFeeGwei caps the EIP-1559 max fee per gas payflow will sign.
	MaxFeeGwei int64            `json:"maxFeeGwei"`
	Native     NativeCoin       `json:"native"`
	Tokens     map[string]Token `json:"tokens"`
	// CollectionAddress pays when the requested from_address cannot cover an
	// amount, and receives sweeps.
	CollectionAddress string `json:"collection_address,omitempty"`
	// GasAddress pays the gas top-ups of sweeps ("" = any gas wallet).
	GasAddress string `json:"gas_address,omitempty"`
	// ColdAddress is the chain's cold wallet: a wallet whose key payflow
	// does not hold (watch-only, kind cold), where the hot tier's excess
	// above an asset's hot_ceiling is swept. Required when any asset of
	// the chain has a hot_ceiling.
	ColdAddress string `json:"cold_address,omitempty"`
	// SweepThreshold is refused when set: one number for all the chain's
	// assets means something different in each. Every token and the native
	// coin state their own (Token.SweepThreshold, NativeCoin.SweepThreshold).
	// Kept only so that Validate can name the fields that replace it.
	SweepThreshold string `json:"sweep_threshold,omitempty"`

	// feeCap is FeeCap for a chain that does not price in gwei (a Bitcoin
	// chain's, set by BTCChain.Assets).
	feeCap *big.Int
}

// Asset is one symbol a chain moves: a token, or the native coin (Native,
// no address).
type Asset struct {
	Symbol   string
	Native   bool
	Address  string // token contract; "" for the native coin
	Decimals int32
	Dust     string
	// ApprovalThreshold and SweepThreshold are the asset's own (see Token).
	ApprovalThreshold string
	SweepThreshold    string
	// VelocityWallet24h and VelocityRecipient24h are the asset's velocity
	// limits ("" = none; see Token).
	VelocityWallet24h    string
	VelocityRecipient24h string
	// Treasury is the asset's hot tier bounds (HotCeiling, HotFloor).
	Treasury
}

// DustLimit returns Dust as a decimal (zero when unset).
func (a Asset) DustLimit() decimal.Decimal { return Token{Dust: a.Dust}.DustLimit() }

// VelocityLimits returns the asset's velocity limits per wallet and per
// recipient; a zero value is no limit (Validate refuses a set limit that
// is not a positive decimal).
func (a Asset) VelocityLimits() (wallet, recipient decimal.Decimal) {
	wallet, _ = positive(a.VelocityWallet24h)
	recipient, _ = positive(a.VelocityRecipient24h)
	return wallet, recipient
}

// HasVelocityLimit says whether the asset has a velocity limit of either kind.
func (a Asset) HasVelocityLimit() bool {
	w, r := a.VelocityLimits()
	return w.Sign() > 0 || r.Sign() > 0
}

// Asset returns the token or native coin named symbol (any case).
func (c ChainConfig) Asset(symbol string) (Asset, bool) {
	s := strings.ToUpper(strings.TrimSpace(symbol))
	if s == "" {
		return Asset{}, false
	}
	if s == strings.ToUpper(c.Native.Symbol) {
		decimals := int32(NativeDecimals)
		if c.Native.Decimals != 0 {
			decimals = c.Native.Decimals
		}
		return Asset{Symbol: s, Native: true, Decimals: decimals, Dust: c.Native.Dust,
			ApprovalThreshold: c.Native.ApprovalThreshold, SweepThreshold: c.Native.SweepThreshold, Treasury: c.Native.Treasury,
			VelocityWallet24h: c.Native.VelocityWallet24h, VelocityRecipient24h: c.Native.VelocityRecipient24h}, true
	}
	t, ok := c.Tokens[s]
	if !ok {
		return Asset{}, false
	}
	return Asset{Symbol: s, Address: strings.ToLower(t.Address), Decimals: t.Decimals, Dust: t.Dust,
		ApprovalThreshold: t.ApprovalThreshold, SweepThreshold: t.SweepThreshold, Treasury: t.Treasury,
		VelocityWallet24h: t.VelocityWallet24h, VelocityRecipient24h: t.VelocityRecipient24h}, true
}

// Symbols lists the chain's tokens and its native coin, sorted.
func (c ChainConfig) Symbols() []string {
	out := make([]string, 0, len(c.Tokens)+1)
	for s := range c.Tokens {
		out = append(out, s)
	}
	if c.Native.Symbol != "" {
		out = append(out, strings.ToUpper(c.Native.Symbol))
	}
	sort.Strings(out)
	return out
}

// TokenByAddress returns the symbol and config of the chain's token at address.
func (c ChainConfig) TokenByAddress(address string) (string, Token, bool) {
	for sym, t := range c.Tokens {
		if strings.EqualFold(t.Address, address) {
			return sym, t, true
		}
	}
	return "", Token{}, false
}

// FeeCap is the most one unit of a transfer's size may cost, in the native
// coin's base units: an EVM chain's MaxFeeWei (wei per gas), a Bitcoin
// chain's max_fee_rate (satoshis per virtual byte).
func (c ChainConfig) FeeCap() *big.Int {
	if c.feeCap != nil {
		return new(big.Int).Set(c.feeCap)
	}
	return c.MaxFeeWei()
}

// NativeScale is the native coin's decimals: 18 on an EVM chain, 8 on a
// Bitcoin chain.
func (c ChainConfig) NativeScale() int32 {
	if c.Native.Decimals != 0 {
		return c.Native.Decimals
	}
	return NativeDecimals
}

// MaxFeeWei is MaxFeeGwei in wei.
func (c ChainConfig) MaxFeeWei() *big.Int {
	return new(big.Int).Mul(big.NewInt(c.MaxFeeGwei), big.NewInt(1_000_000_000))
}

// TemporalConfig says where the Temporal frontend is and how to reach it:
// plaintext by default (the dev stack), TLS when TLS is set (a self-hosted
// cluster behind TLS, or Temporal Cloud), with a client certificate (mTLS)
// or an API key when the server asks for one.
type TemporalConfig struct {
	Address string `json:"address"`
	// Namespace must exist on the server: the dev server has "default";
	// a cluster's namespaces are registered by its operator.
	Namespace string `json:"namespace"`
	TaskQueue string `json:"task_queue"`
	// TLS, when present (even empty: {}), connects over TLS. Nil connects
	// in plaintext.
	TLS *TemporalTLS `json:"tls,omitempty"`
	// APIKeyFile names a file holding an API key (Temporal Cloud's, or a
	// cluster's authorizer's), sent as a bearer token on every call; its
	// surrounding whitespace is ignored. PAYFLOW_TEMPORAL_API_KEY sets the
	// key itself instead. A key needs TLS: it would cross the network in
	// the clear.
	APIKeyFile string `json:"api_key_file,omitempty"`
	// APIKey comes from PAYFLOW_TEMPORAL_API_KEY only, never from the file
	// (a Secret: it never prints).
	APIKey Secret `json:"-"`
}

// TemporalTLS is how payflow checks the Temporal frontend's certificate and
// which certificate it shows in turn.
type TemporalTLS struct {
	// CAFile is a PEM bundle of the CAs the server's certificate must chain
	// to. Empty trusts the system's roots (Temporal Cloud).
	CAFile string `json:"ca_file,omitempty"`
	// ServerName is the name the server's certificate must carry. Empty
	// takes the host of Address.
	ServerName string `json:"server_name,omitempty"`
	// CertFile and KeyFile are payflow's client certificate and key (PEM)
	// for a server that requires mTLS: both or neither.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// APIConfig says who may call the worker's HTTP API (http_addr): a caller
// shows the bearer token, or a client certificate signed by TLS.ClientCAFile
// (mTLS). /healthz and /metrics stay open to whoever reaches http_addr; every
// /v1 route asks. With neither a token nor mTLS the API answers anyone, and
// so only a loopback http_addr is allowed.
type APIConfig struct {
	// TokenFile names a file holding the bearer token (its surrounding
	// whitespace ignored). PAYFLOW_API_TOKEN sets the token itself instead.
	TokenFile string `json:"token_file,omitempty"`
	// Token comes from PAYFLOW_API_TOKEN or TokenFile (ResolveToken), never
	// from config.json (a Secret: it never prints).
	Token Secret `json:"-"`
	// TLS serves the API over TLS; with ClientCAFile, a client certificate
	// it signed authenticates a caller (mTLS) as the token does.
	TLS *APITLS `json:"tls,omitempty"`
}

// APITLS is the API's server certificate and the CA of its clients.
type APITLS struct {
	CertFile     string `json:"cert_file"`
	KeyFile      string `json:"key_file"`
	ClientCAFile string `json:"client_ca_file,omitempty"`
}

// minAPIToken is the shortest bearer token accepted: a guessable token is
// no lock.
const minAPIToken = 16

// ResolveToken reads TokenFile into Token when Token is not set already
// (from the environment), and checks its length.
func (a *APIConfig) ResolveToken() error {
	if a.Token == "" && a.TokenFile != "" {
		b, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return fmt.Errorf("reading the API token: %w", err)
		}
		a.Token = Secret(strings.TrimSpace(string(b)))
	}
	if a.Token != "" && len(a.Token.Reveal()) < minAPIToken {
		return fmt.Errorf("%w: the API token must be at least %d characters", ErrInvalid, minAPIToken)
	}
	return nil
}

// Authenticates reports whether the API asks its callers who they are (a
// token or mTLS is configured).
func (a APIConfig) Authenticates() bool {
	return a.Token != "" || a.TokenFile != "" || (a.TLS != nil && a.TLS.ClientCAFile != "")
}

// isLoopback reports whether addr (host:port) listens on loopback only. An
// empty host listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PaymentConfig holds the withdraw/pay policy knobs.
type PaymentConfig struct {
	// CollectionAddress pays when the requested from_address cannot cover an amount.
	CollectionAddress string `json:"collection_address"`
	// ApprovalThreshold is refused when set: one number for every asset
	// (50,000 USDT is not 50,000 ETH). Each token and native coin states its
	// own approval_threshold; see Asset.
	ApprovalThreshold string `json:"approval_threshold,omitempty"`
	// ApprovalTimeout rejects an unanswered approval after this long.
	ApprovalTimeout Duration `json:"approval_timeout"`
	// ConfirmTimeout: a broadcast payment not confirmed within it is replaced
	// on the same nonce at a higher fee (repeatedly, up to the attempt cap); it
	// never fails the payment. Sweeps use it too (workflows.SweepInput).
	ConfirmTimeout Duration `json:"confirm_timeout"`
	// TimestampSkew is how far a request's timestamp may be from now.
	TimestampSkew Duration `json:"timestamp_skew"`
	// ReincludeTimeout: a deposit reorganised away and not re-included within
	// it is answered with status=0.
	ReincludeTimeout Duration `json:"reinclude_timeout"`
	// SweepThreshold is refused when set, as ApprovalThreshold: each token
	// and native coin states its own sweep_threshold.
	SweepThreshold string `json:"sweep_threshold,omitempty"`
}

// Duration is a time.Duration read from JSON as "90s" or a number of seconds.
type Duration struct{ time.Duration }

// UnmarshalJSON accepts "1m30s" or 90.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("parsing duration %q: %w", s, err)
		}
		d.Duration = v
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string like \"90s\" or a number of seconds: %s", b)
	}
	d.Duration = time.Duration(n * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// RelayConfig times the worker's relay (package answers), which publishes an
// answer that was recorded and stayed unpublished: the answer of a run
// stopped between recording and publishing it.
type RelayConfig struct {
	// Grace is how long an answer stays unpublished before the relay
	// publishes it: its own run's time to do so. Default 30s.
	Grace Duration `json:"grace"`
	// Interval is how often the relay looks. Default 10s.
	Interval Duration `json:"interval"`
}

// Config is everything payflow reads at start.
type Config struct {
	RMQ RMQConfig `json:"rmq_config"`
	// ETH is the seed's eth_config: its dbConfig always; its chain fields
	// (with Tokens and payment.collection_address) only when Chains is empty,
	// and then they mean one chain, named ETH.Chain ("ETH").
	ETH    ETHConfig        `json:"eth_config"`
	Tokens map[string]Token `json:"tokens,omitempty"`
	// Chains names every EVM chain served. Load fills it from eth_config
	// when the file has no chains; everything past Load reads only Chains.
	Chains map[string]ChainConfig `json:"chains,omitempty"`
	// BTCChains names every chain of the Bitcoin family served (see
	// BTCChain), kept apart from Chains: every loop over the EVM chains
	// (their nodes, nonces, gas, the signer's chain ids) stays theirs.
	BTCChains map[string]BTCChain `json:"btc_chains,omitempty"`
	Temporal  TemporalConfig      `json:"temporal"`
	Payment   PaymentConfig       `json:"payment"`
	// SignKey is the seed's "communication key": the HMAC secret of requests.
	SignKey Secret `json:"sign_key"`
	// MasterKey (64 hex chars) is the legacy key that sealed wallet keys
	// before payflow-signer held them. Only from the environment, and only
	// `payflowctl wallet migrate` reads it: the worker and the starter never do.
	MasterKey Secret `json:"-"`
	// legacy: Chains was built from eth_config (validation names those fields).
	legacy bool
	// HTTPAddr serves health and the read-only ledger API. Empty disables it.
	// The worker also serves its Prometheus /metrics there. Anything but a
	// loopback address needs API's bearer token or mTLS (Validate).
	HTTPAddr string `json:"http_addr"`
	// API says who may call the worker's HTTP API.
	API APIConfig `json:"api"`
	// LeaseTTL is how long a chain's lease (its listener, tracker and healer
	// run in one worker at a time) outlives its holder: a standing worker
	// takes over that long (plus a quarter) after the holder dies. Renewed
	// every quarter of it. Default 2s.
	LeaseTTL Duration `json:"lease_ttl"`
	// AnswerRelay times the worker's relay of answers left unpublished.
	AnswerRelay RelayConfig `json:"answer_relay"`
	// MetricsAddr (host:port) serves the starter's Prometheus /metrics.
	// Empty disables it. The worker serves its /metrics on HTTPAddr.
	MetricsAddr string `json:"metrics_addr"`
	// Signer is where the worker and payflowctl reach payflow-signer.
	Signer SignerConfig `json:"signer"`
	// Custody says where keys live: the KMS (read by payflow-signer only)
	// and the HD account's xpub (public; the worker derives deposit
	// addresses from it).
	Custody CustodyConfig `json:"custody"`
	// Risk is screening: the deny list.
	Risk RiskConfig `json:"risk"`
}

// RiskConfig configures screening.
type RiskConfig struct {
	// DenyList is the path of the deny list file (package risk/denylist):
	// payments to a listed address are refused, deposits from one are
	// held. The worker and payflow-signer read it at start and again when
	// it changes. Empty: no list.
	DenyList string `json:"deny_list,omitempty"`
}

// SignerConfig locates payflow-signer.
type SignerConfig struct {
	// Socket is the Unix socket payflow-signer listens on
	// (PAYFLOW_SIGNER_SOCKET overrides it).
	Socket string `json:"socket"`
}

// CustodyConfig configures keys.
type CustodyConfig struct {
	// AccountXPub is the HD account's extended public key, m/44'/60'/0':
	// deposit address i is its child 0/i. Empty: no HD deposit addresses.
	AccountXPub string `json:"account_xpub"`
	// KMS is the key management service payflow-signer uses. The worker
	// and the starter never read it.
	KMS KMSConfig `json:"kms"`
}

// KMSConfig names a KMS reached through the AWS KMS API.
type KMSConfig struct {
	// Endpoint is the API's URL when it is not AWS's regional one (the dev
	// stack's local-kms). Empty: AWS KMS in Region.
	Endpoint string `json:"endpoint"`
	// Region is the AWS region; empty: the SDK's usual sources.
	Region string `json:"region"`
	// EnvelopeKeyID is the KMS key (id, ARN or alias) whose data keys seal
	// key material. Empty: payflow-signer creates one on first start and
	// remembers it.
	EnvelopeKeyID string `json:"envelope_key_id"`
}

// Env variables that override the file. Documented in docs/configuration.md.
const (
	EnvConfigPath        = "PAYFLOW_CONFIG"
	EnvAMQPURL           = "PAYFLOW_AMQP_URL"
	EnvRPCURL            = "PAYFLOW_ETH_RPC_URL"
	EnvWSURL             = "PAYFLOW_ETH_WS_URL"
	EnvChainID           = "PAYFLOW_CHAIN_ID"
	EnvConfirmations     = "PAYFLOW_CONFIRMATIONS"
	EnvMySQLDSN          = "PAYFLOW_MYSQL_DSN"
	EnvTemporalAddress   = "PAYFLOW_TEMPORAL_ADDRESS"
	EnvTemporalNamespace = "PAYFLOW_TEMPORAL_NAMESPACE"
	EnvSignKey           = "PAYFLOW_SIGN_KEY"
	EnvMasterKey         = "PAYFLOW_MASTER_KEY"
	EnvCollection        = "PAYFLOW_COLLECTION_ADDRESS"
	EnvHTTPAddr          = "PAYFLOW_HTTP_ADDR"
	EnvAPIToken          = "PAYFLOW_API_TOKEN"
	EnvMetricsAddr       = "PAYFLOW_METRICS_ADDR"
	EnvSignerSocket      = "PAYFLOW_SIGNER_SOCKET"
	EnvDenyList          = "PAYFLOW_DENY_LIST"
)

// Env variables of the Temporal connection (documented with the others).
const (
	// EnvTemporalAPIKey is the Temporal API key (temporal.api_key_file
	// names a file holding it instead).
	EnvTemporalAPIKey = "PAYFLOW_TEMPORAL_API_KEY"
	// EnvTemporalTLSCAFile, EnvTemporalTLSServerName, EnvTemporalTLSCertFile
	// and EnvTemporalTLSKeyFile set temporal.tls's fields; any of them
	// turns TLS on.
	EnvTemporalTLSCAFile     = "PAYFLOW_TEMPORAL_TLS_CA_FILE"
	EnvTemporalTLSServerName = "PAYFLOW_TEMPORAL_TLS_SERVER_NAME"
	EnvTemporalTLSCertFile   = "PAYFLOW_TEMPORAL_TLS_CERT_FILE"
	EnvTemporalTLSKeyFile    = "PAYFLOW_TEMPORAL_TLS_KEY_FILE"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid config")

// Default returns the seed defaults: queue names, 20 confirmations.
func Default() Config {
	q := func(name, key string) QueueConfig {
		return QueueConfig{Queue: name, Exchange: "pay.exchange", Routing: []string{key}}
	}
	return Config{
		RMQ: RMQConfig{
			Topup:        q("pay.recharge.queue", "pay.recharge.routing.key"),
			Withdraw:     q("pay.withdraw.queue", "pay.withdraw.routing.key"),
			Pay:          q("pay.auto.queue", "pay.auto.routing.key"),
			TopupResp:    q("pay.recharge.return.queue", "pay.recharge.return.routing.key"),
			WithdrawResp: q("pay.withdraw.return.queue", "pay.withdraw.return.routing.key"),
			PayResp:      q("pay.auto.return.queue", "pay.auto.return.routing.key"),
			DeadLetter:   q("pay.dead.letter.queue", "pay.dead.letter.routing.key"),
		},
		ETH: ETHConfig{
			Chain:         "ETH",
			ConfirmHeight: 20,
			MaxFeeGwei:    500,
			DB:            DBConfig{Host: "127.0.0.1", Port: 3306, Database: "payment", MaxOpenConns: 20, MaxIdleConns: 20, ConnMaxLife: 120},
		},
		Temporal:    TemporalConfig{Address: "127.0.0.1:7233", Namespace: "default", TaskQueue: "payflow"},
		LeaseTTL:    Duration{2 * time.Second},
		AnswerRelay: RelayConfig{Grace: Duration{30 * time.Second}, Interval: Duration{10 * time.Second}},
		Payment: PaymentConfig{
			ApprovalTimeout:  Duration{24 * time.Hour},
			ConfirmTimeout:   Duration{30 * time.Minute},
			TimestampSkew:    Duration{300 * time.Second},
			ReincludeTimeout: Duration{10 * time.Minute},
		},
	}
}

// Load reads path (may be empty: defaults only), applies env overrides and validates.
func Load(path string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("reading config %s: %w", path, err)
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			return Config{}, fmt.Errorf("parsing config %s: %w", path, err)
		}
	}
	if err := cfg.applyEnv(os.LookupEnv); err != nil {
		return Config{}, err
	}
	cfg.ResolveChains()
	if err := cfg.resolveBTC(os.LookupEnv); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) applyEnv(lookup func(string) (string, bool)) error {
	str := func(key string, dst *string) {
		if v, ok := lookup(key); ok && v != "" {
			*dst = v
		}
	}
	sec := func(key string, dst *Secret) {
		if v, ok := lookup(key); ok && v != "" {
			*dst = Secret(v)
		}
	}
	sec(EnvAMQPURL, &c.RMQ.SubAddr)
	sec(EnvMySQLDSN, &c.ETH.DB.DSN)
	str(EnvTemporalAddress, &c.Temporal.Address)
	str(EnvTemporalNamespace, &c.Temporal.Namespace)
	str(EnvDenyList, &c.Risk.DenyList)
	sec(EnvTemporalAPIKey, &c.Temporal.APIKey)
	var tls TemporalTLS
	if c.Temporal.TLS != nil {
		tls = *c.Temporal.TLS
	}
	str(EnvTemporalTLSCAFile, &tls.CAFile)
	str(EnvTemporalTLSServerName, &tls.ServerName)
	str(EnvTemporalTLSCertFile, &tls.CertFile)
	str(EnvTemporalTLSKeyFile, &tls.KeyFile)
	if c.Temporal.TLS != nil || tls != (TemporalTLS{}) {
		c.Temporal.TLS = &tls
	}
	sec(EnvSignKey, &c.SignKey)
	sec(EnvMasterKey, &c.MasterKey)
	str(EnvHTTPAddr, &c.HTTPAddr)
	sec(EnvAPIToken, &c.API.Token)
	str(EnvMetricsAddr, &c.MetricsAddr)
	str(EnvSignerSocket, &c.Signer.Socket)

	// The chain overrides apply to eth_config's chain: the only one without
	// a chains map, else the chains entry of that name.
	target := chainFields{&c.ETH.RPCURL, &c.ETH.WSURL, &c.ETH.ChainID, &c.ETH.ConfirmHeight, &c.Payment.CollectionAddress}
	var named ChainConfig
	inChains := len(c.Chains) > 0
	if inChains {
		var ok bool
		if named, ok = c.Chains[c.ETH.Chain]; !ok {
			for _, k := range []string{EnvRPCURL, EnvWSURL, EnvChainID, EnvConfirmations, EnvCollection} {
				if v, set := lookup(k); set && v != "" {
					return fmt.Errorf("%w: %s applies to the chain named by eth_config.chain (%q), which chains does not list",
						ErrInvalid, k, c.ETH.Chain)
				}
			}
			return nil
		}
		target = chainFields{&named.RPCURL, &named.WSURL, &named.ChainID, &named.ConfirmHeight, &named.CollectionAddress}
	}
	str(EnvRPCURL, target.rpc)
	str(EnvWSURL, target.ws)
	str(EnvCollection, target.collection)
	if v, ok := lookup(EnvConfirmations); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%w: %s=%q is not an integer", ErrInvalid, EnvConfirmations, v)
		}
		*target.confirm = n
	}
	if v, ok := lookup(EnvChainID); ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %s=%q is not an integer", ErrInvalid, EnvChainID, v)
		}
		*target.id = n
	}
	if inChains {
		c.Chains[c.ETH.Chain] = named
	}
	return nil
}

type chainFields struct {
	rpc, ws    *string
	id         *int64
	confirm    *int
	collection *string
}

// ResolveChains fills Chains from the seed's eth_config, tokens and payment
// sections when the file has no chains map: one chain named eth_config.chain
// whose native coin is eth_config.native (symbol ETH unless it says
// otherwise). Chain names are upper-cased.
func (c *Config) ResolveChains() {
	if len(c.Chains) == 0 {
		c.legacy = true
		native := NativeCoin{Symbol: "ETH"}
		if c.ETH.Native != nil {
			native = *c.ETH.Native
			if native.Symbol == "" {
				native.Symbol = "ETH"
			}
		}
		c.Chains = map[string]ChainConfig{strings.ToUpper(c.ETH.Chain): {
			ChainID: c.ETH.ChainID, RPCURL: c.ETH.RPCURL, WSURL: c.ETH.WSURL, ConfirmHeight: c.ETH.ConfirmHeight,
			MaxFeeGwei: c.ETH.MaxFeeGwei, Native: native, Tokens: c.Tokens,
			CollectionAddress: c.Payment.CollectionAddress, ColdAddress: c.ETH.ColdAddress,
		}}
	}
	out := make(map[string]ChainConfig, len(c.Chains))
	for name, ch := range c.Chains {
		tokens := make(map[string]Token, len(ch.Tokens))
		for sym, t := range ch.Tokens {
			tokens[strings.ToUpper(sym)] = t
		}
		ch.Tokens = tokens
		ch.Native.Symbol = strings.ToUpper(ch.Native.Symbol)
		if ch.MaxFeeGwei == 0 {
			ch.MaxFeeGwei = c.ETH.MaxFeeGwei
		}
		out[strings.ToUpper(name)] = ch
	}
	c.Chains = out
}

// ChainNames lists the configured chains, sorted.
func (c Config) ChainNames() []string {
	out := make([]string, 0, len(c.Chains))
	for n := range c.Chains {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Chain returns the chain named name (any case).
func (c Config) Chain(name string) (ChainConfig, bool) {
	ch, ok := c.Chains[strings.ToUpper(strings.TrimSpace(name))]
	return ch, ok
}

// TaskQueue is the Temporal task queue of chain's workflows and activities.
// The chain named by eth_config.chain keeps the bare task_queue (so
// workflows started before payflow served several chains still find their
// worker); every other chain gets "<task_queue>.<chain>". A chain that is not
// configured (a refused request still gets its answer from a workflow) gets
// the first chain's queue.
func (c Config) TaskQueue(chainName string) string {
	n := strings.ToUpper(strings.TrimSpace(chainName))
	if _, ok := c.BTCChains[n]; ok {
		return c.Temporal.TaskQueue + "." + n
	}
	if _, ok := c.Chains[n]; !ok && len(c.Chains) > 0 {
		n = c.ChainNames()[0]
	}
	if n == strings.ToUpper(c.ETH.Chain) {
		return c.Temporal.TaskQueue
	}
	return c.Temporal.TaskQueue + "." + n
}

// MaxDecimals is the most decimals a token may have: the ledger's amounts
// are DECIMAL(65,18).
const MaxDecimals = 18

// RequireSignKey fails unless the communication key (the HMAC secret of
// requests) is set. Only the starter, which verifies requests, needs it: the
// worker never holds it.
func (c Config) RequireSignKey() error {
	if c.SignKey == "" {
		return fmt.Errorf("%w: sign_key is required (or %s, or -key)", ErrInvalid, EnvSignKey)
	}
	return nil
}

// RequireSigner fails unless signer.socket is set. The worker needs it:
// every transfer it sends is signed by payflow-signer, which alone holds
// the keys.
func (c Config) RequireSigner() error {
	if strings.TrimSpace(c.Signer.Socket) == "" {
		return fmt.Errorf("%w: signer.socket is required (or %s): the worker has payflow-signer sign every transfer "+
			"and holds no key of its own", ErrInvalid, EnvSignerSocket)
	}
	return nil
}

// Validate reports every problem at once, each naming the field to fix. The
// sign key and the signer's socket are not checked here: see
// RequireSignKey and RequireSigner.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if c.RMQ.SubAddr == "" {
		bad("rmq_config.sub_addr is required (or %s)", EnvAMQPURL)
	} else if u, err := url.Parse(c.RMQ.SubAddr.Reveal()); err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") {
		bad("rmq_config.sub_addr must be an amqp:// URL")
	}
	for name, q := range map[string]QueueConfig{
		"topup": c.RMQ.Topup, "withdraw": c.RMQ.Withdraw, "pay": c.RMQ.Pay,
		"topup_resp": c.RMQ.TopupResp, "withdraw_resp": c.RMQ.WithdrawResp, "pay_resp": c.RMQ.PayResp,
		"dead_letter": c.RMQ.DeadLetter,
	} {
		if q.Queue == "" || q.Exchange == "" || len(q.Routing) == 0 {
			bad("rmq_config.%s needs queue, exchange and routing", name)
		}
	}
	if c.ETH.DB.DSN == "" && (c.ETH.DB.User == "" || c.ETH.DB.Host == "" || c.ETH.DB.Database == "") {
		bad("eth_config.dbConfig needs user, host and database (or %s)", EnvMySQLDSN)
	}
	if len(c.Chains) == 0 {
		bad("chains must list at least one chain (or eth_config must describe one)")
	}
	ids := map[int64]string{}
	for _, name := range c.ChainNames() {
		errs = append(errs, c.validateChain(name, c.Chains[name])...)
		if id := c.Chains[name].ChainID; id > 0 {
			if other, dup := ids[id]; dup {
				bad("chains.%s.chainId %d is chains.%s's too: every chain needs its own id", name, id, other)
			}
			ids[id] = name
		}
	}
	errs = append(errs, c.validateBTC()...)
	if c.Temporal.Address == "" || c.Temporal.Namespace == "" || c.Temporal.TaskQueue == "" {
		bad("temporal needs address, namespace and task_queue")
	}
	if t := c.Temporal.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		bad("temporal.tls.cert_file and temporal.tls.key_file go together (the client certificate of mTLS and its key)")
	}
	if c.Temporal.APIKey != "" && c.Temporal.APIKeyFile != "" {
		bad("temporal.api_key_file and %s are both set: keep one", EnvTemporalAPIKey)
	}
	if (c.Temporal.APIKey != "" || c.Temporal.APIKeyFile != "") && c.Temporal.TLS == nil {
		bad("a Temporal API key needs temporal.tls (it is sent on every call): set \"tls\": {} for the system's CAs")
	}
	// A number shared by several assets means something different in each:
	// refused, naming the fields of every asset that must carry it instead.
	for _, s := range []struct{ f, v string }{{"approval_threshold", c.Payment.ApprovalThreshold}, {"sweep_threshold", c.Payment.SweepThreshold}} {
		if s.v != "" {
			bad("payment.%s %q is one number for every asset of every chain, and an amount means something different in each "+
				"(50,000 USDT is not 50,000 ETH): remove it and set %s instead, each in its asset's units",
				s.f, s.v, strings.Join(c.assetFields(c.ChainNames(), s.f), ", "))
		}
	}
	if c.ETH.Native != nil && !c.legacy {
		bad("eth_config.native describes the native coin of the seed shape only (a file without chains): set chains.<name>.native instead")
	}
	if c.Payment.ConfirmTimeout.Duration <= 0 || c.Payment.ApprovalTimeout.Duration <= 0 || c.Payment.TimestampSkew.Duration <= 0 ||
		c.Payment.ReincludeTimeout.Duration <= 0 {
		bad("payment timeouts must be > 0")
	}
	for name, addr := range map[string]string{"http_addr": c.HTTPAddr, "metrics_addr": c.MetricsAddr} {
		if _, port, err := net.SplitHostPort(addr); addr != "" && (err != nil || port == "") {
			bad("%s %q must be host:port (e.g. 127.0.0.1:8381), or empty to disable it", name, addr)
		}
	}
	if c.LeaseTTL.Duration < 400*time.Millisecond {
		bad("lease_ttl %s must be at least 400ms (it is renewed every quarter of it)", c.LeaseTTL.Duration)
	}
	if c.AnswerRelay.Grace.Duration <= 0 || c.AnswerRelay.Interval.Duration <= 0 {
		bad("answer_relay.grace %s and answer_relay.interval %s must be > 0", c.AnswerRelay.Grace.Duration, c.AnswerRelay.Interval.Duration)
	}
	if c.HTTPAddr != "" && !isLoopback(c.HTTPAddr) && !c.API.Authenticates() {
		bad("http_addr %q is not a loopback address: the API would answer anyone who reaches it; set %s (or api.token_file) or api.tls.client_ca_file (mTLS), or listen on 127.0.0.1",
			c.HTTPAddr, EnvAPIToken)
	}
	if t := c.API.TLS; t != nil && (t.CertFile == "" || t.KeyFile == "") {
		bad("api.tls needs cert_file and key_file")
	}
	if c.HTTPAddr != "" && c.HTTPAddr == c.MetricsAddr {
		bad("metrics_addr %q is http_addr too: the worker listens on http_addr, the starter on metrics_addr", c.MetricsAddr)
	}
	return errors.Join(errs...)
}

// validateChain checks one chain, naming each field as the file spells it:
// chains.<name>.<field>, or eth_config / tokens / payment for the seed shape.
func (c Config) validateChain(name string, ch ChainConfig) []error {
	var errs []error
	field := func(f string) string { return "chains." + name + "." + f }
	if c.legacy {
		field = func(f string) string {
			switch {
			case strings.HasPrefix(f, "tokens."):
				return f
			case f == "collection_address", f == "sweep_threshold":
				return "payment." + f
			}
			return "eth_config." + f
		}
	}
	bad := func(f, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s "+format, append([]any{ErrInvalid, field(f)}, args...)...))
	}
	if !chainNameRE.MatchString(name) {
		bad("chain", "%q: a chain name is 1 to 16 letters, digits, '_' or '-'", name)
	}
	if ch.ChainID <= 0 {
		bad("chainId", "must be > 0 (or %s)", EnvChainID)
	}
	if !strings.HasPrefix(ch.RPCURL, "http") {
		bad("rpcUrl", "must be an http(s) URL, got %q", ch.RPCURL)
	}
	if !strings.HasPrefix(ch.WSURL, "ws") {
		bad("wsUrl", "must be a ws(s) URL, got %q", ch.WSURL)
	}
	if ch.ConfirmHeight < 1 {
		bad("confirmHeight", "must be >= 1, got %d", ch.ConfirmHeight)
	}
	if ch.MaxFeeGwei < 1 {
		bad("maxFeeGwei", "must be >= 1")
	}
	if ch.Native.Symbol == "" {
		bad("native.symbol", "is required (ETH, BNB, ...)")
	}
	if ch.Native.Decimals != 0 && ch.Native.Decimals != NativeDecimals {
		bad("native.decimals", "%d: the native coin of an EVM chain has %d decimals", ch.Native.Decimals, NativeDecimals)
	}
	if ch.Native.Dust != "" {
		if d, err := decimal.NewFromString(ch.Native.Dust); err != nil || d.Sign() < 0 {
			bad("native.dust", "%q must be a decimal >= 0", ch.Native.Dust)
		}
	}
	if ch.Native.Symbol != "" {
		errs = append(errs, assetAmounts(field, "native", ch.Native.ApprovalThreshold, ch.Native.SweepThreshold)...)
		errs = append(errs, velocityLimits(field, "native", ch.Native.VelocityWallet24h, ch.Native.VelocityRecipient24h)...)
	}
	if len(ch.Tokens) == 0 && ch.Native.Symbol == "" {
		bad("tokens", "must list at least one token, or native.symbol name the native coin")
	}
	seen := map[string]string{}
	for _, sym := range sortedKeys(ch.Tokens) {
		t := ch.Tokens[sym]
		f := "tokens." + sym
		if sym == ch.Native.Symbol {
			bad(f, "is also the native coin's symbol: a symbol names one asset")
		}
		if !protocol.IsAddress(t.Address) {
			bad(f+".address", "%q is not a 0x address", t.Address)
		} else if other, dup := seen[strings.ToLower(t.Address)]; dup {
			bad(f+".address", "is tokens.%s's address too", other)
		}
		seen[strings.ToLower(t.Address)] = sym
		if t.Dust != "" {
			if d, err := decimal.NewFromString(t.Dust); err != nil || d.Sign() < 0 {
				bad(f+".dust", "%q must be a decimal >= 0", t.Dust)
			}
		}
		errs = append(errs, assetAmounts(field, f, t.ApprovalThreshold, t.SweepThreshold)...)
		errs = append(errs, velocityLimits(field, f, t.VelocityWallet24h, t.VelocityRecipient24h)...)
		if t.Decimals < 0 || t.Decimals > MaxDecimals {
			// The ledger keeps 18 decimal places: more would be rounded
			// silently, and the ledger would disagree with the chain.
			bad(f+".decimals", "%d: must be 0 to %d (the ledger keeps %d decimal places)", t.Decimals, MaxDecimals, MaxDecimals)
		}
	}
	for f, addr := range map[string]string{"collection_address": ch.CollectionAddress, "gas_address": ch.GasAddress,
		"cold_address": ch.ColdAddress} {
		if addr != "" && !protocol.IsAddress(addr) {
			bad(f, "%q is not a 0x address", addr)
		}
	}
	errs = append(errs, c.validateTreasury(name, ch, field)...)
	if ch.SweepThreshold != "" {
		bad("sweep_threshold", "%q is one number for all the chain's assets, and an amount means something different in each: "+
			"remove it and set %s instead, each in its asset's units",
			ch.SweepThreshold, strings.Join(c.assetFields([]string{name}, "sweep_threshold"), ", "))
	}
	return errs
}

// validateTreasury checks the chain's hot tier bounds: each asset's
// hot_ceiling and hot_floor, when set, are positive decimals, the floor
// below the ceiling; a chain with any ceiling names its cold_address, which
// is none of the chain's paying or gas wallets.
func (c Config) validateTreasury(name string, ch ChainConfig, field func(string) string) []error {
	var errs []error
	bad := func(f, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s "+format, append([]any{ErrInvalid, field(f)}, args...)...))
	}
	type asset struct {
		f, symbol string
		t         Treasury
	}
	var assets []asset
	if ch.Native.Symbol != "" {
		assets = append(assets, asset{"native", ch.Native.Symbol, ch.Native.Treasury})
	}
	for _, sym := range sortedKeys(ch.Tokens) {
		assets = append(assets, asset{"tokens." + sym, sym, ch.Tokens[sym].Treasury})
	}
	var ceilings []string
	for _, a := range assets {
		ceiling, okC := a.t.Ceiling()
		floor, okF := a.t.Floor()
		if a.t.HotCeiling != "" && !okC {
			bad(a.f+".hot_ceiling", "%q of %s on %s must be a positive decimal, in %s", a.t.HotCeiling, a.symbol, name, a.symbol)
		}
		if a.t.HotFloor != "" && !okF {
			bad(a.f+".hot_floor", "%q of %s on %s must be a positive decimal, in %s", a.t.HotFloor, a.symbol, name, a.symbol)
		}
		if okC && okF && !floor.LessThan(ceiling) {
			bad(a.f+".hot_floor", "%s of %s on %s must be below its hot_ceiling %s", a.t.HotFloor, a.symbol, name, a.t.HotCeiling)
		}
		if a.t.HotCeiling != "" {
			ceilings = append(ceilings, field(a.f+".hot_ceiling"))
		}
	}
	if len(ceilings) > 0 && ch.ColdAddress == "" {
		bad("cold_address", "is required: %s sweep the hot tier's excess to the chain's cold address", strings.Join(ceilings, ", "))
	}
	if ch.ColdAddress != "" {
		for f, addr := range map[string]string{"collection_address": ch.CollectionAddress, "gas_address": ch.GasAddress} {
			if strings.EqualFold(addr, ch.ColdAddress) {
				bad("cold_address", "is the chain's %s too: the cold wallet's key is never held by payflow", f)
			}
		}
	}
	return errs
}

// assetAmounts checks one asset's own amount-valued settings: approval and
// sweep thresholds are required, positive decimals. asset is "native" or
// "tokens.<SYMBOL>"; field spells it as the file does.
func assetAmounts(field func(string) string, asset, approval, sweep string) []error {
	var errs []error
	for _, s := range []struct{ name, v string }{{"approval_threshold", approval}, {"sweep_threshold", sweep}} {
		f := field(asset + "." + s.name)
		if s.v == "" {
			errs = append(errs, fmt.Errorf("%w: %s is required: every asset states its own %s, in its own units "+
				"(an amount means something different in each asset)", ErrInvalid, f, s.name))
			continue
		}
		if d, err := decimal.NewFromString(s.v); err != nil || d.Sign() <= 0 {
			errs = append(errs, fmt.Errorf("%w: %s %q must be a positive decimal", ErrInvalid, f, s.v))
		}
	}
	return errs
}

// velocityLimits checks one asset's optional velocity limits: when set,
// positive decimals.
func velocityLimits(field func(string) string, asset, wallet, recipient string) []error {
	var errs []error
	for _, s := range []struct{ name, v string }{{"velocity_wallet_24h", wallet}, {"velocity_recipient_24h", recipient}} {
		if s.v == "" {
			continue
		}
		if d, err := decimal.NewFromString(s.v); err != nil || d.Sign() <= 0 {
			errs = append(errs, fmt.Errorf("%w: %s %q must be a positive decimal in the asset's units, or empty for no limit",
				ErrInvalid, field(asset+"."+s.name), s.v))
		}
	}
	return errs
}

// assetFields names setting (approval_threshold, sweep_threshold) of every
// asset of the named chains, as the file spells them: chains.<C>.native.<s>
// and chains.<C>.tokens.<T>.<s>, or eth_config.native.<s> and
// tokens.<T>.<s> in the seed shape.
func (c Config) assetFields(chains []string, setting string) []string {
	var out []string
	for _, name := range chains {
		ch := c.Chains[name]
		prefix := "chains." + name + "."
		native := prefix + "native."
		if c.legacy {
			prefix, native = "", "eth_config.native."
		}
		if ch.Native.Symbol != "" {
			out = append(out, native+setting)
		}
		for _, sym := range sortedKeys(ch.Tokens) {
			out = append(out, prefix+"tokens."+sym+"."+setting)
		}
	}
	return out
}

// chainNameRE: chain names fit the ledger's chain columns (VARCHAR(16)).
var chainNameRE = regexp.MustCompile(`^[A-Z0-9_-]{1,16}$`)

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// MasterKeyBytes decodes the 32-byte wallet master key from MasterKey.
func (c Config) MasterKeyBytes() ([]byte, error) {
	if c.MasterKey == "" {
		return nil, fmt.Errorf("%w: %s is not set", ErrInvalid, EnvMasterKey)
	}
	k, err := hex.DecodeString(strings.TrimPrefix(c.MasterKey.Reveal(), "0x"))
	if err != nil || len(k) != 32 {
		// Never echo the value.
		return nil, fmt.Errorf("%w: %s must be 64 hex characters (32 bytes)", ErrInvalid, EnvMasterKey)
	}
	return k, nil
}

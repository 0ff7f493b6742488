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
	"net"
	"net/url"
	"os"
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
}

// Token is one ERC20 payflow moves.
type Token struct {
	Address  string `json:"address"`
	Decimals int32  `json:"decimals"`
	// Dust: deposits below it are recorded but not announced. Empty = none.
	Dust string `json:"dust,omitempty"`
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

// TemporalConfig says where the Temporal frontend is.
type TemporalConfig struct {
	Address   string `json:"address"`
	Namespace string `json:"namespace"`
	TaskQueue string `json:"task_queue"`
}

// PaymentConfig holds the withdraw/pay policy knobs.
type PaymentConfig struct {
	// CollectionAddress pays when the requested from_address cannot cover an amount.
	CollectionAddress string `json:"collection_address"`
	// ApprovalThreshold: amounts above it wait for an operator. Empty = never.
	ApprovalThreshold string `json:"approval_threshold"`
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
	// SweepThreshold: deposit wallets holding more than this (per token) are
	// swept to the collection wallet by the hourly sweep schedule.
	SweepThreshold string `json:"sweep_threshold"`
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

// Config is everything payflow reads at start.
type Config struct {
	RMQ      RMQConfig        `json:"rmq_config"`
	ETH      ETHConfig        `json:"eth_config"`
	Tokens   map[string]Token `json:"tokens"`
	Temporal TemporalConfig   `json:"temporal"`
	Payment  PaymentConfig    `json:"payment"`
	// SignKey is the seed's "communication key": the HMAC secret of requests.
	SignKey Secret `json:"sign_key"`
	// MasterKey (64 hex chars) encrypts wallet keys. Only from the environment.
	MasterKey Secret `json:"-"`
	// HTTPAddr serves health and the read-only ledger API. Empty disables it.
	// The worker also serves its Prometheus /metrics there.
	HTTPAddr string `json:"http_addr"`
	// MetricsAddr (host:port) serves the starter's Prometheus /metrics.
	// Empty disables it. The worker serves its /metrics on HTTPAddr.
	MetricsAddr string `json:"metrics_addr"`
}

// Env variables that override the file. Documented in the README.
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
	EnvMetricsAddr       = "PAYFLOW_METRICS_ADDR"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid config")

// Default returns the seed defaults: queue names from SPEC §2, 20 confirmations.
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
		Temporal: TemporalConfig{Address: "127.0.0.1:7233", Namespace: "default", TaskQueue: "payflow"},
		Payment: PaymentConfig{
			ApprovalTimeout:  Duration{24 * time.Hour},
			ConfirmTimeout:   Duration{30 * time.Minute},
			TimestampSkew:    Duration{300 * time.Second},
			ReincludeTimeout: Duration{10 * time.Minute},
			SweepThreshold:   "100000",
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
	str(EnvRPCURL, &c.ETH.RPCURL)
	str(EnvWSURL, &c.ETH.WSURL)
	sec(EnvMySQLDSN, &c.ETH.DB.DSN)
	str(EnvTemporalAddress, &c.Temporal.Address)
	str(EnvTemporalNamespace, &c.Temporal.Namespace)
	sec(EnvSignKey, &c.SignKey)
	sec(EnvMasterKey, &c.MasterKey)
	str(EnvCollection, &c.Payment.CollectionAddress)
	str(EnvHTTPAddr, &c.HTTPAddr)
	str(EnvMetricsAddr, &c.MetricsAddr)
	if v, ok := lookup(EnvConfirmations); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%w: %s=%q is not an integer", ErrInvalid, EnvConfirmations, v)
		}
		c.ETH.ConfirmHeight = n
	}
	if v, ok := lookup(EnvChainID); ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %s=%q is not an integer", ErrInvalid, EnvChainID, v)
		}
		c.ETH.ChainID = n
	}
	return nil
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

// Validate reports every problem at once, each naming the field to fix. The
// sign key is not checked here: see RequireSignKey.
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
	if c.ETH.Chain == "" {
		bad("eth_config.chain is required")
	}
	if c.ETH.ChainID <= 0 {
		bad("eth_config.chainId must be > 0 (or %s)", EnvChainID)
	}
	if !strings.HasPrefix(c.ETH.RPCURL, "http") {
		bad("eth_config.rpcUrl must be an http(s) URL, got %q", c.ETH.RPCURL)
	}
	if !strings.HasPrefix(c.ETH.WSURL, "ws") {
		bad("eth_config.wsUrl must be a ws(s) URL, got %q", c.ETH.WSURL)
	}
	if c.ETH.ConfirmHeight < 1 {
		bad("eth_config.confirmHeight must be >= 1, got %d", c.ETH.ConfirmHeight)
	}
	if c.ETH.MaxFeeGwei < 1 {
		bad("eth_config.maxFeeGwei must be >= 1")
	}
	if c.ETH.DB.DSN == "" && (c.ETH.DB.User == "" || c.ETH.DB.Host == "" || c.ETH.DB.Database == "") {
		bad("eth_config.dbConfig needs user, host and database (or %s)", EnvMySQLDSN)
	}
	if len(c.Tokens) == 0 {
		bad("tokens must list at least one token")
	}
	for sym, t := range c.Tokens {
		if !protocol.IsAddress(t.Address) {
			bad("tokens.%s.address %q is not a 0x address", sym, t.Address)
		}
		if t.Dust != "" {
			if d, err := decimal.NewFromString(t.Dust); err != nil || d.Sign() < 0 {
				bad("tokens.%s.dust %q must be a decimal >= 0", sym, t.Dust)
			}
		}
		if t.Decimals < 0 || t.Decimals > MaxDecimals {
			// The ledger keeps 18 decimal places: more would be rounded
			// silently, and the ledger would disagree with the chain.
			bad("tokens.%s.decimals %d: must be 0 to %d (the ledger keeps %d decimal places)", sym, t.Decimals,
				MaxDecimals, MaxDecimals)
		}
	}
	if c.Temporal.Address == "" || c.Temporal.Namespace == "" || c.Temporal.TaskQueue == "" {
		bad("temporal needs address, namespace and task_queue")
	}
	if c.Payment.CollectionAddress != "" && !protocol.IsAddress(c.Payment.CollectionAddress) {
		bad("payment.collection_address %q is not a 0x address", c.Payment.CollectionAddress)
	}
	if c.Payment.ApprovalThreshold != "" {
		if d, err := decimal.NewFromString(c.Payment.ApprovalThreshold); err != nil || d.Sign() <= 0 {
			bad("payment.approval_threshold %q must be a positive decimal", c.Payment.ApprovalThreshold)
		}
	}
	if d, err := decimal.NewFromString(c.Payment.SweepThreshold); err != nil || d.Sign() <= 0 {
		bad("payment.sweep_threshold %q must be a positive decimal", c.Payment.SweepThreshold)
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
	if c.HTTPAddr != "" && c.HTTPAddr == c.MetricsAddr {
		bad("metrics_addr %q is http_addr too: the worker listens on http_addr, the starter on metrics_addr", c.MetricsAddr)
	}
	return errors.Join(errs...)
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

// TokenByAddress returns the symbol and config of the token at address.
func (c Config) TokenByAddress(address string) (string, Token, bool) {
	for sym, t := range c.Tokens {
		if strings.EqualFold(t.Address, address) {
			return sym, t, true
		}
	}
	return "", Token{}, false
}

// Token returns the token config for symbol, upper-cased.
func (c Config) Token(symbol string) (Token, bool) {
	t, ok := c.Tokens[strings.ToUpper(symbol)]
	return t, ok
}

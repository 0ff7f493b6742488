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

const seedShape = `{
 "rmq_config": {"sub_addr": "amqp://m2pool:m2pool@localhost:5672",
   "pay": {"queue": "pay.auto.queue", "exchange": "pay.exchange", "routing": ["pay.auto.routing.key"]}},
 "eth_config": {"rpcUrl": "http://localhost:8545", "wsUrl": "ws://localhost:8546", "confirmHeight": 20, "chainId": 1,
   "dbConfig": {"user": "root", "password": "pw", "host": "127.0.0.1", "port": 3306, "database": "payment",
     "maxOpenConns": 20, "maxIdleCoons": 20, "connMaxLife": 120},
   "native": {"approval_threshold": "10", "sweep_threshold": "5"}},
 "tokens": {"USDT": {"address": "0xdAC17F958D2ee523a2206206994597C13D831ec7", "decimals": 6,
   "approval_threshold": "50000", "sweep_threshold": "1000"}},
 "sign_key": "secret-from-file"
}`

func write(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSeedShape(t *testing.T) {
	cfg, err := Load(write(t, seedShape))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ETH.ConfirmHeight != 20 || cfg.RMQ.Pay.RoutingKey() != "pay.auto.routing.key" || cfg.RMQ.Withdraw.Queue != "pay.withdraw.queue" {
		t.Fatalf("unexpected config %+v", cfg)
	}
	if got := cfg.ETH.DB.MySQLDSN(); !strings.HasPrefix(got, "root:pw@tcp(127.0.0.1:3306)/payment?") {
		t.Errorf("dsn = %s", got)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv(EnvConfirmations, "3")
	t.Setenv(EnvSignKey, "from-env")
	t.Setenv(EnvAMQPURL, "amqp://guest:guest@127.0.0.1:5682/")
	cfg, err := Load(write(t, seedShape))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ETH.ConfirmHeight != 3 || cfg.SignKey.Reveal() != "from-env" || cfg.RMQ.SubAddr.Reveal() != "amqp://guest:guest@127.0.0.1:5682/" {
		t.Fatalf("env not applied: %d %v", cfg.ETH.ConfirmHeight, cfg.RMQ.SubAddr)
	}
	t.Setenv(EnvConfirmations, "three")
	if _, err := Load(write(t, seedShape)); err == nil || !strings.Contains(err.Error(), EnvConfirmations) {
		t.Fatalf("bad env value not reported: %v", err)
	}
}

func TestValidationNamesEveryProblem(t *testing.T) {
	bad := strings.NewReplacer(`"rpcUrl": "http://localhost:8545"`, `"rpcUrl": "localhost"`,
		`"confirmHeight": 20`, `"confirmHeight": 0`, `"0xdAC17F958D2ee523a2206206994597C13D831ec7"`, `"nope"`).Replace(seedShape)
	_, err := Load(write(t, bad))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"eth_config.rpcUrl", "eth_config.confirmHeight", "tokens.USDT.address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if _, err := Load(write(t, `{"eth_config": `)); err == nil || !strings.Contains(err.Error(), "parsing config") {
		t.Errorf("malformed file: %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg, err := Load(write(t, seedShape))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MasterKey = Secret(strings.Repeat("ab", 32))
	b, _ := json.Marshal(cfg)
	for _, out := range []string{string(b), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)} {
		for _, secret := range []string{"secret-from-file", "m2pool:m2pool", "abababab", `"pw"`} {
			if strings.Contains(out, secret) {
				t.Errorf("secret %q leaked: %s", secret, out)
			}
		}
	}
	t.Setenv(EnvMasterKey, "short")
	cfg.MasterKey = "short"
	if _, err := cfg.MasterKeyBytes(); err == nil || strings.Contains(err.Error(), "short") {
		t.Errorf("bad master key error leaks or is missing: %v", err)
	}
}

// TestTokenDecimalsTheLedgerCanHold: a token with more than 18
// decimals would be rounded silently by the ledger's DECIMAL(65,18); it is
// refused at start, naming the field.
func TestTokenDecimalsTheLedgerCanHold(t *testing.T) {
	for _, dec := range []string{"19", "24", "-1"} {
		_, err := Load(write(t, strings.Replace(seedShape, `"decimals": 6`, `"decimals": `+dec, 1)))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "tokens.USDT.decimals") {
			t.Errorf("decimals %s: %v", dec, err)
		}
	}
	if _, err := Load(write(t, strings.Replace(seedShape, `"decimals": 6`, `"decimals": 18`, 1))); err != nil {
		t.Errorf("decimals 18: %v", err)
	}
}

// TestOnlyTheStarterNeedsTheSignKey: the worker never verifies
// requests, so a config without the communication key loads; the starter
// asks for it with RequireSignKey.
func TestOnlyTheStarterNeedsTheSignKey(t *testing.T) {
	t.Setenv(EnvSignKey, "")
	cfg, err := Load(write(t, strings.Replace(seedShape, `"sign_key": "secret-from-file"`, `"sign_key": ""`, 1)))
	if err != nil {
		t.Fatalf("a config without sign_key: %v", err)
	}
	if err := cfg.RequireSignKey(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "sign_key") {
		t.Errorf("RequireSignKey: %v", err)
	}
}

// TestOnlyTheWorkerNeedsTheSigner: a config without signer.socket loads
// (the starter and payflowctl's reads need no signer); the worker asks for
// it with RequireSigner, and PAYFLOW_SIGNER_SOCKET provides it.
func TestOnlyTheWorkerNeedsTheSigner(t *testing.T) {
	t.Setenv(EnvSignerSocket, "")
	cfg, err := Load(write(t, seedShape))
	if err != nil {
		t.Fatalf("a config without signer.socket: %v", err)
	}
	if err := cfg.RequireSigner(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "signer.socket") ||
		!strings.Contains(err.Error(), EnvSignerSocket) {
		t.Errorf("RequireSigner without a socket: %v", err)
	}
	t.Setenv(EnvSignerSocket, "/run/payflow/signer.sock")
	if cfg, err = Load(write(t, seedShape)); err != nil {
		t.Fatal(err)
	}
	if err := cfg.RequireSigner(); err != nil || cfg.Signer.Socket != "/run/payflow/signer.sock" {
		t.Errorf("RequireSigner with %s set: %v (socket %q)", EnvSignerSocket, err, cfg.Signer.Socket)
	}
}

// metrics_addr is the starter's /metrics: off by default, host:port when set
// (file or PAYFLOW_METRICS_ADDR), never the worker's http_addr.
func TestMetricsAddr(t *testing.T) {
	cfg, err := Load(write(t, seedShape))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsAddr != "" {
		t.Fatalf("metrics_addr defaults to %q, want off", cfg.MetricsAddr)
	}
	withAddrs := strings.Replace(seedShape, `"sign_key"`, `"http_addr": "127.0.0.1:8380", "metrics_addr": "127.0.0.1:8381", "sign_key"`, 1)
	if cfg, err = Load(write(t, withAddrs)); err != nil || cfg.MetricsAddr != "127.0.0.1:8381" {
		t.Fatalf("metrics_addr = %q, %v", cfg.MetricsAddr, err)
	}
	t.Setenv(EnvMetricsAddr, ":9101")
	if cfg, err = Load(write(t, withAddrs)); err != nil || cfg.MetricsAddr != ":9101" {
		t.Fatalf("%s not applied: %q, %v", EnvMetricsAddr, cfg.MetricsAddr, err)
	}
	for _, bad := range []string{"8381", "127.0.0.1:", "http://127.0.0.1:8381", "127.0.0.1:8380"} {
		t.Setenv(EnvMetricsAddr, bad)
		if _, err := Load(write(t, withAddrs)); err == nil || !strings.Contains(err.Error(), "metrics_addr") {
			t.Errorf("metrics_addr %q accepted: %v", bad, err)
		}
	}
}

// The relay publishes an answer left unpublished for 30 s by default; a
// file may say otherwise, never 0.
func TestAnswerRelay(t *testing.T) {
	cfg, err := Load(write(t, seedShape))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AnswerRelay.Grace.Seconds() != 30 || cfg.AnswerRelay.Interval.Seconds() != 10 {
		t.Fatalf("answer_relay defaults to %+v, want 30s and 10s", cfg.AnswerRelay)
	}
	set := strings.Replace(seedShape, `"sign_key"`, `"answer_relay": {"grace": "5s", "interval": 1}, "sign_key"`, 1)
	if cfg, err = Load(write(t, set)); err != nil || cfg.AnswerRelay.Grace.Seconds() != 5 || cfg.AnswerRelay.Interval.Seconds() != 1 {
		t.Fatalf("answer_relay = %+v, %v", cfg.AnswerRelay, err)
	}
	zero := strings.Replace(seedShape, `"sign_key"`, `"answer_relay": {"grace": "0s"}, "sign_key"`, 1)
	if _, err := Load(write(t, zero)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "answer_relay.grace") {
		t.Errorf("a zero grace accepted: %v", err)
	}
}

const chainsShape = `{
 "rmq_config": {"sub_addr": "amqp://guest:guest@localhost:5672"},
 "eth_config": {"dbConfig": {"user": "root", "host": "127.0.0.1", "port": 3306, "database": "payment"}},
 "chains": {
  "ETH": {"chainId": 1, "rpcUrl": "http://eth:8545", "wsUrl": "ws://eth:8546", "confirmHeight": 12, "maxFeeGwei": 300,
    "native": {"symbol": "eth", "approval_threshold": "10", "sweep_threshold": "5"},
    "collection_address": "0x1111111111111111111111111111111111111111",
    "tokens": {"usdt": {"address": "0xdAC17F958D2ee523a2206206994597C13D831ec7", "decimals": 6,
                        "approval_threshold": "50000", "sweep_threshold": "1000"},
               "USDC": {"address": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "decimals": 6,
                        "approval_threshold": "40000", "sweep_threshold": "800"}}},
  "bsc": {"chainId": 56, "rpcUrl": "http://bsc:8545", "wsUrl": "ws://bsc:8546", "confirmHeight": 15,
    "native": {"symbol": "BNB", "dust": "0.001", "approval_threshold": "30", "sweep_threshold": "2"},
    "tokens": {"USDT": {"address": "0x55d398326f99059fF775485246999027B3197955", "decimals": 18,
                        "approval_threshold": "20000", "sweep_threshold": "500"}}}
 }
}`

func TestChainsMap(t *testing.T) {
	cfg, err := Load(write(t, chainsShape))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ChainNames(); strings.Join(got, ",") != "BSC,ETH" {
		t.Fatalf("chains = %v", got)
	}
	bsc, ok := cfg.Chain("bsc")
	if !ok || bsc.ChainID != 56 || bsc.ConfirmHeight != 15 || bsc.MaxFeeGwei != 500 || bsc.SweepThreshold != "" {
		t.Fatalf("bsc = %+v (defaults: maxFeeGwei from the top level; no chain-wide sweep_threshold)", bsc)
	}
	bnb, ok := bsc.Asset("bnb")
	if !ok || !bnb.Native || bnb.Decimals != 18 || bnb.DustLimit().String() != "0.001" ||
		bnb.ApprovalThreshold != "30" || bnb.SweepThreshold != "2" {
		t.Fatalf("native = %+v %v", bnb, ok)
	}
	usdt, ok := bsc.Asset("USDT")
	if !ok || usdt.Native || usdt.Decimals != 18 || usdt.Address != "0x55d398326f99059ff775485246999027b3197955" ||
		usdt.ApprovalThreshold != "20000" || usdt.SweepThreshold != "500" {
		t.Fatalf("token = %+v", usdt)
	}
	eth, _ := cfg.Chain("ETH")
	if _, ok := eth.Asset("usdt"); !ok {
		t.Fatal("token symbols are not case-insensitive")
	}
	if _, ok := eth.Asset("BNB"); ok {
		t.Fatal("BNB is BSC's, not ETH's")
	}
	if got := strings.Join(eth.Symbols(), ","); got != "ETH,USDC,USDT" {
		t.Fatalf("symbols = %s", got)
	}
	if cfg.TaskQueue("ETH") != "payflow" || cfg.TaskQueue("BSC") != "payflow.BSC" {
		t.Fatalf("task queues %s %s", cfg.TaskQueue("ETH"), cfg.TaskQueue("BSC"))
	}
	// The chain overrides apply to eth_config's chain inside the map.
	t.Setenv(EnvRPCURL, "http://other:8545")
	cfg, err = Load(write(t, chainsShape))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Chains["ETH"].RPCURL != "http://other:8545" || cfg.Chains["BSC"].RPCURL != "http://bsc:8545" {
		t.Fatalf("override went to %+v", cfg.Chains)
	}
}

func TestSeedShapeIsOneChainNamedETH(t *testing.T) {
	cfg, err := Load(write(t, seedShape))
	if err != nil {
		t.Fatal(err)
	}
	eth, ok := cfg.Chain("ETH")
	if len(cfg.Chains) != 1 || !ok || eth.RPCURL != "http://localhost:8545" || eth.ChainID != 1 || eth.ConfirmHeight != 20 {
		t.Fatalf("chains = %+v", cfg.Chains)
	}
	if a, ok := eth.Asset("ETH"); !ok || !a.Native || a.ApprovalThreshold != "10" || a.SweepThreshold != "5" {
		t.Fatalf("the seed's chain has no native ETH with eth_config.native's thresholds: %+v", a)
	}
	if a, ok := eth.Asset("USDT"); !ok || a.Decimals != 6 || a.ApprovalThreshold != "50000" || a.SweepThreshold != "1000" {
		t.Fatalf("the seed's tokens are not the chain's: %+v", a)
	}
}

func TestChainsValidationNamesEveryField(t *testing.T) {
	bad := strings.NewReplacer(`"rpcUrl": "http://bsc:8545"`, `"rpcUrl": "bsc"`, `"confirmHeight": 15`, `"confirmHeight": 0`,
		`"0x55d398326f99059fF775485246999027B3197955"`, `"nope"`, `"symbol": "BNB", "dust": "0.001"`, `"symbol": "", "dust": "x"`,
		`"chainId": 56`, `"chainId": 1`, `"USDC": {"address": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"`,
		`"ETH": {"address": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"`).Replace(chainsShape)
	_, err := Load(write(t, bad))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"chains.BSC.rpcUrl", "chains.BSC.confirmHeight", "chains.BSC.tokens.USDT.address",
		"chains.BSC.native.symbol", "chains.BSC.native.dust", "chainId 1 is chains.", "chains.ETH.tokens.ETH is also the native"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	t.Setenv(EnvChainID, "5")
	if _, err := Load(write(t, strings.Replace(chainsShape, `"ETH": {`, `"ARB": {`, 1))); err == nil ||
		!strings.Contains(err.Error(), EnvChainID) {
		t.Errorf("an override for a chain the map does not list: %v", err)
	}
}

// TestEveryAssetStatesItsOwnAmounts: approval and
// sweep thresholds are per chain and asset. A config that leaves an asset
// without its own value, or states one number for several assets, is
// refused at start, naming the asset fields to set; dust stays optional.
func TestEveryAssetStatesItsOwnAmounts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		base  string
		edits []string // old, new pairs applied to base
		want  []string // each must appear in the error; none: accepted
	}{
		{name: "per-asset chains accepted", base: chainsShape},
		{name: "per-asset seed shape accepted", base: seedShape},
		{name: "dust stays optional", base: chainsShape, edits: []string{`"dust": "0.001", `, ``}},
		{name: "native without approval_threshold", base: chainsShape,
			edits: []string{`"symbol": "BNB", "dust": "0.001", "approval_threshold": "30", `, `"symbol": "BNB", `},
			want:  []string{"chains.BSC.native.approval_threshold is required: every asset states its own"}},
		{name: "token without sweep_threshold", base: chainsShape,
			edits: []string{`"approval_threshold": "40000", "sweep_threshold": "800"`, `"approval_threshold": "40000"`},
			want:  []string{"chains.ETH.tokens.USDC.sweep_threshold is required"}},
		{name: "not a positive decimal", base: chainsShape,
			edits: []string{`"approval_threshold": "20000"`, `"approval_threshold": "-1"`, `"sweep_threshold": "5"`, `"sweep_threshold": "five"`},
			want:  []string{`chains.BSC.tokens.USDT.approval_threshold "-1" must be a positive decimal`, `chains.ETH.native.sweep_threshold "five"`}},
		{name: "shared payment.approval_threshold", base: chainsShape,
			edits: []string{`"chains": {`, `"payment": {"approval_threshold": "50000"}, "chains": {`},
			want: []string{`payment.approval_threshold "50000" is one number for every asset`,
				"set chains.BSC.native.approval_threshold, chains.BSC.tokens.USDT.approval_threshold, chains.ETH.native.approval_threshold, " +
					"chains.ETH.tokens.USDC.approval_threshold, chains.ETH.tokens.USDT.approval_threshold instead"}},
		{name: "shared payment.sweep_threshold", base: chainsShape,
			edits: []string{`"chains": {`, `"payment": {"sweep_threshold": "100000"}, "chains": {`},
			want:  []string{`payment.sweep_threshold "100000" is one number`, "chains.ETH.tokens.USDT.sweep_threshold"}},
		{name: "shared chain sweep_threshold", base: chainsShape,
			edits: []string{`"confirmHeight": 15,`, `"confirmHeight": 15, "sweep_threshold": "100000",`},
			want: []string{`chains.BSC.sweep_threshold "100000" is one number for all the chain's assets`,
				"set chains.BSC.native.sweep_threshold, chains.BSC.tokens.USDT.sweep_threshold instead"}},
		{name: "seed shape without the native coin's values", base: seedShape,
			edits: []string{`,
   "native": {"approval_threshold": "10", "sweep_threshold": "5"}`, ``},
			want: []string{"eth_config.native.approval_threshold is required", "eth_config.native.sweep_threshold is required"}},
		{name: "seed shape token without approval_threshold", base: seedShape,
			edits: []string{`"approval_threshold": "50000", `, ``},
			want:  []string{"tokens.USDT.approval_threshold is required"}},
		{name: "seed shape shared payment.approval_threshold", base: seedShape,
			edits: []string{`"sign_key"`, `"payment": {"approval_threshold": "50000"}, "sign_key"`},
			want:  []string{"set eth_config.native.approval_threshold, tokens.USDT.approval_threshold instead"}},
		{name: "velocity limits accepted", base: chainsShape,
			edits: []string{`"approval_threshold": "20000", "sweep_threshold": "500"`,
				`"approval_threshold": "20000", "sweep_threshold": "500", "velocity_wallet_24h": "100000", "velocity_recipient_24h": "2500.5"`}},
		{name: "velocity limits not positive decimals", base: chainsShape,
			edits: []string{`"approval_threshold": "20000", "sweep_threshold": "500"`,
				`"approval_threshold": "20000", "sweep_threshold": "500", "velocity_wallet_24h": "0", "velocity_recipient_24h": "lots"`,
				`"symbol": "eth", "approval_threshold": "10"`, `"symbol": "eth", "velocity_wallet_24h": "-5", "approval_threshold": "10"`},
			want: []string{`chains.BSC.tokens.USDT.velocity_wallet_24h "0" must be a positive decimal`,
				`chains.BSC.tokens.USDT.velocity_recipient_24h "lots" must be a positive decimal`,
				`chains.ETH.native.velocity_wallet_24h "-5" must be a positive decimal`}},
		{name: "eth_config.native beside chains", base: chainsShape,
			edits: []string{`"eth_config": {`, `"eth_config": {"native": {"approval_threshold": "1", "sweep_threshold": "1"}, `},
			want:  []string{"eth_config.native describes the native coin of the seed shape only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.base
			for i := 0; i < len(tc.edits); i += 2 {
				if !strings.Contains(body, tc.edits[i]) {
					t.Fatalf("edit %q does not apply", tc.edits[i])
				}
				body = strings.Replace(body, tc.edits[i], tc.edits[i+1], 1)
			}
			_, err := Load(write(t, body))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// The Temporal connection: plaintext unless tls is present, TLS fields from
// the file or the env (any of which turns TLS on), and an API key only over
// TLS, from one place, never printed.
func TestTemporalConnection(t *testing.T) {
	cfg, err := Load(write(t, seedShape))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Temporal.TLS != nil || cfg.Temporal.APIKey != "" {
		t.Fatalf("default Temporal connection is not plaintext without a key: %+v", cfg.Temporal)
	}
	withTemporal := func(temporal string) string {
		return strings.Replace(seedShape, `"sign_key"`, `"temporal": `+temporal+`, "sign_key"`, 1)
	}
	cfg, err = Load(write(t, withTemporal(`{"address": "t.example:7233", "namespace": "payments", "task_queue": "payflow", "tls": {}}`)))
	if err != nil || cfg.Temporal.TLS == nil || *cfg.Temporal.TLS != (TemporalTLS{}) {
		t.Fatalf("empty tls object: %+v, %v", cfg.Temporal.TLS, err)
	}

	t.Setenv(EnvTemporalTLSCAFile, "/etc/payflow/ca.pem")
	t.Setenv(EnvTemporalTLSServerName, "temporal.internal")
	if cfg, err = Load(write(t, seedShape)); err != nil || cfg.Temporal.TLS == nil ||
		*cfg.Temporal.TLS != (TemporalTLS{CAFile: "/etc/payflow/ca.pem", ServerName: "temporal.internal"}) {
		t.Fatalf("TLS env not applied: %+v, %v", cfg.Temporal.TLS, err)
	}
	t.Setenv(EnvTemporalTLSCertFile, "/etc/payflow/client.pem")
	if _, err := Load(write(t, seedShape)); err == nil || !strings.Contains(err.Error(), "temporal.tls.cert_file and temporal.tls.key_file") {
		t.Fatalf("a client certificate without its key accepted: %v", err)
	}
	t.Setenv(EnvTemporalTLSKeyFile, "/etc/payflow/client.key")
	t.Setenv(EnvTemporalAPIKey, "key-from-env")
	if cfg, err = Load(write(t, seedShape)); err != nil || cfg.Temporal.APIKey.Reveal() != "key-from-env" || cfg.Temporal.TLS.KeyFile == "" {
		t.Fatalf("mTLS and API key env not applied: %+v, %v", cfg.Temporal, err)
	}
	if s := fmt.Sprintf("%v %+v", cfg.Temporal, cfg.Temporal); strings.Contains(s, "key-from-env") {
		t.Fatalf("API key printed: %s", s)
	}
	if _, err := Load(write(t, withTemporal(`{"address": "t.example:7233", "namespace": "payments", "task_queue": "payflow", "tls": {}, "api_key_file": "/k"}`))); err == nil ||
		!strings.Contains(err.Error(), "keep one") {
		t.Fatalf("api_key_file beside %s accepted: %v", EnvTemporalAPIKey, err)
	}
}

func TestTemporalAPIKeyNeedsTLS(t *testing.T) {
	t.Setenv(EnvTemporalAPIKey, "key-from-env")
	if _, err := Load(write(t, seedShape)); err == nil || !strings.Contains(err.Error(), "needs temporal.tls") {
		t.Fatalf("an API key over plaintext accepted: %v", err)
	}
}

func TestAssetVelocityLimits(t *testing.T) {
	body := strings.Replace(chainsShape, `"symbol": "BNB", "dust": "0.001",`,
		`"symbol": "BNB", "dust": "0.001", "velocity_wallet_24h": "75", "velocity_recipient_24h": "12.5",`, 1)
	cfg, err := Load(write(t, body))
	if err != nil {
		t.Fatal(err)
	}
	bsc, _ := cfg.Chain("BSC")
	bnb, _ := bsc.Asset("BNB")
	w, r := bnb.VelocityLimits()
	if w.String() != "75" || r.String() != "12.5" || !bnb.HasVelocityLimit() {
		t.Fatalf("BNB limits = %s, %s", w, r)
	}
	usdt, _ := bsc.Asset("USDT")
	if w, r := usdt.VelocityLimits(); !w.IsZero() || !r.IsZero() || usdt.HasVelocityLimit() {
		t.Fatalf("USDT has no limits, got %s, %s", w, r)
	}
}

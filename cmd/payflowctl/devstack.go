package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/shopspring/decimal"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/token"
	"payflow/config"
	"payflow/custody/kms"
	"payflow/custody/signerapi"
	"payflow/deploy"
	"payflow/internal/stackfile"
	"payflow/ledger"
)

type devSecrets struct {
	SignKey string `json:"sign_key"`
	// APIToken is the bearer token of the workers' HTTP API.
	APIToken string `json:"api_token"`
	// MasterKey is the legacy master key of a dev stack made before
	// payflow-signer: devstack migrates the wallets it sealed, and makes
	// none (a new stack has none).
	MasterKey string `json:"master_key,omitempty"`
	FaucetKey string `json:"faucet_private_key"`
	// TokenAddr and GenesisHex are the one chain's of a secrets.json written
	// before the dev stack ran several chains; loadSecrets moves them to
	// Chains[ETH].
	TokenAddr  string                   `json:"token_address,omitempty"`
	GenesisHex string                   `json:"genesis_hash,omitempty"`
	Chains     map[string]*chainSecrets `json:"chains,omitempty"`
	// BTCFaucetWIF is the dev Bitcoin faucet's key, whose address btcd
	// mines to (payflowctl btc-faucet makes it).
	BTCFaucetWIF string `json:"btc_faucet_wif,omitempty"`
}

// chainSecrets is what devstack remembers of one dev chain: its genesis (a
// new one means a new chain, whose tokens must be deployed again) and its
// token contracts.
type chainSecrets struct {
	Genesis string            `json:"genesis_hash"`
	Tokens  map[string]string `json:"tokens"` // symbol -> address
}

// chainSpec is one -chain flag: NAME,NATIVE_SYMBOL,RPC_URL,WS_URL.
type chainSpec struct{ Name, Native, RPCURL, WSURL string }

type chainList []chainSpec

func (l *chainList) String() string {
	var out []string
	for _, c := range *l {
		out = append(out, strings.Join([]string{c.Name, c.Native, c.RPCURL, c.WSURL}, ","))
	}
	return strings.Join(out, " ")
}

func (l *chainList) Set(v string) error {
	p := strings.Split(v, ",")
	if len(p) != 4 || p[0] == "" || p[1] == "" || !strings.HasPrefix(p[2], "http") || !strings.HasPrefix(p[3], "ws") {
		return fmt.Errorf("-chain %q: want NAME,NATIVE_SYMBOL,http://RPC,ws://WS", v)
	}
	for _, c := range *l {
		if strings.EqualFold(c.Name, p[0]) {
			return fmt.Errorf("-chain %s given twice", p[0])
		}
	}
	*l = append(*l, chainSpec{Name: strings.ToUpper(p[0]), Native: strings.ToUpper(p[1]), RPCURL: p[2], WSURL: p[3]})
	return nil
}

// workerAddrs is the -worker flags: each further worker process's name and
// the address of its ledger API and /metrics (NAME=HOST:PORT).
type workerAddrs map[string]string

func (w workerAddrs) String() string {
	var out []string
	for name, addr := range w {
		out = append(out, name+"="+addr)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (w workerAddrs) Set(v string) error {
	name, addr, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(name, "worker-") || len(name) == len("worker-") || !strings.Contains(addr, ":") {
		return fmt.Errorf("-worker %q: want worker-N=HOST:PORT", v)
	}
	if _, dup := w[name]; dup {
		return fmt.Errorf("-worker %s given twice", name)
	}
	w[name] = addr
	return nil
}

// Dev wallet plan: kind, label, units of each token to hold. Every wallet
// also holds devNative of the chain's native coin. payflow-signer creates
// the keys for the first chain (hot wallets as KMS keys, the others
// envelope-sealed); every other chain registers the same addresses, since a
// key signs on every EVM chain. "hot-kms" is a hot wallet that is a KMS key
// even on a stack whose "hot" was migrated from the legacy master key (an
// envelope-sealed key then).
var devWallets = []struct {
	kind   ledger.WalletKind
	label  string
	tokens int64
}{
	{ledger.KindCollection, "collection", 1_000_000},
	{ledger.KindHot, "hot", 100_000},
	{ledger.KindHot, "hot-kms", 100_000},
	{ledger.KindGas, "gas", 0},
	{ledger.KindDeposit, "user-1", 10_000},
	{ledger.KindDeposit, "user-2", 10_000},
	{ledger.KindDeposit, "user-3", 10_000},
}

// devToken is what devstack does with a dev token; TestUSDT and TestUSDC
// both have it.
type devToken interface {
	BalanceOf(opts *bind.CallOpts, owner common.Address) (*big.Int, error)
	Transfer(opts *bind.TransactOpts, to common.Address, value *big.Int) (*types.Transaction, error)
	Mint(opts *bind.TransactOpts, to common.Address, value *big.Int) (*types.Transaction, error)
}

// devTokens are deployed on every dev chain, all with 6 decimals: a
// USDT-like one whose transfer returns nothing, and a standard ERC20.
var devTokens = []struct {
	symbol, contract string
	deploy           func(*bind.TransactOpts, bind.ContractBackend) (common.Address, *types.Transaction, error)
	bind             func(common.Address, bind.ContractBackend) (devToken, error)
}{
	{"USDT", "TestUSDT",
		func(o *bind.TransactOpts, b bind.ContractBackend) (common.Address, *types.Transaction, error) {
			a, tx, _, err := token.DeployTestUSDT(o, b)
			return a, tx, err
		},
		func(a common.Address, b bind.ContractBackend) (devToken, error) { return token.NewTestUSDT(a, b) }},
	{"USDC", "TestUSDC",
		func(o *bind.TransactOpts, b bind.ContractBackend) (common.Address, *types.Transaction, error) {
			a, tx, _, err := token.DeployTestUSDC(o, b)
			return a, tx, err
		},
		func(a common.Address, b bind.ContractBackend) (devToken, error) { return token.NewTestUSDC(a, b) }},
}

const devTokenDecimals = 6

// assetAmounts are one asset's amount-valued settings, in its own units:
// approval and sweep thresholds, hot tier bounds, and the 24 h velocity
// limits per wallet and per recipient.
type assetAmounts struct{ approval, sweep, ceiling, floor, velocityWallet, velocityRecipient string }

// devAmounts are the dev chains' approval and sweep thresholds, hot tier
// bounds and velocity limits, by chain and asset: every asset has its own,
// and no two alike, so code that reads one asset's number for another is
// caught by the tests.
// Sweep thresholds stay above what devstack gives each deposit wallet (100
// of the native coin, 10,000 of each token), so the hourly sweep does not
// empty the wallets the tests pay from. Hot ceilings stay far above what
// the hot tier holds (the collection and hot wallets: 300 of the native
// coin, 1,200,000 of each token, plus what sweeps bring), so the treasury
// pass never moves the money the tests pay from to cold (the treasury test
// runs with a ceiling of its own); floors stay below it, so the floor alert
// stays quiet. Velocity limits are far above what the tests and benchmarks
// send from any dev wallet in a day, except ETH's USDC: 100,000 per wallet,
// which only the velocity tests reach, each paying out of its own fresh wallet, with
// payments below USDC's approval threshold. A chain not listed gets the
// "default" entry (its native coin under the key "native").
var devAmounts = map[string]map[string]assetAmounts{
	"ETH": {"native": {approval: "10", sweep: "500", ceiling: "100000", floor: "5", velocityWallet: "1000000", velocityRecipient: "900000"},
		"USDT": {approval: "50000", sweep: "20000", ceiling: "50000000", floor: "2000", velocityWallet: "50000000", velocityRecipient: "40000000"},
		"USDC": {approval: "40000", sweep: "15000", ceiling: "40000000", floor: "1500", velocityWallet: "100000", velocityRecipient: "30000000"}},
	"BSC": {"native": {approval: "30", sweep: "400", ceiling: "90000", floor: "6", velocityWallet: "2000000", velocityRecipient: "1900000"},
		"USDT": {approval: "45000", sweep: "25000", ceiling: "45000000", floor: "2500", velocityWallet: "60000000", velocityRecipient: "55000000"},
		"USDC": {approval: "35000", sweep: "12000", ceiling: "35000000", floor: "1200", velocityWallet: "70000000", velocityRecipient: "65000000"}},
	"default": {"native": {approval: "20", sweep: "300", ceiling: "80000", floor: "4", velocityWallet: "3000000", velocityRecipient: "2900000"},
		"USDT": {approval: "30000", sweep: "18000", ceiling: "30000000", floor: "1800", velocityWallet: "80000000", velocityRecipient: "75000000"},
		"USDC": {approval: "25000", sweep: "16000", ceiling: "25000000", floor: "1100", velocityWallet: "90000000", velocityRecipient: "85000000"}},
}

// devColdAddress is a dev chain's cold address: the last 20 bytes of a hash
// of the chain's name. No key is known for it (nobody can find one), so
// payflow cannot hold it: the money swept there stays there, as in a real
// cold wallet whose key is offline. The same on every run of devstack.
func devColdAddress(chainName string) string {
	return strings.ToLower(common.BytesToAddress(crypto.Keccak256([]byte("payflow dev cold wallet " + chainName))).Hex())
}

// devAmountsOf returns chainName's thresholds of asset ("native" or a token
// symbol).
func devAmountsOf(chainName, asset string) assetAmounts {
	byAsset, ok := devAmounts[chainName]
	if !ok {
		byAsset = devAmounts["default"]
	}
	return byAsset[asset]
}

var (
	ether = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	// devNative is what each dev wallet is given of the native coin, when
	// it holds less than devNativeLow.
	devNative    = new(big.Int).Mul(big.NewInt(100), ether)
	devNativeLow = new(big.Int).Mul(big.NewInt(10), ether)
	transferSig  = crypto.Keccak256Hash([]byte("Transfer(address,address,uint256)"))
)

func cmdDevstack(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("devstack", flag.ExitOnError)
	dir := fs.String("dir", ".dev", "dev data directory")
	dsn := fs.String("mysql-dsn", "", "MariaDB DSN")
	amqpURL := fs.String("amqp-url", "", "RabbitMQ URL")
	tAddr := fs.String("temporal-address", "127.0.0.1:7233", "Temporal frontend")
	tUI := fs.String("temporal-ui-url", "http://127.0.0.1:8233", "Temporal Web UI")
	var chains chainList
	fs.Var(&chains, "chain", "a dev chain `NAME,NATIVE_SYMBOL,RPC_URL,WS_URL` (repeatable; the first is the stack's first chain; default ETH on -eth-rpc-url and -eth-ws-url)")
	rpcURL := fs.String("eth-rpc-url", "http://127.0.0.1:8545", "geth HTTP of the one chain ETH, when no -chain is given")
	wsURL := fs.String("eth-ws-url", "ws://127.0.0.1:8546", "geth WebSocket of the one chain ETH, when no -chain is given")
	confs := fs.Int("confirmations", 3, "confirmations on the dev chains")
	httpAddr := fs.String("http-addr", "127.0.0.1:8380", "payflow HTTP (health, ledger API)")
	promURL := fs.String("prometheus-url", "", "dev Prometheus server, written to stack.json")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:8381", "the starter's Prometheus /metrics (config metrics_addr)")
	kmsEndpoint := fs.String("kms-endpoint", "", "the dev KMS (local-kms) endpoint, written to stack.json and config.json's custody.kms")
	signerMetrics := fs.String("signer-metrics-addr", "", "payflow-signer's Prometheus /metrics (stack.json metrics_urls.signer; empty: none)")
	signerSocket := fs.String("signer-socket", "", "payflow-signer's Unix socket: it creates the dev wallets' keys (required)")
	workers := workerAddrs{}
	fs.Var(workers, "worker", "a further worker process `worker-N=HOST:PORT` and its ledger API and /metrics address, written to stack.json's metrics_urls (repeatable; the first worker is on -http-addr)")
	btcRPC := fs.String("btc-rpc-url", "", "btcd's JSON-RPC of the dev Bitcoin chain, described in stack.json's chains.BTC (empty: none)")
	btcCreds := fs.String("btc-credentials", "", "the file holding btcd's USER:PASSWORD")
	_ = fs.Parse(args)
	if len(chains) == 0 {
		chains = chainList{{Name: "ETH", Native: "ETH", RPCURL: *rpcURL, WSURL: *wsURL}}
	}
	if *signerSocket == "" {
		return errors.New("-signer-socket is required: payflow-signer creates the dev wallets' keys")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	secretsPath := filepath.Join(*dir, "secrets.json")
	sec, err := loadSecrets(secretsPath)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, *dsn)
	if err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	defer db.Close()
	if err := ledger.Migrate(ctx, db); err != nil {
		return err
	}
	faucetKey, err := crypto.HexToECDSA(sec.FaucetKey)
	if err != nil {
		return errors.New("faucet key in secrets.json is invalid")
	}
	signer := signerapi.NewClient(*signerSocket)
	status, err := waitSigner(ctx, signer)
	if err != nil {
		return err
	}
	if err := migrateDevWallets(ctx, db, signer, sec.MasterKey); err != nil {
		return err
	}
	d := &devstack{sec: &sec, secretsPath: secretsPath, wallets: ledger.NewWallets(db, nil), signer: signer, led: ledger.New(db),
		faucetKey: faucetKey, confs: *confs, first: chains[0].Name, db: db, btcSigner: signer}

	cfg := config.Default()
	// eth_config keeps the database and names the first chain (whose
	// workflows keep the bare task queue); the chains map says the rest.
	cfg.ETH.Chain = chains[0].Name
	cfg.Chains = map[string]config.ChainConfig{}
	cfg.Temporal.Address = *tAddr
	cfg.Payment.ConfirmTimeout = config.Duration{Duration: 5 * time.Minute}
	// Dev policy: payments above their asset's approval threshold
	// (devAmounts) wait for an operator, for 30 s.
	cfg.Payment.ApprovalTimeout = config.Duration{Duration: 30 * time.Second}
	cfg.Payment.ReincludeTimeout = config.Duration{Duration: 2 * time.Minute}
	// Dev relay: an answer a run left unpublished goes out 10 s after it was
	// recorded (the integration tests wait for it).
	cfg.AnswerRelay = config.RelayConfig{Grace: config.Duration{Duration: 10 * time.Second},
		Interval: config.Duration{Duration: 2 * time.Second}}
	cfg.HTTPAddr = *httpAddr
	cfg.MetricsAddr = *metricsAddr
	cfg.Signer.Socket = *signerSocket
	cfg.Custody.AccountXPub = status.AccountXPub
	if *kmsEndpoint != "" {
		cfg.Custody.KMS = config.KMSConfig{Endpoint: *kmsEndpoint, Region: kms.DevRegion}
	}
	st := stackfile.Stack{AMQPURL: *amqpURL, TemporalAddress: *tAddr, TemporalNamespace: cfg.Temporal.Namespace, TemporalUIURL: *tUI,
		MySQLDSN: *dsn, SignKey: sec.SignKey, Chains: map[string]stackfile.Chain{}, PrometheusURL: *promURL,
		MetricsURLs: map[string]string{"worker": "http://" + *httpAddr + "/metrics", "starter": "http://" + *metricsAddr + "/metrics"},
		APIURL:      "http://" + *httpAddr, APIToken: sec.APIToken}
	for name, addr := range workers {
		st.MetricsURLs[name] = "http://" + addr + "/metrics"
	}
	if *signerMetrics != "" {
		st.MetricsURLs["signer"] = "http://" + *signerMetrics + "/metrics"
	}
	st.KMSEndpoint = *kmsEndpoint
	st.SignerSocket = *signerSocket
	// The dev deny list starts as the shipped sample (made-up addresses);
	// an existing one is kept, with whatever was added to it.
	if cfg.Risk.DenyList, err = devDenyList(*dir); err != nil {
		return err
	}
	st.DenyList = cfg.Risk.DenyList
	for i, spec := range chains {
		cc, sc, err := d.prepareChain(ctx, i, spec)
		if err != nil {
			return fmt.Errorf("chain %s (%s): %w", spec.Name, spec.RPCURL, err)
		}
		cfg.Chains[spec.Name] = cc
		st.Chains[spec.Name] = sc
	}
	st.ChainFields = st.Chains[chains[0].Name].ChainFields
	if *btcRPC != "" {
		sc, err := d.prepareBTC(ctx, *btcRPC, *btcCreds)
		if err != nil {
			return fmt.Errorf("chain BTC (%s): %w", *btcRPC, err)
		}
		st.Chains["BTC"] = sc
		if err := saveJSON(secretsPath, sec, 0o600); err != nil {
			return err
		}
		if cfg.BTCChains, err = devBTCChains(*btcRPC, *btcCreds, sc, d.btcXPub); err != nil {
			return err
		}
	}

	// Secrets go to payflow.env, not config.json. No key material: the
	// worker and the starter ask payflow-signer to sign.
	if err := writeConfig(filepath.Join(*dir, "config.json"), cfg); err != nil {
		return err
	}
	env := fmt.Sprintf("%s='%s'\n%s='%s'\n%s='%s'\n%s='%s'\n", config.EnvSignKey, sec.SignKey,
		config.EnvAMQPURL, *amqpURL, config.EnvMySQLDSN, *dsn, config.EnvAPIToken, sec.APIToken)
	if err := os.WriteFile(filepath.Join(*dir, "payflow.env"), []byte(env), 0o600); err != nil {
		return err
	}
	return saveJSON(filepath.Join(*dir, "stack.json"), st, 0o600)
}

// devDenyList is the dev stack's deny list, dir/deny-list.txt (absolute),
// created from deploy.DenyListSample when missing.
func devDenyList(dir string) (string, error) {
	path, err := filepath.Abs(filepath.Join(dir, "deny-list.txt"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.WriteFile(path, deploy.DenyListSample, 0o644); err != nil {
		return "", fmt.Errorf("creating the dev deny list: %w", err)
	}
	return path, nil
}

// devstack prepares the dev chains one after the other.
type devstack struct {
	sec         *devSecrets
	secretsPath string
	wallets     *ledger.Wallets
	signer      keyService
	led         *ledger.Ledger
	faucetKey   *ecdsa.PrivateKey
	confs       int
	first       string            // the chain whose wallet addresses every other chain registers
	keyOf       map[string]string // label -> address on the first chain
	db          *sql.DB
	btcSigner   btcAccounts
	btcXPub     string // payflow-signer's Bitcoin account, once prepareBTC asked it
}

// funding is one transfer devstack sent to a dev wallet, to be credited to
// the ledger once mined (nil tx: nothing to credit).
type funding struct {
	w      ledger.Wallet
	symbol string
	token  common.Address // zero for the native coin
	tx     *types.Transaction
}

// prepareChain deploys the dev tokens on a chain (again if the chain is new),
// creates or imports the dev wallets, funds them with the native coin and
// each token, and credits the ledger with what it sent.
func (d *devstack) prepareChain(ctx context.Context, index int, spec chainSpec) (config.ChainConfig, stackfile.Chain, error) {
	eth, err := ethclient.DialContext(ctx, spec.RPCURL)
	if err != nil {
		return config.ChainConfig{}, stackfile.Chain{}, err
	}
	defer eth.Close()
	chainID, err := eth.ChainID(ctx)
	if err != nil {
		return config.ChainConfig{}, stackfile.Chain{}, fmt.Errorf("reading chain id: %w", err)
	}
	genesis, err := eth.HeaderByNumber(ctx, big.NewInt(0))
	if err != nil {
		return config.ChainConfig{}, stackfile.Chain{}, err
	}
	cs := d.sec.Chains[spec.Name]
	if cs == nil || cs.Genesis != genesis.Hash().Hex() {
		// A new dev chain: the old tokens (if any) are gone.
		cs = &chainSecrets{Genesis: genesis.Hash().Hex(), Tokens: map[string]string{}}
		d.sec.Chains[spec.Name] = cs
	}
	faucet := crypto.PubkeyToAddress(d.faucetKey.PublicKey)
	if err := fundFaucet(ctx, spec.RPCURL, eth, faucet); err != nil {
		return config.ChainConfig{}, stackfile.Chain{}, err
	}
	f := &funder{eth: eth, key: d.faucetKey, from: faucet, chainID: chainID}
	// The same faucet deploys the tokens on every chain, so at the same
	// nonces they would get the same addresses on every chain; a test or a
	// worker that read the wrong chain's token would not see it. The n-th
	// chain's faucet first spends n nonces on nothing.
	if nonce, err := eth.PendingNonceAt(ctx, faucet); err != nil {
		return config.ChainConfig{}, stackfile.Chain{}, err
	} else if nonce == 0 {
		for range index {
			tx, err := f.sendNative(ctx, faucet, big.NewInt(0))
			if err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
			if _, err := waitMined(ctx, eth, tx); err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
		}
	}

	tokens := map[string]devToken{}
	tokenAddr := map[string]common.Address{}
	for _, dt := range devTokens {
		addr := common.HexToAddress(cs.Tokens[dt.symbol])
		if code, _ := eth.CodeAt(ctx, addr, nil); cs.Tokens[dt.symbol] == "" || len(code) == 0 {
			if addr, err = f.deployToken(ctx, dt.contract, dt.deploy, dt.bind); err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
			cs.Tokens[dt.symbol] = evm.Lower(addr)
			fmt.Fprintf(os.Stderr, "[devstack] %s: deployed %s at %s\n", spec.Name, dt.contract, cs.Tokens[dt.symbol])
			if err := saveJSON(d.secretsPath, d.sec, 0o600); err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
		}
		if tokens[dt.symbol], err = dt.bind(addr, eth); err != nil {
			return config.ChainConfig{}, stackfile.Chain{}, err
		}
		tokenAddr[dt.symbol] = addr
	}
	if err := saveJSON(d.secretsPath, d.sec, 0o600); err != nil {
		return config.ChainConfig{}, stackfile.Chain{}, err
	}

	existing, err := d.wallets.List(ctx, spec.Name, "")
	if err != nil {
		return config.ChainConfig{}, stackfile.Chain{}, err
	}
	byLabel := map[string]ledger.Wallet{}
	for _, w := range existing {
		byLabel[w.Label] = w
	}
	if spec.Name == d.first {
		d.keyOf = map[string]string{}
	}
	var managed []string
	var collection, gas string
	var sent []funding
	for _, plan := range devWallets {
		w, ok := byLabel[plan.label]
		switch {
		case ok:
		case spec.Name == d.first:
			backend := defaultBackend(plan.kind)
			info, err := d.signer.NewKey(ctx, backend)
			if err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, fmt.Errorf("asking payflow-signer for a %s key: %w", backend, err)
			}
			if w, err = d.wallets.Register(ctx, spec.Name, plan.kind, plan.label, info.Address); err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
			fmt.Fprintf(os.Stderr, "[devstack] %s: %s is %s, payflow-signer's key (%s)\n", spec.Name, plan.label, w.Address, backend)
		default:
			// The same address on every chain: the signer's key signs on
			// every EVM chain.
			if w, err = d.wallets.Register(ctx, spec.Name, plan.kind, plan.label, d.keyOf[plan.label]); err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
		}
		if spec.Name == d.first {
			d.keyOf[plan.label] = w.Address
		}
		managed = append(managed, w.Address)
		switch plan.kind {
		case ledger.KindCollection:
			collection = w.Address
		case ledger.KindGas:
			gas = w.Address
		}
		addr := common.HexToAddress(w.Address)

		// The native coin: topped up below devNativeLow. The top-up is
		// credited when the ledger agrees with the chain before it (a new
		// wallet: both zero), so the ledger keeps equal to the chain.
		bal, err := eth.BalanceAt(ctx, addr, nil)
		if err != nil {
			return config.ChainConfig{}, stackfile.Chain{}, err
		}
		if bal.Cmp(devNativeLow) < 0 {
			lb, err := d.led.Balance(ctx, spec.Name, w.Address, spec.Native)
			if err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
			tx, err := f.sendNative(ctx, addr, devNative)
			if err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
			fd := funding{w: w, symbol: spec.Native}
			if lb.Total().Equal(decimal.NewFromBigInt(bal, -config.NativeDecimals)) {
				fd.tx = tx
			} else {
				fmt.Fprintf(os.Stderr, "[devstack] %s: %s (%s) holds %s %s on chain and %s in the ledger; its top-up is not credited\n",
					spec.Name, w.Address, w.Label, decimal.NewFromBigInt(bal, -config.NativeDecimals), spec.Native, lb.Total())
			}
			sent = append(sent, fd)
		}
		if plan.tokens == 0 {
			continue
		}
		// Tokens: a wallet holding less than half its plan on chain (a
		// long-lived stack's test runs spend it) is given its plan again.
		// As with the native coin, the top-up is credited only when the
		// ledger agrees with the chain before it; a wallet that holds
		// enough is left alone, so a second run funds nothing twice.
		for _, dt := range devTokens {
			onChain, err := tokens[dt.symbol].BalanceOf(&bind.CallOpts{Context: ctx}, addr)
			if err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
			lb, err := d.led.Balance(ctx, spec.Name, w.Address, dt.symbol)
			if err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
			want := new(big.Int).Mul(big.NewInt(plan.tokens), new(big.Int).Exp(big.NewInt(10), big.NewInt(devTokenDecimals), nil))
			if new(big.Int).Mul(onChain, big.NewInt(2)).Cmp(want) >= 0 {
				continue
			}
			credit := lb.Total().Equal(decimal.NewFromBigInt(onChain, -devTokenDecimals))
			if !credit {
				fmt.Fprintf(os.Stderr, "[devstack] %s: %s (%s) holds %s %s on chain and %s in the ledger; its top-up is not credited\n",
					spec.Name, w.Address, w.Label, decimal.NewFromBigInt(onChain, -devTokenDecimals), dt.symbol, lb.Total())
			}
			o, err := f.opts(ctx)
			if err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, err
			}
			tx, err := tokens[dt.symbol].Transfer(o, addr, want)
			if err != nil {
				return config.ChainConfig{}, stackfile.Chain{}, fmt.Errorf("sending %s: %w", dt.symbol, err)
			}
			fd := funding{w: w, symbol: dt.symbol, token: tokenAddr[dt.symbol]}
			if credit {
				fd.tx = tx
			}
			sent = append(sent, fd)
		}
	}
	for _, fd := range sent {
		if fd.tx == nil {
			continue
		}
		r, err := waitMined(ctx, eth, fd.tx)
		if err != nil {
			return config.ChainConfig{}, stackfile.Chain{}, err
		}
		if err := d.credit(ctx, spec.Name, fd, r); err != nil {
			return config.ChainConfig{}, stackfile.Chain{}, err
		}
		fmt.Fprintf(os.Stderr, "[devstack] %s: funded %s (%s) with %s\n", spec.Name, fd.w.Address, fd.w.Label, fd.symbol)
	}

	cc := devChainConfig(spec, chainID.Int64(), d.confs, collection, gas, cs.Tokens)
	sc := stackfile.Chain{ChainFields: stackfile.ChainFields{ETHRPCURL: spec.RPCURL, ETHWSURL: spec.WSURL, ChainID: chainID.Int64(),
		Confirmations: d.confs, Tokens: map[string]config.Token{}, FaucetPrivateKey: d.sec.FaucetKey,
		CollectionAddress: collection, ManagedWallets: managed, ColdAddress: cc.ColdAddress},
		Native: stackfile.Native{Symbol: spec.Native, Decimals: config.NativeDecimals}}
	for _, dt := range devTokens {
		sc.Tokens[dt.symbol] = config.Token{Address: cs.Tokens[dt.symbol], Decimals: devTokenDecimals}
	}
	return cc, sc, nil
}

// devChainConfig is the worker's config of a dev chain: its node, its
// wallets and cold address (devColdAddress: the worker registers it as a
// watch-only cold wallet when it starts), and each asset's own dust,
// approval and sweep thresholds, hot tier bounds and velocity limits
// (devAmounts). tokenAddr maps each dev token's symbol to its contract.
func devChainConfig(spec chainSpec, chainID int64, confs int, collection, gas string, tokenAddr map[string]string) config.ChainConfig {
	na := devAmountsOf(spec.Name, "native")
	cc := config.ChainConfig{ChainID: chainID, RPCURL: spec.RPCURL, WSURL: spec.WSURL, ConfirmHeight: confs, MaxFeeGwei: 500,
		Native: config.NativeCoin{Symbol: spec.Native, Dust: "0.0001", ApprovalThreshold: na.approval, SweepThreshold: na.sweep,
			Treasury: config.Treasury{HotCeiling: na.ceiling, HotFloor: na.floor}, VelocityWallet24h: na.velocityWallet,
			VelocityRecipient24h: na.velocityRecipient},
		Tokens: map[string]config.Token{}, CollectionAddress: collection, GasAddress: gas, ColdAddress: devColdAddress(spec.Name)}
	for _, dt := range devTokens {
		ta := devAmountsOf(spec.Name, dt.symbol)
		cc.Tokens[dt.symbol] = config.Token{Address: tokenAddr[dt.symbol], Decimals: devTokenDecimals, Dust: "0.01",
			ApprovalThreshold: ta.approval, SweepThreshold: ta.sweep, Treasury: config.Treasury{HotCeiling: ta.ceiling, HotFloor: ta.floor},
			VelocityWallet24h: ta.velocityWallet, VelocityRecipient24h: ta.velocityRecipient}
	}
	return cc
}

// credit books a mined funding transfer as the listener books a deposit:
// a token by each Transfer log to the wallet, keyed by the log's index
// within the transaction; the native coin by the transaction's value, keyed
// by chain.NativeLogIndex. A deposit the worker already credited is not
// credited again (same key).
func (d *devstack) credit(ctx context.Context, chainName string, fd funding, r *types.Receipt) error {
	in := ledger.CreditInput{Chain: chainName, Address: fd.w.Address, Symbol: fd.symbol, TxHash: fd.tx.Hash().Hex(),
		Reference: "devstack-funding"}
	if fd.token == (common.Address{}) {
		in.Amount, in.LogIndex = decimal.NewFromBigInt(fd.tx.Value(), -config.NativeDecimals), chain.NativeLogIndex
		_, err := d.led.Credit(ctx, in)
		return err
	}
	for i, lg := range r.Logs {
		if lg.Address != fd.token || len(lg.Topics) != 3 || lg.Topics[0] != transferSig ||
			evm.Lower(common.BytesToAddress(lg.Topics[2].Bytes())) != fd.w.Address {
			continue
		}
		in.Amount = decimal.NewFromBigInt(new(big.Int).SetBytes(lg.Data), -devTokenDecimals)
		in.LogIndex = uint(i) // within the tx, as the listener keys deposits
		if _, err := d.led.Credit(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// writeConfig writes config.json in the seed's shape, without secrets.
func writeConfig(path string, cfg config.Config) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	delete(m, "sign_key")
	rc := m["rmq_config"].(map[string]any)
	delete(rc, "sub_addr")
	return saveJSON(path, m, 0o644)
}

func loadSecrets(path string) (devSecrets, error) {
	var s devSecrets
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("reading %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	if s.SignKey == "" {
		s.SignKey = randomHex(24)
	}
	if s.APIToken == "" {
		s.APIToken = randomHex(24)
	}
	if s.FaucetKey == "" {
		s.FaucetKey = randomHex(32)
	}
	if s.Chains == nil {
		s.Chains = map[string]*chainSecrets{}
	}
	if s.TokenAddr != "" && s.Chains["ETH"] == nil {
		s.Chains["ETH"] = &chainSecrets{Genesis: s.GenesisHex, Tokens: map[string]string{"USDT": s.TokenAddr}}
	}
	s.TokenAddr, s.GenesisHex = "", ""
	return s, nil
}

func saveJSON(path string, v any, mode os.FileMode) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // DSNs carry '&'
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fundFaucet gives the faucet the native coin from geth's unlocked --dev account.
func fundFaucet(ctx context.Context, rpcURL string, eth *ethclient.Client, faucet common.Address) error {
	bal, err := eth.BalanceAt(ctx, faucet, nil)
	if err != nil {
		return err
	}
	if bal.Cmp(new(big.Int).Mul(big.NewInt(1000), ether)) >= 0 {
		return nil
	}
	rc, err := rpc.DialContext(ctx, rpcURL)
	if err != nil {
		return err
	}
	defer rc.Close()
	var accounts []common.Address
	if err := rc.CallContext(ctx, &accounts, "eth_accounts"); err != nil || len(accounts) == 0 {
		return fmt.Errorf("geth --dev has no unlocked account: %v", err)
	}
	value := new(big.Int).Mul(big.NewInt(1_000_000), ether)
	var hash common.Hash
	if err := rc.CallContext(ctx, &hash, "eth_sendTransaction", map[string]any{
		"from": accounts[0], "to": faucet, "value": "0x" + value.Text(16)}); err != nil {
		return fmt.Errorf("funding faucet from the dev account: %w", err)
	}
	for {
		if r, err := eth.TransactionReceipt(ctx, hash); err == nil && r != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type funder struct {
	eth     *ethclient.Client
	key     *ecdsa.PrivateKey
	from    common.Address
	chainID *big.Int
	nonce   *uint64
}

func (f *funder) opts(ctx context.Context) (*bind.TransactOpts, error) {
	if f.nonce == nil {
		n, err := f.eth.PendingNonceAt(ctx, f.from)
		if err != nil {
			return nil, err
		}
		f.nonce = &n
	}
	o, err := bind.NewKeyedTransactorWithChainID(f.key, f.chainID)
	if err != nil {
		return nil, err
	}
	o.Context = ctx
	o.Nonce = new(big.Int).SetUint64(*f.nonce)
	*f.nonce++
	return o, nil
}

// deployToken deploys a dev token and mints 1e12 tokens to the faucet.
func (f *funder) deployToken(ctx context.Context, contract string,
	deploy func(*bind.TransactOpts, bind.ContractBackend) (common.Address, *types.Transaction, error),
	bindTo func(common.Address, bind.ContractBackend) (devToken, error)) (common.Address, error) {
	o, err := f.opts(ctx)
	if err != nil {
		return common.Address{}, err
	}
	addr, tx, err := deploy(o, f.eth)
	if err != nil {
		return common.Address{}, fmt.Errorf("deploying %s: %w", contract, err)
	}
	if _, err := waitMined(ctx, f.eth, tx); err != nil {
		return common.Address{}, err
	}
	t, err := bindTo(addr, f.eth)
	if err != nil {
		return common.Address{}, err
	}
	o, err = f.opts(ctx)
	if err != nil {
		return common.Address{}, err
	}
	supply := new(big.Int).Mul(big.NewInt(1_000_000_000_000), big.NewInt(1_000_000)) // 1e12 tokens of 6 decimals
	mt, err := t.Mint(o, f.from, supply)
	if err != nil {
		return common.Address{}, fmt.Errorf("minting %s: %w", contract, err)
	}
	_, err = waitMined(ctx, f.eth, mt)
	return addr, err
}

// sendNative sends the chain's native coin.
func (f *funder) sendNative(ctx context.Context, to common.Address, value *big.Int) (*types.Transaction, error) {
	o, err := f.opts(ctx)
	if err != nil {
		return nil, err
	}
	tip, err := f.eth.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, err
	}
	head, err := f.eth.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, err
	}
	fee := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	tx, err := types.SignNewTx(f.key, types.LatestSignerForChainID(f.chainID), &types.DynamicFeeTx{
		ChainID: f.chainID, Nonce: o.Nonce.Uint64(), GasTipCap: tip, GasFeeCap: fee, Gas: 21000, To: &to, Value: value})
	if err != nil {
		return nil, err
	}
	return tx, f.eth.SendTransaction(ctx, tx)
}

func waitMined(ctx context.Context, eth *ethclient.Client, tx *types.Transaction) (*types.Receipt, error) {
	r, err := bind.WaitMined(ctx, eth, tx)
	if err != nil {
		return nil, fmt.Errorf("waiting for %s: %w", tx.Hash().Hex(), err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		return nil, fmt.Errorf("transaction %s reverted", tx.Hash().Hex())
	}
	return r, nil
}

// waitSigner waits for payflow-signer to answer (it may be starting) and
// returns its status.
func waitSigner(ctx context.Context, sc keyService) (signerapi.Status, error) {
	for {
		st, err := sc.Status(ctx)
		if err == nil {
			if st.AccountXPub == "" {
				return st, errors.New("payflow-signer reports no account xpub: deposit addresses cannot be derived")
			}
			return st, nil
		}
		if !errors.Is(err, signerapi.ErrUnavailable) {
			return st, fmt.Errorf("reading payflow-signer's status: %w", err)
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("payflow-signer does not answer: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// migrateDevWallets hands the wallets a dev stack made before payflow-signer
// (keys sealed under secrets.json's master key) to the signer, as `wallet
// migrate` does.
func migrateDevWallets(ctx context.Context, db *sql.DB, sc keyService, masterKey string) error {
	legacy, err := ledger.NewWallets(db, nil).MasterKeyed(ctx)
	if err != nil || len(legacy) == 0 {
		return err
	}
	if masterKey == "" {
		return fmt.Errorf("%d dev wallets have keys sealed under a master key, and secrets.json has none", len(legacy))
	}
	sealer, err := legacySealer(masterKey)
	if err != nil {
		return fmt.Errorf("secrets.json's master_key: %w", err)
	}
	sum, err := migrateWallets(ctx, ledger.NewWallets(db, sealer), sc, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "[devstack]", sum)
	return nil
}

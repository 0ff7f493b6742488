package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
	"github.com/shopspring/decimal"

	"payflow/chain"
	"payflow/chain/token"
	"payflow/config"
	"payflow/ledger"
)

// Stack is .dev/stack.json (SPEC §5): how tools and tests outside the repo
// reach the local stack.
type Stack struct {
	AMQPURL           string                  `json:"amqp_url"`
	TemporalAddress   string                  `json:"temporal_address"`
	TemporalNamespace string                  `json:"temporal_namespace"`
	TemporalUIURL     string                  `json:"temporal_ui_url"`
	ETHRPCURL         string                  `json:"eth_rpc_url"`
	ETHWSURL          string                  `json:"eth_ws_url"`
	ChainID           int64                   `json:"chain_id"`
	MySQLDSN          string                  `json:"mysql_dsn"`
	SignKey           string                  `json:"sign_key"`
	Confirmations     int                     `json:"confirmations"`
	Tokens            map[string]config.Token `json:"tokens"`
	FaucetPrivateKey  string                  `json:"faucet_private_key"`
	CollectionAddress string                  `json:"collection_address"`
	ManagedWallets    []string                `json:"managed_wallets"`
	// PrometheusURL is the dev Prometheus server, which scrapes the worker,
	// the starter and Temporal and loads deploy/prometheus/alerts.yml.
	PrometheusURL string `json:"prometheus_url,omitempty"`
	// MetricsURLs are the /metrics endpoints, by process: "worker" (on
	// http_addr) and "starter" (on metrics_addr).
	MetricsURLs map[string]string `json:"metrics_urls,omitempty"`
}

type devSecrets struct {
	SignKey    string `json:"sign_key"`
	MasterKey  string `json:"master_key"`
	FaucetKey  string `json:"faucet_private_key"`
	TokenAddr  string `json:"token_address,omitempty"`
	GenesisHex string `json:"genesis_hash,omitempty"`
}

const devChain = "ETH"

// Dev wallet plan: kind, label, USDT to hold.
var devWallets = []struct {
	kind  ledger.WalletKind
	label string
	usdt  int64
}{
	{ledger.KindCollection, "collection", 1_000_000},
	{ledger.KindHot, "hot", 100_000},
	{ledger.KindGas, "gas", 0},
	{ledger.KindDeposit, "user-1", 10_000},
	{ledger.KindDeposit, "user-2", 10_000},
	{ledger.KindDeposit, "user-3", 10_000},
}

var ether = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

func cmdDevstack(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("devstack", flag.ExitOnError)
	dir := fs.String("dir", ".dev", "dev data directory")
	dsn := fs.String("mysql-dsn", "", "MariaDB DSN")
	amqpURL := fs.String("amqp-url", "", "RabbitMQ URL")
	tAddr := fs.String("temporal-address", "127.0.0.1:7233", "Temporal frontend")
	tUI := fs.String("temporal-ui-url", "http://127.0.0.1:8233", "Temporal Web UI")
	rpcURL := fs.String("eth-rpc-url", "http://127.0.0.1:8545", "geth HTTP")
	wsURL := fs.String("eth-ws-url", "ws://127.0.0.1:8546", "geth WebSocket")
	confs := fs.Int("confirmations", 3, "confirmations on the dev chain")
	httpAddr := fs.String("http-addr", "127.0.0.1:8380", "payflow HTTP (health, ledger API)")
	promURL := fs.String("prometheus-url", "", "dev Prometheus server, written to stack.json")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:8381", "the starter's Prometheus /metrics (config metrics_addr)")
	_ = fs.Parse(args)
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
	eth, err := ethclient.DialContext(ctx, *rpcURL)
	if err != nil {
		return err
	}
	defer eth.Close()
	chainID, err := eth.ChainID(ctx)
	if err != nil {
		return fmt.Errorf("reading chain id: %w", err)
	}
	genesis, err := eth.HeaderByNumber(ctx, big.NewInt(0))
	if err != nil {
		return err
	}
	if sec.GenesisHex != genesis.Hash().Hex() {
		// A new dev chain: the old token (if any) is gone.
		sec.GenesisHex, sec.TokenAddr = genesis.Hash().Hex(), ""
	}
	faucetKey, err := crypto.HexToECDSA(sec.FaucetKey)
	if err != nil {
		return errors.New("faucet key in secrets.json is invalid")
	}
	faucet := crypto.PubkeyToAddress(faucetKey.PublicKey)
	if err := fundFaucet(ctx, *rpcURL, eth, faucet); err != nil {
		return err
	}
	f := &funder{eth: eth, key: faucetKey, from: faucet, chainID: chainID}

	tokenAddr := common.HexToAddress(sec.TokenAddr)
	if code, _ := eth.CodeAt(ctx, tokenAddr, nil); sec.TokenAddr == "" || len(code) == 0 {
		if tokenAddr, err = f.deployToken(ctx); err != nil {
			return err
		}
		sec.TokenAddr = chain.Lower(tokenAddr)
		fmt.Fprintln(os.Stderr, "[devstack] deployed TestUSDT at", sec.TokenAddr)
	}
	if err := saveJSON(secretsPath, sec, 0o600); err != nil {
		return err
	}
	usdt, err := token.NewTestUSDT(tokenAddr, eth)
	if err != nil {
		return err
	}

	mk, _ := (config.Config{MasterKey: config.Secret(sec.MasterKey)}).MasterKeyBytes()
	sealer, err := ledger.NewKeySealer(mk)
	if err != nil {
		return err
	}
	wallets := ledger.NewWallets(db, sealer)
	led := ledger.New(db)
	existing, err := wallets.List(ctx, devChain, "")
	if err != nil {
		return err
	}
	byLabel := map[string]ledger.Wallet{}
	for _, w := range existing {
		byLabel[w.Label] = w
	}
	var managed []string
	var collection string
	type credit struct {
		w  ledger.Wallet
		tx *types.Transaction
	}
	var credits []credit
	var pending []*types.Transaction
	for _, plan := range devWallets {
		w, ok := byLabel[plan.label]
		if !ok {
			if w, err = wallets.Create(ctx, devChain, plan.kind, plan.label); err != nil {
				return err
			}
		}
		managed = append(managed, w.Address)
		if plan.kind == ledger.KindCollection {
			collection = w.Address
		}
		addr := common.HexToAddress(w.Address)
		bal, err := eth.BalanceAt(ctx, addr, nil)
		if err != nil {
			return err
		}
		if bal.Cmp(new(big.Int).Mul(big.NewInt(10), ether)) < 0 {
			tx, err := f.sendETH(ctx, addr, new(big.Int).Mul(big.NewInt(100), ether))
			if err != nil {
				return err
			}
			pending = append(pending, tx)
		}
		if plan.usdt == 0 {
			continue
		}
		onChain, err := usdt.BalanceOf(&bind.CallOpts{Context: ctx}, addr)
		if err != nil {
			return err
		}
		lb, err := led.Balance(ctx, devChain, w.Address, "USDT")
		if err != nil {
			return err
		}
		if onChain.Sign() == 0 && lb.Total().IsZero() {
			tx, err := f.sendUSDT(ctx, usdt, addr, big.NewInt(plan.usdt*1_000_000))
			if err != nil {
				return err
			}
			credits = append(credits, credit{w, tx})
		}
	}
	for _, tx := range pending {
		if _, err := waitMined(ctx, eth, tx); err != nil {
			return err
		}
	}
	for _, c := range credits {
		r, err := waitMined(ctx, eth, c.tx)
		if err != nil {
			return err
		}
		for i, lg := range r.Logs {
			ev, err := usdt.ParseTransfer(*lg)
			if err != nil || chain.Lower(ev.To) != c.w.Address {
				continue
			}
			if _, err := led.Credit(ctx, ledger.CreditInput{Chain: devChain, Address: c.w.Address, Symbol: "USDT",
				Amount: decimal.NewFromBigInt(ev.Value, -6), TxHash: lg.TxHash.Hex(), LogIndex: uint(i), // within the tx, as the listener keys deposits
				Reference: "devstack-funding"}); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "[devstack] funded %s (%s) with USDT\n", c.w.Address, c.w.Label)
	}

	tokens := map[string]config.Token{"USDT": {Address: sec.TokenAddr, Decimals: 6}}
	cfg := config.Default()
	cfg.ETH.ChainID = chainID.Int64()
	cfg.ETH.RPCURL, cfg.ETH.WSURL, cfg.ETH.ConfirmHeight = *rpcURL, *wsURL, *confs
	cfg.Tokens = tokens
	cfg.Temporal.Address = *tAddr
	cfg.Payment.CollectionAddress = collection
	cfg.Payment.ConfirmTimeout = config.Duration{Duration: 5 * time.Minute}
	// Dev policy: payments above 50,000 wait for an operator, for 30 s.
	cfg.Payment.ApprovalThreshold = "50000"
	cfg.Payment.ApprovalTimeout = config.Duration{Duration: 30 * time.Second}
	cfg.Payment.ReincludeTimeout = config.Duration{Duration: 2 * time.Minute}
	cfg.Tokens = map[string]config.Token{"USDT": {Address: sec.TokenAddr, Decimals: 6, Dust: "0.01"}}
	cfg.HTTPAddr = *httpAddr
	cfg.MetricsAddr = *metricsAddr
	// Secrets go to payflow.env, not config.json.
	if err := writeConfig(filepath.Join(*dir, "config.json"), cfg); err != nil {
		return err
	}
	env := fmt.Sprintf("%s='%s'\n%s='%s'\n%s='%s'\n%s='%s'\n", config.EnvMasterKey, sec.MasterKey, config.EnvSignKey, sec.SignKey,
		config.EnvAMQPURL, *amqpURL, config.EnvMySQLDSN, *dsn)
	if err := os.WriteFile(filepath.Join(*dir, "payflow.env"), []byte(env), 0o600); err != nil {
		return err
	}
	st := Stack{AMQPURL: *amqpURL, TemporalAddress: *tAddr, TemporalNamespace: cfg.Temporal.Namespace, TemporalUIURL: *tUI,
		ETHRPCURL: *rpcURL, ETHWSURL: *wsURL, ChainID: chainID.Int64(), MySQLDSN: *dsn, SignKey: sec.SignKey,
		Confirmations: *confs, Tokens: tokens, FaucetPrivateKey: sec.FaucetKey, CollectionAddress: collection,
		ManagedWallets: managed, PrometheusURL: *promURL,
		MetricsURLs: map[string]string{"worker": "http://" + *httpAddr + "/metrics", "starter": "http://" + *metricsAddr + "/metrics"}}
	return saveJSON(filepath.Join(*dir, "stack.json"), st, 0o600)
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
	if s.MasterKey == "" {
		s.MasterKey = randomHex(32)
	}
	if s.FaucetKey == "" {
		s.FaucetKey = randomHex(32)
	}
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

// fundFaucet gives the faucet ETH from geth's unlocked --dev account.
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

func (f *funder) deployToken(ctx context.Context) (common.Address, error) {
	o, err := f.opts(ctx)
	if err != nil {
		return common.Address{}, err
	}
	addr, tx, t, err := token.DeployTestUSDT(o, f.eth)
	if err != nil {
		return common.Address{}, fmt.Errorf("deploying TestUSDT: %w", err)
	}
	if _, err := waitMined(ctx, f.eth, tx); err != nil {
		return common.Address{}, err
	}
	o, err = f.opts(ctx)
	if err != nil {
		return common.Address{}, err
	}
	supply := new(big.Int).Mul(big.NewInt(1_000_000_000_000), big.NewInt(1_000_000)) // 1e12 USDT
	mt, err := t.Mint(o, f.from, supply)
	if err != nil {
		return common.Address{}, fmt.Errorf("minting: %w", err)
	}
	_, err = waitMined(ctx, f.eth, mt)
	return addr, err
}

func (f *funder) sendETH(ctx context.Context, to common.Address, value *big.Int) (*types.Transaction, error) {
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

func (f *funder) sendUSDT(ctx context.Context, t *token.TestUSDT, to common.Address, units *big.Int) (*types.Transaction, error) {
	o, err := f.opts(ctx)
	if err != nil {
		return nil, err
	}
	return t.Transfer(o, to, units)
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

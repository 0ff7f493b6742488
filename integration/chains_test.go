package integration

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/params"
	"github.com/shopspring/decimal"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"payflow/chain/token"
	"payflow/internal/stacktest"
	"payflow/protocol"
	"payflow/workflows"
)

// devChain is one entry of stack.json's chains.
type devChain struct {
	Name     string
	RPCURL   string `json:"eth_rpc_url"`
	WSURL    string `json:"eth_ws_url"`
	ChainID  int64  `json:"chain_id"`
	Confirms int    `json:"confirmations"`
	Native   struct {
		Symbol   string `json:"symbol"`
		Decimals int32  `json:"decimals"`
	} `json:"native"`
	Tokens map[string]struct {
		Address  string `json:"address"`
		Decimals int32  `json:"decimals"`
	} `json:"tokens"`
	FaucetKey  string   `json:"faucet_private_key"`
	Collection string   `json:"collection_address"`
	Managed    []string `json:"managed_wallets"`
	Cold       string   `json:"cold_address"`
}

// devChains reads every EVM chain of stack.json (those with an
// eth_rpc_url: chains.BTC is of another family), sorted by name; the test
// needs at least two.
func devChains(t *testing.T) []*devChain {
	t.Helper()
	p, err := stacktest.Path()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Chains map[string]*devChain `json:"chains"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Chains) < 2 {
		t.Fatalf("stack.json lists %d chains; the dev stack runs two", len(st.Chains))
	}
	var out []*devChain
	for name, c := range st.Chains {
		if c.RPCURL == "" {
			continue
		}
		c.Name = name
		out = append(out, c)
	}
	if len(out) < 2 {
		t.Fatalf("stack.json lists %d EVM chains; the dev stack runs two", len(out))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *devChain) eth(t *testing.T) *ethclient.Client {
	t.Helper()
	eth, err := ethclient.Dial(c.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eth.Close)
	return eth
}

// balance reads owner's on-chain balance of symbol (token or native), in
// units of the asset.
func (c *devChain) balance(t *testing.T, eth *ethclient.Client, symbol, owner string) decimal.Decimal {
	t.Helper()
	ctx := context.Background()
	if symbol == c.Native.Symbol {
		wei, err := eth.BalanceAt(ctx, common.HexToAddress(owner), nil)
		if err != nil {
			t.Fatal(err)
		}
		return decimal.NewFromBigInt(wei, -18)
	}
	tok := c.Tokens[symbol]
	u, err := token.NewTestUSDT(common.HexToAddress(tok.Address), eth) // balanceOf is the same on every ERC20
	if err != nil {
		t.Fatal(err)
	}
	units, err := u.BalanceOf(&bind.CallOpts{Context: ctx}, common.HexToAddress(owner))
	if err != nil {
		t.Fatalf("%s balanceOf(%s) on %s: %v", symbol, owner, c.Name, err)
	}
	return decimal.NewFromBigInt(units, -tok.Decimals)
}

// faucetSend pays to from the chain's faucet: value of the native coin, or
// units of a token. The faucet is shared: a nonce taken by someone else is
// retried.
func (c *devChain) faucetSend(t *testing.T, eth *ethclient.Client, symbol, to string, amount decimal.Decimal) *types.Receipt {
	t.Helper()
	key, err := crypto.HexToECDSA(strings.TrimPrefix(c.FaucetKey, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var tx *types.Transaction
	for attempt := 0; ; attempt++ {
		tx, err = c.signFaucetTx(ctx, eth, key, symbol, to, amount)
		if err == nil {
			err = eth.SendTransaction(ctx, tx)
		}
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Fatalf("faucet on %s sending %s %s to %s: %v", c.Name, amount, symbol, to, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	r, err := bind.WaitMined(ctx, eth, tx)
	if err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("faucet on %s: %s failed: %v", c.Name, tx.Hash().Hex(), err)
	}
	return r
}

func (c *devChain) signFaucetTx(ctx context.Context, eth *ethclient.Client, key *ecdsa.PrivateKey, symbol, to string,
	amount decimal.Decimal) (*types.Transaction, error) {
	from := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := eth.PendingNonceAt(ctx, from)
	if err != nil {
		return nil, err
	}
	tip, err := eth.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, err
	}
	head, err := eth.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, err
	}
	id := big.NewInt(c.ChainID)
	inner := &types.DynamicFeeTx{ChainID: id, Nonce: nonce, GasTipCap: tip,
		GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)}
	recipient := common.HexToAddress(to)
	if symbol == c.Native.Symbol {
		inner.To, inner.Gas, inner.Value = &recipient, params.TxGas, amount.Shift(18).BigInt()
	} else {
		tok := c.Tokens[symbol]
		// transfer(address,uint256)
		data := append(common.FromHex("0xa9059cbb"), common.LeftPadBytes(recipient.Bytes(), 32)...)
		data = append(data, common.LeftPadBytes(amount.Shift(tok.Decimals).BigInt().Bytes(), 32)...)
		addr := common.HexToAddress(tok.Address)
		inner.To, inner.Gas, inner.Data = &addr, 300_000, data
	}
	return types.SignNewTx(key, types.LatestSignerForChainID(id), inner)
}

func chainWithdrawBody(queueID, from, to, amount, chainName, symbol string) []byte {
	return []byte(fmt.Sprintf(`{"queue_id":%q,"from_address":%q,"to_address":%q,"amount":%s,"chain":%q,"symbol":%q,"timestamp":%d}`,
		queueID, from, to, amount, chainName, symbol, time.Now().Unix()))
}

func chainPayBody(queueID, orderID, from, to, amount, chainName, symbol string) []byte {
	return []byte(fmt.Sprintf(`{"queue_id":%q,"order_id":%q,"from_address":%q,"to_address":%q,"amount":%s,"chain":%q,"symbol":%q,"timestamp":%d}`,
		queueID, orderID, from, to, amount, chainName, symbol, time.Now().Unix()))
}

func hotWallet(t *testing.T, st *stacktest.Stack) string {
	t.Helper()
	return walletByLabel(t, st.DB(t), "hot")
}

// TestTwoChainsPayTokensAndNativeCoins: withdraw and pay, of a token and of
// the native coin, on each of two chains, from the same hot wallet address:
// each is answered once with status=1 naming its chain, and the recipient
// holds the amount on that chain only.
func TestTwoChainsPayTokensAndNativeCoins(t *testing.T) {
	st := stacktest.Load(t)
	chains := devChains(t)
	hot := hotWallet(t, st)
	wresp := st.Collect(t, withdrawResp, "queue_id")
	presp := st.Collect(t, payResp, "queue_id")
	type sent struct {
		c        *devChain
		symbol   string
		to, qid  string
		pay      bool
		amount   string
		answered map[string]any
	}
	var all []*sent
	for _, c := range chains {
		for _, sym := range []string{"USDC", c.Native.Symbol} {
			for _, pay := range []bool{false, true} {
				s := &sent{c: c, symbol: sym, to: stacktest.RandomAddress(), qid: stacktest.RandomID("it-chains-"), pay: pay,
					amount: "0.25"}
				if pay {
					st.Publish(t, payKey, chainPayBody(s.qid, "order-"+s.qid, hot, s.to, s.amount, c.Name, sym), true)
				} else {
					st.Publish(t, withdrawKey, chainWithdrawBody(s.qid, hot, s.to, s.amount, c.Name, sym), true)
				}
				all = append(all, s)
			}
		}
	}
	for _, s := range all {
		coll := wresp
		if s.pay {
			coll = presp
		}
		got := onlyOne(t, coll, s.qid)
		if status(got) != "1" || got.Body["chain"] != s.c.Name || got.Body["symbol"] != s.symbol {
			t.Fatalf("%s %s on %s: answer %v", s.qid, s.symbol, s.c.Name, got.Body)
		}
	}
	// The Web UI finds each payment under its chain.
	tc := st.Temporal(t)
	for _, s := range all {
		waitFor(t, 30*time.Second, "the payment found by PayflowChain", func() bool {
			ls, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("PayflowChain = '%s' AND PayflowQueueId = '%s'", s.c.Name, s.qid)})
			return err == nil && len(ls.Executions) == 1
		})
	}
	for _, s := range all {
		want := decimal.RequireFromString(s.amount)
		for _, c := range chains {
			eth := c.eth(t)
			sym := s.symbol
			if c != s.c {
				if sym == s.c.Native.Symbol {
					sym = c.Native.Symbol
				}
				if got := c.balance(t, eth, sym, s.to); !got.IsZero() {
					t.Errorf("%s paid on %s, yet %s holds %s %s on %s", s.qid, s.c.Name, s.to, got, sym, c.Name)
				}
				continue
			}
			if got := c.balance(t, eth, sym, s.to); !got.Equal(want) {
				t.Errorf("%s: %s holds %s %s on %s, want %s", s.qid, s.to, got, sym, c.Name, want)
			}
		}
	}
	requireLedgerMatchesChains(t, st, chains)
}

// TestSameAddressDepositsOnTwoChains: one address watched on two chains is
// two deposit streams: a token and a native deposit on each chain are each
// announced twice (status 2 then 1) under their own chain, and credited on
// that chain only.
func TestSameAddressDepositsOnTwoChains(t *testing.T) {
	st := stacktest.Load(t)
	chains := devChains(t)
	db := st.DB(t)
	tresp := st.Collect(t, topupResp, "address")
	addr := stacktest.RandomAddress()
	for _, c := range chains {
		st.Publish(t, topupKey, []byte(fmt.Sprintf(`{"chain":%q,"symbol":"USDT","address":%q,"timestamp":%d}`,
			c.Name, addr, time.Now().Unix())), true)
	}
	waitFor(t, time.Minute, "the watches of "+addr, func() bool {
		var n int
		_ = db.QueryRow("SELECT COUNT(DISTINCT chain) FROM watched_addresses WHERE address=?", addr).Scan(&n)
		return n == len(chains)
	})
	type dep struct {
		chain, symbol string
		amount        decimal.Decimal
		tx            string
	}
	var deps []dep
	for i, c := range chains {
		eth := c.eth(t)
		tokAmt := decimal.New(int64(3+i), 0)
		r := c.faucetSend(t, eth, "USDT", addr, tokAmt)
		deps = append(deps, dep{c.Name, "USDT", tokAmt, r.TxHash.Hex()})
		natAmt := decimal.New(int64(5+i), -2)
		r = c.faucetSend(t, eth, c.Native.Symbol, addr, natAmt)
		deps = append(deps, dep{c.Name, c.Native.Symbol, natAmt, r.TxHash.Hex()})
	}
	notices := tresp.Wait(t, addr, 2*len(deps), responseWait)
	time.Sleep(quietInterval)
	if n := len(tresp.Get(addr)); n != 2*len(deps) {
		t.Fatalf("%d notices for %s, want %d (two per deposit)", n, addr, 2*len(deps))
	}
	for _, d := range deps {
		var seen, credited int
		for _, n := range notices {
			if !strings.EqualFold(fmt.Sprint(n.Body["tx_hash"]), d.tx) {
				continue
			}
			if n.Body["chain"] != d.chain || n.Body["symbol"] != d.symbol {
				t.Fatalf("deposit %s on %s announced as %v", d.tx, d.chain, n.Body)
			}
			if amt, _ := decimal.NewFromString(fmt.Sprint(n.Body["amount"])); !amt.Equal(d.amount) {
				t.Fatalf("deposit %s announced with amount %v, want %s", d.tx, n.Body["amount"], d.amount)
			}
			switch status(n) {
			case "2":
				seen++
			case "1":
				credited++
			}
		}
		if seen != 1 || credited != 1 {
			t.Fatalf("deposit %s %s on %s: %d status=2 and %d status=1 notices, want one each", d.amount, d.symbol, d.chain,
				seen, credited)
		}
		var avail decimal.Decimal
		if err := db.QueryRow("SELECT available FROM balances WHERE chain=? AND address=? AND symbol=?", d.chain, addr,
			d.symbol).Scan(&avail); err != nil {
			t.Fatalf("ledger balance of %s %s on %s: %v", addr, d.symbol, d.chain, err)
		}
		if !avail.Equal(d.amount) {
			t.Fatalf("ledger holds %s %s for %s on %s, want %s", avail, d.symbol, addr, d.chain, d.amount)
		}
	}
}

// TestChainNodeDownDelaysOnlyItsChain: with the second chain's node stopped,
// a payment on the first chain completes; the second chain's payment waits,
// and completes once its node is back, each answered exactly once.
func TestChainNodeDownDelaysOnlyItsChain(t *testing.T) {
	st := stacktest.Load(t)
	chains := devChains(t)
	// Stop a chain other than stack.json's first (top-level) one.
	st0 := stacktest.Load(t)
	first, second := chains[0], chains[1]
	if first.ChainID != st0.ChainID {
		first, second = second, first
	}
	hot := hotWallet(t, st)
	wresp := st.Collect(t, withdrawResp, "queue_id")
	root := repoRoot(t)
	node := strings.ToLower(second.Name)
	stop := exec.Command(filepath.Join(root, "scripts", "stack.sh"), "stop-node", node)
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("stopping the %s node: %v\n%s", second.Name, err, out)
	}
	var restartOnce sync.Once
	restart := func() {
		restartOnce.Do(func() {
			up := exec.Command(filepath.Join(root, "scripts", "stack.sh"), "start-node", node)
			if out, err := up.CombinedOutput(); err != nil {
				t.Errorf("restarting the %s node: %v\n%s", second.Name, err, out)
			}
		})
	}
	t.Cleanup(restart)

	down := stacktest.RandomID("it-chain-down-")
	up := stacktest.RandomID("it-chain-up-")
	st.Publish(t, withdrawKey, chainWithdrawBody(down, hot, stacktest.RandomAddress(), "0.5", second.Name, "USDT"), true)
	st.Publish(t, withdrawKey, chainWithdrawBody(up, hot, stacktest.RandomAddress(), "0.5", first.Name, "USDT"), true)
	if got := wresp.Wait(t, up, 1, responseWait)[0]; status(got) != "1" {
		t.Fatalf("%s on %s while %s is down: %v", up, first.Name, second.Name, got.Body)
	}
	if n := len(wresp.Get(down)); n != 0 {
		t.Fatalf("%s on %s answered while its node is down: %v", down, second.Name, wresp.Get(down)[0].Body)
	}
	// The waiting payment is not silent: its step that keeps failing is
	// recorded with the error's words, for the metric and payflowctl.
	db := st.DB(t)
	downWF := workflows.WithdrawWorkflowID(down)
	waitFor(t, 2*time.Minute, "the failing step of "+downWF, func() bool {
		var n int
		_ = db.QueryRow("SELECT COUNT(*) FROM failing_steps WHERE workflow_id=? AND chain=? AND error<>''", downWF,
			second.Name).Scan(&n)
		return n == 1
	})
	ctl := buildCtl(t)
	ctl.awaitListed(t, []string{downWF}, "--status", "failing")
	if out := ctl.ok(t, "show", down); !strings.Contains(out, "failing:") {
		t.Errorf("payflowctl payment show %s does not say what keeps failing:\n%s", down, out)
	}
	restart()
	if got := onlyOne(t, wresp, down); status(got) != "1" {
		t.Fatalf("%s on %s after its node came back: %v", down, second.Name, got.Body)
	}
	var failing int
	if err := db.QueryRow("SELECT COUNT(*) FROM failing_steps WHERE workflow_id=?", downWF).Scan(&failing); err != nil {
		t.Fatal(err)
	}
	if failing != 0 {
		t.Errorf("%s answered and still recorded as failing", downWF)
	}
	if n := len(wresp.Get(up)); n != 1 {
		t.Fatalf("%d answers for %s", n, up)
	}
	requireLedgerMatchesChains(t, st, chains)
}

// TestWorkerRefusesOnlyTheBadChain: a second
// worker, started on the real stack with a config that gives the second
// chain another id than its node serves, or a token of it other decimals
// than its contract reports, refuses that chain alone: it logs the refusal
// at error with the reason, serves payflow_chain_refused{chain} = 1 for it
// and 0 for the first chain, which it serves, and keeps running. (It used to
// exit, and would not start again.)
func TestWorkerRefusesOnlyTheBadChain(t *testing.T) {
	root := repoRoot(t)
	dev := filepath.Join(root, ".dev")
	chains := devChains(t)
	first, second := chains[0], chains[1]
	var sym string
	for s := range second.Tokens {
		sym = s
		break
	}
	for _, c := range []struct {
		name string
		edit func(cc map[string]any)
		want string
	}{
		{"wrong chain id", func(cc map[string]any) { cc["chainId"] = second.ChainID + 1000 },
			fmt.Sprintf("chains.%s.chainId is %d but the node", second.Name, second.ChainID+1000)},
		{"wrong decimals", func(cc map[string]any) {
			cc["tokens"].(map[string]any)[sym].(map[string]any)["decimals"] = second.Tokens[sym].Decimals + 12
		}, fmt.Sprintf("chains.%s.tokens.%s.decimals is %d but its contract at", second.Name, sym, second.Tokens[sym].Decimals+12)},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dev, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var cfg map[string]any
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			c.edit(cfg["chains"].(map[string]any)[second.Name].(map[string]any))
			l, err := net.Listen("tcp", "127.0.0.1:0") // the running worker has the configured port
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			cfg["http_addr"] = addr
			p := filepath.Join(t.TempDir(), "config.json")
			out, _ := json.Marshal(cfg)
			if err := os.WriteFile(p, out, 0o600); err != nil {
				t.Fatal(err)
			}
			logPath := filepath.Join(t.TempDir(), "worker.log")
			logFile, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logFile.Close()
			cmd := exec.Command("bash", "-c", `set -a; . "$1"; set +a; exec "$2" -config "$3"`, "worker",
				filepath.Join(dev, "payflow.env"), filepath.Join(root, "bin", "payflow-worker"), p)
			cmd.Stdout, cmd.Stderr = logFile, logFile
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				_ = cmd.Process.Signal(os.Interrupt) // drains like a deploy's stop
				select {
				case <-exited:
				case <-time.After(time.Minute):
					_ = cmd.Process.Kill()
					<-exited
				}
			}()

			refused := fmt.Sprintf(`payflow_chain_refused{chain=%q} 1`, second.Name)
			served := fmt.Sprintf(`payflow_chain_refused{chain=%q} 0`, first.Name)
			var logs, metrics string
			deadline := time.Now().Add(2 * time.Minute)
			for {
				select {
				case err := <-exited:
					got, _ := os.ReadFile(logPath)
					t.Fatalf("the worker exited (%v):\n%s", err, got)
				default:
				}
				got, _ := os.ReadFile(logPath)
				logs = string(got)
				if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					metrics = string(body)
				}
				if strings.Contains(metrics, refused) && strings.Contains(metrics, served) &&
					servedLine(logs, first.Name) && strings.Contains(logs, c.want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no refusal of %s alone within 2 minutes; want %q in the log and %s, %s in /metrics\nlog:\n%s",
						second.Name, c.want, refused, served, logs)
				}
				time.Sleep(500 * time.Millisecond)
			}
			var refusal map[string]any
			for _, line := range strings.Split(logs, "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil && m["chain"] == second.Name && strings.Contains(fmt.Sprint(m["err"]), c.want) {
					refusal = m
				}
			}
			if refusal == nil || refusal["level"] != "ERROR" {
				t.Errorf("refusal logged as %v, want at ERROR with the chain and the reason", refusal)
			}
			if servedLine(logs, second.Name) {
				t.Errorf("the worker served %s too:\n%s", second.Name, logs)
			}
		})
	}
}

// servedLine tells whether the worker's JSON log says it serves chain.
func servedLine(logs, chain string) bool {
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "chain served" && m["chain"] == chain {
			return true
		}
	}
	return false
}

// requireLedgerMatchesChains checks, for every managed wallet on every chain
// and every token and native coin, that the ledger (available + held) equals
// the on-chain balance. Transfers of other tests may be between being mined
// and being decided: a pair is retried until it matches, for a while.
func requireLedgerMatchesChains(t *testing.T, st *stacktest.Stack, chains []*devChain) {
	t.Helper()
	db := st.DB(t)
	for _, c := range chains {
		eth := c.eth(t)
		symbols := []string{c.Native.Symbol}
		for s := range c.Tokens {
			symbols = append(symbols, s)
		}
		for _, w := range c.Managed {
			for _, sym := range symbols {
				var ledgerTotal, onChain decimal.Decimal
				deadline := time.Now().Add(2 * time.Minute)
				for {
					ledgerTotal = decimal.Zero
					_ = db.QueryRow("SELECT COALESCE(SUM(available+held),0) FROM balances WHERE chain=? AND address=? AND symbol=?",
						c.Name, strings.ToLower(w), sym).Scan(&ledgerTotal)
					onChain = c.balance(t, eth, sym, w)
					if ledgerTotal.Equal(onChain) || time.Now().After(deadline) {
						break
					}
					time.Sleep(2 * time.Second)
				}
				if !ledgerTotal.Equal(onChain) {
					t.Errorf("%s %s on %s: ledger %s, chain %s", w, sym, c.Name, ledgerTotal, onChain)
				}
			}
		}
	}
}

// TestNativeSweepOnSecondChain: a deposit wallet on the second chain that
// received its native coin through a topup is swept to that chain's
// collection wallet, less the gas its sweeps may cost; the ledger follows the
// chain for both wallets, fees included.
func TestNativeSweepOnSecondChain(t *testing.T) {
	st := stacktest.Load(t)
	chains := devChains(t)
	c := chains[0]
	if c.ChainID == st.ChainID {
		c = chains[1]
	}
	db := st.DB(t)
	eth := c.eth(t)
	tc := st.Temporal(t)
	native := c.Native.Symbol
	dep := createWalletOn(t, c.Name, stacktest.RandomID("it-native-sweep-"))
	st.Publish(t, topupKey, []byte(fmt.Sprintf(`{"chain":%q,"symbol":%q,"address":%q,"timestamp":%d}`, c.Name, native, dep,
		time.Now().Unix())), true)
	waitFor(t, time.Minute, "the watch of "+dep, func() bool {
		var n int
		_ = db.QueryRow("SELECT COUNT(*) FROM watched_addresses WHERE chain=? AND address=?", c.Name, dep).Scan(&n)
		return n == 1
	})
	two := decimal.New(2, 0)
	c.faucetSend(t, eth, native, dep, two)
	ledgerOf := func(addr string) decimal.Decimal {
		var v decimal.Decimal
		_ = db.QueryRow("SELECT COALESCE(SUM(available+held),0) FROM balances WHERE chain=? AND address=? AND symbol=?",
			c.Name, addr, native).Scan(&v)
		return v
	}
	waitFor(t, workflowWait, "the native deposit's credit", func() bool { return ledgerOf(dep).Equal(two) })

	ctx, cancel := context.WithTimeout(context.Background(), workflowWait)
	defer cancel()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: stacktest.RandomID("it-native-sweep-run-"),
		TaskQueue: "payflow." + c.Name}, workflows.Sweep, workflows.SweepInput{Symbols: []string{native},
		Threshold: protocol.MustAmount("1"), Addresses: []string{dep}, ConfirmTimeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.SweepResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if len(res.Started) != 1 {
		t.Fatalf("sweep started %+v, want one wallet sweep of %s", res.Started, dep)
	}
	var ws workflows.WalletSweepResult
	if err := tc.GetWorkflow(ctx, res.Started[0].WorkflowID, "").Get(ctx, &ws); err != nil {
		t.Fatalf("WalletSweep: %v", err)
	}
	if len(ws.Swept) != 1 || ws.Swept[0].Symbol != native || !ws.Swept[0].Amount.IsPositive() ||
		!ws.Swept[0].Amount.LessThan(two) {
		t.Fatalf("wallet sweep %+v; want one native sweep of a bit less than 2", ws)
	}
	tx, _, err := eth.TransactionByHash(context.Background(), common.HexToHash(ws.Swept[0].TxHash))
	if err != nil || tx.To() == nil || !strings.EqualFold(tx.To().Hex(), c.Collection) ||
		decimal.NewFromBigInt(tx.Value(), -18).Cmp(ws.Swept[0].Amount.Decimal) != 0 {
		t.Fatalf("sweep tx %s: %v; want %s %s to %s", ws.Swept[0].TxHash, err, ws.Swept[0].Amount.String(), native, c.Collection)
	}
	var credits int
	if err := db.QueryRow(`SELECT COUNT(*) FROM journal WHERE op='credit' AND chain=? AND address=? AND tx_hash=?`,
		c.Name, strings.ToLower(c.Collection), strings.ToLower(ws.Swept[0].TxHash)).Scan(&credits); err != nil || credits != 1 {
		t.Fatalf("collection credits for the sweep: %d (%v), want 1", credits, err)
	}
	// The deposit wallet: what is left on chain (2 − sweep − fee) is what the
	// ledger says, and nothing is held.
	if onChain := c.balance(t, eth, native, dep); !ledgerOf(dep).Equal(onChain) {
		t.Fatalf("deposit wallet: ledger %s, chain %s", ledgerOf(dep), onChain)
	}
	requireLedgerMatchesChains(t, st, chains)
}

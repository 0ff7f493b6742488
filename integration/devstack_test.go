package integration

import (
	"context"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/shopspring/decimal"

	"payflow/chain/token"
	"payflow/internal/stacktest"
)

// devTokenSymbols are the tokens `make up` deploys on every dev chain.
var devTokenSymbols = []string{"USDC", "USDT"}

// TestDevStackChains: `make up` runs every chain of stack.json on its own
// node, which reports the chain id stack.json gives, no two alike; the
// top-level fields describe the first chain (ETH); both dev tokens have code
// and 6 decimals on every chain; the dev wallets are the same addresses on
// every chain, each a wallet of that chain whose key payflow-signer holds
// (none sealed in the ledger); and the ledger
// (available + held) equals the on-chain balance of every managed wallet for
// every token and the native coin of every chain.
func TestDevStackChains(t *testing.T) {
	st := stacktest.Load(t)
	if len(st.Chains) < 2 {
		t.Fatalf("stack.json lists %d chains; the dev stack runs at least two", len(st.Chains))
	}
	first, ok := st.Chains["ETH"]
	if !ok {
		t.Fatalf("stack.json's chains has no ETH: %v", slices.Sorted(maps.Keys(st.Chains)))
	}
	if st.ETHRPCURL != first.ETHRPCURL || st.ETHWSURL != first.ETHWSURL || st.ChainID != first.ChainID ||
		st.Confirmations != first.Confirmations || st.FaucetPrivateKey != first.FaucetPrivateKey ||
		st.CollectionAddress != first.CollectionAddress || !slices.Equal(st.ManagedWallets, first.ManagedWallets) ||
		st.ColdAddress != first.ColdAddress ||
		!maps.Equal(st.Tokens, first.Tokens) {
		t.Errorf("stack.json's top-level chain fields do not describe chains.ETH")
	}
	if got := slices.Sorted(maps.Keys(st.Tokens)); !slices.Equal(got, devTokenSymbols) {
		t.Errorf("stack.json's tokens are %v, want %v", got, devTokenSymbols)
	}

	ctx := context.Background()
	db := st.DB(t)
	ids := map[int64]string{}
	nodes := map[string]string{}
	for _, name := range st.EVMChains() {
		c := st.Chains[name]
		eth := stacktest.ChainEth(t, c)
		id, err := eth.ChainID(ctx)
		if err != nil {
			t.Fatalf("%s's node %s: %v", name, c.ETHRPCURL, err)
		}
		if id.Int64() != c.ChainID {
			t.Errorf("%s's node %s reports chain id %d; stack.json says %d", name, c.ETHRPCURL, id, c.ChainID)
		}
		if other, dup := ids[c.ChainID]; dup {
			t.Errorf("%s and %s have the same chain id %d", name, other, c.ChainID)
		}
		ids[c.ChainID] = name
		if other, dup := nodes[c.ETHRPCURL]; dup {
			t.Errorf("%s and %s are served by the same node %s", name, other, c.ETHRPCURL)
		}
		nodes[c.ETHRPCURL] = name
		if c.Native.Symbol == "" || c.Native.Decimals != 18 {
			t.Errorf("%s's native coin is %+v; want a symbol and 18 decimals", name, c.Native)
		}
		if got := slices.Sorted(maps.Keys(c.Tokens)); !slices.Equal(got, devTokenSymbols) {
			t.Errorf("%s's tokens are %v, want %v", name, got, devTokenSymbols)
		}
		for _, sym := range devTokenSymbols {
			tok := c.Tokens[sym]
			addr := common.HexToAddress(tok.Address)
			code, err := eth.CodeAt(ctx, addr, nil)
			if err != nil || len(code) == 0 {
				t.Errorf("%s on %s: no code at %s (%v)", sym, name, tok.Address, err)
				continue
			}
			erc20, err := token.NewTestUSDC(addr, eth) // decimals() is every ERC20's
			if err != nil {
				t.Fatal(err)
			}
			if d, err := erc20.Decimals(&bind.CallOpts{Context: ctx}); err != nil || d != 6 || tok.Decimals != 6 {
				t.Errorf("%s on %s: decimals %d on chain (%v), %d in stack.json; want 6", sym, name, d, err, tok.Decimals)
			}
		}
		if !slices.Equal(c.ManagedWallets, first.ManagedWallets) {
			t.Errorf("%s's managed wallets %v are not ETH's %v", name, c.ManagedWallets, first.ManagedWallets)
		}
		for _, w := range c.ManagedWallets {
			var n int
			if err := db.QueryRow("SELECT COUNT(*) FROM wallets WHERE chain=? AND address=? AND key_holder='signer' AND enc_key IS NULL",
				name, strings.ToLower(w)).Scan(&n); err != nil || n != 1 {
				t.Errorf("managed wallet %s is not a wallet of %s whose key payflow-signer holds (%d rows, %v)", w, name, n, err)
			}
		}
		if !slices.Contains(c.ManagedWallets, c.CollectionAddress) {
			t.Errorf("%s's collection address %s is not a managed wallet", name, c.CollectionAddress)
		}
		// The cold address: the worker registered it watch-only; payflow
		// holds no key for it.
		var kind, holder string
		if err := db.QueryRow("SELECT kind, key_holder FROM wallets WHERE chain=? AND address=?", name,
			strings.ToLower(c.ColdAddress)).Scan(&kind, &holder); err != nil || kind != "cold" || holder != "none" ||
			slices.Contains(c.ManagedWallets, c.ColdAddress) {
			t.Errorf("%s's cold address %q: kind %q, key holder %q (%v); want a watch-only cold wallet, none of the dev wallets",
				name, c.ColdAddress, kind, holder, err)
		}
	}
	devLedgerMatchesChains(t, st)
}

// devLedgerMatchesChains checks, for every managed wallet of every chain of
// stack.json and every token and the native coin, that the ledger
// (available + held) equals the on-chain balance. Another test's transfer
// may be between being mined and being decided: a pair that differs is read
// again for up to two minutes.
func devLedgerMatchesChains(t *testing.T, st *stacktest.Stack) {
	t.Helper()
	ctx := context.Background()
	db := st.DB(t)
	for _, name := range st.EVMChains() {
		c := st.Chains[name]
		eth := stacktest.ChainEth(t, c)
		for _, w := range c.ManagedWallets {
			for _, sym := range append([]string{c.Native.Symbol}, slices.Sorted(maps.Keys(c.Tokens))...) {
				var ledger, onChain decimal.Decimal
				for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
					ledger = decimal.Zero
					if err := db.QueryRowContext(ctx, "SELECT COALESCE(SUM(available+held),0) FROM balances WHERE chain=? AND address=? AND symbol=?",
						name, strings.ToLower(w), sym).Scan(&ledger); err != nil {
						t.Fatal(err)
					}
					onChain = devBalance(t, eth, c, sym, w)
					if ledger.Equal(onChain) || time.Now().After(deadline) {
						break
					}
				}
				if !ledger.Equal(onChain) {
					t.Errorf("%s %s on %s: ledger %s, chain %s", w, sym, name, ledger, onChain)
				}
			}
		}
	}
}

// devBalance is owner's on-chain balance of symbol (a token of c, or its
// native coin) in units of the asset.
func devBalance(t *testing.T, eth *ethclient.Client, c stacktest.Chain, symbol, owner string) decimal.Decimal {
	t.Helper()
	ctx := context.Background()
	var units *big.Int
	var decimals int32
	var err error
	if symbol == c.Native.Symbol {
		units, err = eth.BalanceAt(ctx, common.HexToAddress(owner), nil)
		decimals = c.Native.Decimals
	} else {
		tok := c.Tokens[symbol]
		var erc20 *token.TestUSDC
		if erc20, err = token.NewTestUSDC(common.HexToAddress(tok.Address), eth); err == nil {
			units, err = erc20.BalanceOf(&bind.CallOpts{Context: ctx}, common.HexToAddress(owner))
		}
		decimals = tok.Decimals
	}
	if err != nil {
		t.Fatalf("%s balance of %s: %v", symbol, owner, err)
	}
	return decimal.NewFromBigInt(units, -decimals)
}

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	dto "github.com/prometheus/client_model/go"

	"payflow/chain/token"
	"payflow/config"
	"payflow/internal/metrics"
)

// simChainID is the chain id of go-ethereum's simulated backend.
const simChainID = 1337

// simChain is a simulated chain with TestUSDT and TestUSDC (6 decimals each).
type simChain struct {
	client     simulated.Client
	usdt, usdc common.Address
}

func newSimChain(t *testing.T) simChain {
	t.Helper()
	key, err := ecdsa.GenerateKey(crypto.S256(), strings.NewReader(strings.Repeat("payflow chain check seed ", 8)))
	if err != nil {
		t.Fatal(err)
	}
	sim := simulated.NewBackend(types.GenesisAlloc{
		crypto.PubkeyToAddress(key.PublicKey): {Balance: new(big.Int).Exp(big.NewInt(10), big.NewInt(21), nil)},
	})
	t.Cleanup(func() { sim.Close() })
	auth, err := bind.NewKeyedTransactorWithChainID(key, big.NewInt(simChainID))
	if err != nil {
		t.Fatal(err)
	}
	c := simChain{client: sim.Client()}
	if c.usdt, _, _, err = token.DeployTestUSDT(auth, c.client); err != nil {
		t.Fatal(err)
	}
	sim.Commit()
	if c.usdc, _, _, err = token.DeployTestUSDC(auth, c.client); err != nil {
		t.Fatal(err)
	}
	sim.Commit()
	return c
}

// config is the chain's config as a correct operator writes it, changed by edit.
func (c simChain) config(edit func(*config.ChainConfig)) config.ChainConfig {
	ch := config.ChainConfig{ChainID: simChainID, RPCURL: "https://node.example/v3/secret-key",
		Tokens: map[string]config.Token{
			"USDT": {Address: c.usdt.Hex(), Decimals: 6},
			"USDC": {Address: c.usdc.Hex(), Decimals: 6},
		}}
	if edit != nil {
		edit(&ch)
	}
	return ch
}

// TestCheckChainRefusesThatChainAlone: the
// start-up check of a chain refuses it when its node serves another chain
// id or a token's contract reports other decimals than the config (a 1 USDT
// deposit would be announced as 10¹² USDT), naming the chain, the symbol
// and both decimals; another chain checked alongside, on its own correct
// node and config, is served.
func TestCheckChainRefusesThatChainAlone(t *testing.T) {
	ctx := context.Background()
	eth, bsc := newSimChain(t), newSimChain(t)
	for _, c := range []struct {
		name    string
		bsc     config.ChainConfig
		wantErr []string // in BSC's refusal; nil: BSC is served
	}{
		{"both correct", bsc.config(nil), nil},
		{"wrong chain id", bsc.config(func(ch *config.ChainConfig) { ch.ChainID = 1397 }),
			[]string{"chains.BSC.chainId is 1397", "serves chain id 1337"}},
		{"wrong decimals", bsc.config(func(ch *config.ChainConfig) {
			ch.Tokens["USDT"] = config.Token{Address: bsc.usdt.Hex(), Decimals: 18}
		}), []string{"chains.BSC.tokens.USDT.decimals is 18", "says 6"}},
		{"no token at the address", bsc.config(func(ch *config.ChainConfig) {
			ch.Tokens["USDC"] = config.Token{Address: "0x00000000000000000000000000000000000dec02", Decimals: 6}
		}), []string{"chains.BSC.tokens.USDC"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := checkChain(ctx, "ETH", eth.config(nil), eth.client); err != nil {
				t.Fatalf("ETH refused: %v", err)
			}
			err := checkChain(ctx, "BSC", c.bsc, bsc.client)
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("BSC refused: %v", err)
				}
				return
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("BSC: %v, want a refusal (config.ErrInvalid)", err)
			}
			for _, want := range c.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "secret-key") {
				t.Errorf("refusal %q shows the node URL's key", err)
			}
		})
	}
}

// TestServeChainsGoesOnWithoutARefusedChain: a chain
// whose serve fails (a refusal or a failed setup) is refused alone: logged
// at error with its reason and payflow_chain_refused{chain} = 1. The other
// chains keep serving (their context is not cancelled) until the worker
// stops; before, the first error cancelled every chain and ended the worker.
func TestServeChainsGoesOnWithoutARefusedChain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	m := metrics.New()
	for _, name := range []string{"ETH", "BSC", "POLYGON"} {
		m.Init(name, nil)
	}
	refuse := refuseChain(log, m)
	refused := make(chan string, 3)
	serving := make(chan struct{}, 3)
	var mu sync.Mutex
	var served []context.Context
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveChains(ctx, []string{"ETH", "BSC", "POLYGON"}, func(ctx context.Context, name string) error {
			if name == "BSC" {
				return errors.New("chains.BSC.tokens.USDT.decimals is 18 but its contract says 6")
			}
			mu.Lock()
			served = append(served, ctx)
			mu.Unlock()
			serving <- struct{}{}
			<-ctx.Done()
			return nil
		}, func(name string, err error) {
			refuse(name, err)
			refused <- name
		})
	}()
	waitFor(t, "ETH or POLYGON serving", serving)
	waitFor(t, "POLYGON or ETH serving", serving)
	if got := <-refused; got != "BSC" {
		t.Fatalf("refused %s, want BSC", got)
	}
	mu.Lock()
	for _, c := range served {
		if c.Err() != nil {
			t.Errorf("a served chain was stopped by BSC's refusal: %v", context.Cause(c))
		}
	}
	mu.Unlock()
	gauge := func(chain string) float64 {
		t.Helper()
		fams, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "payflow_chain_refused" {
				continue
			}
			for _, mt := range f.GetMetric() {
				if labelValue(mt, "chain") == chain {
					return mt.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no payflow_chain_refused{chain=%q}", chain)
		return 0
	}
	if gauge("BSC") != 1 || gauge("ETH") != 0 || gauge("POLYGON") != 0 {
		t.Errorf("payflow_chain_refused: BSC %v ETH %v POLYGON %v, want 1, 0, 0", gauge("BSC"), gauge("ETH"), gauge("POLYGON"))
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "chain=BSC") ||
		!strings.Contains(l, "decimals is 18") {
		t.Errorf("refusal log %q: want an error naming BSC and the reason", l)
	}
	cancel()
	waitFor(t, "serveChains returning after the worker stops", done)
	if len(refused) != 0 {
		t.Errorf("another chain refused: %s", <-refused)
	}
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

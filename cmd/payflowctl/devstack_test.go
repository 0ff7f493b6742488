package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"payflow/config"
	"payflow/ledger"
)

// TestChainFlag: -chain takes NAME,NATIVE_SYMBOL,RPC_URL,WS_URL, upper-cases
// the names, keeps the order and refuses a malformed or repeated chain.
func TestChainFlag(t *testing.T) {
	var l chainList
	for _, v := range []string{"eth,eth,http://127.0.0.1:8545,ws://127.0.0.1:8546", "BSC,BNB,http://127.0.0.1:8547,ws://127.0.0.1:8548"} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	want := chainList{{"ETH", "ETH", "http://127.0.0.1:8545", "ws://127.0.0.1:8546"}, {"BSC", "BNB", "http://127.0.0.1:8547", "ws://127.0.0.1:8548"}}
	if len(l) != 2 || l[0] != want[0] || l[1] != want[1] {
		t.Fatalf("got %+v", l)
	}
	for _, bad := range []string{
		"BSC,BNB,http://x,ws://y",                // BSC again
		"TRON,TRX,http://x",                      // three fields
		"TRON,,http://x,ws://y",                  // no native symbol
		"TRON,TRX,ws://x,http://y",               // URLs swapped
		"TRON,TRX,http://x,ws://y,extra",         // five fields
		",TRX,http://127.0.0.1:1,ws://127.0.0.1", // no name
	} {
		if err := l.Set(bad); err == nil {
			t.Errorf("-chain %q accepted", bad)
		}
	}
}

// TestLoadSecretsMovesTheOneChain: a secrets.json written when the dev stack
// ran one chain keeps its token and genesis, now as chains.ETH, so a second
// `make up` does not deploy the token again.
func TestLoadSecretsMovesTheOneChain(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secrets.json")
	old := `{"sign_key":"s","master_key":"m","faucet_private_key":"f","token_address":"0xabc","genesis_hash":"0xg"}`
	if err := os.WriteFile(p, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := loadSecrets(p)
	if err != nil {
		t.Fatal(err)
	}
	eth := s.Chains["ETH"]
	if eth == nil || eth.Genesis != "0xg" || eth.Tokens["USDT"] != "0xabc" || s.TokenAddr != "" || s.GenesisHex != "" {
		t.Fatalf("got %+v, chains.ETH %+v", s, eth)
	}
	if s.SignKey != "s" || s.MasterKey != "m" || s.FaucetKey != "f" {
		t.Fatalf("keys changed: %+v", s)
	}
	if err := saveJSON(p, s, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if strings.Contains(string(b), "token_address") {
		t.Errorf("secrets.json still has the one chain's fields:\n%s", b)
	}
}

// TestDevConfigGivesEveryAssetItsOwnAmounts: the config
// devstack writes loads under the worker's validation, and gives every asset
// of every dev chain its own approval and sweep thresholds and hot tier
// bounds, no two alike; sweep thresholds stay above what the dev deposit
// wallets are given, so the hourly sweep leaves the wallets the tests pay
// from alone, and hot ceilings far above what the dev hot tier is given, so
// the treasury pass does not move it to cold. Each chain has its cold address.
func TestDevConfigGivesEveryAssetItsOwnAmounts(t *testing.T) {
	addr := func(b byte) string { return "0x" + strings.Repeat(fmt.Sprintf("%02x", b), 20) }
	cfg := config.Default()
	cfg.ETH.Chain = "ETH"
	cfg.Chains = map[string]config.ChainConfig{}
	for i, spec := range []chainSpec{{"ETH", "ETH", "http://127.0.0.1:8545", "ws://127.0.0.1:8546"},
		{"BSC", "BNB", "http://127.0.0.1:8547", "ws://127.0.0.1:8548"}, {"POLY", "POL", "http://127.0.0.1:8549", "ws://127.0.0.1:8550"}} {
		tokens := map[string]string{}
		for j, dt := range devTokens {
			tokens[dt.symbol] = addr(byte(16*i + j + 1))
		}
		cfg.Chains[spec.Name] = devChainConfig(spec, int64(1337+i), 3, addr(byte(200+i)), addr(byte(210+i)), tokens)
	}
	p := filepath.Join(t.TempDir(), "config.json")
	if err := writeConfig(p, cfg); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvAMQPURL, "amqp://guest:guest@127.0.0.1:5682/")
	t.Setenv(config.EnvMySQLDSN, "u:p@tcp(127.0.0.1:3316)/payflow")
	loaded, err := config.Load(p)
	if err != nil {
		t.Fatalf("the dev config is refused: %v", err)
	}
	tokenGift := decimal.Zero // the most of a token any dev deposit wallet is given
	for _, w := range devWallets {
		if g := decimal.NewFromInt(w.tokens); w.kind == ledger.KindDeposit && g.GreaterThan(tokenGift) {
			tokenGift = g
		}
	}
	nativeGift := decimal.NewFromBigInt(devNative, -config.NativeDecimals)
	seen := map[string]string{}
	for _, name := range loaded.ChainNames() {
		ch := loaded.Chains[name]
		for _, sym := range ch.Symbols() {
			a, _ := ch.Asset(sym)
			for kind, v := range map[string]string{"approval": a.ApprovalThreshold, "sweep": a.SweepThreshold,
				"hot_ceiling": a.HotCeiling, "hot_floor": a.HotFloor} {
				where := name + " " + sym + " " + kind
				if other, dup := seen[kind+v]; dup {
					t.Errorf("%s threshold %s is %s's too: every asset has its own", where, v, other)
				}
				seen[kind+v] = where
			}
			gift := tokenGift
			if a.Native {
				gift = nativeGift
			}
			if !decimal.RequireFromString(a.SweepThreshold).GreaterThan(gift) {
				t.Errorf("%s %s sweep threshold %s: not above the %s a dev deposit wallet is given", name, sym, a.SweepThreshold, gift)
			}
			// The hot tier is what the hot and collection wallets are
			// given; its ceiling stays far above (ten times), its floor below.
			tier := decimal.Zero
			for _, w := range devWallets {
				if w.kind == ledger.KindHot || w.kind == ledger.KindCollection {
					if a.Native {
						tier = tier.Add(nativeGift)
					} else {
						tier = tier.Add(decimal.NewFromInt(w.tokens))
					}
				}
			}
			ceiling, okC := a.Ceiling()
			floor, okF := a.Floor()
			if !okC || !okF || !ceiling.GreaterThan(tier.Mul(decimal.NewFromInt(10))) || !floor.LessThan(tier) {
				t.Errorf("%s %s hot tier bounds %s..%s: want a floor below the %s the dev hot tier is given and a ceiling ten times above",
					name, sym, a.HotFloor, a.HotCeiling, tier)
			}
		}
		if want := devColdAddress(name); ch.ColdAddress != want || want == devColdAddress("OTHER") {
			t.Errorf("%s cold address %q, want %q, its own", name, ch.ColdAddress, want)
		}
	}
}

// TestWorkerFlag: -worker takes worker-N=HOST:PORT and refuses another name,
// an address without a port or a worker given twice.
func TestWorkerFlag(t *testing.T) {
	w := workerAddrs{}
	if err := w.Set("worker-2=127.0.0.1:8382"); err != nil {
		t.Fatal(err)
	}
	if w["worker-2"] != "127.0.0.1:8382" || len(w) != 1 {
		t.Fatalf("got %v", w)
	}
	for _, bad := range []string{"worker-2=127.0.0.1:9999", "starter=127.0.0.1:8381", "worker-=127.0.0.1:1", "worker-3", "worker-3=localhost"} {
		if err := w.Set(bad); err == nil {
			t.Errorf("-worker %s accepted", bad)
		}
	}
}

// TestDevDenyListStartsFromTheSampleAndIsKept: the first devstack writes
// the sample; a later one keeps the file as it is.
func TestDevDenyListStartsFromTheSampleAndIsKept(t *testing.T) {
	dir := t.TempDir()
	path, err := devDenyList(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(path) || filepath.Base(path) != "deny-list.txt" {
		t.Fatalf("path %s", path)
	}
	body, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(body), "EXAMPLE") {
		t.Fatalf("the dev list is not the sample: %v\n%s", err, body)
	}
	if err := os.WriteFile(path, []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := devDenyList(dir); err != nil {
		t.Fatal(err)
	}
	if body, _ := os.ReadFile(path); string(body) != "# mine\n" {
		t.Fatalf("devstack overwrote the dev list: %s", body)
	}
}

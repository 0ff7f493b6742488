package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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

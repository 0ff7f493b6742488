package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSignerReadsChainsWithoutTheWorkersSections(t *testing.T) {
	t.Setenv(EnvMySQLDSN, "u:p@tcp(127.0.0.1:3306)/payflow")
	t.Setenv(EnvSignerSocket, "/run/payflow/signer.sock")

	// No file yet (a dev stack before devstack): no chains, and it loads.
	cfg, err := LoadSigner(filepath.Join(t.TempDir(), "missing.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Chains) != 0 || cfg.Signer.Socket != "/run/payflow/signer.sock" || cfg.Custody.KMS.Endpoint != "" {
		t.Fatalf("chains %v, socket %q", cfg.Chains, cfg.Signer.Socket)
	}

	// Chains and custody, no rmq_config nor sign key: what the signer reads.
	cfg, err = LoadSigner(write(t, `{"chains": {"eth": {"chainId": 1337, "rpcUrl": "http://x", "wsUrl": "ws://x", "confirmHeight": 1,
	  "maxFeeGwei": 100, "native": {"symbol": "eth", "approval_threshold": "1", "sweep_threshold": "1"},
	  "tokens": {"usdt": {"address": "0x90ccd1c41a12c0ba1917b5e6c61f05652805ec0c", "decimals": 6, "approval_threshold": "1", "sweep_threshold": "1"}}}},
	  "custody": {"kms": {"endpoint": "http://127.0.0.1:8390", "envelope_key_id": "k"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	eth, ok := cfg.Chain("ETH")
	if !ok || eth.ChainID != 1337 || eth.Native.Symbol != "ETH" || eth.Tokens["USDT"].Decimals != 6 {
		t.Fatalf("chains %+v", cfg.Chains)
	}
	if cfg.Custody.KMS.Endpoint != "http://127.0.0.1:8390" || cfg.Custody.KMS.EnvelopeKeyID != "k" {
		t.Fatalf("custody %+v", cfg.Custody)
	}

	t.Setenv(EnvKMSEndpoint, "http://127.0.0.1:9999")
	if cfg, err = LoadSigner(""); err != nil || cfg.Custody.KMS.Endpoint != "http://127.0.0.1:9999" {
		t.Fatalf("%s: endpoint %q, err %v", EnvKMSEndpoint, cfg.Custody.KMS.Endpoint, err)
	}

	// A chain is still validated.
	_, err = LoadSigner(write(t, `{"chains": {"ETH": {"chainId": 0, "rpcUrl": "http://x", "wsUrl": "ws://x", "confirmHeight": 1,
	  "native": {"symbol": "ETH", "approval_threshold": "1", "sweep_threshold": "1"}}}}`))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "chains.ETH.chainId") {
		t.Fatalf("err = %v, want chains.ETH.chainId named", err)
	}
}

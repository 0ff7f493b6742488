package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withHTTP is the seed-shape config with http_addr (and api, when given) set.
func withHTTP(addr, api string) string {
	extra := `"http_addr": "` + addr + `",`
	if api != "" {
		extra += `"api": ` + api + `,`
	}
	return strings.Replace(seedShape, `"sign_key"`, extra+` "sign_key"`, 1)
}

func TestAPIOffLoopbackNeedsATokenOrMTLS(t *testing.T) {
	t.Setenv(EnvAPIToken, "")
	for _, addr := range []string{"127.0.0.1:8381", "localhost:8381", "[::1]:8381"} {
		if _, err := Load(write(t, withHTTP(addr, ""))); err != nil {
			t.Errorf("loopback %s without a token: %v", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:8381", ":8381", "10.1.2.3:8381", "api.internal:8381"} {
		_, err := Load(write(t, withHTTP(addr, "")))
		if err == nil || !strings.Contains(err.Error(), "not a loopback address") || !strings.Contains(err.Error(), EnvAPIToken) {
			t.Errorf("%s without a token or mTLS: %v, want refused naming %s", addr, err, EnvAPIToken)
		}
	}
	if _, err := Load(write(t, withHTTP("0.0.0.0:8381", `{"tls": {"cert_file": "c.pem", "key_file": "k.pem", "client_ca_file": "ca.pem"}}`))); err != nil {
		t.Errorf("mTLS off loopback: %v", err)
	}
	if _, err := Load(write(t, withHTTP("0.0.0.0:8381", `{"tls": {"cert_file": "c.pem", "key_file": "k.pem"}}`))); err == nil {
		t.Error("TLS without client certificates nor a token off loopback was accepted")
	}
	if _, err := Load(write(t, withHTTP("0.0.0.0:8381", `{"tls": {"client_ca_file": "ca.pem"}}`))); err == nil ||
		!strings.Contains(err.Error(), "cert_file") {
		t.Errorf("api.tls without its certificate: %v", err)
	}
	t.Setenv(EnvAPIToken, "a-token-long-enough-123")
	cfg, err := Load(write(t, withHTTP("0.0.0.0:8381", "")))
	if err != nil {
		t.Fatalf("off loopback with %s: %v", EnvAPIToken, err)
	}
	if cfg.API.Token.Reveal() != "a-token-long-enough-123" || strings.Contains(cfg.API.Token.String(), "long") {
		t.Errorf("token %q (prints %q)", cfg.API.Token.Reveal(), cfg.API.Token)
	}
}

func TestAPITokenFile(t *testing.T) {
	t.Setenv(EnvAPIToken, "")
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("  from-a-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(write(t, withHTTP("0.0.0.0:8381", `{"token_file": "`+p+`"}`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.API.ResolveToken(); err != nil || cfg.API.Token.Reveal() != "from-a-file-0123456789" {
		t.Errorf("token from file: %q, %v", cfg.API.Token.Reveal(), err)
	}
	short := APIConfig{Token: "short"}
	if err := short.ResolveToken(); err == nil {
		t.Error("a 5-character token was accepted")
	}
}

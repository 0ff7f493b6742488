package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"payflow/api"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

const testToken = "s3cret-token-of-the-api-0123456789"

func authServer(t *testing.T, opts ...api.Option) (*httptest.Server, *syncBuffer) {
	t.Helper()
	db := stacktest.TestDB(t, "api")
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := httptest.NewUnstartedServer(api.NewHandler(ledger.New(db), slog.New(slog.NewJSONHandler(logs, nil)), opts...))
	t.Cleanup(srv.Close)
	return srv, logs
}

func call(t *testing.T, c *http.Client, method, url, auth string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s %s: 401 without a WWW-Authenticate: Bearer challenge", method, url)
	}
	return resp.StatusCode
}

func TestAPIAsksForTheBearerToken(t *testing.T) {
	srv, logs := authServer(t, api.WithBearerToken(testToken))
	srv.Start()
	c := srv.Client()
	bal := srv.URL + "/v1/wallets/ETH/0x00000000000000000000000000000000000000aa/balances"
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong-token-wrong-token-wrong", http.StatusUnauthorized},
		{"Bearer " + testToken[:len(testToken)-1], http.StatusUnauthorized},
		{"Basic " + testToken, http.StatusUnauthorized},
		{"Bearer " + testToken, http.StatusOK},
		{"bearer " + testToken, http.StatusOK},
	} {
		if got := call(t, c, "GET", bal, tc.auth); got != tc.want {
			t.Errorf("balances with Authorization %q: %d, want %d", tc.auth, got, tc.want)
		}
	}
	for _, path := range []string{"/v1/wallets/ETH/0x00000000000000000000000000000000000000aa/history", "/v1/reconciliations?chain=ETH"} {
		if got := call(t, c, "GET", srv.URL+path, ""); got != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, got)
		}
	}
	if got := call(t, c, "POST", srv.URL+"/v1/addresses/ETH", ""); got != http.StatusUnauthorized {
		t.Errorf("POST /v1/addresses/ETH without a token: %d, want 401 (not the 503 of no xpub)", got)
	}
	if got := call(t, c, "GET", srv.URL+"/healthz", ""); got != http.StatusOK {
		t.Errorf("healthz without a token: %d, want 200 (open)", got)
	}
	if strings.Contains(logs.String(), testToken[:12]) || strings.Contains(logs.String(), "wrong-token") {
		t.Errorf("a token reached the log: %s", logs.String())
	}
}

func TestAPIWithoutAuthAnswersAnyone(t *testing.T) {
	srv, _ := authServer(t, api.WithBearerToken(""))
	srv.Start()
	if got := call(t, srv.Client(), "GET", srv.URL+"/v1/wallets/ETH/0x00000000000000000000000000000000000000aa/balances", ""); got != http.StatusOK {
		t.Errorf("no token configured: %d, want 200", got)
	}
}

func TestAPIClientCertificateAuthenticates(t *testing.T) {
	caKey, caCert := newCA(t, "payflow test clients")
	otherKey, otherCA := newCA(t, "someone else")
	srv, _ := authServer(t, api.WithBearerToken(testToken), api.WithClientCertificates())
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	bal := srv.URL + "/v1/wallets/ETH/0x00000000000000000000000000000000000000aa/balances"

	withCert := func(key *ecdsa.PrivateKey, ca *x509.Certificate) *http.Client {
		c := srv.Client()
		tr := c.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{clientCert(t, key, ca)}
		return &http.Client{Transport: tr}
	}
	if got := call(t, withCert(caKey, caCert), "GET", bal, ""); got != http.StatusOK {
		t.Errorf("a client certificate of the API's CA: %d, want 200", got)
	}
	if got := call(t, srv.Client(), "GET", bal, ""); got != http.StatusUnauthorized {
		t.Errorf("no certificate, no token: %d, want 401", got)
	}
	if got := call(t, srv.Client(), "GET", bal, "Bearer "+testToken); got != http.StatusOK {
		t.Errorf("no certificate, the token: %d, want 200", got)
	}
	// A certificate of another CA is not sent (the server names its CA)
	// or fails the handshake: either way nothing is answered.
	req, _ := http.NewRequest("GET", bal, nil)
	if resp, err := withCert(otherKey, otherCA).Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a certificate of another CA: %d, want 401 or the handshake refused", resp.StatusCode)
		}
	}
}

func newCA(t *testing.T, name string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func clientCert(t *testing.T, caKey *ecdsa.PrivateKey, ca *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ops-client"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

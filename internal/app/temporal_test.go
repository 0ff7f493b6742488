package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"payflow/config"
	"payflow/internal/app"
	"payflow/internal/stacktest"
)

// testPKI is a throwaway CA with the server's and a client's certificates,
// written as PEM files.
type testPKI struct {
	dir                           string
	caFile, serverCert, serverKey string
	clientCert, clientKey         string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "payflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{dir: dir, caFile: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	// The server's certificate serves the frontend; the client's is payflow's.
	p.serverCert, p.serverKey = issue(t, dir, "server", ca, caKey, 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue(t, dir, "client", ca, caKey, 3, x509.ExtKeyUsageClientAuth)
	return p
}

func issue(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, usage x509.ExtKeyUsage) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "payflow test " + name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return cert, keyFile
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTemporalOptions(t *testing.T) {
	pki := newTestPKI(t)
	opts, err := app.TemporalOptions(config.TemporalConfig{Address: "127.0.0.1:7233", Namespace: "default"})
	if err != nil || opts.ConnectionOptions.TLS != nil || opts.Credentials != nil {
		t.Fatalf("plaintext options = %+v, %v", opts, err)
	}

	opts, err = app.TemporalOptions(config.TemporalConfig{Address: "temporal.example:7233", Namespace: "payments",
		TLS: &config.TemporalTLS{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}})
	if err != nil {
		t.Fatal(err)
	}
	tc := opts.ConnectionOptions.TLS
	if tc == nil || tc.ServerName != "temporal.example" || tc.RootCAs == nil || len(tc.Certificates) != 1 || opts.Namespace != "payments" {
		t.Fatalf("mTLS options = %+v (TLS %+v)", opts, tc)
	}

	keyFile := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(keyFile, []byte("  the-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err = app.TemporalOptions(config.TemporalConfig{Address: "x.tmprl.cloud:7233", TLS: &config.TemporalTLS{ServerName: "x.tmprl.cloud"}, APIKeyFile: keyFile})
	if err != nil || opts.Credentials == nil || opts.ConnectionOptions.TLS.RootCAs != nil {
		t.Fatalf("API key options = %+v, %v", opts, err)
	}

	for name, bad := range map[string]config.TemporalConfig{
		"missing CA file":      {Address: "h:1", TLS: &config.TemporalTLS{CAFile: filepath.Join(pki.dir, "none.pem")}},
		"CA file without PEM":  {Address: "h:1", TLS: &config.TemporalTLS{CAFile: keyFile}},
		"key not the cert's":   {Address: "h:1", TLS: &config.TemporalTLS{CertFile: pki.clientCert, KeyFile: pki.serverKey}},
		"empty API key file":   {Address: "h:1", TLS: &config.TemporalTLS{}, APIKeyFile: os.DevNull},
		"address without port": {Address: "h", TLS: &config.TemporalTLS{}},
	} {
		if _, err := app.TemporalOptions(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDialOverTLS dials the stack's Temporal server (dev server or cluster)
// with payflow's client options through TLS and runs a workflow there, once
// with server-authenticated TLS and once with mTLS. The dev server takes no
// TLS settings, so a proxy in the test terminates TLS (the test's CA, its
// server certificate, and for mTLS a required client certificate) and
// forwards the gRPC bytes to the server. A client trusting another CA,
// expecting another server name, without the required client certificate, or
// in plaintext is refused.
func TestDialOverTLS(t *testing.T) {
	st := stacktest.Load(t)
	pki := newTestPKI(t)
	serverAuth := startTLSProxy(t, pki, st.TemporalAddress, false)
	mutual := startTLSProxy(t, pki, st.TemporalAddress, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The server name defaults to the address's host, 127.0.0.1, which the
	// server certificate carries as well as localhost.
	for name, c := range map[string]struct {
		proxy *tlsProxy
		tls   config.TemporalTLS
	}{
		"server-auth TLS": {serverAuth, config.TemporalTLS{CAFile: pki.caFile}},
		"mTLS":            {mutual, config.TemporalTLS{CAFile: pki.caFile, ServerName: "localhost", CertFile: pki.clientCert, KeyFile: pki.clientKey}},
	} {
		cfg := config.TemporalConfig{Address: c.proxy.addr, Namespace: st.TemporalNamespace, TLS: &c.tls}
		if got := runHello(ctx, t, cfg); got != "hello TLS" {
			t.Fatalf("%s: workflow result %q", name, got)
		}
		if c.proxy.handshakes.Load() == 0 {
			t.Fatalf("%s: the workflow ran without a TLS handshake", name)
		}
	}

	otherCA := newTestPKI(t)
	for name, cfg := range map[string]config.TemporalConfig{
		"TLS, another CA":                 {Address: serverAuth.addr, TLS: &config.TemporalTLS{CAFile: otherCA.caFile}},
		"TLS, wrong server name":          {Address: serverAuth.addr, TLS: &config.TemporalTLS{CAFile: pki.caFile, ServerName: "temporal.example"}},
		"TLS, plaintext":                  {Address: serverAuth.addr},
		"mTLS, no client cert":            {Address: mutual.addr, TLS: &config.TemporalTLS{CAFile: pki.caFile}},
		"mTLS, client cert of another CA": {Address: mutual.addr, TLS: &config.TemporalTLS{CAFile: pki.caFile, CertFile: otherCA.clientCert, KeyFile: otherCA.clientKey}},
		"mTLS, another CA":                {Address: mutual.addr, TLS: &config.TemporalTLS{CAFile: otherCA.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}},
		"mTLS, plaintext":                 {Address: mutual.addr},
	} {
		cfg.Namespace = st.TemporalNamespace
		opts, err := app.TemporalOptions(cfg)
		if err != nil {
			t.Fatal(err)
		}
		opts.Logger = quiet
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := client.DialContext(dctx, opts)
		if err == nil {
			// TLS 1.3 may report a refused client certificate on the first call after the handshake.
			_, err = c.WorkflowService().DescribeNamespace(dctx, &workflowservice.DescribeNamespaceRequest{Namespace: cfg.Namespace})
			c.Close()
		}
		cancel()
		if err == nil {
			t.Errorf("%s: the server answered", name)
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
}

// runHello dials Temporal with cfg through app.TemporalOptions, runs a
// worker on a task queue of its own and returns the result of one workflow
// run on it.
func runHello(ctx context.Context, t *testing.T, cfg config.TemporalConfig) string {
	t.Helper()
	opts, err := app.TemporalOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = quiet
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		t.Fatalf("dialing %s over TLS: %v", cfg.Address, err)
	}
	defer c.Close()
	queue := stacktest.RandomID("tls-test-")
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, s string) (string, error) { return "hello " + s, nil },
		workflow.RegisterOptions{Name: "Hello"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: queue, TaskQueue: queue}, "Hello", "TLS")
	if err != nil {
		t.Fatalf("starting a workflow over TLS: %v", err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatalf("running a workflow over TLS: %v", err)
	}
	return got
}

var quiet = tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// tlsProxy terminates TLS with the test CA's server certificate on a
// loopback port, optionally requiring a client certificate of that CA, and
// forwards each connection's bytes to the plaintext gRPC server at target.
type tlsProxy struct {
	addr       string
	handshakes atomic.Int32
}

func startTLSProxy(t *testing.T, pki testPKI, target string, requireClientCert bool) *tlsProxy {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"}} // gRPC clients require HTTP/2 by ALPN
	if requireClientCert {
		ca, err := os.ReadFile(pki.caFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		cfg.ClientCAs.AppendCertsFromPEM(ca)
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProxy{addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			go func() {
				tc := tls.Server(c, cfg)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := tc.Handshake(); err != nil {
					c.Close()
					return
				}
				_ = tc.SetDeadline(time.Time{})
				p.handshakes.Add(1)
				u, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				track(u)
				go func() { _, _ = io.Copy(u, tc); u.Close() }()
				_, _ = io.Copy(tc, u)
				tc.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return p
}

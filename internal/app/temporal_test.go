package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/types/known/durationpb"

	"payflow/config"
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
	// The server's certificate serves the frontend; the client's is payflow's
	// and the server's own system worker's (the frontend requires one).
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
	opts, err := TemporalOptions(config.TemporalConfig{Address: "127.0.0.1:7233", Namespace: "default"})
	if err != nil || opts.ConnectionOptions.TLS != nil || opts.Credentials != nil {
		t.Fatalf("plaintext options = %+v, %v", opts, err)
	}

	opts, err = TemporalOptions(config.TemporalConfig{Address: "temporal.example:7233", Namespace: "payments",
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
	opts, err = TemporalOptions(config.TemporalConfig{Address: "x.tmprl.cloud:7233", TLS: &config.TemporalTLS{ServerName: "x.tmprl.cloud"}, APIKeyFile: keyFile})
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
		if _, err := TemporalOptions(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDialOverTLS runs the Temporal server that `make up TEMPORAL=cluster`
// builds, its frontend behind TLS that requires a client certificate, and
// runs a workflow through it with payflow's client options. A client without
// the certificate, trusting another CA, or in plaintext is refused.
func TestDialOverTLS(t *testing.T) {
	bin := temporalServerBinary(t)
	pki := newTestPKI(t)
	addr := startTLSServer(t, bin, pki)

	good := config.TemporalConfig{Address: addr, Namespace: "payflow-tls",
		TLS: &config.TemporalTLS{CAFile: pki.caFile, ServerName: "localhost", CertFile: pki.clientCert, KeyFile: pki.clientKey}}
	opts, err := TemporalOptions(good)
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = quiet
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var nc client.NamespaceClient
	for nc == nil {
		if nc, err = client.NewNamespaceClient(opts); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the server did not answer over TLS: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	defer nc.Close()
	if err := nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{Namespace: good.Namespace,
		WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)}); err != nil {
		t.Fatalf("registering a namespace over TLS: %v", err)
	}

	c, err := client.DialContext(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, "tls-test", worker.Options{})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, s string) (string, error) { return "hello " + s, nil },
		workflow.RegisterOptions{Name: "Hello"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var got string
	for {
		// A new namespace reaches the history service's cache within seconds.
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "tls-test"}, "Hello", "TLS")
		if err == nil {
			err = run.Get(ctx, &got)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("running a workflow over TLS: %v", err)
		}
		time.Sleep(time.Second)
	}
	if got != "hello TLS" {
		t.Fatalf("workflow result %q", got)
	}

	otherCA := newTestPKI(t)
	for name, cfg := range map[string]config.TemporalConfig{
		"no client certificate": {Address: addr, Namespace: good.Namespace, TLS: &config.TemporalTLS{CAFile: pki.caFile, ServerName: "localhost"}},
		"another CA":            {Address: addr, Namespace: good.Namespace, TLS: &config.TemporalTLS{CAFile: otherCA.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}},
		"wrong server name":     {Address: addr, Namespace: good.Namespace, TLS: &config.TemporalTLS{CAFile: pki.caFile, ServerName: "temporal.example", CertFile: pki.clientCert, KeyFile: pki.clientKey}},
		"plaintext":             {Address: addr, Namespace: good.Namespace},
	} {
		opts, err := TemporalOptions(cfg)
		if err != nil {
			t.Fatal(err)
		}
		opts.Logger = quiet
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := client.DialContext(dctx, opts)
		if err == nil {
			// TLS 1.3 may report a refused client certificate on the first call after the handshake.
			_, err = c.WorkflowService().DescribeNamespace(dctx, &workflowservice.DescribeNamespaceRequest{Namespace: good.Namespace})
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

var quiet = tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// temporalServerBinary is bin/temporal-server (PAYFLOW_BIN_DIR/temporal-server),
// which `make up TEMPORAL=cluster` builds. Without it the test is skipped: the
// default stack runs the dev server, whose CLI has no TLS settings.
func temporalServerBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PAYFLOW_BIN_DIR")
	if dir == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			t.Fatalf("finding the module root: %v", err)
		}
		dir = filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "bin")
	}
	bin := filepath.Join(dir, "temporal-server")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s is not built (make up TEMPORAL=cluster builds it): %v", bin, err)
	}
	return bin
}

// startTLSServer starts the Temporal server on in-memory SQLite with its
// frontend behind TLS with client certificates, and returns the frontend's
// address. It is stopped when the test ends.
func startTLSServer(t *testing.T, bin string, pki testPKI) string {
	t.Helper()
	ports := freePorts(t, 8)
	sqlite := func(name string) string {
		return fmt.Sprintf(`
    %s:
      sql:
        pluginName: sqlite
        databaseName: %s
        connectAddr: localhost
        connectProtocol: tcp
        connectAttributes: {mode: memory, cache: private}
        maxConns: 1
        maxIdleConns: 1`, name, name)
	}
	service := func(name string, grpc, membership int) string {
		return fmt.Sprintf(`
  %s:
    rpc: {grpcPort: %d, membershipPort: %d, bindOnIP: 127.0.0.1}`, name, grpc, membership)
	}
	cfg := `log: {stdout: true, level: warn}
persistence:
  defaultStore: sqlite-default
  visibilityStore: sqlite-visibility
  numHistoryShards: 2
  datastores:` + sqlite("sqlite-default") + sqlite("sqlite-visibility") + fmt.Sprintf(`
global:
  membership: {maxJoinDuration: 30s, broadcastAddress: 127.0.0.1}
  tls:
    frontend:
      server:
        certFile: %[1]s
        keyFile: %[2]s
        requireClientAuth: true
        clientCaFiles: [%[3]s]
      client:
        serverName: localhost
        rootCaFiles: [%[3]s]
    systemWorker:
      certFile: %[4]s
      keyFile: %[5]s
      client:
        serverName: localhost
        rootCaFiles: [%[3]s]
`, pki.serverCert, pki.serverKey, pki.caFile, pki.clientCert, pki.clientKey) + "services:" +
		service("frontend", ports[0], ports[1]) + service("history", ports[2], ports[3]) +
		service("matching", ports[4], ports[5]) + service("worker", ports[6], ports[7]) + fmt.Sprintf(`
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active: {enabled: true, initialFailoverVersion: 1, rpcName: frontend, rpcAddress: "127.0.0.1:%d"}
dcRedirectionPolicy: {policy: noop}
`, ports[0])
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "temporal-server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file", path, "--allow-no-auth", "start")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("temporal-server log:\n%s", b)
			}
		}
	})
	return fmt.Sprintf("127.0.0.1:%d", ports[0])
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

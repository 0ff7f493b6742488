package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"go.temporal.io/sdk/client"

	"payflow/config"
)

// TemporalOptions builds the client options of every payflow binary that
// talks to Temporal (the worker, the starter, payflowctl, the bench and the
// tests): address, namespace, TLS with an optional client certificate, and
// an API key. Callers add their logger and metrics handler. Files are read
// here, so a certificate renewed on disk is picked up by the next dial.
func TemporalOptions(t config.TemporalConfig) (client.Options, error) {
	opts := client.Options{HostPort: t.Address, Namespace: t.Namespace}
	if t.TLS != nil {
		tc, err := temporalTLS(*t.TLS, t.Address)
		if err != nil {
			return client.Options{}, err
		}
		opts.ConnectionOptions.TLS = tc
	}
	key := t.APIKey.Reveal()
	if t.APIKeyFile != "" {
		b, err := os.ReadFile(t.APIKeyFile)
		if err != nil {
			return client.Options{}, fmt.Errorf("reading the Temporal API key: %w", err)
		}
		if key = strings.TrimSpace(string(b)); key == "" {
			return client.Options{}, fmt.Errorf("reading the Temporal API key: %s is empty", t.APIKeyFile)
		}
	}
	if key != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(key)
	}
	return opts, nil
}

// temporalTLS is the TLS config of t: the CA bundle (else the system's
// roots), the server name (else the host of address) and the client
// certificate, if any.
func temporalTLS(t config.TemporalTLS, address string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if tc.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, fmt.Errorf("taking the TLS server name from temporal.address %q: %w", address, err)
		}
		tc.ServerName = host
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the Temporal CA bundle: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("reading the Temporal CA bundle: no PEM certificate in %s", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the Temporal client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

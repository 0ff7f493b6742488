package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"payflow/api"
	"payflow/config"
)

// apiAuth is how the API asks who is calling: the bearer token and, with a
// client CA, client certificates (config.APIConfig).
func apiAuth(cfg config.Config) []api.Option {
	opts := []api.Option{api.WithBearerToken(cfg.API.Token.Reveal())}
	if cfg.API.TLS != nil && cfg.API.TLS.ClientCAFile != "" {
		opts = append(opts, api.WithClientCertificates())
	}
	return opts
}

// apiServer is the HTTP server of http_addr: TLS when api.tls is set, and
// then client certificates of api.tls.client_ca_file verified if given (the
// /v1 routes ask for one or the token; /healthz and /metrics stay open).
func apiServer(cfg config.Config, h http.Handler) (*http.Server, error) {
	srv := &http.Server{Addr: cfg.HTTPAddr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	t := cfg.API.TLS
	if t == nil {
		return srv, nil
	}
	srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("api.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("api.tls.client_ca_file %s holds no PEM certificate", t.ClientCAFile)
		}
		srv.TLSConfig.ClientCAs, srv.TLSConfig.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return srv, nil
}

// Command payflow-signer is the one payflow process that reaches key
// material: it signs payments for the workers over a Unix socket
// (custody/signerapi) and serves its Prometheus /metrics there and on a TCP
// address. Wiring only: the rules are package custody/signer's.
//
// It reads config.json (PAYFLOW_CONFIG or -config: the chains, btc_chains,
// signer.socket and custody.kms), the database from PAYFLOW_MYSQL_DSN,
// PAYFLOW_KMS_ENDPOINT (overrides custody.kms.endpoint) and
// PAYFLOW_SIGNER_METRICS_ADDR (or -metrics-addr), and the deny list
// risk.deny_list names (PAYFLOW_DENY_LIST), again whenever it changes or on
// SIGHUP. It starts with no chains
// configured too (a dev stack before `payflowctl devstack` wrote them): a
// request for a chain it does not know reads config.json's chains again (at
// most every 5 s), and a restart reads them too.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"payflow/config"
	custodykms "payflow/custody/kms"
	"payflow/custody/signer"
	"payflow/internal/app"
	"payflow/ledger"
	"payflow/risk/denylist"
)

// EnvMetricsAddr is the TCP address (host:port) of the signer's /metrics
// for Prometheus; empty: only on the socket.
const EnvMetricsAddr = "PAYFLOW_SIGNER_METRICS_ADDR"

func main() {
	path := flag.String("config", os.Getenv(config.EnvConfigPath), "config.json path")
	metricsAddr := flag.String("metrics-addr", os.Getenv(EnvMetricsAddr), "host:port serving /metrics for Prometheus (empty: only on the socket)")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("service", "payflow-signer")
	slog.SetDefault(log)
	cfg, err := config.LoadSigner(*path)
	if err != nil {
		log.Error("invalid configuration", "err", err)
		os.Exit(2)
	}
	if cfg.Signer.Socket == "" {
		log.Error("invalid configuration", "err", fmt.Sprintf("signer.socket is required (or %s)", config.EnvSignerSocket))
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, cfg, *path, *metricsAddr, log); err != nil {
		log.Error("signer stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, path, metricsAddr string, log *slog.Logger) error {
	db, err := app.OpenDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := ledger.Migrate(ctx, db); err != nil {
		return err
	}
	kc := cfg.Custody.KMS
	kmsCfg, kmsName := custodykms.Config{Region: kc.Region}, "AWS KMS in "+kc.Region
	switch {
	case kc.Endpoint != "" && loopback(kc.Endpoint):
		// local-kms on this host: it takes any credentials.
		kmsCfg, kmsName = custodykms.DevConfig(kc.Endpoint), kc.Endpoint
		if kc.Region != "" {
			kmsCfg.Region = kc.Region
		}
	case kc.Endpoint != "":
		// Another endpoint (a VPC endpoint of AWS KMS, say): the SDK's usual
		// credentials, never dummy ones.
		kmsCfg, kmsName = custodykms.Config{Endpoint: kc.Endpoint, Region: kc.Region}, kc.Endpoint
	}
	api, err := custodykms.NewClient(ctx, kmsCfg)
	if err != nil {
		return err
	}
	if kc.Endpoint == "" && kc.Region == "" {
		kmsName = "AWS KMS"
	}
	// The deny list: a transfer to a listed address is refused whatever the
	// worker says. Reloaded when its file changes, or on SIGHUP.
	deny, err := denylist.Open(cfg.Risk.DenyList, log)
	if err != nil {
		return fmt.Errorf("risk.deny_list: %w", err)
	}
	s, err := openSigner(ctx, db, signer.Config{Chains: cfg.Chains, BTCChains: cfg.BTCChains, KMS: api, KMSName: kmsName,
		EnvelopeKeyID: kc.EnvelopeKeyID, Log: log, DenyList: deny,
		Reload: func() (config.Config, error) { return config.LoadSigner(path) }}, log)
	if err != nil {
		return err
	}

	for _, c := range deny.Collectors() {
		if err := s.Metrics().Registry().Register(c); err != nil {
			return err
		}
	}

	ln, err := listen(cfg.Signer.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serving %s: %w", cfg.Signer.Socket, err)
		}
	}()
	var msrv *http.Server
	if metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.Metrics().Handler())
		msrv = &http.Server{Addr: metricsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		mln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("listening for /metrics on %s: %w", metricsAddr, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := msrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving /metrics on %s: %w", metricsAddr, err)
			}
		}()
	}
	dctx, stopDeny := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		deny.Run(dctx)
	}()
	log.Info("signer started", "socket", cfg.Signer.Socket, "metrics_addr", metricsAddr, "kms", kmsName,
		"envelope_key_id", s.EnvelopeKeyID(), "account_xpub", s.AccountXPub(), "chains", cfg.ChainNames(), "btc_chains", cfg.BTCChainNames(),
		"deny_list", deny.Path(), "deny_list_entries", deny.List().Len())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	// Requests being answered finish (their step is stored before the
	// answer either way); then the socket is removed.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if msrv != nil {
		if err := msrv.Shutdown(sctx); err != nil {
			msrv.Close()
		}
	}
	stopDeny()
	wg.Wait()
	log.Info("signer stopped")
	return runErr
}

// openSigner opens the signer, waiting for a KMS that does not answer yet
// (the dev stack starts local-kms just before); an inconsistent state fails
// at once.
func openSigner(ctx context.Context, db *sql.DB, cfg signer.Config, log *slog.Logger) (*signer.Signer, error) {
	for {
		s, err := signer.New(ctx, db, cfg)
		if err == nil || errors.Is(err, signer.ErrState) || ctx.Err() != nil {
			return s, err
		}
		log.Warn("opening the signer's state failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(2 * time.Second):
		}
	}
}

// listen listens on the Unix socket path, in a directory only this user
// reaches (0700), the socket itself read-write for the group (0660). A
// socket file left by a signer that died is removed; a live one is not.
func listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the socket's directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restricting the socket's directory %s: %w", dir, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is no socket: not removing it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another signer answers on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	return ln, nil
}

// loopback says whether a KMS endpoint URL names this host (the dev stack's
// local-kms), the only KMS that gets dummy credentials.
func loopback(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

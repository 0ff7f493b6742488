// Package api is payflow's HTTP API over the ledger: wallet history,
// balances and reconciliation results, as JSON, and (with WithAddresses) new
// HD deposit addresses.
//
// The /v1 routes ask who is calling (WithBearerToken, WithClientCertificates):
// 401 without a valid token or client certificate. /healthz is open.
//
// Every error response is {"error": "..."}: a 400 names the bad parameter; a
// 500 says only "internal error" and the cause goes to the log, so that SQL
// and schema details never reach the caller.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"payflow/custody/addresses"
	"payflow/ledger"
	"payflow/protocol"
)

// queryTimeout bounds one request's database work: a slow or stuck query
// fails the request instead of pinning a connection.
const queryTimeout = 10 * time.Second

type server struct {
	l     *ledger.Ledger
	log   *slog.Logger
	addrs *addresses.Allocator
	// token is the SHA-256 of the bearer token the /v1 routes ask for; nil
	// with auth off asks nothing.
	token []byte
	auth  bool
	mtls  bool
}

// Option configures the handler.
type Option func(*server)

// WithAddresses serves POST /v1/addresses/{chain} from a: without it (or
// with an allocator that has no account xpub) the route answers 503.
func WithAddresses(a *addresses.Allocator) Option { return func(s *server) { s.addrs = a } }

// WithBearerToken makes every /v1 route ask for "Authorization: Bearer
// <token>", compared in constant time; a request without it, or with
// another, is answered 401. /healthz stays open. An empty token is ignored.
func WithBearerToken(token string) Option {
	return func(s *server) {
		if token != "" {
			sum := sha256.Sum256([]byte(token))
			s.token, s.auth = sum[:], true
		}
	}
}

// WithClientCertificates makes a client certificate that the TLS layer
// verified (mTLS, tls.VerifyClientCertIfGiven) authenticate a /v1 request as
// the bearer token does.
func WithClientCertificates() Option { return func(s *server) { s.mtls, s.auth = true, true } }

// NewHandler returns the API's routes:
//
//	GET /healthz                                    {"ok":true}, or 503 when the database does not answer
//	GET /v1/wallets/{chain}/{address}/history       ledger.HistoryPage; query: symbol, from, to, limit, cursor
//	GET /v1/wallets/{chain}/{address}/balances      {"chain","address","balances":[ledger.SymbolBalance]}
//	GET /v1/reconciliations                         ledger.ReconPage; query: chain (required), address, status, limit, cursor
//	POST /v1/addresses/{chain}                      201 {"chain","address","index"}: the chain's next HD deposit address; query: label
//
// from and to are RFC 3339 or unix seconds and bound created_at as [from, to).
// limit is 1 to ledger.MaxPageLimit (default ledger.DefaultPageLimit). cursor
// is the next_cursor of the previous page, with the other parameters
// unchanged. An address must be 0x and 40 hex digits, in any case. A wallet
// the ledger does not know has an empty history and no balances (200, not 404).
// A new deposit address is derived from the account xpub (see WithAddresses):
// an unknown chain is 400, no xpub configured is 503.
func NewHandler(l *ledger.Ledger, log *slog.Logger, opts ...Option) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	s := &server{l: l, log: log}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /v1/wallets/{chain}/{address}/history", s.asks(s.history))
	mux.HandleFunc("GET /v1/wallets/{chain}/{address}/balances", s.asks(s.balances))
	mux.HandleFunc("GET /v1/reconciliations", s.asks(s.reconciliations))
	mux.HandleFunc("POST /v1/addresses/{chain}", s.asks(s.newAddress))
	return mux
}

// asks wraps a /v1 route: with auth on, a caller shows the bearer token or
// a verified client certificate, or is answered 401.
func (s *server) asks(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.auth || s.authenticated(r) {
			next(w, r)
			return
		}
		s.log.Warn("API request refused: no valid bearer token or client certificate", "method", r.Method,
			"path", r.URL.Path, "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="payflow"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{"unauthorized: send Authorization: Bearer <the API token>"})
	}
}

func (s *server) authenticated(r *http.Request) bool {
	if s.mtls && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true
	}
	if s.token == nil {
		return false
	}
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	// Both sides hashed: the comparison takes the same time whatever the
	// length or content of what was sent.
	sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(sum[:], s.token) == 1
}

func (s *server) newAddress(w http.ResponseWriter, r *http.Request) {
	if s.addrs == nil || !s.addrs.Configured() {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{addresses.ErrNoAccount.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	a, err := s.addrs.Next(ctx, r.PathValue("chain"), r.URL.Query().Get("label"))
	switch {
	case errors.Is(err, addresses.ErrUnknownChain), errors.Is(err, addresses.ErrBadLabel):
		badRequest(w, err)
	case err != nil:
		s.fail(w, r, err, "chain", r.PathValue("chain"))
	default:
		writeJSON(w, http.StatusCreated, a)
	}
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.l.DB().PingContext(ctx); err != nil {
		s.log.Error("health check: database ping failed", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": "database unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *server) history(w http.ResponseWriter, r *http.Request) {
	chain, addr, err := walletPath(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	qs := r.URL.Query()
	q := ledger.HistoryQuery{Chain: chain, Address: addr, Symbol: qs.Get("symbol"), Cursor: qs.Get("cursor")}
	if q.From, err = timeParam(qs.Get("from"), "from"); err != nil {
		badRequest(w, err)
		return
	}
	if q.To, err = timeParam(qs.Get("to"), "to"); err != nil {
		badRequest(w, err)
		return
	}
	if q.Limit, err = limitParam(qs.Get("limit")); err != nil {
		badRequest(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	page, err := s.l.History(ctx, q)
	if err != nil {
		s.fail(w, r, err, "address", addr)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

type balancesResponse struct {
	Chain    string                 `json:"chain"`
	Address  string                 `json:"address"`
	Balances []ledger.SymbolBalance `json:"balances"`
}

func (s *server) balances(w http.ResponseWriter, r *http.Request) {
	chain, addr, err := walletPath(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	bs, err := s.l.Balances(ctx, chain, addr)
	if err != nil {
		s.fail(w, r, err, "address", addr)
		return
	}
	writeJSON(w, http.StatusOK, balancesResponse{Chain: chain, Address: addr, Balances: bs})
}

func (s *server) reconciliations(w http.ResponseWriter, r *http.Request) {
	qs := r.URL.Query()
	q := ledger.ReconQuery{Chain: qs.Get("chain"), Status: ledger.ReconStatus(qs.Get("status")), Cursor: qs.Get("cursor")}
	if q.Chain == "" {
		badRequest(w, errors.New("chain is required"))
		return
	}
	if a := qs.Get("address"); a != "" {
		if !protocol.IsAddress(a) {
			badRequest(w, errBadAddress)
			return
		}
		q.Address = strings.ToLower(a)
	}
	var err error
	if q.Limit, err = limitParam(qs.Get("limit")); err != nil {
		badRequest(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	page, err := s.l.Reconciliations(ctx, q)
	if err != nil {
		s.fail(w, r, err, "chain", q.Chain)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

var (
	chainRE       = regexp.MustCompile(`^[A-Za-z0-9_-]{1,16}$`)
	errBadAddress = errors.New("invalid address: want 0x followed by 40 hex digits")
)

// walletPath validates {chain} and {address}; the address comes back lowercase.
func walletPath(r *http.Request) (chain, address string, err error) {
	chain, address = r.PathValue("chain"), r.PathValue("address")
	if !chainRE.MatchString(chain) {
		return "", "", errors.New("invalid chain: want 1 to 16 letters, digits, '_' or '-'")
	}
	if !protocol.IsAddress(address) {
		return "", "", errBadAddress
	}
	return chain, strings.ToLower(address), nil
}

// timeParam parses RFC 3339 (fractional seconds allowed) or unix seconds; ""
// is the zero time (unbounded).
func timeParam(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		// Past year 9999 the database cannot hold it; refuse rather than wrap.
		if secs < 0 || secs > 253402300799 {
			return time.Time{}, fmt.Errorf("invalid %s: unix seconds out of range", name)
		}
		return time.Unix(secs, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid %s: want RFC 3339 (2006-01-02T15:04:05Z) or unix seconds", name)
	}
	return t.UTC(), nil
}

func limitParam(v string) (int, error) {
	if v == "" {
		return 0, nil // the ledger's default
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > ledger.MaxPageLimit {
		return 0, fmt.Errorf("invalid limit: want an integer from 1 to %d", ledger.MaxPageLimit)
	}
	return n, nil
}

// fail answers a ledger error: the caller's own mistakes are 400 with the
// ledger's message (written for callers), everything else is logged and
// becomes a bare 500.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error, kv ...any) {
	var qe *ledger.QueryError
	if errors.As(err, &qe) {
		badRequest(w, qe)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away; nobody to answer
	}
	s.log.Error("api request failed", append([]any{"method", r.Method, "path", r.URL.Path, "error", err}, kv...)...)
	writeJSON(w, http.StatusInternalServerError, errorBody{"internal error"})
}

type errorBody struct {
	Error string `json:"error"`
}

func badRequest(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

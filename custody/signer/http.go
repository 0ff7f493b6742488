package signer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"payflow/custody/signerapi"
)

// maxBody caps a request body: a signing request is a few hundred bytes.
const maxBody = 1 << 20

// Handler serves the signerapi routes: sign, btc/sign, keys, keys/import,
// status, btc/account and metrics. Errors are signerapi.Error bodies: 400 bad_request, 403 refused,
// 404 unknown_key, 500 internal (the signer's database or KMS: retried).
func (s *Signer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+signerapi.PathSign, func(w http.ResponseWriter, r *http.Request) {
		var req signerapi.SignRequest
		if !decode(w, r, &req) {
			return
		}
		resp, err := s.Sign(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST "+signerapi.PathBTCSign, func(w http.ResponseWriter, r *http.Request) {
		var req signerapi.BTCSignRequest
		if !decode(w, r, &req) {
			return
		}
		resp, err := s.SignBTC(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST "+signerapi.PathKeys, func(w http.ResponseWriter, r *http.Request) {
		var req signerapi.NewKeyRequest
		if !decode(w, r, &req) {
			return
		}
		info, err := s.NewKey(r.Context(), req.Backend)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("POST "+signerapi.PathImport, func(w http.ResponseWriter, r *http.Request) {
		var req signerapi.ImportRequest
		if !decode(w, r, &req) {
			return
		}
		info, err := s.Import(r.Context(), req.PrivateKey)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("GET "+signerapi.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET "+signerapi.PathBTCAccount, func(w http.ResponseWriter, r *http.Request) {
		acct, err := s.BTCAccount(r.Context(), r.URL.Query().Get("network"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, acct)
	})
	mux.Handle("GET "+signerapi.PathMetrics, s.metrics.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, signerapi.Error{Code: signerapi.CodeBadRequest,
			Message: fmt.Sprintf("no route %s %s (routes: POST %s, POST %s, POST %s, POST %s, GET %s, GET %s, GET %s)", r.Method, r.URL.Path,
				signerapi.PathSign, signerapi.PathBTCSign, signerapi.PathKeys, signerapi.PathImport, signerapi.PathStatus,
				signerapi.PathBTCAccount, signerapi.PathMetrics)})
	})
	return mux
}

// decode reads a JSON body into v, or answers 400.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, signerapi.Error{Code: signerapi.CodeBadRequest, Message: "the request body is unreadable or above 1 MiB"})
		return false
	}
	// The body may hold a key being imported: cleared once decoded.
	defer clear(b)
	if err := json.Unmarshal(b, v); err != nil {
		// The decoder's message may quote the body (an imported key): not
		// repeated.
		writeJSON(w, http.StatusBadRequest, signerapi.Error{Code: signerapi.CodeBadRequest, Message: "the request body is not the route's JSON object"})
		return false
	}
	return true
}

// writeError answers err with its status and code.
func writeError(w http.ResponseWriter, err error) {
	var (
		ref *Refusal
		bad *badRequest
		unk *unknownKey
	)
	switch {
	case errors.As(err, &ref):
		writeJSON(w, http.StatusForbidden, signerapi.Error{Code: signerapi.CodeRefused, Message: ref.Message})
	case errors.As(err, &bad):
		writeJSON(w, http.StatusBadRequest, signerapi.Error{Code: signerapi.CodeBadRequest, Message: bad.msg})
	case errors.As(err, &unk):
		writeJSON(w, http.StatusNotFound, signerapi.Error{Code: signerapi.CodeUnknownKey, Message: unk.msg})
	case errors.Is(err, ErrBackend), errors.Is(err, ErrPrivateKey):
		writeJSON(w, http.StatusBadRequest, signerapi.Error{Code: signerapi.CodeBadRequest, Message: err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, signerapi.Error{Code: signerapi.CodeInternal, Message: err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

package main

import (
	"net/http"
	"net/http/pprof"
)

// pprofMux serves the profiles `make bench` investigations use, and not
// /debug/pprof/cmdline: the command line may carry the seed's -key secret.
// (Importing net/http/pprof for its side effect would register cmdline on
// the default mux.)
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/debug/pprof/cmdline" {
			http.NotFound(w, r)
			return
		}
		pprof.Index(w, r)
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

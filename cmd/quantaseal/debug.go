package main

import (
	"net/http"
	"net/http/pprof"
)

// pprofHandler serves Go's profiler under /debug/pprof/ for server.debug_addr. It is
// its own mux on its own listener: the API and the console never route to it.
// (Importing net/http/pprof also registers these handlers on http.DefaultServeMux,
// which no server here uses; TestAPIDoesNotServePprof holds that.)
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

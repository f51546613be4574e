package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServeDebug(t *testing.T) {
	stop, err := serveDebug("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := serveDebug("127.0.0.1:bad", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "debug_addr") {
		t.Errorf("a bad address: %v", err)
	}

	srv := httptest.NewServer(pprofHandler())
	defer srv.Close()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, resp.StatusCode, len(body))
		}
	}
}

// The profiler is only on its own listener: importing net/http/pprof also registers it
// on http.DefaultServeMux, so the API and the console must not fall back to that mux.
func TestAPIDoesNotServePprof(t *testing.T) {
	gw := newBenchGateway(t, false).gw
	for name, h := range map[string]http.Handler{"api": gw.api, "console": gw.console} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/cmdline", nil))
		if rec.Code == 200 || strings.Contains(rec.Body.String(), "quantaseal") {
			t.Errorf("%s answered /debug/pprof/cmdline: %d %q", name, rec.Code, rec.Body.String())
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/quantaseal/gateway/console"
)

// runServe implements `quantaseal serve`.
//
// Shutdown order (STYLE.md): on SIGINT/SIGTERM the gRPC health service turns NOT_SERVING
// and /readyz answers 503, so Envoy and load balancers stop sending new streams; after
// the drain delay the gRPC server stops gracefully (in-flight streams finish, each with its
// audit event) within the shutdown timeout, then is stopped hard; the HTTP server shuts
// down; the audit batcher is flushed; finally the stores are closed.
func runServe(ctx context.Context, cio cmdIO, args []string) error {
	fs := newFlagSet("serve", cio.Stderr, "[--config FILE]")
	configPath := fs.String("config", "", "YAML configuration file (QUANTASEAL_* environment variables override it)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadConfig(*configPath, environ(cio))
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	logger := newLogger(cio, cfg.LogLevel)
	logger.Info("starting quantaseal", slog.Any("config", cfg))
	logger.Info("garbage collector", slog.Any("gc", tuneGC(func(name string) string { return getenv(cio, name) })))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	gw, err := buildGateway(ctx, cfg, logger, reg)
	if err != nil {
		return err
	}
	defer gw.close(logger)

	grpcLn, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen on grpc_addr %s: %w (is another quantaseal running? set QUANTASEAL_GRPC_ADDR)", cfg.GRPCAddr, err)
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		grpcLn.Close()
		return fmt.Errorf("listen on http_addr %s: %w (set QUANTASEAL_HTTP_ADDR)", cfg.HTTPAddr, err)
	}
	if cfg.Server.DebugAddr != "" {
		stop, err := serveDebug(cfg.Server.DebugAddr, logger)
		if err != nil {
			grpcLn.Close()
			httpLn.Close()
			return err
		}
		defer stop()
	}
	return serve(ctx, cfg, logger, gw, grpcLn, httpLn)
}

// serveDebug serves the profiler on addr (loopback, checked by Validate) until stop.
func serveDebug(addr string, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on debug_addr %s: %w (set QUANTASEAL_DEBUG_ADDR)", addr, err)
	}
	srv := &http.Server{
		Handler:           pprofHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go srv.Serve(ln) // returns ErrServerClosed at stop; a debug listener's end is not an error
	logger.Info("profiler serving", slog.String("debug_addr", ln.Addr().String()))
	return func() { srv.Close() }, nil
}

func environ(cio cmdIO) []string {
	if cio.Getenv == nil {
		return os.Environ()
	}
	// Tests pass Getenv; rebuild the QUANTASEAL_* part of the environment from it.
	var env []string
	for _, o := range envOverrides(&Config{}) {
		if v := cio.Getenv(o.name); v != "" {
			env = append(env, o.name+"="+v)
		}
	}
	return env
}

func newLogger(cio cmdIO, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(level)))
	return slog.New(slog.NewJSONHandler(cio.Stderr, &slog.HandlerOptions{Level: l}))
}

// serve runs the servers on the given listeners until ctx is done, then shuts down in
// the documented order.
func serve(ctx context.Context, cfg Config, logger *slog.Logger, gw *gateway, grpcLn, httpLn net.Listener) error {
	var draining atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/", gw.api)
	mux.Handle(console.Prefix, gw.console)
	httpServer := &http.Server{
		Handler: readinessGate(&draining, mux),
		// Bounded reads and writes: the API takes small JSON bodies (1 MiB at most).
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	errc := make(chan error, 2)
	go func() { errc <- gw.extproc.Serve(grpcLn) }()
	go func() {
		if err := httpServer.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	logger.Info("serving",
		slog.String("grpc_addr", grpcLn.Addr().String()),
		slog.String("http_addr", httpLn.Addr().String()))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		if runErr == nil {
			runErr = errors.New("a server stopped unexpectedly")
		}
		logger.Error("server failed", slog.String("error", runErr.Error()))
	}

	// 2. NOT_SERVING on gRPC health, 503 on /readyz.
	logger.Info("shutting down", slog.Duration("drain_delay", cfg.Server.DrainDelay))
	draining.Store(true)
	gw.extproc.SetNotServing()
	// 3. Let Envoy and load balancers notice before streams are refused.
	if runErr == nil {
		time.Sleep(cfg.Server.DrainDelay)
	}
	// 4. Finish in-flight streams (each commits its audit event), then stop hard.
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := gw.extproc.Shutdown(stopCtx); err != nil {
		logger.Warn("grpc shutdown", slog.String("error", err.Error()))
	}
	if err := httpServer.Shutdown(stopCtx); err != nil {
		logger.Warn("http shutdown", slog.String("error", err.Error()))
	}
	// 5. Commit what the audit batcher holds and sign the final checkpoints.
	if err := gw.flush(stopCtx); err != nil {
		logger.Error("audit flush", slog.String("error", err.Error()))
		runErr = errors.Join(runErr, err)
	}
	// 6. The stores are closed by the caller (gateway.close).
	logger.Info("stopped")
	return runErr
}

// readinessGate answers /readyz with 503 while draining; the API's own /readyz checks the
// stores otherwise.
func readinessGate(draining *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && draining.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"unavailable","message":"draining"}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// dataPath names a file in the data directory.
func dataPath(cfg Config, name string) string { return filepath.Join(cfg.DataDir, name) }

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
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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
	return serve(ctx, cfg, logger, reg, gw, grpcLn, httpLn)
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
func serve(ctx context.Context, cfg Config, logger *slog.Logger, reg *prometheus.Registry, gw *gateway, grpcLn, httpLn net.Listener) error {
	grpcServer := grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.Server.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.Server.MaxMessageBytes),
	)
	healthServer := health.NewServer()
	healthpb.RegisterHealthServer(grpcServer, healthServer)
	gw.registerGRPC(grpcServer)

	var draining atomic.Bool
	ready := func(ctx context.Context) error {
		if draining.Load() {
			return errors.New("draining")
		}
		return gw.ready(ctx)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", gw.httpHandler(ready))
	httpServer := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	errc := make(chan error, 2)
	go func() { errc <- grpcServer.Serve(grpcLn) }()
	go func() {
		if err := httpServer.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	// Health follows real readiness: SERVING only once the stores answer.
	if err := gw.ready(ctx); err != nil {
		logger.Warn("not ready at start", slog.String("error", err.Error()))
		healthServer.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	} else {
		healthServer.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	}
	logger.Info("serving",
		slog.String("grpc_addr", grpcLn.Addr().String()),
		slog.String("http_addr", httpLn.Addr().String()))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		logger.Error("server failed", slog.String("error", runErr.Error()))
	}

	logger.Info("shutting down", slog.Duration("drain_delay", cfg.Server.DrainDelay))
	draining.Store(true)
	healthServer.Shutdown()
	if runErr == nil {
		time.Sleep(cfg.Server.DrainDelay)
	}
	stopped := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(cfg.Server.ShutdownTimeout):
		logger.Warn("graceful stop timed out; stopping in-flight streams")
		grpcServer.Stop()
		<-stopped
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		logger.Warn("http shutdown", slog.String("error", err.Error()))
	}
	if err := gw.flush(shutdownCtx); err != nil {
		logger.Error("audit flush", slog.String("error", err.Error()))
		runErr = errors.Join(runErr, err)
	}
	logger.Info("stopped")
	return runErr
}

// dataPath names a file in the data directory.
func dataPath(cfg Config, name string) string { return filepath.Join(cfg.DataDir, name) }

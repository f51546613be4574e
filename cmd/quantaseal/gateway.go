package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// gateway holds the wired components of `serve`.
type gateway struct {
	closers []func() error
}

// buildGateway opens the stores and wires every component from cfg.
func buildGateway(ctx context.Context, cfg Config, logger *slog.Logger, reg *prometheus.Registry) (*gateway, error) {
	return nil, errors.New("serve: not wired yet")
}

func (g *gateway) registerGRPC(s *grpc.Server) {}

func (g *gateway) ready(ctx context.Context) error { return errors.New("not wired") }

func (g *gateway) httpHandler(ready func(context.Context) error) http.Handler { return http.NotFoundHandler() }

func (g *gateway) flush(ctx context.Context) error { return nil }

func (g *gateway) close(logger *slog.Logger) {
	for i := len(g.closers) - 1; i >= 0; i-- {
		if err := g.closers[i](); err != nil {
			logger.Warn("close", slog.String("error", err.Error()))
		}
	}
}

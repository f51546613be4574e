package extproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/quantaseal/gateway/internal/authlimit"
	"github.com/quantaseal/gateway/internal/grpcserver"
)

// Config holds the processor's settings. The zero value is usable: every zero field
// takes the default named in its comment.
type Config struct {
	// AuditTimeout bounds one audit append; it runs under context.WithoutCancel so a
	// client that hangs up cannot skip its record. Default 5s.
	AuditTimeout time.Duration
	// TokenTimeout bounds one token (and vault) lookup. Default 10s.
	TokenTimeout time.Duration
	// AuthTimeout bounds API-key and integration lookups. Default 2s.
	AuthTimeout time.Duration
	// AuthCacheTTL is how long a successful API-key authentication and integration
	// resolution are remembered, so steady-state calls make no store round trip for
	// them. It bounds how long a key revoked, or an integration changed, through
	// another replica is still honoured here; the replica that makes the change
	// forgets at once ([Server.ForgetAPIKey], [Server.ForgetIntegrations]). Failures
	// are never cached. Default 1s; negative disables the cache.
	AuthCacheTTL time.Duration
	// AuthLimiter limits failed API-key attempts per source (Envoy's source.address
	// attribute). nil: a private limiter with authlimit's defaults. cmd shares one
	// limiter between this server and the HTTP API.
	AuthLimiter *authlimit.Limiter
	// SealTimeout bounds one envelope seal. Default 5s.
	SealTimeout time.Duration
	// OverrideAfter is how long a step (token fetch, audit commit, …) may run before
	// the processor first sends a reply carrying only override_message_timeout, so
	// Envoy's per-message timer (message_timeout, 200 ms by default) does not fire
	// (envoy-extproc.md §5, §10 item 10). Default 100ms; keep it well below the
	// configured message_timeout.
	OverrideAfter time.Duration
	// MessageTimeoutOverride is the value sent in override_message_timeout. It must
	// not exceed the filter's max_message_timeout (Envoy ignores larger values).
	// Default 10s, the shipped config's max_message_timeout.
	MessageTimeoutOverride time.Duration
	// MaxBodyBytes bounds an outbound-API request body (413 beyond) and a decoded
	// upstream response body. Default 1 MiB, Envoy's default buffer limit.
	MaxBodyBytes int
	// MaxMessageBytes is the gRPC receive and send limit. grpc-go's default receive
	// limit is 4 MiB, below what a raised Envoy buffer limit can send in one
	// BUFFERED message (a RESOURCE_EXHAUSTED stream error becomes a 500;
	// envoy-extproc.md §3, §10 item 16); replies carry envelopes, which are larger
	// than the body they wrap. Default 16 MiB.
	MaxMessageBytes int
	// MaxBufferedBodyBytes bounds the response bodies held at once by envelope and
	// hashed calls, counted as Envoy announces them (content-length, or MaxBodyBytes
	// when absent). While sealing, a body costs about six times its size (the body,
	// its ciphertext, the envelope JSON, the reply and their copies), so the default
	// 32 MiB keeps that part of the heap near 200 MiB whatever the concurrency. See
	// bodyBudget.
	MaxBufferedBodyBytes int64
	// BodyWait is how long a call waits for room in MaxBufferedBodyBytes before it
	// is answered 503 with Retry-After. It must stay below MessageTimeoutOverride.
	// Default 5s.
	BodyWait time.Duration
	// HashResponses makes transparent calls without an envelope buffer the response
	// body too, so the audit event carries response_sha256 and response_bytes. Off,
	// such calls need no response buffering (their events leave both empty). A body
	// announced larger than MaxBodyBytes is not buffered: it streams through and its
	// event carries no hash.
	HashResponses bool
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AuditTimeout, 5*time.Second)
	def(&c.TokenTimeout, 10*time.Second)
	def(&c.AuthTimeout, 2*time.Second)
	if c.AuthCacheTTL == 0 {
		c.AuthCacheTTL = time.Second
	}
	def(&c.SealTimeout, 5*time.Second)
	def(&c.OverrideAfter, 100*time.Millisecond)
	def(&c.MessageTimeoutOverride, 10*time.Second)
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 16 << 20
	}
	if c.MaxBufferedBodyBytes <= 0 {
		c.MaxBufferedBodyBytes = 32 << 20
	}
	def(&c.BodyWait, 5*time.Second)
	return c
}

// Deps are the processor's collaborators. All but Logger and Registerer are required.
type Deps struct {
	Authenticator Authenticator
	Integrations  Integrations
	Tokens        TokenSource
	Sealer        Sealer
	Recorder      Recorder
	Logger        *slog.Logger          // nil = discard
	Registerer    prometheus.Registerer // nil = metrics not exported
}

// Server is the ext_proc and ext_authz gRPC server. Both APIs run one pipeline:
// authenticate the API key, resolve the integration, match the operation, apply the
// default-deny policy, inject the Okta credential, and audit.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics *metrics
	cache   *authCache
	bodies  *bodyBudget
	health  *health.Server
	limiter *authlimit.Limiter

	mu      sync.Mutex
	grpc    *grpc.Server // built by the first Serve, so a Server never served owns no goroutines
	stopped bool         // Shutdown ran: Serve returns at once
}

// newGRPC builds the gRPC server with the ext_proc, ext_authz and health services,
// with the settings the no-op baseline shares (package grpcserver).
func (s *Server) newGRPC() *grpc.Server {
	g := grpc.NewServer(grpcserver.Options(s.cfg.MaxMessageBytes)...)
	extprocv3.RegisterExternalProcessorServer(g, s)
	authv3.RegisterAuthorizationServer(g, authorizer{s})
	healthpb.RegisterHealthServer(g, s.health)
	return g
}

// New validates deps and registers the metrics. The gRPC server, with the ext_proc,
// ext_authz and gRPC health services, is built by Serve.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Authenticator == nil || deps.Integrations == nil || deps.Tokens == nil || deps.Sealer == nil || deps.Recorder == nil {
		return nil, errors.New("extproc: Authenticator, Integrations, Tokens, Sealer and Recorder are required")
	}
	cfg = cfg.withDefaults()
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("extproc: register metrics: %w", err)
	}
	s := &Server{cfg: cfg, deps: deps, log: log, metrics: m, cache: newAuthCache(cfg.AuthCacheTTL), bodies: newBodyBudget(cfg.MaxBufferedBodyBytes), health: health.NewServer(), limiter: cfg.AuthLimiter}
	if s.limiter == nil {
		s.limiter = authlimit.New(authlimit.Config{})
	}
	// NOT_SERVING until Serve runs: a health check that always says SERVING is useless.
	s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	return s, nil
}

// ForgetAPIKey drops what the processor remembers about the tenant's key keyID, so
// that a revocation takes effect on this replica at once rather than within
// [Config.AuthCacheTTL]. Call it after the revocation is committed.
func (s *Server) ForgetAPIKey(tenantID, keyID string) { s.cache.forgetAPIKey(tenantID, keyID) }

// ForgetIntegrations drops what the processor remembers about the tenant's
// integrations, so that a created, changed or deleted integration takes effect on
// this replica at once rather than within [Config.AuthCacheTTL]. Call it after the
// change is committed.
func (s *Server) ForgetIntegrations(tenantID string) { s.cache.forgetIntegrations(tenantID) }

// Health service names reported by the gRPC health service ("" is the server).
var healthServices = []string{"", extprocv3.ExternalProcessor_ServiceDesc.ServiceName, authv3.Authorization_ServiceDesc.ServiceName}

func (s *Server) setHealth(st healthpb.HealthCheckResponse_ServingStatus) {
	for _, name := range healthServices {
		s.health.SetServingStatus(name, st)
	}
}

// Serve accepts connections on lis until Shutdown. It reports SERVING on the gRPC
// health service while it runs. It returns nil after Shutdown.
//
// Shutdown order (cmd/quantaseal follows it): the signal context fires; Shutdown sets
// NOT_SERVING; the caller waits its drain delay (Envoy stops sending new streams);
// Shutdown's GracefulStop lets in-flight streams finish — each of which commits its
// audit event before it ends — until ctx expires, then Stop; then the caller flushes
// the audit batcher and closes the store.
func (s *Server) Serve(lis net.Listener) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = lis.Close() // grpc.Server.Serve closes its listener too, even after Stop
		return nil
	}
	if s.grpc == nil {
		s.grpc = s.newGRPC()
	}
	g := s.grpc
	s.mu.Unlock()
	s.setHealth(healthpb.HealthCheckResponse_SERVING)
	err := g.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// SetNotServing marks the gRPC health service NOT_SERVING (step 2 of the shutdown
// order) without stopping the server.
func (s *Server) SetNotServing() { s.health.Shutdown() }

// Shutdown sets NOT_SERVING, then stops gracefully: in-flight streams finish (and
// commit their audit events) until ctx is done, then the server stops hard.
func (s *Server) Shutdown(ctx context.Context) error {
	s.health.Shutdown()
	s.mu.Lock()
	s.stopped = true
	g := s.grpc
	s.mu.Unlock()
	if g == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		g.Stop()
		<-done
		return fmt.Errorf("extproc: graceful stop: %w", ctx.Err())
	}
}

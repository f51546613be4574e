package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/authlimit"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

// Config configures the HTTP API.
type Config struct {
	// AdminToken authorises the /api/v2/tenants endpoints. Zero: admin endpoints answer 401.
	AdminToken secret.Secret
	// AllowedOktaOrigins are the operator's extra okta_domain origins
	// (registry.CheckOktaOrigin).
	AllowedOktaOrigins []string
	// MaxBodyBytes limits request bodies (0: DefaultMaxBodyBytes, 1 MiB).
	MaxBodyBytes int64
	// Logger receives one line per request (nil: discard). Never a secret.
	Logger *slog.Logger
	// Registerer receives the API's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Readiness is called by /readyz; an error (not ready, draining) gives 503. Nil: the
	// registry store is pinged if it has Ping(ctx) error, else ready.
	Readiness func(ctx context.Context) error
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// AuthLimiter limits failed admin-token and API-key attempts per source, the TCP
	// peer of the request (RemoteAddr; X-Forwarded-For is never trusted here). A source
	// over the limit gets 429 with Retry-After on every authenticated endpoint, also
	// with a valid credential, until its bucket refills. nil: a private limiter with
	// authlimit's defaults (10 failures, then one more every 6 s). Share one limiter
	// with the ext_proc server to count a source's failures on both paths.
	AuthLimiter *authlimit.Limiter
}

// Vault is what the API needs of *vault.Vault.
type Vault interface {
	Seal(ctx context.Context, tenantID, name, credType string, c vault.Credential) (vault.CredentialMeta, error)
	Rotate(ctx context.Context, tenantID, credentialID string, c vault.Credential) (vault.CredentialMeta, error)
	Get(ctx context.Context, tenantID, credentialID string) (vault.CredentialMeta, error)
	List(ctx context.Context, tenantID string) ([]vault.CredentialMeta, error)
	Delete(ctx context.Context, tenantID, credentialID string) error
	SealBytes(ctx context.Context, tenantID, purpose string, plaintext []byte) ([]byte, error)
}

// AuditReader is the read side of audit.Store.
type AuditReader interface {
	ListEvents(ctx context.Context, tenantID string, q audit.Query) ([]audit.Event, string, error)
	EventProof(ctx context.Context, tenantID, eventID string) (audit.Proof, error)
	LatestCheckpoints(ctx context.Context, tenantID string) ([]audit.SignedCheckpoint, error)
}

// SigningKeyInfo is one of the gateway's ML-DSA-65 public keys.
type SigningKeyInfo struct {
	KeyID     string
	PublicKey []byte
	Current   bool
}

// Deps are the services behind the API.
type Deps struct {
	Registry registry.Store
	Vault    Vault
	Audit    AuditReader // nil: audit reads answer 503
	// SigningKeys lists the gateway's public signing keys (nil: an empty list).
	SigningKeys func() []SigningKeyInfo
	// OnCredentialRotated is called after a successful rotation, so cached tokens of
	// the integrations using the credential can be dropped. Optional.
	OnCredentialRotated func(tenantID, credentialID string)
	// OnIntegrationChanged is called after an integration is updated or deleted, so
	// cached tokens and policy for it can be dropped. Optional.
	OnIntegrationChanged func(tenantID, integrationID string)
	// Metrics, when set, is mounted at GET /metrics (the lead's promhttp handler).
	Metrics http.Handler
}

type server struct {
	cfg     Config
	deps    Deps
	maxBody int64
	log     *slog.Logger
	now     func() time.Time
	auth    *registry.Authenticator
	adminH  [32]byte
	hasAdm  bool
	limiter *authlimit.Limiter

	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
}

// New returns the API handler. The caller serves it (http.Server with timeouts).
func New(cfg Config, deps Deps) http.Handler {
	s := &server{cfg: cfg, deps: deps, maxBody: cfg.MaxBodyBytes, log: cfg.Logger, now: cfg.Now}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if deps.Registry != nil {
		s.auth = registry.NewAuthenticator(deps.Registry)
	}
	s.limiter = cfg.AuthLimiter
	if s.limiter == nil {
		s.limiter = authlimit.New(authlimit.Config{Now: s.now})
	}
	if !cfg.AdminToken.IsZero() {
		s.adminH = sha256.Sum256(cfg.AdminToken.Bytes())
		s.hasAdm = true
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quantaseal_http_requests_total",
		Help: "HTTP API requests by route pattern and status code.",
	}, []string{"route", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "quantaseal_http_request_duration_seconds",
		Help: "HTTP API request latency by route pattern.",
		// Default buckets (5ms–10s) fit an API whose slow path is a KMS round trip.
		Buckets: prometheus.DefBuckets,
	}, []string{"route"})
	s.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quantaseal_http_auth_failures_total",
		Help: "HTTP API authentication failures: a wrong credential (rejected) or a source over the failure limit (limited).",
	}, []string{"credential", "result"})
	if cfg.Registerer != nil {
		s.requests = register(cfg.Registerer, s.requests)
		s.duration = register(cfg.Registerer, s.duration)
		s.authFailures = register(cfg.Registerer, s.authFailures)
	}
	return s.routes()
}

// register registers c, reusing an identical collector already registered (a second
// New on one registry, as in tests). Other registration errors leave c unregistered.
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// handlerFunc is an endpoint: it writes a success itself or returns an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) *apiError

// tenantFunc is an endpoint called with the authenticated key.
type tenantFunc func(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	// Each path is registered once without a method, and dispatches by method itself,
	// so a wrong method gets a JSON 405 with Allow, like every other error.
	route := func(path string, methods map[string]handlerFunc) {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		sort.Strings(allow)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			h, ok := methods[r.Method]
			if !ok {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				s.fail(w, r, &apiError{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: "method not allowed"})
				return
			}
			if e := h(w, r); e != nil {
				s.fail(w, r, e)
			}
		})
	}
	admin, tenant := s.admin, s.tenant

	route("/api/v2/tenants", map[string]handlerFunc{"POST": admin(s.createTenant)})
	route("/api/v2/tenants/{tenant_id}/api-keys", map[string]handlerFunc{
		"POST": admin(s.createAPIKey), "GET": admin(s.listAPIKeys)})
	route("/api/v2/tenants/{tenant_id}/api-keys/{key_id}", map[string]handlerFunc{"DELETE": admin(s.revokeAPIKey)})

	route("/api/v2/vault/seal", map[string]handlerFunc{"POST": tenant(s.sealCredential)})
	route("/api/v2/vault", map[string]handlerFunc{"GET": tenant(s.listCredentials)})
	route("/api/v2/vault/{id}", map[string]handlerFunc{"GET": tenant(s.getCredential), "DELETE": tenant(s.deleteCredential)})
	route("/api/v2/vault/{id}/rotate", map[string]handlerFunc{"POST": tenant(s.rotateCredential)})

	route("/api/v2/integrations", map[string]handlerFunc{"POST": tenant(s.createIntegration), "GET": tenant(s.listIntegrations)})
	route("/api/v2/integrations/{id}", map[string]handlerFunc{
		"GET": tenant(s.getIntegration), "PATCH": tenant(s.updateIntegration), "DELETE": tenant(s.deleteIntegration)})

	route("/api/v2/audit/events", map[string]handlerFunc{"GET": tenant(s.listEvents)})
	route("/api/v2/audit/events/{id}", map[string]handlerFunc{"GET": tenant(s.eventProof)})
	route("/api/v2/audit/checkpoints/latest", map[string]handlerFunc{"GET": tenant(s.latestCheckpoints)})

	route("/api/v2/signing-keys", map[string]handlerFunc{"GET": s.signingKeys})
	route("/healthz", map[string]handlerFunc{"GET": s.healthz})
	route("/readyz", map[string]handlerFunc{"GET": s.readyz})
	if s.deps.Metrics != nil {
		mux.Handle("GET /metrics", s.deps.Metrics)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &apiError{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such endpoint"})
	})
	return s.observe(mux)
}

// statusWriter records the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logInfo carries the authenticated tenant and key id to the request log line.
type logInfo struct{ tenantID, caller string }

type logInfoKey struct{}

func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		// Every answer may carry a once-shown secret or tenant data: never cache.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		info := &logInfo{}
		r = r.WithContext(context.WithValue(r.Context(), logInfoKey{}, info))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		d := s.now().Sub(start)
		s.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		s.duration.WithLabelValues(route).Observe(d.Seconds())
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method), slog.String("route", route), slog.Int("status", sw.status),
			slog.Int64("duration_ms", d.Milliseconds()), slog.String("tenant_id", info.tenantID),
			slog.String("caller", info.caller))
	})
}

// fail writes e as the JSON error body and logs its cause for 5xx.
func (s *server) fail(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.Status >= 500 {
		attrs := []slog.Attr{slog.String("code", e.Code)}
		if e.cause != nil {
			attrs = append(attrs, slog.String("error", e.cause.Error()))
		}
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "http request failed", attrs...)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="quantaseal"`)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.retryAfter/time.Second)))
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal","message":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Credential kinds of the auth-failure metric and log line.
const (
	credentialAdmin  = "admin_token"
	credentialAPIKey = "api_key"
)

// limited checks the request's source against the failed-auth limiter before any
// credential is looked at, so a guessing source learns nothing more, not even whether
// a guess was right, until its bucket refills.
func (s *server) limited(r *http.Request, credential string) *apiError {
	ok, wait := s.limiter.Allow(authlimit.SourceFromAddr(r.RemoteAddr))
	if ok {
		return nil
	}
	s.authFailures.WithLabelValues(credential, "limited").Inc()
	return &apiError{Status: http.StatusTooManyRequests, Code: CodeTooManyRequests,
		Message: "too many failed authentication attempts from this address; retry later", retryAfter: wait}
}

// authFailed records a wrong credential: it spends a token of the source's bucket and
// logs the source and route, never the presented value (not even a hash of it).
func (s *server) authFailed(r *http.Request, credential, code string) {
	source := authlimit.SourceFromAddr(r.RemoteAddr)
	s.limiter.Failure(source)
	s.authFailures.WithLabelValues(credential, "rejected").Inc()
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "authentication failed",
		slog.String("code", code), slog.String("credential", credential),
		slog.String("source", source), slog.String("route", r.Pattern))
}

// admin wraps an admin endpoint: bearer admin token, constant-time comparison of
// SHA-256 digests (so the comparison does not leak the token's length either).
func (s *server) admin(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		if e := s.limited(r, credentialAdmin); e != nil {
			return e
		}
		tok, ok := bearer(r)
		if !s.hasAdm || !ok {
			return &apiError{Status: http.StatusUnauthorized, Code: CodeInvalidAdmin, Message: "admin bearer token required"}
		}
		got := sha256.Sum256([]byte(tok.Reveal()))
		if subtle.ConstantTimeCompare(got[:], s.adminH[:]) != 1 {
			s.authFailed(r, credentialAdmin, CodeInvalidAdmin)
			return &apiError{Status: http.StatusUnauthorized, Code: CodeInvalidAdmin, Message: "admin bearer token required"}
		}
		if info, ok := r.Context().Value(logInfoKey{}).(*logInfo); ok {
			info.caller = "admin"
		}
		return h(w, r)
	}
}

func bearer(r *http.Request) (secret.Secret, bool) {
	h := r.Header.Get("Authorization")
	scheme, v, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(v) == "" {
		return secret.Secret{}, false
	}
	return secret.New(strings.TrimSpace(v)), true
}

// tenant wraps a tenant endpoint: the API key from X-API-Key or Authorization: Bearer.
func (s *server) tenant(h tenantFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		presented := secret.New(r.Header.Get("X-API-Key"))
		if presented.IsZero() {
			presented, _ = bearer(r)
		}
		if presented.IsZero() {
			return &apiError{Status: http.StatusUnauthorized, Code: CodeInvalidAPIKey, Message: "missing API key (X-API-Key or Authorization: Bearer)"}
		}
		if s.auth == nil {
			return unavailable(errors.New("no registry configured"))
		}
		if e := s.limited(r, credentialAPIKey); e != nil {
			return e
		}
		key, err := s.auth.Authenticate(r.Context(), presented)
		switch {
		case errors.Is(err, registry.ErrInvalidAPIKey):
			s.authFailed(r, credentialAPIKey, CodeInvalidAPIKey)
			return &apiError{Status: http.StatusUnauthorized, Code: CodeInvalidAPIKey, Message: "invalid API key"}
		case err != nil:
			return unavailable(err)
		}
		if info, ok := r.Context().Value(logInfoKey{}).(*logInfo); ok {
			info.tenantID, info.caller = key.TenantID, key.ID
		}
		if key.IntegrationID != "" {
			return &apiError{Status: http.StatusForbidden, Code: CodeForbidden,
				Message: "this API key is bound to one integration and cannot use the management API"}
		}
		return h(w, r, key)
	}
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) *apiError {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) *apiError {
	check := s.cfg.Readiness
	if check == nil {
		if p, ok := s.deps.Registry.(interface{ Ping(context.Context) error }); ok {
			check = p.Ping
		}
	}
	if check != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := check(ctx); err != nil {
			e := unavailable(err)
			e.Message = "not ready"
			return e
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

func (s *server) signingKeys(w http.ResponseWriter, _ *http.Request) *apiError {
	type keyJSON struct {
		KeyID     string `json:"key_id"`
		Algorithm string `json:"algorithm"`
		PublicKey string `json:"public_key"`
		Current   bool   `json:"current"`
	}
	keys := []keyJSON{}
	if s.deps.SigningKeys != nil {
		for _, k := range s.deps.SigningKeys() {
			keys = append(keys, keyJSON{KeyID: k.KeyID, Algorithm: "ML-DSA-65",
				PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey), Current: k.Current})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	return nil
}

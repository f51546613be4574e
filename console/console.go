package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

// ContentSecurityPolicy is sent with every response of the console.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Defaults of Config.
const (
	DefaultSessionIdleTimeout = 30 * time.Minute
	DefaultSessionMaxAge      = 12 * time.Hour
	DefaultMaxSessions        = 10000
	DefaultMaxScanEvents      = 10000
	DefaultMaxVerifyEvents    = 1000000
)

// maxFormBytes bounds a POST body: the largest field is a private key (16 KiB).
const maxFormBytes = 256 << 10

// Config configures the console.
type Config struct {
	// AdminToken lets an operator sign in for tenant and API-key management. Zero: admin
	// sign-in is disabled.
	AdminToken secret.Secret
	// AllowedOktaOrigins are the operator's extra okta_domain origins, as for the HTTP API
	// (registry.CheckOktaOrigin).
	AllowedOktaOrigins []string
	// SessionIdleTimeout ends a session this long after its last request
	// (0: DefaultSessionIdleTimeout).
	SessionIdleTimeout time.Duration
	// SessionMaxAge ends a session this long after sign-in, however active
	// (0: DefaultSessionMaxAge).
	SessionMaxAge time.Duration
	// MaxSessions bounds the in-memory session table (0: DefaultMaxSessions). When it is
	// full of live sessions, sign-in answers 503.
	MaxSessions int
	// MaxScanEvents bounds how many audit events one audit page reads (0:
	// DefaultMaxScanEvents).
	MaxScanEvents int
	// MaxVerifyEvents bounds how many events "verify chain" loads into memory
	// (0: DefaultMaxVerifyEvents); beyond it the page points to `quantaseal audit verify`.
	MaxVerifyEvents int
	// VerifyOptions are passed to audit.Verify.
	VerifyOptions audit.VerifyOptions
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives failures of backing services (nil: discard). Never a secret.
	Logger *slog.Logger
}

// Registry is the part of registry.Store the console uses.
type Registry interface {
	registry.KeyLookup // LookupAPIKey, for sign-in

	CreateTenant(ctx context.Context, t registry.Tenant, first registry.APIKey) error
	GetTenant(ctx context.Context, tenantID string) (registry.Tenant, error)
	ListTenants(ctx context.Context) ([]registry.Tenant, error)

	CreateAPIKey(ctx context.Context, k registry.APIKey) error
	ListAPIKeys(ctx context.Context, tenantID string) ([]registry.APIKey, error)
	RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) error

	CreateIntegration(ctx context.Context, in registry.Integration) error
	GetIntegration(ctx context.Context, tenantID, integrationID string) (registry.Integration, error)
	ListIntegrations(ctx context.Context, tenantID string) ([]registry.Integration, error)
	ListIntegrationsByCredential(ctx context.Context, tenantID, credentialID string) ([]registry.Integration, error)
	UpdateIntegration(ctx context.Context, in registry.Integration) error
	DeleteIntegration(ctx context.Context, tenantID, integrationID string) error
}

// Vault is the part of *vault.Vault the console uses.
type Vault interface {
	Seal(ctx context.Context, tenantID, name, credType string, c vault.Credential) (vault.CredentialMeta, error)
	Rotate(ctx context.Context, tenantID, credentialID string, c vault.Credential) (vault.CredentialMeta, error)
	Get(ctx context.Context, tenantID, credentialID string) (vault.CredentialMeta, error)
	List(ctx context.Context, tenantID string) ([]vault.CredentialMeta, error)
	Delete(ctx context.Context, tenantID, credentialID string) error
	SealBytes(ctx context.Context, tenantID, purpose string, plaintext []byte) ([]byte, error)
}

// Audit is the read side of audit.Store the console uses.
type Audit interface {
	ListEvents(ctx context.Context, tenantID string, q audit.Query) ([]audit.Event, string, error)
	EventProof(ctx context.Context, tenantID, eventID string) (audit.Proof, error)
	Chains(ctx context.Context) ([]audit.Head, error)
	ChainEvents(ctx context.Context, chainID string, afterSeq int64, limit int) ([]audit.Event, error)
	Checkpoints(ctx context.Context, chainID string, fromSeq int64) ([]audit.SignedCheckpoint, error)
}

// SigningKey is one of the gateway's ML-DSA-65 public keys (checkpoint signatures).
type SigningKey struct {
	KeyID     string
	PublicKey []byte
	Current   bool
}

// Deps are the services behind the console.
type Deps struct {
	Registry Registry // required
	Vault    Vault    // required
	Audit    Audit    // nil: the audit pages answer 503
	// SigningKeys lists the gateway's public signing keys (nil: none); they are shown on
	// the signing-keys page and used to verify checkpoints.
	SigningKeys func() []SigningKey
	// OnCredentialRotated is called after a rotation, to drop cached tokens. Optional.
	OnCredentialRotated func(tenantID, credentialID string)
	// OnIntegrationChanged is called after an integration is updated or deleted. Optional.
	OnIntegrationChanged func(tenantID, integrationID string)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

type server struct {
	cfg      Config
	deps     Deps
	now      func() time.Time
	log      *slog.Logger
	auth     *registry.Authenticator
	adminH   [32]byte
	hasAdmin bool
	sessions *sessions
	pages    map[string]*template.Template
}

// New returns the console handler. It serves every path under [Prefix]; mount it there
// without stripping the prefix. It fails if a required dependency is missing.
func New(cfg Config, deps Deps) (http.Handler, error) {
	if deps.Registry == nil || deps.Vault == nil {
		return nil, errors.New("console: Deps.Registry and Deps.Vault are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionIdleTimeout <= 0 {
		cfg.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if cfg.SessionMaxAge <= 0 {
		cfg.SessionMaxAge = DefaultSessionMaxAge
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxScanEvents <= 0 {
		cfg.MaxScanEvents = DefaultMaxScanEvents
	}
	if cfg.MaxVerifyEvents <= 0 {
		cfg.MaxVerifyEvents = DefaultMaxVerifyEvents
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &server{
		cfg: cfg, deps: deps, now: cfg.Now, log: cfg.Logger,
		auth:     registry.NewAuthenticator(deps.Registry),
		sessions: newSessions(cfg.SessionIdleTimeout, cfg.SessionMaxAge, cfg.MaxSessions, cfg.Now),
		pages:    pages,
	}
	if !cfg.AdminToken.IsZero() {
		s.adminH = sha256.Sum256(cfg.AdminToken.Bytes())
		s.hasAdmin = true
	}
	return s.routes()
}

func (s *server) routes() (http.Handler, error) {
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	mux := http.NewServeMux()
	for _, name := range []string{"style.css", "console.js"} {
		mux.HandleFunc("GET /console/static/"+name, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFileFS(w, r, static, name)
		})
	}

	mux.HandleFunc("GET /console/{$}", s.home)
	mux.HandleFunc("GET /console/login", s.loginForm)
	mux.HandleFunc("POST /console/login", s.login)
	mux.HandleFunc("POST /console/logout", s.with(roleAny, s.logout))

	mux.HandleFunc("GET /console/integrations", s.with(roleTenant, s.listIntegrations))
	mux.HandleFunc("GET /console/integrations/new", s.with(roleTenant, s.newIntegration))
	mux.HandleFunc("POST /console/integrations", s.with(roleTenant, s.createIntegration))
	mux.HandleFunc("GET /console/integrations/{id}", s.with(roleTenant, s.editIntegration))
	mux.HandleFunc("POST /console/integrations/{id}", s.with(roleTenant, s.updateIntegration))
	mux.HandleFunc("GET /console/integrations/{id}/delete", s.with(roleTenant, s.confirmDeleteIntegration))
	mux.HandleFunc("POST /console/integrations/{id}/delete", s.with(roleTenant, s.deleteIntegration))

	mux.HandleFunc("GET /console/vault", s.with(roleTenant, s.listCredentials))
	mux.HandleFunc("GET /console/vault/new", s.with(roleTenant, s.newCredential))
	mux.HandleFunc("POST /console/vault", s.with(roleTenant, s.sealCredential))
	mux.HandleFunc("GET /console/vault/{id}", s.with(roleTenant, s.showCredential))
	mux.HandleFunc("POST /console/vault/{id}/rotate", s.with(roleTenant, s.rotateCredential))
	mux.HandleFunc("GET /console/vault/{id}/delete", s.with(roleTenant, s.confirmDeleteCredential))
	mux.HandleFunc("POST /console/vault/{id}/delete", s.with(roleTenant, s.deleteCredential))

	mux.HandleFunc("GET /console/audit", s.with(roleTenant, s.auditPage))
	mux.HandleFunc("GET /console/audit/events/{id}", s.with(roleTenant, s.auditEvent))
	mux.HandleFunc("POST /console/audit/verify", s.with(roleTenant, s.verifyChain))

	mux.HandleFunc("GET /console/keys", s.with(roleAny, s.signingKeys))

	mux.HandleFunc("GET /console/tenants", s.with(roleAdmin, s.listTenants))
	mux.HandleFunc("POST /console/tenants", s.with(roleAdmin, s.createTenant))
	mux.HandleFunc("GET /console/tenants/{id}", s.with(roleAdmin, s.showTenant))
	mux.HandleFunc("POST /console/tenants/{id}/api-keys", s.with(roleAdmin, s.createAPIKey))
	mux.HandleFunc("GET /console/tenants/{id}/api-keys/{key}/revoke", s.with(roleAdmin, s.confirmRevokeAPIKey))
	mux.HandleFunc("POST /console/tenants/{id}/api-keys/{key}/revoke", s.with(roleAdmin, s.revokeAPIKey))

	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, nil, http.StatusNotFound, "There is no such page.")
	})
	return s.secure(mux), nil
}

// secure sets the security headers on every response, before the handler runs, so that
// redirects, errors and static files carry them too.
func (s *server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// Pages show tenant data and, once, secrets: never cache them.
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// role says who may use a route.
type role int

const (
	roleAny role = iota
	roleTenant
	roleAdmin
)

// sessionHandler is a route called with the caller's live session.
type sessionHandler func(w http.ResponseWriter, r *http.Request, sess *session) error

// with authenticates the session cookie, checks the role, and for POST checks the
// request's origin and CSRF token before calling h. A failure of h is rendered by
// renderFailure.
func (s *server) with(want role, h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.sessions.get(sessionCookie(r))
		if !ok {
			if r.Method == http.MethodGet {
				to := "/console/login"
				if sessionCookie(r) != "" {
					to += "?expired=1" // the browser had a session that ended
				}
				http.Redirect(w, r, to, http.StatusSeeOther)
				return
			}
			s.renderError(w, r, nil, http.StatusForbidden, "Your session has ended. Sign in again.")
			return
		}
		if r.Method == http.MethodPost {
			if !s.checkPost(w, r, sess.csrf) {
				s.renderError(w, r, &sess, http.StatusForbidden,
					"This form has expired or did not come from this console. Reload the page and try again.")
				return
			}
		}
		switch {
		case want == roleTenant && sess.tenantID == "":
			s.renderError(w, r, &sess, http.StatusForbidden, "This page is for tenant users: sign in with a tenant API key.")
			return
		case want == roleAdmin && !sess.admin:
			s.renderError(w, r, &sess, http.StatusForbidden, "This page is for the operator: sign in with the admin token.")
			return
		}
		if err := h(w, r, &sess); err != nil {
			s.renderFailure(w, r, &sess, err)
		}
	}
}

// checkPost parses a form POST (bounded) and checks that it is not a cross-site request
// and that its csrf field equals want, in constant time.
func (s *server) checkPost(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return false
	}
	return tokensEqual(r.PostForm.Get("csrf"), want)
}

func (s *server) home(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.sessions.get(sessionCookie(r))
	switch {
	case !ok:
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
	case sess.admin:
		http.Redirect(w, r, "/console/tenants", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/console/integrations", http.StatusSeeOther)
	}
}

// Errors of handlers that renderFailure maps to a status.
var (
	errNotFound  = errors.New("not found")
	errForbidden = errors.New("forbidden")
)

// renderFailure maps an error of the registry, vault or audit layer to an error page.
// Causes of 5xx are logged, never shown.
func (s *server) renderFailure(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	switch {
	case errors.Is(err, errNotFound), errors.Is(err, registry.ErrNotFound), errors.Is(err, vault.ErrNotFound),
		errors.Is(err, audit.ErrNotFound):
		s.renderError(w, r, sess, http.StatusNotFound, "There is no such item in this tenant.")
	case errors.Is(err, errForbidden):
		s.renderError(w, r, sess, http.StatusForbidden, "This action is not allowed.")
	case errors.Is(err, audit.ErrBadQuery):
		s.renderError(w, r, sess, http.StatusBadRequest, "The audit query is not valid.")
	case errors.Is(err, registry.ErrUnavailable), errors.Is(err, vault.ErrUnavailable), errors.Is(err, audit.ErrUnavailable),
		errors.Is(err, errNoAudit):
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "console: backing service unavailable",
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		s.renderError(w, r, sess, http.StatusServiceUnavailable,
			"A backing service (store, vault or key management) is unavailable. Try again in a moment.")
	default:
		s.log.LogAttrs(r.Context(), slog.LevelError, "console: request failed",
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		s.renderError(w, r, sess, http.StatusInternalServerError, "Something went wrong. The error has been logged.")
	}
}

// page is what every template receives.
type page struct {
	Title   string
	Nav     string // the active navigation entry
	Session *sessionView
	CSRF    string
	Flash   string
	Data    any
}

type sessionView struct {
	Admin      bool
	TenantID   string
	TenantName string
	Caller     string
}

// render writes the named page with status. It renders into a buffer first so that a
// template error becomes a clean 500.
func (s *server) render(w http.ResponseWriter, r *http.Request, sess *session, status int, name, title, nav string, data any) {
	p := page{Title: title, Nav: nav, Data: data}
	if sess != nil {
		p.Session = &sessionView{Admin: sess.admin, TenantID: sess.tenantID, TenantName: sess.tenantName, Caller: sess.caller}
		p.CSRF = sess.csrf
		p.Flash = s.sessions.takeFlash(sess.id)
	}
	t, ok := s.pages[name]
	if !ok {
		s.log.LogAttrs(r.Context(), slog.LevelError, "console: no such template", slog.String("template", name))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "console: render", slog.String("template", name), slog.String("error", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

type errorData struct {
	Status  int
	Message string
}

func (s *server) renderError(w http.ResponseWriter, r *http.Request, sess *session, status int, msg string) {
	s.render(w, r, sess, status, "error", http.StatusText(status), "", errorData{Status: status, Message: msg})
}

// redirect answers a successful POST with 303 to a GET page, leaving a flash message.
func (s *server) redirect(w http.ResponseWriter, r *http.Request, sess *session, to, flash string) {
	if flash != "" {
		s.sessions.setFlash(sess.id, flash)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"timeptr": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
	// evtime shortens an audit event's RFC 3339 nanosecond time for tables.
	"evtime": func(v string) string {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return v
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"dash": func(v string) string {
		if v == "" {
			return "—"
		}
		return v
	},
	"b64": func(b []byte) string { return base64.StdEncoding.EncodeToString(b) },
	"contains": func(list []string, v string) bool {
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	},
}

// parsePages parses one template set per page: the layout plus the page file.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", base, err)
		}
		pages[base] = t
	}
	return pages, nil
}

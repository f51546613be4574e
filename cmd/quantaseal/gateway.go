package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quantaseal/gateway/audit"
	auditpg "github.com/quantaseal/gateway/audit/pgstore"
	auditsqlite "github.com/quantaseal/gateway/audit/sqlitestore"
	"github.com/quantaseal/gateway/console"
	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/extproc"
	"github.com/quantaseal/gateway/httpapi"
	"github.com/quantaseal/gateway/internal/authlimit"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/internal/sqlitedb"
	"github.com/quantaseal/gateway/okta"
	"github.com/quantaseal/gateway/registry"
	registrypg "github.com/quantaseal/gateway/registry/pgstore"
	registrysqlite "github.com/quantaseal/gateway/registry/sqlitestore"
	"github.com/quantaseal/gateway/vault"
	"github.com/quantaseal/gateway/vault/awskms"
	"github.com/quantaseal/gateway/vault/localkey"
)

// Files in the data directory.
const (
	localVaultKeyFile   = "vault.key"
	adminTokenFile      = "admin.token"
	tenantProfileFile   = "tenant-profile.json"
	bootstrapTenantName = "default"
)

// gateway holds the wired components of `serve`.
type gateway struct {
	cfg      Config
	logger   *slog.Logger
	registry registry.Store
	vault    *vault.Vault
	auditLog *audit.Log
	tokens   *okta.TokenSource
	signing  *envelope.SigningKey
	extproc  *extproc.Server
	api      http.Handler
	console  http.Handler
	ping     func(context.Context) error
	closers  []func() error
}

// buildGateway opens the stores and wires every component from cfg. On error, whatever
// was opened is closed again.
func buildGateway(ctx context.Context, cfg Config, logger *slog.Logger, reg *prometheus.Registry) (_ *gateway, err error) {
	gw := &gateway{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			gw.close(logger)
		}
	}()

	seed, created, err := loadOrCreateKeyFile(dataPath(cfg, signingKeyFile), envelope.SigningSeedSize)
	if err != nil {
		return nil, fmt.Errorf("gateway signing key: %w", err)
	}
	if gw.signing, err = envelope.NewSigningKey(seed.Bytes()); err != nil {
		return nil, fmt.Errorf("gateway signing key: %w", err)
	}
	auditSigner, err := audit.NewSeedSigner(seed)
	if err != nil {
		return nil, fmt.Errorf("audit signer: %w", err)
	}
	logger.Info("gateway signing key", slog.String("key_id", gw.signing.KeyID()), slog.Bool("created", created),
		slog.String("path", dataPath(cfg, signingKeyFile)))

	if cfg.AdminToken.IsZero() {
		tok, created, err := loadOrCreateAdminToken(dataPath(cfg, adminTokenFile))
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		cfg.AdminToken = tok
		gw.cfg.AdminToken = tok
		logger.Info("admin token read from the data directory (set QUANTASEAL_ADMIN_TOKEN to choose one)",
			slog.String("path", dataPath(cfg, adminTokenFile)), slog.Bool("created", created))
	}

	auditStore, err := gw.openStores(ctx)
	if err != nil {
		return nil, err
	}

	wrapper, err := newKeyWrapper(ctx, cfg, logger, gw.registry)
	if err != nil {
		return nil, err
	}
	gw.vault = vault.New(vault.Config{KeyCacheTTL: cfg.KMS.CacheTTL, Logger: logger}, gw.registry, wrapper)

	auditMetrics := newAuditMetrics(reg)
	// PostgreSQL orders a chain's commits on its head row, so a batch may be sent
	// while the previous one is still committing (audit/pgstore); SQLite has one
	// writer, so a second batch in flight would only wait for the lock.
	inFlight := cfg.Audit.MaxInFlight
	if inFlight == 0 {
		inFlight = 1
		if !cfg.DatabaseURL.IsZero() {
			inFlight = 2
		}
	}
	gw.auditLog, err = audit.NewLog(audit.Config{
		MaxInFlight:        inFlight,
		WriterID:           cfg.Audit.WriterID,
		MaxBatch:           cfg.Audit.MaxBatch,
		MaxDelay:           cfg.Audit.MaxDelay,
		AppendTimeout:      cfg.Audit.CommitTimeout,
		CheckpointEvery:    int64(cfg.Audit.CheckpointEvery),
		CheckpointInterval: cfg.Audit.CheckpointInterval,
		Logger:             logger,
		Observe:            auditMetrics.observe,
	}, auditStore, auditSigner)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}

	httpClient, err := oktaHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	gw.tokens = okta.NewTokenSource(okta.Config{HTTPClient: httpClient, Timeout: cfg.Okta.TokenTimeout, Logger: logger})
	gw.closers = append(gw.closers, gw.tokens.Close)
	if err := reg.Register(gw.tokens); err != nil {
		return nil, fmt.Errorf("token metrics: %w", err)
	}

	// One limiter of failed API-key and admin-token attempts per source, shared by the
	// data plane (ext_proc/ext_authz, source = Envoy's source.address) and the HTTP API
	// (source = the TCP peer), so a guesser cannot double its budget.
	authLimiter := authlimit.New(authlimit.Config{})
	gw.extproc, err = extproc.New(extproc.Config{
		AuthLimiter:     authLimiter,
		AuditTimeout:    cfg.Audit.CommitTimeout,
		TokenTimeout:    cfg.Okta.TokenTimeout,
		MaxMessageBytes: cfg.Server.MaxMessageBytes,
		// Send override_message_timeout well before Envoy's per-message timer fires.
		OverrideAfter:        cfg.Server.MessageTimeout / 2,
		HashResponses:        cfg.Audit.HashResponses,
		MaxBufferedBodyBytes: cfg.Server.MaxBufferedBodyBytes,
	}, extproc.Deps{
		Authenticator: apiKeyAuthenticator{auth: registry.NewAuthenticator(gw.registry)},
		Integrations:  integrationResolver{store: gw.registry},
		Tokens:        tokenSource{tokens: gw.tokens, vault: gw.vault},
		Sealer:        newTenantSealer(gw.registry, gw.vault, gw.signing, cfg.KMS.CacheTTL),
		Recorder:      auditRecorder{log: gw.auditLog},
		Logger:        logger,
		Registerer:    reg,
	})
	if err != nil {
		return nil, err
	}

	// The API and the console write through the same wrapper, so a key revoked or an
	// integration created in either takes effect on the processor at once.
	mgmtRegistry := forgettingRegistry{Store: gw.registry, proc: gw.extproc}
	signingKeys := []httpapi.SigningKeyInfo{{KeyID: gw.signing.KeyID(), PublicKey: gw.signing.Public().Bytes(), Current: true}}
	gw.api = httpapi.New(httpapi.Config{
		AuthLimiter:        authLimiter,
		AdminToken:         cfg.AdminToken,
		AllowedOktaOrigins: cfg.Okta.AllowedDomains,
		Logger:             logger,
		Registerer:         reg,
		Readiness:          func(ctx context.Context) error { return gw.ready(ctx) },
	}, httpapi.Deps{
		Registry:             mgmtRegistry,
		Vault:                gw.vault,
		Audit:                auditStore,
		SigningKeys:          func() []httpapi.SigningKeyInfo { return signingKeys },
		OnCredentialRotated:  gw.invalidateCredential,
		OnIntegrationChanged: gw.integrationChanged,
		Metrics:              promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
	})

	consoleKeys := []console.SigningKey{{KeyID: gw.signing.KeyID(), PublicKey: gw.signing.Public().Bytes(), Current: true}}
	gw.console, err = console.New(console.Config{
		AdminToken:         cfg.AdminToken,
		AllowedOktaOrigins: cfg.Okta.AllowedDomains,
		Logger:             logger,
	}, console.Deps{
		Registry:             mgmtRegistry,
		Vault:                gw.vault,
		Audit:                auditStore,
		SigningKeys:          func() []console.SigningKey { return consoleKeys },
		OnCredentialRotated:  gw.invalidateCredential,
		OnIntegrationChanged: gw.integrationChanged,
	})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}

	if cfg.DatabaseURL.IsZero() {
		if err := gw.bootstrapTenant(ctx); err != nil {
			return nil, fmt.Errorf("bootstrap tenant: %w", err)
		}
	}
	return gw, nil
}

// openStores opens PostgreSQL (database_url set) or the embedded SQLite database and
// builds the registry and audit stores over it.
func (gw *gateway) openStores(ctx context.Context) (audit.Store, error) {
	if u := gw.cfg.DatabaseURL.Reveal(); u != "" {
		pool, err := pgxpool.New(ctx, u)
		if err != nil {
			// pgx errors can quote the URL; say what failed without it.
			return nil, errors.New("database_url: cannot parse or connect (check QUANTASEAL_DATABASE_URL)")
		}
		gw.closers = append(gw.closers, func() error { pool.Close(); return nil })
		gw.ping = pool.Ping
		reg, err := registrypg.New(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("registry store: %w", err)
		}
		gw.registry = reg
		st, err := auditpg.New(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("audit store: %w", err)
		}
		gw.logger.Info("store: PostgreSQL")
		return st, nil
	}
	path := dataPath(gw.cfg, embeddedDBFile)
	db, err := sqlitedb.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	gw.closers = append(gw.closers, db.Close)
	gw.ping = db.PingContext
	reg, err := registrysqlite.New(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("registry store: %w", err)
	}
	gw.registry = reg
	st, err := auditsqlite.New(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("audit store: %w", err)
	}
	gw.logger.Info("store: embedded SQLite", slog.String("path", path))
	return st, nil
}

// newKeyWrapper builds the key provider that wraps tenants' vault keys.
func newKeyWrapper(ctx context.Context, cfg Config, logger *slog.Logger, reg registry.Store) (vault.KeyWrapper, error) {
	switch cfg.KMS.Provider {
	case "aws":
		w, err := awskms.New(ctx, awskms.Config{
			KeyID: cfg.KMS.KeyID,
			KeyIDFor: func(tenantID string) (string, error) {
				ctx, cancel := context.WithTimeout(context.Background(), cfg.KMS.Timeout)
				defer cancel()
				t, err := reg.GetTenant(ctx, tenantID)
				switch {
				case errors.Is(err, registry.ErrNotFound):
					// Tenant creation wraps the new tenant's vault key before its row
					// exists; a kms_key_id in the request arrives through the context
					// (vault.WithKMSKeyID), so here only the default key remains.
				case err != nil:
					return "", err
				case t.KMSKeyID != "":
					return t.KMSKeyID, nil
				}
				if cfg.KMS.KeyID == "" {
					return "", fmt.Errorf("tenant %s has no kms_key_id and kms.key_id is not set", tenantID)
				}
				return cfg.KMS.KeyID, nil
			},
			Endpoint: cfg.KMS.Endpoint,
			Region:   cfg.KMS.Region,
			Timeout:  cfg.KMS.Timeout,
		})
		if err != nil {
			return nil, fmt.Errorf("aws kms: %w", err)
		}
		return w, nil
	default:
		path := cfg.KMS.KeyFile
		if path == "" {
			path = dataPath(cfg, localVaultKeyFile)
		}
		w, err := localkey.New(localkey.Config{Path: path, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("local key provider: %w", err)
		}
		return w, nil
	}
}

// oktaHTTPClient is the client for Okta's token endpoint, with the operator's extra CA
// bundle when one is configured.
func oktaHTTPClient(cfg Config) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	if cfg.Okta.CAFile != "" {
		pem, err := os.ReadFile(cfg.Okta.CAFile)
		if err != nil {
			return nil, fmt.Errorf("okta.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("okta.ca_file %s: no PEM certificates found", cfg.Okta.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: cfg.Okta.RequestTimeout}, nil
}

// integrationChanged drops what the token source and the processor cached about an
// integration that was updated or deleted.
func (gw *gateway) integrationChanged(tenantID, integrationID string) {
	gw.tokens.Invalidate(integrationID)
	gw.extproc.ForgetIntegrations(tenantID)
}

// invalidateCredential drops cached tokens of every integration using a rotated credential.
func (gw *gateway) invalidateCredential(tenantID, credentialID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ins, err := gw.registry.ListIntegrationsByCredential(ctx, tenantID, credentialID)
	if err != nil {
		gw.logger.Error("drop cached tokens after rotation", slog.String("error", err.Error()))
		return
	}
	for _, in := range ins {
		gw.tokens.Invalidate(in.ID)
	}
}

// bootstrapTenant creates one tenant on an empty embedded store by making the same API
// call an operator would, and writes its client profile (envelope-v1.md) to the data
// directory with mode 0600, so that `make run` hands a newcomer a working key.
func (gw *gateway) bootstrapTenant(ctx context.Context) error {
	tenants, err := gw.registry.ListTenants(ctx)
	if err != nil {
		return err
	}
	path := dataPath(gw.cfg, tenantProfileFile)
	if len(tenants) > 0 {
		return nil
	}
	body := strings.NewReader(`{"name":"` + bootstrapTenantName + `"}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/api/v2/tenants", body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+gw.cfg.AdminToken.Reveal())
	rec := &responseRecorder{header: http.Header{}}
	gw.api.ServeHTTP(rec, req)
	if rec.status != http.StatusCreated && rec.status != http.StatusOK {
		return fmt.Errorf("create tenant: HTTP %d: %s", rec.status, rec.body.String())
	}
	var out struct {
		TenantID        string `json:"tenant_id"`
		APIKey          string `json:"api_key"`
		HMACKey         string `json:"hmac_key"`
		ResponseKEMSeed string `json:"response_kem_seed"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &out); err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	hmacKey, err1 := base64.StdEncoding.DecodeString(out.HMACKey)
	kemSeed, err2 := base64.StdEncoding.DecodeString(out.ResponseKEMSeed)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	profile := &envelope.Profile{
		TenantID:        out.TenantID,
		APIKey:          secret.New(out.APIKey),
		HMACKey:         secret.FromBytes(hmacKey),
		ResponseKEMSeed: secret.FromBytes(kemSeed),
		SigningKeys:     map[string][]byte{gw.signing.KeyID(): gw.signing.Public().Bytes()},
	}
	if err := profile.SaveNew(path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists but the store has no tenant: move it away or restore the database", path)
		}
		return err
	}
	gw.logger.Info("bootstrapped a tenant; its client profile (API key, HMAC key, response key) is in the data directory",
		slog.String("tenant_id", out.TenantID), slog.String("path", path))
	return nil
}

// responseRecorder captures an in-process API response (bootstrap only).
type responseRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *responseRecorder) Header() http.Header { return r.header }
func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *responseRecorder) WriteHeader(code int) { r.status = code }

// loadOrCreateAdminToken reads the admin token file, or creates one holding a new random
// token (mode 0600).
func loadOrCreateAdminToken(path string) (secret.Secret, bool, error) {
	raw, created, err := loadOrCreateKeyFile(path, adminTokenBytes)
	if err != nil {
		return secret.Secret{}, false, err
	}
	// The file holds raw random bytes; the token is their unpadded base64url text, so it
	// can be pasted into a header: `Authorization: Bearer $(quantaseal-token)`. The log
	// line points operators at QUANTASEAL_ADMIN_TOKEN for a token of their choosing.
	return secret.New("qs_admin_" + base64.RawURLEncoding.EncodeToString(raw.Bytes())), created, nil
}

const adminTokenBytes = 32

// ready reports whether the stores answer.
func (gw *gateway) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if gw.ping == nil {
		return errors.New("store not open")
	}
	if err := gw.ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// flush commits queued audit events and signs the final checkpoints.
func (gw *gateway) flush(ctx context.Context) error {
	if gw.auditLog == nil {
		return nil
	}
	return gw.auditLog.Close(ctx)
}

func (gw *gateway) close(logger *slog.Logger) {
	for i := len(gw.closers) - 1; i >= 0; i-- {
		if err := gw.closers[i](); err != nil {
			logger.Warn("close", slog.String("error", err.Error()))
		}
	}
	gw.closers = nil
}

// auditMetrics exports the audit batcher's commit statistics.
type auditMetrics struct {
	batchSize *prometheus.HistogramVec
	latency   *prometheus.HistogramVec
}

func newAuditMetrics(reg prometheus.Registerer) *auditMetrics {
	m := &auditMetrics{
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quantaseal_audit_batch_events",
			Help: "Events per audit group commit.",
			// Powers of two up to the default max batch: group commit sizes span 1 to 512.
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quantaseal_audit_commit_duration_seconds",
			Help: "Duration of one audit group commit.",
			// 0.5 ms to ~1 s: fsync-bound commits on local disks sit at 1–20 ms.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
		}, []string{"result"}),
	}
	reg.MustRegister(m.batchSize, m.latency)
	return m
}

func (m *auditMetrics) observe(s audit.BatchStats) {
	result := "ok"
	if s.Err != nil {
		result = "error"
	}
	m.batchSize.WithLabelValues(result).Observe(float64(s.Events))
	m.latency.WithLabelValues(result).Observe(s.Duration.Seconds())
}

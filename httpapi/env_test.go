package httpapi_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/httpapi"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/internal/sqlitedb"
	"github.com/quantaseal/gateway/internal/testenv"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/registry/pgstore"
	"github.com/quantaseal/gateway/registry/sqlitestore"
	"github.com/quantaseal/gateway/vault"
)

const adminToken = "admin-token-for-tests-0123456789"

// fakeWrapper is a vault.KeyWrapper using AES-GCM under a random key, binding tenant and
// purpose as AAD. down makes it fail like an unreachable KMS.
type fakeWrapper struct {
	aead cipher.AEAD
	down atomic.Bool
}

func newFakeWrapper() *fakeWrapper {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	b, _ := aes.NewCipher(k)
	a, _ := cipher.NewGCM(b)
	return &fakeWrapper{aead: a}
}

func (f *fakeWrapper) Wrap(_ context.Context, tenantID, purpose string, pt []byte) ([]byte, error) {
	if f.down.Load() {
		return nil, fmt.Errorf("fake kms: connection refused: %w", vault.ErrUnavailable)
	}
	n := make([]byte, f.aead.NonceSize())
	_, _ = rand.Read(n)
	return f.aead.Seal(n, n, pt, []byte(tenantID+"\x00"+purpose)), nil
}

func (f *fakeWrapper) Unwrap(_ context.Context, tenantID, purpose string, w []byte) ([]byte, error) {
	if f.down.Load() {
		return nil, fmt.Errorf("fake kms: connection refused: %w", vault.ErrUnavailable)
	}
	ns := f.aead.NonceSize()
	if len(w) < ns {
		return nil, errors.New("short")
	}
	return f.aead.Open(nil, w[:ns], w[ns:], []byte(tenantID+"\x00"+purpose))
}

// fakeAudit is an in-memory AuditReader, tenant-scoped like the real stores.
type fakeAudit struct {
	mu      sync.Mutex
	events  []audit.Event
	lastQ   audit.Query
	cps     map[string][]audit.SignedCheckpoint
	failing bool
}

func (f *fakeAudit) ListEvents(_ context.Context, tenantID string, q audit.Query) ([]audit.Event, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastQ = q
	if f.failing {
		return nil, "", fmt.Errorf("db down: %w", audit.ErrUnavailable)
	}
	var out []audit.Event
	for _, e := range f.events {
		if e.TenantID == tenantID && (q.IntegrationID == "" || q.IntegrationID == e.IntegrationID) {
			out = append(out, e)
		}
	}
	return out, "", nil
}

func (f *fakeAudit) EventProof(_ context.Context, tenantID, eventID string) (audit.Proof, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range f.events {
		if e.ID == eventID && e.TenantID == tenantID {
			cp := audit.SignedCheckpoint{Note: "note", KeyID: "0011223344556677", Signature: "c2ln"}
			return audit.Proof{Event: e, Following: f.events[i+1:], Checkpoint: &cp}, nil
		}
	}
	return audit.Proof{}, fmt.Errorf("event %s: %w", eventID, audit.ErrNotFound)
}

func (f *fakeAudit) LatestCheckpoints(_ context.Context, tenantID string) ([]audit.SignedCheckpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cps[tenantID], nil
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// env is one API over a real store and a real vault.
type env struct {
	t       testing.TB
	h       http.Handler
	store   registry.Store
	wrapper *fakeWrapper
	audit   *fakeAudit
	logs    *syncBuffer
	// seen accumulates every response (headers and body) for leak checks.
	seenMu sync.Mutex
	seen   bytes.Buffer
	// dump returns every byte the database holds (for leak checks).
	dump     func() []byte
	closeDB  func()
	rotated  []string
	changed  []string
	hookMu   sync.Mutex
	proxy    *tcpProxy
	pgURL    string
	vaultSvc *vault.Vault
}

type backend string

const (
	backendSQLite   backend = "sqlite"
	backendPostgres backend = "postgres"
)

func backends() []backend { return []backend{backendSQLite, backendPostgres} }

type envOption func(*httpapi.Config, *httpapi.Deps)

func newEnv(t testing.TB, b backend, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, wrapper: newFakeWrapper(), audit: &fakeAudit{cps: map[string][]audit.SignedCheckpoint{}}, logs: &syncBuffer{}}
	switch b {
	case backendSQLite:
		path := filepath.Join(t.TempDir(), "registry.db")
		db, err := sqlitedb.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := sqlitestore.New(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		e.store, e.closeDB = s, func() { db.Close() }
		e.dump = func() []byte { return sqliteDump(t, db, path) }
	case backendPostgres:
		e.pgURL = testenv.Postgres(t)
		e.proxy = newTCPProxy(t, e.pgURL)
		pool, err := pgxpool.New(t.Context(), e.proxy.url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		s, err := pgstore.New(t.Context(), pool)
		if err != nil {
			t.Fatal(err)
		}
		e.store, e.closeDB = s, pool.Close
		e.dump = func() []byte { return pgDump(t, e.pgURL) }
	}
	// No key cache: every vault call goes to the (fake) KMS, so "KMS down" is observable.
	e.vaultSvc = vault.New(vault.Config{KeyCacheTTL: -1}, e.store, e.wrapper)
	cfg := httpapi.Config{
		AdminToken:         secretOf(adminToken),
		AllowedOktaOrigins: []string{"http://127.0.0.1:8999", "https://login.example.com"},
		Logger:             slog.New(slog.NewJSONHandler(io.MultiWriter(e.logs), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	deps := httpapi.Deps{
		Registry: e.store, Vault: e.vaultSvc, Audit: e.audit,
		OnCredentialRotated: func(tenantID, credID string) {
			e.hookMu.Lock()
			defer e.hookMu.Unlock()
			e.rotated = append(e.rotated, tenantID+"/"+credID)
		},
		OnIntegrationChanged: func(tenantID, intID string) {
			e.hookMu.Lock()
			defer e.hookMu.Unlock()
			e.changed = append(e.changed, tenantID+"/"+intID)
		},
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	e.h = httpapi.New(cfg, deps)
	return e
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, r.body)
	}
	return m
}

func (r response) str(t testing.TB, key string) string {
	t.Helper()
	v, _ := r.json(t)[key].(string)
	return v
}

// req sends a request; a non-string, non-nil body is JSON-encoded. auth is a header line
// "Name: value" or "".
func (e *env) req(method, path, auth string, body any) response {
	e.t.Helper()
	switch b := body.(type) {
	case nil:
		return e.reqWith(method, path, auth, "", "")
	case string:
		return e.reqWith(method, path, auth, "application/json", b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		return e.reqWith(method, path, auth, "application/json", string(j))
	}
}

func (e *env) reqWith(method, path, auth, ct, body string) response {
	e.t.Helper()
	var rd io.Reader
	if ct != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequestWithContext(e.t.Context(), method, path, rd)
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if auth != "" {
		name, v, _ := strings.Cut(auth, ": ")
		r.Header.Set(name, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	res := w.Result()
	out := response{status: res.StatusCode, header: res.Header, body: w.Body.Bytes()}
	e.seenMu.Lock()
	_ = res.Header.Write(&e.seen)
	e.seen.Write(out.body)
	e.seenMu.Unlock()
	return out
}

func decode(t testing.TB, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

var errDraining = errors.New("draining")

func admin() string          { return "Authorization: Bearer " + adminToken }
func apiKey(k string) string { return "X-API-Key: " + k }

// tenant is a tenant created through the admin API.
type tenant struct {
	id, key, keyID, hmac string
}

func (e *env) newTenant(name string) tenant {
	e.t.Helper()
	r := e.req("POST", "/api/v2/tenants", admin(), map[string]any{"name": name})
	if r.status != http.StatusCreated {
		e.t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	m := r.json(e.t)
	return tenant{id: m["tenant_id"].(string), key: m["api_key"].(string), keyID: m["key_id"].(string), hmac: m["hmac_key"].(string)}
}

func (e *env) seal(tn tenant, name string, sec map[string]any) string {
	e.t.Helper()
	r := e.req("POST", "/api/v2/vault/seal", apiKey(tn.key), map[string]any{
		"credential_type": "oauth2_client", "name": name, "secret": sec})
	if r.status != http.StatusCreated {
		e.t.Fatalf("seal: %d %s", r.status, r.body)
	}
	return r.str(e.t, "credential_id")
}

func (e *env) integration(tn tenant, name, credID string) string {
	e.t.Helper()
	r := e.req("POST", "/api/v2/integrations", apiKey(tn.key), map[string]any{
		"system_type": "okta", "name": name, "okta_domain": "https://" + name + ".okta.com",
		"credential_id": credID, "allowed_operations": []string{"list_users", "get_user"}})
	if r.status != http.StatusCreated {
		e.t.Fatalf("create integration: %d %s", r.status, r.body)
	}
	return r.str(e.t, "integration_id")
}

// assertNoLeak fails if s appears, raw or in a common encoding, in the database, the
// logs or any response seen so far.
func (e *env) assertNoLeak(what, s string) {
	e.t.Helper()
	forms := map[string]string{
		"raw": s, "hex": hex.EncodeToString([]byte(s)),
		"base64": base64.StdEncoding.EncodeToString([]byte(s)), "base64url": base64.RawURLEncoding.EncodeToString([]byte(s)),
	}
	e.seenMu.Lock()
	seen := bytes.Clone(e.seen.Bytes())
	e.seenMu.Unlock()
	places := map[string][]byte{"database": e.dump(), "logs": e.logs.Bytes(), "responses": seen}
	for place, b := range places {
		lower := bytes.ToLower(b)
		for form, v := range forms {
			if bytes.Contains(b, []byte(v)) || (form == "hex" && bytes.Contains(lower, []byte(v))) {
				e.t.Errorf("%s (%s form) found in %s", what, form, place)
			}
		}
	}
}

// sqliteDump is every byte of the database file and its WAL, plus every row rendered.
func sqliteDump(t testing.TB, db *sql.DB, path string) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, p := range []string{path, path + "-wal"} {
		if b, err := os.ReadFile(p); err == nil {
			out.Write(b)
		}
	}
	rows, err := db.QueryContext(t.Context(), `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	for _, tbl := range tables {
		rs, err := db.QueryContext(t.Context(), `SELECT * FROM "`+tbl+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rs.Columns()
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			_ = rs.Scan(ptrs...)
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					out.Write(b)
				} else {
					fmt.Fprint(&out, v)
				}
				out.WriteByte('\n')
			}
		}
		rs.Close()
	}
	return out.Bytes()
}

// pgDump renders every row of every table of the test database as text (bytea as hex).
func pgDump(t testing.TB, url string) []byte {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var out bytes.Buffer
	for _, tbl := range tables {
		var s *string
		if err := pool.QueryRow(t.Context(), `SELECT string_agg(row_to_json(x)::text, E'\n') FROM "`+tbl+`" x`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s != nil {
			out.WriteString(*s)
		}
	}
	return out.Bytes()
}

// tcpProxy sits between the pool and PostgreSQL so a test can take the database
// "down" (refuse and cut connections) and bring it back on the same address.
type tcpProxy struct {
	t      testing.TB
	target string
	addr   string
	url    string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newTCPProxy(t testing.TB, pgURL string) *tcpProxy {
	t.Helper()
	u := strings.TrimPrefix(pgURL, "postgres://")
	at := strings.Index(u, "@")
	slash := strings.Index(u, "/")
	target := u[at+1 : slash]
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]bool{}}
	p.listen("127.0.0.1:0")
	p.url = strings.Replace(pgURL, target, p.addr, 1)
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *tcpProxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(up, c); up.Close(); c.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, up); up.Close(); c.Close() })
		}
	})
}

// down stops accepting and cuts every open connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// up listens again on the same address.
func (p *tcpProxy) up() { p.listen(p.addr) }

func secretOf(s string) secret.Secret { return secret.New(s) }

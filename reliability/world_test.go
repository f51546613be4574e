package reliability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/envoytest"
	"github.com/quantaseal/gateway/internal/gatewaytest"
	"github.com/quantaseal/gateway/okta/oktatest"
)

// allOperations is the Okta catalogue (ARCHITECTURE.md "Operation catalogue").
var allOperations = []string{
	"create_user", "deactivate_user", "get_system_log", "get_user",
	"list_applications", "list_groups", "list_users",
}

const envelopeAccept = "application/vnd.quantaseal.envelope+json"

// world is one gateway process with a seeded tenant, the Okta double behind a
// recording, fault-injecting front, and a fake Envoy.
type world struct {
	t      *testing.T
	okta   *oktatest.Server
	front  *gatewaytest.Front
	gw     *gatewaytest.Gateway
	api    *gatewaytest.API
	envoy  *envoytest.Envoy
	dbURL  string // the real PostgreSQL URL ("" for the embedded store), for export
	keys   map[string][]byte
	tenant gatewaytest.Tenant

	intSSWS  string // api_key credential (SSWS token), every operation
	intOAuth string // oauth2_client credential (client_secret_basic), every operation

	// Seeded secrets, by name, for leak scans.
	secrets map[string]string

	seen  *lockedBuffer // every client-visible response: status, headers, body
	mu    sync.Mutex
	acked map[string]bool // audit event ids handed to clients
	sent  atomic.Int64
}

type worldOptions struct {
	gatewayDBURL string // QUANTASEAL_DATABASE_URL as the gateway sees it (maybe proxied)
	realDBURL    string // the same database without the proxy
	env          []string
	oktaOptions  oktatest.Options
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the gateway binary")
	}
	w := &world{t: t, dbURL: o.realDBURL, acked: map[string]bool{}, seen: &lockedBuffer{}, secrets: map[string]string{}}
	w.okta = oktatest.New(t, o.oktaOptions)
	w.front = gatewaytest.NewFront(t, w.okta.Handler())

	oktaToken := "00" + gatewaytest.RandomHex(t, 20)
	clientID := "0oarel" + gatewaytest.RandomHex(t, 6)
	clientSecret := "relsecret-" + gatewaytest.RandomHex(t, 20)
	w.okta.AddAPIToken(oktaToken)
	w.okta.AddClient(oktatest.Client{ID: clientID, Secret: clientSecret, GrantedScopes: []string{
		oktatest.ScopeUsersRead, oktatest.ScopeUsersManage, oktatest.ScopeGroupsRead, oktatest.ScopeAppsRead, oktatest.ScopeLogsRead}})

	w.gw = gatewaytest.Start(t, gatewaytest.Options{
		DatabaseURL:    o.gatewayDBURL,
		AllowedDomains: []string{w.front.URL()},
		Env:            o.env,
	})
	w.api = w.gw.API()
	w.api.Seen = w.seen
	w.keys = w.api.SigningKeys(t)

	w.tenant = w.api.CreateTenant(t, w.gw.AdminToken, "reliability")

	key := w.tenant.APIKey
	ssws := w.api.SealCredential(t, key, "api_key", "okta api token", map[string]string{"token": oktaToken})
	oauth := w.api.SealCredential(t, key, "oauth2_client", "okta service app", map[string]string{
		"client_id": clientID, "client_secret": clientSecret})
	w.intSSWS = w.api.CreateIntegration(t, key, "ssws", w.front.URL(), ssws, allOperations)
	w.intOAuth = w.api.CreateIntegration(t, key, "oauth", w.front.URL(), oauth, allOperations)
	w.envoy = gatewaytest.NewEnvoy(t, w.gw.GRPCAddr, w.front.URL())

	w.secrets["okta_api_token"] = oktaToken
	w.secrets["okta_client_secret"] = clientSecret
	w.secrets["tenant_api_key"] = w.tenant.APIKey
	w.secrets["admin_token"] = w.gw.AdminToken
	w.secrets["tenant_hmac_key"] = string(w.tenant.HMACKey)
	w.secrets["tenant_response_kem_seed"] = string(w.tenant.ResponseKEMSeed)
	return w
}

// result is what a client got.
type result struct {
	method, pathQuery string
	status            int
	header            http.Header
	body              []byte
	err               error
	took              time.Duration
}

func (r result) auditID() string {
	if id := r.header.Get("X-QuantaSeal-Audit-Event"); id != "" {
		return id
	}
	var m struct {
		AuditEventID string `json:"audit_event_id"`
	}
	_ = json.Unmarshal(r.body, &m)
	return m.AuditEventID
}

func (r result) code() string {
	var m struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.body, &m)
	return m.Error
}

// call sends one transparent (Okta-shaped) request through the fake Envoy with the
// tenant's key and X-QuantaSeal-Integration, and records the audit id it got.
func (w *world) call(ctx context.Context, integrationID, method, pathQuery string, body []byte, extra http.Header) result {
	h := http.Header{"Authorization": {"SSWS " + w.tenant.APIKey}, "Accept": {"application/json"}}
	if integrationID != "" {
		h.Set("X-QuantaSeal-Integration", integrationID)
	}
	for k, vs := range extra {
		h[http.CanonicalHeaderKey(k)] = vs
	}
	return w.raw(ctx, method, pathQuery, body, h)
}

// raw sends a request through the fake Envoy with exactly the given headers.
func (w *world) raw(ctx context.Context, method, pathQuery string, body []byte, h http.Header) result {
	w.sent.Add(1)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.envoy.URL()+pathQuery, rd)
	if err != nil {
		return result{method: method, pathQuery: pathQuery, err: err}
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := w.envoy.Client().Do(req)
	if err != nil {
		return result{method: method, pathQuery: pathQuery, err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := result{method: method, pathQuery: pathQuery, status: resp.StatusCode, header: resp.Header, body: b, err: err, took: time.Since(start)}
	fmt.Fprintf(w.seen, "%s %s → %d\n", method, pathQuery, r.status)
	_ = resp.Header.Write(w.seen)
	w.seen.Write(b)
	w.seen.Write([]byte("\n"))
	if id := r.auditID(); id != "" {
		w.mu.Lock()
		w.acked[id] = true
		w.mu.Unlock()
	}
	return r
}

// ackedIDs returns the audit ids clients received.
func (w *world) ackedIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.acked))
	for id := range w.acked {
		ids = append(ids, id)
	}
	return ids
}

// storeArgs names the audit store for the CLI.
func (w *world) storeArgs() []string {
	if w.dbURL != "" {
		return []string{"--database-url", w.dbURL, "--data-dir", w.gw.DataDir}
	}
	return []string{"--data-dir", w.gw.DataDir}
}

// verifiedEvents exports the audit store with the CLI, verifies the export with
// audit.Verify and the gateway's public keys, runs `quantaseal audit verify` on the live
// store, and returns the events. The gateway should be stopped first, so that its last
// checkpoints are signed.
func (w *world) verifiedEvents(t *testing.T) []audit.Event {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export.jsonl")
	exportArgs := []string{"audit", "export", "--out", out}
	if w.dbURL != "" {
		exportArgs = append(exportArgs, "--database-url", w.dbURL)
	} else {
		exportArgs = append(exportArgs, "--data-dir", w.gw.DataDir)
	}
	if code, msg := gatewaytest.RunCLI(t, nil, exportArgs...); code != 0 {
		t.Fatalf("quantaseal audit export: exit %d: %s", code, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, cps, err := audit.ReadExport(f)
	if err != nil {
		t.Fatalf("read export: %v", err)
	}
	if err := audit.Verify(events, cps, w.keys, audit.VerifyOptions{}); err != nil {
		t.Fatalf("audit.Verify: %v", err)
	}
	if code, msg := gatewaytest.RunCLI(t, nil, append([]string{"audit", "verify"}, w.storeArgs()...)...); code != 0 {
		t.Fatalf("quantaseal audit verify: exit %d: %s", code, msg)
	}
	return events
}

// missingAcked returns the acknowledged audit ids that are not in events.
func (w *world) missingAcked(events []audit.Event) []string {
	have := map[string]bool{}
	for _, e := range events {
		have[e.ID] = true
	}
	var missing []string
	for _, id := range w.ackedIDs() {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

func sha256Hex(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// unaudited returns the Management API requests that reached the Okta front without a
// committed intent event binding them: every forwarded call, read or state-changing,
// has its intent (reason "forwarded") committed before it is released upstream
// (docs/spec/audit-v1.md "Chains"). Requests are matched on method, path, query and
// body hash; each intent accounts for one request.
func (w *world) unaudited(events []audit.Event) []gatewaytest.FrontRequest {
	type key struct{ method, path, query, body string }
	have := map[key]int{}
	for _, e := range events {
		if e.Decision != "allow" || e.Reason != "forwarded" {
			continue
		}
		have[key{e.Method, e.Path, e.QuerySHA256, e.RequestSHA256}]++
	}
	var out []gatewaytest.FrontRequest
	for _, r := range w.front.Requests() {
		if r.Class != gatewaytest.ClassAPI {
			continue
		}
		k := key{r.Method, r.Path, sha256Hex([]byte(r.RawQuery)), sha256Hex(r.Body)}
		if have[k] == 0 {
			out = append(out, r)
			continue
		}
		have[k]--
	}
	return out
}

// describe renders front requests for a failure message.
func describe(reqs []gatewaytest.FrontRequest) string {
	var b strings.Builder
	for i, r := range reqs {
		if i == 10 {
			fmt.Fprintf(&b, "… and %d more\n", len(reqs)-10)
			break
		}
		fmt.Fprintf(&b, "%s %s?%s (host %s, status %d)\n", r.Method, r.Path, r.RawQuery, r.Host, r.Status)
	}
	return b.String()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}

// load runs workers that call list_users (each with a unique query) and, every
// createEvery-th call when non-zero, create_user, until ctx is done. It returns the
// results in order of completion.
func (w *world) load(ctx context.Context, workers, createEvery int) []result {
	var (
		mu  sync.Mutex
		out []result
		n   atomic.Int64
		wg  sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := n.Add(1)
				var r result
				if createEvery > 0 && i%int64(createEvery) == 0 {
					body := fmt.Appendf(nil, `{"profile":{"firstName":"Load","lastName":"U%d","email":"u%d-%s@example.com","login":"u%d-%s@example.com"}}`,
						i, i, w.t.Name()[:4], i, w.t.Name()[:4])
					r = w.call(context.WithoutCancel(ctx), w.intSSWS, "POST", "/api/v1/users?activate=false", body, nil)
				} else {
					r = w.call(context.WithoutCancel(ctx), w.intSSWS, "GET", fmt.Sprintf("/api/v1/users?limit=2&q=load%d", i), nil, nil)
				}
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
				if r.status >= 500 || r.err != nil {
					// Failures come back at once; don't spin the shared CPUs.
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	return out
}

// statuses counts results by status (0 for transport errors).
func statuses(rs []result) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		m[r.status]++
	}
	return m
}

// fmtStatuses renders a status histogram as "200×12, 503×3".
func fmtStatuses(m map[int]int) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

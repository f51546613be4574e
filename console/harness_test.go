package console

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const adminToken = "admin-token-for-tests-0123456789"

type harness struct {
	t       *testing.T
	reg     *fakeRegistry
	vlt     *fakeVault
	aud     *fakeAudit
	clock   *clock
	srv     *httptest.Server
	tenantA registry.Tenant
	tenantB registry.Tenant
	keyA    string
	keyB    string

	mu       sync.Mutex
	rotated  []string
	changed  []string
	fixtureB fixture
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: &clock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}}
	h.reg = newFakeRegistry()
	h.vlt = newFakeVault(h.clock.Now)
	h.reg.creds = h.vlt.has
	h.aud = newFakeAudit(t)
	h.tenantA, h.keyA = h.addTenant("Tenant A")
	h.tenantB, h.keyB = h.addTenant("Tenant B")
	cfg := Config{AdminToken: secret.New(adminToken), Now: h.clock.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	handler, err := New(cfg, Deps{
		Registry: h.reg, Vault: h.vlt, Audit: h.aud, SigningKeys: h.aud.keys,
		OnCredentialRotated: func(tenantID, credID string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.rotated = append(h.rotated, tenantID+"/"+credID)
		},
		OnIntegrationChanged: func(tenantID, intID string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.changed = append(h.changed, tenantID+"/"+intID)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(handler)
	t.Cleanup(h.srv.Close)
	h.fixtureB = h.seed(h.tenantB, "b-okta")
	return h
}

func (h *harness) addTenant(name string) (registry.Tenant, string) {
	t := registry.Tenant{ID: id.New(registry.TenantIDPrefix), Name: name, CreatedAt: h.clock.Now()}
	rec, key := registry.NewAPIKey(t.ID, "", h.clock.Now())
	if err := h.reg.CreateTenant(context.Background(), t, rec); err != nil {
		h.t.Fatal(err)
	}
	return t, key.Reveal()
}

type resp struct {
	status int
	body   string
	header http.Header
}

type client struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
	hdr  http.Header
}

func (h *harness) client() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return &client{t: h.t, base: h.srv.URL, hdr: http.Header{}, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) do(method, path string, form url.Values) resp {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range c.hdr {
		req.Header[k] = v
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if m := csrfRE.FindSubmatch(b); m != nil && path != "/console/login" {
		c.csrf = string(m[1])
	}
	return resp{status: res.StatusCode, body: string(b), header: res.Header}
}

func (c *client) get(path string) resp { c.t.Helper(); return c.do(http.MethodGet, path, nil) }

func (c *client) tryLogin(key string) resp {
	c.t.Helper()
	r := c.get("/console/login")
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		c.t.Fatalf("login form has no csrf token:\n%s", r.body)
	}
	return c.do(http.MethodPost, "/console/login", url.Values{"csrf": {m[1]}, "key": {key}})
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func assertNoSecrets(t *testing.T, where, body string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, frag := range []string{s, strings.ReplaceAll(s, "\n", ""), firstLine(s, 2)} {
			if frag != "" && strings.Contains(body, frag) {
				t.Errorf("%s renders a submitted secret (%.24q…)", where, frag)
			}
		}
	}
}

const xss = `<script>alert(1)</script>"'><img src=x onerror=alert(2)>`

func checkEscaped(t *testing.T, where string, r resp) {
	t.Helper()
	for _, raw := range []string{"<script>alert", "<img src=x", `"'><`} {
		if strings.Contains(r.body, raw) {
			t.Errorf("%s (status %d) renders %q unescaped", where, r.status, raw)
		}
	}
}

type failingVault struct {
	Vault
	err error
}

func (f *failingVault) List(context.Context, string) ([]vault.CredentialMeta, error) {
	return nil, f.err
}

// fixture is one tenant's seeded objects.
type fixture struct {
	credID, intID, eventID string
}

// seed gives a tenant a credential, an integration using it and one audit event.
func (h *harness) seed(t registry.Tenant, name string) fixture {
	ctx := context.Background()
	m, err := h.vlt.Seal(ctx, t.ID, name+"-cred", vault.CredentialTypeAPIKey,
		vault.Credential{Token: secret.New("seed-token-" + name)})
	if err != nil {
		h.t.Fatal(err)
	}
	in := registry.Integration{ID: id.New("int"), TenantID: t.ID, SystemType: "okta", Name: name,
		OktaDomain: "https://" + name + ".okta.com", CredentialID: m.ID, AllowedOperations: []string{"list_users"},
		Envelope: registry.EnvelopeOnRequest}
	if err := h.reg.CreateIntegration(ctx, in); err != nil {
		h.t.Fatal(err)
	}
	e := h.aud.add(h.t, audit.Event{TenantID: t.ID, IntegrationID: in.ID, Operation: "list_users", Caller: "key_x",
		Method: "GET", Path: "/api/v1/users", Decision: "allow", Status: 200}, h.clock.Now().Add(-time.Hour))
	h.aud.checkpoint(h.t, h.clock.Now().Add(-time.Hour))
	return fixture{credID: m.ID, intID: in.ID, eventID: e.ID}
}

// post sends form with the session's CSRF token added.
func (c *client) post(path string, form url.Values) resp {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", c.csrf)
	return c.do(http.MethodPost, path, form)
}

// login signs in with key and fails the test unless it works.
func (c *client) login(key string) {
	c.t.Helper()
	if r := c.tryLogin(key); r.status != http.StatusSeeOther {
		c.t.Fatalf("login: status %d, body:\n%s", r.status, r.body)
	}
	if r := c.get("/console/keys"); r.status != http.StatusOK || c.csrf == "" {
		c.t.Fatalf("after login: status %d", r.status)
	}
}

// fieldErrorNear reports whether msg appears in a field-error paragraph after the input
// (or fieldset) named field, before the next field.
func fieldErrorNear(body, field, msg string) bool {
	i := strings.Index(body, `name="`+field+`"`)
	if i < 0 {
		return false
	}
	rest := body[i:]
	if j := strings.Index(rest[1:], `class="field`); j >= 0 {
		// The error paragraph itself has class="field-error"; look up to the next field.
		for j >= 0 && strings.HasPrefix(rest[j+1:], `class="field-error"`) {
			k := strings.Index(rest[j+2:], `class="field`)
			if k < 0 {
				j = -1
				break
			}
			j += k + 1
		}
		if j >= 0 {
			rest = rest[:j+1]
		}
	}
	return strings.Contains(rest, `class="field-error"`) && strings.Contains(rest, msg)
}

// firstLine returns line n (1-based) of s, or "".
func firstLine(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) < n {
		return ""
	}
	return lines[n-1]
}

package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

func TestNewRequiresDeps(t *testing.T) {
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Fatal("New without Registry and Vault succeeded")
	}
}

func TestLogin(t *testing.T) {
	h := newHarness(t, nil)
	bound, boundKey := registry.NewAPIKey(h.tenantA.ID, id.New("int"), h.clock.Now())
	if err := h.reg.CreateAPIKey(t.Context(), bound); err != nil {
		t.Fatal(err)
	}
	revoked, revokedKey := registry.NewAPIKey(h.tenantA.ID, "", h.clock.Now())
	now := h.clock.Now()
	revoked.RevokedAt = &now
	if err := h.reg.CreateAPIKey(t.Context(), revoked); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		key      string
		status   int
		location string
		body     string
	}{
		{"tenant key", h.keyA, http.StatusSeeOther, "/console/integrations", ""},
		{"admin token", adminToken, http.StatusSeeOther, "/console/tenants", ""},
		{"wrong admin token", adminToken + "x", http.StatusUnauthorized, "", "not valid"},
		{"unknown key", "qs_live_" + strings.Repeat("A", 43), http.StatusUnauthorized, "", "not valid"},
		{"malformed key", "qs_live_short", http.StatusUnauthorized, "", "not valid"},
		{"revoked key", revokedKey.Reveal(), http.StatusUnauthorized, "", "not valid"},
		{"bound key", boundKey.Reveal(), http.StatusForbidden, "", "bound to one integration"},
		{"empty", "", http.StatusUnauthorized, "", "Enter a tenant API key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := h.client()
			r := c.tryLogin(tc.key)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d\n%s", r.status, tc.status, r.body)
			}
			if got := r.header.Get("Location"); got != tc.location {
				t.Errorf("Location = %q, want %q", got, tc.location)
			}
			if !strings.Contains(r.body, tc.body) {
				t.Errorf("body does not say %q", tc.body)
			}
			if tc.key != "" && strings.Contains(r.body, tc.key) {
				t.Error("the presented key is rendered back")
			}
		})
	}

	t.Run("admin disabled without token", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.AdminToken = secret.Secret{} })
		if r := h.client().tryLogin(adminToken); r.status != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", r.status)
		}
	})
	t.Run("login form CSRF", func(t *testing.T) {
		c := h.client()
		// No login cookie (the form was never loaded): 403.
		r := c.do(http.MethodPost, "/console/login", url.Values{"csrf": {"x"}, "key": {h.keyA}})
		if r.status != http.StatusForbidden {
			t.Fatalf("without the login cookie: status %d, want 403", r.status)
		}
		c.get("/console/login")
		r = c.do(http.MethodPost, "/console/login", url.Values{"csrf": {"wrong"}, "key": {h.keyA}})
		if r.status != http.StatusForbidden {
			t.Fatalf("wrong token: status %d, want 403", r.status)
		}
	})
	t.Run("store unavailable", func(t *testing.T) {
		h := newHarness(t, nil)
		h.reg.fail = fmt.Errorf("down: %w", registry.ErrUnavailable)
		if r := h.client().tryLogin(h.keyA); r.status != http.StatusServiceUnavailable {
			t.Fatalf("status = %d, want 503", r.status)
		}
	})
}

func TestLogoutEndsSession(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	c.login(h.keyA)
	if r := c.post("/console/logout", nil); r.status != http.StatusSeeOther {
		t.Fatalf("logout status %d", r.status)
	}
	if r := c.get("/console/integrations"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/console/login") {
		t.Fatalf("after logout: status %d, Location %q", r.status, r.header.Get("Location"))
	}
}

func TestCookieAttributes(t *testing.T) {
	h := newHarness(t, nil)
	for _, proto := range []string{"", "https"} {
		t.Run("proto="+proto, func(t *testing.T) {
			c := h.client()
			if proto != "" {
				c.hdr.Set("X-Forwarded-Proto", proto)
			}
			r := c.tryLogin(h.keyA)
			var got *http.Cookie
			for _, ck := range (&http.Response{Header: r.header}).Cookies() {
				if ck.Name == SessionCookie {
					got = ck
				}
			}
			if got == nil {
				t.Fatal("no session cookie set")
			}
			if !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Path != "/console/" || got.Secure != (proto == "https") {
				t.Errorf("cookie = %+v", got)
			}
			if len(got.Value) != 43 {
				t.Errorf("session id is %d characters, want 43 (256 bits base64url)", len(got.Value))
			}
		})
	}
}

func TestSessionExpiry(t *testing.T) {
	tests := []struct {
		name    string
		steps   []time.Duration // requests made after each of these advances
		expired bool
	}{
		{"active within idle timeout", []time.Duration{10 * time.Minute, 29 * time.Minute}, false},
		{"idle timeout", []time.Duration{30 * time.Minute}, true},
		{"max age despite activity", repeat(25*time.Minute, 29), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			c := h.client()
			c.login(h.keyA)
			before := h.reg.snapshot()
			var r resp
			for _, d := range tc.steps {
				h.clock.Advance(d)
				r = c.get("/console/integrations")
			}
			if !tc.expired {
				if r.status != http.StatusOK {
					t.Fatalf("status %d, want 200", r.status)
				}
				return
			}
			if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/login?expired=1" {
				t.Fatalf("status %d, Location %q; want 303 to the login page", r.status, r.header.Get("Location"))
			}
			// A POST with the old (valid) CSRF token is refused and changes nothing.
			r = c.post("/console/integrations/"+h.fixtureB.intID+"/delete", nil)
			if r.status != http.StatusForbidden {
				t.Errorf("POST after expiry: status %d, want 403", r.status)
			}
			if after := h.reg.snapshot(); after != before {
				t.Errorf("state changed after expiry:\n%s", cmp.Diff(before, after))
			}
			if r := c.get("/console/login?expired=1"); !strings.Contains(r.body, "session has ended") {
				t.Error("login page does not say the session ended")
			}
		})
	}
}

// TestCSRF: every POST without the token, or with a wrong one, is 403 and changes nothing.
func TestCSRF(t *testing.T) {
	h := newHarness(t, nil)
	a := h.seed(h.tenantA, "a-okta")
	tenant := h.client()
	tenant.login(h.keyA)
	admin := h.client()
	admin.login(adminToken)
	keys, _ := h.reg.ListAPIKeys(t.Context(), h.tenantA.ID)
	form := url.Values{"name": {"new"}, "okta_domain": {"https://x.okta.com"}, "credential_id": {a.credID},
		"allowed_operations": {"list_users"}, "envelope": {"never"}, "credential_type": {"api_key"}, "secret.token": {"tok"}}
	tests := []struct {
		c    *client
		path string
	}{
		{tenant, "/console/integrations"},
		{tenant, "/console/integrations/" + a.intID},
		{tenant, "/console/integrations/" + a.intID + "/delete"},
		{tenant, "/console/vault"},
		{tenant, "/console/vault/" + a.credID + "/rotate"},
		{tenant, "/console/vault/" + a.credID + "/delete"},
		{tenant, "/console/audit/verify"},
		{tenant, "/console/logout"},
		{admin, "/console/tenants"},
		{admin, "/console/tenants/" + h.tenantA.ID + "/api-keys"},
		{admin, "/console/tenants/" + h.tenantA.ID + "/api-keys/" + keys[0].ID + "/revoke"},
		{admin, "/console/logout"},
	}
	for _, tc := range tests {
		for _, token := range []string{"", "wrong", "cross-site"} {
			t.Run(tc.path+"/"+token, func(t *testing.T) {
				regBefore, vltBefore := h.reg.snapshot(), h.vlt.snapshot()
				f := url.Values{}
				for k, v := range form {
					f[k] = v
				}
				switch token {
				case "wrong":
					f.Set("csrf", strings.Map(func(r rune) rune { return r ^ 1 }, tc.c.csrf))
				case "cross-site":
					// The right token, but the browser says the form came from another site.
					f.Set("csrf", tc.c.csrf)
					tc.c.hdr.Set("Sec-Fetch-Site", "cross-site")
					defer tc.c.hdr.Del("Sec-Fetch-Site")
				}
				r := tc.c.do(http.MethodPost, tc.path, f)
				if r.status != http.StatusForbidden {
					t.Fatalf("status %d, want 403", r.status)
				}
				if got := h.reg.snapshot(); got != regBefore {
					t.Errorf("registry changed:\n%s", cmp.Diff(regBefore, got))
				}
				if got := h.vlt.snapshot(); got != vltBefore {
					t.Errorf("vault changed:\n%s", cmp.Diff(vltBefore, got))
				}
			})
		}
	}
	// The sessions are still alive: logout without a token did not sign out.
	if r := tenant.get("/console/integrations"); r.status != http.StatusOK {
		t.Errorf("tenant session ended by a refused logout: %d", r.status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	check := func(t *testing.T, what string, r resp) {
		t.Helper()
		want := map[string]string{
			"Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           "no-store",
		}
		for k, v := range want {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", what, k, got, v)
			}
		}
	}
	for _, p := range []string{"/console/", "/console/login", "/console/static/style.css", "/console/static/console.js",
		"/console/nope", "/console/integrations"} {
		check(t, "anonymous GET "+p, c.get(p))
	}
	check(t, "anonymous POST", c.do(http.MethodPost, "/console/integrations", url.Values{}))
	check(t, "login POST", h.client().tryLogin(h.keyA))
	c.login(h.keyA)
	for _, p := range []string{"/console/integrations", "/console/integrations/new", "/console/integrations/" + h.fixtureB.intID,
		"/console/vault", "/console/vault/new", "/console/audit", "/console/keys", "/console/tenants", "/console/audit/events/aud_x"} {
		check(t, "GET "+p, c.get(p))
	}
	check(t, "POST verify", c.post("/console/audit/verify", nil))
	check(t, "POST no csrf", c.do(http.MethodPost, "/console/vault", url.Values{}))
	check(t, "405", c.do(http.MethodDelete, "/console/vault", nil))

	// No inline script or style anywhere: the CSP would block it.
	for _, p := range []string{"/console/integrations/new", "/console/vault/new", "/console/audit"} {
		body := c.get(p).body
		for _, bad := range []string{"<style", "style=", "<script>", "onclick", "onload", "javascript:"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
}

// TestCrossTenant: tenant A's session cannot view or change B's objects by id.
func TestCrossTenant(t *testing.T) {
	h := newHarness(t, nil)
	b := h.fixtureB
	c := h.client()
	c.login(h.keyA)
	before, vBefore := h.reg.snapshot(), h.vlt.snapshot()
	tests := []struct {
		method, path string
		form         url.Values
	}{
		{"GET", "/console/integrations/" + b.intID, nil},
		{"GET", "/console/integrations/" + b.intID + "/delete", nil},
		{"POST", "/console/integrations/" + b.intID, url.Values{"name": {"pwned"}, "okta_domain": {"https://a.okta.com"},
			"credential_id": {b.credID}, "envelope": {"never"}}},
		{"POST", "/console/integrations/" + b.intID + "/delete", url.Values{}},
		{"GET", "/console/vault/" + b.credID, nil},
		{"GET", "/console/vault/" + b.credID + "/delete", nil},
		{"POST", "/console/vault/" + b.credID + "/rotate", url.Values{"secret.token": {"stolen"}}},
		{"POST", "/console/vault/" + b.credID + "/delete", url.Values{}},
		{"GET", "/console/audit/events/" + b.eventID, nil},
		{"GET", "/console/tenants/" + h.tenantB.ID, nil}, // admin only
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var r resp
			if tc.method == "GET" {
				r = c.get(tc.path)
			} else {
				r = c.post(tc.path, tc.form)
			}
			if r.status != http.StatusNotFound && r.status != http.StatusForbidden {
				t.Fatalf("status %d, want 404 or 403", r.status)
			}
			for _, leak := range []string{"b-okta", h.tenantB.Name} {
				if strings.Contains(r.body, leak) {
					t.Errorf("page shows tenant B's %q", leak)
				}
			}
		})
	}
	if after := h.reg.snapshot(); after != before {
		t.Errorf("registry changed:\n%s", cmp.Diff(before, after))
	}
	if after := h.vlt.snapshot(); after != vBefore {
		t.Errorf("vault changed:\n%s", cmp.Diff(vBefore, after))
	}
	// B's credential id in A's new integration is a field error, not a link.
	r := c.post("/console/integrations", url.Values{"name": {"x"}, "okta_domain": {"https://a.okta.com"},
		"credential_id": {b.credID}, "envelope": {"never"}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "no such credential in this tenant") {
		t.Errorf("integration with B's credential: status %d", r.status)
	}
	// A's lists and audit page show none of B's objects.
	for _, p := range []string{"/console/integrations", "/console/vault", "/console/audit"} {
		body := c.get(p).body
		for _, leak := range []string{b.intID, b.credID, b.eventID, "b-okta"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s shows tenant B's %q", p, leak)
			}
		}
	}
}

func TestIntegrationLifecycle(t *testing.T) {
	h := newHarness(t, nil)
	a := h.seed(h.tenantA, "a-okta")
	c := h.client()
	c.login(h.keyA)

	r := c.get("/console/integrations/new")
	for _, want := range []string{"okta.users.read", "okta.users.manage", "okta.groups.read", "okta.apps.read", "okta.logs.read",
		`value="create_user"`, `value="get_system_log"`, "on_request", "always", "never"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("new integration form lacks %q", want)
		}
	}

	bad := []struct {
		name  string
		form  url.Values
		field string
		msg   string
	}{
		{"bad domain", url.Values{"name": {"corp"}, "okta_domain": {"http://evil.example"}, "credential_id": {a.credID}, "envelope": {"never"}},
			"okta_domain", "Okta org"},
		{"no name", url.Values{"okta_domain": {"https://corp.okta.com"}, "credential_id": {a.credID}, "envelope": {"never"}},
			"name", "Required."},
		{"unknown op", url.Values{"name": {"corp"}, "okta_domain": {"https://corp.okta.com"}, "credential_id": {a.credID},
			"envelope": {"never"}, "allowed_operations": {"drop_tables"}}, "allowed_operations", "catalogue"},
		{"bad envelope", url.Values{"name": {"corp"}, "okta_domain": {"https://corp.okta.com"}, "credential_id": {a.credID},
			"envelope": {"sometimes"}}, "envelope", "on_request"},
		{"no credential", url.Values{"name": {"corp"}, "okta_domain": {"https://corp.okta.com"}, "envelope": {"never"}},
			"credential_id", "sealed credential"},
		{"duplicate name", url.Values{"name": {"a-okta"}, "okta_domain": {"https://corp.okta.com"}, "credential_id": {a.credID},
			"envelope": {"never"}}, "name", "exists"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			before := h.reg.snapshot()
			r := c.post("/console/integrations", tc.form)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", r.status)
			}
			if !fieldErrorNear(r.body, tc.field, tc.msg) {
				t.Errorf("no error %q next to field %q:\n%s", tc.msg, tc.field, r.body)
			}
			if h.reg.snapshot() != before {
				t.Error("a refused form changed the registry")
			}
		})
	}

	r = c.post("/console/integrations", url.Values{"name": {"corp"}, "okta_domain": {"https://CORP.okta.com/"},
		"credential_id": {a.credID}, "envelope": {"always"}, "allowed_operations": {"list_users", "get_user", "list_users"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create: status %d\n%s", r.status, r.body)
	}
	ins, _ := h.reg.ListIntegrations(t.Context(), h.tenantA.ID)
	var created registry.Integration
	for _, in := range ins {
		if in.Name == "corp" {
			created = in
		}
	}
	if diff := cmp.Diff(registry.Integration{ID: created.ID, TenantID: h.tenantA.ID, SystemType: "okta", Name: "corp",
		OktaDomain: "https://corp.okta.com", CredentialID: a.credID, AllowedOperations: []string{"get_user", "list_users"},
		Envelope: "always", CreatedAt: h.clock.Now(), UpdatedAt: h.clock.Now()}, created); diff != "" {
		t.Errorf("created integration (-want +got):\n%s", diff)
	}
	if r := c.get("/console/integrations"); !strings.Contains(r.body, "Integration &#34;corp&#34; created.") || !strings.Contains(r.body, "https://corp.okta.com") {
		t.Errorf("list after create lacks the flash or the integration:\n%s", r.body)
	}

	r = c.post("/console/integrations/"+created.ID, url.Values{"name": {"corp2"}, "okta_domain": {"https://corp.okta.com"},
		"credential_id": {a.credID}, "envelope": {"never"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("update: status %d\n%s", r.status, r.body)
	}
	got, _ := h.reg.GetIntegration(t.Context(), h.tenantA.ID, created.ID)
	if got.Name != "corp2" || len(got.AllowedOperations) != 0 || got.Envelope != "never" {
		t.Errorf("updated integration = %+v", got)
	}

	if r := c.get("/console/integrations/" + created.ID + "/delete"); !strings.Contains(r.body, "cannot be undone") {
		t.Error("no confirmation step before delete")
	}
	if r := c.post("/console/integrations/"+created.ID+"/delete", nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete: status %d", r.status)
	}
	if _, err := h.reg.GetIntegration(t.Context(), h.tenantA.ID, created.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("integration still there: %v", err)
	}
	if diff := cmp.Diff([]string{h.tenantA.ID + "/" + created.ID, h.tenantA.ID + "/" + created.ID}, h.changed); diff != "" {
		t.Errorf("OnIntegrationChanged calls (-want +got):\n%s", diff)
	}

	// A live key bound to the integration blocks its deletion, in plain words.
	k, _ := registry.NewAPIKey(h.tenantA.ID, a.intID, h.clock.Now())
	if err := h.reg.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	if r := c.post("/console/integrations/"+a.intID+"/delete", nil); r.status != http.StatusConflict || !strings.Contains(r.body, "revoke it first") {
		t.Errorf("delete with a bound key: status %d", r.status)
	}
}

// TestNoSecretRendered seals and rotates secrets (valid and invalid submissions), then
// checks that no page of the console contains any of them.
func TestNoSecretRendered(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	c.login(h.keyA)
	const (
		clientSecret = "cs-UNIQUE-5f1d2c9a-secret"
		token        = "tok-UNIQUE-88e1b0c4-secret"
		rotated      = "rot-UNIQUE-0b7e66aa-secret"
		badSecret    = "bad-UNIQUE-9c0ffee1-secret"
	)
	pem := testPEM(t)
	submissions := []struct {
		path   string
		form   url.Values
		status int
	}{
		{"/console/vault", url.Values{"name": {"okta-cs"}, "credential_type": {"oauth2_client"},
			"secret.client_id": {"0oa1"}, "secret.client_secret": {clientSecret}}, http.StatusSeeOther},
		{"/console/vault", url.Values{"name": {"okta-tok"}, "credential_type": {"api_key"}, "secret.token": {token}}, http.StatusSeeOther},
		// PEM pasted into a password input arrives without line breaks.
		{"/console/vault", url.Values{"name": {"okta-pk"}, "credential_type": {"oauth2_client"},
			"secret.client_id": {"0oa2"}, "secret.private_key": {strings.ReplaceAll(pem, "\n", "")}}, http.StatusSeeOther},
		// Invalid: no client id. The re-rendered form must not carry the secret back.
		{"/console/vault", url.Values{"name": {"okta-bad"}, "credential_type": {"oauth2_client"},
			"secret.client_secret": {badSecret}}, http.StatusBadRequest},
		// Invalid: both secret and key.
		{"/console/vault", url.Values{"name": {"okta-bad2"}, "credential_type": {"oauth2_client"}, "secret.client_id": {"0oa3"},
			"secret.client_secret": {badSecret}, "secret.private_key": {pem}}, http.StatusBadRequest},
	}
	for _, s := range submissions {
		r := c.post(s.path, s.form)
		if r.status != s.status {
			t.Fatalf("seal %s: status %d, want %d\n%s", s.form.Get("name"), r.status, s.status, r.body)
		}
		assertNoSecrets(t, "response to "+s.form.Get("name"), r.body, clientSecret, token, rotated, badSecret, pem)
	}
	creds, _ := h.vlt.List(t.Context(), h.tenantA.ID)
	if len(creds) != 3 {
		t.Fatalf("sealed %d credentials, want 3", len(creds))
	}
	var tokID string
	for _, m := range creds {
		if m.Name == "okta-tok" {
			tokID = m.ID
		}
	}
	r := c.post("/console/vault/"+tokID+"/rotate", url.Values{"secret.token": {rotated}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("rotate: status %d\n%s", r.status, r.body)
	}
	if diff := cmp.Diff([]string{h.tenantA.ID + "/" + tokID}, h.rotated); diff != "" {
		t.Errorf("OnCredentialRotated (-want +got):\n%s", diff)
	}
	r = c.post("/console/vault/"+tokID+"/rotate", url.Values{"secret.token": {"has space " + badSecret}})
	if r.status != http.StatusBadRequest || !fieldErrorNear(r.body, "secret.token", "control character or space") {
		t.Errorf("invalid rotate: status %d, no field error\n%s", r.status, r.body)
	}
	assertNoSecrets(t, "invalid rotate", r.body, badSecret)

	// The vault did receive them (so the test is not vacuous), PEM with line breaks restored.
	received := strings.Join(h.vlt.received, "\n")
	for _, s := range []string{clientSecret, token, rotated, pem} {
		if !strings.Contains(received, s) {
			t.Errorf("vault never received %.20q…", s)
		}
	}
	pages := []string{"/console/integrations", "/console/integrations/new", "/console/vault", "/console/vault/new",
		"/console/audit", "/console/keys"}
	for _, m := range creds {
		pages = append(pages, "/console/vault/"+m.ID, "/console/vault/"+m.ID+"/delete")
	}
	for _, p := range pages {
		r := c.get(p)
		if r.status != http.StatusOK {
			t.Errorf("GET %s: %d", p, r.status)
		}
		assertNoSecrets(t, p, r.body, clientSecret, token, rotated, badSecret, pem)
	}
}

func TestVaultFieldErrors(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	c.login(h.keyA)
	tests := []struct {
		name  string
		form  url.Values
		field string
		msg   string
	}{
		{"no type", url.Values{"name": {"x"}}, "credential_type", "Choose oauth2_client or api_key."},
		{"no name", url.Values{"credential_type": {"api_key"}, "secret.token": {"t"}}, "name", "Required."},
		{"no client id", url.Values{"name": {"x"}, "credential_type": {"oauth2_client"}, "secret.client_secret": {"s"}},
			"secret.client_id", "Required."},
		{"bad key", url.Values{"name": {"x"}, "credential_type": {"oauth2_client"}, "secret.client_id": {"c"},
			"secret.private_key": {"-----BEGIN PRIVATE KEY-----AAAA-----END PRIVATE KEY-----"}},
			"secret.private_key", "does not parse"},
		{"no token", url.Values{"name": {"x"}, "credential_type": {"api_key"}}, "secret.token", "Required."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.post("/console/vault", tc.form)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", r.status)
			}
			if !fieldErrorNear(r.body, tc.field, tc.msg) {
				t.Errorf("no %q next to %q:\n%s", tc.msg, tc.field, r.body)
			}
		})
	}
	t.Run("neither secret nor key", func(t *testing.T) {
		r := c.post("/console/vault", url.Values{"name": {"x"}, "credential_type": {"oauth2_client"}, "secret.client_id": {"c"}})
		if !strings.Contains(r.body, "One of client_secret or private_key is required.") {
			t.Errorf("no form-level secret error:\n%s", r.body)
		}
	})
}

func TestCredentialDeleteRefusedWhileUsed(t *testing.T) {
	h := newHarness(t, nil)
	a := h.seed(h.tenantA, "a-okta")
	c := h.client()
	c.login(h.keyA)
	r := c.post("/console/vault/"+a.credID+"/delete", nil)
	if r.status != http.StatusConflict || !strings.Contains(r.body, "An integration uses this credential") {
		t.Fatalf("status %d", r.status)
	}
	if !h.vlt.has(h.tenantA.ID, a.credID) {
		t.Fatal("credential deleted")
	}
	c.post("/console/integrations/"+a.intID+"/delete", nil)
	if r := c.post("/console/vault/"+a.credID+"/delete", nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete unused: status %d", r.status)
	}
	if h.vlt.has(h.tenantA.ID, a.credID) {
		t.Fatal("credential not deleted")
	}
}

// TestXSS puts markup into every user-supplied field and checks it is rendered escaped.
func TestXSS(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.tenantA.Name = "T" + xss
	h.reg.tenants[h.tenantA.ID] = h.tenantA
	m, err := h.vlt.Seal(ctx, h.tenantA.ID, "cred"+xss, vault.CredentialTypeAPIKey, vault.Credential{Token: secret.New("t")})
	if err != nil {
		t.Fatal(err)
	}
	in := registry.Integration{ID: id.New("int"), TenantID: h.tenantA.ID, SystemType: "okta", Name: "int" + xss,
		OktaDomain: "https://a.okta.com", CredentialID: m.ID, AllowedOperations: []string{"list_users"}, Envelope: "never"}
	if err := h.reg.CreateIntegration(ctx, in); err != nil {
		t.Fatal(err)
	}
	ev := h.aud.add(t, audit.Event{TenantID: h.tenantA.ID, IntegrationID: "int" + xss, Operation: "op" + xss,
		Caller: "caller" + xss, Method: "GET" + xss, Path: "/p" + xss, Decision: "deny" + xss, Reason: "reason" + xss,
		IntentID: xss, QuerySHA256: xss}, h.clock.Now().Add(-time.Minute))
	h.aud.checkpoint(t, h.clock.Now())

	c := h.client()
	c.login(h.keyA)
	pages := []string{"/console/integrations", "/console/integrations/" + in.ID, "/console/integrations/" + in.ID + "/delete",
		"/console/integrations/new", "/console/vault", "/console/vault/" + m.ID, "/console/vault/" + m.ID + "/delete",
		"/console/audit", "/console/audit/events/" + ev.ID}
	for _, p := range pages {
		checkEscaped(t, p, c.get(p))
	}
	// Reflected: a name with markup in a refused form, and in the chart labels.
	checkEscaped(t, "refused integration form", c.post("/console/integrations", url.Values{"name": {"n" + xss},
		"okta_domain": {"javascript:alert(1)" + xss}, "envelope": {xss}}))
	checkEscaped(t, "refused seal form", c.post("/console/vault", url.Values{"name": {"n" + xss},
		"credential_type": {"oauth2_client"}, "secret.client_id": {"id" + xss}, "secret.client_secret": {"s"}}))
	checkEscaped(t, "verify", c.post("/console/audit/verify", nil))
	// Accepted: the flash message and the list name the new integration.
	if r := c.post("/console/integrations", url.Values{"name": {"new" + xss}, "okta_domain": {"https://b.okta.com"},
		"credential_id": {m.ID}, "envelope": {"never"}}); r.status != http.StatusSeeOther {
		t.Fatalf("create integration named with markup: %d", r.status)
	}
	if r := c.get("/console/integrations"); !strings.Contains(r.body, "created.") {
		t.Error("no flash after create")
	} else {
		checkEscaped(t, "flash", r)
	}
	if r := c.get("/console/audit"); !strings.Contains(r.body, "op&lt;script&gt;") {
		t.Error("chart label of the event's operation is missing or unescaped")
	}

	admin := h.client()
	admin.login(adminToken)
	checkEscaped(t, "tenants", admin.get("/console/tenants"))
	checkEscaped(t, "tenant", admin.get("/console/tenants/"+h.tenantA.ID))
	checkEscaped(t, "create tenant", admin.post("/console/tenants", url.Values{"name": {"new" + xss}}))
}

func TestBackingServiceUnavailable(t *testing.T) {
	h2 := newHarness(t, nil)
	failing := &failingVault{Vault: h2.vlt, err: fmt.Errorf("kms: %w", vault.ErrUnavailable)}
	handler, err := New(Config{Now: h2.clock.Now}, Deps{Registry: h2.reg, Vault: failing})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()
	c2 := h2.client()
	c2.base = srv.URL
	c2.login(h2.keyA)
	r := c2.get("/console/vault")
	if r.status != http.StatusServiceUnavailable || strings.Contains(r.body, "kms") {
		t.Errorf("status %d; body must not carry the cause", r.status)
	}
}

func TestHomeAndNotFound(t *testing.T) {
	h := newHarness(t, nil)
	c := h.client()
	if r := c.get("/console/"); r.header.Get("Location") != "/console/login" {
		t.Errorf("anonymous home: %q", r.header.Get("Location"))
	}
	// Never signed in: the login page does not claim a session ended.
	if r := c.get("/console/vault"); r.header.Get("Location") != "/console/login" {
		t.Errorf("anonymous tenant page: %q", r.header.Get("Location"))
	}
	if r := c.get("/console/nope"); r.status != http.StatusNotFound {
		t.Errorf("unknown page: %d", r.status)
	}
	for path, ctype := range map[string]string{"/console/static/style.css": "text/css", "/console/static/console.js": "javascript"} {
		if r := c.get(path); r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), ctype) {
			t.Errorf("%s: status %d, Content-Type %q", path, r.status, r.header.Get("Content-Type"))
		}
	}
	if r := c.get("/console/static/"); r.status != http.StatusNotFound {
		t.Errorf("static directory listing: %d", r.status)
	}
	c.login(h.keyA)
	if r := c.get("/console/"); r.header.Get("Location") != "/console/integrations" {
		t.Errorf("tenant home: %q", r.header.Get("Location"))
	}
	if r := c.get("/console/login"); r.header.Get("Location") != "/console/integrations" {
		t.Errorf("login page when signed in: %q", r.header.Get("Location"))
	}
	if r := c.get("/console/integrations/int_bogus"); r.status != http.StatusNotFound {
		t.Errorf("malformed id: %d", r.status)
	}
}

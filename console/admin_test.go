package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/quantaseal/gateway/registry"
)

func TestAdminPages(t *testing.T) {
	h := newHarness(t, nil)
	a := h.seed(h.tenantA, "a-okta")
	c := h.client()
	c.login(adminToken)

	// The admin cannot use tenant pages, and tenants cannot use admin pages.
	if r := c.get("/console/integrations"); r.status != http.StatusForbidden {
		t.Errorf("admin on tenant page: %d", r.status)
	}
	tc := h.client()
	tc.login(h.keyA)
	if r := tc.get("/console/tenants"); r.status != http.StatusForbidden {
		t.Errorf("tenant on admin page: %d", r.status)
	}
	if r := tc.post("/console/tenants", url.Values{"name": {"evil"}}); r.status != http.StatusForbidden {
		t.Errorf("tenant creating a tenant: %d", r.status)
	}

	r := c.post("/console/tenants", url.Values{"name": {"Acme"}, "response_kem_public_key": {"not base64!"}})
	if r.status != http.StatusBadRequest || !fieldErrorNear(r.body, "response_kem_public_key", "ML-KEM-768") {
		t.Errorf("bad public key: status %d", r.status)
	}
	r = c.post("/console/tenants", url.Values{"name": {"Acme"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create tenant: status %d\n%s", r.status, r.body)
	}
	key := regexp.MustCompile(`id="new-api-key">(qs_live_[A-Za-z0-9_-]+)<`).FindStringSubmatch(r.body)
	if key == nil {
		t.Fatalf("no API key shown:\n%s", r.body)
	}
	if !strings.Contains(r.body, "Response key seed") || !strings.Contains(r.body, "HMAC key") {
		t.Error("generated secrets not shown")
	}
	// The new key works, and is never shown again.
	if r := h.client().tryLogin(key[1]); r.status != http.StatusSeeOther {
		t.Errorf("new tenant key does not sign in: %d", r.status)
	}
	var acme registry.Tenant
	ts, _ := h.reg.ListTenants(t.Context())
	for _, x := range ts {
		if x.Name == "Acme" {
			acme = x
		}
	}
	if string(acme.HMACKeySealed) != "sealed:"+acme.ID+":hmac" || len(acme.ResponseKEMPublicKey) != 1184 {
		t.Errorf("tenant record: sealed %q, public key %d bytes", acme.HMACKeySealed, len(acme.ResponseKEMPublicKey))
	}
	for _, p := range []string{"/console/tenants", "/console/tenants/" + acme.ID} {
		if r := c.get(p); strings.Contains(r.body, key[1]) {
			t.Errorf("%s shows the API key again", p)
		}
	}

	r = c.post("/console/tenants/"+h.tenantA.ID+"/api-keys", url.Values{"integration_id": {h.fixtureB.intID}})
	if r.status != http.StatusBadRequest || !fieldErrorNear(r.body, "integration_id", "no such integration") {
		t.Errorf("binding to another tenant's integration: status %d", r.status)
	}
	r = c.post("/console/tenants/"+h.tenantA.ID+"/api-keys", url.Values{"integration_id": {a.intID}})
	newKey := regexp.MustCompile(`id="new-api-key">(qs_live_[A-Za-z0-9_-]+)<`).FindStringSubmatch(r.body)
	if r.status != http.StatusCreated || newKey == nil {
		t.Fatalf("create key: status %d", r.status)
	}
	if r := c.get("/console/tenants/" + h.tenantA.ID); strings.Contains(r.body, newKey[1]) {
		t.Error("tenant page shows the key again")
	}
	keys, _ := h.reg.ListAPIKeys(t.Context(), h.tenantA.ID)
	var bound registry.APIKey
	for _, k := range keys {
		if k.IntegrationID == a.intID {
			bound = k
		}
	}
	revoke := "/console/tenants/" + h.tenantA.ID + "/api-keys/" + bound.ID + "/revoke"
	if r := c.get(revoke); !strings.Contains(r.body, "cannot be undone") {
		t.Error("no confirmation before revoke")
	}
	// Revoking through another tenant's path is not found.
	if r := c.post("/console/tenants/"+h.tenantB.ID+"/api-keys/"+bound.ID+"/revoke", nil); r.status != http.StatusNotFound {
		t.Errorf("revoke via tenant B: %d", r.status)
	}
	if r := c.post(revoke, nil); r.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", r.status)
	}
	keys, _ = h.reg.ListAPIKeys(t.Context(), h.tenantA.ID)
	for _, k := range keys {
		if k.ID == bound.ID && k.RevokedAt == nil {
			t.Error("key not revoked")
		}
	}
}

func TestSessionTableFull(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSessions = 2 })
	h.client().login(h.keyA)
	h.client().login(h.keyB)
	if r := h.client().tryLogin(h.keyA); r.status != http.StatusServiceUnavailable {
		t.Fatalf("third session: status %d, want 503", r.status)
	}
	h.clock.Advance(DefaultSessionIdleTimeout)
	if r := h.client().tryLogin(h.keyA); r.status != http.StatusSeeOther {
		t.Fatalf("after the others expired: status %d", r.status)
	}
}

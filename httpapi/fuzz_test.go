package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantaseal/gateway/httpapi"
)

// FuzzIntegrationBody feeds arbitrary bodies to POST /api/v2/integrations: the answer is
// always a JSON 201 or 4xx, never a 5xx, and a 201 only for a body that names a
// catalogue operation set and an Okta origin.
func FuzzIntegrationBody(f *testing.F) {
	for _, s := range []string{
		`{"system_type":"okta","name":"n","okta_domain":"https://a.okta.com","credential_id":"CRED","allowed_operations":["list_users"]}`,
		`{"system_type":"okta","name":"n","okta_domain":"https://a.okta.com@evil","credential_id":"CRED","allowed_operations":[]}`,
		`{"name":`, `[]`, `{} {}`, `{"extra":1}`, `null`,
	} {
		f.Add(s)
	}
	e := newEnv(f, backendSQLite)
	tn := e.newTenant("fuzz")
	cred := e.seal(tn, "c", map[string]any{"client_id": "a", "client_secret": "s"})
	f.Fuzz(func(t *testing.T, body string) {
		e.t = t // iterations run one at a time in a worker
		body = strings.ReplaceAll(body, "CRED", cred)
		r := e.req("POST", "/api/v2/integrations", apiKey(tn.key), body)
		if r.status >= 500 || (r.status != http.StatusCreated && (r.status < 400 || r.status > 499)) {
			t.Fatalf("status %d for %q: %s", r.status, body, r.body)
		}
		if r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("Content-Type %q", r.header.Get("Content-Type"))
		}
		if r.status == http.StatusCreated {
			d := r.str(t, "okta_domain")
			if !strings.HasPrefix(d, "https://") && d != "http://127.0.0.1:8999" {
				t.Fatalf("accepted okta_domain %q", d)
			}
		}
	})
}

// TestMetrics: requests are counted by route pattern and status on the given registry;
// a second New on the same registry reuses the collectors instead of failing.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, backendSQLite, func(c *httpapi.Config, _ *httpapi.Deps) { c.Registerer = reg })
	_ = httpapi.New(httpapi.Config{Registerer: reg}, httpapi.Deps{})
	e.req("GET", "/healthz", "", nil)
	e.req("GET", "/api/v2/vault", "", nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "quantaseal_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var route, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			got[route+" "+code] = m.GetCounter().GetValue()
		}
	}
	for _, want := range []string{"/healthz 200", "/api/v2/vault 401"} {
		if got[want] != 1 {
			t.Errorf("requests_total{%s} = %v, want 1 (all: %v)", want, got[want], got)
		}
	}
}

// FuzzAPIBodies feeds arbitrary JSON bodies to every other endpoint that decodes one
// (tenant and API-key creation, sealing, rotation, integration update), authenticated:
// the answer is always JSON with a 2xx or 4xx status, never a 5xx, and never echoes a
// secret from the body.
func FuzzAPIBodies(f *testing.F) {
	seeds := []struct {
		endpoint int
		body     string
	}{
		{0, `{"name":"t"}`}, {0, `{"name":"t","response_kem_public_key":"AAAA","kms_key_id":"alias/x"}`},
		{1, `{}`}, {1, `{"integration_id":"int_00000000000000000000000000"}`},
		{2, `{"credential_type":"api_key","name":"n","secret":{"token":"SECRETSECRET"}}`},
		{2, `{"credential_type":"oauth2_client","name":"n","secret":{"client_id":"a","client_secret":"SECRETSECRET"}}`},
		{3, `{"secret":{"token":"SECRETSECRET"}}`}, {4, `{"allowed_operations":["list_users"]}`}, {4, `{"envelope":"always","name":"x"}`},
		{2, `{"credential_type":"api_key","secret":"SECRETSECRET"}`}, {3, `{"secret":{"token":"SECRETSECRET","x":1}}`},
	}
	for _, s := range seeds {
		f.Add(s.endpoint, s.body)
	}
	e := newEnv(f, backendSQLite)
	tn := e.newTenant("fuzz")
	cred := e.seal(tn, "c", map[string]any{"client_id": "a", "client_secret": "fuzz-seed-secret"})
	intID := e.integration(tn, "i", cred)
	endpoints := []struct{ method, path, auth string }{
		{"POST", "/api/v2/tenants", admin()},
		{"POST", "/api/v2/tenants/" + tn.id + "/api-keys", admin()},
		{"POST", "/api/v2/vault/seal", apiKey(tn.key)},
		{"POST", "/api/v2/vault/" + cred + "/rotate", apiKey(tn.key)},
		{"PATCH", "/api/v2/integrations/" + intID, apiKey(tn.key)},
	}
	f.Fuzz(func(t *testing.T, endpoint int, body string) {
		e.t = t
		ep := endpoints[uint(endpoint)%uint(len(endpoints))]
		r := e.req(ep.method, ep.path, ep.auth, body)
		if r.status >= 500 || r.status < 200 || (r.status >= 300 && r.status < 400) {
			t.Fatalf("%s %s: status %d for %q: %s", ep.method, ep.path, r.status, body, r.body)
		}
		if ct := r.header.Get("Content-Type"); r.status != http.StatusNoContent && ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		if strings.Contains(body, "SECRETSECRET") && strings.Contains(string(r.body), "SECRETSECRET") {
			t.Fatalf("%s %s echoed a secret: %s", ep.method, ep.path, r.body)
		}
	})
}

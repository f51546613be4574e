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

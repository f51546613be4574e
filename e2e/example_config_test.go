package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/quantaseal/gateway/envoy"
	"github.com/quantaseal/gateway/internal/gatewaytest"
	"github.com/quantaseal/gateway/okta/oktatest"
)

// TestShippedExampleConfig feeds the checked-in sidecar example the README points to
// (envoy/examples/sidecar.yaml, the output of `quantaseal envoy config --mode sidecar`)
// to the fake Envoy exactly as written — processing mode, mutation rules, timeouts and
// buffer limit — and drives a transparent and an outbound call through it to the real
// gateway and the Okta double. Only the addresses are the test's: the example names
// example.okta.com over TLS, the double is plain HTTP on loopback.
func TestShippedExampleConfig(t *testing.T) {
	yaml, err := os.ReadFile("../envoy/examples/sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := envoy.Validate(yaml)
	if err != nil {
		t.Fatalf("the shipped example does not validate: %v", err)
	}
	double := oktatest.New(t, oktatest.Options{})
	const oktaToken = "00example-config-okta-api-token"
	double.AddAPIToken(oktaToken)
	gw := gatewaytest.Start(t, gatewaytest.Options{AllowedDomains: []string{double.Origin()}, LogLevel: "info"})
	api := gw.API()
	tenant := api.CreateTenant(t, gw.AdminToken, "example-config")
	cred := api.SealCredential(t, tenant.APIKey, "api_key", "okta-token", map[string]string{"token": oktaToken})
	intID := api.CreateIntegration(t, tenant.APIKey, "corp", double.Origin(), cred, []string{"list_users", "list_groups"})
	_, boundKey := api.CreateKey(t, gw.AdminToken, tenant.ID, intID)

	fake := gatewaytest.NewEnvoyFrom(t, b, gw.GRPCAddr, double.URL())

	// Transparent: Okta's own REST shape with the qs_live_ key, as the Okta SDKs send it.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", fake.URL()+"/api/v1/users?limit=2", nil)
	req.Header.Set("Authorization", "SSWS "+boundKey)
	req.Header.Set("Accept", "application/json")
	resp, err := fake.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("X-Quantaseal-Audit-Event"), "aud_") {
		t.Fatalf("transparent list_users: %d, audit header %q", resp.StatusCode, resp.Header.Get("X-Quantaseal-Audit-Event"))
	}

	// Outbound API: the example's per-route override buffers the JSON body.
	body := `{"integration_id":"` + intID + `","operation":"list_groups","payload":{"limit":5}}`
	req, _ = http.NewRequestWithContext(t.Context(), "POST", fake.URL()+"/api/v2/proxy/outbound", strings.NewReader(body))
	req.Header.Set("X-API-Key", boundKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err = fake.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Version      int    `json:"version"`
		Success      bool   `json:"success"`
		Status       int    `json:"status"`
		AuditEventID string `json:"audit_event_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || env.Version != 1 || !env.Success || env.Status != 200 {
		t.Fatalf("outbound list_groups: HTTP %d, envelope %+v, %v", resp.StatusCode, env, err)
	}

	var sawUsers, sawGroups bool
	for _, r := range double.Requests() {
		if got := r.Header.Get("Authorization"); got != "SSWS "+oktaToken {
			t.Errorf("Okta received %s %s with Authorization %q, want the sealed token", r.Method, r.Path, got)
		}
		sawUsers = sawUsers || (r.Method == "GET" && r.Path == "/api/v1/users")
		sawGroups = sawGroups || (r.Method == "GET" && r.Path == "/api/v1/groups")
	}
	if !sawUsers || !sawGroups {
		t.Errorf("Okta saw list_users=%v list_groups=%v, want both", sawUsers, sawGroups)
	}
	st := fake.Stats()
	if st.SpuriousMsgsReceived != 0 || st.RejectedHeaderMutations != 0 || st.MessageTimeouts != 0 {
		t.Errorf("Envoy counters: %+v", st)
	}
}

package main

import (
	"testing"
)

// firstStatus sends request_headers for key and returns 0 when the call is let
// through, or the status of the ImmediateResponse that denies it.
func (bg *benchGateway) firstStatus(t *testing.T, key string) int {
	t.Helper()
	s, err := bg.client.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.CloseSend() }()
	if err := s.Send(bg.requestHeaders(key)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ir := r.GetImmediateResponse(); ir != nil {
		return int(ir.GetStatus().GetCode())
	}
	if r.GetRequestHeaders() == nil {
		t.Fatalf("unexpected reply %v", r)
	}
	return 0
}

// TestGatewayForgetsOnChange checks that the processor's API-key and integration cache
// (extproc.Config.AuthCacheTTL, 1s by default) does not delay changes made through
// this gateway's API: each is honoured by the very next call.
func TestGatewayForgetsOnChange(t *testing.T) {
	bg := newBenchGateway(t, false)

	// A second key of the tenant: used (and so cached), then revoked.
	var key struct {
		KeyID  string `json:"key_id"`
		APIKey string `json:"api_key"`
	}
	bg.call(t, "POST", "/api/v2/tenants/"+bg.tenantID+"/api-keys", bg.admin, `{}`, &key)
	if got := bg.firstStatus(t, key.APIKey); got != 0 {
		t.Fatalf("new key: status %d, want the call let through", got)
	}
	bg.call(t, "DELETE", "/api/v2/tenants/"+bg.tenantID+"/api-keys/"+key.KeyID, bg.admin, "", nil)
	if got := bg.firstStatus(t, key.APIKey); got != 401 {
		t.Errorf("revoked key: status %d, want 401 at once", got)
	}
	if got := bg.firstStatus(t, bg.apiKey); got != 0 {
		t.Errorf("the tenant's other key: status %d after revoking a sibling", got)
	}

	// The integration stops allowing list_users.
	bg.call(t, "PATCH", "/api/v2/integrations/"+bg.integrationID, bg.apiKey, `{"allowed_operations":["list_groups"]}`, nil)
	if got := bg.firstStatus(t, bg.apiKey); got != 403 {
		t.Errorf("operation no longer allowed: status %d, want 403 at once", got)
	}
	bg.call(t, "PATCH", "/api/v2/integrations/"+bg.integrationID, bg.apiKey, `{"allowed_operations":["list_users"]}`, nil)
	if got := bg.firstStatus(t, bg.apiKey); got != 0 {
		t.Fatalf("allowed again: status %d", got)
	}

	// A second integration on another domain: the request's host (the gateway's)
	// matches neither, so the tenant no longer has one unambiguous integration.
	var cred struct {
		CredentialID string `json:"credential_id"`
	}
	bg.call(t, "POST", "/api/v2/vault/seal", bg.apiKey,
		`{"credential_type":"api_key","name":"other","secret":{"token":"00other-okta-api-token-0123456789abcdefghi"}}`, &cred)
	bg.call(t, "POST", "/api/v2/integrations", bg.apiKey,
		`{"system_type":"okta","name":"other","okta_domain":"https://other.okta.com","credential_id":"`+cred.CredentialID+
			`","allowed_operations":["list_users"],"envelope":"never"}`, nil)
	if got := bg.firstStatus(t, bg.apiKey); got != 404 {
		t.Errorf("ambiguous after a new integration: status %d, want 404 at once", got)
	}
}

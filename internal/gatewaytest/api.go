package gatewaytest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// API is a client of the gateway's HTTP API (ARCHITECTURE.md "Tenants and keys",
// "Vault", "Integrations", "Audit").
type API struct {
	URL  string
	HTTP *http.Client
	// Seen, when set, receives every response's status line, headers and body (for
	// leak scans).
	Seen io.Writer
}

// NewAPI returns a client for the API at url ("http://127.0.0.1:PORT").
func NewAPI(url string) *API {
	return &API{URL: url, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Response is one API answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object (nil when it is not one).
func (r *Response) JSON() map[string]any {
	var m map[string]any
	if json.Unmarshal(r.Body, &m) != nil {
		return nil
	}
	return m
}

// Str returns a string member of the JSON body.
func (r *Response) Str(key string) string {
	s, _ := r.JSON()[key].(string)
	return s
}

// Do sends a request. header may be nil; a non-nil body that is not []byte or string is
// JSON-encoded, and any body is sent as application/json.
func (a *API) Do(ctx context.Context, method, path string, header http.Header, body any) (*Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if a.Seen != nil {
		fmt.Fprintf(a.Seen, "%s %s → %d\n", method, path, resp.StatusCode)
		_ = resp.Header.Write(a.Seen)
		a.Seen.Write(b)
		a.Seen.Write([]byte("\n"))
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Bearer is an Authorization: Bearer header.
func Bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// APIKeyHeader is an X-API-Key header.
func APIKeyHeader(key string) http.Header { return http.Header{"X-Api-Key": {key}} }

// Must sends a request and fails the test unless the status is want.
func (a *API) Must(t testing.TB, want int, method, path string, header http.Header, body any) *Response {
	t.Helper()
	r, err := a.Do(t.Context(), method, path, header, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// Tenant is a created tenant with its once-shown secrets.
type Tenant struct {
	ID              string
	KeyID           string
	APIKey          string
	HMACKey         []byte
	ResponseKEMSeed []byte
}

// once returns a copy of a that does not copy answers to Seen: tenant and key creation
// show their secrets once, by design, and are not part of a leak scan.
func (a *API) once() *API {
	c := *a
	c.Seen = nil
	return &c
}

// CreateTenant creates a tenant with a generated response key pair. Its answer, which
// shows the tenant's secrets once, is not copied to Seen.
func (a *API) CreateTenant(t testing.TB, adminToken, name string) Tenant {
	t.Helper()
	r := a.once().Must(t, http.StatusCreated, "POST", "/api/v2/tenants", Bearer(adminToken), map[string]any{"name": name})
	hk, err1 := base64.StdEncoding.DecodeString(r.Str("hmac_key"))
	seed, err2 := base64.StdEncoding.DecodeString(r.Str("response_kem_seed"))
	if err1 != nil || err2 != nil {
		t.Fatalf("create tenant: undecodable keys in %s", r.Body)
	}
	return Tenant{ID: r.Str("tenant_id"), KeyID: r.Str("key_id"), APIKey: r.Str("api_key"), HMACKey: hk, ResponseKEMSeed: seed}
}

// CreateKey adds an API key to a tenant, bound to integrationID when it is not "". It
// returns the key's id and the key (the answer is not copied to Seen).
func (a *API) CreateKey(t testing.TB, adminToken, tenantID, integrationID string) (keyID, key string) {
	t.Helper()
	var body any
	if integrationID != "" {
		body = map[string]any{"integration_id": integrationID}
	}
	r := a.once().Must(t, http.StatusCreated, "POST", "/api/v2/tenants/"+tenantID+"/api-keys", Bearer(adminToken), body)
	return r.Str("key_id"), r.Str("api_key")
}

// SealCredential seals an Okta credential: credType "api_key" with {"token"}, or
// "oauth2_client" with {"client_id", "client_secret"} or {"client_id", "private_key",
// "private_key_id"}. It returns the credential id.
func (a *API) SealCredential(t testing.TB, apiKey, credType, name string, secret map[string]string) string {
	t.Helper()
	r := a.Must(t, http.StatusCreated, "POST", "/api/v2/vault/seal", APIKeyHeader(apiKey),
		map[string]any{"credential_type": credType, "name": name, "secret": secret})
	return r.Str("credential_id")
}

// CreateIntegration creates an Okta integration and returns its id.
func (a *API) CreateIntegration(t testing.TB, apiKey, name, oktaDomain, credentialID string, allowed []string) string {
	t.Helper()
	r := a.Must(t, http.StatusCreated, "POST", "/api/v2/integrations", APIKeyHeader(apiKey), map[string]any{
		"system_type": "okta", "name": name, "okta_domain": oktaDomain,
		"credential_id": credentialID, "allowed_operations": allowed, "envelope": "on_request",
	})
	return r.Str("integration_id")
}

// Metrics returns the text of GET /metrics.
func (a *API) Metrics(t testing.TB) []byte {
	t.Helper()
	return a.Must(t, http.StatusOK, "GET", "/metrics", nil, nil).Body
}

// SigningKeys returns GET /api/v2/signing-keys as key_id → ML-DSA-65 public key.
func (a *API) SigningKeys(t testing.TB) map[string][]byte {
	t.Helper()
	r := a.Must(t, http.StatusOK, "GET", "/api/v2/signing-keys", nil, nil)
	var out struct {
		Keys []struct {
			KeyID     string `json:"key_id"`
			PublicKey string `json:"public_key"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("signing keys: %v", err)
	}
	keys := map[string][]byte{}
	for _, k := range out.Keys {
		b, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil {
			t.Fatalf("signing key %s: %v", k.KeyID, err)
		}
		keys[k.KeyID] = b
	}
	return keys
}

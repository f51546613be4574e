package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/secret"
)

// response is one HTTP answer a client of the gateway received, kept for the leak scan.
type response struct {
	Method, URL string
	Status      int
	Header      http.Header
	Body        []byte
	// OnceShown marks the creation answers that carry secrets by design (tenant and
	// API-key creation: api_key, hmac_key, response_kem_seed); the leak scan skips them.
	OnceShown bool
}

// apiClient calls the gateway's HTTP API and records every answer.
type apiClient struct {
	base string
	hc   *http.Client

	mu        sync.Mutex
	responses []response
}

func newAPIClient(base string) *apiClient {
	return &apiClient{base: base, hc: &http.Client{Timeout: 60 * time.Second}}
}

// auth is how a request authenticates: the admin bearer token or a tenant API key.
type auth struct{ header, value string }

func adminAuth(token string) auth { return auth{"Authorization", "Bearer " + token} }
func keyAuth(key string) auth     { return auth{"X-API-Key", key} }

// call sends method path with body (JSON-encoded unless nil) and returns the status and
// the body. onceShown marks answers that legitimately carry secrets.
func (a *apiClient) call(t *testing.T, method, path string, au auth, body any, onceShown bool) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, a.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if au.header != "" {
		req.Header.Set(au.header, au.value)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	a.mu.Lock()
	a.responses = append(a.responses, response{Method: method, URL: path, Status: resp.StatusCode,
		Header: resp.Header.Clone(), Body: data, OnceShown: onceShown && resp.StatusCode < 300})
	a.mu.Unlock()
	return resp.StatusCode, data
}

// mustJSON calls and decodes a JSON answer with the wanted status.
func (a *apiClient) mustJSON(t *testing.T, method, path string, au auth, body any, want int, out any, onceShown bool) {
	t.Helper()
	status, data := a.call(t, method, path, au, body, onceShown)
	if status != want {
		t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, status, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

func (a *apiClient) recorded() []response {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]response(nil), a.responses...)
}

// tenant is what POST /api/v2/tenants returned, plus the client profile built from it
// and GET /api/v2/signing-keys.
type tenant struct {
	ID           string
	APIKey       string
	HMACKey      []byte
	ResponseSeed []byte
	Profile      *envelope.Profile
	SigningKeys  map[string][]byte // key_id → ML-DSA-65 public key
	KeysJSON     []byte            // the raw GET /api/v2/signing-keys answer
}

// createTenant seeds a tenant exactly as ARCHITECTURE.md documents: no
// response_kem_public_key, so the gateway generates the response key pair and returns
// its seed once.
func (a *apiClient) createTenant(t *testing.T, adminToken, name string) tenant {
	t.Helper()
	var out struct {
		TenantID        string `json:"tenant_id"`
		APIKey          string `json:"api_key"`
		HMACKey         string `json:"hmac_key"`
		ResponseKEMSeed string `json:"response_kem_seed"`
	}
	a.mustJSON(t, "POST", "/api/v2/tenants", adminAuth(adminToken), map[string]any{"name": name}, http.StatusCreated, &out, true)
	hk, err := base64.StdEncoding.DecodeString(out.HMACKey)
	if err != nil || len(hk) != envelope.HMACKeySize {
		t.Fatalf("hmac_key %q: not base64 of %d bytes", out.HMACKey, envelope.HMACKeySize)
	}
	seed, err := base64.StdEncoding.DecodeString(out.ResponseKEMSeed)
	if err != nil || len(seed) != envelope.ResponseSeedSize {
		t.Fatalf("response_kem_seed: not base64 of %d bytes", envelope.ResponseSeedSize)
	}
	if out.TenantID == "" || len(out.APIKey) < len("qs_live_")+16 || out.APIKey[:8] != "qs_live_" {
		t.Fatalf("tenant answer: tenant_id %q, api_key prefix %.8q", out.TenantID, out.APIKey)
	}
	tn := tenant{ID: out.TenantID, APIKey: out.APIKey, HMACKey: hk, ResponseSeed: seed}
	tn.SigningKeys, tn.KeysJSON = a.signingKeys(t)
	tn.Profile = &envelope.Profile{
		TenantID:        tn.ID,
		APIKey:          secret.New(tn.APIKey),
		HMACKey:         secret.FromBytes(hk),
		ResponseKEMSeed: secret.FromBytes(seed),
		SigningKeys:     tn.SigningKeys,
	}
	return tn
}

// signingKeys fetches GET /api/v2/signing-keys (unauthenticated).
func (a *apiClient) signingKeys(t *testing.T) (map[string][]byte, []byte) {
	t.Helper()
	status, data := a.call(t, "GET", "/api/v2/signing-keys", auth{}, nil, false)
	if status != http.StatusOK {
		t.Fatalf("GET /api/v2/signing-keys: HTTP %d: %s", status, data)
	}
	var out struct {
		Keys []struct {
			KeyID     string `json:"key_id"`
			Algorithm string `json:"algorithm"`
			PublicKey string `json:"public_key"`
			Current   bool   `json:"current"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("signing keys %s: %v", data, err)
	}
	keys := map[string][]byte{}
	current := 0
	for _, k := range out.Keys {
		pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil || k.Algorithm != "ML-DSA-65" {
			t.Fatalf("signing key %q: algorithm %q, public_key not base64 (%v)", k.KeyID, k.Algorithm, err)
		}
		vk, err := envelope.ParseVerifyingKey(pub)
		if err != nil || vk.KeyID() != k.KeyID {
			t.Fatalf("signing key %q: %v (key id of the key: %v)", k.KeyID, err, vk)
		}
		keys[k.KeyID] = pub
		if k.Current {
			current++
		}
	}
	if len(keys) == 0 || current != 1 {
		t.Fatalf("signing keys: %d keys, %d current; want at least one and exactly one current: %s", len(keys), current, data)
	}
	return keys, data
}

// sealCredential stores a credential with POST /api/v2/vault/seal and returns its id;
// the answer must not echo the secret (checked by the leak scan).
func (a *apiClient) sealCredential(t *testing.T, key, credType, name string, sec map[string]string) string {
	t.Helper()
	var out struct {
		CredentialID   string `json:"credential_id"`
		CredentialType string `json:"credential_type"`
		Fingerprint    string `json:"fingerprint"`
		CreatedAt      string `json:"created_at"`
	}
	a.mustJSON(t, "POST", "/api/v2/vault/seal", keyAuth(key),
		map[string]any{"credential_type": credType, "name": name, "secret": sec}, http.StatusCreated, &out, false)
	if out.CredentialID == "" || out.CredentialType != credType || out.Fingerprint == "" || out.CreatedAt == "" {
		t.Fatalf("seal answer %+v", out)
	}
	return out.CredentialID
}

// createIntegration registers an Okta integration and returns its id.
func (a *apiClient) createIntegration(t *testing.T, key, name, oktaDomain, credentialID string, allowed []string) string {
	t.Helper()
	var out struct {
		IntegrationID     string   `json:"integration_id"`
		AllowedOperations []string `json:"allowed_operations"`
		PolicySHA256      string   `json:"policy_sha256"`
	}
	a.mustJSON(t, "POST", "/api/v2/integrations", keyAuth(key), map[string]any{
		"system_type": "okta", "name": name, "okta_domain": oktaDomain,
		"credential_id": credentialID, "allowed_operations": allowed, "envelope": "on_request",
	}, http.StatusCreated, &out, false)
	if out.IntegrationID == "" || len(out.AllowedOperations) != len(allowed) || len(out.PolicySHA256) != 64 {
		t.Fatalf("integration answer %+v", out)
	}
	return out.IntegrationID
}

// createBoundKey adds an API key bound to one integration (the key an application gets).
func (a *apiClient) createBoundKey(t *testing.T, adminToken, tenantID, integrationID string) string {
	t.Helper()
	var out struct {
		APIKey        string `json:"api_key"`
		IntegrationID string `json:"integration_id"`
	}
	a.mustJSON(t, "POST", "/api/v2/tenants/"+tenantID+"/api-keys", adminAuth(adminToken),
		map[string]any{"integration_id": integrationID}, http.StatusCreated, &out, true)
	if len(out.APIKey) < 8 || out.APIKey[:8] != "qs_live_" || out.IntegrationID != integrationID {
		t.Fatalf("api key answer: prefix %.8q, integration %q", out.APIKey, out.IntegrationID)
	}
	return out.APIKey
}

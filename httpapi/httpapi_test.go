package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/httpapi"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
)

func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) { f(t, b) })
	}
}

func ecPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func wantStatus(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
	}
	if code != "" {
		if got := r.str(t, "error"); got != code {
			t.Fatalf("%s: error code %q, want %q; body %s", what, got, code, r.body)
		}
	}
}

func TestTenantsAndKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		// Generated response key: the seed comes back once and matches the stored key id.
		r := e.req("POST", "/api/v2/tenants", admin(), map[string]any{"name": "acme", "kms_key_id": "alias/acme"})
		wantStatus(t, "create tenant", r, http.StatusCreated, "")
		m := r.json(t)
		tenantID := m["tenant_id"].(string)
		if !id.Valid("ten", tenantID) || !strings.HasPrefix(m["api_key"].(string), "qs_live_") {
			t.Fatalf("bad creation response %s", r.body)
		}
		seed, _ := base64.StdEncoding.DecodeString(m["response_kem_seed"].(string))
		rk, err := envelope.NewResponseKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		hmacKey, _ := base64.StdEncoding.DecodeString(m["hmac_key"].(string))
		if len(hmacKey) != 64 || m["hmac_key_id"] != envelope.HMACKeyID(hmacKey) {
			t.Fatalf("hmac key: %d bytes, id %v", len(hmacKey), m["hmac_key_id"])
		}
		stored, err := e.store.GetTenant(t.Context(), tenantID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.ResponseKeyID != rk.KeyID() || stored.KMSKeyID != "alias/acme" || stored.Name != "acme" {
			t.Fatalf("stored tenant %+v", stored)
		}
		// The stored HMAC key is sealed and opens to the key that was shown.
		opened, err := e.vaultSvc.OpenBytes(t.Context(), tenantID, registry.PurposeHMAC, stored.HMACKeySealed)
		if err != nil || !opened.Equal(secret.FromBytes(hmacKey)) {
			t.Fatalf("sealed HMAC key does not open to the shown key: %v", err)
		}

		// Caller-supplied response key: no seed in the answer.
		rk2, _ := envelope.GenerateResponseKey(nil)
		r = e.req("POST", "/api/v2/tenants", admin(), map[string]any{"name": "beta",
			"response_kem_public_key": base64.StdEncoding.EncodeToString(rk2.Public().Bytes())})
		wantStatus(t, "create tenant with key", r, http.StatusCreated, "")
		if _, ok := r.json(t)["response_kem_seed"]; ok {
			t.Fatal("response_kem_seed returned for a caller-supplied key")
		}

		// Keys: create, use, list (no secrets), revoke, use again → 401.
		tenantKey := m["api_key"].(string)
		wantStatus(t, "list integrations", e.req("GET", "/api/v2/integrations", apiKey(tenantKey), nil), http.StatusOK, "")
		r = e.req("POST", "/api/v2/tenants/"+tenantID+"/api-keys", admin(), nil)
		wantStatus(t, "create key", r, http.StatusCreated, "")
		k2, k2ID := r.str(t, "api_key"), r.str(t, "key_id")
		wantStatus(t, "bearer key", e.req("GET", "/api/v2/vault", "Authorization: Bearer "+k2, nil), http.StatusOK, "")
		r = e.req("GET", "/api/v2/tenants/"+tenantID+"/api-keys", admin(), nil)
		wantStatus(t, "list keys", r, http.StatusOK, "")
		if strings.Contains(string(r.body), "qs_live_") || strings.Count(string(r.body), "key_id") != 2 {
			t.Fatalf("list keys: %s", r.body)
		}
		wantStatus(t, "revoke", e.req("DELETE", "/api/v2/tenants/"+tenantID+"/api-keys/"+k2ID, admin(), nil), http.StatusNoContent, "")
		wantStatus(t, "revoked key", e.req("GET", "/api/v2/vault", apiKey(k2), nil), http.StatusUnauthorized, httpapi.CodeInvalidAPIKey)
		wantStatus(t, "revoke unknown", e.req("DELETE", "/api/v2/tenants/"+tenantID+"/api-keys/"+id.New("key"), admin(), nil), http.StatusNotFound, httpapi.CodeNotFound)

		// Admin auth.
		for name, auth := range map[string]string{
			"none": "", "wrong": "Authorization: Bearer nope", "tenant key": "Authorization: Bearer " + tenantKey,
			"basic": "Authorization: Basic " + adminToken,
		} {
			r := e.req("POST", "/api/v2/tenants", auth, map[string]any{"name": "x"})
			wantStatus(t, "admin auth "+name, r, http.StatusUnauthorized, httpapi.CodeInvalidAdmin)
			if r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("admin auth %s: no WWW-Authenticate", name)
			}
		}
	})
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	e := newEnv(t, backendSQLite, func(c *httpapi.Config, _ *httpapi.Deps) { c.AdminToken = secret.Secret{} })
	for _, auth := range []string{"", "Authorization: Bearer ", "Authorization: Bearer x"} {
		wantStatus(t, "no admin token", e.req("POST", "/api/v2/tenants", auth, map[string]any{"name": "x"}), http.StatusUnauthorized, httpapi.CodeInvalidAdmin)
	}
}

// TestSecretsNeverLeak seals, rotates and reads every kind of secret, then searches the
// database (all tables, and the SQLite file bytes), the logs and every response for it.
func TestSecretsNeverLeak(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		tn := e.newTenant("acme")
		clientSecret := "cs-" + strings.Repeat("S3cr3t", 6)
		rotatedSecret := "cs-rotated-" + strings.Repeat("R0t4t3d", 5)
		privKey := ecPEM(t)
		token := "00" + strings.Repeat("SSWSt0ken", 4)

		c1 := e.seal(tn, "client-secret", map[string]any{"client_id": "0oa1", "client_secret": clientSecret})
		c2 := e.seal(tn, "private-key", map[string]any{"client_id": "0oa2", "private_key": privKey, "private_key_id": "kid1"})
		r := e.req("POST", "/api/v2/vault/seal", apiKey(tn.key), map[string]any{
			"credential_type": "api_key", "name": "ssws", "secret": map[string]any{"token": token}})
		wantStatus(t, "seal api_key", r, http.StatusCreated, "")
		r = e.req("POST", "/api/v2/vault/"+c1+"/rotate", apiKey(tn.key), map[string]any{"secret": map[string]any{"client_id": "0oa1", "client_secret": rotatedSecret}})
		wantStatus(t, "rotate", r, http.StatusOK, "")
		if r.json(t)["rotated_at"] == nil {
			t.Error("rotate: no rotated_at")
		}
		// Failed requests that carried secrets: validation errors must not echo them.
		wantStatus(t, "seal both secrets", e.req("POST", "/api/v2/vault/seal", apiKey(tn.key), map[string]any{
			"credential_type": "oauth2_client", "name": "x", "secret": map[string]any{"client_id": "a", "client_secret": clientSecret, "private_key": privKey}}),
			http.StatusBadRequest, httpapi.CodeInvalidRequest)
		wantStatus(t, "seal bad type", e.req("POST", "/api/v2/vault/seal", apiKey(tn.key), map[string]any{
			"credential_type": "api_key", "name": "x", "secret": map[string]any{"token": token, "client_secret": clientSecret}}),
			http.StatusBadRequest, httpapi.CodeInvalidRequest)
		wantStatus(t, "secret of wrong JSON type", e.req("POST", "/api/v2/vault/seal", apiKey(tn.key),
			`{"credential_type":"oauth2_client","name":"x","secret":{"client_id":"a","client_secret":["`+clientSecret+`"]}}`),
			http.StatusBadRequest, "")
		for _, p := range []string{"/api/v2/vault", "/api/v2/vault/" + c1, "/api/v2/vault/" + c2} {
			wantStatus(t, "GET "+p, e.req("GET", p, apiKey(tn.key), nil), http.StatusOK, "")
		}
		for what, s := range map[string]string{
			"client secret": clientSecret, "rotated secret": rotatedSecret, "token": token,
			"private key body": strings.Split(privKey, "\n")[1],
		} {
			e.assertNoLeak(what, s)
		}
		// Controls: the scanners see what is really there (a credential name in the
		// database, the once-shown API key in the responses).
		if dump := e.dump(); !strings.Contains(string(dump), "private-key") || !strings.Contains(string(dump), c2) {
			t.Fatal("database dump does not contain the stored metadata: the leak check would be vacuous")
		}
		e.seenMu.Lock()
		shown := strings.Contains(e.seen.String(), tn.key)
		e.seenMu.Unlock()
		if !shown || !strings.Contains(string(e.logs.Bytes()), `"caller":"`+tn.keyID+`"`) {
			t.Fatal("response log does not contain the once-shown API key, or the logs lack the caller id: the leak check would be vacuous")
		}
		// The tenant's secrets were shown once (in the creation response) and never stored.
		e.assertNoLeakExceptResponses("api key", tn.key)
		e.assertNoLeakExceptResponses("hmac key", tn.hmac)
		if want := []string{tn.id + "/" + c1}; !cmp.Equal(e.rotated, want) {
			t.Errorf("OnCredentialRotated calls = %v, want %v", e.rotated, want)
		}
	})
}

// assertNoLeakExceptResponses checks the database and logs only (the value was shown once).
func (e *env) assertNoLeakExceptResponses(what, s string) {
	e.t.Helper()
	for place, b := range map[string][]byte{"database": e.dump(), "logs": e.logs.Bytes()} {
		if strings.Contains(string(b), s) {
			e.t.Errorf("%s found in %s", what, place)
		}
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err == nil && len(raw) > 0 {
		for place, b := range map[string][]byte{"database": e.dump(), "logs": e.logs.Bytes()} {
			if strings.Contains(string(b), string(raw)) {
				e.t.Errorf("%s (decoded) found in %s", what, place)
			}
		}
	}
}

// TestTenantIsolation: tenant A's key, naming tenant B's ids on every endpoint, can
// neither read, use, rotate nor delete them, and B's state is unchanged afterwards.
func TestTenantIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		a, bt := e.newTenant("alpha"), e.newTenant("beta")
		credA := e.seal(a, "ca", map[string]any{"client_id": "a", "client_secret": "secret-a"})
		credB := e.seal(bt, "cb", map[string]any{"client_id": "b", "client_secret": "secret-b"})
		intB := e.integration(bt, "beta", credB)
		e.audit.events = []audit.Event{{ID: id.New("aud"), TenantID: bt.id, IntegrationID: intB}}

		snapshot := func() string {
			var sb strings.Builder
			for _, p := range []string{"/api/v2/vault", "/api/v2/integrations", "/api/v2/vault/" + credB, "/api/v2/integrations/" + intB} {
				r := e.req("GET", p, apiKey(bt.key), nil)
				wantStatus(t, "B reads "+p, r, http.StatusOK, "")
				sb.Write(r.body)
			}
			return sb.String()
		}
		before := snapshot()
		newSecret := map[string]any{"secret": map[string]any{"client_id": "x", "client_secret": "stolen"}}
		for _, tc := range []struct {
			method, path string
			body         any
			status       int
			field        string
		}{
			{"GET", "/api/v2/vault/" + credB, nil, 404, ""},
			{"POST", "/api/v2/vault/" + credB + "/rotate", newSecret, 404, ""},
			{"DELETE", "/api/v2/vault/" + credB, nil, 404, ""},
			{"GET", "/api/v2/integrations/" + intB, nil, 404, ""},
			{"PATCH", "/api/v2/integrations/" + intB, map[string]any{"allowed_operations": []string{"create_user"}}, 404, ""},
			{"PATCH", "/api/v2/integrations/" + intB, map[string]any{"credential_id": credA}, 404, ""},
			{"DELETE", "/api/v2/integrations/" + intB, nil, 404, ""},
			{"POST", "/api/v2/integrations", map[string]any{"system_type": "okta", "name": "steal", "okta_domain": "https://beta.okta.com",
				"credential_id": credB, "allowed_operations": []string{"list_users"}}, 400, "credential_id"},
			{"GET", "/api/v2/audit/events/" + e.audit.events[0].ID, nil, 404, ""},
		} {
			r := e.req(tc.method, tc.path, apiKey(a.key), tc.body)
			wantStatus(t, "A: "+tc.method+" "+tc.path, r, tc.status, "")
			if tc.field != "" && r.str(t, "field") != tc.field {
				t.Errorf("A: %s %s: field %q, want %q", tc.method, tc.path, r.str(t, "field"), tc.field)
			}
		}
		// Listings of A show nothing of B.
		for _, p := range []string{"/api/v2/vault", "/api/v2/integrations", "/api/v2/audit/events", "/api/v2/audit/events?integration_id=" + intB} {
			r := e.req("GET", p, apiKey(a.key), nil)
			wantStatus(t, "A lists "+p, r, http.StatusOK, "")
			if s := string(r.body); strings.Contains(s, credB) || strings.Contains(s, intB) || strings.Contains(s, bt.id) {
				t.Errorf("A's %s shows B's data: %s", p, s)
			}
		}
		// Admin: a key of A cannot be created bound to B's integration.
		wantStatus(t, "bind A key to B integration", e.req("POST", "/api/v2/tenants/"+a.id+"/api-keys", admin(), map[string]any{"integration_id": intB}),
			http.StatusBadRequest, httpapi.CodeInvalidRequest)
		wantStatus(t, "revoke B's key under A", e.req("DELETE", "/api/v2/tenants/"+a.id+"/api-keys/"+bt.keyID, admin(), nil), http.StatusNotFound, "")
		if d := cmp.Diff(before, snapshot()); d != "" {
			t.Errorf("B's state changed (-before +after):\n%s", d)
		}
		if len(e.rotated) != 0 || len(e.changed) != 0 {
			t.Errorf("hooks fired for refused requests: rotated %v changed %v", e.rotated, e.changed)
		}
	})
}

// TestVaultUnavailable: with the KMS down, creating a tenant and sealing answer 503 and
// leave no rows behind.
func TestVaultUnavailable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		tn := e.newTenant("acme")
		existing := e.seal(tn, "existing", map[string]any{"client_id": "a", "client_secret": "before"})
		sealedBefore, err := e.store.GetSealedCredential(t.Context(), tn.id, existing)
		if err != nil {
			t.Fatal(err)
		}
		e.wrapper.down.Store(true)
		wantStatus(t, "rotate, KMS down", e.req("POST", "/api/v2/vault/"+existing+"/rotate", apiKey(tn.key), map[string]any{
			"secret": map[string]any{"client_id": "a", "client_secret": "after"}}), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
		if after, err := e.store.GetSealedCredential(t.Context(), tn.id, existing); err != nil || !cmp.Equal(sealedBefore, after) {
			t.Fatalf("a failed rotation changed the credential: %v", err)
		}
		if len(e.rotated) != 0 {
			t.Fatalf("rotation hook fired for a failed rotation: %v", e.rotated)
		}
		wantStatus(t, "create tenant, KMS down", e.req("POST", "/api/v2/tenants", admin(), map[string]any{"name": "x"}), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
		wantStatus(t, "seal, KMS down", e.req("POST", "/api/v2/vault/seal", apiKey(tn.key), map[string]any{
			"credential_type": "oauth2_client", "name": "c", "secret": map[string]any{"client_id": "a", "client_secret": "s"}}), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
		tenants, err := e.store.ListTenants(t.Context())
		if err != nil || len(tenants) != 1 {
			t.Fatalf("tenants after failures: %d, %v", len(tenants), err)
		}
		creds, err := e.store.ListSealedCredentials(t.Context(), tn.id)
		if err != nil || len(creds) != 1 {
			t.Fatalf("credentials after failure: %v, %v", creds, err)
		}
		e.wrapper.down.Store(false)
		e.seal(tn, "c", map[string]any{"client_id": "a", "client_secret": "s"})
	})
}

// TestStoreDown: with PostgreSQL unreachable every endpoint that needs it answers 503
// (never 401 or 404), /readyz fails, and the API recovers when the database returns.
func TestStoreDown(t *testing.T) {
	e := newEnv(t, backendPostgres)
	tn := e.newTenant("acme")
	cred := e.seal(tn, "c", map[string]any{"client_id": "a", "client_secret": "s"})
	e.proxy.down()
	for _, tc := range []struct{ method, path, auth string }{
		{"GET", "/api/v2/integrations", apiKey(tn.key)},
		{"GET", "/api/v2/vault/" + cred, apiKey(tn.key)},
		{"POST", "/api/v2/tenants", admin()},
		{"GET", "/readyz", ""},
	} {
		var body any
		if tc.method == "POST" {
			body = map[string]any{"name": "x"}
		}
		wantStatus(t, "store down: "+tc.path, e.req(tc.method, tc.path, tc.auth, body), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	}
	if strings.Contains(string(e.logs.Bytes()), tn.key) {
		t.Fatal("API key in logs")
	}
	e.proxy.up()
	wantStatus(t, "recovered", e.req("GET", "/api/v2/vault/"+cred, apiKey(tn.key), nil), http.StatusOK, "")
	wantStatus(t, "ready again", e.req("GET", "/readyz", "", nil), http.StatusOK, "")
}

func TestSQLiteClosed(t *testing.T) {
	e := newEnv(t, backendSQLite)
	tn := e.newTenant("acme")
	e.closeDB()
	wantStatus(t, "closed db", e.req("GET", "/api/v2/integrations", apiKey(tn.key), nil), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	wantStatus(t, "readyz", e.req("GET", "/readyz", "", nil), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
}

func TestIntegrations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		tn := e.newTenant("acme")
		c1 := e.seal(tn, "c1", map[string]any{"client_id": "a", "client_secret": "s1"})
		c2 := e.seal(tn, "c2", map[string]any{"client_id": "b", "client_secret": "s2"})
		r := e.req("POST", "/api/v2/integrations", apiKey(tn.key), map[string]any{
			"system_type": "okta", "name": "corp", "okta_domain": "https://YourOrg.okta.com/",
			"credential_id": c1, "allowed_operations": []string{"list_users", "get_user"}})
		wantStatus(t, "create", r, http.StatusCreated, "")
		m := r.json(t)
		intID := m["integration_id"].(string)
		if m["okta_domain"] != "https://yourorg.okta.com" || m["envelope"] != "on_request" ||
			!cmp.Equal(m["allowed_operations"], []any{"get_user", "list_users"}) || len(m["policy_sha256"].(string)) != 64 {
			t.Fatalf("create response %s", r.body)
		}
		wantStatus(t, "duplicate name", e.req("POST", "/api/v2/integrations", apiKey(tn.key), map[string]any{
			"system_type": "okta", "name": "corp", "okta_domain": "https://yourorg.okta.com",
			"credential_id": c1, "allowed_operations": []string{}}), http.StatusConflict, httpapi.CodeConflict)
		// Loopback test double admitted by the operator's list.
		wantStatus(t, "allowed http loopback origin", e.req("POST", "/api/v2/integrations", apiKey(tn.key), map[string]any{
			"system_type": "okta", "name": "local", "okta_domain": "http://127.0.0.1:8999",
			"credential_id": c2, "allowed_operations": []string{}, "envelope": "never"}), http.StatusCreated, "")

		r = e.req("PATCH", "/api/v2/integrations/"+intID, apiKey(tn.key), map[string]any{
			"allowed_operations": []string{"create_user"}, "envelope": "always", "credential_id": c2})
		wantStatus(t, "patch", r, http.StatusOK, "")
		got, err := e.store.GetIntegration(t.Context(), tn.id, intID)
		if err != nil || !slices.Equal(got.AllowedOperations, []string{"create_user"}) || got.Envelope != "always" || got.CredentialID != c2 || got.Name != "corp" {
			t.Fatalf("after patch: %+v, %v", got, err)
		}
		wantStatus(t, "delete used credential", e.req("DELETE", "/api/v2/vault/"+c2, apiKey(tn.key), nil), http.StatusConflict, httpapi.CodeConflict)
		wantStatus(t, "delete unused credential", e.req("DELETE", "/api/v2/vault/"+c1, apiKey(tn.key), nil), http.StatusNoContent, "")

		// A bound key: refused on the management API; its integration cannot be deleted
		// until it is revoked.
		r = e.req("POST", "/api/v2/tenants/"+tn.id+"/api-keys", admin(), map[string]any{"integration_id": intID})
		wantStatus(t, "bound key", r, http.StatusCreated, "")
		bound, boundID := r.str(t, "api_key"), r.str(t, "key_id")
		wantStatus(t, "bound key on management API", e.req("GET", "/api/v2/integrations", apiKey(bound), nil), http.StatusForbidden, httpapi.CodeForbidden)
		wantStatus(t, "delete with bound key", e.req("DELETE", "/api/v2/integrations/"+intID, apiKey(tn.key), nil), http.StatusConflict, httpapi.CodeConflict)
		wantStatus(t, "revoke bound", e.req("DELETE", "/api/v2/tenants/"+tn.id+"/api-keys/"+boundID, admin(), nil), http.StatusNoContent, "")
		wantStatus(t, "delete", e.req("DELETE", "/api/v2/integrations/"+intID, apiKey(tn.key), nil), http.StatusNoContent, "")
		wantStatus(t, "get deleted", e.req("GET", "/api/v2/integrations/"+intID, apiKey(tn.key), nil), http.StatusNotFound, httpapi.CodeNotFound)
		if want := []string{tn.id + "/" + intID, tn.id + "/" + intID}; !cmp.Equal(e.changed, want) {
			t.Errorf("OnIntegrationChanged = %v, want %v", e.changed, want)
		}
	})
}

// TestBadRequests: every malformed request gets its 4xx and changes nothing.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, backendSQLite)
	tn := e.newTenant("acme")
	other := e.newTenant("other")
	cred := e.seal(tn, "c", map[string]any{"client_id": "a", "client_secret": "s"})
	otherCred := e.seal(other, "c", map[string]any{"client_id": "a", "client_secret": "s"})
	intID := e.integration(tn, "corp", cred)
	r := e.req("POST", "/api/v2/tenants/"+tn.id+"/api-keys", admin(), map[string]any{"integration_id": intID})
	bound := r.str(t, "api_key")

	snapshot := func() string {
		var sb strings.Builder
		for _, p := range []string{"/api/v2/vault", "/api/v2/integrations"} {
			sb.Write(e.req("GET", p, apiKey(tn.key), nil).body)
		}
		ts, _ := e.store.ListTenants(t.Context())
		for _, x := range ts {
			sb.WriteString(x.ID)
		}
		return sb.String()
	}
	before := snapshot()

	valid := func(over map[string]any) map[string]any {
		m := map[string]any{"system_type": "okta", "name": "new", "okta_domain": "https://new.okta.com",
			"credential_id": cred, "allowed_operations": []string{"list_users"}}
		for k, v := range over {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	k := apiKey(tn.key)
	big := `{"name":"` + strings.Repeat("a", httpapi.DefaultMaxBodyBytes) + `"}`
	for _, tc := range []struct {
		name, method, path, auth string
		body                     any
		ct                       string // overrides Content-Type when set
		status                   int
		code, field              string
	}{
		{"malformed JSON", "POST", "/api/v2/integrations", k, `{"name":`, "", 400, httpapi.CodeInvalidJSON, ""},
		{"not an object", "POST", "/api/v2/integrations", k, `[1,2]`, "", 400, httpapi.CodeInvalidRequest, ""},
		{"unknown field", "POST", "/api/v2/integrations", k, valid(map[string]any{"extra": 1}), "", 400, httpapi.CodeInvalidRequest, ""},
		{"trailing data", "POST", "/api/v2/vault/seal", k, `{"credential_type":"api_key","name":"x","secret":{"token":"t"}} {}`, "", 400, httpapi.CodeInvalidJSON, ""},
		{"trailing garbage", "POST", "/api/v2/vault/seal", k, `{"credential_type":"api_key","name":"x","secret":{"token":"t"}}x`, "", 400, httpapi.CodeInvalidJSON, ""},
		{"empty body", "POST", "/api/v2/integrations", k, ``, "", 400, httpapi.CodeInvalidJSON, ""},
		{"body too large", "POST", "/api/v2/tenants", admin(), big, "", 413, httpapi.CodeBodyTooLarge, ""},
		{"body too large (seal)", "POST", "/api/v2/vault/seal", k, big, "", 413, httpapi.CodeBodyTooLarge, ""},
		{"wrong content type", "POST", "/api/v2/integrations", k, `{"system_type":"okta"}`, "text/plain", 415, httpapi.CodeUnsupportedMedia, ""},
		{"form content type", "POST", "/api/v2/tenants", admin(), `{"name":"x"}`, "application/x-www-form-urlencoded", 415, httpapi.CodeUnsupportedMedia, ""},
		{"wrong charset", "POST", "/api/v2/tenants", admin(), `{"name":"x"}`, "application/json; charset=latin1", 415, httpapi.CodeUnsupportedMedia, ""},
		{"wrong JSON type", "POST", "/api/v2/integrations", k, valid(map[string]any{"name": 5}), "", 400, httpapi.CodeInvalidRequest, "name"},
		{"unknown system_type", "POST", "/api/v2/integrations", k, valid(map[string]any{"system_type": "salesforce"}), "", 400, httpapi.CodeInvalidRequest, "system_type"},
		{"unknown operation", "POST", "/api/v2/integrations", k, valid(map[string]any{"allowed_operations": []string{"list_users", "drop_org"}}), "", 400, httpapi.CodeInvalidRequest, "allowed_operations"},
		{"duplicate operation", "POST", "/api/v2/integrations", k, valid(map[string]any{"allowed_operations": []string{"list_users", "list_users"}}), "", 400, httpapi.CodeInvalidRequest, "allowed_operations"},
		{"missing allowed_operations", "POST", "/api/v2/integrations", k, valid(map[string]any{"allowed_operations": nil}), "", 400, httpapi.CodeInvalidRequest, "allowed_operations"},
		{"bad envelope", "POST", "/api/v2/integrations", k, valid(map[string]any{"envelope": "sometimes"}), "", 400, httpapi.CodeInvalidRequest, "envelope"},
		{"missing name", "POST", "/api/v2/integrations", k, valid(map[string]any{"name": nil}), "", 400, httpapi.CodeInvalidRequest, "name"},
		{"control char in name", "POST", "/api/v2/integrations", k, valid(map[string]any{"name": "a\nb"}), "", 400, httpapi.CodeInvalidRequest, "name"},
		{"http okta domain", "POST", "/api/v2/integrations", k, valid(map[string]any{"okta_domain": "http://new.okta.com"}), "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"non-okta domain", "POST", "/api/v2/integrations", k, valid(map[string]any{"okta_domain": "https://evil.example.com"}), "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"suffix trick", "POST", "/api/v2/integrations", k, valid(map[string]any{"okta_domain": "https://new.okta.com.evil.com"}), "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"userinfo trick", "POST", "/api/v2/integrations", k, valid(map[string]any{"okta_domain": "https://new.okta.com@evil.com"}), "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"path in domain", "POST", "/api/v2/integrations", k, valid(map[string]any{"okta_domain": "https://new.okta.com/oauth2"}), "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"port on okta host", "POST", "/api/v2/integrations", k, valid(map[string]any{"okta_domain": "https://new.okta.com:8443"}), "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"bare okta.com", "POST", "/api/v2/integrations", k, valid(map[string]any{"okta_domain": "https://okta.com"}), "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"http non-loopback", "POST", "/api/v2/integrations", k, valid(map[string]any{"okta_domain": "http://login.example.com"}), "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"unlisted loopback", "POST", "/api/v2/integrations", k, valid(map[string]any{"okta_domain": "http://127.0.0.1:9000"}), "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"malformed credential id", "POST", "/api/v2/integrations", k, valid(map[string]any{"credential_id": "vlt_nope"}), "", 400, httpapi.CodeInvalidRequest, "credential_id"},
		{"unknown credential", "POST", "/api/v2/integrations", k, valid(map[string]any{"credential_id": id.New("vlt")}), "", 400, httpapi.CodeInvalidRequest, "credential_id"},
		{"other tenant's credential", "POST", "/api/v2/integrations", k, valid(map[string]any{"credential_id": otherCred}), "", 400, httpapi.CodeInvalidRequest, "credential_id"},
		{"patch nothing", "PATCH", "/api/v2/integrations/" + intID, k, `{}`, "", 400, httpapi.CodeInvalidRequest, ""},
		{"patch system_type", "PATCH", "/api/v2/integrations/" + intID, k, `{"system_type":"okta"}`, "", 400, httpapi.CodeInvalidRequest, ""},
		{"patch bad operation", "PATCH", "/api/v2/integrations/" + intID, k, `{"allowed_operations":["nope"]}`, "", 400, httpapi.CodeInvalidRequest, "allowed_operations"},
		{"patch bad domain", "PATCH", "/api/v2/integrations/" + intID, k, `{"okta_domain":"https://x.okta.com#.evil"}`, "", 400, httpapi.CodeInvalidRequest, "okta_domain"},
		{"malformed integration id", "GET", "/api/v2/integrations/int_123", k, nil, "", 404, httpapi.CodeNotFound, ""},
		{"unknown integration id", "GET", "/api/v2/integrations/" + id.New("int"), k, nil, "", 404, httpapi.CodeNotFound, ""},
		{"malformed credential path id", "GET", "/api/v2/vault/vlt_%2F..", k, nil, "", 404, httpapi.CodeNotFound, ""},
		{"wrong-prefix credential id", "DELETE", "/api/v2/vault/" + intID, k, nil, "", 404, httpapi.CodeNotFound, ""},
		{"unknown credential rotate", "POST", "/api/v2/vault/" + id.New("vlt") + "/rotate", k, `{"secret":{"client_id":"a","client_secret":"b"}}`, "", 404, httpapi.CodeNotFound, ""},
		{"rotate without secret", "POST", "/api/v2/vault/" + cred + "/rotate", k, `{}`, "", 400, httpapi.CodeInvalidRequest, "secret"},
		{"rotate changes type", "POST", "/api/v2/vault/" + cred + "/rotate", k, `{"secret":{"token":"t"}}`, "", 400, httpapi.CodeInvalidRequest, ""},
		{"seal unknown type", "POST", "/api/v2/vault/seal", k, `{"credential_type":"password","name":"x","secret":{"token":"t"}}`, "", 400, httpapi.CodeInvalidRequest, "credential_type"},
		{"seal missing secret", "POST", "/api/v2/vault/seal", k, `{"credential_type":"api_key","name":"x"}`, "", 400, httpapi.CodeInvalidRequest, "secret"},
		{"seal missing client_id", "POST", "/api/v2/vault/seal", k, `{"credential_type":"oauth2_client","name":"x","secret":{"client_secret":"s"}}`, "", 400, httpapi.CodeInvalidRequest, "secret.client_id"},
		{"seal bad private key", "POST", "/api/v2/vault/seal", k, `{"credential_type":"oauth2_client","name":"x","secret":{"client_id":"a","private_key":"not a key"}}`, "", 400, httpapi.CodeInvalidRequest, ""},
		{"missing API key", "GET", "/api/v2/vault", "", nil, "", 401, httpapi.CodeInvalidAPIKey, ""},
		{"malformed API key", "GET", "/api/v2/vault", apiKey("qs_live_short"), nil, "", 401, httpapi.CodeInvalidAPIKey, ""},
		{"unknown API key", "GET", "/api/v2/vault", apiKey("qs_live_" + strings.Repeat("A", 43)), nil, "", 401, httpapi.CodeInvalidAPIKey, ""},
		{"admin token as API key", "GET", "/api/v2/vault", "Authorization: Bearer " + adminToken, nil, "", 401, httpapi.CodeInvalidAPIKey, ""},
		{"bound key", "POST", "/api/v2/vault/seal", apiKey(bound), `{"credential_type":"api_key","name":"x","secret":{"token":"t"}}`, "", 403, httpapi.CodeForbidden, ""},
		{"wrong method", "PUT", "/api/v2/integrations", k, nil, "", 405, httpapi.CodeMethodNotAllowed, ""},
		{"unknown path", "GET", "/api/v2/nope", k, nil, "", 404, httpapi.CodeNotFound, ""},
		{"create tenant without name", "POST", "/api/v2/tenants", admin(), `{}`, "", 400, httpapi.CodeInvalidRequest, "name"},
		{"create tenant bad KEM key", "POST", "/api/v2/tenants", admin(), `{"name":"x","response_kem_public_key":"AAAA"}`, "", 400, httpapi.CodeInvalidRequest, "response_kem_public_key"},
		{"create tenant non-base64 KEM key", "POST", "/api/v2/tenants", admin(), `{"name":"x","response_kem_public_key":"%%%"}`, "", 400, httpapi.CodeInvalidRequest, "response_kem_public_key"},
		{"api key for unknown tenant", "POST", "/api/v2/tenants/" + id.New("ten") + "/api-keys", admin(), nil, "", 404, httpapi.CodeNotFound, ""},
		{"api key for malformed tenant", "POST", "/api/v2/tenants/acme/api-keys", admin(), nil, "", 404, httpapi.CodeNotFound, ""},
		{"api key bound to malformed id", "POST", "/api/v2/tenants/" + tn.id + "/api-keys", admin(), `{"integration_id":"x"}`, "", 400, httpapi.CodeInvalidRequest, "integration_id"},
		{"api key bound to unknown integration", "POST", "/api/v2/tenants/" + tn.id + "/api-keys", admin(), `{"integration_id":"` + id.New("int") + `"}`, "", 400, httpapi.CodeInvalidRequest, "integration_id"},
		{"api key with text body", "POST", "/api/v2/tenants/" + tn.id + "/api-keys", admin(), `{}`, "text/plain", 415, httpapi.CodeUnsupportedMedia, ""},
		{"audit bad limit", "GET", "/api/v2/audit/events?limit=0", k, nil, "", 400, httpapi.CodeInvalidRequest, "limit"},
		{"audit huge limit", "GET", "/api/v2/audit/events?limit=100000", k, nil, "", 400, httpapi.CodeInvalidRequest, "limit"},
		{"audit bad since", "GET", "/api/v2/audit/events?since=yesterday", k, nil, "", 400, httpapi.CodeInvalidRequest, "since"},
		{"audit bad cursor", "GET", "/api/v2/audit/events?after=xyz", k, nil, "", 400, httpapi.CodeInvalidRequest, "after"},
		{"audit bad integration", "GET", "/api/v2/audit/events?integration_id=nope", k, nil, "", 400, httpapi.CodeInvalidRequest, "integration_id"},
		{"audit unknown param", "GET", "/api/v2/audit/events?tenant_id=" + other.id, k, nil, "", 400, httpapi.CodeInvalidRequest, "tenant_id"},
		{"audit repeated param", "GET", "/api/v2/audit/events?limit=1&limit=2", k, nil, "", 400, httpapi.CodeInvalidRequest, "limit"},
		{"audit bad event id", "GET", "/api/v2/audit/events/evt_1", k, nil, "", 404, httpapi.CodeNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r response
			if tc.ct != "" {
				r = e.reqCT(tc.method, tc.path, tc.auth, tc.ct, tc.body.(string))
			} else {
				r = e.req(tc.method, tc.path, tc.auth, tc.body)
			}
			wantStatus(t, tc.name, r, tc.status, tc.code)
			if tc.code != "" && r.header.Get("Content-Type") != "application/json" {
				t.Errorf("error Content-Type %q", r.header.Get("Content-Type"))
			}
			if tc.field != "" && r.str(t, "field") != tc.field {
				t.Errorf("field %q, want %q (body %s)", r.str(t, "field"), tc.field, r.body)
			}
		})
	}
	if d := cmp.Diff(before, snapshot()); d != "" {
		t.Errorf("bad requests changed state (-before +after):\n%s", d)
	}
}

// reqCT sends a raw body with an explicit Content-Type.
func (e *env) reqCT(method, path, auth, ct, body string) response {
	e.t.Helper()
	return e.reqWith(method, path, auth, ct, body)
}

func TestAuditReads(t *testing.T) {
	e := newEnv(t, backendSQLite)
	tn, other := e.newTenant("acme"), e.newTenant("other")
	intID := id.New("int")
	ev1 := audit.Event{ID: id.New("aud"), TenantID: tn.id, IntegrationID: intID, Decision: "allow"}
	ev2 := audit.Event{ID: id.New("aud"), TenantID: tn.id, Decision: "deny"}
	evOther := audit.Event{ID: id.New("aud"), TenantID: other.id}
	e.audit.events = []audit.Event{ev1, ev2, evOther}
	e.audit.cps[tn.id] = []audit.SignedCheckpoint{{Note: "n", KeyID: "k", Signature: "s"}}

	after := id.New("aud")
	r := e.req("GET", "/api/v2/audit/events?integration_id="+intID+"&since=2026-11-29T00:00:00Z&limit=5&after="+after, apiKey(tn.key), nil)
	wantStatus(t, "list", r, http.StatusOK, "")
	if q := e.audit.lastQ; q.IntegrationID != intID || q.Limit != 5 || q.After != after || q.Since.IsZero() {
		t.Errorf("query passed to the store: %+v", q)
	}
	var list struct {
		Events []audit.Event `json:"events"`
		Next   string        `json:"next"`
	}
	decode(t, r, &list)
	if d := cmp.Diff([]audit.Event{ev1}, list.Events); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	r = e.req("GET", "/api/v2/audit/events/"+ev1.ID, apiKey(tn.key), nil)
	wantStatus(t, "proof", r, http.StatusOK, "")
	var p audit.Proof
	decode(t, r, &p)
	if p.Event.ID != ev1.ID || p.Checkpoint == nil || len(p.Following) != 2 {
		t.Errorf("proof %+v", p)
	}
	wantStatus(t, "other tenant's event", e.req("GET", "/api/v2/audit/events/"+evOther.ID, apiKey(tn.key), nil), http.StatusNotFound, httpapi.CodeNotFound)
	r = e.req("GET", "/api/v2/audit/checkpoints/latest", apiKey(tn.key), nil)
	wantStatus(t, "checkpoints", r, http.StatusOK, "")
	if !strings.Contains(string(r.body), `"checkpoints":[{"note":"n","key_id":"k","signature":"s"}]`) {
		t.Errorf("checkpoints body %s", r.body)
	}
	r = e.req("GET", "/api/v2/audit/checkpoints/latest", apiKey(other.key), nil)
	if !strings.Contains(string(r.body), `"checkpoints":[]`) {
		t.Errorf("empty checkpoints body %s", r.body)
	}
	e.audit.failing = true
	wantStatus(t, "audit store down", e.req("GET", "/api/v2/audit/events", apiKey(tn.key), nil), http.StatusServiceUnavailable, httpapi.CodeUnavailable)

	noAudit := newEnv(t, backendSQLite, func(_ *httpapi.Config, d *httpapi.Deps) { d.Audit = nil })
	tn2 := noAudit.newTenant("x")
	wantStatus(t, "no audit configured", noAudit.req("GET", "/api/v2/audit/checkpoints/latest", apiKey(tn2.key), nil), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
}

func TestPublicEndpoints(t *testing.T) {
	sk, _ := envelope.GenerateSigningKey(nil)
	ready := error(nil)
	e := newEnv(t, backendSQLite, func(c *httpapi.Config, d *httpapi.Deps) {
		d.SigningKeys = func() []httpapi.SigningKeyInfo {
			return []httpapi.SigningKeyInfo{{KeyID: sk.KeyID(), PublicKey: sk.Public().Bytes(), Current: true}}
		}
		c.Readiness = func(context.Context) error { return ready }
		d.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics")) })
	})
	r := e.req("GET", "/api/v2/signing-keys", "", nil)
	wantStatus(t, "signing keys", r, http.StatusOK, "")
	var keys struct {
		Keys []struct {
			KeyID     string `json:"key_id"`
			Algorithm string `json:"algorithm"`
			PublicKey string `json:"public_key"`
			Current   bool   `json:"current"`
		} `json:"keys"`
	}
	decode(t, r, &keys)
	if len(keys.Keys) != 1 || keys.Keys[0].Algorithm != "ML-DSA-65" || !keys.Keys[0].Current || keys.Keys[0].KeyID != sk.KeyID() {
		t.Fatalf("signing keys %s", r.body)
	}
	pub, _ := base64.StdEncoding.DecodeString(keys.Keys[0].PublicKey)
	if envelope.KeyID(pub) != sk.KeyID() {
		t.Fatal("public key does not match its key id")
	}
	wantStatus(t, "healthz", e.req("GET", "/healthz", "", nil), http.StatusOK, "")
	wantStatus(t, "readyz", e.req("GET", "/readyz", "", nil), http.StatusOK, "")
	ready = errDraining
	wantStatus(t, "readyz draining", e.req("GET", "/readyz", "", nil), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	wantStatus(t, "healthz while draining", e.req("GET", "/healthz", "", nil), http.StatusOK, "")
	r = e.req("GET", "/metrics", "", nil)
	if r.status != http.StatusOK || string(r.body) != "metrics" {
		t.Fatalf("metrics hook: %d %s", r.status, r.body)
	}
	if r := e.req("GET", "/healthz", "", nil); r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
}

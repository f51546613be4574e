package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/client"
	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/okta/oktatest"
)

// ids extracts the "id" members of a JSON array of objects.
func ids(t *testing.T, body []byte) []string {
	t.Helper()
	var items []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &items); err != nil {
		t.Fatalf("decrypted body is not a JSON array: %v: %.200s", err, body)
	}
	out := []string{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// outbound calls the Go client and checks the verified, decrypted result.
func (w *world) outbound(t *testing.T, integration, op string, payload any, wantStatus int) *client.Result {
	t.Helper()
	res, err := w.client.Outbound(t.Context(), integration, op, payload)
	if err != nil {
		t.Fatalf("Outbound(%s): %v", op, err)
	}
	if res.Status != wantStatus || res.Success != (wantStatus/100 == 2) {
		t.Fatalf("Outbound(%s): status %d success %v, want %d: %.300s", op, res.Status, res.Success, wantStatus, res.Body)
	}
	if !strings.HasPrefix(res.AuditEventID, "aud_") || res.Envelope == nil {
		t.Errorf("Outbound(%s): audit_event_id %q, envelope %v", op, res.AuditEventID, res.Envelope != nil)
	}
	return res
}

// lastAPIRequest returns the double's last /api/ request since index before.
func (w *world) lastAPIRequest(t *testing.T, before int) oktatest.Request {
	t.Helper()
	reqs := apiRequests(w.okta.Requests()[before:])
	if len(reqs) == 0 {
		t.Fatal("no API request reached the double")
	}
	return reqs[len(reqs)-1]
}

// testOutbound is issue 6 item 3: the Go client's Outbound returns verified, decrypted
// data for every operation, with the private_key_jwt credential.
func (w *world) testOutbound(t *testing.T) {
	integ := w.ints[intOutbound]

	t.Run("documented_example", func(t *testing.T) {
		// ARCHITECTURE.md "Outbound API", verbatim.
		before := len(w.okta.Requests())
		res := w.outbound(t, integ, "list_users", map[string]any{
			"filter": `status eq "ACTIVE"`, "limit": 25, "search": `profile.department eq "Engineering"`,
		}, 200)
		want := []string{oktatest.UserAlice, oktatest.UserBob, oktatest.UserFrank}
		if diff := cmp.Diff(want, ids(t, res.Body)); diff != "" {
			t.Errorf("ACTIVE engineers (-want +got):\n%s", diff)
		}
		r := w.lastAPIRequest(t, before)
		q, _ := url.ParseQuery(r.RawQuery)
		wantQ := url.Values{"filter": {`status eq "ACTIVE"`}, "limit": {"25"}, "search": {`profile.department eq "Engineering"`}}
		if r.Method != "GET" || r.Path != "/api/v1/users" || !cmp.Equal(wantQ, q) {
			t.Errorf("upstream call %s %s?%s, want GET /api/v1/users with %v", r.Method, r.Path, r.RawQuery, wantQ)
		}
		if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "Bearer ") && !strings.HasPrefix(auth, "DPoP ") {
			t.Errorf("upstream Authorization scheme %.8q…, want an OAuth access token", auth)
		}
	})

	t.Run("pagination", func(t *testing.T) {
		var got []string
		payload := map[string]any{"limit": 2}
		for page := 0; ; page++ {
			res := w.outbound(t, integ, "list_users", payload, 200)
			got = append(got, ids(t, res.Body)...)
			if res.Next == "" {
				break
			}
			if page > 5 {
				t.Fatal("pagination does not end")
			}
			payload = map[string]any{"limit": 2, "after": res.Next}
		}
		want := []string{oktatest.UserAlice, oktatest.UserBob, oktatest.UserCarol, oktatest.UserDave, oktatest.UserFrank, oktatest.UserSlash}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("users across pages (-want +got):\n%s", diff)
		}
	})

	t.Run("get_user", func(t *testing.T) {
		for _, id := range []string{oktatest.UserAlice, "alice@example.com"} {
			res := w.outbound(t, integ, "get_user", map[string]any{"id": id}, 200)
			var u struct{ ID string }
			if err := json.Unmarshal(res.Body, &u); err != nil || u.ID != oktatest.UserAlice {
				t.Errorf("get_user %q: %v %.200s", id, err, res.Body)
			}
		}
		// An upstream error is an envelope too: success false and Okta's status.
		res := w.outbound(t, integ, "get_user", map[string]any{"id": "nobody@example.com"}, 404)
		var oe struct{ ErrorCode string }
		if err := json.Unmarshal(res.Body, &oe); err != nil || oe.ErrorCode != "E0000007" {
			t.Errorf("404 body: %v %.200s", err, res.Body)
		}
	})

	t.Run("create_and_deactivate_user", func(t *testing.T) {
		login := "outbound." + randHex(t, 4) + "@example.com"
		before := len(w.okta.Requests())
		res := w.outbound(t, integ, "create_user", map[string]any{
			"profile":  map[string]any{"firstName": "Out", "lastName": "Bound", "email": login, "login": login},
			"activate": false,
		}, 200)
		var u struct {
			ID      string
			Status  string
			Profile struct{ Login string }
		}
		if err := json.Unmarshal(res.Body, &u); err != nil || u.ID == "" || u.Profile.Login != login {
			t.Fatalf("create_user: %v %.300s", err, res.Body)
		}
		r := w.lastAPIRequest(t, before)
		if r.Method != "POST" || r.Path != "/api/v1/users" || !strings.Contains(r.RawQuery, "activate=false") {
			t.Errorf("upstream call %s %s?%s, want POST /api/v1/users?activate=false", r.Method, r.Path, r.RawQuery)
		}
		w.outbound(t, integ, "deactivate_user", map[string]any{"id": u.ID}, 200)
		if st, _ := w.okta.UserStatus(u.ID); st != "DEPROVISIONED" {
			t.Errorf("status at the double = %q, want DEPROVISIONED", st)
		}
	})

	t.Run("list_groups", func(t *testing.T) {
		res := w.outbound(t, integ, "list_groups", map[string]any{"search": `type eq "OKTA_GROUP"`}, 200)
		if got := ids(t, res.Body); len(got) != 2 {
			t.Errorf("OKTA_GROUP groups = %v, want 2", got)
		}
	})

	t.Run("list_applications", func(t *testing.T) {
		before := len(w.okta.Requests())
		res := w.outbound(t, integ, "list_applications", map[string]any{"user_id": oktatest.UserBob}, 200)
		if diff := cmp.Diff([]string{oktatest.AppOIDC}, ids(t, res.Body)); diff != "" {
			t.Errorf("bob's apps (-want +got):\n%s", diff)
		}
		r := w.lastAPIRequest(t, before)
		if q, _ := url.ParseQuery(r.RawQuery); q.Get("filter") != `user.id eq "`+oktatest.UserBob+`"` {
			t.Errorf("upstream query %q: user_id must become filter=user.id eq \"…\"", r.RawQuery)
		}
	})

	t.Run("get_system_log", func(t *testing.T) {
		res := w.outbound(t, integ, "get_system_log", map[string]any{
			"since": "2024-08-13T00:00:00.000Z", "until": "2024-08-14T00:00:00.000Z", "limit": 10,
		}, 200)
		var events []struct{ EventType string }
		if err := json.Unmarshal(res.Body, &events); err != nil || len(events) != 5 {
			t.Errorf("log events: %v, %d, want 5", err, len(events))
		}
	})

	// Transparent mode with Accept: application/vnd.quantaseal.envelope+json answers an
	// envelope that client.Open verifies and decrypts (ARCHITECTURE.md "Two ways to call").
	t.Run("transparent_envelope", func(t *testing.T) {
		resp, body := w.send(t, "GET", "/api/v1/users?limit=2", nil,
			"X-API-Key", w.tenant.APIKey, "X-QuantaSeal-Integration", integ, "Accept", envelope.MediaType)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), envelope.MediaType) {
			t.Fatalf("HTTP %d, Content-Type %q, want 200 and an envelope: %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		plain, env, err := client.Open(body, w.tenant.Profile)
		if err != nil {
			t.Fatalf("client.Open: %v", err)
		}
		if diff := cmp.Diff([]string{oktatest.UserAlice, oktatest.UserBob}, ids(t, plain)); diff != "" {
			t.Errorf("users (-want +got):\n%s", diff)
		}
		if env.Next != oktatest.UserBob || env.AuditEventID != resp.Header.Get("X-QuantaSeal-Audit-Event") {
			t.Errorf("envelope next %q audit %q, want next %q and the X-QuantaSeal-Audit-Event id %q",
				env.Next, env.AuditEventID, oktatest.UserBob, resp.Header.Get("X-QuantaSeal-Audit-Event"))
		}
	})

	t.Run("token_fetched_with_private_key_jwt", func(t *testing.T) {
		var n int
		for _, r := range w.okta.Requests() {
			if r.Path != "/oauth2/v1/token" {
				continue
			}
			form, _ := url.ParseQuery(r.RawQuery)
			body, _ := url.ParseQuery(string(r.Body))
			for k, v := range body {
				form[k] = append(form[k], v...)
			}
			if form.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" && form.Get("client_assertion") != "" {
				n++
			}
		}
		if n == 0 {
			t.Error("no private_key_jwt token request reached the double")
		}
	})
}

// testTokenErrors is issue 6 item 4: invalid_client and insufficient_scope reach the
// caller with the status and JSON of ARCHITECTURE.md, on the outbound API and in
// transparent mode.
func (w *world) testTokenErrors(t *testing.T) {
	const invalidClientMsg = "The OAuth2 client secret in QuantaVault is incorrect or has been rotated in Okta. " +
		"Generate a new client secret in the Okta Admin Console and update the vault entry."
	const insufficientScopeMsg = "The service app does not have the required Okta Management API scope (okta.users.read). " +
		"Add the missing scope in the Okta Admin Console under the app's OAuth2 scopes configuration."
	cases := []struct {
		name, integration, op, path string
		status                      int
		code, message               string
	}{
		// A wrong client secret: the documented text; the gateway may append a note
		// about private_key_jwt (see checkMessage).
		{"invalid_client", intBadSecret, "list_users", "/api/v1/users", http.StatusUnauthorized, "invalid_client", invalidClientMsg},
		// A private key the app does not hold: exactly the documented text.
		{"invalid_client_private_key", intBadKey, "list_users", "/api/v1/users", http.StatusUnauthorized, "invalid_client", invalidClientMsg},
		{"insufficient_scope", intNoScope, "list_users", "/api/v1/users", http.StatusForbidden, "insufficient_scope", insufficientScopeMsg},
	}
	for _, c := range cases {
		integ := w.ints[c.integration]
		t.Run(c.name+"/outbound", func(t *testing.T) {
			before := apiRequests(w.okta.Requests())
			_, err := w.client.Outbound(t.Context(), integ, c.op, nil)
			var ae *client.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("Outbound: %v, want an APIError", err)
			}
			checkMessage(t, c.name, ae.Message, c.message)
			if ae.Status != c.status || ae.Code != c.code || ae.IntegrationID != integ ||
				!strings.HasPrefix(ae.AuditEventID, "aud_") {
				t.Errorf("got %d %q %q integration %q audit %q\nwant %d %q %q integration %q audit aud_…",
					ae.Status, ae.Code, ae.Message, ae.IntegrationID, ae.AuditEventID, c.status, c.code, c.message, integ)
			}
			w.checkNoUpstreamWithoutScope(t, before, c.name)
		})
		t.Run(c.name+"/transparent", func(t *testing.T) {
			before := apiRequests(w.okta.Requests())
			resp, body := w.send(t, "GET", c.path, nil, "X-API-Key", w.tenant.APIKey, "X-QuantaSeal-Integration", integ)
			e := checkDenied(t, resp, body, c.status, c.code)
			checkMessage(t, c.name, e.Message, c.message)
			if e.IntegrationID != integ {
				t.Errorf("integration_id %q, want %q", e.IntegrationID, integ)
			}
			var raw map[string]any
			_ = json.Unmarshal(body, &raw)
			for _, k := range []string{"error", "message", "integration_id", "audit_event_id"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("error body lacks %q: %s", k, body)
				}
			}
			w.checkNoUpstreamWithoutScope(t, before, c.name)
		})
	}

	// The invalid_client message says to update the vault entry: rotating the sealed
	// secret to the right one must make the same integration work, without a restart
	// (rotation drops cached tokens and failures).
	t.Run("rotation_fixes_invalid_client", func(t *testing.T) {
		var out struct {
			CredentialID string  `json:"credential_id"`
			RotatedAt    *string `json:"rotated_at"`
		}
		w.api.mustJSON(t, "POST", "/api/v2/vault/"+w.creds[intBadSecret]+"/rotate", keyAuth(w.tenant.APIKey),
			map[string]any{"secret": map[string]string{"client_id": w.badClientID, "client_secret": w.goodSecret}},
			http.StatusOK, &out, false)
		if out.CredentialID != w.creds[intBadSecret] || out.RotatedAt == nil {
			t.Errorf("rotate answer: credential_id %q rotated_at %v", out.CredentialID, out.RotatedAt)
		}
		res := w.outbound(t, w.ints[intBadSecret], "list_users", map[string]any{"limit": 1}, 200)
		if got := ids(t, res.Body); len(got) != 1 {
			t.Errorf("users = %v, want 1", got)
		}
	})

	t.Run("insufficient_scope_fails_alone", func(t *testing.T) {
		// The same app holds okta.groups.read: list_groups works on that integration.
		res := w.outbound(t, w.ints[intNoScope], "list_groups", nil, 200)
		if got := ids(t, res.Body); len(got) != 4 {
			t.Errorf("groups = %v, want 4", got)
		}
	})
}

// checkMessage compares an error message with ARCHITECTURE.md's text. For a wrong
// client secret the gateway appends a sentence (extproc clientSecretNote: Okta's org
// authorization server only accepts private_key_jwt for okta.* scopes); that deviation
// from the documented text is logged, not failed, and reported to the lead. Everything
// else must match exactly.
func checkMessage(t *testing.T, name, got, want string) {
	t.Helper()
	switch {
	case got == want:
	case name == "invalid_client" && strings.HasPrefix(got, want+" "):
		t.Logf("DEVIATION from ARCHITECTURE.md: invalid_client message has an extra sentence: %q", strings.TrimPrefix(got, want))
	default:
		t.Errorf("message\n%q\nwant ARCHITECTURE.md's\n%q", got, want)
	}
}

// checkNoUpstreamWithoutScope: a failed token fetch never reaches the API; an
// insufficient_scope may have been detected from Okta's 403, but then nothing else.
func (w *world) checkNoUpstreamWithoutScope(t *testing.T, before []oktatest.Request, name string) {
	t.Helper()
	after := apiRequests(w.okta.Requests())
	extra := after[len(before):]
	switch {
	case strings.HasPrefix(name, "invalid_client") && len(extra) != 0:
		t.Errorf("%d API request(s) reached the double without a token", len(extra))
	case len(extra) > 1:
		t.Errorf("%d API requests reached the double for one call", len(extra))
	}
}

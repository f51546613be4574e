package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/quantaseal/gateway/client"
	"github.com/quantaseal/gateway/okta/oktatest"
)

// gatewayError is the JSON error body of ARCHITECTURE.md "Errors".
type gatewayError struct {
	Error         string `json:"error"`
	Message       string `json:"message"`
	Field         string `json:"field"`
	IntegrationID string `json:"integration_id"`
	AuditEventID  string `json:"audit_event_id"`
}

// send makes one raw HTTP call through the fake Envoy. rawPath is sent exactly as
// given (no client-side cleaning of "..", "//" or escapes).
func (w *world) send(t *testing.T, method, rawPath string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	base, err := url.Parse(w.envoy.URL())
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, w.envoy.URL(), rd)
	if err != nil {
		t.Fatal(err)
	}
	path, query, _ := strings.Cut(rawPath, "?")
	req.URL = &url.URL{Scheme: base.Scheme, Host: base.Host, Opaque: path, RawQuery: query}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.envoy.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawPath, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// checkDenied checks a gateway denial: status, JSON code, a message, and the audit id
// both in the body and in X-QuantaSeal-Audit-Event.
func checkDenied(t *testing.T, resp *http.Response, body []byte, wantStatus int, wantCode string) gatewayError {
	t.Helper()
	var e gatewayError
	if resp.StatusCode != wantStatus {
		t.Errorf("HTTP %d, want %d: %s", resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Errorf("error body %q: %v", body, err)
		return e
	}
	if e.Error != wantCode || e.Message == "" {
		t.Errorf("error %q (message %q), want %q", e.Error, e.Message, wantCode)
	}
	if !strings.HasPrefix(e.AuditEventID, "aud_") || resp.Header.Get("X-QuantaSeal-Audit-Event") != e.AuditEventID {
		t.Errorf("audit_event_id %q, X-QuantaSeal-Audit-Event %q: want the same aud_… id",
			e.AuditEventID, resp.Header.Get("X-QuantaSeal-Audit-Event"))
	}
	return e
}

// catalogueClean matches the upstream paths a request for intLimited (list_users,
// get_user) may legitimately reach: /api/v1/users or /api/v1/users/{one clean segment}.
var catalogueClean = regexp.MustCompile(`^/api/v1/users(/[A-Za-z0-9._~+@-]+|/[A-Za-z0-9._~+-]*%40[A-Za-z0-9._~+-]+)?$`)

// oneUserSegment reports whether an escaped path is /api/v1/users/{id} with the id one
// segment that is not a dot segment once unescaped ("%2F" inside a segment is data to
// Okta, okta-api.md §1.2).
func oneUserSegment(escapedPath string) bool {
	seg, ok := strings.CutPrefix(escapedPath, "/api/v1/users/")
	if !ok || seg == "" || strings.Contains(seg, "/") {
		return false
	}
	v, err := url.PathUnescape(seg)
	return err == nil && v != "." && v != ".."
}

// testPolicy is issue 6 item 2: default deny. Calls outside allowed_operations get 403
// and never reach the double; path tricks never reach a non-catalogue endpoint.
func (w *world) testPolicy(t *testing.T) {
	key := w.boundKeys[intLimited]
	denials := []struct {
		name, method, path string
		body               []byte
		status             int
		code               string
	}{
		{"catalogue_op_not_allowed", "GET", "/api/v1/groups", nil, 403, "operation_not_allowed"},
		{"apps_not_allowed", "GET", "/api/v1/apps?filter=user.id+eq+%2200u1%22", nil, 403, "operation_not_allowed"},
		{"create_user_not_allowed", "POST", "/api/v1/users?activate=false", []byte(`{"profile":{"login":"x@example.com"}}`), 403, "operation_not_allowed"},
		{"deactivate_not_allowed", "POST", "/api/v1/users/" + oktatest.UserAlice + "/lifecycle/deactivate", nil, 403, "operation_not_allowed"},
		{"not_in_catalogue", "GET", "/api/v1/users/" + oktatest.UserAlice + "/factors", nil, 403, "unknown_operation"},
		{"method_not_in_catalogue", "DELETE", "/api/v1/users/" + oktatest.UserAlice, nil, 403, "unknown_operation"},
		{"other_api", "GET", "/api/v1/authorizationServers", nil, 403, "unknown_operation"},
		{"token_endpoint", "POST", "/oauth2/v1/token?grant_type=client_credentials", nil, 403, "unknown_operation"},
	}
	for _, d := range denials {
		t.Run(d.name, func(t *testing.T) {
			before := len(w.okta.Requests())
			resp, body := w.send(t, d.method, d.path, d.body, "Authorization", "SSWS "+key)
			e := checkDenied(t, resp, body, d.status, d.code)
			if e.IntegrationID != "" && e.IntegrationID != w.ints[intLimited] {
				t.Errorf("integration_id %q, want %q", e.IntegrationID, w.ints[intLimited])
			}
			if n := len(w.okta.Requests()) - before; n != 0 {
				t.Errorf("%d request(s) reached the double", n)
			}
		})
	}

	t.Run("wrong_api_key", func(t *testing.T) {
		before := len(w.okta.Requests())
		for _, h := range [][]string{
			{"Authorization", "SSWS qs_live_" + randHex(t, 16)},
			{"X-API-Key", "qs_live_" + randHex(t, 16)},
			{"Authorization", "SSWS " + w.oktaToken}, // the real Okta token is not a gateway key
			{},
		} {
			resp, body := w.send(t, "GET", "/api/v1/users", nil, h...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%v: HTTP %d, want 401: %s", h, resp.StatusCode, body)
			}
			var e gatewayError
			if json.Unmarshal(body, &e) != nil || e.Error != "invalid_api_key" {
				t.Errorf("%v: body %s, want error invalid_api_key", h, body)
			}
		}
		if n := len(w.okta.Requests()) - before; n != 0 {
			t.Errorf("%d request(s) reached the double", n)
		}
	})

	// Isolation: a key bound to one integration cannot use another, another tenant's
	// key cannot use this tenant's integrations, and a bound (data-plane) key cannot
	// manage the tenant. The codes are not in ARCHITECTURE.md's table; any 403 or 404
	// without forwarding passes.
	t.Run("isolation", func(t *testing.T) {
		other := w.otherTenant(t)
		before := len(w.okta.Requests())
		for _, c := range []struct {
			name string
			hdr  []string
		}{
			{"bound_key_other_integration", []string{"Authorization", "SSWS " + key, "X-QuantaSeal-Integration", w.ints[intSDK]}},
			{"other_tenant_key", []string{"X-API-Key", other.APIKey, "X-QuantaSeal-Integration", w.ints[intSDK]}},
			{"other_tenant_key_by_host", []string{"Authorization", "SSWS " + other.APIKey}},
		} {
			resp, body := w.send(t, "GET", "/api/v1/groups", nil, c.hdr...)
			var e gatewayError
			_ = json.Unmarshal(body, &e)
			if (resp.StatusCode != 403 && resp.StatusCode != 404) || e.Error == "" {
				t.Errorf("%s: HTTP %d %s, want a 403 or 404 JSON error", c.name, resp.StatusCode, body)
			} else {
				t.Logf("%s: %d %s", c.name, resp.StatusCode, e.Error)
			}
		}
		oc, err := client.New(client.Config{BaseURL: w.envoy.URL(), Profile: other.Profile, HTTPClient: w.envoy.Client()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = oc.Outbound(t.Context(), w.ints[intOutbound], "list_users", nil)
		var ae *client.APIError
		if !errors.As(err, &ae) || (ae.Status != 403 && ae.Status != 404) {
			t.Errorf("other tenant's Outbound on this tenant's integration: %v, want a 403 or 404 APIError", err)
		}
		if n := len(w.okta.Requests()) - before; n != 0 {
			t.Errorf("%d request(s) reached the double", n)
		}
		status, body := w.api.call(t, "GET", "/api/v2/integrations", keyAuth(key), nil, false)
		if status != http.StatusForbidden {
			t.Errorf("bound key on GET /api/v2/integrations: HTTP %d, want 403: %s", status, body)
		}
	})

	tricks := []string{
		"/api/v1/users/../groups",
		"/api/v1/users/./../groups",
		"/api/v1/users/%2e%2e/groups",
		"/api/v1/users/..%2Fgroups",
		"/api/v1/users%2F..%2Fgroups",
		"/api/v1/users/" + oktatest.UserAlice + "%2F..%2F..%2Fgroups",
		"/api/v1/users/" + oktatest.UserAlice + "%2ffactors",
		"/api/v1//groups",
		"/api//v1/users/../apps",
		"/api/v1/users//" + oktatest.UserAlice + "/factors",
		"/api/v1/users/" + oktatest.UserAlice + "/lifecycle/../../../groups",
		"/api/v1/users%5C..%5Cgroups",
		"/api/v1/users/%252e%252e/groups",
		"/api/v1/users;/../groups",
		"/api/v1/users/..;/groups",
	}
	for _, p := range tricks {
		t.Run("path_trick"+strings.NewReplacer("/", "_", "%", "x", ".", "d", ";", "s").Replace(p), func(t *testing.T) {
			before := len(w.okta.Requests())
			resp, body := w.send(t, "GET", p, nil, "Authorization", "SSWS "+key)
			reached := w.okta.Requests()[before:]
			if len(reached) == 0 {
				var e gatewayError
				_ = json.Unmarshal(body, &e)
				if resp.StatusCode < 400 || resp.StatusCode >= 500 || e.Error == "" {
					t.Errorf("not forwarded but HTTP %d: %s", resp.StatusCode, body)
				}
				t.Logf("%s: %d %s", p, resp.StatusCode, e.Error)
				return
			}
			// Forwarded: only acceptable if what reached the double is a clean path of an
			// allowed catalogue operation (a normalised request).
			for _, r := range reached {
				if r.Method != "GET" || !catalogueClean.MatchString(r.Path) {
					t.Errorf("%s reached the double as %s %s (HTTP %d to the caller)", p, r.Method, r.Path, resp.StatusCode)
				} else {
					t.Logf("%s was forwarded as GET %s (HTTP %d)", p, r.Path, resp.StatusCode)
				}
			}
		})
	}

	t.Run("outbound_denials", func(t *testing.T) {
		before := len(w.okta.Requests())
		limited := w.ints[intLimited]
		cases := []struct {
			name, integration, op string
			payload               any
			status                int
			code, field           string
		}{
			{"not_allowed", limited, "list_groups", nil, 403, "operation_not_allowed", ""},
			{"not_allowed_state_changing", limited, "deactivate_user", map[string]any{"id": oktatest.UserAlice}, 403, "operation_not_allowed", ""},
			{"unknown_operation", limited, "delete_user", map[string]any{"id": oktatest.UserAlice}, 403, "unknown_operation", ""},
			{"bad_limit", limited, "list_users", map[string]any{"limit": 500}, 400, "invalid_payload", "limit"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := w.client.Outbound(t.Context(), c.integration, c.op, c.payload)
				var ae *client.APIError
				if !errors.As(err, &ae) {
					t.Fatalf("Outbound(%s): %v, want an APIError", c.op, err)
				}
				if ae.Status != c.status || ae.Code != c.code || (c.field != "" && ae.Field != c.field) {
					t.Errorf("Outbound(%s): %d %s field %q, want %d %s field %q", c.op, ae.Status, ae.Code, ae.Field, c.status, c.code, c.field)
				}
				if !strings.HasPrefix(ae.AuditEventID, "aud_") {
					t.Errorf("Outbound(%s): audit_event_id %q", c.op, ae.AuditEventID)
				}
			})
		}
		if n := len(w.okta.Requests()) - before; n != 0 {
			t.Errorf("%d request(s) reached the double", n)
		}
	})

	// An id that tries to climb out of /api/v1/users/{id}: the gateway may refuse it
	// (400 invalid_payload) or escape it into one segment, but the double must never
	// see another endpoint.
	t.Run("outbound_id_traversal", func(t *testing.T) {
		for _, id := range []string{"../groups", "../../api/v1/groups", "x/../../groups", "..%2Fgroups"} {
			before := len(w.okta.Requests())
			res, err := w.client.Outbound(t.Context(), w.ints[intLimited], "get_user", map[string]any{"id": id})
			var ae *client.APIError
			switch {
			case errors.As(err, &ae):
				if ae.Status != 400 || ae.Code != "invalid_payload" {
					t.Errorf("id %q: %d %s, want 400 invalid_payload or an escaped upstream call", id, ae.Status, ae.Code)
				}
			case err != nil:
				t.Errorf("id %q: %v", id, err)
			default:
				t.Logf("id %q: forwarded, upstream status %d", id, res.Status)
			}
			for _, r := range w.okta.Requests()[before:] {
				if r.Method != "GET" || !oneUserSegment(r.Path) {
					t.Errorf("id %q reached the double as %s %s", id, r.Method, r.Path)
				}
			}
		}
	})
}

package reliability

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/quantaseal/gateway/internal/gatewaytest"
	"github.com/quantaseal/gateway/okta/oktatest"
)

// catalogue is every upstream path shape of the Okta catalogue (ARCHITECTURE.md): one
// segment ids without dots-only values or encoded slashes.
var catalogue = []*regexp.Regexp{
	regexp.MustCompile(`^GET /api/v1/users$`),
	regexp.MustCompile(`^POST /api/v1/users$`),
	regexp.MustCompile(`^GET /api/v1/users/[^/]+$`),
	regexp.MustCompile(`^POST /api/v1/users/[^/]+/lifecycle/deactivate$`),
	regexp.MustCompile(`^GET /api/v1/groups$`),
	regexp.MustCompile(`^GET /api/v1/apps$`),
	regexp.MustCompile(`^GET /api/v1/logs$`),
}

// inCatalogue reports whether an upstream request is a catalogue call: its shape
// matches and no segment is "." or ".." or hides a slash or a dot segment.
func inCatalogue(method, escapedPath string) bool {
	low := strings.ToLower(escapedPath)
	if strings.Contains(low, "%2f") || strings.Contains(low, "%5c") || strings.Contains(low, "%2e") || strings.Contains(low, "//") {
		return false
	}
	for _, seg := range strings.Split(escapedPath, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	for _, re := range catalogue {
		if re.MatchString(method + " " + escapedPath) {
			return true
		}
	}
	return false
}

// TestAbuse seeds two tenants (and a private_key_jwt integration, so that every kind of
// secret is in play), then tries path and header tricks, wrong and foreign API keys and
// cross-tenant access on every endpoint and through the processor. Nothing may reach a
// non-catalogue Okta endpoint or a host other than the integration's; foreign ids are
// indistinguishable from missing ones; failures are audited without the presented key.
// Finally every seeded or issued secret is searched for in everything the run produced:
// gateway logs, the audit export, /metrics, every response the clients saw (headers and
// bodies) and the database.
func TestAbuse(t *testing.T) {
	w := newWorld(t, worldOptions{})
	api := w.api
	limitedCred := api.SealCredential(t, w.tenant.APIKey, "api_key", "limited token", map[string]string{"token": w.secrets["okta_api_token"]})
	intLimited := api.CreateIntegration(t, w.tenant.APIKey, "limited", w.front.URL(), limitedCred, []string{"get_user", "list_users"})
	_, boundKey := api.CreateKey(t, w.gw.AdminToken, w.tenant.ID, intLimited)
	w.secrets["bound_api_key"] = boundKey

	// A private_key_jwt app (the double checks the assertion's audience against its own
	// origin, so this integration talks to the double directly for tokens).
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	w.secrets["okta_private_key"] = pemKey
	pkClient := "0oapk" + gatewaytest.RandomHex(t, 6)
	w.okta.AddClient(oktatest.Client{ID: pkClient, Keys: map[string]crypto.PublicKey{"rel-kid": &rsaKey.PublicKey},
		GrantedScopes: []string{oktatest.ScopeUsersRead}})
	pkCred := api.SealCredential(t, w.tenant.APIKey, "oauth2_client", "pk app", map[string]string{
		"client_id": pkClient, "private_key": pemKey, "private_key_id": "rel-kid"})
	_ = pkCred

	// Tenant B, with its own integration and an audited call.
	b := api.CreateTenant(t, w.gw.AdminToken, "other")
	w.secrets["tenant_b_api_key"] = b.APIKey
	w.secrets["tenant_b_hmac_key"] = string(b.HMACKey)
	bCred := api.SealCredential(t, b.APIKey, "api_key", "b token", map[string]string{"token": w.secrets["okta_api_token"]})
	bInt := api.CreateIntegration(t, b.APIKey, "b", w.front.URL(), bCred, []string{"list_users"})
	bCall := w.raw(t.Context(), "GET", "/api/v1/users?limit=1", nil, http.Header{"Authorization": {"SSWS " + b.APIKey}, "X-Quantaseal-Integration": {bInt}})
	if bCall.status != http.StatusOK || bCall.auditID() == "" {
		t.Fatalf("tenant B call: %d %s", bCall.status, bCall.body)
	}
	bEvent := bCall.auditID()

	// Normal traffic on every credential kind, so that tokens are issued and cached.
	for _, in := range []string{w.intSSWS, w.intOAuth} {
		if r := w.call(t.Context(), in, "GET", "/api/v1/users?limit=1", nil, nil); r.status != http.StatusOK {
			t.Fatalf("call on %s: %d %s", in, r.status, r.body)
		}
	}
	faults := 0

	t.Run("path tricks", func(t *testing.T) {
		paths := []string{
			"/api/v1/users/../apps", "/api/v1/users/..%2Fapps", "/api/v1/users/%2e%2e/apps", "/api/v1/users/%2E%2E%2Fapps",
			"/api/v1/users%2F00u1", "/api/v1/users/00u1%2Froles", "//api/v1/users", "/api/v1//users", "/api/v1/users/",
			"/api/v1/users/00u1/../../apps", "/api/v1/users/./00u1", "/api/v1/users/00u1/roles", "/api/v1/users/00u1/lifecycle/deactivate/../delete",
			"/API/V1/USERS", "/api/v1/users;jsessionid=1", "/api/v1/users%00", "/api/v1/users%5C..%5Capps", "/api/v2/users",
			"/oauth2/v1/token", "/oauth2/default/v1/token", "/api/v1/apps", "/api/v1/groups", "/api/v1/logs", "/.well-known/okta-organization",
			"/api/v1/users/00u1?x=/../../apps", "/api/v1/users/%252e%252e%252fapps", "/api/v1/users/\u2025", "/api/v1/authorizationServers",
		}
		for _, m := range []string{"GET", "DELETE", "PUT", "POST", "PATCH"} {
			for _, p := range paths {
				faults++
				var body []byte
				if m != "GET" && m != "DELETE" {
					body = []byte(`{}`)
				}
				r := w.call(t.Context(), intLimited, m, p, body, nil)
				if r.err != nil {
					continue // refused by the client or the fake Envoy's HTTP server
				}
				if r.status < 400 && !(m == "GET" && (p == "/api/v1/users/00u1?x=/../../apps")) {
					t.Errorf("%s %s on the limited integration: %d, want a denial", m, p, r.status)
				}
			}
		}
	})

	t.Run("header tricks", func(t *testing.T) {
		before := w.front.Count(gatewaytest.ClassAPI)
		key := "SSWS " + w.tenant.APIKey
		cases := []struct {
			name string
			h    http.Header
			want int
		}{
			{"duplicate Authorization", http.Header{"Authorization": {key, "SSWS " + boundKey}}, 400},
			{"duplicate identical Authorization", http.Header{"Authorization": {key, key}}, 400},
			{"Authorization and a different X-API-Key", http.Header{"Authorization": {key}, "X-Api-Key": {boundKey}}, 400},
			{"real Okta token as the key", http.Header{"Authorization": {"SSWS " + w.secrets["okta_api_token"]}}, 401},
			{"Bearer Okta-looking token", http.Header{"Authorization": {"Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"}}, 401},
			{"Basic auth", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, 401},
			{"no key", http.Header{}, 401},
			{"foreign integration header", http.Header{"Authorization": {key}, "X-Quantaseal-Integration": {bInt}}, 404},
			{"two integration headers", http.Header{"Authorization": {key}, "X-Quantaseal-Integration": {w.intSSWS, bInt}}, 400},
			{"bound key, other integration", http.Header{"Authorization": {"SSWS " + boundKey}, "X-Quantaseal-Integration": {w.intSSWS}}, 403},
			{"tenant B key, tenant A integration", http.Header{"Authorization": {"SSWS " + b.APIKey}, "X-Quantaseal-Integration": {w.intSSWS}}, 404},
		}
		for _, c := range cases {
			faults++
			r := w.raw(t.Context(), "GET", "/api/v1/users?limit=1", nil, c.h)
			if r.status != c.want {
				t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.want)
			}
			if r.auditID() == "" {
				t.Errorf("%s: denial without audit_event_id: %s", c.name, r.body)
			}
		}
		if got := w.front.Count(gatewaytest.ClassAPI) - before; got != 0 {
			t.Errorf("%d denied calls reached Okta", got)
		}

		// Allowed calls with hostile extras: the upstream request goes to the
		// integration's host with the real credential and none of the client's
		// credential or x-quantaseal-* headers.
		extras := []http.Header{
			{"Host": {"evil.example.com"}},
			{"X-Forwarded-Host": {"evil.example.com"}, "X-Forwarded-Proto": {"https"}, "Forwarded": {"host=evil.example.com"}},
			{"X-Quantaseal-Audit-Event": {"aud_forged"}, "X-Quantaseal-Tenant": {b.ID}, "X-Quantaseal-Decision": {"allow"}},
			{"X-Api-Key": {w.tenant.APIKey}},
			// Connection-nominated headers are not checked: Envoy's codec (and the fake)
			// drops the Connection header before filters, so the processor cannot see the
			// nominations; X-Secret is the client's own header, not a credential.
			{"Proxy-Authorization": {"Basic dXNlcjpwYXNz"}},
			{"X-Envoy-Original-Path": {"/api/v1/apps"}, "X-Original-Url": {"/api/v1/apps"}, "X-Rewrite-Url": {"/api/v1/apps"}},
		}
		for i, h := range extras {
			faults++
			host := h.Get("Host")
			h.Del("Host")
			n := len(w.front.Requests())
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			req, _ := http.NewRequestWithContext(ctx, "GET", w.envoy.URL()+"/api/v1/users?limit=1", nil)
			req.Header = h
			req.Header.Set("Authorization", "SSWS "+w.tenant.APIKey)
			req.Header.Set("X-Quantaseal-Integration", w.intSSWS)
			if host != "" {
				req.Host = host
			}
			resp, err := w.envoy.Client().Do(req)
			cancel()
			if err != nil {
				t.Fatalf("extra %d: %v", i, err)
			}
			resp.Body.Close()
			w.sent.Add(1)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("extra %d %v: %d, want 200", i, h, resp.StatusCode)
				continue
			}
			reqs := w.front.Requests()[n:]
			if len(reqs) != 1 {
				t.Fatalf("extra %d: %d upstream requests", i, len(reqs))
			}
			up := reqs[0]
			if up.Path != "/api/v1/users" {
				t.Errorf("extra %d: upstream path %s", i, up.Path)
			}
			for k := range up.Header {
				lk := strings.ToLower(k)
				if strings.HasPrefix(lk, "x-quantaseal-") || lk == "x-api-key" || lk == "proxy-authorization" {
					t.Errorf("extra %d: upstream request carries the client's %s header", i, k)
				}
			}
			if got := up.Header.Get("Authorization"); got != "SSWS "+w.secrets["okta_api_token"] {
				t.Errorf("extra %d: upstream Authorization is not the sealed Okta token", i)
			}
		}
	})

	t.Run("raw ext_proc with CRLF and NUL", func(t *testing.T) {
		for _, v := range []string{"a\r\nAuthorization: SSWS x", "a\nb", "a\x00b"} {
			faults++
			d := openStream(t, w.gw.Conn(t))
			r := d.roundTrip(headersRequest(true, ":method", "GET", ":path", "/api/v1/users", ":authority", w.front.Host(),
				":scheme", "http", "authorization", "SSWS "+w.tenant.APIKey, "x-quantaseal-integration", w.intSSWS, "x-note", v))
			d.cancel()
			w.sent.Add(1)
			if ir := r.GetImmediateResponse(); ir == nil || ir.GetStatus().GetCode() != 400 {
				t.Errorf("header value %q: reply %v, want ImmediateResponse 400", v, r)
			}
		}
	})

	t.Run("tenant isolation", func(t *testing.T) {
		a := gatewaytest.APIKeyHeader(w.tenant.APIKey)
		bCredDel := bCred
		cases := []struct{ method, path string }{
			{"GET", "/api/v2/integrations/" + bInt}, {"PATCH", "/api/v2/integrations/" + bInt}, {"DELETE", "/api/v2/integrations/" + bInt},
			{"GET", "/api/v2/vault/" + bCredDel}, {"DELETE", "/api/v2/vault/" + bCredDel}, {"POST", "/api/v2/vault/" + bCredDel + "/rotate"},
			{"GET", "/api/v2/audit/events/" + bEvent},
		}
		for _, c := range cases {
			faults++
			var body any
			switch c.method {
			case "PATCH":
				body = map[string]any{"allowed_operations": []string{"list_users", "get_user"}}
			case "POST":
				body = map[string]any{"secret": map[string]string{"token": "00stolen" + gatewaytest.RandomHex(t, 10)}}
			}
			r, err := api.Do(t.Context(), c.method, c.path, a, body)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != http.StatusNotFound {
				t.Errorf("tenant A %s %s: %d %s, want 404", c.method, c.path, r.Status, r.Body)
			}
		}
		for _, p := range []string{"/api/v2/integrations", "/api/v2/vault", "/api/v2/audit/events?limit=1000",
			"/api/v2/audit/events?integration_id=" + bInt, "/api/v2/audit/checkpoints/latest"} {
			faults++
			r := api.Must(t, http.StatusOK, "GET", p, a, nil)
			for _, id := range []string{b.ID, bInt, bCred, bEvent} {
				if strings.Contains(string(r.Body), id) {
					t.Errorf("tenant A's GET %s shows tenant B's %s", p, id)
				}
			}
		}
		faults++
		if r, _ := api.Do(t.Context(), "POST", "/api/v2/integrations", a, map[string]any{"system_type": "okta", "name": "steal",
			"okta_domain": w.front.URL(), "credential_id": bCred, "allowed_operations": []string{"list_users"}}); r == nil || r.Status < 400 || r.Status >= 500 {
			t.Errorf("integration over tenant B's credential: %v, want a 4xx", r)
		}
		for _, p := range []string{"/api/v2/tenants/" + b.ID + "/api-keys", "/api/v2/tenants"} {
			faults++
			if r, _ := api.Do(t.Context(), "POST", p, gatewaytest.Bearer(w.tenant.APIKey), map[string]any{"name": "x"}); r == nil || r.Status != http.StatusUnauthorized {
				t.Errorf("tenant key on admin endpoint %s: %v, want 401", p, r)
			}
		}
		// Outbound API with B's integration id.
		faults++
		r := w.raw(t.Context(), "POST", "/api/v2/proxy/outbound",
			[]byte(fmt.Sprintf(`{"integration_id":%q,"operation":"list_users","payload":{"limit":1}}`, bInt)),
			http.Header{"X-Api-Key": {w.tenant.APIKey}})
		if r.status != http.StatusNotFound {
			t.Errorf("outbound with tenant B's integration: %d %s, want 404", r.status, r.body)
		}
		// B's integration still works for B, unchanged.
		rb := w.raw(t.Context(), "GET", "/api/v1/users?limit=1", nil, http.Header{"Authorization": {"SSWS " + b.APIKey}, "X-Quantaseal-Integration": {bInt}})
		if rb.status != http.StatusOK {
			t.Errorf("tenant B after the attempts: %d %s", rb.status, rb.body)
		}
	})

	// The processor does not limit failed attempts per source yet (see the lead's
	// to-do in the H12 report): a 429 is accepted, with Retry-After, once it does.
	limitedByProcessor := 0
	t.Run("wrong keys through the processor are audited without the key", func(t *testing.T) {
		for i := range 20 {
			faults++
			guess := fmt.Sprintf("qs_live_%043d", i)
			w.secrets[fmt.Sprintf("guessed_key_%02d", i)] = guess
			r := w.raw(t.Context(), "GET", "/api/v1/users?limit=1", nil, http.Header{"Authorization": {"SSWS " + guess}})
			switch {
			case r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") != "":
				limitedByProcessor++
			case r.status != http.StatusUnauthorized || r.code() != "invalid_api_key":
				t.Errorf("guess %d: %d %s, want 401 invalid_api_key (or 429 with Retry-After)", i, r.status, r.body)
			}
			if r.auditID() == "" {
				t.Errorf("guess %d: no audit event id: %s", i, r.body)
			}
		}
	})

	// Every non-token request that reached Okta is a catalogue call to the integration's host.
	var stray []gatewaytest.FrontRequest
	for _, r := range w.front.Requests() {
		okHost := r.Host == w.front.Host() || r.Host == strings.TrimPrefix(w.okta.URL(), "http://")
		if r.Class == gatewaytest.ClassToken {
			if r.Path != "/oauth2/v1/token" || !okHost {
				stray = append(stray, r)
			}
			continue
		}
		if !inCatalogue(r.Method, r.Path) || !okHost {
			stray = append(stray, r)
		}
	}
	if len(stray) > 0 {
		t.Errorf("%d requests reached a non-catalogue Okta endpoint or another host:\n%s", len(stray), describe(stray))
	}

	metrics := api.Metrics(t)
	w.gw.Stop(t)
	events := w.verifiedEvents(t)
	invalidKey := 0
	for _, e := range events {
		if e.Reason == "invalid_api_key" {
			invalidKey++
			if e.Caller != "" && !strings.HasPrefix(e.Caller, "key_") {
				t.Errorf("invalid_api_key event %s has caller %q", e.ID, e.Caller)
			}
		}
	}
	if invalidKey < 20-limitedByProcessor {
		t.Errorf("%d invalid_api_key events, want one per rejected guess", invalidKey)
	}
	if len(w.front.AccessTokens()) == 0 {
		t.Error("no access token was issued through the front: the scan would not cover one")
	}
	leaks := scanEverything(t, w, metrics, events)
	addFigures(t, figures{
		Faults: faults, Requests: int(w.sent.Load()), Committed: len(events), Verified: len(events), Leaks: len(stray) + leaks,
		Notes: fmt.Sprintf("path/header tricks, cross-tenant access, 20 guessed keys through Envoy (%d invalid_api_key events, %d limited by the processor); %d upstream requests, all catalogue calls to the integration host",
			invalidKey, limitedByProcessor, len(w.front.Requests())),
	})
}

// TestAPIKeyGuessing guesses API keys and the admin token on the HTTP API from one
// loopback address: after authlimit's burst the address gets 429 with Retry-After, also
// with a valid key, while another loopback address (127.0.0.2) is unaffected. The
// gateway's log names the source, never a presented key.
func TestAPIKeyGuessing(t *testing.T) {
	w := newWorld(t, worldOptions{})
	var guesses []string
	statuses := map[int]int{}
	for i := range 15 {
		g := fmt.Sprintf("qs_live_%043d", i)
		guesses = append(guesses, g)
		r, err := w.api.Do(t.Context(), "GET", "/api/v2/vault", gatewaytest.APIKeyHeader(g), nil)
		if err != nil {
			t.Fatal(err)
		}
		statuses[r.Status]++
		if i >= 10 && (r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "") {
			t.Errorf("guess %d: %d %v, want 429 with Retry-After", i, r.Status, r.Header)
		}
	}
	if statuses[http.StatusUnauthorized] != 10 {
		t.Errorf("statuses %v, want 10×401 then 429", statuses)
	}
	if r, _ := w.api.Do(t.Context(), "GET", "/api/v2/vault", gatewaytest.APIKeyHeader(w.tenant.APIKey), nil); r == nil || r.Status != http.StatusTooManyRequests {
		t.Errorf("valid key from the limited address: %v, want 429", r)
	}
	if r, _ := w.api.Do(t.Context(), "GET", "/api/v2/tenants/"+w.tenant.ID+"/api-keys", gatewaytest.Bearer(w.gw.AdminToken), nil); r == nil || r.Status != http.StatusTooManyRequests {
		t.Errorf("admin token from the limited address: %v, want 429", r)
	}
	other := gatewaytest.NewAPI(w.gw.HTTPURL)
	other.HTTP = &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	if r, err := other.Do(t.Context(), "GET", "/api/v2/vault", gatewaytest.APIKeyHeader(w.tenant.APIKey), nil); err != nil || r.Status != http.StatusOK {
		t.Errorf("valid key from 127.0.0.2: %v %v, want 200", r, err)
	}
	metrics := w.api.Metrics(t)
	if !strings.Contains(string(metrics), `quantaseal_http_auth_failures_total{credential="api_key",result="limited"}`) {
		t.Errorf("/metrics has no limited auth failures")
	}
	w.gw.Stop(t)
	logged := 0
	for _, l := range w.gw.LogLines() {
		if l["msg"] == "authentication failed" {
			logged++
			if l["source"] != "127.0.0.1" {
				t.Errorf("auth failure log line without the source: %v", l)
			}
		}
	}
	if logged != 10 {
		t.Errorf("%d \"authentication failed\" log lines, want 10", logged)
	}
	leaks := 0
	for i, g := range guesses {
		w.secrets[fmt.Sprintf("guess_%02d", i)] = g
	}
	leaks += scanBlobs(t, w, map[string][]byte{"gateway log": w.gw.Logs(), "metrics": metrics, "responses": w.seen.Bytes()})
	addFigures(t, figures{
		Faults: len(guesses) + 2, Requests: len(guesses) + 3, Leaks: leaks,
		Notes: fmt.Sprintf("HTTP API: statuses %s for 15 guesses from 127.0.0.1; valid key and admin token then 429 from it, 200 from 127.0.0.2", fmtStatuses(statuses)),
	})
}

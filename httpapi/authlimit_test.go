package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quantaseal/gateway/httpapi"
	"github.com/quantaseal/gateway/internal/authlimit"
)

// TestFailedAuthLimit: wrong admin tokens and API keys spend the source's failure
// budget; once it is spent the source gets 429 with Retry-After on every authenticated
// endpoint — even with a valid credential — while other sources are unaffected; the
// budget refills with time; the log line names the source, never the presented value.
func TestFailedAuthLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	lim := authlimit.New(authlimit.Config{Burst: 3, Refill: 20 * time.Second, Now: clock})
	e := newEnv(t, backendSQLite, func(c *httpapi.Config, _ *httpapi.Deps) { c.AuthLimiter = lim })
	tn := e.newTenant("limits")

	const wrongKey = "qs_live_" + "GuessGuessGuessGuessGuessGuessGuessGuessGue"
	const wrongAdmin = "Authorization: Bearer not-the-admin-token-0123456789"
	from := func(addr, method, path, auth string) response {
		t.Helper()
		r := httptest.NewRequestWithContext(t.Context(), method, path, nil)
		r.RemoteAddr = addr
		if auth != "" {
			name, v, _ := strings.Cut(auth, ": ")
			r.Header.Set(name, v)
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		return response{status: w.Code, header: w.Result().Header, body: w.Body.Bytes()}
	}
	const attacker, other = "198.51.100.7:4000", "203.0.113.9:5000"

	steps := []struct {
		name       string
		addr       string
		method     string
		path, auth string
		advance    time.Duration
		wantStatus int
		wantCode   string
	}{
		{"valid key first", attacker, "GET", "/api/v2/vault", apiKey(tn.key), 0, 200, ""},
		{"wrong key 1", attacker, "GET", "/api/v2/vault", apiKey(wrongKey), 0, 401, httpapi.CodeInvalidAPIKey},
		{"wrong admin 2", attacker, "GET", "/api/v2/tenants/" + tn.id + "/api-keys", wrongAdmin, 0, 401, httpapi.CodeInvalidAdmin},
		{"wrong key 3", attacker, "GET", "/api/v2/integrations", "Authorization: Bearer " + wrongKey, 0, 401, httpapi.CodeInvalidAPIKey},
		{"limited: wrong key", attacker, "GET", "/api/v2/vault", apiKey(wrongKey), 0, 429, httpapi.CodeTooManyRequests},
		{"limited: valid key too", attacker, "GET", "/api/v2/vault", apiKey(tn.key), 0, 429, httpapi.CodeTooManyRequests},
		{"limited: valid admin too", attacker, "GET", "/api/v2/tenants/" + tn.id + "/api-keys", admin(), 0, 429, httpapi.CodeTooManyRequests},
		{"other source unaffected", other, "GET", "/api/v2/vault", apiKey(tn.key), 0, 200, ""},
		{"other source: same port range irrelevant", "198.51.100.8:4000", "GET", "/api/v2/vault", apiKey(wrongKey), 0, 401, httpapi.CodeInvalidAPIKey},
		{"unauthenticated endpoints unaffected", attacker, "GET", "/api/v2/signing-keys", "", 0, 200, ""},
		{"missing key: 401, not counted", attacker, "GET", "/api/v2/vault", "", 0, 401, httpapi.CodeInvalidAPIKey},
		{"one refill: one more attempt", attacker, "GET", "/api/v2/vault", apiKey(tn.key), 20 * time.Second, 200, ""},
		{"that attempt fails", attacker, "GET", "/api/v2/vault", apiKey(wrongKey), 0, 401, httpapi.CodeInvalidAPIKey},
		{"limited again", attacker, "GET", "/api/v2/vault", apiKey(tn.key), 0, 429, httpapi.CodeTooManyRequests},
	}
	for _, s := range steps {
		mu.Lock()
		now = now.Add(s.advance)
		mu.Unlock()
		r := from(s.addr, s.method, s.path, s.auth)
		wantStatus(t, s.name, r, s.wantStatus, s.wantCode)
		if s.wantStatus == http.StatusTooManyRequests {
			if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("%s: Retry-After = %q, want a positive number of seconds", s.name, ra)
			}
		}
	}
	logs := string(e.logs.Bytes())
	if n := strings.Count(logs, `"msg":"authentication failed"`); n != 5 {
		t.Errorf("%d \"authentication failed\" log lines, want 5:\n%s", n, logs)
	}
	if !strings.Contains(logs, `"source":"198.51.100.7"`) {
		t.Errorf("no log line names the source:\n%s", logs)
	}
	for _, s := range []string{wrongKey, "GuessGuess", "not-the-admin-token"} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain the presented credential %q", s)
		}
	}
}

// TestFailedAuthLimitDefault: without a configured limiter the API still limits (a
// safe default), after authlimit.DefaultBurst failures.
func TestFailedAuthLimitDefault(t *testing.T) {
	e := newEnv(t, backendSQLite)
	const wrongKey = "qs_live_" + "GuessGuessGuessGuessGuessGuessGuessGuessGue"
	var last response
	for range authlimit.DefaultBurst + 1 {
		last = e.req("GET", "/api/v2/vault", apiKey(wrongKey), nil)
	}
	wantStatus(t, "after the default burst", last, http.StatusTooManyRequests, httpapi.CodeTooManyRequests)
}

package reliability

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quantaseal/gateway/internal/gatewaytest"
	"github.com/quantaseal/gateway/okta"
	"github.com/quantaseal/gateway/okta/oktatest"
)

// TestOktaFaults breaks Okta's token endpoint and Management API in turn (through the
// recording front) and checks what clients see, how long they wait, and how many
// requests reach Okta: a clear JSON error (or Okta's own answer, passed through), a
// latency bounded by the token timeout, no retries by the gateway, and one token
// request per token lifetime rather than per call.
func TestOktaFaults(t *testing.T) {
	const tokenTimeout = time.Second
	w := newWorld(t, worldOptions{env: []string{"QUANTASEAL_OKTA_TOKEN_TIMEOUT=" + tokenTimeout.String()}})
	clientID := "0oaflt" + gatewaytest.RandomHex(t, 6)
	secret := "fltsecret-" + gatewaytest.RandomHex(t, 20)
	w.okta.AddClient(oktatest.Client{ID: clientID, Secret: secret, GrantedScopes: []string{oktatest.ScopeUsersRead}})
	w.secrets["fault_client_secret"] = secret
	// Each case gets a fresh integration, so its token cache starts empty.
	n := 0
	newIntegration := func(sec string) string {
		n++
		cred := w.api.SealCredential(t, w.tenant.APIKey, "oauth2_client", fmt.Sprintf("fault %d", n),
			map[string]string{"client_id": clientID, "client_secret": sec})
		return w.api.CreateIntegration(t, w.tenant.APIKey, fmt.Sprintf("fault-%d", n), w.front.URL(), cred, []string{"list_users"})
	}
	calls := func(intID string, count int, concurrent bool) []result {
		out := make([]result, count)
		var wg sync.WaitGroup
		for i := range count {
			f := func() {
				out[i] = w.call(t.Context(), intID, "GET", fmt.Sprintf("/api/v1/users?limit=1&q=f%d", i), nil, nil)
			}
			if concurrent {
				wg.Go(f)
			} else {
				f()
			}
		}
		wg.Wait()
		return out
	}
	faults := 0

	type counts struct{ token, api int }
	snapshot := func() counts {
		return counts{w.front.Count(gatewaytest.ClassToken), w.front.Count(gatewaytest.ClassAPI)}
	}
	var notes []string

	t.Run("one token request per token lifetime", func(t *testing.T) {
		intID := newIntegration(secret)
		before := snapshot()
		rs := calls(intID, 20, true)
		for _, r := range rs {
			if r.status != http.StatusOK {
				t.Fatalf("call: %d %s", r.status, r.body)
			}
		}
		after := snapshot()
		if got := after.token - before.token; got != 1 {
			t.Errorf("20 concurrent calls made %d token requests, want 1 (shared and cached)", got)
		}
		if got := after.api - before.api; got != 20 {
			t.Errorf("20 calls made %d API requests, want 20", got)
		}
	})

	// A token-endpoint fault under load: 8 workers call for 2 s. Concurrent cache misses
	// share one token request and a failed fetch is retried at most twice with backoff
	// (okta.Config.MaxRetries), so the token request rate stays bounded whatever the call
	// rate: never more token requests than calls, and at most 8 a second.
	tokenFault := func(name string, fault gatewaytest.Fault, wantStatus int, wantCode string, maxLatency time.Duration) {
		t.Run(name, func(t *testing.T) {
			intID := newIntegration(secret)
			w.front.SetFault(gatewaytest.ClassToken, fault)
			faults++
			before := snapshot()
			start := time.Now()
			var (
				mu sync.Mutex
				rs []result
				wg sync.WaitGroup
			)
			for g := range 8 {
				wg.Go(func() {
					for i := 0; time.Since(start) < 2*time.Second; i++ {
						r := w.call(t.Context(), intID, "GET", fmt.Sprintf("/api/v1/users?limit=1&q=%s%d-%d", strings.ReplaceAll(name, " ", ""), g, i), nil, nil)
						mu.Lock()
						rs = append(rs, r)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			took := time.Since(start)
			after := snapshot()
			w.front.ClearFaults()
			var slowest time.Duration
			for _, r := range rs {
				if r.status != wantStatus || r.code() != wantCode {
					t.Errorf("call: %d %s, want %d %s", r.status, r.body, wantStatus, wantCode)
				}
				if r.auditID() == "" {
					t.Errorf("error answer without audit_event_id: %s", r.body)
				}
				slowest = max(slowest, r.took)
			}
			if slowest > maxLatency {
				t.Errorf("slowest call took %v, want ≤ %v", slowest, maxLatency)
			}
			tokens := after.token - before.token
			rate := float64(tokens) / took.Seconds()
			if tokens > len(rs) || rate > 8 {
				t.Errorf("%d calls in %v made %d token requests (%.1f/s): want at most one per call and 8/s", len(rs), took.Round(time.Millisecond), tokens, rate)
			}
			if after.api != before.api {
				t.Errorf("%d API requests reached Okta without a token", after.api-before.api)
			}
			// The token source remembers a failed fetch (okta.Config.FailureTTL, 5 s by
			// default, backing off from 1 s for temporary failures), so recovery comes
			// within that time, not necessarily on the very next call.
			recovered := false
			var last result
			for deadline := time.Now().Add(okta.DefaultFailureTTL + time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if last = calls(intID, 1, false)[0]; last.status == http.StatusOK {
					recovered = true
					break
				}
			}
			if !recovered {
				t.Errorf("after the fault cleared: %d %s for %v, want 200", last.status, last.body, okta.DefaultFailureTTL+time.Second)
			}
			notes = append(notes, fmt.Sprintf("%s: %d calls in 2 s → %d token requests (%.1f/s), slowest %v",
				name, len(rs), tokens, rate, slowest.Round(time.Millisecond)))
		})
	}
	tokenFault("token endpoint slow", gatewaytest.Fault{Delay: 5 * tokenTimeout}, http.StatusServiceUnavailable, "unavailable", tokenTimeout+3*time.Second)
	tokenFault("token endpoint 503", gatewaytest.Fault{Status: 503, Body: `{"errorCode":"E0000009","errorSummary":"Internal Server Error"}`},
		http.StatusServiceUnavailable, "unavailable", 3*time.Second)
	tokenFault("token endpoint 500 HTML", gatewaytest.Fault{Status: 500, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html>oops</html>"},
		http.StatusServiceUnavailable, "unavailable", 3*time.Second)

	t.Run("invalid_client", func(t *testing.T) {
		intID := newIntegration("wrong-" + gatewaytest.RandomHex(t, 16))
		faults++
		before := snapshot()
		rs := calls(intID, 5, false)
		after := snapshot()
		for _, r := range rs {
			if r.status != http.StatusUnauthorized || r.code() != "invalid_client" ||
				!strings.Contains(string(r.body), "The OAuth2 client secret in QuantaVault is incorrect") || !strings.Contains(string(r.body), intID) {
				t.Errorf("call: %d %s, want 401 invalid_client with the documented message and integration id", r.status, r.body)
			}
		}
		tokens := after.token - before.token
		if tokens > len(rs) {
			t.Errorf("%d calls made %d token requests: the gateway retries invalid_client", len(rs), tokens)
		}
		if after.api != before.api {
			t.Errorf("%d API requests reached Okta after invalid_client", after.api-before.api)
		}
		notes = append(notes, fmt.Sprintf("invalid_client: %d calls → %d token requests", len(rs), tokens))
	})

	apiFault := func(name string, fault gatewaytest.Fault, check func(t *testing.T, r result)) {
		t.Run(name, func(t *testing.T) {
			intID := newIntegration(secret)
			if r := calls(intID, 1, false)[0]; r.status != http.StatusOK { // token cached
				t.Fatalf("warm-up: %d %s", r.status, r.body)
			}
			w.front.SetFault(gatewaytest.ClassAPI, fault)
			faults++
			before := snapshot()
			rs := calls(intID, 4, true)
			after := snapshot()
			w.front.ClearFaults()
			for _, r := range rs {
				check(t, r)
				if r.auditID() == "" {
					t.Errorf("answer without an audit event id: %d %v %s", r.status, r.header, r.body)
				}
			}
			if got := after.api - before.api; got != len(rs) {
				t.Errorf("%d calls made %d API requests, want exactly one each (no retries)", len(rs), got)
			}
			if got := after.token - before.token; got != 0 {
				t.Errorf("%d token requests for calls with a cached token", got)
			}
			notes = append(notes, fmt.Sprintf("%s: %d calls → %d API requests", name, len(rs), after.api-before.api))
		})
	}
	apiFault("API slow", gatewaytest.Fault{Delay: 1500 * time.Millisecond}, func(t *testing.T, r result) {
		if r.status != http.StatusOK || r.took < 1500*time.Millisecond || r.took > 5*time.Second {
			t.Errorf("slow call: %d after %v, want 200 after 1.5–5 s", r.status, r.took)
		}
	})
	apiFault("API 500", gatewaytest.Fault{Status: 500, Body: `{"errorCode":"E0000009","errorSummary":"Internal Server Error","errorCauses":[]}`}, func(t *testing.T, r result) {
		if r.status != http.StatusInternalServerError || !strings.Contains(string(r.body), "E0000009") {
			t.Errorf("call: %d %s, want Okta's 500 passed through", r.status, r.body)
		}
	})
	rateHeaders := http.Header{"X-Rate-Limit-Limit": {"600"}, "X-Rate-Limit-Remaining": {"0"}, "X-Rate-Limit-Reset": {"1900000000"}}
	apiFault("API 429", gatewaytest.Fault{Status: 429, Header: rateHeaders, Body: `{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}`}, func(t *testing.T, r result) {
		if r.status != http.StatusTooManyRequests {
			t.Errorf("call: %d %s, want 429 passed through", r.status, r.body)
		}
		for k, v := range rateHeaders {
			if got := r.header.Get(k); got != v[0] {
				t.Errorf("%s = %q, want %q (the SDK backs off on it)", k, got, v[0])
			}
		}
	})

	t.Run("token revoked upstream", func(t *testing.T) {
		intID := newIntegration(secret)
		if r := calls(intID, 1, false)[0]; r.status != http.StatusOK {
			t.Fatalf("warm-up: %d %s", r.status, r.body)
		}
		w.okta.RevokeTokens()
		faults++
		before := snapshot()
		first := calls(intID, 1, false)[0]
		second := calls(intID, 1, false)[0]
		after := snapshot()
		if first.status != http.StatusUnauthorized {
			t.Errorf("call with a revoked token: %d %s, want Okta's 401 passed through", first.status, first.body)
		}
		if second.status != http.StatusOK {
			t.Errorf("next call: %d %s, want 200 with a fresh token", second.status, second.body)
		}
		if got := after.token - before.token; got != 1 {
			t.Errorf("%d token requests after the revocation, want 1", got)
		}
	})

	w.gw.Stop(t)
	events := w.verifiedEvents(t)
	missing := w.missingAcked(events)
	if len(missing) > 0 {
		t.Errorf("%d acknowledged audit events missing: %v", len(missing), missing)
	}
	unaudited := w.unaudited(events)
	if len(unaudited) > 0 {
		t.Errorf("%d calls reached Okta without a committed intent event:\n%s", len(unaudited), describe(unaudited))
	}
	addFigures(t, figures{
		Faults: faults, Requests: int(w.sent.Load()), Committed: len(events), Verified: len(events), Leaks: len(missing), Unaudited: len(unaudited),
		Notes: strings.Join(notes, "; "),
	})
}

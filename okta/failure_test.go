package okta_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantaseal/gateway/okta"
	"github.com/quantaseal/gateway/okta/oktatest"
	"github.com/quantaseal/gateway/vault"
)

// clockTransport serves requests in memory through h (like memTransport), records when
// each token request was sent, and fails a request whose context ended while h served
// it, as a real transport would.
type clockTransport struct {
	h     http.Handler
	mu    sync.Mutex
	sends []time.Time
}

func (c *clockTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	if r.URL.Path == "/oauth2/v1/token" {
		c.mu.Lock()
		c.sends = append(c.sends, time.Now())
		c.mu.Unlock()
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

// offsets returns the token requests' send times relative to start.
func (c *clockTransport) offsets(start time.Time) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, len(c.sends))
	for i, s := range c.sends {
		out[i] = s.Sub(start)
	}
	return out
}

// counters gathers the source's metrics as "name/result" → value.
func counters(t *testing.T, ts *okta.TokenSource) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(ts); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return got
}

// TestNegativeCachePermanentFailures: a credential failure (invalid_client,
// invalid_credential, token_rejected) is remembered for FailureTTL. Every call in that
// time gets the same error, as its own copy, without a token request or a vault load;
// the first call after it asks again. A negative FailureTTL turns this off.
func TestNegativeCachePermanentFailures(t *testing.T) {
	const origin = "https://acme.okta.example"
	accessDenied := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"error":"access_denied","error_description":"Policy evaluation failed for this request, please check the policy configurations."}`))
	})
	tests := []struct {
		name    string
		handler http.Handler // nil: the double, with client 0oa1 / secret "right"
		cred    vault.Credential
		ttl     time.Duration // Config.FailureTTL
		want    *okta.Error
		wantTTL time.Duration // how long the failure is remembered; 0: not at all
		sends   bool          // the failure is a token request (else only a vault load)
	}{
		{
			name: "invalid_client", cred: secretCred("0oa1", "wrong-secret-value"),
			want: &okta.Error{Code: okta.CodeInvalidClient, Status: 401, ClientSecret: true,
				Description: "The client secret supplied for a confidential client is invalid."},
			wantTTL: 5 * time.Second, sends: true,
		},
		{
			name: "invalid_client, FailureTTL 2s", cred: secretCred("0oa1", "wrong-secret-value"), ttl: 2 * time.Second,
			want: &okta.Error{Code: okta.CodeInvalidClient, Status: 401, ClientSecret: true,
				Description: "The client secret supplied for a confidential client is invalid."},
			wantTTL: 2 * time.Second, sends: true,
		},
		{
			name: "token_rejected", handler: accessDenied, cred: secretCred("0oa1", "right"),
			want: &okta.Error{Code: okta.CodeTokenRejected, Status: 403,
				Description: "access_denied: Policy evaluation failed for this request, please check the policy configurations."},
			wantTTL: 5 * time.Second, sends: true,
		},
		{
			name: "invalid_credential", cred: keyCred("0oa1", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", ""),
			want:    &okta.Error{Code: okta.CodeInvalidCredential},
			wantTTL: 5 * time.Second,
		},
		{
			name: "invalid_client, negative cache off", cred: secretCred("0oa1", "wrong-secret-value"), ttl: -1,
			want: &okta.Error{Code: okta.CodeInvalidClient, Status: 401, ClientSecret: true,
				Description: "The client secret supplied for a confidential client is invalid."},
			sends: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := oktatest.New(t, oktatest.Options{})
			srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes})
			h, org := tt.handler, origin
			if h == nil {
				h, org = srv.Handler(), srv.Origin()
			}
			synctest.Test(t, func(t *testing.T) {
				tr := &clockTransport{h: h}
				ts := okta.NewTokenSource(okta.Config{HTTPClient: &http.Client{Transport: tr}, FailureTTL: tt.ttl})
				defer ts.Close()
				cred, loads := loader(tt.cred)
				in := okta.AuthorizeInput{IntegrationID: "int_1", OktaOrigin: org, Scopes: allScopes,
					Scope: oktatest.ScopeUsersRead, Method: "GET", URL: org + "/api/v1/users", Credential: cred}
				fetches := func() int {
					if tt.sends {
						return len(tr.offsets(time.Time{}))
					}
					return int(loads.Load())
				}
				var seen []*okta.Error
				check := func(err error) {
					t.Helper()
					var oe *okta.Error
					if !errors.As(err, &oe) {
						t.Fatalf("err = %v, want *okta.Error", err)
					}
					if diff := cmp.Diff(tt.want, oe, cmpErr); diff != "" {
						t.Fatalf("error (-want +got):\n%s", diff)
					}
					if oe.Temporary() || oe.RetryAfter != 0 {
						t.Errorf("credential failure: Temporary %v, RetryAfter %v", oe.Temporary(), oe.RetryAfter)
					}
					for _, s := range []string{tt.cred.ClientSecret.Reveal(), "AAAA"} {
						if s != "" && strings.Contains(err.Error(), s) {
							t.Errorf("error %q leaks %q", err, s)
						}
					}
					seen = append(seen, oe)
				}

				// 20 concurrent calls share one fetch (the late ones get the remembered
				// failure).
				const n = 20
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() { _, errs[i] = ts.Authorize(t.Context(), in) })
				}
				wg.Wait()
				for _, err := range errs {
					check(err)
				}
				base := fetches()
				if tt.wantTTL != 0 && base != 1 {
					t.Fatalf("%d concurrent calls: %d fetches, want 1", n, base)
				}

				// Calls spread over the remembered time send nothing more.
				step := tt.wantTTL / 10
				if tt.wantTTL == 0 {
					step = 500 * time.Millisecond
				}
				for range 9 {
					time.Sleep(step)
					_, err := ts.Authorize(t.Context(), in)
					check(err)
				}
				wantFetches := base
				if tt.wantTTL == 0 {
					wantFetches += 9
				}
				if got := fetches(); got != wantFetches {
					t.Fatalf("calls within the remembered time: %d fetches, want %d", got, wantFetches)
				}

				// At FailureTTL after the failure, the next call asks again.
				time.Sleep(step)
				_, err := ts.Authorize(t.Context(), in)
				check(err)
				if got := fetches(); got != wantFetches+1 {
					t.Errorf("after FailureTTL: %d fetches, want %d", got, wantFetches+1)
				}

				// Every caller got its own copy: changing one changes no other.
				distinct := map[*okta.Error]bool{}
				for _, oe := range seen {
					distinct[oe] = true
				}
				if len(distinct) != len(seen) {
					t.Errorf("%d callers got %d distinct *okta.Error values", len(seen), len(distinct))
				}
				negative := counters(t, ts)["quantaseal_okta_token_cache_lookups_total/negative"]
				if (tt.wantTTL == 0) != (negative == 0) {
					t.Errorf("negative lookups = %v", negative)
				}
				if tt.wantTTL != 0 && negative < 9 {
					t.Errorf("negative lookups = %v, want at least 9", negative)
				}
			})
		})
	}
}

// TestInvalidateClearsFailure: after a credential is fixed in the vault, Invalidate makes
// the very next call ask Okta, which then succeeds; without it, the failure is served
// until FailureTTL ends. Invalidating another integration changes nothing.
func TestInvalidateClearsFailure(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes})
	synctest.Test(t, func(t *testing.T) {
		ts := okta.NewTokenSource(okta.Config{HTTPClient: &http.Client{Transport: memTransport{srv.Handler()}}})
		defer ts.Close()
		var mu sync.Mutex
		current := "wrong-secret-value"
		cred := func(context.Context) (vault.Credential, error) {
			mu.Lock()
			defer mu.Unlock()
			return secretCred("0oa1", current), nil
		}
		in := input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")
		wantCode := func(err error, code string) {
			t.Helper()
			var oe *okta.Error
			if !errors.As(err, &oe) || oe.Code != code {
				t.Fatalf("err = %v, want %s", err, code)
			}
		}
		_, err := ts.Authorize(t.Context(), in)
		wantCode(err, okta.CodeInvalidClient)

		mu.Lock()
		current = "right" // the vault entry is rotated …
		mu.Unlock()
		time.Sleep(time.Second)
		_, err = ts.Authorize(t.Context(), in) // … but nobody told the source
		wantCode(err, okta.CodeInvalidClient)
		ts.Invalidate("int_2")
		_, err = ts.Authorize(t.Context(), in)
		wantCode(err, okta.CodeInvalidClient)
		if got := srv.TokenRequests(); got != 1 {
			t.Fatalf("before Invalidate: %d token requests, want 1", got)
		}

		ts.Invalidate("int_1")
		a, err := ts.Authorize(t.Context(), in)
		if err != nil {
			t.Fatalf("right after Invalidate: %v", err)
		}
		if !strings.HasPrefix(a.Header.Reveal(), "Bearer tok_") {
			t.Errorf("header = %q", a.Header.Reveal())
		}
		if got := srv.TokenRequests(); got != 2 {
			t.Errorf("after Invalidate: %d token requests, want 2", got)
		}
	})
}

// TestTemporaryFailureBackoff: while the token endpoint fails (5xx, or no answer within
// Timeout), one caller calling every 100ms sends token requests at a backoff of 1s, 2s,
// 4s, then FailureTTL (5s), instead of one per call; once the endpoint recovers, the
// first call after the current backoff succeeds and the backoff starts over.
func TestTemporaryFailureBackoff(t *testing.T) {
	tests := []struct {
		name     string
		opts     oktatest.Options
		cfg      okta.Config
		code     string
		window   time.Duration
		wantAt   []time.Duration // send times of the token requests, from the first
		recovers bool
	}{
		{
			name: "503", opts: oktatest.Options{TokenFailures: 1 << 30}, cfg: okta.Config{MaxRetries: -1},
			code: okta.CodeTokenUnavailable, window: 20 * time.Second, recovers: true,
			wantAt: []time.Duration{0, 1 * time.Second, 3 * time.Second, 7 * time.Second, 12 * time.Second, 17 * time.Second},
		},
		{
			name: "503 with retries inside each fetch", opts: oktatest.Options{TokenFailures: 1 << 30},
			cfg:  okta.Config{MaxRetries: 1, RetryBackoff: 200 * time.Millisecond},
			code: okta.CodeTokenUnavailable, window: 10 * time.Second,
			// fetch = 2 requests 200ms apart; the backoff counts from the fetch's end.
			wantAt: []time.Duration{0, 200 * time.Millisecond, 1200 * time.Millisecond, 1400 * time.Millisecond,
				3400 * time.Millisecond, 3600 * time.Millisecond, 7600 * time.Millisecond, 7800 * time.Millisecond},
		},
		{
			name: "timeout", opts: oktatest.Options{TokenDelay: time.Hour}, cfg: okta.Config{MaxRetries: -1, Timeout: 100 * time.Millisecond},
			code: okta.CodeTokenTimeout, window: 10 * time.Second,
			wantAt: []time.Duration{0, 1100 * time.Millisecond, 3200 * time.Millisecond, 7300 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := oktatest.New(t, tt.opts)
			srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes})
			synctest.Test(t, func(t *testing.T) {
				tr := &clockTransport{h: srv.Handler()}
				cfg := tt.cfg
				cfg.HTTPClient = &http.Client{Transport: tr}
				ts := okta.NewTokenSource(cfg)
				defer ts.Close()
				cred, _ := loader(secretCred("0oa1", "right"))
				in := input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")
				start := time.Now()
				calls := 0
				for time.Since(start) < tt.window {
					_, err := ts.Authorize(t.Context(), in)
					var oe *okta.Error
					if !errors.As(err, &oe) || oe.Code != tt.code || !oe.Temporary() {
						t.Fatalf("at %v: err = %v, want %s", time.Since(start), err, tt.code)
					}
					if oe.RetryAfter <= 0 || oe.RetryAfter > 5*time.Second {
						t.Fatalf("at %v: RetryAfter = %v", time.Since(start), oe.RetryAfter)
					}
					calls++
					time.Sleep(100 * time.Millisecond)
				}
				if diff := cmp.Diff(tt.wantAt, tr.offsets(start)); diff != "" {
					t.Errorf("%d calls: token request times (-want +got):\n%s", calls, diff)
				}
				if !tt.recovers {
					return
				}
				// 503 row: the last failure was at 17s, remembered until 22s.
				srv.FailTokenRequests(0)
				_, err := ts.Authorize(t.Context(), in)
				var oe *okta.Error
				if !errors.As(err, &oe) || oe.Code != tt.code || oe.RetryAfter != 22*time.Second-time.Since(start) {
					t.Fatalf("recovered endpoint, within the backoff: err = %v (RetryAfter %v)", err, oe.RetryAfter)
				}
				time.Sleep(oe.RetryAfter)
				if _, err := ts.Authorize(t.Context(), in); err != nil {
					t.Fatalf("after the backoff: %v", err)
				}
				// A new failure (here: the refresh of an expired token is not involved;
				// another scope set) starts its own backoff at 1s.
				srv.FailTokenRequests(1)
				other := in
				other.Scopes = []string{oktatest.ScopeUsersRead}
				if _, err := ts.Authorize(t.Context(), other); err == nil {
					t.Fatal("other scope set: no error from a failing endpoint")
				}
				time.Sleep(time.Second)
				if _, err := ts.Authorize(t.Context(), other); err != nil {
					t.Fatalf("other scope set after 1s: %v", err)
				}
			})
		})
	}
}

// TestRateLimitedTokenEndpoint: a 429 from the token endpoint is remembered until Okta's
// X-Rate-Limit-Reset (measured against Okta's Date header, capped at a minute), or for
// the 1s backoff when the reset is missing or already past.
func TestRateLimitedTokenEndpoint(t *testing.T) {
	t.Run("double's token bucket", func(t *testing.T) {
		srv := oktatest.New(t, oktatest.Options{TokenRateLimit: 1})
		srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes})
		synctest.Test(t, func(t *testing.T) {
			tr := &clockTransport{h: srv.Handler()}
			ts := okta.NewTokenSource(okta.Config{HTTPClient: &http.Client{Transport: tr}})
			defer ts.Close()
			cred, _ := loader(secretCred("0oa1", "right"))
			start := time.Now()
			if _, err := ts.Authorize(t.Context(), input(srv, "int_a", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")); err != nil {
				t.Fatal(err) // spends the window's one token request
			}
			in := input(srv, "int_b", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")
			for time.Since(start) < time.Minute {
				_, err := ts.Authorize(t.Context(), in)
				var oe *okta.Error
				if !errors.As(err, &oe) || oe.Code != okta.CodeRateLimited || oe.Status != 429 ||
					oe.RetryAfter != time.Minute-time.Since(start) {
					t.Fatalf("at %v: err = %v (RetryAfter %v), want rate_limited until the reset", time.Since(start), err, oe.RetryAfter)
				}
				time.Sleep(time.Second)
			}
			if _, err := ts.Authorize(t.Context(), in); err != nil {
				t.Fatalf("after the reset: %v", err)
			}
			if diff := cmp.Diff([]time.Duration{0, 0, time.Minute}, tr.offsets(start)); diff != "" {
				t.Errorf("token request times (-want +got):\n%s", diff)
			}
		})
	})

	tests := []struct {
		name   string
		header func(now time.Time) http.Header
		want   time.Duration
	}{
		{"reset 10s ahead, local clock an hour behind Okta's", func(now time.Time) http.Header {
			okt := now.Add(time.Hour)
			return http.Header{"Date": {okt.UTC().Format(http.TimeFormat)}, "X-Rate-Limit-Reset": {strconv.FormatInt(okt.Add(10*time.Second).Unix(), 10)}}
		}, 10 * time.Second},
		{"reset 10s ahead, no Date", func(now time.Time) http.Header {
			return http.Header{"X-Rate-Limit-Reset": {strconv.FormatInt(now.Add(10*time.Second).Unix(), 10)}}
		}, 10 * time.Second},
		{"reset years ahead: capped", func(now time.Time) http.Header {
			return http.Header{"Date": {now.UTC().Format(http.TimeFormat)}, "X-Rate-Limit-Reset": {"1900000000"}}
		}, time.Minute},
		{"reset in the past: backoff", func(now time.Time) http.Header {
			return http.Header{"Date": {now.UTC().Format(http.TimeFormat)}, "X-Rate-Limit-Reset": {strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)}}
		}, time.Second},
		{"no reset: backoff", func(time.Time) http.Header { return http.Header{} }, time.Second},
		{"unparseable reset: backoff", func(time.Time) http.Header { return http.Header{"X-Rate-Limit-Reset": {"soon"}} }, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					for k, v := range tt.header(time.Now()) {
						w.Header()[k] = v
					}
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusTooManyRequests)
					w.Write([]byte(`{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests.","errorLink":"E0000047","errorId":"oae1","errorCauses":[]}`))
				})
				tr := &clockTransport{h: h}
				ts := okta.NewTokenSource(okta.Config{HTTPClient: &http.Client{Transport: tr}})
				defer ts.Close()
				cred, _ := loader(secretCred("0oa1", "right"))
				const org = "https://acme.okta.example"
				in := okta.AuthorizeInput{IntegrationID: "int_1", OktaOrigin: org, Scopes: allScopes, Credential: cred}
				start := time.Now()
				for len(tr.offsets(start)) < 2 {
					_, err := ts.Authorize(t.Context(), in)
					var oe *okta.Error
					if !errors.As(err, &oe) || oe.Code != okta.CodeRateLimited {
						t.Fatalf("err = %v, want rate_limited", err)
					}
					if len(tr.offsets(start)) == 1 && oe.RetryAfter != tt.want-time.Since(start) {
						t.Fatalf("at %v: RetryAfter = %v, want %v", time.Since(start), oe.RetryAfter, tt.want-time.Since(start))
					}
					time.Sleep(100 * time.Millisecond)
				}
				if got := tr.offsets(start)[1]; got != tt.want {
					t.Errorf("second token request after %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// TestCallerCancellationNotCached: callers that give up (cancelled, or past their
// deadline) while the shared token request runs get their own error, which is not
// remembered: the next caller gets the token that request obtained.
func TestCallerCancellationNotCached(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{TokenDelay: 2 * time.Second})
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes})
	synctest.Test(t, func(t *testing.T) {
		ts := okta.NewTokenSource(okta.Config{HTTPClient: &http.Client{Transport: &clockTransport{h: srv.Handler()}}})
		defer ts.Close()
		cred, _ := loader(secretCred("0oa1", "right"))
		in := input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")

		cancelled, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := ts.Authorize(cancelled, in); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled before the call: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(500*time.Millisecond, cancel)
		if _, err := ts.Authorize(ctx, in); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled while waiting: %v", err)
		}
		dctx, dcancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer dcancel()
		_, err := ts.Authorize(dctx, in)
		var oe *okta.Error
		if !errors.As(err, &oe) || oe.Code != okta.CodeTokenTimeout {
			t.Fatalf("past its deadline while waiting: %v", err)
		}
		a, err := ts.Authorize(t.Context(), in) // waits for the same request
		if err != nil {
			t.Fatalf("next caller: %v", err)
		}
		if !strings.HasPrefix(a.Header.Reveal(), "Bearer tok_") {
			t.Errorf("header = %q", a.Header.Reveal())
		}
		if got := srv.TokenRequests(); got != 1 {
			t.Errorf("%d token requests, want 1", got)
		}
		if got := counters(t, ts)["quantaseal_okta_token_cache_lookups_total/negative"]; got != 0 {
			t.Errorf("negative lookups = %v, want 0", got)
		}
	})
}

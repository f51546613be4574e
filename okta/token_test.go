package okta_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/okta"
	"github.com/quantaseal/gateway/okta/oktatest"
	"github.com/quantaseal/gateway/vault"
)

func newSource(t *testing.T, cfg okta.Config) *okta.TokenSource {
	t.Helper()
	ts := okta.NewTokenSource(cfg)
	t.Cleanup(func() { ts.Close() })
	return ts
}

func TestColdCacheSharesOneTokenRequest(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "s3cret", GrantedScopes: allScopes})
	ts := newSource(t, okta.Config{})
	cred, loads := loader(secretCred("0oa1", "s3cret"))

	const n = 1000
	var wg sync.WaitGroup
	headers := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			a, err := ts.Authorize(t.Context(), input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users"))
			headers[i], errs[i] = a.Header.Reveal(), err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if headers[i] != headers[0] || !strings.HasPrefix(headers[i], "Bearer tok_") {
			t.Fatalf("call %d: header %q differs from %q", i, headers[i], headers[0])
		}
	}
	if got := srv.TokenRequests(); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}
	if got := loads.Load(); got != 1 {
		t.Errorf("credential loads = %d, want 1", got)
	}
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
	if got["quantaseal_okta_token_fetches_total/ok"] != 1 ||
		got["quantaseal_okta_token_cache_lookups_total/hit"]+got["quantaseal_okta_token_cache_lookups_total/miss"] != n {
		t.Errorf("metrics = %v", got)
	}
}

// TestBackgroundRefresh: a token is refreshed once, in the background, before it
// expires; no Authorize call waits on the token endpoint. A DPoP integration keeps its
// DPoP key and the origin's nonce, so its refresh is a single request.
func TestBackgroundRefresh(t *testing.T) {
	ek := newECKey(t)
	tests := []struct {
		name                string
		client              oktatest.Client
		cred                vault.Credential
		firstFetch, refresh int
	}{
		{"client secret", oktatest.Client{ID: "0oa1", Secret: "s3cret", GrantedScopes: allScopes}, secretCred("0oa1", "s3cret"), 1, 1},
		{"private key with DPoP", oktatest.Client{ID: "0oa1", Keys: map[string]crypto.PublicKey{"": &ek.PublicKey}, GrantedScopes: allScopes, RequireDPoP: true},
			keyCred("0oa1", pkcs8(t, ek), ""), 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := oktatest.New(t, oktatest.Options{ExpiresIn: 600})
			srv.AddClient(tt.client)
			synctest.Test(t, func(t *testing.T) {
				ts := okta.NewTokenSource(okta.Config{
					HTTPClient:    &http.Client{Transport: memTransport{srv.Handler()}},
					RefreshBefore: 2 * time.Minute,
				})
				defer ts.Close()
				cred, loads := loader(tt.cred)
				in := input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")
				first, err := ts.Authorize(t.Context(), in)
				if err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				if got := srv.TokenRequests(); got != tt.firstFetch {
					t.Fatalf("after first Authorize: %d token requests, want %d", got, tt.firstFetch)
				}
				time.Sleep(time.Minute)
				if _, err := ts.Authorize(t.Context(), in); err != nil { // in use: worth refreshing
					t.Fatal(err)
				}
				time.Sleep(7*time.Minute + time.Second) // past the refresh point (600s - 120s)
				synctest.Wait()
				if got := srv.TokenRequests(); got != tt.firstFetch+tt.refresh {
					t.Fatalf("after refresh point: %d token requests, want %d", got, tt.firstFetch+tt.refresh)
				}
				second, err := ts.Authorize(t.Context(), in)
				if err != nil {
					t.Fatal(err)
				}
				if second.Header.Reveal() == first.Header.Reveal() {
					t.Error("Authorize after the refresh returned the old token")
				}
				time.Sleep(2 * time.Minute) // the old token's expiry passes: nothing else happens
				synctest.Wait()
				if got := srv.TokenRequests(); got != tt.firstFetch+tt.refresh {
					t.Errorf("refreshed more than once: %d token requests", got)
				}
				if got := loads.Load(); got != 2 {
					t.Errorf("credential loads = %d, want 2", got)
				}
			})
		})
	}
}

// TestBackgroundRefreshFailure: a failed refresh is logged without secrets, the old
// token keeps serving until it expires, and then Authorize fetches in the foreground.
func TestBackgroundRefreshFailure(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{ExpiresIn: 600})
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "s3cret", GrantedScopes: allScopes})
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		var logMu sync.Mutex
		ts := okta.NewTokenSource(okta.Config{
			HTTPClient:    &http.Client{Transport: memTransport{srv.Handler()}},
			RefreshBefore: 2 * time.Minute, MaxRetries: -1,
			Logger: slog.New(slog.NewJSONHandler(lockedWriter{&logs, &logMu}, nil)),
		})
		defer ts.Close()
		cred, _ := loader(secretCred("0oa1", "s3cret"))
		in := input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")
		first, err := ts.Authorize(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ts.Authorize(t.Context(), in); err != nil { // in use: worth refreshing
			t.Fatal(err)
		}
		srv.FailTokenRequests(100)
		time.Sleep(9 * time.Minute) // refresh attempts fail; the token is still valid
		synctest.Wait()
		a, err := ts.Authorize(t.Context(), in)
		if err != nil || a.Header.Reveal() != first.Header.Reveal() {
			t.Fatalf("during failed refreshes: %v (same token: %v)", err, a.Header.Reveal() == first.Header.Reveal())
		}
		time.Sleep(2 * time.Minute) // past expiry, still failing: the refresh loop gives up
		synctest.Wait()
		srv.FailTokenRequests(0)
		a, err = ts.Authorize(t.Context(), in)
		if err != nil || a.Header.Reveal() == first.Header.Reveal() {
			t.Fatalf("after expiry: %v", err)
		}
		logMu.Lock()
		out := logs.String()
		logMu.Unlock()
		if !strings.Contains(out, `"code":"token_unavailable"`) || !strings.Contains(out, `"integration_id":"int_1"`) {
			t.Errorf("log = %s", out)
		}
		if strings.Contains(out, "s3cret") || strings.Contains(out, "tok_") {
			t.Errorf("log leaks a secret: %s", out)
		}
	})
}

// TestIdleTokenNotRefreshed: a token nobody used since it was stored is dropped at
// its refresh point instead of being refreshed forever; the next call fetches anew.
func TestIdleTokenNotRefreshed(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{ExpiresIn: 600})
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "s3cret", GrantedScopes: allScopes})
	synctest.Test(t, func(t *testing.T) {
		ts := okta.NewTokenSource(okta.Config{HTTPClient: &http.Client{Transport: memTransport{srv.Handler()}}})
		defer ts.Close()
		cred, _ := loader(secretCred("0oa1", "s3cret"))
		in := input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")
		if _, err := ts.Authorize(t.Context(), in); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := srv.TokenRequests(); got != 1 {
			t.Fatalf("idle token refreshed: %d token requests", got)
		}
		if _, err := ts.Authorize(t.Context(), in); err != nil {
			t.Fatal(err)
		}
		if got := srv.TokenRequests(); got != 2 {
			t.Errorf("after idling: %d token requests, want 2", got)
		}
	})
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestPrivateKeyJWT(t *testing.T) {
	rk := rsaKeys()[0]
	ek := newECKey(t)
	pkcs1 := pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk), nil)
	sec1DER, err := x509.MarshalECPrivateKey(ek)
	sec1 := pemOf(t, "EC PRIVATE KEY", sec1DER, err)
	tests := []struct {
		name, key, kid, wantAlg string
		pub                     crypto.PublicKey
	}{
		{"RS256 PKCS#1 PEM", pkcs1, "k1", "RS256", &rk.PublicKey},
		{"RS256 PKCS#8 PEM no kid", pkcs8(t, rk), "", "RS256", &rk.PublicKey},
		{"RS256 JWK", rsaJWK(rk, "k1"), "", "RS256", &rk.PublicKey},
		{"ES256 PKCS#8 PEM", pkcs8(t, ek), "k1", "ES256", &ek.PublicKey},
		{"ES256 SEC1 PEM", sec1, "k1", "ES256", &ek.PublicKey},
		{"ES256 JWK", ecJWK(ek, "k1"), "", "ES256", &ek.PublicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := oktatest.New(t, oktatest.Options{})
			kid := tt.kid
			if strings.HasPrefix(tt.key, "{") {
				kid = "k1"
			}
			srv.AddClient(oktatest.Client{ID: "0oa1", Keys: map[string]crypto.PublicKey{kid: tt.pub}, GrantedScopes: allScopes})
			ts := newSource(t, okta.Config{})
			cred, _ := loader(keyCred("0oa1", tt.key, tt.kid))
			a, err := ts.Authorize(t.Context(), input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users"))
			if err != nil {
				t.Fatal(err)
			}
			if resp := call(t, srv, a, "GET", "/api/v1/users?limit=1"); resp.StatusCode != 200 {
				t.Fatalf("API call: %d", resp.StatusCode)
			}
			req := srv.Requests()[0]
			form, err := url.ParseQuery(string(req.Body))
			if err != nil {
				t.Fatal(err)
			}
			if req.RawQuery != "" || req.Header.Get("Authorization") != "" {
				t.Errorf("token request carries query %q / Authorization", req.RawQuery)
			}
			h, c := jwtParts(t, form.Get("client_assertion"))
			if h["alg"] != tt.wantAlg || h["kid"] != stringOrNil(kid) {
				t.Errorf("header = %v", h)
			}
			exp, iat := c["exp"].(float64), c["iat"].(float64)
			if c["iss"] != "0oa1" || c["sub"] != "0oa1" || c["aud"] != srv.Origin()+"/oauth2/v1/token" ||
				exp-iat <= 0 || exp-iat > 300 || c["jti"] == "" || c["jti"] == nil {
				t.Errorf("claims = %v", c)
			}
			if got, want := form.Get("scope"), strings.Join(slices.Sorted(slices.Values(allScopes)), " "); got != want {
				t.Errorf("scope = %q, want %q", got, want)
			}
		})
	}
}

func stringOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TestCredentialErrors produces each credential row of ARCHITECTURE.md's error table
// from the double's real answers.
func TestCredentialErrors(t *testing.T) {
	rk, other := rsaKeys()[0], rsaKeys()[1]
	tests := []struct {
		name       string
		client     oktatest.Client
		cred       vault.Credential
		opts       oktatest.Options
		cfg        okta.Config
		scope      string
		want       *okta.Error
		wantTokens int
	}{
		{
			name:   "wrong client secret",
			client: oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes},
			cred:   secretCred("0oa1", "wrong-secret-value"),
			want: &okta.Error{Code: okta.CodeInvalidClient, Status: 401, ClientSecret: true,
				Description: "The client secret supplied for a confidential client is invalid."},
			wantTokens: 1,
		},
		{
			name:   "client secret against the org authorization server",
			client: oktatest.Client{ID: "0oa1", Keys: map[string]crypto.PublicKey{"k1": &rk.PublicKey}, GrantedScopes: allScopes},
			cred:   secretCred("0oa1", "some-secret-value"),
			want: &okta.Error{Code: okta.CodeInvalidClient, Status: 401, ClientSecret: true,
				Description: "Client Credentials requests to the Org Authorization Server must use the private_key_jwt token_endpoint_auth_method."},
			wantTokens: 1,
		},
		{
			name:   "wrong private key",
			client: oktatest.Client{ID: "0oa1", Keys: map[string]crypto.PublicKey{"k1": &rk.PublicKey}, GrantedScopes: allScopes},
			cred:   keyCred("0oa1", pkcs8(t, other), "k1"),
			want: &okta.Error{Code: okta.CodeInvalidClient, Status: 401,
				Description: "The client_assertion signature is invalid."},
			wantTokens: 1,
		},
		{
			name:   "unknown kid",
			client: oktatest.Client{ID: "0oa1", Keys: map[string]crypto.PublicKey{"k1": &rk.PublicKey}, GrantedScopes: allScopes},
			cred:   keyCred("0oa1", pkcs8(t, rk), "k2"),
			want: &okta.Error{Code: okta.CodeInvalidClient, Status: 401,
				Description: "The client_assertion JWT kid is invalid."},
			wantTokens: 1,
		},
		{
			name:   "scope silently dropped by Okta",
			client: oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: []string{oktatest.ScopeUsersRead}},
			cred:   secretCred("0oa1", "right"),
			scope:  oktatest.ScopeGroupsRead,
			want: &okta.Error{Code: okta.CodeInsufficientScope, Scope: oktatest.ScopeGroupsRead,
				Description: "Okta did not grant this scope to the service app"},
			wantTokens: 1,
		},
		{
			name:   "invalid_scope for a single-scope request",
			client: oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: []string{oktatest.ScopeUsersRead}, RejectUngrantedScopes: true},
			cred:   secretCred("0oa1", "right"),
			scope:  oktatest.ScopeGroupsRead,
			want: &okta.Error{Code: okta.CodeInsufficientScope, Scope: oktatest.ScopeGroupsRead, Status: 400,
				Description: "The requested scope is invalid, unknown, malformed, or exceeds the scope granted by the resource owner."},
			wantTokens: 2, // the whole set, then the operation's scope alone
		},
		{
			name:       "token endpoint 5xx after retries",
			client:     oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes},
			cred:       secretCred("0oa1", "right"),
			opts:       oktatest.Options{TokenFailures: 100},
			cfg:        okta.Config{RetryBackoff: time.Millisecond},
			want:       &okta.Error{Code: okta.CodeTokenUnavailable, Status: 503},
			wantTokens: 3,
		},
		{
			name:       "token endpoint timeout",
			client:     oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes},
			cred:       secretCred("0oa1", "right"),
			opts:       oktatest.Options{TokenDelay: 5 * time.Second},
			cfg:        okta.Config{Timeout: 50 * time.Millisecond, MaxRetries: -1},
			want:       &okta.Error{Code: okta.CodeTokenTimeout},
			wantTokens: 1,
		},
		{
			name:       "unparseable private key",
			client:     oktatest.Client{ID: "0oa1", GrantedScopes: allScopes},
			cred:       keyCred("0oa1", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", ""),
			want:       &okta.Error{Code: okta.CodeInvalidCredential},
			wantTokens: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := oktatest.New(t, tt.opts)
			srv.AddClient(tt.client)
			ts := newSource(t, tt.cfg)
			cred, _ := loader(tt.cred)
			scope := tt.scope
			if scope == "" {
				scope = oktatest.ScopeUsersRead
			}
			_, err := ts.Authorize(t.Context(), input(srv, "int_1", cred, scope, "GET", "/api/v1/groups"))
			var oe *okta.Error
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v, want *okta.Error", err)
			}
			if diff := cmp.Diff(tt.want, oe, cmpErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if oe.Temporary() != (oe.Code == okta.CodeTokenTimeout || oe.Code == okta.CodeTokenUnavailable) {
				t.Errorf("Temporary() = %v for %s", oe.Temporary(), oe.Code)
			}
			if got := srv.TokenRequests(); got != tt.wantTokens {
				t.Errorf("token requests = %d, want %d", got, tt.wantTokens)
			}
			msg := err.Error()
			for _, s := range []string{tt.cred.ClientSecret.Reveal(), "AAAA", "eyJ"} {
				if s != "" && strings.Contains(msg, s) {
					t.Errorf("error %q contains %q", msg, s)
				}
			}
		})
	}
}

// cmpErr compares the fields the callers use (Err is the wrapped cause, checked by Code).
var cmpErr = cmp.Comparer(func(a, b *okta.Error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Code == b.Code && a.Scope == b.Scope && a.Status == b.Status &&
		a.Description == b.Description && a.ClientSecret == b.ClientSecret
})

// TestPartialScopes: one ungranted scope never breaks operations whose scopes are
// granted, whether Okta drops it silently or refuses the set with invalid_scope.
func TestPartialScopes(t *testing.T) {
	for _, reject := range []bool{false, true} {
		t.Run(map[bool]string{false: "dropped", true: "invalid_scope"}[reject], func(t *testing.T) {
			srv := oktatest.New(t, oktatest.Options{})
			srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "right", RejectUngrantedScopes: reject,
				GrantedScopes: []string{oktatest.ScopeUsersRead, oktatest.ScopeLogsRead}})
			ts := newSource(t, okta.Config{})
			cred, _ := loader(secretCred("0oa1", "right"))
			ops := []struct {
				scope, path string
				ok          bool
			}{
				{oktatest.ScopeUsersRead, "/api/v1/users", true},
				{oktatest.ScopeGroupsRead, "/api/v1/groups", false},
				{oktatest.ScopeLogsRead, "/api/v1/logs", true},
				{oktatest.ScopeAppsRead, "/api/v1/apps", false},
			}
			for range 3 { // repeated calls are served from the cache
				for _, op := range ops {
					a, err := ts.Authorize(t.Context(), input(srv, "int_1", cred, op.scope, "GET", op.path))
					if op.ok {
						if err != nil {
							t.Fatalf("%s: %v", op.scope, err)
						}
						if resp := call(t, srv, a, "GET", op.path); resp.StatusCode != 200 {
							t.Fatalf("%s: API call %d", op.scope, resp.StatusCode)
						}
						continue
					}
					var oe *okta.Error
					if !errors.As(err, &oe) || oe.Code != okta.CodeInsufficientScope || oe.Scope != op.scope {
						t.Fatalf("%s: err = %v, want insufficient_scope naming it", op.scope, err)
					}
				}
			}
			// dropped: one token for the whole set. invalid_scope: the refused set once,
			// then one token per scope.
			want := map[bool]int{false: 1, true: 1 + len(ops)}[reject]
			if got := srv.TokenRequests(); got != want {
				t.Errorf("token requests = %d, want %d", got, want)
			}
		})
	}
}

// TestResourceErrors classifies the double's resource answers: 403 insufficient_scope
// (token carries fewer scopes than the call needs), 401 invalid_token (revoked), 429.
func TestResourceErrors(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{RateLimit: 3})
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: []string{oktatest.ScopeUsersRead}})
	ts := newSource(t, okta.Config{})
	cred, _ := loader(secretCred("0oa1", "right"))
	in := input(srv, "int_1", cred, "", "GET", "/api/v1/groups") // no local scope check
	in.Scopes = []string{oktatest.ScopeUsersRead}
	a, err := ts.Authorize(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	resp := call(t, srv, a, "GET", "/api/v1/groups")
	want := &okta.Error{Code: okta.CodeInsufficientScope, Scope: oktatest.ScopeGroupsRead, Status: 403,
		Description: "The access token provided does not contain the required scopes."}
	if diff := cmp.Diff(want, okta.ClassifyResponse(resp.StatusCode, resp.Header), cmpErr); diff != "" {
		t.Errorf("403 (-want +got):\n%s", diff)
	}

	srv.RevokeTokens()
	resp = call(t, srv, a, "GET", "/api/v1/users")
	e := okta.ClassifyResponse(resp.StatusCode, resp.Header)
	if e == nil || e.Code != okta.CodeInvalidToken || e.Status != 401 {
		t.Fatalf("revoked: %v", e)
	}
	ts.Invalidate("int_1")
	a2, err := ts.Authorize(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if a2.Header.Reveal() == a.Header.Reveal() {
		t.Error("Invalidate did not drop the token")
	}
	if resp := call(t, srv, a2, "GET", "/api/v1/users"); resp.StatusCode != 200 {
		t.Errorf("after invalidate: %d", resp.StatusCode)
	}
	resp = call(t, srv, a2, "GET", "/api/v1/users") // the 4th call in the window
	if e := okta.ClassifyResponse(resp.StatusCode, resp.Header); e == nil || e.Code != okta.CodeRateLimited || !e.Temporary() {
		t.Errorf("429: %v", e)
	}
}

func TestAPIKey(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddAPIToken("00api-token")
	ts := newSource(t, okta.Config{})
	cred, loads := loader(vault.Credential{Type: vault.CredentialTypeAPIKey, Token: secret.New("00api-token")})
	for range 3 {
		a, err := ts.Authorize(t.Context(), input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users"))
		if err != nil {
			t.Fatal(err)
		}
		if a.Header.Reveal() != "SSWS 00api-token" || !a.DPoPProof.IsZero() || a.GrantedScopes != nil {
			t.Fatalf("authorization = %q %v", a.Header.Reveal(), a.GrantedScopes)
		}
		if resp := call(t, srv, a, "GET", "/api/v1/users"); resp.StatusCode != 200 {
			t.Fatalf("API call: %d", resp.StatusCode)
		}
	}
	if loads.Load() != 1 || srv.TokenRequests() != 0 {
		t.Errorf("loads %d, token requests %d; want 1, 0", loads.Load(), srv.TokenRequests())
	}
}

// TestRotation: Invalidate after a credential rotation makes the next call use the new
// credential.
func TestRotation(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "old", GrantedScopes: allScopes})
	ts := newSource(t, okta.Config{})
	var mu sync.Mutex
	current := "old"
	cred := func(context.Context) (vault.Credential, error) {
		mu.Lock()
		defer mu.Unlock()
		return secretCred("0oa1", current), nil
	}
	in := input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")
	if _, err := ts.Authorize(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "new", GrantedScopes: allScopes})
	mu.Lock()
	current = "new"
	mu.Unlock()
	if _, err := ts.Authorize(t.Context(), in); err != nil { // cached: not re-fetched
		t.Fatal(err)
	}
	ts.Invalidate("int_1")
	if _, err := ts.Authorize(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d token requests, want 2", len(reqs))
	}
	if _, pw, _ := basicAuth(reqs[1]); pw != "new" {
		t.Errorf("second token request used %q", pw)
	}
}

func basicAuth(r oktatest.Request) (string, string, bool) {
	req := &http.Request{Header: r.Header}
	return req.BasicAuth()
}

func TestAuthorizeInputErrors(t *testing.T) {
	ts := newSource(t, okta.Config{})
	cred, _ := loader(secretCred("0oa1", "x"))
	loadErr := errors.New("vault down")
	tests := []struct {
		name string
		in   okta.AuthorizeInput
	}{
		{"no integration", okta.AuthorizeInput{OktaOrigin: "https://acme.okta.com", Credential: cred}},
		{"no loader", okta.AuthorizeInput{IntegrationID: "i", OktaOrigin: "https://acme.okta.com"}},
		{"origin with path", okta.AuthorizeInput{IntegrationID: "i", OktaOrigin: "https://acme.okta.com/x", Credential: cred}},
		{"origin not http", okta.AuthorizeInput{IntegrationID: "i", OktaOrigin: "ftp://acme.okta.com", Credential: cred}},
		{"unknown credential type", okta.AuthorizeInput{IntegrationID: "i", OktaOrigin: "https://acme.okta.com",
			Credential: func(context.Context) (vault.Credential, error) { return vault.Credential{Type: "x"}, nil }}},
		// Integration j: i's invalid_credential above is remembered (FailureTTL).
		{"loader fails", okta.AuthorizeInput{IntegrationID: "j", OktaOrigin: "https://acme.okta.com",
			Credential: func(context.Context) (vault.Credential, error) { return vault.Credential{}, loadErr }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ts.Authorize(t.Context(), tt.in); err == nil {
				t.Fatal("no error")
			}
		})
	}
	// Asked again at once: a failing vault is not remembered (nothing reached Okta).
	_, err := ts.Authorize(t.Context(), tests[len(tests)-1].in)
	if !errors.Is(err, loadErr) {
		t.Errorf("loader error not wrapped, or remembered: %v", err)
	}
}

func TestCallerDeadlineWhileWaiting(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{TokenDelay: 2 * time.Second})
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes})
	ts := newSource(t, okta.Config{})
	cred, _ := loader(secretCred("0oa1", "right"))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := ts.Authorize(ctx, input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users"))
	var oe *okta.Error
	if !errors.As(err, &oe) || oe.Code != okta.CodeTokenTimeout || !oe.Temporary() {
		t.Errorf("err = %v, want token_timeout", err)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddClient(oktatest.Client{ID: "0oa1", Secret: "right", GrantedScopes: allScopes})
	ignore := goleak.IgnoreCurrent()
	tr := &http.Transport{}
	ts := okta.NewTokenSource(okta.Config{HTTPClient: &http.Client{Transport: tr}})
	cred, _ := loader(secretCred("0oa1", "right"))
	for i := range 5 { // five cached tokens, each with its refresh goroutine
		in := input(srv, "int_"+string(rune('a'+i)), cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")
		if _, err := ts.Authorize(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	ts.Close()
	tr.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
	_, err := ts.Authorize(t.Context(), input(srv, "int_a", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users"))
	if !errors.Is(err, okta.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

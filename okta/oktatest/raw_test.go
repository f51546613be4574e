package oktatest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quantaseal/gateway/okta/oktatest"
)

var b64 = base64.RawURLEncoding

// es256 signs a compact JWS (test helper; the product signer lives in package okta).
func es256(t *testing.T, k *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	header["alg"] = "ES256"
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	in := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	d := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + b64.EncodeToString(sig)
}

type rawCase struct {
	name        string
	method      string
	path        string // escaped path and query
	header      map[string]string
	body        string
	wantStatus  int
	wantInBody  string
	wantWWWAuth string
}

func runRaw(t *testing.T, srv *oktatest.Server, tests []rawCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL()+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantInBody) ||
				!strings.Contains(resp.Header.Get("WWW-Authenticate"), tt.wantWWWAuth) {
				t.Errorf("got %d %s (WWW-Authenticate %q); want %d containing %q / %q",
					resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"), tt.wantStatus, tt.wantInBody, tt.wantWWWAuth)
			}
			if resp.Header.Get("X-Okta-Request-Id") == "" || resp.Header.Get("X-Rate-Limit-Reset") == "" {
				t.Error("rate-limit / request-id headers missing")
			}
		})
	}
}

func TestRawAPI(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddAPIToken(apiToken)
	ssws := map[string]string{"Authorization": "SSWS " + apiToken}
	runRaw(t, srv, []rawCase{
		{"login with raw @", "GET", "/api/v1/users/alice@example.com", ssws, "", 200, oktatest.UserAlice, ""},
		{"login with %40", "GET", "/api/v1/users/alice%40example.com", ssws, "", 200, oktatest.UserAlice, ""},
		{"%2F is not a separator", "GET", "/api/v1/users/dom%2Fsvc@example.com", ssws, "", 404, "E0000007", ""},
		{"literal slash is another path", "GET", "/api/v1/users/dom/svc@example.com", ssws, "", 404, "E0000007", ""},
		{"method not allowed", "DELETE", "/api/v1/groups", ssws, "", 405, "E0000022", ""},
		{"unknown endpoint", "GET", "/api/v1/factors", ssws, "", 404, "E0000007", ""},
		{"bad SSWS token", "GET", "/api/v1/users", map[string]string{"Authorization": "SSWS nope"}, "", 401, "E0000011", ""},
		{"no Authorization", "GET", "/api/v1/users", nil, "", 401, "E0000011", ""},
		{"unknown Bearer token", "GET", "/api/v1/users", map[string]string{"Authorization": "Bearer nope"}, "", 401, "E0000011", `error="invalid_token"`},
		{"malformed create body", "POST", "/api/v1/users", ssws, "{", 400, "E0000003", ""},
		{"create without login", "POST", "/api/v1/users", ssws, `{"profile":{}}`, 400, "E0000001", ""},
		{"create staged", "POST", "/api/v1/users?activate=false", ssws, `{"profile":{"login":"new@example.com"}}`, 200, `"status":"STAGED"`, ""},
		{"deactivate async", "POST", "/api/v1/users/" + oktatest.UserBob + "/lifecycle/deactivate",
			map[string]string{"Authorization": "SSWS " + apiToken, "Prefer": "respond-async"}, "", 200, "{}", ""},
		{"deactivate again", "POST", "/api/v1/users/" + oktatest.UserBob + "/lifecycle/deactivate", ssws, "", 400, "E0000001", ""},
		{"bad search", "GET", "/api/v1/users?search=status%20ne%20%22X%22", ssws, "", 400, "E0000031", ""},
		{"search finds deprovisioned", "GET", "/api/v1/users?search=status%20eq%20%22DEPROVISIONED%22", ssws, "", 200, oktatest.UserErin, ""},
		{"bad since", "GET", "/api/v1/logs?since=yesterday", ssws, "", 400, "E0000001", ""},
		{"log strings", "GET", "/api/v1/logs?limit=1", ssws, "", 200, `"postalCode":"10013"`, ""},
		{"apps carry signOnMode", "GET", "/api/v1/apps?limit=1", ssws, "", 200, `"signOnMode":"SAML_2_0"`, ""},
	})
}

func TestRawTokenEndpoint(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddClient(oktatest.Client{ID: "0oa1", Keys: map[string]crypto.PublicKey{"k1": &k.PublicKey}, GrantedScopes: []string{oktatest.ScopeUsersRead}})
	srv.AddClient(oktatest.Client{ID: "0oa2", Secret: "sec ret/+", GrantedScopes: []string{oktatest.ScopeUsersRead}})
	now := time.Now()
	assertion := func(mod func(h, c map[string]any)) string {
		h := map[string]any{"kid": "k1"}
		c := map[string]any{"iss": "0oa1", "sub": "0oa1", "aud": srv.Origin() + "/oauth2/v1/token", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}
		if mod != nil {
			mod(h, c)
		}
		return es256(t, k, h, c)
	}
	form := func(a string, extra ...string) string {
		v := url.Values{"grant_type": {"client_credentials"}, "scope": {"okta.users.read okta.groups.read"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v.Encode()
	}
	formCT := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	replayed := assertion(func(h, c map[string]any) { c["jti"] = "once" })
	basic := func(id, sec string) map[string]string {
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(sec))
		return map[string]string{"Authorization": r.Header.Get("Authorization"), "Content-Type": "application/x-www-form-urlencoded"}
	}
	runRaw(t, srv, []rawCase{
		{"assertion in body, ungranted scope dropped", "POST", "/oauth2/v1/token", formCT, form(assertion(nil)), 200, `"scope":"okta.users.read"`, ""},
		{"params in the query (SDK v5.0.2), no jti", "POST", "/oauth2/v1/token?" + form(assertion(nil)), formCT, "", 200, `"token_type":"Bearer"`, ""},
		{"jti first use", "POST", "/oauth2/v1/token", formCT, form(replayed), 200, "access_token", ""},
		{"jti replayed", "POST", "/oauth2/v1/token", formCT, form(replayed), 401, "already been used", ""},
		{"wrong aud", "POST", "/oauth2/v1/token", formCT, form(assertion(func(h, c map[string]any) { c["aud"] = "https://acme.okta.com/oauth2/v1/token" })), 401, "audience claim", ""},
		{"expired", "POST", "/oauth2/v1/token", formCT, form(assertion(func(h, c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })), 401, "is expired", ""},
		{"exp too far", "POST", "/oauth2/v1/token", formCT, form(assertion(func(h, c map[string]any) { c["exp"] = now.Add(3 * time.Hour).Unix() })), 401, "too far", ""},
		{"no exp", "POST", "/oauth2/v1/token", formCT, form(assertion(func(h, c map[string]any) { delete(c, "exp") })), 401, "is expired", ""},
		{"unknown kid", "POST", "/oauth2/v1/token", formCT, form(assertion(func(h, c map[string]any) { h["kid"] = "k9" })), 401, "kid is invalid", ""},
		{"sub differs", "POST", "/oauth2/v1/token", formCT, form(assertion(func(h, c map[string]any) { c["sub"] = "x" })), 401, "invalid_client", ""},
		{"client_id param differs", "POST", "/oauth2/v1/token", formCT, form(assertion(nil), "client_id", "0oa2"), 401, "client_id", ""},
		{"no credentials", "POST", "/oauth2/v1/token", formCT, "grant_type=client_credentials&scope=okta.users.read", 401, "No client credentials found.", ""},
		{"no scope", "POST", "/oauth2/v1/token", formCT, form(assertion(nil), "scope", ""), 400, "No scopes were requested.", ""},
		{"wrong grant", "POST", "/oauth2/v1/token", formCT, form(assertion(nil), "grant_type", "password"), 400, "unsupported_grant_type", ""},
		{"GET", "GET", "/oauth2/v1/token", nil, "", 405, "E0000022", ""},
		{"client secret, form-encoded Basic", "POST", "/oauth2/v1/token", basic("0oa2", "sec ret/+"), "grant_type=client_credentials&scope=okta.users.read", 200, "access_token", ""},
		{"wrong client secret", "POST", "/oauth2/v1/token", basic("0oa2", "nope"), "grant_type=client_credentials&scope=okta.users.read", 401, "client secret supplied", ""},
		{"secret for a key-only app", "POST", "/oauth2/v1/token", basic("0oa1", "x"), "grant_type=client_credentials&scope=okta.users.read", 401, "private_key_jwt", ""},
	})
	if got := srv.TokenRequests(); got != 18 {
		t.Errorf("TokenRequests = %d, want 18", got)
	}
}

// TestRawDPoPBinding checks the resource side of DPoP: the proof key must be the one the
// token is bound to (cnf.jkt), and a DPoP-bound token cannot be used as Bearer.
func TestRawDPoPBinding(t *testing.T) {
	keyA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyB, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddClient(oktatest.Client{ID: "0oa2", Secret: "sec", GrantedScopes: []string{oktatest.ScopeUsersRead}, RequireDPoP: true})
	proof := func(k *ecdsa.PrivateKey, method, htu, nonce, token string) string {
		pub, _ := k.PublicKey.Bytes()
		c := map[string]any{"jti": b64.EncodeToString([]byte(time.Now().String() + htu + nonce + token)), "htm": method, "htu": htu, "iat": time.Now().Unix()}
		if nonce != "" {
			c["nonce"] = nonce
		}
		if token != "" {
			sum := sha256.Sum256([]byte(token))
			c["ath"] = b64.EncodeToString(sum[:])
		}
		return es256(t, k, map[string]any{"typ": "dpop+jwt", "jwk": map[string]string{
			"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(pub[1:33]), "y": b64.EncodeToString(pub[33:])}}, c)
	}
	tokenReq := func(p string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL()+"/oauth2/v1/token",
			strings.NewReader("grant_type=client_credentials&scope=okta.users.read"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("0oa2", "sec")
		req.Header.Set("DPoP", p)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	tokenURL := srv.Origin() + "/oauth2/v1/token"
	resp := tokenReq(proof(keyA, "POST", tokenURL, "", ""))
	resp.Body.Close()
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != 400 || nonce == "" {
		t.Fatalf("first proof: %d, nonce %q", resp.StatusCode, nonce)
	}
	resp = tokenReq(proof(keyA, "POST", tokenURL, nonce, ""))
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	err := json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || tok.TokenType != "DPoP" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	users := srv.URL() + "/api/v1/users"
	runRaw(t, srv, []rawCase{
		{"proof by another key", "GET", "/api/v1/users", map[string]string{"Authorization": "DPoP " + tok.AccessToken, "DPoP": proof(keyB, "GET", users, "", tok.AccessToken)}, "", 400, "", "invalid_access_token_dpop_binding"},
		{"DPoP token as Bearer", "GET", "/api/v1/users", map[string]string{"Authorization": "Bearer " + tok.AccessToken}, "", 400, "", `error="invalid_request"`},
		{"wrong ath", "GET", "/api/v1/users", map[string]string{"Authorization": "DPoP " + tok.AccessToken, "DPoP": proof(keyA, "GET", users, "", "other")}, "", 400, "", "'ath' claim"},
		{"htu with query", "GET", "/api/v1/users?limit=1", map[string]string{"Authorization": "DPoP " + tok.AccessToken, "DPoP": proof(keyA, "GET", users+"?limit=1", "", tok.AccessToken)}, "", 400, "", "'htu' claim"},
		{"bound key", "GET", "/api/v1/users?limit=1", map[string]string{"Authorization": "DPoP " + tok.AccessToken, "DPoP": proof(keyA, "GET", users, "", tok.AccessToken)}, "", 200, oktatest.UserAlice, ""},
	})
}

// TestRawTokenRateLimit: with TokenRateLimit, token requests beyond the window's
// allowance get 429 E0000047 with the token bucket's X-Rate-Limit-* headers (API calls
// are counted apart), and the next window allows them again.
func TestRawTokenRateLimit(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	srv := oktatest.New(t, oktatest.Options{TokenRateLimit: 2, RateLimit: 1, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	srv.AddClient(oktatest.Client{ID: "0oa2", Secret: "right", GrantedScopes: []string{oktatest.ScopeUsersRead}})
	post := func() (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL()+"/oauth2/v1/token", strings.NewReader("grant_type=client_credentials&scope=okta.users.read"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("0oa2", "right")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}
	reset := strconv.FormatInt(now.Add(time.Minute).Unix(), 10)
	tests := []struct {
		advance    time.Duration
		wantStatus int
		remaining  string
		reset      string
	}{
		{0, 200, "1", reset},
		{10 * time.Second, 200, "0", reset},
		{20 * time.Second, 429, "0", reset},
		{30 * time.Second, 200, "1", strconv.FormatInt(now.Add(2*time.Minute).Unix(), 10)}, // a new window from here
	}
	for i, tt := range tests {
		mu.Lock()
		now = now.Add(tt.advance)
		mu.Unlock()
		status, h, body := post()
		if status != tt.wantStatus || h.Get("X-Rate-Limit-Limit") != "2" || h.Get("X-Rate-Limit-Remaining") != tt.remaining ||
			h.Get("X-Rate-Limit-Reset") != tt.reset || h.Get("Date") == "" {
			t.Errorf("request %d: %d %v, want %d remaining %s reset %s", i, status, h, tt.wantStatus, tt.remaining, tt.reset)
		}
		if status == 429 && !strings.Contains(body, `"errorCode":"E0000047"`) {
			t.Errorf("request %d: 429 body %s", i, body)
		}
	}
	if got := srv.TokenRequests(); got != len(tests) {
		t.Errorf("TokenRequests = %d, want %d (a refused request reached the endpoint)", got, len(tests))
	}
}

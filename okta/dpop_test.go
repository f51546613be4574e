package okta_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/quantaseal/gateway/okta"
	"github.com/quantaseal/gateway/okta/oktatest"
	"github.com/quantaseal/gateway/vault"
)

func TestDPoP(t *testing.T) {
	ek := newECKey(t)
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddClient(oktatest.Client{ID: "0oa1", Keys: map[string]crypto.PublicKey{"k1": &ek.PublicKey}, GrantedScopes: allScopes, RequireDPoP: true})
	ts := newSource(t, okta.Config{})
	cred, _ := loader(keyCred("0oa1", pkcs8(t, ek), "k1"))

	a, err := ts.Authorize(t.Context(), input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users?limit=2"))
	if err != nil {
		t.Fatal(err)
	}
	// proofless → invalid_dpop_proof; proof → use_dpop_nonce; proof+nonce → token.
	if got := srv.TokenRequests(); got != 3 {
		t.Errorf("token requests = %d, want 3", got)
	}
	if !strings.HasPrefix(a.Header.Reveal(), "DPoP ") || a.DPoPProof.IsZero() {
		t.Fatalf("authorization = %q, proof set %v", a.Header.Reveal(), !a.DPoPProof.IsZero())
	}
	reqs := srv.Requests()
	if reqs[0].Header.Get("DPoP") != "" || reqs[1].Header.Get("DPoP") == "" {
		t.Error("first token request should be proofless, the second carry a proof")
	}
	_, c1 := jwtParts(t, reqs[1].Header.Get("DPoP"))
	h2, c2 := jwtParts(t, reqs[2].Header.Get("DPoP"))
	if c1["nonce"] != nil || c2["nonce"] == nil || c2["htm"] != "POST" || c2["htu"] != srv.Origin()+"/oauth2/v1/token" {
		t.Errorf("token proofs: %v / %v", c1, c2)
	}
	jwk := h2["jwk"].(map[string]any)
	clientPub, _ := ek.PublicKey.Bytes()
	if h2["typ"] != "dpop+jwt" || h2["alg"] != "ES256" || jwk["kty"] != "EC" || jwk["x"] == b64.EncodeToString(clientPub[1:33]) {
		t.Errorf("proof header %v (DPoP key must differ from the client key)", h2)
	}
	_, rc := jwtParts(t, a.DPoPProof.Reveal())
	tok := strings.TrimPrefix(a.Header.Reveal(), "DPoP ")
	if rc["htm"] != "GET" || rc["htu"] != srv.URL()+"/api/v1/users" || rc["ath"] != ath(tok) || rc["jti"] == nil || rc["iat"] == nil {
		t.Errorf("resource proof claims = %v", rc)
	}

	if resp := call(t, srv, a, "GET", "/api/v1/users?limit=2"); resp.StatusCode != 200 {
		t.Fatalf("resource call: %d %v", resp.StatusCode, resp.Header)
	}
	// Each Authorize gives a fresh proof: a second call works.
	b, err := ts.Authorize(t.Context(), input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users?limit=2"))
	if err != nil {
		t.Fatal(err)
	}
	if b.DPoPProof.Reveal() == a.DPoPProof.Reveal() {
		t.Error("proof reused")
	}
	if resp := call(t, srv, b, "GET", "/api/v1/users?limit=2"); resp.StatusCode != 200 {
		t.Fatalf("second resource call: %d", resp.StatusCode)
	}

	// Failures Okta reports for resource calls, classified.
	tests := []struct {
		name   string
		auth   okta.Authorization
		method string
		path   string
	}{
		{"replayed proof", a, "GET", "/api/v1/users?limit=2"},
		{"missing proof", okta.Authorization{Header: a.Header}, "GET", "/api/v1/users"},
		{"proof for another URL", authorizeFor(t, ts, srv, cred, "/api/v1/groups"), "GET", "/api/v1/users"},
		{"proof for another method", authorizeFor(t, ts, srv, cred, "/api/v1/users"), "POST", "/api/v1/users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := call(t, srv, tt.auth, tt.method, tt.path)
			e := okta.ClassifyResponse(resp.StatusCode, resp.Header)
			if e == nil || e.Code != okta.CodeInvalidDPoPProof {
				t.Errorf("status %d %q → %v, want invalid_dpop_proof", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), e)
			}
		})
	}

	// The nonce is remembered per origin: another integration's first proof carries it
	// (proofless → invalid_dpop_proof → proof with the known nonce → token).
	before := srv.TokenRequests()
	if _, err := ts.Authorize(t.Context(), input(srv, "int_2", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")); err != nil {
		t.Fatal(err)
	}
	if got := srv.TokenRequests() - before; got != 2 {
		t.Errorf("second integration: %d token requests, want 2", got)
	}
	// A rotated nonce costs one more use_dpop_nonce round, never a loop.
	srv.RotateDPoPNonce()
	ts.Invalidate("int_2")
	before = srv.TokenRequests()
	if _, err := ts.Authorize(t.Context(), input(srv, "int_2", cred, oktatest.ScopeUsersRead, "GET", "/api/v1/users")); err != nil {
		t.Fatal(err)
	}
	if got := srv.TokenRequests() - before; got != 3 {
		t.Errorf("after nonce rotation: %d token requests, want 3", got)
	}
}

func authorizeFor(t *testing.T, ts *okta.TokenSource, srv *oktatest.Server, cred func(context.Context) (vault.Credential, error), path string) okta.Authorization {
	t.Helper()
	a, err := ts.Authorize(t.Context(), input(srv, "int_1", cred, oktatest.ScopeUsersRead, "GET", path))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ath(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return b64.EncodeToString(sum[:])
}

// TestDPoPNonceBounded: a token endpoint that keeps demanding the same nonce, or keeps
// rejecting proofs, is given up on after a bounded number of requests.
func TestDPoPNonceBounded(t *testing.T) {
	tests := []struct {
		name      string
		answer    func(w http.ResponseWriter)
		wantCalls int
	}{
		{"use_dpop_nonce forever", func(w http.ResponseWriter) {
			w.Header().Set("DPoP-Nonce", "same")
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof."}`))
		}, 2},
		{"invalid_dpop_proof forever", func(w http.ResponseWriter) {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"invalid_dpop_proof","error_description":"The DPoP proof JWT header is missing."}`))
		}, 2},
		{"use_dpop_nonce without nonce", func(w http.ResponseWriter) {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"use_dpop_nonce"}`))
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			fake := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				calls++
				mu.Unlock()
				tt.answer(w)
			})
			ts := newSource(t, okta.Config{})
			cred, _ := loader(secretCred("0oa1", "s3cret"))
			_, err := ts.Authorize(t.Context(), okta.AuthorizeInput{IntegrationID: "int_1", OktaOrigin: fake, Scopes: allScopes,
				Method: "GET", URL: fake + "/api/v1/users", Credential: cred})
			var oe *okta.Error
			if !errors.As(err, &oe) || oe.Code != okta.CodeInvalidDPoPProof {
				t.Fatalf("err = %v, want invalid_dpop_proof", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if calls != tt.wantCalls {
				t.Errorf("token requests = %d, want %d", calls, tt.wantCalls)
			}
		})
	}
}

// TestTokenEndpointOtherAnswers covers token-endpoint answers the double does not
// produce: 429, other OAuth errors, and malformed 200s.
func TestTokenEndpointOtherAnswers(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
		temp   bool
	}{
		{"429 E0000047", 429, `{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}`, okta.CodeRateLimited, true},
		{"access_denied", 403, `{"error":"access_denied","error_description":"Network zone."}`, okta.CodeTokenRejected, false},
		{"200 without token", 200, `{"token_type":"Bearer"}`, okta.CodeTokenUnavailable, true},
		{"200 DPoP token without a proof", 200, `{"token_type":"DPoP","access_token":"x","expires_in":3600}`, okta.CodeTokenUnavailable, true},
		{"200 not JSON", 200, `<html>`, okta.CodeTokenUnavailable, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			ts := newSource(t, okta.Config{})
			cred, _ := loader(secretCred("0oa1", "s3cret"))
			_, err := ts.Authorize(t.Context(), okta.AuthorizeInput{IntegrationID: "int_1", OktaOrigin: fake, Scopes: allScopes,
				Method: "GET", URL: fake + "/api/v1/users", Credential: cred})
			var oe *okta.Error
			if !errors.As(err, &oe) || oe.Code != tt.want || oe.Temporary() != tt.temp || oe.Status != tt.status {
				t.Fatalf("err = %v, want %s (temporary %v)", err, tt.want, tt.temp)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

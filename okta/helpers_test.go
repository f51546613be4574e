package okta_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/okta"
	"github.com/quantaseal/gateway/okta/oktatest"
	"github.com/quantaseal/gateway/vault"
)

var b64 = base64.RawURLEncoding

// RSA key generation is slow under -race: make the two RSA keys once.
var rsaKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemOf(t *testing.T, typ string, der []byte, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8(t *testing.T, k crypto.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	return pemOf(t, "PRIVATE KEY", der, err)
}

func ecJWK(k *ecdsa.PrivateKey, kid string) string {
	pub, _ := k.PublicKey.Bytes()
	d, _ := k.Bytes()
	m := map[string]string{"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(pub[1:33]), "y": b64.EncodeToString(pub[33:]), "d": b64.EncodeToString(d), "kid": kid}
	b, _ := json.Marshal(m)
	return string(b)
}

func rsaJWK(k *rsa.PrivateKey, kid string) string {
	m := map[string]string{"kty": "RSA", "kid": kid,
		"n": b64.EncodeToString(k.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		"d": b64.EncodeToString(k.D.Bytes()), "p": b64.EncodeToString(k.Primes[0].Bytes()), "q": b64.EncodeToString(k.Primes[1].Bytes())}
	b, _ := json.Marshal(m)
	return string(b)
}

// loader returns a Credential func that counts its calls.
func loader(c vault.Credential) (func(context.Context) (vault.Credential, error), *atomic.Int64) {
	var n atomic.Int64
	return func(context.Context) (vault.Credential, error) {
		n.Add(1)
		return c, nil
	}, &n
}

func secretCred(id, sec string) vault.Credential {
	return vault.Credential{Type: vault.CredentialTypeOAuth2Client, ClientID: id, ClientSecret: secret.New(sec)}
}

func keyCred(id, key, kid string) vault.Credential {
	return vault.Credential{Type: vault.CredentialTypeOAuth2Client, ClientID: id, PrivateKey: secret.New(key), PrivateKeyID: kid}
}

var allScopes = []string{oktatest.ScopeUsersRead, oktatest.ScopeUsersManage, oktatest.ScopeGroupsRead, oktatest.ScopeAppsRead, oktatest.ScopeLogsRead}

func input(srv *oktatest.Server, integration string, cred func(context.Context) (vault.Credential, error), scope, method, path string) okta.AuthorizeInput {
	return okta.AuthorizeInput{
		IntegrationID: integration, OktaOrigin: srv.Origin(), Scopes: allScopes, Scope: scope,
		Method: method, URL: srv.URL() + path, Credential: cred,
	}
}

// call sends the authorized request to the double and returns the response (body closed).
func call(t *testing.T, srv *oktatest.Server, a okta.Authorization, method, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", a.Header.Reveal())
	if !a.DPoPProof.IsZero() {
		req.Header.Set("DPoP", a.DPoPProof.Reveal())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// memTransport serves requests in memory through h: usable inside a synctest bubble.
type memTransport struct{ h http.Handler }

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// jwtParts decodes a compact JWS's header and claims.
func jwtParts(t *testing.T, s string) (header, claims map[string]any) {
	t.Helper()
	p := strings.Split(s, ".")
	if len(p) != 3 {
		t.Fatalf("not a JWS: %d parts", len(p))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := b64.DecodeString(p[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// httptestServer serves h on loopback and returns its origin.
func httptestServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

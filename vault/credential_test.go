package vault_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/vault"
)

type testKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

var keys = sync.OnceValue(func() testKeys {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return testKeys{rsa: r, ec: e}
})

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaPKCS1() string { return pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(keys().rsa)) }
func rsaPKCS8() string {
	der, _ := x509.MarshalPKCS8PrivateKey(keys().rsa)
	return pemOf("PRIVATE KEY", der)
}
func ecPKCS8() string {
	der, _ := x509.MarshalPKCS8PrivateKey(keys().ec)
	return pemOf("PRIVATE KEY", der)
}
func ecSEC1() string {
	der, _ := x509.MarshalECPrivateKey(keys().ec)
	return pemOf("EC PRIVATE KEY", der)
}

func rsaJWK(extra map[string]any) string {
	k := keys().rsa
	m := map[string]any{
		"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()),
		"d": b64(k.D.Bytes()), "p": b64(k.Primes[0].Bytes()), "q": b64(k.Primes[1].Bytes()),
	}
	for key, v := range extra {
		m[key] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func ecJWK(extra map[string]any) string {
	k := keys().ec
	pub, _ := k.PublicKey.Bytes()
	d, _ := k.Bytes()
	m := map[string]any{"kty": "EC", "crv": "P-256", "x": b64(pub[1:33]), "y": b64(pub[33:]), "d": b64(d)}
	for key, v := range extra {
		m[key] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// thumbprint is RFC 7638 §3 computed independently: json.Marshal sorts map keys, and the
// required members' values have no characters that need escaping.
func thumbprint(m map[string]string) string {
	b, _ := json.Marshal(m)
	sum := sha256.Sum256(b)
	return "jwk-sha256:" + b64(sum[:])
}

func rsaThumbprint() string {
	k := keys().rsa
	return thumbprint(map[string]string{"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
}

func ecThumbprint() string {
	pub, _ := keys().ec.PublicKey.Bytes()
	return thumbprint(map[string]string{"kty": "EC", "crv": "P-256", "x": b64(pub[1:33]), "y": b64(pub[33:])})
}

func oauthSecret() vault.Credential {
	return vault.Credential{Type: vault.CredentialTypeOAuth2Client, ClientID: "0oa1client", ClientSecret: secret.New(clientSecret)}
}

func apiKey() vault.Credential {
	return vault.Credential{Type: vault.CredentialTypeAPIKey, Token: secret.New(apiToken)}
}

func withKey(pemOrJWK, kid string) vault.Credential {
	return vault.Credential{Type: vault.CredentialTypeOAuth2Client, ClientID: "0oa1client", PrivateKey: secret.New(pemOrJWK), PrivateKeyID: kid}
}

// revealed makes a Credential comparable with cmp (Secret has unexported fields).
type revealed struct {
	Type, ClientID, ClientSecret, PrivateKey, PrivateKeyID, Token string
}

func reveal(c vault.Credential) revealed {
	return revealed{c.Type, c.ClientID, c.ClientSecret.Reveal(), c.PrivateKey.Reveal(), c.PrivateKeyID, c.Token.Reveal()}
}

func checkSigner(t *testing.T, s crypto.Signer) {
	t.Helper()
	digest := sha256.Sum256([]byte("payload"))
	sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	switch pub := s.Public().(type) {
	case *rsa.PublicKey:
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			err = errors.New("bad signature")
		}
	}
	if err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
}

func TestSealValidation(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalPKCS8PrivateKey(p384)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPub, _ := otherEC.PublicKey.Bytes()
	cert := pemOf("CERTIFICATE", []byte{1, 2, 3})

	tests := []struct {
		name      string
		tenant    string
		credName  string
		credType  string
		cred      vault.Credential
		wantField string
	}{
		{"no tenant", "", "n", "api_key", apiKey(), "tenant_id"},
		{"no name", tenantA, "", "api_key", apiKey(), "name"},
		{"name with newline", tenantA, "a\nb", "api_key", apiKey(), "name"},
		{"name too long", tenantA, strings.Repeat("x", 201), "api_key", apiKey(), "name"},
		{"no type", tenantA, "n", "", vault.Credential{Token: secret.New("t")}, "credential_type"},
		{"unknown type", tenantA, "n", "basic", vault.Credential{Token: secret.New("t")}, "credential_type"},
		{"type mismatch", tenantA, "n", "oauth2_client", apiKey(), "credential_type"},
		{"api_key without token", tenantA, "n", "api_key", vault.Credential{}, "secret.token"},
		{"api_key token with CRLF", tenantA, "n", "api_key", vault.Credential{Token: secret.New("tok\r\nX-Evil: 1")}, "secret.token"},
		{"api_key token with space", tenantA, "n", "api_key", vault.Credential{Token: secret.New("a b")}, "secret.token"},
		{"api_key token too long", tenantA, "n", "api_key", vault.Credential{Token: secret.New(strings.Repeat("a", 4097))}, "secret.token"},
		{"api_key with client_id", tenantA, "n", "api_key", vault.Credential{Token: secret.New("t"), ClientID: "c"}, "secret"},
		{"oauth without client_id", tenantA, "n", "oauth2_client", vault.Credential{ClientSecret: secret.New("s")}, "secret.client_id"},
		{"oauth client_id with space", tenantA, "n", "oauth2_client", vault.Credential{ClientID: "a b", ClientSecret: secret.New("s")}, "secret.client_id"},
		{"oauth neither", tenantA, "n", "oauth2_client", vault.Credential{ClientID: "c"}, "secret"},
		{"oauth both", tenantA, "n", "oauth2_client", vault.Credential{ClientID: "c", ClientSecret: secret.New("s"), PrivateKey: secret.New(ecPKCS8())}, "secret"},
		{"oauth with token", tenantA, "n", "oauth2_client", vault.Credential{ClientID: "c", ClientSecret: secret.New("s"), Token: secret.New("t")}, "secret.token"},
		{"oauth secret with kid", tenantA, "n", "oauth2_client", vault.Credential{ClientID: "c", ClientSecret: secret.New("s"), PrivateKeyID: "k"}, "secret.private_key_id"},
		{"oauth secret with control char", tenantA, "n", "oauth2_client", vault.Credential{ClientID: "c", ClientSecret: secret.New("s\x00")}, "secret.client_secret"},
		{"key garbage", tenantA, "n", "oauth2_client", withKey("not a key", ""), "secret.private_key"},
		{"key bad PEM body", tenantA, "n", "oauth2_client", withKey(pemOf("PRIVATE KEY", []byte("junk")), ""), "secret.private_key"},
		{"key PEM certificate", tenantA, "n", "oauth2_client", withKey(cert, ""), "secret.private_key"},
		{"key two PEM blocks", tenantA, "n", "oauth2_client", withKey(ecPKCS8()+ecPKCS8(), ""), "secret.private_key"},
		{"key RSA 1024", tenantA, "n", "oauth2_client", withKey(pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)), ""), "secret.private_key"},
		{"key P-384", tenantA, "n", "oauth2_client", withKey(pemOf("PRIVATE KEY", p384der), ""), "secret.private_key"},
		{"JWK not JSON", tenantA, "n", "oauth2_client", withKey("{nope", ""), "secret.private_key"},
		{"JWK public only", tenantA, "n", "oauth2_client", withKey(ecJWK(map[string]any{"d": ""}), ""), "secret.private_key"},
		{"JWK oct", tenantA, "n", "oauth2_client", withKey(`{"kty":"oct","k":"AAAA","d":"AA"}`, ""), "secret.private_key"},
		{"JWK EC wrong alg", tenantA, "n", "oauth2_client", withKey(ecJWK(map[string]any{"alg": "RS256"}), ""), "secret.private_key"},
		{"JWK EC wrong curve", tenantA, "n", "oauth2_client", withKey(ecJWK(map[string]any{"crv": "P-384"}), ""), "secret.private_key"},
		{"JWK EC x,y of another key", tenantA, "n", "oauth2_client", withKey(ecJWK(map[string]any{"x": b64(otherPub[1:33]), "y": b64(otherPub[33:])}), ""), "secret.private_key"},
		{"JWK EC short d", tenantA, "n", "oauth2_client", withKey(ecJWK(map[string]any{"d": "AAAA"}), ""), "secret.private_key"},
		{"JWK RSA wrong alg", tenantA, "n", "oauth2_client", withKey(rsaJWK(map[string]any{"alg": "ES256"}), ""), "secret.private_key"},
		{"JWK RSA missing p", tenantA, "n", "oauth2_client", withKey(rsaJWK(map[string]any{"p": ""}), ""), "secret.private_key"},
		{"JWK RSA inconsistent d", tenantA, "n", "oauth2_client", withKey(rsaJWK(map[string]any{"d": "AQAB"}), ""), "secret.private_key"},
		{"JWK kid differs", tenantA, "n", "oauth2_client", withKey(ecJWK(map[string]any{"kid": "a"}), "b"), "secret.private_key_id"},
		{"kid with newline", tenantA, "n", "oauth2_client", withKey(ecPKCS8(), "a\nb"), "secret.private_key_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 0)
			_, err := h.v.Seal(t.Context(), tt.tenant, tt.credName, tt.credType, tt.cred)
			var ve *vault.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Seal error = %v, want *ValidationError", err)
			}
			if ve.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (%v)", ve.Field, tt.wantField, err)
			}
			for _, s := range []string{tt.cred.ClientSecret.Reveal(), tt.cred.Token.Reveal(), tt.cred.PrivateKey.Reveal()} {
				if len(s) > 3 && strings.Contains(err.Error(), s) {
					t.Errorf("error quotes the secret: %v", err)
				}
			}
			if keys, creds := h.store.Counts(); keys != 0 || creds != 0 || h.kms.Wraps() != 0 {
				t.Errorf("invalid input touched KMS or store: keys=%d creds=%d wraps=%d", keys, creds, h.kms.Wraps())
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	h := newHarness(t, 0)
	ctx := t.Context()
	seal := func(tenant string, c vault.Credential) string {
		t.Helper()
		m, err := h.v.Seal(ctx, tenant, "n", c.Type, c)
		if err != nil {
			t.Fatal(err)
		}
		return m.Fingerprint
	}
	a1, a2 := seal(tenantA, apiKey()), seal(tenantA, apiKey())
	b1 := seal(tenantB, apiKey())
	other := apiKey()
	other.Token = secret.New("another-token")
	a3 := seal(tenantA, other)
	if a1 != a2 {
		t.Errorf("same secret, same tenant: %q != %q", a1, a2)
	}
	if a1 == b1 || a1 == a3 {
		t.Errorf("fingerprint does not depend on tenant or secret: %q %q %q", a1, b1, a3)
	}
	// The fingerprint is not a plain hash of the secret.
	plain := sha256.Sum256([]byte(apiToken))
	if strings.Contains(a1, b64(plain[:16])) || strings.Contains(a1, b64(plain[:])) {
		t.Error("fingerprint is an unkeyed hash of the token")
	}
	// A private key in PEM and in JWK form fingerprints the same.
	if p, j := seal(tenantA, withKey(rsaPKCS8(), "")), seal(tenantB, withKey(rsaJWK(nil), "")); p != j {
		t.Errorf("PEM and JWK thumbprints differ: %q %q", p, j)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	err := error(&vault.ValidationError{Field: "secret.token", Message: "required"})
	if got, want := err.Error(), "vault: invalid secret.token: required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestSigningKeyWithoutKey(t *testing.T) {
	if _, _, _, err := oauthSecret().SigningKey(); err == nil {
		t.Error("SigningKey on a client-secret credential succeeded")
	}
}

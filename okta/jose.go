package okta

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// This file is a minimal JWS (RFC 7515) compact-serialization signer for the two
// algorithms Okta accepts and the gateway needs: RS256 (RSASSA-PKCS1-v1_5 with SHA-256)
// and ES256 (ECDSA P-256 with SHA-256, signature = fixed-width r||s, RFC 7518 §3.4 —
// NOT the ASN.1 DER form crypto/ecdsa.SignASN1 produces). The primitives are the
// standard library's; only the encoding is written here.

// Algorithm names (RFC 7518 §3.1).
const (
	algRS256 = "RS256"
	algES256 = "ES256"
)

var b64 = base64.RawURLEncoding

// signingKey is a private key and the JWS algorithm it signs with. Client keys come
// parsed from the vault ([vault.Credential.SigningKey]); DPoP keys from [newDPoPKey].
type signingKey struct {
	alg string
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

// newSigningKey wraps a parsed key; alg must match its type.
func newSigningKey(key crypto.Signer, alg string) (*signingKey, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg == algRS256 {
			return &signingKey{alg: alg, rsa: k}, nil
		}
	case *ecdsa.PrivateKey:
		if alg == algES256 && k.Curve == elliptic.P256() {
			return &signingKey{alg: alg, ec: k}, nil
		}
	}
	return nil, fmt.Errorf("unsupported client key: %T with algorithm %q", key, alg)
}

// jwsHeader is the protected header. Field order is fixed, which keeps output stable.
type jwsHeader struct {
	Alg string          `json:"alg"`
	Typ string          `json:"typ,omitempty"`
	Kid string          `json:"kid,omitempty"`
	JWK json.RawMessage `json:"jwk,omitempty"`
}

// sign returns the compact JWS of claims under h. h.Alg is set from the key.
func (k *signingKey) sign(h jwsHeader, claims any) (string, error) {
	h.Alg = k.alg
	hb, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("encode jws header: %w", err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode jws claims: %w", err)
	}
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch k.alg {
	case algRS256:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, digest[:])
	case algES256:
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.ec, digest[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	default:
		return "", fmt.Errorf("unsupported jws algorithm %q", k.alg)
	}
	if err != nil {
		return "", fmt.Errorf("sign jws: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// publicJWK returns the public key as a JWK (RFC 7517) with members in the lexicographic
// order RFC 7638 uses for thumbprints, so the same bytes serve both purposes.
func (k *signingKey) publicJWK() (json.RawMessage, error) {
	switch k.alg {
	case algES256:
		pub, err := k.ec.PublicKey.Bytes()
		if err != nil {
			return nil, fmt.Errorf("encode ec public key: %w", err)
		}
		// Uncompressed point: 0x04 || X (32) || Y (32).
		return json.RawMessage(`{"crv":"P-256","kty":"EC","x":"` + b64.EncodeToString(pub[1:33]) +
			`","y":"` + b64.EncodeToString(pub[33:65]) + `"}`), nil
	case algRS256:
		e := big.NewInt(int64(k.rsa.E)).Bytes()
		return json.RawMessage(`{"e":"` + b64.EncodeToString(e) + `","kty":"RSA","n":"` +
			b64.EncodeToString(k.rsa.N.Bytes()) + `"}`), nil
	}
	return nil, fmt.Errorf("unsupported jws algorithm %q", k.alg)
}

// newDPoPKey returns a fresh EC P-256 key for DPoP proofs.
func newDPoPKey() (*signingKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate dpop key: %w", err)
	}
	return &signingKey{alg: algES256, ec: k}, nil
}

// newJTI returns a random, unique JWT ID (128 bits).
func newJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go ≥ 1.24).
	return b64.EncodeToString(b)
}

// accessTokenHash is the DPoP "ath" claim: base64url(SHA-256(ASCII(access token)))
// (RFC 9449 §4.2).
func accessTokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return b64.EncodeToString(h[:])
}

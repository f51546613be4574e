package vault

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"

	"github.com/quantaseal/gateway/internal/secret"
)

// Credential types.
const (
	CredentialTypeOAuth2Client = "oauth2_client"
	CredentialTypeAPIKey       = "api_key"
)

// Signing algorithms of an oauth2_client private key (private_key_jwt, RFC 7523).
const (
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
)

// Limits on credential fields. They are generous; they exist so that a request cannot make
// the vault store megabytes, and so that every field fits the blob's uint16 bindings.
const (
	maxNameLen   = 200
	maxIDLen     = 256 // client_id, private_key_id
	maxSecretLen = 4096
	maxKeyLen    = 16 << 10 // private_key (PEM or JWK of an RSA-4096 key is ~3.3 KiB)
	minRSABits   = 2048
)

// Credential is a plaintext credential. Type "oauth2_client" has ClientID and exactly one
// of ClientSecret (client_secret_basic) or PrivateKey (private_key_jwt: PEM PKCS#1 or
// PKCS#8 RSA, PKCS#8 or SEC 1 EC P-256, or a private JWK), with an optional PrivateKeyID
// (the JWT "kid"). Type "api_key" has Token (an Okta SSWS API token).
type Credential struct {
	Type         string
	ClientID     string
	ClientSecret secret.Secret
	PrivateKey   secret.Secret // PEM or JWK JSON text
	PrivateKeyID string
	Token        secret.Secret
}

// ValidationError says which request field of a credential is wrong. Field is the JSON
// path of the HTTP API ("credential_type", "name", "secret.client_id", …). Message never
// quotes the value.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	return "vault: invalid " + e.Field + ": " + e.Message
}

func invalid(field, msg string) error { return &ValidationError{Field: field, Message: msg} }

// Validate checks c's shape and, for a private key, that it parses as a supported key. It
// returns a [*ValidationError].
func (c Credential) Validate() error {
	_, err := c.validate()
	return err
}

// validate returns the parsed private key's facts when there is one.
func (c Credential) validate() (*privateKeyInfo, error) {
	switch c.Type {
	case CredentialTypeOAuth2Client:
		if err := checkText("secret.client_id", c.ClientID, maxIDLen, true); err != nil {
			return nil, err
		}
		if !c.Token.IsZero() {
			return nil, invalid("secret.token", "not allowed for credential_type oauth2_client")
		}
		hasSecret, hasKey := !c.ClientSecret.IsZero(), !c.PrivateKey.IsZero()
		switch {
		case hasSecret && hasKey:
			return nil, invalid("secret", "give exactly one of client_secret or private_key")
		case !hasSecret && !hasKey:
			return nil, invalid("secret", "one of client_secret or private_key is required")
		case hasSecret:
			if c.PrivateKeyID != "" {
				return nil, invalid("secret.private_key_id", "only allowed with private_key")
			}
			return nil, checkText("secret.client_secret", c.ClientSecret.Reveal(), maxSecretLen, false)
		}
		if c.PrivateKeyID != "" {
			if err := checkText("secret.private_key_id", c.PrivateKeyID, maxIDLen, true); err != nil {
				return nil, err
			}
		}
		if c.PrivateKey.Len() > maxKeyLen {
			return nil, invalid("secret.private_key", "too long")
		}
		info, err := parsePrivateKey(c.PrivateKey.Reveal())
		if err != nil {
			return nil, err
		}
		if c.PrivateKeyID != "" && info.kid != "" && info.kid != c.PrivateKeyID {
			return nil, invalid("secret.private_key_id", "differs from the JWK's kid")
		}
		return info, nil
	case CredentialTypeAPIKey:
		if c.ClientID != "" || !c.ClientSecret.IsZero() || !c.PrivateKey.IsZero() || c.PrivateKeyID != "" {
			return nil, invalid("secret", "api_key takes only token")
		}
		return nil, checkText("secret.token", c.Token.Reveal(), maxSecretLen, true)
	case "":
		return nil, invalid("credential_type", "required")
	default:
		return nil, invalid("credential_type", `must be "oauth2_client" or "api_key"`)
	}
}

// checkText requires 1..max bytes of UTF-8 without control characters (the values end up
// in HTTP headers and form bodies); noSpace also forbids spaces.
func checkText(field, v string, max int, noSpace bool) error {
	switch {
	case v == "":
		return invalid(field, "required")
	case len(v) > max:
		return invalid(field, fmt.Sprintf("longer than %d bytes", max))
	case !utf8.ValidString(v):
		return invalid(field, "not valid UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (noSpace && r == ' ') {
			return invalid(field, "contains a control character or space")
		}
	}
	return nil
}

// SigningKey parses c.PrivateKey and returns it with its JWS algorithm ([AlgRS256] or
// [AlgES256]) and key id (PrivateKeyID, else the JWK's "kid", else ""). It is for the token
// source's private_key_jwt client assertion.
func (c Credential) SigningKey() (signer crypto.Signer, alg, keyID string, err error) {
	if c.PrivateKey.IsZero() {
		return nil, "", "", invalid("secret.private_key", "required")
	}
	info, err := parsePrivateKey(c.PrivateKey.Reveal())
	if err != nil {
		return nil, "", "", err
	}
	kid := c.PrivateKeyID
	if kid == "" {
		kid = info.kid
	}
	return info.signer, info.alg, kid, nil
}

type privateKeyInfo struct {
	signer     crypto.Signer
	alg        string
	kid        string // from a JWK, if any
	thumbprint []byte // RFC 7638 SHA-256 JWK thumbprint of the public key
}

func parsePrivateKey(text string) (*privateKeyInfo, error) {
	text = strings.TrimSpace(text)
	var signer crypto.Signer
	var kid string
	switch {
	case strings.HasPrefix(text, "{"):
		s, k, err := parseJWK(text)
		if err != nil {
			return nil, err
		}
		signer, kid = s, k
	case strings.HasPrefix(text, "-----BEGIN"):
		s, err := parsePEM(text)
		if err != nil {
			return nil, err
		}
		signer = s
	default:
		return nil, invalid("secret.private_key", "must be a PEM private key or a private JWK")
	}
	info := &privateKeyInfo{signer: signer, kid: kid}
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, invalid("secret.private_key", "RSA key shorter than 2048 bits")
		}
		info.alg = AlgRS256
		e := big.NewInt(int64(k.E)).Bytes()
		info.thumbprint = thumbprint(fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64(e), b64(k.N.Bytes())))
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, invalid("secret.private_key", "EC key is not on P-256")
		}
		info.alg = AlgES256
		pub, err := k.PublicKey.Bytes() // 0x04 || X || Y, 32 bytes each
		if err != nil {
			return nil, invalid("secret.private_key", "EC public key does not encode")
		}
		info.thumbprint = thumbprint(fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, b64(pub[1:33]), b64(pub[33:])))
	default:
		return nil, invalid("secret.private_key", "must be an RSA or EC P-256 key")
	}
	return info, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func thumbprint(canonicalJWK string) []byte {
	sum := sha256.Sum256([]byte(canonicalJWK))
	return sum[:]
}

func parsePEM(text string) (crypto.Signer, error) {
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, invalid("secret.private_key", "PEM does not decode")
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, invalid("secret.private_key", "more than one PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, invalid("secret.private_key", "PEM type must be PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY")
	}
	if err != nil {
		// The parser's message is not passed on: it is about the secret's bytes.
		return nil, invalid("secret.private_key", "PEM "+block.Type+" does not parse")
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, invalid("secret.private_key", "must be an RSA or EC P-256 key")
	}
	return s, nil
}

// jwk holds the members of RFC 7517/7518 private keys we accept.
type jwk struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
	N   string `json:"n"`
	E   string `json:"e"`
	P   string `json:"p"`
	Q   string `json:"q"`
}

func parseJWK(text string) (crypto.Signer, string, error) {
	const field = "secret.private_key"
	var k jwk
	if err := json.Unmarshal([]byte(text), &k); err != nil {
		return nil, "", invalid(field, "JWK is not a JSON object")
	}
	if k.D == "" {
		return nil, "", invalid(field, `JWK has no private member "d"`)
	}
	dec := func(s string) ([]byte, bool) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		return b, err == nil && len(b) > 0
	}
	switch k.Kty {
	case "RSA":
		if k.Alg != "" && k.Alg != AlgRS256 {
			return nil, "", invalid(field, "JWK alg must be RS256 for an RSA key")
		}
		n, ok1 := dec(k.N)
		e, ok2 := dec(k.E)
		d, ok3 := dec(k.D)
		p, ok4 := dec(k.P)
		q, ok5 := dec(k.Q)
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || len(e) > 4 {
			return nil, "", invalid(field, "RSA JWK needs base64url n, e, d, p and q")
		}
		key := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())},
			D:         new(big.Int).SetBytes(d),
			Primes:    []*big.Int{new(big.Int).SetBytes(p), new(big.Int).SetBytes(q)},
		}
		if key.N.BitLen() < minRSABits {
			return nil, "", invalid(field, "RSA key shorter than 2048 bits")
		}
		if err := key.Validate(); err != nil {
			return nil, "", invalid(field, "RSA JWK is not a consistent key")
		}
		key.Precompute()
		return key, k.Kid, nil
	case "EC":
		if k.Crv != "P-256" {
			return nil, "", invalid(field, "EC JWK crv must be P-256")
		}
		if k.Alg != "" && k.Alg != AlgES256 {
			return nil, "", invalid(field, "JWK alg must be ES256 for a P-256 key")
		}
		d, ok := dec(k.D)
		if !ok || len(d) != 32 {
			return nil, "", invalid(field, "EC JWK d must be 32 bytes base64url")
		}
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
		if err != nil {
			return nil, "", invalid(field, "EC JWK d is not a valid P-256 scalar")
		}
		pub, err := key.PublicKey.Bytes()
		if err != nil {
			return nil, "", invalid(field, "EC public key does not encode")
		}
		if k.X != "" || k.Y != "" {
			if k.X != b64(pub[1:33]) || k.Y != b64(pub[33:]) {
				return nil, "", invalid(field, "EC JWK x, y do not match d")
			}
		}
		return key, k.Kid, nil
	default:
		return nil, "", invalid(field, `JWK kty must be "RSA" or "EC"`)
	}
}

// Fingerprint formats (docs/spec/vault-v1.md §6).
const (
	fpPrefixJWK  = "jwk-sha256:"  // RFC 7638 thumbprint of the public key
	fpPrefixHMAC = "hmac-sha256:" // HMAC under the tenant's fingerprint key
)

// fingerprint identifies the credential without revealing or confirming its secret:
//   - private key: the RFC 7638 SHA-256 JWK thumbprint of the PUBLIC key, base64url. It is
//     computable from the public key registered in Okta, so an operator can match them.
//   - client secret / API token: HMAC-SHA-256 under fpKey (a per-tenant key derived from the
//     tenant's vault key seed, never stored), base64url of the first 16 bytes. Without the
//     tenant's vault key a guessed secret cannot be checked against it.
func fingerprint(c Credential, info *privateKeyInfo, fpKey []byte) string {
	if info != nil {
		return fpPrefixJWK + b64(info.thumbprint)
	}
	field, v := "client_secret", c.ClientSecret
	if c.Type == CredentialTypeAPIKey {
		field, v = "token", c.Token
	}
	m := hmac.New(sha256.New, fpKey)
	m.Write([]byte(c.Type))
	m.Write([]byte{0})
	m.Write([]byte(field))
	m.Write([]byte{0})
	m.Write([]byte(c.ClientID))
	m.Write([]byte{0})
	m.Write(v.Bytes())
	return fpPrefixHMAC + b64(m.Sum(nil)[:16])
}

// plaintextV1 is the JSON document inside a credential blob (docs/spec/vault-v1.md §5).
type plaintextV1 struct {
	Type         string `json:"type"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	PrivateKey   string `json:"private_key,omitempty"`
	PrivateKeyID string `json:"private_key_id,omitempty"`
	Token        string `json:"token,omitempty"`
}

func encodeCredential(c Credential) ([]byte, error) {
	return json.Marshal(plaintextV1{
		Type:         c.Type,
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret.Reveal(),
		PrivateKey:   c.PrivateKey.Reveal(),
		PrivateKeyID: c.PrivateKeyID,
		Token:        c.Token.Reveal(),
	})
}

func decodeCredential(b []byte) (Credential, error) {
	var p plaintextV1
	if err := json.Unmarshal(b, &p); err != nil {
		return Credential{}, errors.New("sealed credential plaintext is not valid JSON")
	}
	return Credential{
		Type:         p.Type,
		ClientID:     p.ClientID,
		ClientSecret: secret.New(p.ClientSecret),
		PrivateKey:   secret.New(p.PrivateKey),
		PrivateKeyID: p.PrivateKeyID,
		Token:        secret.New(p.Token),
	}, nil
}

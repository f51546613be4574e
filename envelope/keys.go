package envelope

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/quantaseal/gateway/internal/secret"
)

// Sizes of the keys and seeds (FIPS 203, FIPS 204, envelope-v1 "Keys").
const (
	SigningSeedSize      = mldsa65.SeedSize        // 32: ML-DSA-65 key seed ξ
	VerifyingKeySize     = mldsa65.PublicKeySize   // 1952
	SignatureSize        = mldsa65.SignatureSize   // 3309
	ResponseSeedSize     = mlkem768.KeySeedSize    // 64: ML-KEM-768 seed d‖z
	EncapsulationKeySize = mlkem768.PublicKeySize  // 1184
	KEMCiphertextSize    = mlkem768.CiphertextSize // 1088
	NonceSize            = 12                      // AES-256-GCM nonce
	HMACKeySize          = 64                      // tenant HMAC-SHA-512 key
	HMACSize             = 64                      // HMAC-SHA-512 output
	KeyIDLen             = 16                      // hex characters of a key id
	encapsSeedSize       = mlkem768.EncapsulationSeedSize
)

// KeyID returns the key id of a public key: the first 16 hex characters of
// SHA-256(public key). It is the id of ML-DSA-65 public keys and ML-KEM-768
// encapsulation keys alike.
func KeyID(publicKey []byte) string {
	sum := sha256.Sum256(publicKey)
	return hex.EncodeToString(sum[:KeyIDLen/2])
}

// hmacKeyIDPrefix domain-separates the HMAC key id from a plain hash of the key.
const hmacKeyIDPrefix = "quantaseal hmac key id"

// HMACKeyID returns the id of a tenant HMAC key: the first 16 hex characters of
// SHA-256("quantaseal hmac key id" ‖ key).
func HMACKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte(hmacKeyIDPrefix))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:KeyIDLen/2])
}

// randReader returns r, or crypto/rand.Reader when r is nil.
func randReader(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// SigningKey is the gateway's ML-DSA-65 signing key, kept in its 32-byte seed form and
// parsed once. It never formats its secret: String, GoString and LogValue name only
// the key id.
type SigningKey struct {
	seed secret.Secret
	sk   *mldsa65.PrivateKey
	pub  *VerifyingKey
}

// NewSigningKey expands a 32-byte ML-DSA-65 seed.
func NewSigningKey(seed []byte) (*SigningKey, error) {
	if len(seed) != SigningSeedSize {
		return nil, fmt.Errorf("envelope: ML-DSA-65 seed is %d bytes, want %d", len(seed), SigningSeedSize)
	}
	var s [SigningSeedSize]byte
	copy(s[:], seed)
	pk, sk := mldsa65.NewKeyFromSeed(&s)
	clear(s[:])
	raw := pk.Bytes()
	return &SigningKey{
		seed: secret.FromBytes(seed),
		sk:   sk,
		pub:  &VerifyingKey{pk: pk, raw: raw, id: KeyID(raw)},
	}, nil
}

// GenerateSigningKey makes a new signing key from rand (nil means crypto/rand).
func GenerateSigningKey(r io.Reader) (*SigningKey, error) {
	seed := make([]byte, SigningSeedSize)
	if _, err := io.ReadFull(randReader(r), seed); err != nil {
		return nil, fmt.Errorf("envelope: generate signing key: %w", err)
	}
	return NewSigningKey(seed)
}

// Seed returns the 32-byte seed, for storing the key.
func (k *SigningKey) Seed() secret.Secret { return k.seed }

// Public returns the verifying (public) key.
func (k *SigningKey) Public() *VerifyingKey { return k.pub }

// KeyID returns the key id of the public key.
func (k *SigningKey) KeyID() string { return k.pub.id }

// String implements fmt.Stringer without revealing the key.
func (k *SigningKey) String() string { return "ML-DSA-65 signing key " + k.pub.id }

// GoString implements fmt.GoStringer without revealing the key.
func (k *SigningKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer without revealing the key.
func (k *SigningKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// VerifyingKey is a parsed ML-DSA-65 public key.
type VerifyingKey struct {
	pk  *mldsa65.PublicKey
	raw []byte
	id  string
}

// ParseVerifyingKey parses a 1952-byte ML-DSA-65 public key.
func ParseVerifyingKey(b []byte) (*VerifyingKey, error) {
	if len(b) != VerifyingKeySize {
		return nil, fmt.Errorf("envelope: ML-DSA-65 public key is %d bytes, want %d", len(b), VerifyingKeySize)
	}
	var pk mldsa65.PublicKey
	if err := pk.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("envelope: parse ML-DSA-65 public key: %w", err)
	}
	raw := append([]byte(nil), b...)
	return &VerifyingKey{pk: &pk, raw: raw, id: KeyID(raw)}, nil
}

// Bytes returns a copy of the encoded public key.
func (k *VerifyingKey) Bytes() []byte { return append([]byte(nil), k.raw...) }

// KeyID returns the key id.
func (k *VerifyingKey) KeyID() string { return k.id }

// ResponseKey is a tenant's ML-KEM-768 response (decapsulation) key, kept in its
// 64-byte seed form d‖z and parsed once. It never formats its secret.
type ResponseKey struct {
	seed secret.Secret
	sk   *mlkem768.PrivateKey
	pub  *EncapsulationKey
}

// NewResponseKey expands a 64-byte ML-KEM-768 seed d‖z (FIPS 203 ML-KEM.KeyGen_internal).
func NewResponseKey(seed []byte) (*ResponseKey, error) {
	if len(seed) != ResponseSeedSize {
		return nil, fmt.Errorf("envelope: ML-KEM-768 seed is %d bytes, want %d", len(seed), ResponseSeedSize)
	}
	pk, sk := mlkem768.NewKeyFromSeed(seed)
	raw := make([]byte, EncapsulationKeySize)
	pk.Pack(raw)
	return &ResponseKey{
		seed: secret.FromBytes(seed),
		sk:   sk,
		pub:  &EncapsulationKey{pk: pk, raw: raw, id: KeyID(raw)},
	}, nil
}

// GenerateResponseKey makes a new response key from rand (nil means crypto/rand).
func GenerateResponseKey(r io.Reader) (*ResponseKey, error) {
	seed := make([]byte, ResponseSeedSize)
	if _, err := io.ReadFull(randReader(r), seed); err != nil {
		return nil, fmt.Errorf("envelope: generate response key: %w", err)
	}
	return NewResponseKey(seed)
}

// Seed returns the 64-byte seed d‖z, for storing the key.
func (k *ResponseKey) Seed() secret.Secret { return k.seed }

// Public returns the encapsulation key the gateway seals to.
func (k *ResponseKey) Public() *EncapsulationKey { return k.pub }

// KeyID returns the key id of the encapsulation key.
func (k *ResponseKey) KeyID() string { return k.pub.id }

// String implements fmt.Stringer without revealing the key.
func (k *ResponseKey) String() string { return "ML-KEM-768 response key " + k.pub.id }

// GoString implements fmt.GoStringer without revealing the key.
func (k *ResponseKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer without revealing the key.
func (k *ResponseKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// EncapsulationKey is a parsed ML-KEM-768 encapsulation key. Parse a tenant's key once
// with [ParseEncapsulationKey] and reuse it for every [Seal]: parsing costs about as
// much as an encapsulation.
type EncapsulationKey struct {
	pk  *mlkem768.PublicKey
	raw []byte
	id  string
}

// ParseEncapsulationKey parses a 1184-byte ML-KEM-768 encapsulation key, including the
// FIPS 203 §7.2 modulus check that circl performs on unpacking.
func ParseEncapsulationKey(b []byte) (*EncapsulationKey, error) {
	if len(b) != EncapsulationKeySize {
		return nil, fmt.Errorf("envelope: ML-KEM-768 encapsulation key is %d bytes, want %d", len(b), EncapsulationKeySize)
	}
	var pk mlkem768.PublicKey
	if err := pk.Unpack(b); err != nil {
		return nil, fmt.Errorf("envelope: parse ML-KEM-768 encapsulation key: %w", err)
	}
	raw := append([]byte(nil), b...)
	return &EncapsulationKey{pk: &pk, raw: raw, id: KeyID(raw)}, nil
}

// Bytes returns a copy of the encoded encapsulation key.
func (k *EncapsulationKey) Bytes() []byte { return append([]byte(nil), k.raw...) }

// KeyID returns the key id.
func (k *EncapsulationKey) KeyID() string { return k.id }

// HMACKey is a tenant's 64-byte HMAC-SHA-512 key with its precomputed key id.
type HMACKey struct {
	key secret.Secret
	id  string
}

// NewHMACKey wraps a 64-byte HMAC key.
func NewHMACKey(key []byte) (*HMACKey, error) {
	if len(key) != HMACKeySize {
		return nil, fmt.Errorf("envelope: HMAC key is %d bytes, want %d", len(key), HMACKeySize)
	}
	return &HMACKey{key: secret.FromBytes(key), id: HMACKeyID(key)}, nil
}

// GenerateHMACKey makes a new HMAC key from rand (nil means crypto/rand).
func GenerateHMACKey(r io.Reader) (*HMACKey, error) {
	key := make([]byte, HMACKeySize)
	if _, err := io.ReadFull(randReader(r), key); err != nil {
		return nil, fmt.Errorf("envelope: generate HMAC key: %w", err)
	}
	return NewHMACKey(key)
}

// Secret returns the key.
func (k *HMACKey) Secret() secret.Secret { return k.key }

// KeyID returns the HMAC key id.
func (k *HMACKey) KeyID() string { return k.id }

// String implements fmt.Stringer without revealing the key.
func (k *HMACKey) String() string { return "HMAC-SHA-512 key " + k.id }

// GoString implements fmt.GoStringer without revealing the key.
func (k *HMACKey) GoString() string { return k.String() }

// LogValue implements slog.LogValuer without revealing the key.
func (k *HMACKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

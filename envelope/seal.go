package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unicode/utf8"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/quantaseal/gateway/internal/avxstate"
)

// SealInput is what [Seal] needs to make one envelope.
type SealInput struct {
	// TenantID is the tenant the envelope is for; it is written to both tenant_id members.
	TenantID string
	// Recipient is the tenant's ML-KEM-768 response key. Parse it once per tenant with
	// [ParseEncapsulationKey] and keep it: parsing costs as much as sealing a small body.
	Recipient *EncapsulationKey
	// Signer is the gateway's current ML-DSA-65 key.
	Signer *SigningKey
	// HMACKey is the tenant's HMAC-SHA-512 key.
	HMACKey *HMACKey
	// Status is the upstream HTTP status, or the gateway's own where no upstream
	// answered: 100–599. The envelope's success member is derived from it (2xx).
	Status int
	// Next is the opaque cursor of the next page, or "".
	Next string
	// AuditEventID is the id of the audit event that recorded the call.
	AuditEventID string
	// IssuedAt is written as UTC RFC 3339 with whole seconds (truncated).
	IssuedAt time.Time
	// Plaintext is the upstream body after content decoding.
	Plaintext []byte
}

// Seal encrypts in.Plaintext to in.Recipient and signs the envelope with in.Signer
// (hedged ML-DSA-65) and in.HMACKey, as envelope-v1 "Sealing" and "Signing" describe.
//
// rand supplies the ML-KEM encapsulation randomness and the AES-GCM nonce; nil means
// crypto/rand.Reader. (circl draws the ML-DSA-65 hedging randomness from crypto/rand
// itself.)
func Seal(in SealInput, rand io.Reader) (*Envelope, error) {
	var seeds [encapsSeedSize + NonceSize]byte
	if _, err := io.ReadFull(randReader(rand), seeds[:]); err != nil {
		return nil, fmt.Errorf("envelope: seal: read randomness: %w", err)
	}
	e, _, err := seal(in, seeds[:encapsSeedSize], seeds[encapsSeedSize:], true)
	return e, err
}

// seal is Seal with explicit randomness. hedged=false signs deterministically, which
// only the test vectors use.
func seal(in SealInput, encapsSeed, nonce []byte, hedged bool) (*Envelope, []byte, error) {
	if err := in.validate(); err != nil {
		return nil, nil, err
	}
	// The fixed-size byte members share one allocation (each slice capped at its own
	// length, so an append by a caller cannot run into its neighbour).
	fixed := make([]byte, KEMCiphertextSize+NonceSize+SignatureSize+HMACSize)
	kemCT := fixed[:KEMCiphertextSize:KEMCiphertextSize]
	fixed = fixed[KEMCiphertextSize:]
	nonceCopy := fixed[:NonceSize:NonceSize]
	copy(nonceCopy, nonce)
	fixed = fixed[NonceSize:]
	pqcSig := fixed[:SignatureSize:SignatureSize]
	hmacSig := fixed[SignatureSize : SignatureSize : SignatureSize+HMACSize]
	e := &Envelope{
		Version:      Version,
		Success:      in.Status >= 200 && in.Status <= 299,
		Status:       in.Status,
		Next:         in.Next,
		IssuedAt:     in.IssuedAt.UTC().Truncate(time.Second).Format(issuedAtLayout),
		AuditEventID: in.AuditEventID,
		Encrypted: Encrypted{
			CiphertextKEM: kemCT,
			Nonce:         nonceCopy,
			TenantID:      in.TenantID,
			KeyID:         in.Recipient.KeyID(),
			Algorithm:     KEMAlgorithm,
		},
		Signature: Signature{
			TenantID:  in.TenantID,
			KeyID:     in.Signer.KeyID(),
			HMACKeyID: in.HMACKey.KeyID(),
			Algorithm: SignatureAlgorithm,
		},
	}
	var ss [32]byte
	in.Recipient.pk.EncapsulateTo(e.Encrypted.CiphertextKEM, ss[:], encapsSeed)
	avxstate.Clean() // before HKDF and AES-GCM (SSE): see package avxstate
	aead, err := newAEAD(ss[:], e.Encrypted.CiphertextKEM, in.TenantID)
	clear(ss[:])
	if err != nil {
		return nil, nil, err
	}

	// Build M with room for the ciphertext and let AES-GCM write it in place, so a
	// large body is copied once (plaintext → ciphertext) rather than twice.
	dataLen := len(in.Plaintext) + aead.Overhead()
	m, off := e.message(&dataLen)
	aead.Seal(m[off:off], e.Encrypted.Nonce, in.Plaintext, additionalData(in.TenantID, e.Encrypted.KeyID))
	e.Encrypted.CiphertextData = m[off : off+dataLen : off+dataLen]

	e.Signature.PQCSignature = pqcSig
	err = signTo(in.Signer, m, hedged, e.Signature.PQCSignature)
	avxstate.Clean()
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: seal: ML-DSA-65 sign: %w", err)
	}
	e.Signature.HMACSignature = hmacAppend(hmacSig, in.HMACKey, m)
	return e, m, nil
}

func (in *SealInput) validate() error {
	var errs []error
	if in.TenantID == "" {
		errs = append(errs, errors.New("empty TenantID"))
	}
	if in.Recipient == nil {
		errs = append(errs, errors.New("nil Recipient"))
	}
	if in.Signer == nil {
		errs = append(errs, errors.New("nil Signer"))
	}
	if in.HMACKey == nil {
		errs = append(errs, errors.New("nil HMACKey"))
	}
	if in.Status < 100 || in.Status > 599 {
		errs = append(errs, fmt.Errorf("status %d is not an HTTP status (Status)", in.Status))
	}
	// JSON cannot carry invalid UTF-8 (encoders replace it with U+FFFD), so such a
	// string would be signed as one value and delivered as another.
	for _, f := range [...]struct{ name, v string }{{"TenantID", in.TenantID}, {"Next", in.Next}, {"AuditEventID", in.AuditEventID}} {
		if !utf8.ValidString(f.v) {
			errs = append(errs, fmt.Errorf("%s is not valid UTF-8", f.name))
		}
	}
	if in.IssuedAt.IsZero() {
		errs = append(errs, errors.New("zero IssuedAt"))
	}
	if uint64(len(in.Plaintext)) > math.MaxUint32-minDataSize {
		errs = append(errs, errors.New("plaintext is too large for a 4-byte length"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("envelope: seal: %w", err)
	}
	return nil
}

// newAEAD derives k = HKDF-SHA-256(ss, salt = ciphertext_kem,
// info = "quantaseal envelope v1" ‖ 0x00 ‖ tenant_id, 32) and returns AES-256-GCM under k.
func newAEAD(ss, kemCiphertext []byte, tenantID string) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, ss, kemCiphertext, kdfLabel+"\x00"+tenantID, 32)
	if err != nil {
		return nil, fmt.Errorf("envelope: derive key: %w", err)
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("envelope: AES-256: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("envelope: AES-256-GCM: %w", err)
	}
	return aead, nil
}

// additionalData is "quantaseal envelope v1" ‖ 0x00 ‖ tenant_id ‖ 0x00 ‖ encrypted.key_id.
func additionalData(tenantID, keyID string) []byte {
	aad := make([]byte, 0, len(kdfLabel)+2+len(tenantID)+len(keyID))
	aad = append(aad, kdfLabel...)
	aad = append(aad, 0)
	aad = append(aad, tenantID...)
	aad = append(aad, 0)
	return append(aad, keyID...)
}

// signTo is ML-DSA-65.Sign(sk, m, ctx = "quantaseal-envelope-v1"), hedged or deterministic.
func signTo(k *SigningKey, m []byte, hedged bool, sig []byte) error {
	return mldsa65.SignTo(k.sk, m, []byte(mldsaContext), hedged, sig)
}

func hmacSum(k *HMACKey, m []byte) []byte { return hmacAppend(nil, k, m) }

// hmacAppend appends HMAC-SHA-512(k, m) to dst.
func hmacAppend(dst []byte, k *HMACKey, m []byte) []byte {
	mac := hmac.New(sha512.New, k.key.Bytes())
	mac.Write(m)
	return mac.Sum(dst)
}

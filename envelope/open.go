package envelope

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/quantaseal/gateway/internal/avxstate"
)

// OpenKeys is what an opener holds: its tenant id, its response key, its HMAC key and
// the gateway's ML-DSA-65 public keys by key id. [Profile.OpenKeys] builds one.
type OpenKeys struct {
	TenantID  string
	Response  *ResponseKey
	HMACKey   *HMACKey
	Verifying map[string]*VerifyingKey
}

// Open parses, verifies and decrypts an envelope, following envelope-v1 "Opening".
// It returns the plaintext and the decoded envelope. A refused envelope yields an
// [*OpenError] naming the member and the check that failed, and no plaintext.
func Open(data []byte, keys OpenKeys) ([]byte, *Envelope, error) {
	e, err := Parse(data)
	if err != nil {
		return nil, nil, err
	}
	pt, err := e.Open(keys)
	if err != nil {
		return nil, nil, err
	}
	return pt, e, nil
}

// Open verifies and decrypts e. Errors are as for the package-level [Open].
//
// Both signatures are computed to completion and combined without short-circuit
// (ok := mldsaOK & hmacOK), and nothing is decapsulated or decrypted unless both pass.
func (e *Envelope) Open(keys OpenKeys) ([]byte, error) {
	if keys.Response == nil || keys.HMACKey == nil || keys.TenantID == "" {
		return nil, errors.New("envelope: open: OpenKeys needs TenantID, Response and HMACKey")
	}
	if err := e.check(keys); err != nil {
		return nil, err
	}
	vk := keys.Verifying[e.Signature.KeyID]

	m := e.Message()
	mldsaOK := 0
	if mldsa65.Verify(vk.pk, m, []byte(mldsaContext), e.Signature.PQCSignature) {
		mldsaOK = 1
	}
	avxstate.Clean() // before HMAC and the rest (see package avxstate)
	hmacOK := subtle.ConstantTimeCompare(hmacSum(keys.HMACKey, m), e.Signature.HMACSignature)
	switch ok := mldsaOK & hmacOK; {
	case ok == 1:
	case mldsaOK == 0 && hmacOK == 0:
		return nil, &OpenError{Field: "signature", Check: CheckSignatures, Reason: "the signed content does not match either signature"}
	case mldsaOK == 0:
		return nil, &OpenError{Field: "signature.pqc_signature", Check: CheckMLDSA, Reason: "ML-DSA-65 signature does not verify"}
	default:
		return nil, &OpenError{Field: "signature.hmac_signature", Check: CheckHMAC, Reason: "HMAC-SHA-512 does not match"}
	}

	var ss [32]byte
	keys.Response.sk.DecapsulateTo(ss[:], e.Encrypted.CiphertextKEM)
	avxstate.Clean()
	aead, err := newAEAD(ss[:], e.Encrypted.CiphertextKEM, e.Encrypted.TenantID)
	clear(ss[:])
	if err != nil {
		return nil, err
	}
	ct := e.Encrypted.CiphertextData
	pt := make([]byte, 0, len(ct)-aead.Overhead())
	pt, err = aead.Open(pt, e.Encrypted.Nonce, ct, additionalData(e.Encrypted.TenantID, e.Encrypted.KeyID))
	if err != nil {
		return nil, &OpenError{Field: "encrypted.ciphertext_data", Check: CheckAEAD, Reason: "AES-256-GCM authentication failed"}
	}
	return pt, nil
}

// check is envelope-v1 "Opening" step 1 plus the key lookups: everything that can be
// decided without a signature.
func (e *Envelope) check(keys OpenKeys) error {
	if e.Version != Version {
		return formatError("version", "is "+strconv.Itoa(e.Version)+", want 1")
	}
	if e.Encrypted.Algorithm != KEMAlgorithm {
		return formatError("encrypted.algorithm", fmt.Sprintf("is %q, want %q", e.Encrypted.Algorithm, KEMAlgorithm))
	}
	if e.Signature.Algorithm != SignatureAlgorithm {
		return formatError("signature.algorithm", fmt.Sprintf("is %q, want %q", e.Signature.Algorithm, SignatureAlgorithm))
	}
	if e.Signature.TenantID != e.Encrypted.TenantID {
		return &OpenError{Field: "signature.tenant_id", Check: CheckTenant, Reason: "differs from encrypted.tenant_id"}
	}
	if e.Encrypted.TenantID != keys.TenantID {
		return &OpenError{Field: "encrypted.tenant_id", Check: CheckTenant,
			Reason: fmt.Sprintf("envelope is for tenant %q, the keys are tenant %q", e.Encrypted.TenantID, keys.TenantID)}
	}
	lengths := []struct {
		field string
		got   int
		want  int
	}{
		{"encrypted.ciphertext_kem", len(e.Encrypted.CiphertextKEM), KEMCiphertextSize},
		{"encrypted.nonce", len(e.Encrypted.Nonce), NonceSize},
		{"signature.pqc_signature", len(e.Signature.PQCSignature), SignatureSize},
		{"signature.hmac_signature", len(e.Signature.HMACSignature), HMACSize},
	}
	for _, l := range lengths {
		if l.got != l.want {
			return formatError(l.field, fmt.Sprintf("is %d bytes, want %d", l.got, l.want))
		}
	}
	if n := len(e.Encrypted.CiphertextData); n < minDataSize {
		return formatError("encrypted.ciphertext_data", fmt.Sprintf("is %d bytes, want at least %d", n, minDataSize))
	}
	if e.Encrypted.KeyID != keys.Response.KeyID() {
		return &OpenError{Field: "encrypted.key_id", Check: CheckKey,
			Reason: fmt.Sprintf("envelope is sealed to response key %q, the keys hold %q", e.Encrypted.KeyID, keys.Response.KeyID())}
	}
	if vk := keys.Verifying[e.Signature.KeyID]; vk == nil || vk.KeyID() != e.Signature.KeyID {
		return &OpenError{Field: "signature.key_id", Check: CheckKey,
			Reason: fmt.Sprintf("no gateway signing key %q (refresh GET /api/v2/signing-keys)", e.Signature.KeyID)}
	}
	if e.Signature.HMACKeyID != keys.HMACKey.KeyID() {
		return &OpenError{Field: "signature.hmac_key_id", Check: CheckKey,
			Reason: fmt.Sprintf("envelope names HMAC key %q, the keys hold %q", e.Signature.HMACKeyID, keys.HMACKey.KeyID())}
	}
	return nil
}

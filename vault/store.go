package vault

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound is returned when a credential or a tenant vault key does not exist (or
	// belongs to another tenant). Store implementations return it (possibly wrapped).
	ErrNotFound = errors.New("vault: not found")

	// ErrUnavailable is returned when the key wrapper (KMS) or the store cannot be reached.
	// The request may succeed later; the HTTP API answers 503.
	ErrUnavailable = errors.New("vault: unavailable")
)

// PurposeVaultKey is the encryption-context purpose under which a tenant's ML-KEM-768
// decapsulation seed is wrapped.
const PurposeVaultKey = "vault_key"

// KeyWrapper wraps and unwraps small secrets (a tenant's vault key seed) under a
// key-management key. Implementations must bind tenantID and purpose into the operation
// (AWS KMS encryption context {"tenant_id", "purpose"}), so that a wrapped value copied to
// another tenant or purpose does not unwrap. Errors that mean "try again later" (network,
// throttling, timeouts) must match [ErrUnavailable] with errors.Is.
type KeyWrapper interface {
	Wrap(ctx context.Context, tenantID, purpose string, plaintext []byte) ([]byte, error)
	Unwrap(ctx context.Context, tenantID, purpose string, wrapped []byte) ([]byte, error)
}

// KeyDescriber is optionally implemented by a [KeyWrapper] to name its provider ("awskms",
// "local") and the key it uses for a tenant, which the Vault records in
// [WrappedKey.KeyProvider] and [WrappedKey.KMSKeyID] for operators.
type KeyDescriber interface {
	DescribeKey(ctx context.Context, tenantID string) (provider, keyID string, err error)
}

// kmsKeyIDKey is the context key of [WithKMSKeyID].
type kmsKeyIDKey struct{}

// WithKMSKeyID returns a context that names the KMS key under which a tenant's vault key
// is to be created. Tenant creation needs it: the tenant's HMAC key is sealed before the
// tenant row exists (so that a KMS failure leaves no partial rows), so a key provider
// cannot look the tenant's kms_key_id up yet.
func WithKMSKeyID(ctx context.Context, keyID string) context.Context {
	if keyID == "" {
		return ctx
	}
	return context.WithValue(ctx, kmsKeyIDKey{}, keyID)
}

// KMSKeyIDFromContext returns the key id set by [WithKMSKeyID], or "".
func KMSKeyIDFromContext(ctx context.Context) string {
	s, _ := ctx.Value(kmsKeyIDKey{}).(string)
	return s
}

// WrappedKey is a tenant's vault key pair as stored: the ML-KEM-768 encapsulation key in
// clear and the 64-byte decapsulation seed wrapped by the [KeyWrapper].
type WrappedKey struct {
	TenantID         string
	KeyProvider      string // e.g. "awskms", "local"; informational
	KMSKeyID         string // key id/ARN the seed was wrapped under; informational
	EncapsulationKey []byte // 1184 bytes
	WrappedSeed      []byte // opaque wrapper output
	CreatedAt        time.Time
}

// CredentialMeta describes a sealed credential. It never holds the secret.
type CredentialMeta struct {
	TenantID    string
	ID          string // "vlt_…"
	Name        string
	Type        string // CredentialTypeOAuth2Client or CredentialTypeAPIKey
	Fingerprint string // see Fingerprint in docs/spec/vault-v1.md
	CreatedAt   time.Time
	RotatedAt   time.Time // zero until the first Rotate
}

// SealedCredential is a credential as stored: its metadata and the opaque sealed blob
// (docs/spec/vault-v1.md).
type SealedCredential struct {
	CredentialMeta
	Ciphertext []byte
}

// Store persists vault keys and sealed credentials. The registry's PostgreSQL and embedded
// stores implement it. Every method scopes by tenantID: a row of another tenant is
// [ErrNotFound]. The Vault treats any other error from a Store as the store being
// unavailable ([ErrUnavailable]); implementations may wrap ErrUnavailable themselves.
type Store interface {
	// PutTenantVaultKey stores k if the tenant has no vault key yet. If one exists it
	// must keep the existing key and return nil (INSERT … ON CONFLICT DO NOTHING): the
	// Vault re-reads the key after every put, so concurrent first seals converge.
	PutTenantVaultKey(ctx context.Context, tenantID string, k WrappedKey) error
	// GetTenantVaultKey returns the tenant's key or ErrNotFound.
	GetTenantVaultKey(ctx context.Context, tenantID string) (WrappedKey, error)
	// PutSealedCredential inserts c, or replaces the row with the same (TenantID, ID).
	PutSealedCredential(ctx context.Context, c SealedCredential) error
	// ReplaceSealedCredential is rotation: it replaces the ciphertext, fingerprint and
	// rotated_at of the tenant's existing credential c.ID and keeps its other columns.
	// A credential that is not there — deleted while the rotation was sealing — stays
	// deleted: ErrNotFound.
	ReplaceSealedCredential(ctx context.Context, c SealedCredential) error
	// GetSealedCredential returns the credential or ErrNotFound.
	GetSealedCredential(ctx context.Context, tenantID, credentialID string) (SealedCredential, error)
	// DeleteSealedCredential deletes the credential or returns ErrNotFound.
	DeleteSealedCredential(ctx context.Context, tenantID, credentialID string) error
	// ListSealedCredentials returns the tenant's credentials' metadata, ordered by ID.
	ListSealedCredentials(ctx context.Context, tenantID string) ([]CredentialMeta, error)
}

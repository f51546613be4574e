package registry

import (
	"context"
	"errors"
	"time"

	"github.com/quantaseal/gateway/vault"
)

// Sentinel errors returned (wrapped) by every Store. Callers branch on them with errors.Is.
var (
	// ErrNotFound: no such row in this tenant (also when the row exists in another tenant).
	ErrNotFound = errors.New("registry: not found")
	// ErrConflict: the change would break a uniqueness or reference rule (duplicate id or
	// name, deleting a credential an integration uses, an integration a live key is bound to).
	ErrConflict = errors.New("registry: conflict")
	// ErrUnavailable: the store cannot be reached (connection refused, pool closed,
	// timeout). The request may succeed later; the HTTP API answers 503.
	ErrUnavailable = errors.New("registry: store unavailable")
	// ErrInvalidAPIKey: the presented key is malformed, unknown or revoked.
	ErrInvalidAPIKey = errors.New("registry: invalid API key")
)

// Envelope modes of an integration.
const (
	EnvelopeOnRequest = "on_request" // only when the client asks (Accept header); outbound API always
	EnvelopeAlways    = "always"
	EnvelopeNever     = "never"
)

// PurposeHMAC is the vault.SealBytes purpose under which Tenant.HMACKeySealed is sealed;
// open it with (*vault.Vault).OpenBytes(ctx, tenantID, PurposeHMAC, t.HMACKeySealed).
const PurposeHMAC = "hmac"

// Id prefixes (see internal/id).
const (
	TenantIDPrefix      = "ten"
	APIKeyIDPrefix      = "key"
	IntegrationIDPrefix = "int"
	CredentialIDPrefix  = "vlt"
)

// Tenant is one customer of the gateway.
type Tenant struct {
	ID                   string // "ten_…"
	Name                 string
	ResponseKEMPublicKey []byte // ML-KEM-768 encapsulation key, 1184 bytes
	ResponseKeyID        string // first 16 hex chars of SHA-256(ResponseKEMPublicKey)
	HMACKeySealed        []byte // the tenant HMAC key, sealed by vault.SealBytes (purpose "hmac")
	HMACKeyID            string // first 16 hex chars of SHA-256("quantaseal hmac key id" ‖ key)
	KMSKeyID             string // per-tenant KMS key id for the aws key provider; "" = provider default
	CreatedAt            time.Time
}

// APIKey is the stored half of a tenant API key. The key itself is never stored.
type APIKey struct {
	ID            string // public id "key_…", safe to log; the audit event's caller
	TenantID      string
	Hash          []byte // SHA-256 of the full "qs_live_…" string, see HashAPIKey
	IntegrationID string // "" = not bound to one integration
	CreatedAt     time.Time
	RevokedAt     *time.Time // nil while the key is live
}

// Integration connects a tenant to one upstream system (today an Okta org).
type Integration struct {
	ID                string // "int_…"
	TenantID          string
	SystemType        string // "okta"
	Name              string // unique within the tenant
	OktaDomain        string // origin, e.g. "https://yourorg.okta.com"
	CredentialID      string // "vlt_…", a sealed credential of the same tenant
	AllowedOperations []string
	Envelope          string // EnvelopeOnRequest, EnvelopeAlways or EnvelopeNever
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Store is the storage contract of the registry. It embeds vault.Store, so one store
// holds a tenant's vault key and sealed credentials next to the integrations that
// reference them (which is what lets DeleteSealedCredential refuse a credential in use).
//
// Unless a method says otherwise, errors wrap ErrNotFound, ErrConflict or ErrUnavailable.
// Beyond the vault.Store contract, DeleteSealedCredential returns an error wrapping
// ErrConflict while an integration uses the credential, and the vault.Store methods'
// errors also wrap vault.ErrNotFound / vault.ErrUnavailable.
// Times are stored with microsecond precision and returned in UTC.
type Store interface {
	vault.Store

	// CreateTenant inserts t and its first API key in one transaction.
	// ErrConflict: the tenant id, key id or key hash exists.
	CreateTenant(ctx context.Context, t Tenant, first APIKey) error
	// GetTenant returns one tenant. ErrNotFound.
	GetTenant(ctx context.Context, tenantID string) (Tenant, error)
	// ListTenants returns every tenant ordered by id (operator use, e.g. bootstrap).
	ListTenants(ctx context.Context) ([]Tenant, error)

	// CreateAPIKey inserts k. ErrNotFound: the tenant does not exist, or k is bound to
	// an integration that is not the tenant's. ErrConflict: duplicate id or hash.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// LookupAPIKey finds a key by its hash; the one lookup not scoped by tenant,
	// used by Authenticator. Revoked keys are returned too. ErrNotFound.
	LookupAPIKey(ctx context.Context, hash []byte) (APIKey, error)
	// ListAPIKeys returns the tenant's keys ordered by id.
	ListAPIKeys(ctx context.Context, tenantID string) ([]APIKey, error)
	// RevokeAPIKey marks a key revoked at at. Revoking a revoked key keeps the first
	// time and succeeds. ErrNotFound.
	RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) error

	// CreateIntegration inserts in. ErrNotFound: the tenant, or the credential in that
	// tenant, does not exist. ErrConflict: duplicate id, or the name is taken in the tenant.
	CreateIntegration(ctx context.Context, in Integration) error
	// GetIntegration returns one integration of the tenant. ErrNotFound.
	GetIntegration(ctx context.Context, tenantID, integrationID string) (Integration, error)
	// ListIntegrations returns the tenant's integrations ordered by id.
	ListIntegrations(ctx context.Context, tenantID string) ([]Integration, error)
	// ListIntegrationsByCredential returns the tenant's integrations that use the credential.
	ListIntegrationsByCredential(ctx context.Context, tenantID, credentialID string) ([]Integration, error)
	// UpdateIntegration replaces the mutable fields (Name, OktaDomain, CredentialID,
	// AllowedOperations, Envelope, UpdatedAt) of in.ID within in.TenantID.
	// ErrNotFound: no such integration, or the credential is not the tenant's.
	// ErrConflict: the new name is taken.
	UpdateIntegration(ctx context.Context, in Integration) error
	// DeleteIntegration deletes one integration. ErrNotFound. ErrConflict: a live
	// (unrevoked) API key is bound to it; revoke the key first.
	DeleteIntegration(ctx context.Context, tenantID, integrationID string) error
}

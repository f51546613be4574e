package extproc

import (
	"context"
	"errors"

	"github.com/quantaseal/gateway/internal/secret"
)

// The interfaces below are what the processor needs from the rest of the gateway. They
// are declared here, next to their only caller, and kept minimal; cmd/quantaseal adapts
// the registry, okta, vault, envelope and audit packages to them.

// ErrInvalidAPIKey is returned by [Authenticator.Authenticate] for an unknown, revoked
// or malformed key. Any other error means the key store could not answer (503).
var ErrInvalidAPIKey = errors.New("invalid API key")

// ErrIntegrationNotFound is returned by [Integrations.ResolveIntegration] when no
// integration of the tenant matches. Any other error means the store could not
// answer (503).
var ErrIntegrationNotFound = errors.New("integration not found")

// Caller is an authenticated tenant API key.
type Caller struct {
	TenantID string
	// KeyID is the key's public id ("key_…"); it is what audit records as caller.
	KeyID string
	// IntegrationID is the integration the key is bound to, or "" when the key may
	// use any integration of its tenant.
	IntegrationID string
}

// Authenticator checks a tenant API key ("qs_live_…").
type Authenticator interface {
	// Authenticate returns the key's caller, or an error wrapping ErrInvalidAPIKey.
	Authenticate(ctx context.Context, apiKey secret.Secret) (Caller, error)
}

// Envelope policies of an integration.
const (
	EnvelopeOnRequest = "on_request" // only when the client sends Accept: application/vnd.quantaseal.envelope+json
	EnvelopeAlways    = "always"
	EnvelopeNever     = "never"
)

// Integration is the part of a registered integration the processor uses.
type Integration struct {
	ID, TenantID string
	SystemType   string // "okta"
	// OktaOrigin is "https://yourorg.okta.com" (scheme://host[:port], no path); the
	// registry only admits Okta hosts and operator-approved origins.
	OktaOrigin        string
	AllowedOperations []string
	Envelope          string // EnvelopeOnRequest, EnvelopeAlways or EnvelopeNever
	CredentialID      string
}

// Integrations resolves the integration a call is for.
type Integrations interface {
	// ResolveIntegration returns the tenant's integration integrationID, or when that
	// is "", the tenant's integration whose Okta host equals host. It returns an error
	// wrapping ErrIntegrationNotFound when there is none (or several match host).
	ResolveIntegration(ctx context.Context, tenantID, integrationID, host string) (Integration, error)
}

// AuthorizeRequest describes one upstream call that needs a credential.
type AuthorizeRequest struct {
	Integration Integration
	// Scopes are the scopes of every operation the integration allows, sorted, so one
	// cached token serves them all.
	Scopes []string
	// Scope is the scope this call's operation needs.
	Scope string
	// Method and URL are the upstream request's; URL is absolute, without the query
	// (the DPoP htu claim, RFC 9449 §4.2).
	Method, URL string
}

// Authorization is what the processor injects upstream.
type Authorization struct {
	Header    secret.Secret // the whole Authorization value: "Bearer …", "DPoP …" or "SSWS …"
	DPoPProof secret.Secret // the DPoP header value, zero unless the token is DPoP-bound
}

// TokenSource obtains upstream credentials (okta.TokenSource behind an adapter).
type TokenSource interface {
	// Authorize returns the headers to inject. Errors implementing [TokenError]
	// are mapped by their code (see status.go); any other error means 503.
	Authorize(ctx context.Context, r AuthorizeRequest) (Authorization, error)
	// Invalidate drops cached tokens of an integration (after Okta answered 401).
	Invalidate(integrationID string)
}

// TokenError is how the processor reads a typed token failure without importing the
// okta package. Code is one of the okta error codes (invalid_client,
// insufficient_scope, token_timeout, token_unavailable, rate_limited, …); Scope names
// the missing scope for insufficient_scope.
type TokenError interface {
	error
	Code() string
	Scope() string
}

// SealRequest is one response to wrap in a HybridCryptoEnvelope (envelope-v1.md).
type SealRequest struct {
	Success      bool   // upstream status is 2xx
	Status       int    // upstream status
	Next         string // Okta's after cursor of the rel="next" link, or ""
	AuditEventID string
	Body         []byte // upstream body after content decoding
}

// Sealer seals responses for a tenant.
type Sealer interface {
	// Seal returns the envelope JSON.
	Seal(ctx context.Context, tenantID string, r SealRequest) ([]byte, error)
}

// AuditRecord holds the audit-v1 members the processor knows; the audit log fills id,
// chain_id, seq, time, prev_hash and hash.
type AuditRecord struct {
	TenantID       string
	IntegrationID  string
	Operation      string
	Caller         string // the API key's public id, never the key
	Method, Path   string // upstream request as sent, path without query
	QuerySHA256    string
	RequestSHA256  string
	PolicySHA256   string
	Decision       string // "allow" or "deny"
	Reason         string // machine code
	Status         int    // final HTTP status the client received (0 for an intent)
	ResponseSHA256 string
	ResponseBytes  int64
	Envelope       bool
	IntentID       string // an outcome event: the id of its call's intent event
}

// Recorder appends audit events.
type Recorder interface {
	// Record returns the event id ("aud_…") once the event is durably committed.
	Record(ctx context.Context, r AuditRecord) (eventID string, err error)
}

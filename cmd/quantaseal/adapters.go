package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/extproc"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/okta"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

// This file adapts the registry, vault, okta, envelope and audit packages to the small
// interfaces extproc declares (extproc/deps.go). Each adapter only translates types and
// error classes; the behaviour lives in the packages themselves.

// apiKeyAuthenticator adapts registry.Authenticator to extproc.Authenticator.
type apiKeyAuthenticator struct{ auth *registry.Authenticator }

func (a apiKeyAuthenticator) Authenticate(ctx context.Context, key secret.Secret) (extproc.Caller, error) {
	k, err := a.auth.Authenticate(ctx, key)
	if errors.Is(err, registry.ErrInvalidAPIKey) {
		return extproc.Caller{}, fmt.Errorf("%w", extproc.ErrInvalidAPIKey)
	}
	if err != nil {
		return extproc.Caller{}, err
	}
	return extproc.Caller{TenantID: k.TenantID, KeyID: k.ID, IntegrationID: k.IntegrationID}, nil
}

// integrationResolver adapts the registry store to extproc.Integrations.
type integrationResolver struct{ store registry.Store }

func toExtprocIntegration(in registry.Integration) extproc.Integration {
	return extproc.Integration{
		ID: in.ID, TenantID: in.TenantID, SystemType: in.SystemType,
		OktaOrigin: in.OktaDomain, AllowedOperations: in.AllowedOperations,
		Envelope: in.Envelope, CredentialID: in.CredentialID,
	}
}

// ResolveIntegration finds the integration by id, else by the request's host. A tenant
// with exactly one integration needs neither: that one is unambiguous (this is what
// lets an unchanged SDK, which cannot add X-QuantaSeal-Integration, use a tenant key).
func (r integrationResolver) ResolveIntegration(ctx context.Context, tenantID, integrationID, host string) (extproc.Integration, error) {
	if integrationID != "" {
		in, err := r.store.GetIntegration(ctx, tenantID, integrationID)
		if errors.Is(err, registry.ErrNotFound) {
			return extproc.Integration{}, fmt.Errorf("integration %s: %w", integrationID, extproc.ErrIntegrationNotFound)
		}
		if err != nil {
			return extproc.Integration{}, err
		}
		return toExtprocIntegration(in), nil
	}
	all, err := r.store.ListIntegrations(ctx, tenantID)
	if err != nil {
		return extproc.Integration{}, err
	}
	var byHost []registry.Integration
	for _, in := range all {
		if sameHost(in.OktaDomain, host) {
			byHost = append(byHost, in)
		}
	}
	switch {
	case len(byHost) == 1:
		return toExtprocIntegration(byHost[0]), nil
	case len(byHost) == 0 && len(all) == 1:
		return toExtprocIntegration(all[0]), nil
	}
	return extproc.Integration{}, fmt.Errorf("no single integration for host %q (%d match, %d in tenant): %w",
		host, len(byHost), len(all), extproc.ErrIntegrationNotFound)
}

// sameHost compares the host of an origin with a request's :authority, ignoring a
// default port.
func sameHost(origin, authority string) bool {
	u, err := url.Parse(origin)
	if err != nil || authority == "" {
		return false
	}
	h := strings.ToLower(authority)
	if host, port, err := net.SplitHostPort(h); err == nil && (port == "443" || port == "80") {
		h = host
	}
	return strings.EqualFold(u.Host, h) || strings.EqualFold(u.Hostname(), h) && u.Port() == ""
}

// forgettingRegistry is the registry store as the HTTP API sees it: after an API key
// is revoked or an integration created, it makes the processor forget what it cached
// about them (extproc.Config.AuthCacheTTL), so the change takes effect on this replica
// at once. httpapi has hooks for integration updates and deletes (wired in
// buildGateway) but none for these two. Other replicas follow within the TTL.
type forgettingRegistry struct {
	registry.Store
	proc *extproc.Server
}

func (r forgettingRegistry) RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) error {
	err := r.Store.RevokeAPIKey(ctx, tenantID, keyID, at)
	r.proc.ForgetAPIKey(tenantID, keyID)
	return err
}

func (r forgettingRegistry) CreateIntegration(ctx context.Context, in registry.Integration) error {
	err := r.Store.CreateIntegration(ctx, in)
	r.proc.ForgetIntegrations(in.TenantID)
	return err
}

// Ping keeps the store's readiness check visible through the wrapper.
func (r forgettingRegistry) Ping(ctx context.Context) error {
	if p, ok := r.Store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

// tokenSource adapts okta.TokenSource to extproc.TokenSource: it supplies the
// credential loader (the vault, called only on a cache miss) and turns okta errors into
// extproc.TokenError values.
type tokenSource struct {
	tokens *okta.TokenSource
	vault  *vault.Vault
}

func (t tokenSource) Authorize(ctx context.Context, r extproc.AuthorizeRequest) (extproc.Authorization, error) {
	in := r.Integration
	a, err := t.tokens.Authorize(ctx, okta.AuthorizeInput{
		IntegrationID: in.ID,
		OktaOrigin:    in.OktaOrigin,
		Scopes:        r.Scopes,
		Scope:         r.Scope,
		Method:        r.Method,
		URL:           r.URL,
		Credential: func(ctx context.Context) (vault.Credential, error) {
			return t.vault.Unseal(ctx, in.TenantID, in.CredentialID)
		},
	})
	if err != nil {
		var oe *okta.Error
		if errors.As(err, &oe) {
			return extproc.Authorization{}, tokenError{oe}
		}
		return extproc.Authorization{}, err
	}
	return extproc.Authorization{Header: a.Header, DPoPProof: a.DPoPProof}, nil
}

func (t tokenSource) Invalidate(integrationID string) { t.tokens.Invalidate(integrationID) }

// tokenError gives an *okta.Error the methods extproc.TokenError reads.
type tokenError struct{ e *okta.Error }

func (e tokenError) Error() string { return e.e.Error() }
func (e tokenError) Unwrap() error { return e.e }
func (e tokenError) Code() string  { return e.e.Code }
func (e tokenError) Scope() string { return e.e.Scope }

// RetryAfter is how long the token source will keep answering this temporary failure
// without asking Okta again (okta.Config.FailureTTL); the client gets it as Retry-After.
func (e tokenError) RetryAfter() time.Duration { return e.e.RetryAfter }

// ClientSecret reports whether an invalid_client came from a client-secret credential,
// so the processor can add Okta's private_key_jwt note.
func (e tokenError) ClientSecret() bool { return e.e.ClientSecret }

// auditRecorder adapts audit.Log to extproc.Recorder.
type auditRecorder struct{ log *audit.Log }

func (a auditRecorder) Record(ctx context.Context, r extproc.AuditRecord) (string, error) {
	ev, err := a.log.Append(ctx, audit.Event{
		TenantID:       r.TenantID,
		IntegrationID:  r.IntegrationID,
		Operation:      r.Operation,
		Caller:         r.Caller,
		Method:         r.Method,
		Path:           r.Path,
		QuerySHA256:    r.QuerySHA256,
		RequestSHA256:  r.RequestSHA256,
		PolicySHA256:   r.PolicySHA256,
		Decision:       r.Decision,
		Reason:         r.Reason,
		Status:         int64(r.Status),
		ResponseSHA256: r.ResponseSHA256,
		ResponseBytes:  r.ResponseBytes,
		Envelope:       r.Envelope,
		IntentID:       r.IntentID,
	})
	if err != nil {
		return "", err
	}
	return ev.ID, nil
}

// tenantSealer seals responses for a tenant: the tenant's response key comes from the
// registry, its HMAC key from the vault (sealed there under registry.PurposeHMAC), both
// cached for the vault key cache TTL so neither the store nor KMS is on the hot path.
type tenantSealer struct {
	registry registry.Store
	vault    *vault.Vault
	signer   *envelope.SigningKey
	ttl      time.Duration
	now      func() time.Time

	mu    sync.Mutex
	cache map[string]tenantKeys
}

type tenantKeys struct {
	recipient *envelope.EncapsulationKey
	hmac      *envelope.HMACKey
	expires   time.Time
}

func newTenantSealer(reg registry.Store, v *vault.Vault, signer *envelope.SigningKey, ttl time.Duration) *tenantSealer {
	return &tenantSealer{registry: reg, vault: v, signer: signer, ttl: ttl, now: time.Now, cache: map[string]tenantKeys{}}
}

func (s *tenantSealer) keys(ctx context.Context, tenantID string) (tenantKeys, error) {
	now := s.now()
	s.mu.Lock()
	k, ok := s.cache[tenantID]
	s.mu.Unlock()
	if ok && now.Before(k.expires) {
		return k, nil
	}
	t, err := s.registry.GetTenant(ctx, tenantID)
	if err != nil {
		return tenantKeys{}, fmt.Errorf("tenant %s: %w", tenantID, err)
	}
	recipient, err := envelope.ParseEncapsulationKey(t.ResponseKEMPublicKey)
	if err != nil {
		return tenantKeys{}, fmt.Errorf("tenant %s response key: %w", tenantID, err)
	}
	hk, err := s.vault.OpenBytes(ctx, tenantID, registry.PurposeHMAC, t.HMACKeySealed)
	if err != nil {
		return tenantKeys{}, fmt.Errorf("tenant %s hmac key: %w", tenantID, err)
	}
	hmacKey, err := envelope.NewHMACKey(hk.Bytes())
	if err != nil {
		return tenantKeys{}, fmt.Errorf("tenant %s hmac key: %w", tenantID, err)
	}
	k = tenantKeys{recipient: recipient, hmac: hmacKey, expires: now.Add(s.ttl)}
	if s.ttl > 0 {
		s.mu.Lock()
		s.cache[tenantID] = k
		s.mu.Unlock()
	}
	return k, nil
}

func (s *tenantSealer) Seal(ctx context.Context, tenantID string, r extproc.SealRequest) ([]byte, error) {
	k, err := s.keys(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	env, err := envelope.Seal(envelope.SealInput{
		TenantID:     tenantID,
		Recipient:    k.recipient,
		Signer:       s.signer,
		HMACKey:      k.hmac,
		Status:       r.Status,
		Next:         r.Next,
		AuditEventID: r.AuditEventID,
		IssuedAt:     s.now(),
		Plaintext:    r.Body,
	}, rand.Reader)
	if err != nil {
		return nil, err
	}
	return env.MarshalJSON()
}

package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
)

// APIKeyPrefix starts every tenant API key.
const APIKeyPrefix = "qs_live_"

// apiKeyBytes is the entropy of a key; 256 bits is what makes an unsalted SHA-256 a
// sufficient password hash here (see the package doc).
const apiKeyBytes = 32

// apiKeyLen is len(APIKeyPrefix) + unpadded base64url of 32 bytes.
var apiKeyLen = len(APIKeyPrefix) + base64.RawURLEncoding.EncodedLen(apiKeyBytes)

// NewAPIKey makes a fresh key for tenantID, optionally bound to integrationID. It returns
// the record to store and the key to show the caller once.
func NewAPIKey(tenantID, integrationID string, now time.Time) (APIKey, secret.Secret) {
	var b [apiKeyBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	key := secret.New(APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:]))
	return APIKey{
		ID:            id.New(APIKeyIDPrefix),
		TenantID:      tenantID,
		Hash:          HashAPIKey(key),
		IntegrationID: integrationID,
		CreatedAt:     now,
	}, key
}

// WellFormedAPIKey reports whether s has the shape of a key: the prefix and exactly
// 32 bytes of unpadded base64url. It checks shape only, not existence.
func WellFormedAPIKey(s secret.Secret) bool {
	v := s.Reveal()
	if len(v) != apiKeyLen || !strings.HasPrefix(v, APIKeyPrefix) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(v[len(APIKeyPrefix):])
	return err == nil && len(b) == apiKeyBytes
}

// HashAPIKey returns the stored form of a key: SHA-256 of the full key string.
func HashAPIKey(s secret.Secret) []byte {
	h := sha256.Sum256(s.Bytes())
	return h[:]
}

// KeyLookup is the part of Store an Authenticator needs.
type KeyLookup interface {
	LookupAPIKey(ctx context.Context, hash []byte) (APIKey, error)
}

// Authenticator checks presented API keys against a store.
type Authenticator struct {
	keys KeyLookup
}

// NewAuthenticator returns an Authenticator over keys (usually a Store).
func NewAuthenticator(keys KeyLookup) *Authenticator { return &Authenticator{keys: keys} }

// Authenticate returns the live key record that matches presented.
//
// It returns an error wrapping ErrInvalidAPIKey when the key is malformed, unknown or
// revoked, and one wrapping ErrUnavailable when the store cannot answer (the caller
// must then fail closed with 503, not 401). The error never contains the key.
func (a *Authenticator) Authenticate(ctx context.Context, presented secret.Secret) (APIKey, error) {
	if !WellFormedAPIKey(presented) {
		return APIKey{}, fmt.Errorf("authenticate: malformed key: %w", ErrInvalidAPIKey)
	}
	h := HashAPIKey(presented)
	k, err := a.keys.LookupAPIKey(ctx, h)
	switch {
	case errors.Is(err, ErrNotFound):
		return APIKey{}, fmt.Errorf("authenticate: unknown key: %w", ErrInvalidAPIKey)
	case err != nil:
		return APIKey{}, fmt.Errorf("authenticate: %w", err)
	}
	// The index lookup already matched; the constant-time comparison keeps the final
	// decision independent of how a store compares bytes.
	if subtle.ConstantTimeCompare(k.Hash, h) != 1 {
		return APIKey{}, fmt.Errorf("authenticate: unknown key: %w", ErrInvalidAPIKey)
	}
	if k.RevokedAt != nil {
		return APIKey{}, fmt.Errorf("authenticate: key %s is revoked: %w", k.ID, ErrInvalidAPIKey)
	}
	return k, nil
}

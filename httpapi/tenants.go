package httpapi

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

const (
	maxNameLen     = 200
	maxKMSKeyIDLen = 2048
)

func checkName(field, v string, required bool) *apiError {
	switch {
	case v == "" && required:
		return badRequest(field, "required")
	case len(v) > maxNameLen:
		return badRequest(field, fmt.Sprintf("at most %d bytes", maxNameLen))
	case !utf8.ValidString(v) || hasControl(v):
		return badRequest(field, "must be UTF-8 text without control characters")
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

type createTenantRequest struct {
	Name                 string `json:"name"`
	ResponseKEMPublicKey string `json:"response_kem_public_key"`
	KMSKeyID             string `json:"kms_key_id"`
}

type createTenantResponse struct {
	TenantID        string `json:"tenant_id"`
	Name            string `json:"name"`
	KeyID           string `json:"key_id"`
	APIKey          string `json:"api_key"`
	HMACKey         string `json:"hmac_key"`
	HMACKeyID       string `json:"hmac_key_id"`
	ResponseKeyID   string `json:"response_key_id"`
	ResponseKEMSeed string `json:"response_kem_seed,omitempty"`
	CreatedAt       string `json:"created_at"`
}

func timeJSON(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// createTenant: POST /api/v2/tenants. The HMAC key is sealed by the vault before any
// row is written, so a vault or KMS failure leaves no tenant behind (503). The secrets
// (api_key, hmac_key, a generated response_kem_seed) appear in this response only.
func (s *server) createTenant(w http.ResponseWriter, r *http.Request) *apiError {
	var req createTenantRequest
	if e := s.decodeJSON(w, r, &req, false); e != nil {
		return e
	}
	if e := checkName("name", req.Name, true); e != nil {
		return e
	}
	if len(req.KMSKeyID) > maxKMSKeyIDLen || hasControl(req.KMSKeyID) || !utf8.ValidString(req.KMSKeyID) {
		return badRequest("kms_key_id", "must be a KMS key id, ARN or alias")
	}
	var (
		encaps *envelope.EncapsulationKey
		seed   string
	)
	if req.ResponseKEMPublicKey != "" {
		raw, err := base64.StdEncoding.DecodeString(req.ResponseKEMPublicKey)
		if err != nil {
			return badRequest("response_kem_public_key", "must be standard base64")
		}
		if encaps, err = envelope.ParseEncapsulationKey(raw); err != nil {
			return badRequest("response_kem_public_key", fmt.Sprintf("must be a %d-byte ML-KEM-768 encapsulation key", envelope.EncapsulationKeySize))
		}
	} else {
		rk, err := envelope.GenerateResponseKey(nil)
		if err != nil {
			return fromError("tenant", err)
		}
		encaps = rk.Public()
		seed = base64.StdEncoding.EncodeToString(rk.Seed().Bytes())
	}
	hk, err := envelope.GenerateHMACKey(nil)
	if err != nil {
		return fromError("tenant", err)
	}
	if s.deps.Vault == nil {
		return unavailable(errors.New("no vault configured"))
	}
	now := s.now().UTC()
	tenantID := id.New(registry.TenantIDPrefix)
	hmacPlain := hk.Secret().Bytes()
	// The tenant row does not exist yet: name its KMS key for the vault key created now.
	sealed, err := s.deps.Vault.SealBytes(vault.WithKMSKeyID(r.Context(), req.KMSKeyID), tenantID, registry.PurposeHMAC, hmacPlain)
	if err != nil {
		clear(hmacPlain)
		return fromError("tenant", err)
	}
	t := registry.Tenant{
		ID: tenantID, Name: req.Name,
		ResponseKEMPublicKey: encaps.Bytes(), ResponseKeyID: encaps.KeyID(),
		HMACKeySealed: sealed, HMACKeyID: hk.KeyID(),
		KMSKeyID: req.KMSKeyID, CreatedAt: now,
	}
	rec, apiKey := registry.NewAPIKey(tenantID, "", now)
	if err := s.deps.Registry.CreateTenant(r.Context(), t, rec); err != nil {
		clear(hmacPlain)
		return fromError("tenant", err)
	}
	resp := createTenantResponse{
		TenantID: tenantID, Name: t.Name, KeyID: rec.ID, APIKey: apiKey.Reveal(),
		HMACKey: base64.StdEncoding.EncodeToString(hmacPlain), HMACKeyID: t.HMACKeyID,
		ResponseKeyID: t.ResponseKeyID, ResponseKEMSeed: seed, CreatedAt: timeJSON(now),
	}
	clear(hmacPlain)
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

type createAPIKeyRequest struct {
	IntegrationID string `json:"integration_id"`
}

type apiKeyJSON struct {
	KeyID         string  `json:"key_id"`
	TenantID      string  `json:"tenant_id"`
	IntegrationID string  `json:"integration_id,omitempty"`
	APIKey        string  `json:"api_key,omitempty"` // only in the creation response
	CreatedAt     string  `json:"created_at"`
	RevokedAt     *string `json:"revoked_at,omitempty"`
}

func keyJSON(k registry.APIKey) apiKeyJSON {
	out := apiKeyJSON{KeyID: k.ID, TenantID: k.TenantID, IntegrationID: k.IntegrationID, CreatedAt: timeJSON(k.CreatedAt)}
	if k.RevokedAt != nil {
		v := timeJSON(*k.RevokedAt)
		out.RevokedAt = &v
	}
	return out
}

// pathID returns the named path value; an id that cannot exist (wrong prefix or shape)
// is a 404, like an id that does not exist.
func pathID(r *http.Request, name, prefix, what string) (string, *apiError) {
	v := r.PathValue(name)
	if !id.Valid(prefix, v) {
		return "", notFound(what)
	}
	return v, nil
}

// createAPIKey: POST /api/v2/tenants/{tenant_id}/api-keys {integration_id?}.
func (s *server) createAPIKey(w http.ResponseWriter, r *http.Request) *apiError {
	tenantID, e := pathID(r, "tenant_id", registry.TenantIDPrefix, "tenant")
	if e != nil {
		return e
	}
	var req createAPIKeyRequest
	if e := s.decodeJSON(w, r, &req, true); e != nil {
		return e
	}
	if _, err := s.deps.Registry.GetTenant(r.Context(), tenantID); err != nil {
		return fromError("tenant", err)
	}
	if req.IntegrationID != "" {
		if !id.Valid(registry.IntegrationIDPrefix, req.IntegrationID) {
			return badRequest("integration_id", "not an integration id")
		}
		if _, err := s.deps.Registry.GetIntegration(r.Context(), tenantID, req.IntegrationID); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return badRequest("integration_id", "no such integration in this tenant")
			}
			return fromError("integration", err)
		}
	}
	rec, key := registry.NewAPIKey(tenantID, req.IntegrationID, s.now().UTC())
	if err := s.deps.Registry.CreateAPIKey(r.Context(), rec); err != nil {
		return fromError("api key", err)
	}
	out := keyJSON(rec)
	out.APIKey = key.Reveal()
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// listAPIKeys: GET /api/v2/tenants/{tenant_id}/api-keys (ids and state, never hashes).
func (s *server) listAPIKeys(w http.ResponseWriter, r *http.Request) *apiError {
	tenantID, e := pathID(r, "tenant_id", registry.TenantIDPrefix, "tenant")
	if e != nil {
		return e
	}
	if _, err := s.deps.Registry.GetTenant(r.Context(), tenantID); err != nil {
		return fromError("tenant", err)
	}
	keys, err := s.deps.Registry.ListAPIKeys(r.Context(), tenantID)
	if err != nil {
		return fromError("api keys", err)
	}
	out := make([]apiKeyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyJSON(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
	return nil
}

// revokeAPIKey: DELETE /api/v2/tenants/{tenant_id}/api-keys/{key_id}.
func (s *server) revokeAPIKey(w http.ResponseWriter, r *http.Request) *apiError {
	tenantID, e := pathID(r, "tenant_id", registry.TenantIDPrefix, "tenant")
	if e != nil {
		return e
	}
	keyID, e := pathID(r, "key_id", registry.APIKeyIDPrefix, "api key")
	if e != nil {
		return e
	}
	if err := s.deps.Registry.RevokeAPIKey(r.Context(), tenantID, keyID, s.now().UTC()); err != nil {
		return fromError("api key", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

package console

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

// purposeHMAC is the vault.SealBytes purpose of a tenant's HMAC key: the same as the
// HTTP API's (httpapi.PurposeHMAC, registry.Tenant.HMACKeySealed), so that the gateway
// opens keys made here.
const purposeHMAC = "hmac"

const maxKMSKeyIDLen = 2048

type tenantsData struct {
	Tenants []registry.Tenant
	Form    tenantForm
	Created *createdTenant // the once-shown secrets, only in the POST response
}

type tenantForm struct {
	Name     string
	KMSKeyID string
	Errors   fieldErrors
}

// createdTenant holds the secrets shown once after a tenant is created.
type createdTenant struct {
	TenantID        string
	Name            string
	KeyID           string
	APIKey          string
	HMACKey         string
	HMACKeyID       string
	ResponseKeyID   string
	ResponseKEMSeed string // "" when the operator gave a public key
}

func (s *server) tenantsPage(w http.ResponseWriter, r *http.Request, sess *session, status int, d tenantsData) error {
	ts, err := s.deps.Registry.ListTenants(r.Context())
	if err != nil {
		return err
	}
	d.Tenants = ts
	if d.Form.Errors == nil {
		d.Form.Errors = fieldErrors{}
	}
	s.render(w, r, sess, status, "tenants", "Tenants", "tenants", d)
	return nil
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request, sess *session) error {
	return s.tenantsPage(w, r, sess, http.StatusOK, tenantsData{})
}

// createTenant makes a tenant the way POST /api/v2/tenants does: the HMAC key is sealed
// before any row is written, so a vault failure leaves no tenant behind.
func (s *server) createTenant(w http.ResponseWriter, r *http.Request, sess *session) error {
	f := tenantForm{Name: r.PostForm.Get("name"), KMSKeyID: strings.TrimSpace(r.PostForm.Get("kms_key_id")), Errors: fieldErrors{}}
	checkName(f.Errors, "name", f.Name)
	if len(f.KMSKeyID) > maxKMSKeyIDLen || hasControl(f.KMSKeyID) || !utf8.ValidString(f.KMSKeyID) {
		f.Errors["kms_key_id"] = "Enter a KMS key id, ARN or alias, or leave empty for the default key."
	}
	var (
		encaps *envelope.EncapsulationKey
		seed   string
	)
	if v := strings.Join(strings.Fields(r.PostForm.Get("response_kem_public_key")), ""); v != "" {
		raw, err := base64.StdEncoding.DecodeString(v)
		if err == nil {
			encaps, err = envelope.ParseEncapsulationKey(raw)
		}
		if err != nil {
			f.Errors["response_kem_public_key"] = fmt.Sprintf(
				"Paste the standard base64 of a %d-byte ML-KEM-768 encapsulation key (quantaseal keys generate), or leave empty to generate one.",
				envelope.EncapsulationKeySize)
		}
	}
	if len(f.Errors) > 0 {
		return s.tenantsPage(w, r, sess, http.StatusBadRequest, tenantsData{Form: f})
	}
	if encaps == nil {
		rk, err := envelope.GenerateResponseKey(nil)
		if err != nil {
			return fmt.Errorf("generate response key: %w", err)
		}
		encaps = rk.Public()
		seed = base64.StdEncoding.EncodeToString(rk.Seed().Bytes())
	}
	hk, err := envelope.GenerateHMACKey(nil)
	if err != nil {
		return fmt.Errorf("generate hmac key: %w", err)
	}
	now := s.now().UTC()
	tenantID := id.New(registry.TenantIDPrefix)
	hmacPlain := hk.Secret().Bytes()
	defer clear(hmacPlain)
	// The tenant row does not exist yet: name its KMS key for the vault key created now.
	sealed, err := s.deps.Vault.SealBytes(vault.WithKMSKeyID(r.Context(), f.KMSKeyID), tenantID, purposeHMAC, hmacPlain)
	if err != nil {
		return err
	}
	t := registry.Tenant{
		ID: tenantID, Name: f.Name,
		ResponseKEMPublicKey: encaps.Bytes(), ResponseKeyID: encaps.KeyID(),
		HMACKeySealed: sealed, HMACKeyID: hk.KeyID(),
		KMSKeyID: f.KMSKeyID, CreatedAt: now,
	}
	rec, apiKey := registry.NewAPIKey(tenantID, "", now)
	if err := s.deps.Registry.CreateTenant(r.Context(), t, rec); err != nil {
		return err
	}
	return s.tenantsPage(w, r, sess, http.StatusCreated, tenantsData{Created: &createdTenant{
		TenantID: tenantID, Name: t.Name, KeyID: rec.ID, APIKey: apiKey.Reveal(),
		HMACKey: base64.StdEncoding.EncodeToString(hmacPlain), HMACKeyID: t.HMACKeyID,
		ResponseKeyID: t.ResponseKeyID, ResponseKEMSeed: seed,
	}})
}

type tenantPage struct {
	Tenant       registry.Tenant
	Keys         []registry.APIKey
	Integrations []registry.Integration
	Errors       fieldErrors
	CreatedKeyID string
	CreatedKey   string // shown once, only in the POST response
}

func (s *server) getTenant(r *http.Request) (registry.Tenant, error) {
	tenantID := r.PathValue("id")
	if !id.Valid(registry.TenantIDPrefix, tenantID) {
		return registry.Tenant{}, errNotFound
	}
	return s.deps.Registry.GetTenant(r.Context(), tenantID)
}

func (s *server) tenantPage(w http.ResponseWriter, r *http.Request, sess *session, status int, d tenantPage) error {
	keys, err := s.deps.Registry.ListAPIKeys(r.Context(), d.Tenant.ID)
	if err != nil {
		return err
	}
	ins, err := s.deps.Registry.ListIntegrations(r.Context(), d.Tenant.ID)
	if err != nil {
		return err
	}
	d.Keys, d.Integrations = keys, ins
	if d.Errors == nil {
		d.Errors = fieldErrors{}
	}
	s.render(w, r, sess, status, "tenant", "Tenant "+d.Tenant.Name, "tenants", d)
	return nil
}

func (s *server) showTenant(w http.ResponseWriter, r *http.Request, sess *session) error {
	t, err := s.getTenant(r)
	if err != nil {
		return err
	}
	return s.tenantPage(w, r, sess, http.StatusOK, tenantPage{Tenant: t})
}

func (s *server) createAPIKey(w http.ResponseWriter, r *http.Request, sess *session) error {
	t, err := s.getTenant(r)
	if err != nil {
		return err
	}
	intID := r.PostForm.Get("integration_id")
	if intID != "" {
		if !id.Valid(registry.IntegrationIDPrefix, intID) {
			return s.tenantPage(w, r, sess, http.StatusBadRequest, tenantPage{Tenant: t,
				Errors: fieldErrors{"integration_id": "Choose one of the tenant's integrations, or none."}})
		}
		if _, err := s.deps.Registry.GetIntegration(r.Context(), t.ID, intID); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return s.tenantPage(w, r, sess, http.StatusBadRequest, tenantPage{Tenant: t,
					Errors: fieldErrors{"integration_id": "There is no such integration in this tenant."}})
			}
			return err
		}
	}
	rec, key := registry.NewAPIKey(t.ID, intID, s.now().UTC())
	if err := s.deps.Registry.CreateAPIKey(r.Context(), rec); err != nil {
		return err
	}
	return s.tenantPage(w, r, sess, http.StatusCreated, tenantPage{Tenant: t, CreatedKeyID: rec.ID, CreatedKey: key.Reveal()})
}

func (s *server) apiKeyOf(r *http.Request, t registry.Tenant) (registry.APIKey, error) {
	keyID := r.PathValue("key")
	if !id.Valid(registry.APIKeyIDPrefix, keyID) {
		return registry.APIKey{}, errNotFound
	}
	keys, err := s.deps.Registry.ListAPIKeys(r.Context(), t.ID)
	if err != nil {
		return registry.APIKey{}, err
	}
	for _, k := range keys {
		if k.ID == keyID {
			return k, nil
		}
	}
	return registry.APIKey{}, errNotFound
}

func (s *server) confirmRevokeAPIKey(w http.ResponseWriter, r *http.Request, sess *session) error {
	t, err := s.getTenant(r)
	if err != nil {
		return err
	}
	k, err := s.apiKeyOf(r, t)
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "confirm", "Revoke API key", "tenants", confirmData{
		What: "API key", Name: k.ID + " of tenant " + t.Name, ID: k.ID, Verb: "Revoke",
		Action: "/console/tenants/" + t.ID + "/api-keys/" + k.ID + "/revoke", Cancel: "/console/tenants/" + t.ID,
	})
	return nil
}

func (s *server) revokeAPIKey(w http.ResponseWriter, r *http.Request, sess *session) error {
	t, err := s.getTenant(r)
	if err != nil {
		return err
	}
	k, err := s.apiKeyOf(r, t)
	if err != nil {
		return err
	}
	if err := s.deps.Registry.RevokeAPIKey(r.Context(), t.ID, k.ID, s.now().UTC()); err != nil {
		return err
	}
	s.redirect(w, r, sess, "/console/tenants/"+t.ID, "API key "+k.ID+" revoked.")
	return nil
}

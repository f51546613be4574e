package httpapi

import (
	"errors"
	"net/http"
	"slices"

	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/policy"
	"github.com/quantaseal/gateway/registry"
)

// maxOperations bounds allowed_operations (the catalogue is far smaller).
const maxOperations = 256

type integrationRequest struct {
	SystemType        string    `json:"system_type"`
	Name              string    `json:"name"`
	OktaDomain        string    `json:"okta_domain"`
	CredentialID      string    `json:"credential_id"`
	AllowedOperations *[]string `json:"allowed_operations"`
	Envelope          string    `json:"envelope"`
}

// integrationPatch: absent (or null) members are left unchanged; system_type cannot change.
type integrationPatch struct {
	Name              *string   `json:"name"`
	OktaDomain        *string   `json:"okta_domain"`
	CredentialID      *string   `json:"credential_id"`
	AllowedOperations *[]string `json:"allowed_operations"`
	Envelope          *string   `json:"envelope"`
}

type integrationJSON struct {
	IntegrationID     string   `json:"integration_id"`
	SystemType        string   `json:"system_type"`
	Name              string   `json:"name"`
	OktaDomain        string   `json:"okta_domain"`
	CredentialID      string   `json:"credential_id"`
	AllowedOperations []string `json:"allowed_operations"`
	Envelope          string   `json:"envelope"`
	PolicySHA256      string   `json:"policy_sha256"`
	CreatedAt         string   `json:"created_at"`
	UpdatedAt         string   `json:"updated_at"`
}

func intJSON(in registry.Integration) integrationJSON {
	ops := in.AllowedOperations
	if ops == nil {
		ops = []string{}
	}
	return integrationJSON{
		IntegrationID: in.ID, SystemType: in.SystemType, Name: in.Name, OktaDomain: in.OktaDomain,
		CredentialID: in.CredentialID, AllowedOperations: ops, Envelope: in.Envelope,
		PolicySHA256: policy.Hash(ops, in.Envelope),
		CreatedAt:    timeJSON(in.CreatedAt), UpdatedAt: timeJSON(in.UpdatedAt),
	}
}

// validate checks every member of in (already merged for PATCH) and canonicalises
// okta_domain and allowed_operations (sorted). It reads the store only to check that
// the credential is the tenant's.
func (s *server) validate(r *http.Request, in *registry.Integration) *apiError {
	if !policy.KnownSystemType(in.SystemType) {
		return badRequest("system_type", "unknown system type")
	}
	if e := checkName("name", in.Name, true); e != nil {
		return e
	}
	origin, err := registry.CheckOktaOrigin(in.OktaDomain, s.cfg.AllowedOktaOrigins)
	if err != nil {
		return badRequest("okta_domain", "must be https:// and an Okta host (*.okta.com, *.oktapreview.com, *.okta-emea.com, *.okta-gov.com, *.okta.mil) or an origin the operator allowed")
	}
	in.OktaDomain = origin
	if len(in.AllowedOperations) > maxOperations {
		return badRequest("allowed_operations", "too many operations")
	}
	ops := slices.Clone(in.AllowedOperations)
	slices.Sort(ops)
	for i, op := range ops {
		if _, ok := policy.Lookup(in.SystemType, op); !ok {
			return badRequest("allowed_operations", "unknown operation for this system type: see the operation catalogue")
		}
		if i > 0 && ops[i-1] == op {
			return badRequest("allowed_operations", "duplicate operation")
		}
	}
	in.AllowedOperations = ops
	switch in.Envelope {
	case registry.EnvelopeOnRequest, registry.EnvelopeAlways, registry.EnvelopeNever:
	default:
		return badRequest("envelope", "must be on_request, always or never")
	}
	if !id.Valid(registry.CredentialIDPrefix, in.CredentialID) {
		return badRequest("credential_id", "required: a vlt_ credential id")
	}
	if _, err := s.deps.Registry.GetSealedCredential(r.Context(), in.TenantID, in.CredentialID); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return badRequest("credential_id", "no such credential in this tenant")
		}
		return fromError("credential", err)
	}
	return nil
}

// storeIntegrationErr maps a store error of a write after validation: a credential that
// vanished in between is still the client's field error.
func storeIntegrationErr(err error) *apiError {
	if errors.Is(err, registry.ErrConflict) {
		return &apiError{Status: http.StatusConflict, Code: CodeConflict, Message: "an integration with this name exists", Field: "name", cause: err}
	}
	return fromError("integration", err)
}

// createIntegration: POST /api/v2/integrations.
func (s *server) createIntegration(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	var req integrationRequest
	if e := s.decodeJSON(w, r, &req, false); e != nil {
		return e
	}
	if req.AllowedOperations == nil {
		return badRequest("allowed_operations", "required (default deny: list every operation to allow)")
	}
	if req.Envelope == "" {
		req.Envelope = registry.EnvelopeOnRequest
	}
	now := s.now().UTC()
	in := registry.Integration{
		ID: id.New(registry.IntegrationIDPrefix), TenantID: key.TenantID, SystemType: req.SystemType,
		Name: req.Name, OktaDomain: req.OktaDomain, CredentialID: req.CredentialID,
		AllowedOperations: *req.AllowedOperations, Envelope: req.Envelope, CreatedAt: now, UpdatedAt: now,
	}
	if e := s.validate(r, &in); e != nil {
		return e
	}
	if err := s.deps.Registry.CreateIntegration(r.Context(), in); err != nil {
		return storeIntegrationErr(err)
	}
	writeJSON(w, http.StatusCreated, intJSON(in))
	return nil
}

// getIntegration: GET /api/v2/integrations/{id}.
func (s *server) getIntegration(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	intID, e := pathID(r, "id", registry.IntegrationIDPrefix, "integration")
	if e != nil {
		return e
	}
	in, err := s.deps.Registry.GetIntegration(r.Context(), key.TenantID, intID)
	if err != nil {
		return fromError("integration", err)
	}
	writeJSON(w, http.StatusOK, intJSON(in))
	return nil
}

// listIntegrations: GET /api/v2/integrations.
func (s *server) listIntegrations(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	ins, err := s.deps.Registry.ListIntegrations(r.Context(), key.TenantID)
	if err != nil {
		return fromError("integrations", err)
	}
	out := make([]integrationJSON, 0, len(ins))
	for _, in := range ins {
		out = append(out, intJSON(in))
	}
	writeJSON(w, http.StatusOK, map[string]any{"integrations": out})
	return nil
}

// updateIntegration: PATCH /api/v2/integrations/{id}.
func (s *server) updateIntegration(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	intID, e := pathID(r, "id", registry.IntegrationIDPrefix, "integration")
	if e != nil {
		return e
	}
	var p integrationPatch
	if e := s.decodeJSON(w, r, &p, false); e != nil {
		return e
	}
	if p.Name == nil && p.OktaDomain == nil && p.CredentialID == nil && p.AllowedOperations == nil && p.Envelope == nil {
		return badRequest("", "nothing to update")
	}
	in, err := s.deps.Registry.GetIntegration(r.Context(), key.TenantID, intID)
	if err != nil {
		return fromError("integration", err)
	}
	if p.Name != nil {
		in.Name = *p.Name
	}
	if p.OktaDomain != nil {
		in.OktaDomain = *p.OktaDomain
	}
	if p.CredentialID != nil {
		in.CredentialID = *p.CredentialID
	}
	if p.AllowedOperations != nil {
		in.AllowedOperations = *p.AllowedOperations
	}
	if p.Envelope != nil {
		in.Envelope = *p.Envelope
	}
	in.UpdatedAt = s.now().UTC()
	if e := s.validate(r, &in); e != nil {
		return e
	}
	if err := s.deps.Registry.UpdateIntegration(r.Context(), in); err != nil {
		return storeIntegrationErr(err)
	}
	if s.deps.OnIntegrationChanged != nil {
		s.deps.OnIntegrationChanged(key.TenantID, in.ID)
	}
	writeJSON(w, http.StatusOK, intJSON(in))
	return nil
}

// deleteIntegration: DELETE /api/v2/integrations/{id}; 409 while a live key is bound to it.
func (s *server) deleteIntegration(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	intID, e := pathID(r, "id", registry.IntegrationIDPrefix, "integration")
	if e != nil {
		return e
	}
	if err := s.deps.Registry.DeleteIntegration(r.Context(), key.TenantID, intID); err != nil {
		if errors.Is(err, registry.ErrConflict) {
			return &apiError{Status: http.StatusConflict, Code: CodeConflict,
				Message: "a live API key is bound to this integration; revoke it first", cause: err}
		}
		return fromError("integration", err)
	}
	if s.deps.OnIntegrationChanged != nil {
		s.deps.OnIntegrationChanged(key.TenantID, intID)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

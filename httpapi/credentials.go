package httpapi

import (
	"errors"
	"net/http"

	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

// secretJSON is the "secret" member of seal and rotate. Which members are required
// depends on the credential type; the vault validates the combination.
type secretJSON struct {
	ClientID     string      `json:"client_id"`
	ClientSecret secretField `json:"client_secret"`
	PrivateKey   secretField `json:"private_key"`
	PrivateKeyID string      `json:"private_key_id"`
	Token        secretField `json:"token"`
}

func (sj *secretJSON) credential(credType string) vault.Credential {
	return vault.Credential{
		Type: credType, ClientID: sj.ClientID, ClientSecret: sj.ClientSecret.Secret,
		PrivateKey: sj.PrivateKey.Secret, PrivateKeyID: sj.PrivateKeyID, Token: sj.Token.Secret,
	}
}

type sealRequest struct {
	CredentialType string      `json:"credential_type"`
	Name           string      `json:"name"`
	Secret         *secretJSON `json:"secret"`
}

type rotateRequest struct {
	Secret *secretJSON `json:"secret"`
}

type credentialJSON struct {
	CredentialID   string  `json:"credential_id"`
	CredentialType string  `json:"credential_type"`
	Name           string  `json:"name"`
	Fingerprint    string  `json:"fingerprint"`
	CreatedAt      string  `json:"created_at"`
	RotatedAt      *string `json:"rotated_at,omitempty"`
}

func credJSON(m vault.CredentialMeta) credentialJSON {
	out := credentialJSON{CredentialID: m.ID, CredentialType: m.Type, Name: m.Name,
		Fingerprint: m.Fingerprint, CreatedAt: timeJSON(m.CreatedAt)}
	if !m.RotatedAt.IsZero() {
		v := timeJSON(m.RotatedAt)
		out.RotatedAt = &v
	}
	return out
}

func (s *server) vaultOrFail() (Vault, *apiError) {
	if s.deps.Vault == nil {
		return nil, unavailable(errors.New("no vault configured"))
	}
	return s.deps.Vault, nil
}

// sealCredential: POST /api/v2/vault/seal.
func (s *server) sealCredential(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	var req sealRequest
	if e := s.decodeJSON(w, r, &req, false); e != nil {
		return e
	}
	switch req.CredentialType {
	case vault.CredentialTypeOAuth2Client, vault.CredentialTypeAPIKey:
	case "":
		return badRequest("credential_type", "required: oauth2_client or api_key")
	default:
		return badRequest("credential_type", "must be oauth2_client or api_key")
	}
	if e := checkName("name", req.Name, true); e != nil {
		return e
	}
	if req.Secret == nil {
		return badRequest("secret", "required")
	}
	v, e := s.vaultOrFail()
	if e != nil {
		return e
	}
	meta, err := v.Seal(r.Context(), key.TenantID, req.Name, req.CredentialType, req.Secret.credential(req.CredentialType))
	if err != nil {
		return fromError("credential", err)
	}
	writeJSON(w, http.StatusCreated, credJSON(meta))
	return nil
}

// rotateCredential: POST /api/v2/vault/{id}/rotate. After the new secret is stored,
// Deps.OnCredentialRotated drops cached tokens of the integrations that use it.
func (s *server) rotateCredential(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	credID, e := pathID(r, "id", registry.CredentialIDPrefix, "credential")
	if e != nil {
		return e
	}
	var req rotateRequest
	if e := s.decodeJSON(w, r, &req, false); e != nil {
		return e
	}
	if req.Secret == nil {
		return badRequest("secret", "required")
	}
	v, e := s.vaultOrFail()
	if e != nil {
		return e
	}
	meta, err := v.Rotate(r.Context(), key.TenantID, credID, req.Secret.credential(""))
	if err != nil {
		return fromError("credential", err)
	}
	if s.deps.OnCredentialRotated != nil {
		s.deps.OnCredentialRotated(key.TenantID, credID)
	}
	writeJSON(w, http.StatusOK, credJSON(meta))
	return nil
}

// getCredential: GET /api/v2/vault/{id} (metadata only).
func (s *server) getCredential(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	credID, e := pathID(r, "id", registry.CredentialIDPrefix, "credential")
	if e != nil {
		return e
	}
	v, e := s.vaultOrFail()
	if e != nil {
		return e
	}
	meta, err := v.Get(r.Context(), key.TenantID, credID)
	if err != nil {
		return fromError("credential", err)
	}
	writeJSON(w, http.StatusOK, credJSON(meta))
	return nil
}

// listCredentials: GET /api/v2/vault (metadata only).
func (s *server) listCredentials(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	v, e := s.vaultOrFail()
	if e != nil {
		return e
	}
	metas, err := v.List(r.Context(), key.TenantID)
	if err != nil {
		return fromError("credentials", err)
	}
	out := make([]credentialJSON, 0, len(metas))
	for _, m := range metas {
		out = append(out, credJSON(m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"credentials": out})
	return nil
}

// deleteCredential: DELETE /api/v2/vault/{id}; 409 while an integration uses it (the
// store's foreign key enforces the same under concurrency).
func (s *server) deleteCredential(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	credID, e := pathID(r, "id", registry.CredentialIDPrefix, "credential")
	if e != nil {
		return e
	}
	v, e := s.vaultOrFail()
	if e != nil {
		return e
	}
	users, err := s.deps.Registry.ListIntegrationsByCredential(r.Context(), key.TenantID, credID)
	if err != nil {
		return fromError("credential", err)
	}
	if len(users) > 0 {
		return &apiError{Status: http.StatusConflict, Code: CodeConflict,
			Message: "credential is used by integration " + users[0].ID + "; change or delete the integration first"}
	}
	if err := v.Delete(r.Context(), key.TenantID, credID); err != nil {
		return fromError("credential", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

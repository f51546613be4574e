package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

type credentialRow struct {
	vault.CredentialMeta
	UsedBy []registry.Integration
}

type credentialList struct {
	Credentials []credentialRow
}

func (s *server) listCredentials(w http.ResponseWriter, r *http.Request, sess *session) error {
	creds, err := s.deps.Vault.List(r.Context(), sess.tenantID)
	if err != nil {
		return err
	}
	ins, err := s.deps.Registry.ListIntegrations(r.Context(), sess.tenantID)
	if err != nil {
		return err
	}
	d := credentialList{}
	for _, c := range creds {
		row := credentialRow{CredentialMeta: c}
		for _, in := range ins {
			if in.CredentialID == c.ID {
				row.UsedBy = append(row.UsedBy, in)
			}
		}
		d.Credentials = append(d.Credentials, row)
	}
	s.render(w, r, sess, http.StatusOK, "vault", "Vault", "vault", d)
	return nil
}

// credentialForm is the seal page and the rotate form. It never holds a secret: the
// secret inputs are always rendered empty.
type credentialForm struct {
	Type     string
	Name     string
	ClientID string
	KeyID    string // private_key_id
	Errors   fieldErrors
}

func (s *server) newCredential(w http.ResponseWriter, r *http.Request, sess *session) error {
	s.render(w, r, sess, http.StatusOK, "credential_new", "Seal a credential", "vault",
		credentialForm{Type: vault.CredentialTypeOAuth2Client, Errors: fieldErrors{}})
	return nil
}

// readSecret builds a credential from the posted secret.* fields.
func readSecret(r *http.Request, credType string) vault.Credential {
	f := r.PostForm
	c := vault.Credential{
		Type:         credType,
		ClientID:     strings.TrimSpace(f.Get("secret.client_id")),
		ClientSecret: secret.New(f.Get("secret.client_secret")),
		PrivateKey:   secret.New(normalizePrivateKey(f.Get("secret.private_key"))),
		PrivateKeyID: strings.TrimSpace(f.Get("secret.private_key_id")),
		Token:        secret.New(f.Get("secret.token")),
	}
	if credType == vault.CredentialTypeAPIKey {
		// The form shows the oauth2_client fields too (without JavaScript it cannot hide
		// them); values left in them must not make an api_key invalid.
		c.ClientID, c.ClientSecret, c.PrivateKey, c.PrivateKeyID = "", secret.Secret{}, secret.Secret{}, ""
	} else {
		c.Token = secret.Secret{}
	}
	for _, k := range []string{"secret.client_secret", "secret.private_key", "secret.token"} {
		f.Del(k)
	}
	return c
}

// normalizePrivateKey restores the line breaks of a PEM block pasted into a password
// input: browsers strip CR and LF from such inputs (HTML's value sanitization algorithm
// for type=password), which leaves "-----BEGIN X-----MIIE…-----END X-----". Anything
// else (a JWK, a PEM with its line breaks) is returned unchanged for the vault to check.
func normalizePrivateKey(v string) string {
	t := strings.TrimSpace(v)
	if !strings.HasPrefix(t, "-----BEGIN ") || strings.ContainsAny(t, "\r\n") {
		return v
	}
	rest := t[len("-----BEGIN "):]
	label, rest, ok := strings.Cut(rest, "-----")
	if !ok || label == "" {
		return v
	}
	footer := "-----END " + label + "-----"
	body, ok := strings.CutSuffix(rest, footer)
	if !ok {
		return v
	}
	body = strings.Join(strings.Fields(body), "")
	var b strings.Builder
	b.WriteString("-----BEGIN " + label + "-----\n")
	for len(body) > 64 {
		b.WriteString(body[:64] + "\n")
		body = body[64:]
	}
	if body != "" {
		b.WriteString(body + "\n")
	}
	b.WriteString(footer + "\n")
	return b.String()
}

// vaultFieldErrors turns a vault validation error into a field error.
func vaultFieldErrors(err error) (fieldErrors, bool) {
	var ve *vault.ValidationError
	if !errors.As(err, &ve) {
		return nil, false
	}
	return fieldErrors{ve.Field: sentence(ve.Message)}, true
}

// sentence capitalises msg and ends it with a period.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

func (s *server) sealCredential(w http.ResponseWriter, r *http.Request, sess *session) error {
	f := credentialForm{
		Type: r.PostForm.Get("credential_type"), Name: r.PostForm.Get("name"),
		ClientID: strings.TrimSpace(r.PostForm.Get("secret.client_id")), KeyID: strings.TrimSpace(r.PostForm.Get("secret.private_key_id")),
		Errors: fieldErrors{},
	}
	c := readSecret(r, f.Type)
	switch f.Type {
	case vault.CredentialTypeOAuth2Client, vault.CredentialTypeAPIKey:
	default:
		f.Errors["credential_type"] = "Choose oauth2_client or api_key."
	}
	checkName(f.Errors, "name", f.Name)
	if len(f.Errors) == 0 {
		meta, err := s.deps.Vault.Seal(r.Context(), sess.tenantID, f.Name, f.Type, c)
		if err == nil {
			s.redirect(w, r, sess, "/console/vault/"+meta.ID,
				fmt.Sprintf("Credential %q sealed. Fingerprint %s.", meta.Name, meta.Fingerprint))
			return nil
		}
		errs, ok := vaultFieldErrors(err)
		if !ok {
			return err
		}
		f.Errors = errs
	}
	s.render(w, r, sess, http.StatusBadRequest, "credential_new", "Seal a credential", "vault", f)
	return nil
}

type credentialPage struct {
	Meta   vault.CredentialMeta
	UsedBy []registry.Integration
	Rotate credentialForm
}

// getCredential loads one of the session tenant's credentials by the {id} path value.
func (s *server) getCredential(r *http.Request, sess *session) (vault.CredentialMeta, error) {
	credID := r.PathValue("id")
	if !id.Valid(registry.CredentialIDPrefix, credID) {
		return vault.CredentialMeta{}, errNotFound
	}
	return s.deps.Vault.Get(r.Context(), sess.tenantID, credID)
}

func (s *server) credentialPage(r *http.Request, sess *session, rotate credentialForm) (credentialPage, error) {
	meta, err := s.getCredential(r, sess)
	if err != nil {
		return credentialPage{}, err
	}
	users, err := s.deps.Registry.ListIntegrationsByCredential(r.Context(), sess.tenantID, meta.ID)
	if err != nil {
		return credentialPage{}, err
	}
	rotate.Type = meta.Type
	if rotate.Errors == nil {
		rotate.Errors = fieldErrors{}
	}
	return credentialPage{Meta: meta, UsedBy: users, Rotate: rotate}, nil
}

func (s *server) showCredential(w http.ResponseWriter, r *http.Request, sess *session) error {
	d, err := s.credentialPage(r, sess, credentialForm{})
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "credential", "Credential "+d.Meta.Name, "vault", d)
	return nil
}

func (s *server) rotateCredential(w http.ResponseWriter, r *http.Request, sess *session) error {
	meta, err := s.getCredential(r, sess)
	if err != nil {
		return err
	}
	rotate := credentialForm{
		ClientID: strings.TrimSpace(r.PostForm.Get("secret.client_id")),
		KeyID:    strings.TrimSpace(r.PostForm.Get("secret.private_key_id")),
	}
	c := readSecret(r, meta.Type)
	meta, err = s.deps.Vault.Rotate(r.Context(), sess.tenantID, meta.ID, c)
	if err == nil {
		if s.deps.OnCredentialRotated != nil {
			s.deps.OnCredentialRotated(sess.tenantID, meta.ID)
		}
		s.redirect(w, r, sess, "/console/vault/"+meta.ID,
			fmt.Sprintf("Credential %q rotated. New fingerprint %s.", meta.Name, meta.Fingerprint))
		return nil
	}
	errs, ok := vaultFieldErrors(err)
	if !ok {
		return err
	}
	rotate.Errors = errs
	d, err := s.credentialPage(r, sess, rotate)
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusBadRequest, "credential", "Credential "+d.Meta.Name, "vault", d)
	return nil
}

func (s *server) confirmDeleteCredential(w http.ResponseWriter, r *http.Request, sess *session) error {
	meta, err := s.getCredential(r, sess)
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "confirm", "Delete credential", "vault", confirmData{
		What: "credential", Name: meta.Name, ID: meta.ID,
		Action: "/console/vault/" + meta.ID + "/delete", Cancel: "/console/vault/" + meta.ID,
	})
	return nil
}

func (s *server) deleteCredential(w http.ResponseWriter, r *http.Request, sess *session) error {
	meta, err := s.getCredential(r, sess)
	if err != nil {
		return err
	}
	users, err := s.deps.Registry.ListIntegrationsByCredential(r.Context(), sess.tenantID, meta.ID)
	if err != nil {
		return err
	}
	conflict := len(users) > 0
	if !conflict {
		err = s.deps.Vault.Delete(r.Context(), sess.tenantID, meta.ID)
		// The store's foreign key refuses a credential an integration started using
		// in between; the vault reports that as unavailable wrapping registry.ErrConflict.
		conflict = errors.Is(err, registry.ErrConflict)
		if err != nil && !conflict {
			return err
		}
	}
	if conflict {
		s.render(w, r, sess, http.StatusConflict, "confirm", "Delete credential", "vault", confirmData{
			What: "credential", Name: meta.Name, ID: meta.ID,
			Action: "/console/vault/" + meta.ID + "/delete", Cancel: "/console/vault/" + meta.ID,
			Error: "An integration uses this credential. Change or delete the integration first.",
		})
		return nil
	}
	s.redirect(w, r, sess, "/console/vault", fmt.Sprintf("Credential %q deleted.", meta.Name))
	return nil
}

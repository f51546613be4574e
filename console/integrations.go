package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/policy"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

// maxNameLen matches the HTTP API's limit on names.
const maxNameLen = 200

// fieldErrors maps a form field (named like the HTTP API's JSON member) to a message
// in plain words. The key "" holds an error about the whole form.
type fieldErrors map[string]string

func checkName(errs fieldErrors, field, v string) {
	switch {
	case v == "":
		errs[field] = "Required."
	case len(v) > maxNameLen:
		errs[field] = fmt.Sprintf("At most %d bytes.", maxNameLen)
	case !utf8.ValidString(v) || hasControl(v):
		errs[field] = "Use text without control characters."
	}
}

func hasControl(v string) bool {
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

type integrationRow struct {
	registry.Integration
	CredentialName string
}

type integrationList struct {
	Integrations []integrationRow
}

func (s *server) listIntegrations(w http.ResponseWriter, r *http.Request, sess *session) error {
	ins, err := s.deps.Registry.ListIntegrations(r.Context(), sess.tenantID)
	if err != nil {
		return err
	}
	creds, err := s.deps.Vault.List(r.Context(), sess.tenantID)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, c := range creds {
		names[c.ID] = c.Name
	}
	d := integrationList{}
	for _, in := range ins {
		d.Integrations = append(d.Integrations, integrationRow{Integration: in, CredentialName: names[in.CredentialID]})
	}
	s.render(w, r, sess, http.StatusOK, "integrations", "Integrations", "integrations", d)
	return nil
}

// integrationForm is the create/edit page.
type integrationForm struct {
	ID           string // "" when creating
	SystemType   string
	Name         string
	OktaDomain   string
	CredentialID string
	Allowed      []string
	Envelope     string
	Operations   []policy.Operation
	Credentials  []vault.CredentialMeta
	Envelopes    []string
	PolicySHA256 string
	Errors       fieldErrors
}

func (s *server) integrationForm(r *http.Request, sess *session, f *integrationForm) error {
	creds, err := s.deps.Vault.List(r.Context(), sess.tenantID)
	if err != nil {
		return err
	}
	f.Credentials = creds
	f.Operations = policy.Operations(f.SystemType)
	f.Envelopes = []string{registry.EnvelopeOnRequest, registry.EnvelopeAlways, registry.EnvelopeNever}
	if f.Errors == nil {
		f.Errors = fieldErrors{}
	}
	return nil
}

func (s *server) newIntegration(w http.ResponseWriter, r *http.Request, sess *session) error {
	f := &integrationForm{SystemType: policy.SystemOkta, Envelope: registry.EnvelopeOnRequest}
	if err := s.integrationForm(r, sess, f); err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "integration", "New integration", "integrations", f)
	return nil
}

// getIntegration loads one of the session tenant's integrations by the {id} path value.
func (s *server) getIntegration(r *http.Request, sess *session) (registry.Integration, error) {
	intID := r.PathValue("id")
	if !id.Valid(registry.IntegrationIDPrefix, intID) {
		return registry.Integration{}, errNotFound
	}
	return s.deps.Registry.GetIntegration(r.Context(), sess.tenantID, intID)
}

func (s *server) editIntegration(w http.ResponseWriter, r *http.Request, sess *session) error {
	in, err := s.getIntegration(r, sess)
	if err != nil {
		return err
	}
	f := &integrationForm{
		ID: in.ID, SystemType: in.SystemType, Name: in.Name, OktaDomain: in.OktaDomain,
		CredentialID: in.CredentialID, Allowed: in.AllowedOperations, Envelope: in.Envelope,
		PolicySHA256: policy.Hash(in.AllowedOperations, in.Envelope),
	}
	if err := s.integrationForm(r, sess, f); err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "integration", "Integration "+in.Name, "integrations", f)
	return nil
}

// readIntegration copies the posted fields into in and validates them the way the HTTP
// API does (known system type, name, okta_domain origin, catalogue operations, envelope
// mode, a credential of this tenant). It canonicalises okta_domain and sorts the
// operations.
func (s *server) readIntegration(r *http.Request, sess *session, in *registry.Integration) (fieldErrors, error) {
	errs := fieldErrors{}
	in.Name = r.PostForm.Get("name")
	in.OktaDomain = r.PostForm.Get("okta_domain")
	in.CredentialID = r.PostForm.Get("credential_id")
	in.Envelope = r.PostForm.Get("envelope")
	ops := slices.Clone(r.PostForm["allowed_operations"])
	slices.Sort(ops)
	in.AllowedOperations = slices.Compact(ops)
	if !policy.KnownSystemType(in.SystemType) {
		errs["system_type"] = "Unknown system type."
	}
	checkName(errs, "name", in.Name)
	if origin, err := registry.CheckOktaOrigin(in.OktaDomain, s.cfg.AllowedOktaOrigins); err != nil {
		errs["okta_domain"] = "Enter the https:// origin of an Okta org (*.okta.com, *.oktapreview.com, " +
			"*.okta-emea.com, *.okta-gov.com, *.okta.mil) or an origin the operator allowed, for example https://yourorg.okta.com."
	} else {
		in.OktaDomain = origin
	}
	for _, op := range in.AllowedOperations {
		if _, ok := policy.Lookup(in.SystemType, op); !ok {
			errs["allowed_operations"] = "Choose operations from the catalogue only."
		}
	}
	switch in.Envelope {
	case registry.EnvelopeOnRequest, registry.EnvelopeAlways, registry.EnvelopeNever:
	default:
		errs["envelope"] = "Choose on_request, always or never."
	}
	if !id.Valid(registry.CredentialIDPrefix, in.CredentialID) {
		errs["credential_id"] = "Choose a sealed credential (seal one on the Vault page first)."
	} else if _, err := s.deps.Vault.Get(r.Context(), sess.tenantID, in.CredentialID); err != nil {
		if !errors.Is(err, vault.ErrNotFound) {
			return nil, err
		}
		errs["credential_id"] = "There is no such credential in this tenant."
	}
	return errs, nil
}

// saveIntegration writes in, or re-renders the form with the errors next to their fields.
func (s *server) saveIntegration(w http.ResponseWriter, r *http.Request, sess *session, in registry.Integration, create bool) error {
	errs, err := s.readIntegration(r, sess, &in)
	if err != nil {
		return err
	}
	if len(errs) == 0 {
		if create {
			err = s.deps.Registry.CreateIntegration(r.Context(), in)
		} else {
			err = s.deps.Registry.UpdateIntegration(r.Context(), in)
		}
		switch {
		case errors.Is(err, registry.ErrConflict):
			errs["name"] = "An integration with this name exists in this tenant."
		case errors.Is(err, registry.ErrNotFound) && create:
			errs["credential_id"] = "There is no such credential in this tenant."
		case err != nil:
			return err
		}
	}
	if len(errs) > 0 {
		f := &integrationForm{
			SystemType: in.SystemType, Name: in.Name, OktaDomain: in.OktaDomain,
			CredentialID: in.CredentialID, Allowed: in.AllowedOperations, Envelope: in.Envelope, Errors: errs,
		}
		if !create {
			f.ID = in.ID
		}
		if err := s.integrationForm(r, sess, f); err != nil {
			return err
		}
		s.render(w, r, sess, http.StatusBadRequest, "integration", "Integration", "integrations", f)
		return nil
	}
	if !create && s.deps.OnIntegrationChanged != nil {
		s.deps.OnIntegrationChanged(sess.tenantID, in.ID)
	}
	verb := "updated"
	if create {
		verb = "created"
	}
	s.redirect(w, r, sess, "/console/integrations", fmt.Sprintf("Integration %q %s.", in.Name, verb))
	return nil
}

func (s *server) createIntegration(w http.ResponseWriter, r *http.Request, sess *session) error {
	now := s.now().UTC()
	in := registry.Integration{
		ID: id.New(registry.IntegrationIDPrefix), TenantID: sess.tenantID, SystemType: policy.SystemOkta,
		CreatedAt: now, UpdatedAt: now,
	}
	return s.saveIntegration(w, r, sess, in, true)
}

func (s *server) updateIntegration(w http.ResponseWriter, r *http.Request, sess *session) error {
	in, err := s.getIntegration(r, sess)
	if err != nil {
		return err
	}
	in.UpdatedAt = s.now().UTC()
	return s.saveIntegration(w, r, sess, in, false)
}

type confirmData struct {
	What   string // "integration", "credential", "API key"
	Name   string
	ID     string
	Verb   string // the button's word; "" means Delete
	Action string // the form's POST target
	Cancel string
	Error  string
}

func (s *server) confirmDeleteIntegration(w http.ResponseWriter, r *http.Request, sess *session) error {
	in, err := s.getIntegration(r, sess)
	if err != nil {
		return err
	}
	s.render(w, r, sess, http.StatusOK, "confirm", "Delete integration", "integrations", confirmData{
		What: "integration", Name: in.Name, ID: in.ID,
		Action: "/console/integrations/" + in.ID + "/delete", Cancel: "/console/integrations/" + in.ID,
	})
	return nil
}

func (s *server) deleteIntegration(w http.ResponseWriter, r *http.Request, sess *session) error {
	in, err := s.getIntegration(r, sess)
	if err != nil {
		return err
	}
	err = s.deps.Registry.DeleteIntegration(r.Context(), sess.tenantID, in.ID)
	if errors.Is(err, registry.ErrConflict) {
		s.render(w, r, sess, http.StatusConflict, "confirm", "Delete integration", "integrations", confirmData{
			What: "integration", Name: in.Name, ID: in.ID,
			Action: "/console/integrations/" + in.ID + "/delete", Cancel: "/console/integrations/" + in.ID,
			Error: "A live API key is bound to this integration. Ask the operator to revoke it first.",
		})
		return nil
	}
	if err != nil {
		return err
	}
	if s.deps.OnIntegrationChanged != nil {
		s.deps.OnIntegrationChanged(sess.tenantID, in.ID)
	}
	s.redirect(w, r, sess, "/console/integrations", fmt.Sprintf("Integration %q deleted.", in.Name))
	return nil
}

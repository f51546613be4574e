package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
)

type loginData struct {
	Token   string // the double-submit CSRF token
	Error   string
	Expired bool
}

func (s *server) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.sessions.get(sessionCookie(r)); ok {
		s.home(w, r)
		return
	}
	s.showLogin(w, r, http.StatusOK, loginData{Expired: r.URL.Query().Get("expired") == "1"})
}

func (s *server) showLogin(w http.ResponseWriter, r *http.Request, status int, d loginData) {
	d.Token = randomToken()
	setCookie(w, r, loginCookie, d.Token, 3600)
	s.render(w, r, nil, status, "login", "Sign in", "", d)
}

// login signs in with a tenant API key or the admin token.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" || err != nil {
		s.renderError(w, r, nil, http.StatusForbidden, "The sign-in form has expired. Reload the page and try again.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil || !tokensEqual(r.PostForm.Get("csrf"), c.Value) {
		s.renderError(w, r, nil, http.StatusForbidden, "The sign-in form has expired. Reload the page and try again.")
		return
	}
	presented := secret.New(strings.TrimSpace(r.PostForm.Get("key")))
	r.PostForm.Del("key")
	if presented.IsZero() {
		s.showLogin(w, r, http.StatusUnauthorized, loginData{Error: "Enter a tenant API key or the admin token."})
		return
	}
	var (
		sess  session
		cerr  error
		valid bool
	)
	if strings.HasPrefix(presented.Reveal(), registry.APIKeyPrefix) {
		key, err := s.auth.Authenticate(r.Context(), presented)
		switch {
		case errors.Is(err, registry.ErrInvalidAPIKey):
		case err != nil:
			s.renderFailure(w, r, nil, err)
			return
		case key.IntegrationID != "":
			s.showLogin(w, r, http.StatusForbidden, loginData{
				Error: "This API key is bound to one integration and cannot sign in to the console. Use a tenant-wide key."})
			return
		default:
			t, err := s.deps.Registry.GetTenant(r.Context(), key.TenantID)
			if err != nil {
				s.renderFailure(w, r, nil, err)
				return
			}
			valid = true
			sess, cerr = s.sessions.create(t.ID, t.Name, key.ID, false)
		}
	} else if s.hasAdmin {
		got := sha256.Sum256(presented.Bytes())
		if subtle.ConstantTimeCompare(got[:], s.adminH[:]) == 1 {
			valid = true
			sess, cerr = s.sessions.create("", "", "admin", true)
		}
	}
	if !valid {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "console: sign-in refused")
		s.showLogin(w, r, http.StatusUnauthorized, loginData{Error: "That key or token is not valid."})
		return
	}
	if cerr != nil {
		s.renderError(w, r, nil, http.StatusServiceUnavailable, "Too many people are signed in. Try again later.")
		return
	}
	// A fresh id at every sign-in (no session fixation); drop the one the browser had.
	if old := sessionCookie(r); old != "" {
		s.sessions.delete(old)
	}
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, SessionCookie, sess.id, 0)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "console: signed in",
		slog.String("tenant_id", sess.tenantID), slog.String("caller", sess.caller))
	if sess.admin {
		http.Redirect(w, r, "/console/tenants", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/integrations", http.StatusSeeOther)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request, sess *session) error {
	s.sessions.delete(sess.id)
	setCookie(w, r, SessionCookie, "", -1)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
	return nil
}

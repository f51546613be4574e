package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Cookie names. The session cookie holds the session id; the login cookie holds the
// double-submit CSRF token of the sign-in form.
const (
	SessionCookie = "qs_console"
	loginCookie   = "qs_console_login"
)

// errTooManySessions: the session table is full of live sessions.
var errTooManySessions = errors.New("console: too many sessions")

// session is a signed-in browser. Handlers get a copy; the table owns the original.
type session struct {
	id         string // the cookie value; the table is keyed by its SHA-256
	tenantID   string // "" for the admin
	tenantName string
	admin      bool
	caller     string // API key id, or "admin"
	csrf       string
	created    time.Time
	lastSeen   time.Time
	flash      string
}

// sessions is the in-memory session table.
type sessions struct {
	mu     sync.Mutex
	m      map[[32]byte]*session
	idle   time.Duration
	maxAge time.Duration
	max    int
	now    func() time.Time
}

func newSessions(idle, maxAge time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{m: map[[32]byte]*session{}, idle: idle, maxAge: maxAge, max: max, now: now}
}

// randomToken returns 256 random bits, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func tokensEqual(got, want string) bool {
	if got == "" || want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (s *sessions) expired(x *session, now time.Time) bool {
	return now.Sub(x.lastSeen) >= s.idle || now.Sub(x.created) >= s.maxAge
}

// create starts a session for a signed-in principal and returns a copy.
func (s *sessions) create(tenantID, tenantName, caller string, admin bool) (session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.m) >= s.max {
		for k, x := range s.m {
			if s.expired(x, now) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= s.max {
			return session{}, errTooManySessions
		}
	}
	x := &session{
		id: randomToken(), tenantID: tenantID, tenantName: tenantName, caller: caller, admin: admin,
		csrf: randomToken(), created: now, lastSeen: now,
	}
	s.m[sha256.Sum256([]byte(x.id))] = x
	return *x, nil
}

// get returns the live session with this id and marks it used; an expired one is
// deleted.
func (s *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.m[k]
	if !ok {
		return session{}, false
	}
	now := s.now()
	if s.expired(x, now) {
		delete(s.m, k)
		return session{}, false
	}
	x.lastSeen = now
	return *x, true
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

func (s *sessions) setFlash(id, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x, ok := s.m[sha256.Sum256([]byte(id))]; ok {
		x.flash = msg
	}
}

func (s *sessions) takeFlash(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.m[sha256.Sum256([]byte(id))]
	if !ok {
		return ""
	}
	f := x.flash
	x.flash = ""
	return f
}

func sessionCookie(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// secureRequest reports whether the browser reached us over TLS (directly or through a
// proxy that says so), in which case cookies are marked Secure.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteStrictMode,
	})
}

// Package oktatest is an in-process test double of the Okta Management API and of the
// org authorization server's token endpoint, for tests of the gateway and its clients.
//
// It implements the seven catalogue operations (list_users, get_user, create_user,
// deactivate_user, list_groups, list_applications, get_system_log) and
// POST /oauth2/v1/token as docs/design okta-api.md §1–§3 describe real Okta, including
// its §6 checklist: one Link header per rel, cursor pagination, System Log polling that
// always has a next link, X-Rate-Limit-* and X-Okta-Request-Id on every answer, Okta's
// E-code error bodies, 403 insufficient_scope in WWW-Authenticate, gzip, routing on the
// escaped path, client_secret_basic, private_key_jwt, DPoP with the nonce dance, and
// scoped, expiring tokens. The unchanged official Go SDK (okta-sdk-golang v5.0.2) runs
// against it.
//
// Every request is recorded ([Server.Requests]) so tests can assert exactly what
// reached "Okta".
package oktatest

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configures a [Server]. The zero value is a working double.
type Options struct {
	// Now is the double's clock (token expiry, assertion exp, proof iat, rate-limit
	// window). nil means time.Now.
	Now func() time.Time
	// ExpiresIn is the lifetime of issued access tokens in seconds. Default 3600
	// (Okta's fixed lifetime).
	ExpiresIn int
	// RateLimit is the number of API calls (not token requests) allowed per 60-second
	// window; once spent, calls get 429 E0000047. 0 means unlimited (the headers still
	// advertise a limit of 600).
	RateLimit int
	// TokenRateLimit is the number of token requests allowed per 60-second window,
	// counted apart from API calls (Okta's /oauth2/v1/token bucket, okta-api.md §2–§3);
	// once spent, token requests get 429 E0000047 with that window's X-Rate-Limit-*
	// headers. 0 means unlimited.
	TokenRateLimit int
	// TokenFailures makes the first N token requests answer 503.
	TokenFailures int
	// TokenDelay delays every token request (or until the client gives up).
	TokenDelay time.Duration
}

// Client is an OAuth 2.0 service app registered with the double.
type Client struct {
	ID string
	// Secret enables client_secret_basic. Empty: a Basic-authenticated request gets
	// 401 invalid_client with the org authorization server's message that
	// private_key_jwt is required.
	Secret string
	// Keys are the app's public keys for private_key_jwt, by kid (an empty kid is
	// allowed: it matches assertions without a kid header).
	Keys map[string]crypto.PublicKey
	// GrantedScopes are the app's grants; requested scopes outside them are silently
	// dropped from the token (Okta's behaviour) …
	GrantedScopes []string
	// … unless RejectUngrantedScopes is set: then the request fails with invalid_scope.
	RejectUngrantedScopes bool
	// RequireDPoP demands DPoP proofs ("Require DPoP header in token requests").
	RequireDPoP bool
}

// Request is one request the double received.
type Request struct {
	Method   string
	Path     string // escaped path, as sent
	RawQuery string
	Header   http.Header
	Body     []byte
}

// Server is the running double.
type Server struct {
	srv    *httptest.Server
	origin string
	opts   Options

	mu             sync.Mutex
	requests       []Request
	tokenRequests  int
	tokenFailures  int
	clients        map[string]*Client
	apiTokens      map[string]bool
	tokens         map[string]*issuedToken
	seenJTI        map[string]bool // client assertion and DPoP proof jti values
	nonce          string
	rlWindowStart  time.Time
	rlUsed         int
	tokWindowStart time.Time
	tokUsed        int
	data           *dataset
}

type issuedToken struct {
	client  string
	scopes  []string
	expires time.Time
	jkt     string // DPoP key thumbprint (cnf.jkt); "" for Bearer tokens
}

// New starts a double on a loopback port; it is closed when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ExpiresIn <= 0 {
		opts.ExpiresIn = 3600
	}
	s := &Server{
		opts:          opts,
		tokenFailures: opts.TokenFailures,
		clients:       map[string]*Client{},
		apiTokens:     map[string]bool{},
		tokens:        map[string]*issuedToken{},
		seenJTI:       map[string]bool{},
		nonce:         randomHex(16),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.origin = s.srv.URL
	s.data = seed(s.origin)
	t.Cleanup(s.srv.Close)
	return s
}

// URL returns the double's base URL, "http://127.0.0.1:PORT".
func (s *Server) URL() string { return s.srv.URL }

// Origin returns the origin the double believes it serves (the same as URL): assertion
// aud and DPoP htu must use it, and links point at it.
func (s *Server) Origin() string { return s.origin }

// Handler returns the double's handler, for in-memory transports (e.g. under
// testing/synctest, where real sockets cannot be used).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// AddClient registers (or replaces) an OAuth service app.
func (s *Server) AddClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.GrantedScopes = slices.Clone(c.GrantedScopes)
	s.clients[c.ID] = &c
}

// AddAPIToken registers an SSWS API token (it acts with every scope).
func (s *Server) AddAPIToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiTokens[token] = true
}

// RevokeTokens forgets every issued access token (calls then get 401).
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// RotateDPoPNonce replaces the token endpoint's DPoP nonce; proofs carrying the old
// one get use_dpop_nonce with the new one.
func (s *Server) RotateDPoPNonce() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonce = randomHex(16)
}

// FailTokenRequests makes the next n token requests answer 503.
func (s *Server) FailTokenRequests(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFailures = n
}

// Requests returns a copy of every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = r
		out[i].Header = r.Header.Clone()
		out[i].Body = slices.Clone(r.Body)
	}
	return out
}

// TokenRequests returns how many requests reached the token endpoint.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// UserStatus returns the status of the user with that id or login, and whether it exists.
func (s *Server) UserStatus(idOrLogin string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.data.findUser(idOrLogin)
	if u == nil {
		return "", false
	}
	return u.Status, true
}

const maxBody = 1 << 20

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	r.Body = io.NopCloser(bytes.NewReader(body))
	ep := r.URL.EscapedPath()

	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: ep, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	isToken := ep == "/oauth2/v1/token"
	limited := false
	now := s.opts.Now()
	if now.Sub(s.rlWindowStart) >= time.Minute || s.rlWindowStart.IsZero() {
		s.rlWindowStart, s.rlUsed = now, 0
	}
	limit := 600
	if s.opts.RateLimit > 0 {
		limit = s.opts.RateLimit
	}
	if !isToken {
		if s.opts.RateLimit > 0 && s.rlUsed >= limit {
			limited = true
		} else {
			s.rlUsed++
		}
	}
	remaining := max(limit-s.rlUsed, 0)
	reset := s.rlWindowStart.Add(time.Minute).Unix()
	if isToken && s.opts.TokenRateLimit > 0 {
		if now.Sub(s.tokWindowStart) >= time.Minute || s.tokWindowStart.IsZero() {
			s.tokWindowStart, s.tokUsed = now, 0
		}
		limit = s.opts.TokenRateLimit
		if s.tokUsed >= limit {
			limited = true
			s.tokenRequests++ // it reached the token endpoint, which refused it
		} else {
			s.tokUsed++
		}
		remaining = max(limit-s.tokUsed, 0)
		reset = s.tokWindowStart.Add(time.Minute).Unix()
	}
	s.mu.Unlock()

	h := w.Header()
	h.Set("X-Okta-Request-Id", randomHex(10))
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(limit))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(remaining))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(reset, 10))
	// The Go SDK computes its 429 backoff from Date; set it from the double's clock.
	h.Set("Date", now.UTC().Format(http.TimeFormat))

	if limited {
		s.oktaError(w, r, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
		return
	}
	if isToken {
		s.handleToken(w, r)
		return
	}
	s.handleAPI(w, r, ep)
}

// writeJSON writes v with Okta's content type, gzip-compressed when the client accepts it.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.writeRaw(w, r, status, b)
}

func (s *Server) writeRaw(w http.ResponseWriter, r *http.Request, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if acceptsGzip(r) && len(b) > 0 {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		b = buf.Bytes()
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.TrimSpace(strings.ReplaceAll(q, " ", "")) != "q=0" {
				return true
			}
		}
	}
	return false
}

// errorBody is Okta's E-code error (okta-api.md §2).
type errorBody struct {
	ErrorCode    string       `json:"errorCode"`
	ErrorSummary string       `json:"errorSummary"`
	ErrorLink    string       `json:"errorLink"`
	ErrorID      string       `json:"errorId"`
	ErrorCauses  []errorCause `json:"errorCauses"`
}

type errorCause struct {
	ErrorSummary string `json:"errorSummary"`
}

func (s *Server) oktaError(w http.ResponseWriter, r *http.Request, status int, code, summary string, causes ...string) {
	b := errorBody{ErrorCode: code, ErrorSummary: summary, ErrorLink: code, ErrorID: "oae" + randomHex(11), ErrorCauses: []errorCause{}}
	for _, c := range causes {
		b.ErrorCauses = append(b.ErrorCauses, errorCause{ErrorSummary: c})
	}
	s.writeJSON(w, r, status, b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

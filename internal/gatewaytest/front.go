package gatewaytest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Class is the kind of Okta endpoint a request is for.
type Class int

// Endpoint classes.
const (
	ClassAPI   Class = iota // the Management API (/api/v1/…) and anything else
	ClassToken              // the token endpoint (/oauth2/…)
)

func (c Class) String() string {
	if c == ClassToken {
		return "token"
	}
	return "api"
}

// Fault is what [Front] does to requests of a class instead of (or before) passing them
// on.
type Fault struct {
	// Delay holds the request this long first (or until the client gives up).
	Delay time.Duration
	// Status, when non-zero, answers with this status, Header and Body instead of
	// passing the request on.
	Status int
	Header http.Header
	Body   string
	// Count limits the fault to this many requests (0: until cleared).
	Count int
}

// FrontRequest is one request that reached the front.
type FrontRequest struct {
	Time     time.Time
	Class    Class
	Host     string // the Host header as received
	Method   string
	Path     string // escaped path, as sent
	RawQuery string
	Header   http.Header
	Body     []byte
	Faulted  bool // answered or delayed by a Fault
	Status   int  // status sent back
}

// Front is an HTTP server in front of the Okta double (or any handler) that records
// every request — host, escaped path, headers, body — and injects faults per endpoint
// class. Point an integration's okta_domain (and the fake Envoy's upstream) at
// [Front.URL].
type Front struct {
	srv  *httptest.Server
	next http.Handler

	mu     sync.Mutex
	faults map[Class]*Fault
	reqs   []FrontRequest
	tokens []string
}

// NewFront starts a front for next (e.g. oktatest.Server.Handler()).
func NewFront(t testing.TB, next http.Handler) *Front {
	t.Helper()
	f := &Front{next: next, faults: map[Class]*Fault{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is "http://127.0.0.1:PORT", also the origin to register as okta_domain.
func (f *Front) URL() string { return f.srv.URL }

// Host is "127.0.0.1:PORT".
func (f *Front) Host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// SetFault installs a fault for a class, replacing the previous one.
func (f *Front) SetFault(c Class, fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[c] = &fault
}

// ClearFaults removes every fault.
func (f *Front) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.faults)
}

// Requests returns a copy of every request so far, in arrival order.
func (f *Front) Requests() []FrontRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FrontRequest(nil), f.reqs...)
}

// Count returns how many requests of class c arrived.
func (f *Front) Count(c Class) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Class == c {
			n++
		}
	}
	return n
}

// AccessTokens returns every access_token the token endpoint issued through the front.
func (f *Front) AccessTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.tokens...)
}

func classOf(path string) Class {
	if strings.HasPrefix(path, "/oauth2/") {
		return ClassToken
	}
	return ClassAPI
}

func (f *Front) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := FrontRequest{Time: time.Now(), Class: classOf(r.URL.EscapedPath()), Host: r.Host, Method: r.Method,
		Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}

	f.mu.Lock()
	var fault Fault
	if ft := f.faults[rec.Class]; ft != nil {
		fault = *ft
		if ft.Count > 0 {
			if ft.Count--; ft.Count == 0 {
				delete(f.faults, rec.Class)
			}
		}
		rec.Faulted = true
	}
	f.mu.Unlock()

	if fault.Delay > 0 {
		select {
		case <-time.After(fault.Delay):
		case <-r.Context().Done():
		}
	}
	if fault.Status != 0 {
		for k, vs := range fault.Header {
			w.Header()[k] = vs
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(fault.Status)
		io.WriteString(w, fault.Body)
		rec.Status = fault.Status
		f.record(rec, nil)
		return
	}
	cw := &captureWriter{ResponseWriter: w}
	f.next.ServeHTTP(cw, r)
	rec.Status = cw.status
	if rec.Status == 0 {
		rec.Status = http.StatusOK
	}
	var token string
	if rec.Class == ClassToken {
		token = accessToken(cw.Header().Get("Content-Encoding"), cw.body.Bytes())
	}
	f.record(rec, &token)
}

func (f *Front) record(rec FrontRequest, token *string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, rec)
	if token != nil && *token != "" {
		f.tokens = append(f.tokens, *token)
	}
}

func accessToken(encoding string, b []byte) string {
	if strings.EqualFold(encoding, "gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return ""
		}
		if b, err = io.ReadAll(zr); err != nil {
			return ""
		}
	}
	var v struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(b, &v)
	return v.AccessToken
}

// captureWriter keeps a copy of the status and body it passes through.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

// Flush passes http.Flusher through, for streamed answers.
func (c *captureWriter) Flush() {
	if fl, ok := c.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

package policy

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// FuzzMatch checks that Match never panics, that anything it accepts obeys the path
// rules, and that a matched request rebuilt through BuildRequest matches again.
// Seeds: testdata/fuzz/FuzzMatch.
func FuzzMatch(f *testing.F) {
	f.Add("GET", "/api/v1/users?limit=1")
	f.Add("GET", "/api/v1/users/isaac.brock%40example.com")
	f.Add("POST", "/api/v1/users/00u1/lifecycle/deactivate")
	f.Fuzz(func(t *testing.T, method, rawPath string) {
		op, params, err := Match(SystemOkta, method, rawPath)
		if err != nil {
			if !errors.Is(err, ErrUnknownOperation) {
				t.Fatalf("error %v is not ErrUnknownOperation", err)
			}
			return
		}
		if op.Method != method {
			t.Fatalf("matched %s for method %q", op.Name, method)
		}
		p, _, _ := strings.Cut(rawPath, "?")
		lower := strings.ToLower(p)
		for _, bad := range []string{"//", "%2f", "%5c", "\\", "/./", "/../", "%2e%2e", "#"} {
			if strings.Contains(lower, bad) {
				t.Fatalf("accepted %q containing %q", rawPath, bad)
			}
		}
		if strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") || strings.HasSuffix(p, "/") {
			t.Fatalf("accepted %q", rawPath)
		}
		payload := map[string]any{}
		for k, v := range params {
			if strings.ContainsAny(v, "/?#\\") || v == "" || v == "." || v == ".." {
				t.Fatalf("param %s=%q accepted", k, v)
			}
			payload[k] = v
		}
		if op.Name == "create_user" {
			payload["profile"] = map[string]any{}
		}
		b, _ := json.Marshal(payload)
		req, err := BuildRequest(op, b)
		if err != nil {
			t.Fatalf("BuildRequest of a matched request: %v", err)
		}
		again, params2, err := Match(SystemOkta, req.Method, req.Path)
		if err != nil || again.Name != op.Name {
			t.Fatalf("rebuilt %q does not match %s: %v", req.Path, op.Name, err)
		}
		for k, v := range params {
			if params2[k] != v {
				t.Fatalf("param %s: %q became %q", k, v, params2[k])
			}
		}
	})
}

// FuzzBuildRequest checks that BuildRequest never panics, fails only with
// *PayloadError, and that every built path parses as a request URI and matches its
// operation. Seeds: testdata/fuzz/FuzzBuildRequest.
func FuzzBuildRequest(f *testing.F) {
	f.Add("list_users", []byte(`{"filter": "status eq \"ACTIVE\"", "limit": 25}`))
	f.Add("get_user", []byte(`{"id": "a.b+c@example.com"}`))
	f.Add("create_user", []byte(`{"profile": {"login": "x"}, "activate": true}`))
	f.Add("list_applications", []byte(`{"user_id": "00u1"}`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		op, ok := Lookup(SystemOkta, name)
		if !ok {
			return
		}
		req, err := BuildRequest(op, payload)
		if err != nil {
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not *PayloadError", err, err)
			}
			return
		}
		u, err := url.ParseRequestURI(req.Path)
		if err != nil {
			t.Fatalf("path %q: %v", req.Path, err)
		}
		if u.RequestURI() != req.Path {
			t.Fatalf("path %q does not round-trip (%q)", req.Path, u.RequestURI())
		}
		if again, _, err := Match(SystemOkta, req.Method, req.Path); err != nil || again.Name != op.Name {
			t.Fatalf("built %s %q does not match %s: %v", req.Method, req.Path, op.Name, err)
		}
		if req.Body != nil && !json.Valid(req.Body) {
			t.Fatalf("body %q is not JSON", req.Body)
		}
	})
}

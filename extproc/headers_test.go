package extproc

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/policy"
)

func TestNextCursor(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{`<https://a/x?limit=2>; rel="self"`, `<https://a/x?after=00u2&limit=2>; rel="next"`}, "00u2"},
		{[]string{`<https://a/x?after=1723564700353_1>; rel=next`}, "1723564700353_1"},
		{[]string{`<https://a/x?after=z>; rel="self"`}, ""},
		{[]string{`<http://[::1>; rel=next`, `<https://a/x?after=ok>; rel="prev next"`}, "ok"},
		{[]string{`<https://a/x?after=z>; title="rel=next"`}, ""},
		{nil, ""},
	} {
		if got := nextCursor(tc.in); got != tc.want {
			t.Errorf("nextCursor(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestInsufficientScope(t *testing.T) {
	scope, ok := insufficientScope([]string{`DPoP algs="RS256 ES256", realm="x", scope="okta.groups.read", error="insufficient_scope"`})
	if !ok || scope != "okta.groups.read" {
		t.Errorf("got %q %v", scope, ok)
	}
	if _, ok := insufficientScope([]string{`Bearer error="invalid_token"`}); ok {
		t.Error("invalid_token taken for insufficient_scope")
	}
}

func TestAPIKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    headerList
		code string // "" = ok
	}{
		{"ssws", headerList{{"authorization", "SSWS " + testKey}}, ""},
		{"bearer lower-case", headerList{{"authorization", "bearer " + testKey}}, ""},
		{"x-api-key", headerList{{"x-api-key", testKey}}, ""},
		{"same key twice", headerList{{"authorization", "SSWS " + testKey}, {"x-api-key", testKey}}, ""},
		{"missing", nil, CodeInvalidAPIKey},
		{"not ours", headerList{{"authorization", "SSWS 00abc"}}, CodeInvalidAPIKey},
		{"no scheme", headerList{{"authorization", testKey}}, CodeInvalidAPIKey},
		{"different keys", headerList{{"authorization", "SSWS " + testKey}, {"x-api-key", testBoundKey}}, CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, f := apiKey(tc.l)
			if tc.code == "" {
				if f != nil || k.Reveal() != testKey {
					t.Errorf("got %v", f)
				}
				return
			}
			if f == nil || f.code != tc.code {
				t.Fatalf("got %v, want %s", f, tc.code)
			}
			for _, k := range []string{testKey, testBoundKey, "00abc"} {
				if strings.Contains(f.Error(), k) || strings.Contains(string(f.body("", "")), k) {
					t.Errorf("error mentions the key %q", k)
				}
			}
		})
	}
}

func TestFromHeaderMapFallsBackToValue(t *testing.T) {
	l := fromHeaderMap(&corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":Path", RawValue: []byte("/raw")},
		{Key: "x-old", Value: "legacy"},
	}})
	if diff := cmp.Diff(headerList{{":path", "/raw"}, {"x-old", "legacy"}}, l, cmp.AllowUnexported(header{})); diff != "" {
		t.Error(diff)
	}
}

func TestDecodeBody(t *testing.T) {
	plain := []byte(`{"a":1}`)
	if got, err := decodeBody("gzip", gz(t, plain), 100); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("gzip: %q %v", got, err)
	}
	if _, err := decodeBody("gzip", gz(t, bytes.Repeat([]byte("a"), 1000)), 100); err == nil {
		t.Error("decoded size not bounded")
	}
	if _, err := decodeBody("gzip", []byte("not gzip"), 100); err == nil {
		t.Error("bad gzip accepted")
	}
	if _, err := decodeBody("br", plain, 100); err == nil {
		t.Error("br accepted")
	}
	if got, _ := decodeBody("identity", plain, 100); !bytes.Equal(got, plain) {
		t.Error("identity changed the body")
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err    error
		code   string
		status int
	}{
		{ErrInvalidAPIKey, CodeInvalidAPIKey, 401},
		{ErrIntegrationNotFound, CodeIntegrationNotFound, 404},
		{policy.ErrUnknownOperation, CodeUnknownOperation, 403},
		{&policy.PayloadError{Field: "limit", Message: "too big"}, CodeInvalidPayload, 400},
		{&tokErr{code: "invalid_client"}, CodeInvalidClient, 401},
		{&tokErr{code: "invalid_client", clientSecret: true}, CodeInvalidClient, 401},
		{&tokErr{code: "invalid_scope", scope: "okta.apps.read"}, CodeInsufficientScope, 403},
		{&tokErr{code: "token_timeout"}, CodeUnavailable, 503},
		{&tokErr{code: "rate_limited"}, CodeUnavailable, 503},
		{&tokErr{code: "token_rejected"}, CodeUpstreamError, 502},
		{errors.New("anything else"), CodeUnavailable, 503},
		{fail(CodePayloadTooLarge, nil), CodePayloadTooLarge, 413},
	}
	for _, tc := range tests {
		f := classify(tc.err)
		if f.code != tc.code || f.httpStatus() != tc.status || f.message() == "" {
			t.Errorf("classify(%v) = %s %d %q, want %s %d", tc.err, f.code, f.httpStatus(), f.message(), tc.code, tc.status)
		}
	}
	for code := range classes {
		if (&failure{code: code}).message() == "" {
			t.Errorf("%s has no message", code)
		}
	}
	if got := (&failure{code: CodeInsufficientScope, scope: "okta.users.read"}).message(); got !=
		"The service app does not have the required Okta Management API scope (okta.users.read). Add the missing scope in the Okta Admin Console under the app's OAuth2 scopes configuration." {
		t.Errorf("insufficient_scope message %q", got)
	}
}

func TestFailureBody(t *testing.T) {
	got := string((&failure{code: CodeInvalidClient}).body("int_1", "aud_1"))
	want := `{"error":"invalid_client","message":"` + InvalidClientMessage + `","integration_id":"int_1","audit_event_id":"aud_1"}`
	if got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

// FuzzHeaderMap feeds arbitrary Envoy header maps through the request-side parsing.
func FuzzHeaderMap(f *testing.F) {
	f.Add(":path", "/api/v1/users", "authorization", "SSWS qs_live_x", []byte("x-api-key"), []byte("qs_live_x"))
	f.Add("authorization", "SSWS a\r\nb", "authorization", "Bearer c", []byte(""), []byte("raw"))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, k3, v3 []byte) {
		m := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: k1, Value: v1}, {Key: k2, RawValue: []byte(v2)}, {Key: string(k3), RawValue: v3},
		}}
		l := fromHeaderMap(m)
		if f := l.validate(); f != nil {
			if f.httpStatus() < 400 {
				t.Fatal("validation failure below 400")
			}
			return
		}
		for _, h := range l {
			if strings.ContainsAny(h.value, "\r\n\x00") {
				t.Fatalf("accepted %q", h.value)
			}
		}
		key, f := apiKey(l)
		if f == nil && !strings.HasPrefix(key.Reveal(), APIKeyPrefix) {
			t.Fatalf("accepted a foreign key")
		}
		_ = requestRemovals(l)
		_ = callerOrigin(l)
		_ = wantsEnvelope(l.value("accept"))
	})
}

func TestInvalidClientSecretNote(t *testing.T) {
	for _, tc := range []struct {
		clientSecret bool
		wantNote     bool
	}{{false, false}, {true, true}} {
		f := classify(fmt.Errorf("authorize: %w", &tokErr{code: "invalid_client", clientSecret: tc.clientSecret}))
		msg := f.message()
		if !strings.HasPrefix(msg, InvalidClientMessage) {
			t.Errorf("clientSecret=%v: message %q lacks the documented text", tc.clientSecret, msg)
		}
		if got := strings.Contains(msg, "private_key_jwt"); got != tc.wantNote {
			t.Errorf("clientSecret=%v: private_key_jwt note present=%v, want %v", tc.clientSecret, got, tc.wantNote)
		}
	}
}

func TestUnavailableTokenRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		err  *tokErr
		want time.Duration
	}{
		{&tokErr{code: "token_unavailable", retryAfter: 4 * time.Second}, 4 * time.Second},
		{&tokErr{code: "rate_limited", retryAfter: 30 * time.Second}, 30 * time.Second},
		{&tokErr{code: "token_timeout"}, 0},
		{&tokErr{code: "invalid_client", retryAfter: time.Second}, 0}, // not temporary: no Retry-After
	} {
		f := classify(fmt.Errorf("authorize: %w", tc.err))
		if f.retryAfter != tc.want {
			t.Errorf("%s: retryAfter = %v, want %v", tc.err.code, f.retryAfter, tc.want)
		}
	}
}

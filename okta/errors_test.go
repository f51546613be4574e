package okta_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/okta"
)

func TestClassifyResponse(t *testing.T) {
	tests := []struct {
		name   string
		status int
		www    []string
		want   *okta.Error
	}{
		{
			name:   "403 insufficient_scope, Bearer (okta-sdk-golang#145 shape)",
			status: 403,
			www:    []string{`Bearer authorization_uri="https://acme.okta.com/oauth2/v1/authorize", realm="https://acme.okta.com", scope="okta.groups.read", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="/api/v1/groups/00g1"`},
			want: &okta.Error{Code: okta.CodeInsufficientScope, Status: 403, Scope: "okta.groups.read",
				Description: "The access token provided does not contain the required scopes."},
		},
		{
			name:   "403 insufficient_scope, DPoP form",
			status: 403,
			www:    []string{`DPoP algs="RS256 RS384 RS512 ES256 ES384 ES512", authorization_uri="x", scope="okta.users.read", error="insufficient_scope"`},
			want:   &okta.Error{Code: okta.CodeInsufficientScope, Status: 403, Scope: "okta.users.read"},
		},
		{
			name:   "401 invalid_token",
			status: 401,
			www:    []string{`Bearer error="invalid_token", error_description="The access token is invalid."`},
			want:   &okta.Error{Code: okta.CodeInvalidToken, Status: 401, Description: "The access token is invalid."},
		},
		{name: "401 SSWS, no header", status: 401, want: &okta.Error{Code: okta.CodeInvalidToken, Status: 401}},
		{
			name:   "400 invalid_dpop_proof with escaped quote",
			status: 400,
			www:    []string{`DPoP algs="ES256", error="invalid_dpop_proof", error_description="'htu' claim \"x\" is invalid."`},
			want:   &okta.Error{Code: okta.CodeInvalidDPoPProof, Status: 400, Description: `'htu' claim "x" is invalid.`},
		},
		{name: "429", status: 429, want: &okta.Error{Code: okta.CodeRateLimited, Status: 429}},
		{name: "403 admin role (E0000006, no challenge)", status: 403, want: nil},
		{name: "200", status: 200, want: nil},
		{name: "404", status: 404, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.www {
				h.Add("WWW-Authenticate", v)
			}
			if diff := cmp.Diff(tt.want, okta.ClassifyResponse(tt.status, h), cmpErr); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	e := &okta.Error{Code: okta.CodeInsufficientScope, Scope: "okta.apps.read", Status: 403, Description: "missing"}
	if got, want := e.Error(), "okta: insufficient_scope (scope okta.apps.read) (status 403): missing"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	for code, temp := range map[string]bool{
		okta.CodeTokenTimeout: true, okta.CodeTokenUnavailable: true, okta.CodeRateLimited: true,
		okta.CodeInvalidClient: false, okta.CodeInsufficientScope: false, okta.CodeInvalidDPoPProof: false, okta.CodeInvalidToken: false,
	} {
		if got := (&okta.Error{Code: code}).Temporary(); got != temp {
			t.Errorf("%s: Temporary() = %v", code, got)
		}
	}
}

// FuzzClassifyResponse feeds arbitrary WWW-Authenticate values to the challenge parser.
func FuzzClassifyResponse(f *testing.F) {
	f.Add(403, `Bearer scope="okta.groups.read", error="insufficient_scope"`)
	f.Add(400, `DPoP algs="ES256", error="invalid_dpop_proof", error_description="a \"b\""`)
	f.Fuzz(func(t *testing.T, status int, www string) {
		e := okta.ClassifyResponse(status, http.Header{"Www-Authenticate": {www}})
		if e != nil && e.Status != status {
			t.Fatalf("status %d became %d", status, e.Status)
		}
		if e != nil && e.Code == okta.CodeInsufficientScope && status != 403 {
			t.Fatalf("insufficient_scope for status %d", status)
		}
	})
}

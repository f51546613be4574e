package oktaheader

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAuthParams(t *testing.T) {
	tests := []struct {
		name      string
		challenge string
		want      map[string]string
	}{
		{
			name:      "Bearer insufficient_scope (okta-sdk-golang#145 shape)",
			challenge: `Bearer authorization_uri="https://acme.okta.com/oauth2/v1/authorize", realm="https://acme.okta.com", scope="okta.groups.read", error="insufficient_scope", resource="/api/v1/groups/00g1"`,
			want: map[string]string{"authorization_uri": "https://acme.okta.com/oauth2/v1/authorize", "realm": "https://acme.okta.com",
				"scope": "okta.groups.read", "error": "insufficient_scope", "resource": "/api/v1/groups/00g1"},
		},
		{
			name:      "DPoP form, space-separated value",
			challenge: `DPoP algs="RS256 ES256", realm="x", scope="okta.groups.read", error="insufficient_scope"`,
			want:      map[string]string{"algs": "RS256 ES256", "realm": "x", "scope": "okta.groups.read", "error": "insufficient_scope"},
		},
		{
			name:      "escaped quote, token value, key case folded",
			challenge: `DPoP Error=invalid_dpop_proof, error_description="'htu' claim \"x\" is invalid."`,
			want:      map[string]string{"error": "invalid_dpop_proof", "error_description": `'htu' claim "x" is invalid.`},
		},
		{
			name:      "first of a repeated key wins",
			challenge: `Bearer error="insufficient_scope", error="invalid_token"`,
			want:      map[string]string{"error": "insufficient_scope"},
		},
		{
			name:      "no scheme",
			challenge: `error="invalid_token"`,
			want:      map[string]string{"error": "invalid_token"},
		},
		{
			name:      "unterminated quote",
			challenge: `error="unterminated, scope=x,,==`,
			want:      map[string]string{"error": "unterminated, scope=x,,=="},
		},
		{name: "scheme only", challenge: "SSWS", want: map[string]string{}},
		{name: "empty", challenge: "", want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, AuthParams(tt.challenge)); diff != "" {
				t.Errorf("AuthParams(%q) (-want +got):\n%s", tt.challenge, diff)
			}
		})
	}
}

// FuzzAuthParams: never panics, keys are lower-case, and a value written as a
// quoted-string (RFC 9110 §5.6.4) reads back unchanged next to an arbitrary challenge.
func FuzzAuthParams(f *testing.F) {
	f.Add(`Bearer scope="okta.groups.read", error="insufficient_scope"`, "okta.users.read")
	f.Add(`DPoP algs="ES256", error="invalid_dpop_proof", error_description="a \"b\""`, `a "b" \c`)
	f.Add(`error="unterminated, scope=x,,==`, "")
	f.Fuzz(func(t *testing.T, challenge, value string) {
		for k := range AuthParams(challenge) {
			if k != strings.ToLower(k) {
				t.Fatalf("key %q is not lower-case", k)
			}
		}
		quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(value) + `"`
		got := AuthParams(`Bearer error=` + quoted + `, scope=x`)
		if got["error"] != value || got["scope"] != "x" {
			t.Fatalf("round trip of %q: got %q", value, got)
		}
	})
}

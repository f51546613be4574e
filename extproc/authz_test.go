package extproc

import (
	"encoding/json"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
)

func checkReq(method, path string, headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "req-9", Method: method, Path: path, Host: "127.0.0.1:10000",
			Scheme: "http", Headers: headers}}}}
}

func TestCheck(t *testing.T) {
	e := newEnv(t, Config{})
	t.Run("allowed", func(t *testing.T) {
		resp, err := e.authz.Check(t.Context(), checkReq("GET", "/api/v1/users/a%40b.com?expand=blocks",
			map[string]string{"authorization": "SSWS " + testBoundKey, "x-quantaseal-integration": integID}))
		if err != nil {
			t.Fatal(err)
		}
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("status %v", resp.GetStatus())
		}
		ok := resp.GetOkResponse()
		got := map[string]string{}
		for _, h := range ok.GetHeaders() {
			// ext_authz reads value, not raw_value (envoy-extproc.md §2).
			if len(h.GetHeader().GetRawValue()) != 0 || h.GetHeader().GetValue() == "" {
				t.Errorf("header %q must use value only", h.GetHeader().GetKey())
			}
			got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		if got["authorization"] != "Bearer "+testToken || got[":authority"] != "acme.okta.com" {
			t.Errorf("headers %v", got)
		}
		if len(ok.GetHeadersToRemove()) != 1 || ok.GetHeadersToRemove()[0] != "x-quantaseal-integration" {
			t.Errorf("headers_to_remove %v", ok.GetHeadersToRemove())
		}
		rh := ok.GetResponseHeadersToAdd()
		if len(rh) != 1 || rh[0].GetHeader().GetKey() != hdrAuditEvent || rh[0].GetHeader().GetValue() == "" {
			t.Errorf("response_headers_to_add %v", rh)
		}
		r := e.rec.records()[0]
		if r.Decision != "allow" || r.Reason != "forwarded" || r.Operation != "get_user" || r.QuerySHA256 != sha256Hex([]byte("expand=blocks")) {
			t.Errorf("audit %+v", r)
		}
	})
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
		code    string
		grpc    codes.Code
	}{
		{"no key", "GET", "/api/v1/users", nil, 401, "invalid_api_key", codes.Unauthenticated},
		{"merged duplicate authorization", "GET", "/api/v1/users", map[string]string{"authorization": "SSWS " + testBoundKey + ",SSWS " + testBoundKey},
			401, "invalid_api_key", codes.Unauthenticated},
		{"unknown operation", "DELETE", "/api/v1/users/00u1", map[string]string{"x-api-key": testBoundKey}, 403, "unknown_operation", codes.PermissionDenied},
		{"not allowed", "GET", "/api/v1/groups", map[string]string{"x-api-key": testBoundKey}, 403, "operation_not_allowed", codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.rec.records())
			resp, err := e.authz.Check(t.Context(), checkReq(tc.method, tc.path, tc.headers))
			if err != nil {
				t.Fatal(err)
			}
			if codes.Code(resp.GetStatus().GetCode()) != tc.grpc {
				t.Errorf("grpc status %v", resp.GetStatus())
			}
			d := resp.GetDeniedResponse()
			if int(d.GetStatus().GetCode()) != tc.status {
				t.Errorf("http status %v", d.GetStatus())
			}
			var body errorJSON
			if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body.Error != tc.code || body.AuditEventID == "" {
				t.Errorf("body %q", d.GetBody())
			}
			for _, h := range d.GetHeaders() {
				if h.GetHeader().GetValue() == "" {
					t.Errorf("denied header %q without value", h.GetHeader().GetKey())
				}
			}
			if recs := e.rec.records(); len(recs) != before+1 || recs[before].Reason != tc.code {
				t.Errorf("audit %+v", recs[before:])
			}
		})
	}
	t.Run("audit down denies", func(t *testing.T) {
		e.rec.mu.Lock()
		e.rec.err = errStoreDown
		e.rec.mu.Unlock()
		defer func() { e.rec.mu.Lock(); e.rec.err = nil; e.rec.mu.Unlock() }()
		resp, err := e.authz.Check(t.Context(), checkReq("GET", "/api/v1/users", map[string]string{"x-api-key": testBoundKey}))
		if err != nil {
			t.Fatal(err)
		}
		if d := resp.GetDeniedResponse(); d.GetStatus().GetCode() != 503 {
			t.Errorf("got %v", resp)
		}
	})
}

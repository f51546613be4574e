package extproc

import "testing"

// BenchmarkTransparentCall measures one transparent read call over loopback gRPC:
// request_headers (authenticate, resolve, match, token) and response_headers
// (audit, Link rewrite), with in-memory fakes behind the interfaces.
func BenchmarkTransparentCall(b *testing.B) {
	e := newEnv(b, Config{})
	req := reqHeaders(true, get("/api/v1/users?limit=2", "x-api-key", testBoundKey)...)
	resp := respHeaders(true, ":status", "200", "link", `<https://acme.okta.com/api/v1/users?after=x>; rel="next"`)
	for b.Loop() {
		s, err := e.proc.Process(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range []any{req, resp} {
			if err := s.SendMsg(m); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				b.Fatal(err)
			}
		}
		_ = s.CloseSend()
	}
}

package extproc

import (
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/quantaseal/gateway/internal/authlimit"
)

// withSource adds Envoy's source.address request attribute to a request_headers message.
func withSource(m *extprocv3.ProcessingRequest, addr string) *extprocv3.ProcessingRequest {
	m.Attributes = map[string]*structpb.Struct{attributesNamespace: {Fields: map[string]*structpb.Value{
		"source.address": structpb.NewStringValue(addr)}}}
	return m
}

// TestFailedAuthLimit: wrong keys from one source spend its budget; then every call from
// it — also with a valid key — gets 429 too_many_requests with Retry-After, audited;
// other sources and calls without a source attribute are not affected.
func TestFailedAuthLimit(t *testing.T) {
	lim := authlimit.New(authlimit.Config{Burst: 3, Refill: time.Hour})
	e := newEnv(t, Config{AuthLimiter: lim})
	call := func(source, key string) (int, string, map[string][]string) {
		x := e.open(t)
		m := reqHeaders(true, get("/api/v1/users", "x-api-key", key, "x-quantaseal-integration", integID)...)
		if source != "" {
			m = withSource(m, source)
		}
		resp := x.do(m)
		if resp.GetImmediateResponse() == nil {
			return 0, "", nil
		}
		status, body := mustImmediate(t, resp)
		return status, body.Error, setsOf(resp)
	}
	steps := []struct {
		name, source, key string
		status            int
		code              string
	}{
		{"wrong 1", "192.0.2.7:5000", "qs_live_wrong", 401, "invalid_api_key"},
		{"wrong 2", "192.0.2.7:5001", "qs_live_wrong", 401, "invalid_api_key"},
		{"wrong 3", "192.0.2.7:5002", "qs_live_wrong", 401, "invalid_api_key"},
		{"limited, wrong key", "192.0.2.7:5003", "qs_live_wrong", 429, "too_many_requests"},
		{"limited, valid key", "192.0.2.7:5004", testKey, 429, "too_many_requests"},
		{"other source, valid key", "198.51.100.1:1", testKey, 0, ""},
		{"no source attribute", "", "qs_live_wrong", 401, "invalid_api_key"},
	}
	for _, s := range steps {
		status, code, sets := call(s.source, s.key)
		if status != s.status || code != s.code {
			t.Errorf("%s: %d %q, want %d %q", s.name, status, code, s.status, s.code)
		}
		if s.status == 429 && len(sets["retry-after"]) != 1 {
			t.Errorf("%s: headers %v, want one Retry-After", s.name, sets)
		}
	}
	limited := 0
	for _, r := range e.rec.records() {
		if r.Reason == CodeTooManyRequests {
			limited++
		}
	}
	if limited != 2 {
		t.Errorf("%d too_many_requests audit records, want 2", limited)
	}
}

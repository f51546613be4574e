package reliability

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"

	"github.com/quantaseal/gateway/extproc"
)

// FuzzProcess sends an authenticated request_headers message for a fuzzed :path, then a
// fuzzed ProcessingRequest (any kind, any order, any content), to an in-process extproc
// server with fakes. The server must not panic, and every reply must keep Envoy's rules:
// header values in raw_value only (envoy-extproc.md §10 item 1) and an ImmediateResponse
// always with an explicit status of at least 400 (item 4: a missing status means 200).
func FuzzProcess(f *testing.F) {
	f.Add(mustMarshal(f, respHeaders("200", false)), "/api/v1/users?limit=1")
	f.Add(mustMarshal(f, reqBody([]byte(`{"integration_id":"int_fake","operation":"get_user","payload":{"id":"00u1"}}`), true)), extproc.OutboundPath)
	s := startInproc(f, extproc.Config{OverrideAfter: time.Second})
	f.Cleanup(func() { s.stop(f) })
	f.Fuzz(func(t *testing.T, msg []byte, path string) {
		var m extprocv3.ProcessingRequest
		if err := proto.Unmarshal(msg, &m); err != nil {
			t.Skip()
		}
		method, eos := "GET", true
		if strings.HasPrefix(path, "/api/v2/proxy") {
			method, eos = "POST", false
		}
		d := openStream(t, s.conn)
		defer d.cancel()
		// A message the server leaves unanswered would hang the stream; Envoy's
		// message_timeout would turn it into a 504 (fail closed), so just stop waiting.
		timer := time.AfterFunc(2*time.Second, d.cancel)
		defer timer.Stop()
		r := d.roundTrip(headersRequest(eos, ":method", method, ":path", path, ":authority", "fake.okta.com",
			":scheme", "https", "authorization", "SSWS "+fakeKey))
		checkReply(t, r)
		if r != nil && r.GetImmediateResponse() == nil {
			checkReply(t, d.roundTrip(&m))
		}
	})
}

func mustMarshal(f *testing.F, m *extprocv3.ProcessingRequest) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// checkReply checks the Envoy rules every reply must keep (nil: the stream ended).
func checkReply(t *testing.T, r *extprocv3.ProcessingResponse) {
	t.Helper()
	if r == nil {
		return
	}
	var opts []*corev3.HeaderValueOption
	if ir := r.GetImmediateResponse(); ir != nil {
		if c := ir.GetStatus().GetCode(); c < 400 {
			t.Errorf("ImmediateResponse with status %d: Envoy would answer 200 or pass a non-error", c)
		}
		opts = append(opts, ir.GetHeaders().GetSetHeaders()...)
	}
	for _, cr := range []interface {
		GetResponse() *extprocv3.CommonResponse
	}{r.GetRequestHeaders(), r.GetResponseHeaders(), r.GetRequestBody(), r.GetResponseBody()} {
		if cr != nil {
			opts = append(opts, cr.GetResponse().GetHeaderMutation().GetSetHeaders()...)
		}
	}
	for _, o := range opts {
		if o.GetHeader().GetValue() != "" {
			t.Errorf("header %s set in value, not raw_value", o.GetHeader().GetKey())
		}
	}
}

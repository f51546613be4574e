package envoytest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Design §1 / §2: one stream, raw_value only, lower-case keys, pseudo-headers
// first with the query in :path, repeated keys unmerged, protocol_config on
// the first message only, attributes once per direction.
func TestRequestHeadersShape(t *testing.T) {
	s := newSetup(t, &processor{fn: continueAll}, Config{Filter: &extprocfilterv3.ExternalProcessor{
		RequestAttributes:  []string{"request.path", "request.method"},
		ResponseAttributes: []string{"request.id"},
	}}, nil)
	res := s.do(t, "GET", "/api/v1/users?limit=1&q=a%20b", nil, map[string][]string{"X-Multi": {"a", "b"}, "X-Request-Id": {"rid-1"}})
	if res.err != nil || res.status != 200 {
		t.Fatalf("do: %v %d", res.err, res.status)
	}
	x := s.e.LastExchange()
	if diff := cmp.Diff([]string{"request_headers eos=true", "response_headers eos=false"}, describeAll(x)); diff != "" {
		t.Fatalf("messages (-want +got):\n%s", diff)
	}
	var keys []string
	for _, h := range x.Sent[0].GetRequestHeaders().GetHeaders().GetHeaders() {
		if h.GetValue() != "" || (h.GetRawValue() == nil && h.GetKey() != "") {
			t.Errorf("header %q: value %q raw %q, want raw_value only", h.GetKey(), h.GetValue(), h.GetRawValue())
		}
		if h.GetKey() != strings.ToLower(h.GetKey()) {
			t.Errorf("header key %q not lower-case", h.GetKey())
		}
		keys = append(keys, h.GetKey()+"="+string(h.GetRawValue()))
	}
	if !strings.HasPrefix(strings.Join(keys, ","), ":authority="+strings.TrimPrefix(s.e.URL(), "http://")+",:path=/api/v1/users?limit=1&q=a%20b,:method=GET,:scheme=http,") {
		t.Errorf("pseudo-headers not first or wrong: %v", keys)
	}
	for _, want := range []string{"x-multi=a", "x-multi=b", "x-request-id=rid-1", "x-forwarded-proto=http"} {
		if !strings.Contains(","+strings.Join(keys, ",")+",", ","+want+",") {
			t.Errorf("missing %q in %v", want, keys)
		}
	}
	if x.Sent[0].GetProtocolConfig() == nil || x.Sent[1].GetProtocolConfig() != nil {
		t.Errorf("protocol_config must be on the first message only")
	}
	if got := x.Sent[0].GetAttributes()[attributesKey].GetFields()["request.path"].GetStringValue(); got != "/api/v1/users?limit=1&q=a%20b" {
		t.Errorf("request.path attribute = %q", got)
	}
	if got := x.Sent[1].GetAttributes()[attributesKey].GetFields()["request.id"].GetStringValue(); got != "rid-1" {
		t.Errorf("response attributes request.id = %q", got)
	}
	if len(x.Sent[1].GetAttributes()[attributesKey].GetFields()) != 1 {
		t.Errorf("response attributes: %v", x.Sent[1].GetAttributes())
	}
	if got := x.Sent[1].GetResponseHeaders().GetHeaders().GetHeaders()[0]; got.GetKey() != ":status" || string(got.GetRawValue()) != "200" {
		t.Errorf("first response header = %v, want :status 200", got)
	}
	if st := s.e.Stats(); st.StreamsStarted != 1 || st.StreamMsgsSent != 2 || st.StreamMsgsReceived != 2 {
		t.Errorf("stats = %+v", st)
	}
	if u, _ := s.e.LastUpstreamRequest(); u.Path != "/api/v1/users?limit=1&q=a%20b" || s.up.requests()[0].Path != u.Path {
		t.Errorf("upstream path = %q / %q", u.Path, s.up.requests()[0].Path)
	}
}

// Design §1 sequence table and §10.9: eos flags, no body message for bodiless
// requests and responses, trailers only in SEND mode.
func TestMessageOrder(t *testing.T) {
	noContent := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }
	body := func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("resp")) }
	withTrailers := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = w.Write([]byte("resp"))
		w.Header().Set("X-Checksum", "abc")
	}
	tests := []struct {
		name      string
		mode      *extprocfilterv3.ProcessingMode
		chunk     int
		limit     int
		method    string
		body      string
		chunked   bool
		trailers  bool
		upstream  http.HandlerFunc
		want      []string
		wantUpCL  string // "" = absent
		wantUpBdy string
	}{
		{name: "default GET", method: "GET", upstream: body,
			want: []string{"request_headers eos=true", "response_headers eos=false"}},
		{name: "default POST body streams through", method: "POST", body: "hello", upstream: body,
			want: []string{"request_headers eos=false", "response_headers eos=false"}, wantUpCL: "5", wantUpBdy: "hello"},
		{name: "SEND/BUFFERED POST", mode: pm(send, buffered, send, none), method: "POST", body: "hello", upstream: body,
			want: []string{"request_headers eos=false", `request_body "hello" eos=true`, "response_headers eos=false"}, wantUpCL: "5", wantUpBdy: "hello"},
		{name: "SEND/BUFFERED GET has no request_body", mode: pm(send, buffered, send, none), method: "GET", upstream: body,
			want: []string{"request_headers eos=true", "response_headers eos=false"}},
		{name: "SEND/BUFFERED content-length 0", mode: pm(send, buffered, send, none), method: "POST", body: "", upstream: body,
			want: []string{"request_headers eos=true", "response_headers eos=false"}, wantUpCL: "0"},
		{name: "chunked empty body sends empty request_body", mode: pm(send, buffered, send, none), method: "POST", chunked: true, upstream: body,
			want: []string{"request_headers eos=false", `request_body "" eos=true`, "response_headers eos=false"}},
		{name: "SKIP/BUFFERED strips content-length", mode: pm(skip, buffered, send, none), method: "POST", body: "hello", upstream: body,
			want: []string{`request_body "hello" eos=true`, "response_headers eos=false"}, wantUpBdy: "hello"},
		{name: "STREAMED chunks", mode: pm(send, streamed, skip, none), chunk: 4, method: "POST", body: "abcdefghij", upstream: body,
			want: []string{"request_headers eos=false", `request_body "abcd" eos=false`, `request_body "efgh" eos=false`, `request_body "ij" eos=true`}, wantUpBdy: "abcdefghij"},
		{name: "BUFFERED_PARTIAL cuts at the limit", mode: pm(send, partial, skip, none), limit: 4, method: "POST", body: "abcdefghij", upstream: body,
			want: []string{"request_headers eos=false", `request_body "abcd" eos=false`}, wantUpBdy: "abcdefghij"},
		{name: "response BUFFERED", mode: pm(send, none, send, buffered), method: "GET", upstream: body,
			want: []string{"request_headers eos=true", "response_headers eos=false", `response_body "resp" eos=true`}},
		{name: "response 204 has no response_body", mode: pm(send, none, send, buffered), method: "GET", upstream: noContent,
			want: []string{"request_headers eos=true", "response_headers eos=true"}},
		{name: "HEAD response has no response_body", mode: pm(send, none, send, buffered), method: "HEAD", upstream: body,
			want: []string{"request_headers eos=true", "response_headers eos=true"}},
		{name: "request trailers SEND", mode: &extprocfilterv3.ProcessingMode{RequestBodyMode: buffered, RequestTrailerMode: send, ResponseHeaderMode: skip},
			method: "POST", body: "hello", chunked: true, trailers: true, upstream: body,
			want: []string{"request_headers eos=false", `request_body "hello" eos=false`, "request_trailers"}, wantUpBdy: "hello"},
		{name: "request trailers SKIP still clears eos", mode: pm(send, buffered, skip, none),
			method: "POST", body: "hello", chunked: true, trailers: true, upstream: body,
			want: []string{"request_headers eos=false", `request_body "hello" eos=false`}, wantUpBdy: "hello"},
		{name: "response trailers SEND", mode: &extprocfilterv3.ProcessingMode{ResponseBodyMode: buffered, ResponseTrailerMode: send},
			method: "GET", upstream: withTrailers,
			want: []string{"request_headers eos=true", "response_headers eos=false", `response_body "resp" eos=false`, "response_trailers"}},
		{name: "trailer mode SEND without trailers sends none", mode: &extprocfilterv3.ProcessingMode{RequestTrailerMode: send, ResponseTrailerMode: send},
			method: "GET", upstream: body,
			want: []string{"request_headers eos=true", "response_headers eos=false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, &processor{fn: continueAll}, Config{
				Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: tc.mode}, ChunkSize: tc.chunk, BufferLimit: tc.limit}, tc.upstream)
			req, err := http.NewRequestWithContext(t.Context(), tc.method, s.e.URL()+"/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" || tc.method == "POST" {
				req.Body = io.NopCloser(strings.NewReader(tc.body))
				req.ContentLength = int64(len(tc.body))
				if tc.body == "" && !tc.chunked {
					req.Body = http.NoBody
				}
			}
			if tc.chunked {
				req.ContentLength = -1
			}
			if tc.trailers {
				req.Trailer = http.Header{"X-Sum": {"42"}}
			}
			resp, err := s.e.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if diff := cmp.Diff(tc.want, describeAll(s.e.LastExchange())); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			if s.e.Stats().StreamsStarted != 1 {
				t.Errorf("streams_started = %d", s.e.Stats().StreamsStarted)
			}
			got := s.up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream got %d requests", len(got))
			}
			if got[0].Body != tc.wantUpBdy {
				t.Errorf("upstream body = %q, want %q", got[0].Body, tc.wantUpBdy)
			}
			u, _ := s.e.LastUpstreamRequest()
			if cl, _ := u.Header("content-length"); cl != tc.wantUpCL {
				t.Errorf("upstream content-length = %q, want %q", cl, tc.wantUpCL)
			}
			if tc.trailers && tc.mode.GetRequestTrailerMode() == send {
				if v := got[0].Header.Get("X-Sum"); v != "" {
					t.Errorf("trailer leaked into headers: %q", v)
				}
				if len(u.Trailers) != 1 || u.Trailers[0].Key != "x-sum" {
					t.Errorf("upstream trailers = %v", u.Trailers)
				}
			}
		})
	}
}

// Design §10.12: both directions on one stream with request body mode NONE;
// each reply is matched per direction.
func TestInterleavedOnOneStream(t *testing.T) {
	s := newSetup(t, &processor{fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		if isKind(req, "response_headers") {
			return []*extprocv3.ProcessingResponse{common(&extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-resp", "1")}}}, req)}, nil
		}
		return continueAll(req)
	}}, Config{}, nil)
	res := s.do(t, "POST", "/p", strings.NewReader("payload"), nil)
	if res.err != nil || res.status != 200 || res.header.Get("X-Resp") != "1" {
		t.Fatalf("got %+v", res)
	}
	if diff := cmp.Diff([]string{"request_headers eos=false", "response_headers eos=false"}, describeAll(s.e.LastExchange())); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	if s.up.requests()[0].Body != "payload" || s.e.Stats().StreamsStarted != 1 {
		t.Errorf("upstream body %q, streams %d", s.up.requests()[0].Body, s.e.Stats().StreamsStarted)
	}
}

// Design §5 failure table and §10.2: OK close continues unprocessed whatever
// failure_mode_allow says; a gRPC error gives status_on_error unless
// failure_mode_allow.
func TestStreamClose(t *testing.T) {
	okClose := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		return nil, errOKClose
	}
	grpcErr := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		return nil, status.Error(codes.PermissionDenied, "nope")
	}
	errOnResponse := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		if isKind(req, "response_headers") {
			return nil, status.Error(codes.Internal, "boom")
		}
		return continueAll(req)
	}
	tests := []struct {
		name        string
		fn          script
		filter      *extprocfilterv3.ExternalProcessor
		wantStatus  int
		wantUp      bool
		wantDetails string
	}{
		{"OK close fail-closed continues", okClose, nil, 200, true, ""},
		{"OK close with failure_mode_allow continues", okClose, &extprocfilterv3.ExternalProcessor{FailureModeAllow: true}, 200, true, ""},
		{"gRPC error gives 500", grpcErr, nil, 500, false, "ext_proc_error_gRPC_error_7{nope}"},
		{"gRPC error gives status_on_error", grpcErr, &extprocfilterv3.ExternalProcessor{StatusOnError: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}}, 503, false, "ext_proc_error_gRPC_error_7{nope}"},
		{"gRPC error with failure_mode_allow continues", grpcErr, &extprocfilterv3.ExternalProcessor{FailureModeAllow: true}, 200, true, ""},
		{"gRPC error on the response path gives 500", errOnResponse, nil, 500, true, "ext_proc_error_gRPC_error_13{boom}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, &processor{fn: tc.fn}, Config{Filter: tc.filter}, nil)
			res := s.do(t, "GET", "/users", nil, nil)
			if res.err != nil || res.status != tc.wantStatus {
				t.Fatalf("status = %d (%v), want %d", res.status, res.err, tc.wantStatus)
			}
			if got := len(s.up.requests()) == 1; got != tc.wantUp {
				t.Errorf("forwarded upstream = %t, want %t", got, tc.wantUp)
			}
			if got := s.e.LastExchange().Details; got != tc.wantDetails {
				t.Errorf("details = %q, want %q", got, tc.wantDetails)
			}
		})
	}
}

// Design §3 buffer limits and §10.16: 413 for a request over the limit in
// BUFFERED mode, 500 for a response over it.
func TestBufferLimits(t *testing.T) {
	t.Run("5 MiB request", func(t *testing.T) {
		s := newSetup(t, &processor{fn: continueAll}, Config{Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: pm(send, buffered, send, none)}}, nil)
		res := s.do(t, "POST", "/big", bytes.NewReader(make([]byte, 5<<20)), nil)
		if res.err != nil || res.status != 413 {
			t.Fatalf("status = %d (%v), want 413", res.status, res.err)
		}
		x := s.e.LastExchange()
		if diff := cmp.Diff([]string{"request_headers eos=false"}, describeAll(x)); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}
		if x.Details != "request_payload_too_large" || len(s.up.requests()) != 0 {
			t.Errorf("details %q, upstream %d", x.Details, len(s.up.requests()))
		}
	})
	t.Run("5 MiB request within a raised limit reaches the processor", func(t *testing.T) {
		var got int
		fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			if b := req.GetRequestBody(); b != nil {
				got = len(b.GetBody())
			}
			return continueAll(req)
		}
		s := newSetup(t, &processor{fn: fn}, Config{BufferLimit: 8 << 20, Filter: &extprocfilterv3.ExternalProcessor{
			ProcessingMode: pm(send, buffered, skip, none), MessageTimeout: durationpb.New(10 * time.Second)}}, nil)
		if res := s.do(t, "POST", "/big", bytes.NewReader(make([]byte, 5<<20)), nil); res.status != 200 || got != 5<<20 {
			t.Errorf("status %d, processor saw %d bytes", res.status, got)
		}
	})
	t.Run("response over the limit", func(t *testing.T) {
		big := func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, 2<<20)) }
		s := newSetup(t, &processor{fn: continueAll}, Config{Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: pm(send, none, send, buffered)}}, big)
		res := s.do(t, "GET", "/", nil, nil)
		if res.status != 500 || s.e.LastExchange().Details != "response_payload_too_large" {
			t.Errorf("status %d details %q", res.status, s.e.LastExchange().Details)
		}
	})
}

// Design §5 timeouts and §10.10.
func TestMessageTimeout(t *testing.T) {
	override := func(d time.Duration) *extprocv3.ProcessingResponse {
		return &extprocv3.ProcessingResponse{OverrideMessageTimeout: durationpb.New(d)}
	}
	slowHeaders := func(req *extprocv3.ProcessingRequest) time.Duration {
		if isKind(req, "request_headers") {
			return 400 * time.Millisecond
		}
		return 0
	}
	mutate := func(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		return common(&extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-processed", "1")}}}, req)
	}
	tests := []struct {
		name          string
		p             *processor
		filter        *extprocfilterv3.ExternalProcessor
		wantStatus    int
		wantProcessed bool
		wantTimeouts  int64
		wantOverride  [2]int64 // received, ignored
	}{
		{name: "slow reply is a 504", p: &processor{fn: continueAll, delay: slowHeaders}, wantStatus: 504, wantTimeouts: 1},
		{name: "slow reply with failure_mode_allow passes unprocessed",
			p: &processor{fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				return []*extprocv3.ProcessingResponse{mutate(req)}, nil
			}, delay: slowHeaders},
			filter: &extprocfilterv3.ExternalProcessor{FailureModeAllow: true}, wantStatus: 200, wantTimeouts: 1},
		{name: "message_timeout 1s tolerates it", p: &processor{fn: continueAll, delay: slowHeaders},
			filter: &extprocfilterv3.ExternalProcessor{MessageTimeout: durationpb.New(time.Second)}, wantStatus: 200},
		{name: "override then late reply", p: &processor{fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			if isKind(req, "request_headers") {
				return []*extprocv3.ProcessingResponse{override(2 * time.Second), mutate(req)}, nil
			}
			return continueAll(req)
		}, delay: func(req *extprocv3.ProcessingRequest) time.Duration {
			if isKind(req, "request_headers") {
				return 100 * time.Millisecond
			}
			return 0
		}, between: 300 * time.Millisecond}, filter: &extprocfilterv3.ExternalProcessor{MaxMessageTimeout: durationpb.New(5 * time.Second)}, wantStatus: 200, wantProcessed: true, wantOverride: [2]int64{1, 0}},
		{name: "override ignored without max_message_timeout", p: &processor{fn: overrideThenSlow(override(2 * time.Second))},
			wantStatus: 504, wantTimeouts: 1, wantOverride: [2]int64{0, 1}},
		{name: "override above the max is ignored", p: &processor{fn: overrideThenSlow(override(10 * time.Second))},
			filter: &extprocfilterv3.ExternalProcessor{MaxMessageTimeout: durationpb.New(5 * time.Second)}, wantStatus: 504, wantTimeouts: 1, wantOverride: [2]int64{0, 1}},
		{name: "other fields of an override message are ignored", p: &processor{fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			if isKind(req, "request_headers") {
				r := mutate(req)
				r.OverrideMessageTimeout = durationpb.New(300 * time.Millisecond)
				return []*extprocv3.ProcessingResponse{r}, nil
			}
			return continueAll(req)
		}}, filter: &extprocfilterv3.ExternalProcessor{MaxMessageTimeout: durationpb.New(5 * time.Second)}, wantStatus: 504, wantTimeouts: 1, wantOverride: [2]int64{1, 0}},
		{name: "second override in the same state is ignored", p: &processor{fn: overrideThenSlow(override(300*time.Millisecond), override(2*time.Second))},
			filter: &extprocfilterv3.ExternalProcessor{MaxMessageTimeout: durationpb.New(5 * time.Second)}, wantStatus: 504, wantTimeouts: 1, wantOverride: [2]int64{1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetupDefaultTimeout(t, tc.p, Config{Filter: tc.filter}, nil)
			res := s.do(t, "GET", "/", nil, nil)
			if res.err != nil || res.status != tc.wantStatus {
				t.Fatalf("status = %d (%v), want %d", res.status, res.err, tc.wantStatus)
			}
			st := s.e.Stats()
			if st.MessageTimeouts != tc.wantTimeouts || st.OverrideMessageTimeoutReceived != tc.wantOverride[0] || st.OverrideMessageTimeoutIgnored != tc.wantOverride[1] {
				t.Errorf("stats = %+v", st)
			}
			if tc.wantStatus == 504 && s.e.LastExchange().Details != "ext_proc_error_per-message_timeout_exceeded" {
				t.Errorf("details = %q", s.e.LastExchange().Details)
			}
			if tc.wantStatus == 200 {
				_, processed := s.e.LastUpstreamRequest()
				if u, _ := s.e.LastUpstreamRequest(); processed {
					_, processed = u.Header("x-processed")
				}
				if processed != tc.wantProcessed {
					t.Errorf("processed = %t, want %t", processed, tc.wantProcessed)
				}
			}
		})
	}
}

// overrideThenSlow sends the given overrides at once on request_headers and
// then never replies to it.
func overrideThenSlow(overrides ...*extprocv3.ProcessingResponse) script {
	return func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		if isKind(req, "request_headers") {
			return overrides, nil
		}
		return continueAll(req)
	}
}

func immediate(ir *extprocv3.ImmediateResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: ir}}
}

// Design §4 ImmediateResponse and §10.4.
func TestImmediateResponse(t *testing.T) {
	tests := []struct {
		name        string
		on          string
		ir          *extprocv3.ImmediateResponse
		extra       bool
		filter      *extprocfilterv3.ExternalProcessor
		wantStatus  int
		wantBody    string
		wantCT      string
		wantHeader  [2]string
		wantDetails string
		wantUp      bool
	}{
		{name: "missing status is 200", on: "request_headers", ir: &extprocv3.ImmediateResponse{Body: []byte("denied")},
			wantStatus: 200, wantBody: "denied", wantCT: "text/plain"},
		{name: "status below 200 is 200", on: "request_headers", ir: &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: 100}},
			wantStatus: 200},
		{name: "403 with details", on: "request_headers", ir: &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Body: []byte(`{"error":"x"}`), Details: "operation not allowed",
			Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("content-type", "application/json"), set("x-qs-code", "denied")}}},
			wantStatus: 403, wantBody: `{"error":"x"}`, wantCT: "application/json", wantHeader: [2]string{"X-Qs-Code", "denied"}, wantDetails: "operation_not_allowed"},
		{name: "headers obey the mutation rules", on: "request_headers", ir: &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: 403},
			Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-envoy-foo", "1")}}},
			wantStatus: 403, wantHeader: [2]string{"X-Envoy-Foo", ""}},
		{name: "later messages ignored", on: "request_headers", extra: true, ir: &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: 403}},
			wantStatus: 403},
		{name: "on the response path", on: "response_headers", ir: &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: 502}, Body: []byte("bad upstream")},
			wantStatus: 502, wantBody: "bad upstream", wantCT: "text/plain", wantUp: true},
		{name: "on the buffered response body", on: "response_body", ir: &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: 451}},
			filter:     &extprocfilterv3.ExternalProcessor{ProcessingMode: pm(send, none, send, buffered)},
			wantStatus: 451, wantUp: true},
		{name: "disable_immediate_response makes it spurious", on: "request_headers", ir: &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: 403}},
			filter: &extprocfilterv3.ExternalProcessor{DisableImmediateResponse: true}, wantStatus: 500, wantDetails: "ext_proc_error_spurious_message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, tc.on) {
					out := []*extprocv3.ProcessingResponse{immediate(tc.ir)}
					if tc.extra {
						out = append(out, cont(req), &extprocv3.ProcessingResponse{})
					}
					return out, nil
				}
				return continueAll(req)
			}
			s := newSetup(t, &processor{fn: fn}, Config{Filter: tc.filter}, nil)
			res := s.do(t, "GET", "/", nil, nil)
			if res.err != nil || res.status != tc.wantStatus || res.body != tc.wantBody {
				t.Fatalf("got %d %q (%v), want %d %q", res.status, res.body, res.err, tc.wantStatus, tc.wantBody)
			}
			if tc.wantCT != "" && res.header.Get("Content-Type") != tc.wantCT {
				t.Errorf("content-type = %q, want %q", res.header.Get("Content-Type"), tc.wantCT)
			}
			if tc.wantHeader[0] != "" && res.header.Get(tc.wantHeader[0]) != tc.wantHeader[1] {
				t.Errorf("%s = %q, want %q", tc.wantHeader[0], res.header.Get(tc.wantHeader[0]), tc.wantHeader[1])
			}
			if got := s.e.LastExchange().Details; got != tc.wantDetails {
				t.Errorf("details = %q, want %q", got, tc.wantDetails)
			}
			if got := len(s.up.requests()) == 1; got != tc.wantUp {
				t.Errorf("upstream reached = %t, want %t", got, tc.wantUp)
			}
			if tc.extra && s.e.Stats().SpuriousMsgsReceived != 0 {
				t.Errorf("messages after an ImmediateResponse must be ignored, stats %+v", s.e.Stats())
			}
		})
	}
}

// Design §5 and §10.13: wrong-type, empty and extra replies are spurious.
func TestSpuriousReplies(t *testing.T) {
	slowUpstream := func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		_, _ = w.Write([]byte("ok"))
	}
	tests := []struct {
		name       string
		fn         script
		filter     *extprocfilterv3.ExternalProcessor
		upstream   http.HandlerFunc
		wantStatus int
	}{
		{name: "wrong direction", fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			if isKind(req, "request_headers") {
				return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}}, nil
			}
			return continueAll(req)
		}, wantStatus: 500},
		{name: "body reply to headers", fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			if isKind(req, "request_headers") {
				return []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}}, nil
			}
			return continueAll(req)
		}, wantStatus: 500},
		{name: "empty ProcessingResponse", fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			return []*extprocv3.ProcessingResponse{{}}, nil
		}, wantStatus: 500},
		{name: "extra reply", fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			if isKind(req, "request_headers") {
				return []*extprocv3.ProcessingResponse{cont(req), cont(req)}, nil
			}
			return continueAll(req)
		}, upstream: slowUpstream, wantStatus: 500},
		{name: "failure_mode_allow ignores the processor", fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			return []*extprocv3.ProcessingResponse{{}}, nil
		}, filter: &extprocfilterv3.ExternalProcessor{FailureModeAllow: true}, wantStatus: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, &processor{fn: tc.fn}, Config{Filter: tc.filter}, tc.upstream)
			res := s.do(t, "GET", "/", nil, nil)
			if res.err != nil || res.status != tc.wantStatus {
				t.Fatalf("status = %d (%v), want %d", res.status, res.err, tc.wantStatus)
			}
			if s.e.Stats().SpuriousMsgsReceived != 1 {
				t.Errorf("spurious_msgs_received = %d, want 1", s.e.Stats().SpuriousMsgsReceived)
			}
		})
	}
}

// Design §5 mode_override: honoured only with allow_mode_override, only on
// headers replies.
func TestModeOverride(t *testing.T) {
	withOverride := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		r := cont(req)
		if isKind(req, "request_headers") || isKind(req, "request_body") {
			r.ModeOverride = &extprocfilterv3.ProcessingMode{ResponseBodyMode: buffered}
		}
		return []*extprocv3.ProcessingResponse{r}, nil
	}
	tests := []struct {
		name   string
		filter *extprocfilterv3.ExternalProcessor
		want   []string
	}{
		{"honoured", &extprocfilterv3.ExternalProcessor{AllowModeOverride: true},
			[]string{"request_headers eos=true", "response_headers eos=false", `response_body "{\"ok\":true}" eos=true`}},
		{"ignored without allow_mode_override", nil,
			[]string{"request_headers eos=true", "response_headers eos=false"}},
		{"ignored when not in allowed_override_modes", &extprocfilterv3.ExternalProcessor{AllowModeOverride: true,
			AllowedOverrideModes: []*extprocfilterv3.ProcessingMode{{ResponseBodyMode: streamed}}},
			[]string{"request_headers eos=true", "response_headers eos=false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, &processor{fn: withOverride}, Config{Filter: tc.filter}, nil)
			if res := s.do(t, "GET", "/", nil, nil); res.status != 200 {
				t.Fatalf("status %d", res.status)
			}
			if diff := cmp.Diff(tc.want, describeAll(s.e.LastExchange())); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

// Design §5 and §10.14: only namespaces in receiving_namespaces.untyped whose
// value is a Struct are kept.
func TestDynamicMetadata(t *testing.T) {
	md, err := structpb.NewStruct(map[string]any{
		"okta_proxy": map[string]any{"operation": "listUsers"},
		"other":      map[string]any{"x": "y"},
		"operation":  "top-level string",
	})
	if err != nil {
		t.Fatal(err)
	}
	fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		r := cont(req)
		r.DynamicMetadata = md
		return []*extprocv3.ProcessingResponse{r}, nil
	}
	for _, tc := range []struct {
		name string
		ns   []string
		want []string
	}{{"no namespaces drops everything", nil, nil}, {"okta_proxy only", []string{"okta_proxy", "operation"}, []string{"okta_proxy"}}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, &processor{fn: fn}, Config{Filter: &extprocfilterv3.ExternalProcessor{MetadataOptions: &extprocfilterv3.MetadataOptions{
				ReceivingNamespaces: &extprocfilterv3.MetadataOptions_MetadataNamespaces{Untyped: tc.ns}}}}, nil)
			s.do(t, "GET", "/", nil, nil)
			got := s.e.LastExchange().Metadata
			var names []string
			for k := range got {
				names = append(names, k)
			}
			if diff := cmp.Diff(tc.want, names); diff != "" {
				t.Errorf("namespaces (-want +got):\n%s", diff)
			}
			if len(tc.want) > 0 && got["okta_proxy"].GetFields()["operation"].GetStringValue() != "listUsers" {
				t.Errorf("metadata = %v", got)
			}
		})
	}
}

// Design §10.3: in BUFFERED mode no request_body is sent before the header
// reply, so a server that waits for the body deadlocks into a 504.
func TestHeaderReplyMandatoryBeforeBody(t *testing.T) {
	waitForBody := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		if isKind(req, "request_headers") {
			return nil, nil // wrongly waits for the body
		}
		return continueAll(req)
	}
	s := newSetupDefaultTimeout(t, &processor{fn: waitForBody}, Config{Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: pm(send, buffered, send, none)}}, nil)
	res := s.do(t, "POST", "/", strings.NewReader("body"), nil)
	if res.status != 504 {
		t.Fatalf("status = %d, want 504", res.status)
	}
	if diff := cmp.Diff([]string{"request_headers eos=false"}, describeAll(s.e.LastExchange())); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

// Design §5: a failure after the response headers went downstream (STREAMED
// response) resets the stream instead of sending a local reply.
func TestResetAfterResponseStarted(t *testing.T) {
	fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		if isKind(req, "response_body") {
			return nil, status.Error(codes.Internal, "late failure")
		}
		return continueAll(req)
	}
	s := newSetup(t, &processor{fn: fn}, Config{Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: pm(send, none, send, streamed)}}, nil)
	res := s.do(t, "GET", "/", nil, nil)
	if res.err == nil {
		t.Errorf("want a reset (client error), got %d %q", res.status, res.body)
	}
	if x := s.e.LastExchange(); !x.Reset || x.Status != 200 {
		t.Errorf("reset = %t, status = %d", x.Reset, x.Status)
	}
}

// Design §5: a processor that cannot be reached is a gRPC error.
func TestProcessorUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	for _, tc := range []struct {
		allow bool
		want  int
	}{{false, 500}, {true, 200}} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		up := startUpstream(t, nil)
		e := New(t, Config{Processor: conn, Upstream: up.srv.URL, Filter: &extprocfilterv3.ExternalProcessor{FailureModeAllow: tc.allow}})
		res := setup{e: e, up: up}.do(t, "GET", "/", nil, nil)
		if res.status != tc.want {
			t.Errorf("failure_mode_allow=%t: status = %d, want %d", tc.allow, res.status, tc.want)
		}
		if e.Stats().StreamsFailed != 1 {
			t.Errorf("streams_failed = %d", e.Stats().StreamsFailed)
		}
	}
}

// Design §1: trailers are mutable through TrailersResponse.
func TestTrailerMutation(t *testing.T) {
	fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		if isKind(req, "request_trailers") {
			return []*extprocv3.ProcessingResponse{common(&extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{set("x-sum", "43")}}}, req)}, nil
		}
		return continueAll(req)
	}
	s := newSetup(t, &processor{fn: fn}, Config{Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: &extprocfilterv3.ProcessingMode{RequestTrailerMode: send}}}, nil)
	req, err := http.NewRequestWithContext(t.Context(), "POST", s.e.URL()+"/", io.NopCloser(strings.NewReader("x")))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Sum": {"42"}}
	resp, err := s.e.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := s.e.LastUpstreamRequest()
	if diff := cmp.Diff([]HeaderField{{Key: "x-sum", Value: "43"}}, u.Trailers); diff != "" {
		t.Errorf("trailers (-want +got):\n%s", diff)
	}
}

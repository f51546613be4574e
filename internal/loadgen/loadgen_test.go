package loadgen_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/quantaseal/gateway/internal/loadgen"
	"github.com/quantaseal/gateway/internal/noopextproc"
)

// step is what a test processor does with one message: the replies it sends, an error
// to end the stream with, or end (an OK close).
type step struct {
	replies []*extprocv3.ProcessingResponse
	delay   time.Duration // before the last reply
	err     error
	end     bool
}

// behaviour decides the step for the n-th message (0-based) of a stream.
type behaviour func(n int, req *extprocv3.ProcessingRequest) step

func noop(_ int, req *extprocv3.ProcessingRequest) step {
	r, err := noopextproc.Reply(req)
	return step{replies: []*extprocv3.ProcessingResponse{r}, err: err}
}

// recorder is an ext_proc server that records every stream's messages and answers as
// its behaviour says.
type recorder struct {
	extprocv3.UnimplementedExternalProcessorServer
	do      behaviour
	mu      sync.Mutex
	streams [][]*extprocv3.ProcessingRequest
}

func (p *recorder) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	var got []*extprocv3.ProcessingRequest
	defer func() {
		p.mu.Lock()
		p.streams = append(p.streams, got)
		p.mu.Unlock()
	}()
	for n := 0; ; n++ {
		req, err := s.Recv()
		if err != nil {
			return nil // EOF or Canceled: Envoy's normal close
		}
		got = append(got, req)
		st := p.do(n, req)
		for i, r := range st.replies {
			if i == len(st.replies)-1 && st.delay > 0 {
				time.Sleep(st.delay)
			}
			if err := s.Send(r); err != nil {
				return nil
			}
		}
		if st.err != nil {
			return st.err
		}
		if st.end {
			return nil
		}
	}
}

// kinds is the message sequence of every stream, as "request_headers,response_headers".
func (p *recorder) kinds() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for _, s := range p.streams {
		var names []string
		for _, m := range s {
			names = append(names, kind(m))
		}
		out[strings.Join(names, ",")]++
	}
	return out
}

func kind(m *extprocv3.ProcessingRequest) string {
	switch m.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return "request_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return "request_body"
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return "response_headers"
	case *extprocv3.ProcessingRequest_ResponseBody:
		return "response_body"
	}
	return "other"
}

func start(t *testing.T, do behaviour) (*recorder, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recorder{do: do}
	s := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(s, p)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return p, ln.Addr().String()
}

var (
	getUsers = loadgen.Scenario{
		Name: "get",
		RequestHeaders: []loadgen.Header{
			{":method", "GET"}, {":path", "/api/v1/users?limit=25"}, {":authority", "example.okta.com"}, {":scheme", "https"},
			{"authorization", "SSWS qs_live_x"}, {"accept", "application/json"},
		},
		ResponseHeaders: []loadgen.Header{{"content-type", "application/json"}},
		ResponseBody:    []byte(`[{"id":"00u1"}]`),
	}
	buffered = &extprocfilterv3.ProcessingMode{
		RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED, ResponseBodyMode: extprocfilterv3.ProcessingMode_BUFFERED,
	}
	postOutbound = loadgen.Scenario{
		Name: "post",
		Mode: buffered,
		RequestHeaders: []loadgen.Header{
			{":method", "POST"}, {":path", "/api/v2/proxy/outbound"}, {":authority", "gw"}, {":scheme", "http"},
			{"content-type", "application/json"},
		},
		RequestBody:     []byte(`{"operation":"list_users"}`),
		ResponseHeaders: []loadgen.Header{{"content-type", "application/json"}},
		ResponseBody:    []byte(`[]`),
	}
)

func withOverride(sc loadgen.Scenario, allow bool) loadgen.Scenario {
	sc.AllowModeOverride = allow
	return sc
}

func cont(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	r, _ := noopextproc.Reply(req)
	return r
}

func TestRunOutcomes(t *testing.T) {
	overrideTimeout := &extprocv3.ProcessingResponse{OverrideMessageTimeout: durationpb.New(time.Second)}
	tests := []struct {
		name     string
		sc       loadgen.Scenario
		do       behaviour
		cfg      loadgen.Config
		ok       int64
		denied   map[int]int64
		errors   map[string]int64
		kinds    map[string]int
		phases   []loadgen.Phase
		timeouts int64 // override_message_timeout replies
		modeOvr  int64
	}{
		{
			name: "bodiless GET, default mode: headers only", sc: getUsers, do: noop,
			ok: 10, kinds: map[string]int{"request_headers,response_headers": 10},
			phases: []loadgen.Phase{loadgen.PhaseRequestHeaders, loadgen.PhaseResponseHeaders},
		},
		{
			name: "buffered POST: every message in order", sc: postOutbound, do: noop,
			ok: 10, kinds: map[string]int{"request_headers,request_body,response_headers,response_body": 10},
			phases: loadgen.AllPhases(),
		},
		{
			name: "mode_override buffers the response body",
			sc:   withOverride(getUsers, true),
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				r := cont(req)
				if n == 0 {
					r.ModeOverride = &extprocfilterv3.ProcessingMode{ResponseBodyMode: extprocfilterv3.ProcessingMode_BUFFERED}
				}
				return step{replies: []*extprocv3.ProcessingResponse{r}}
			},
			ok: 10, modeOvr: 10, kinds: map[string]int{"request_headers,response_headers,response_body": 10},
			phases: []loadgen.Phase{loadgen.PhaseRequestHeaders, loadgen.PhaseResponseHeaders, loadgen.PhaseResponseBody},
		},
		{
			name: "mode_override ignored without allow_mode_override",
			sc:   withOverride(getUsers, false),
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				r := cont(req)
				r.ModeOverride = &extprocfilterv3.ProcessingMode{ResponseBodyMode: extprocfilterv3.ProcessingMode_BUFFERED}
				return step{replies: []*extprocv3.ProcessingResponse{r}}
			},
			ok: 10, kinds: map[string]int{"request_headers,response_headers": 10},
			phases: []loadgen.Phase{loadgen.PhaseRequestHeaders, loadgen.PhaseResponseHeaders},
		},
		{
			name: "mode_override NONE on the response headers drops a configured body",
			sc:   withOverride(postOutbound, true),
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				r := cont(req)
				if kind(req) == "response_headers" {
					r.ModeOverride = &extprocfilterv3.ProcessingMode{}
				}
				return step{replies: []*extprocv3.ProcessingResponse{r}}
			},
			ok: 10, modeOvr: 10, kinds: map[string]int{"request_headers,request_body,response_headers": 10},
			phases: loadgen.AllPhases()[:3],
		},
		{
			name: "CONTINUE_AND_REPLACE on response headers: no response body",
			sc:   postOutbound,
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				r := cont(req)
				if rh := r.GetResponseHeaders(); rh != nil {
					rh.Response.Status = extprocv3.CommonResponse_CONTINUE_AND_REPLACE
				}
				return step{replies: []*extprocv3.ProcessingResponse{r}}
			},
			ok: 10, kinds: map[string]int{"request_headers,request_body,response_headers": 10},
			phases: loadgen.AllPhases()[:3],
		},
		{
			name: "override_message_timeout then the real reply",
			sc:   getUsers,
			cfg:  loadgen.Config{MessageTimeout: 250 * time.Millisecond, MaxMessageTimeout: 2 * time.Second},
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				if n == 0 {
					return step{replies: []*extprocv3.ProcessingResponse{overrideTimeout, cont(req)}, delay: 400 * time.Millisecond}
				}
				return noop(n, req)
			},
			ok: 10, timeouts: 10, kinds: map[string]int{"request_headers,response_headers": 10},
			phases: []loadgen.Phase{loadgen.PhaseRequestHeaders, loadgen.PhaseResponseHeaders},
		},
		{
			name: "override_message_timeout ignored without max_message_timeout: 504",
			sc:   getUsers,
			cfg:  loadgen.Config{MessageTimeout: 50 * time.Millisecond},
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				return step{replies: []*extprocv3.ProcessingResponse{overrideTimeout, cont(req)}, delay: 150 * time.Millisecond}
			},
			timeouts: 10, errors: map[string]int64{loadgen.ErrKindTimeout: 10},
			kinds: map[string]int{"request_headers": 10},
		},
		{
			name: "late reply: message timeout",
			sc:   getUsers,
			cfg:  loadgen.Config{MessageTimeout: 30 * time.Millisecond},
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				return step{replies: []*extprocv3.ProcessingResponse{cont(req)}, delay: 100 * time.Millisecond}
			},
			errors: map[string]int64{loadgen.ErrKindTimeout: 10}, kinds: map[string]int{"request_headers": 10},
		},
		{
			name: "ImmediateResponse is a denial",
			sc:   getUsers,
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				return step{replies: []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
					ImmediateResponse: &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}}}}}}
			},
			denied: map[int]int64{403: 10}, kinds: map[string]int{"request_headers": 10},
		},
		{
			name: "ImmediateResponse without status reaches the client as 200",
			sc:   getUsers,
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				return step{replies: []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
					ImmediateResponse: &extprocv3.ImmediateResponse{}}}}}
			},
			denied: map[int]int64{200: 10}, kinds: map[string]int{"request_headers": 10},
		},
		{
			name: "reply of the wrong type",
			sc:   getUsers,
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				return step{replies: []*extprocv3.ProcessingResponse{{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
					ResponseHeaders: &extprocv3.HeadersResponse{}}}}}
			},
			errors: map[string]int64{loadgen.ErrKindMismatch: 10}, kinds: map[string]int{"request_headers": 10},
		},
		{
			name: "empty reply is spurious",
			sc:   postOutbound,
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				if n == 1 {
					return step{replies: []*extprocv3.ProcessingResponse{{}}}
				}
				return noop(n, req)
			},
			errors: map[string]int64{loadgen.ErrKindSpurious: 10}, kinds: map[string]int{"request_headers,request_body": 10},
		},
		{
			name: "header set in value",
			sc:   getUsers,
			do: func(n int, req *extprocv3.ProcessingRequest) step {
				r := cont(req)
				r.GetRequestHeaders().Response.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
					{Header: &corev3.HeaderValue{Key: "authorization", Value: "SSWS real"}}}}
				return step{replies: []*extprocv3.ProcessingResponse{r}}
			},
			errors: map[string]int64{loadgen.ErrKindValueSet: 10}, kinds: map[string]int{"request_headers": 10},
		},
		{
			name: "Inspect rejects a reply",
			sc:   getUsers,
			cfg: loadgen.Config{Inspect: func(ph loadgen.Phase, _ *extprocv3.ProcessingResponse) error {
				if ph == loadgen.PhaseResponseHeaders {
					return errors.New("not an envelope")
				}
				return nil
			}},
			do:     noop,
			errors: map[string]int64{loadgen.ErrKindInspect: 10}, kinds: map[string]int{"request_headers,response_headers": 10},
		},
		{
			name:   "OK close while a reply is due",
			sc:     getUsers,
			do:     func(int, *extprocv3.ProcessingRequest) step { return step{end: true} },
			errors: map[string]int64{loadgen.ErrKindClosedOK: 10}, kinds: map[string]int{"request_headers": 10},
		},
		{
			name: "gRPC error",
			sc:   getUsers,
			do: func(int, *extprocv3.ProcessingRequest) step {
				return step{err: status.Error(codes.PermissionDenied, "no")}
			},
			errors: map[string]int64{"grpc_PermissionDenied": 10}, kinds: map[string]int{"request_headers": 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, addr := start(t, tt.do)
			cfg := tt.cfg
			cfg.Target, cfg.Requests, cfg.Concurrency, cfg.Conns = addr, 10, 4, 2
			res, err := loadgen.Run(t.Context(), cfg, tt.sc)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 10 || res.OK != tt.ok {
				t.Errorf("requests %d ok %d, want 10 and %d (errors %v %v, denied %v)", res.Requests, res.OK, tt.ok, res.Errors, res.ErrorSamples, res.Denied)
			}
			if diff := cmp.Diff(tt.denied, res.Denied, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("denied (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.errors, res.Errors, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("errors (-want +got):\n%s\nsamples: %v", diff, res.ErrorSamples)
			}
			for k := range res.Errors {
				if res.ErrorSamples[k] == "" {
					t.Errorf("no error sample for %s", k)
				}
			}
			waitStreams(t, p, 10)
			if diff := cmp.Diff(tt.kinds, p.kinds()); diff != "" {
				t.Errorf("message sequences (-want +got):\n%s", diff)
			}
			var phases []loadgen.Phase
			for _, ph := range loadgen.AllPhases() {
				if l, ok := res.Phases[ph]; ok {
					phases = append(phases, ph)
					if int64(l.Count) != tt.ok {
						t.Errorf("phase %s count %d, want %d", ph, l.Count, tt.ok)
					}
				}
			}
			if diff := cmp.Diff(tt.phases, phases); diff != "" {
				t.Errorf("phases (-want +got):\n%s", diff)
			}
			if res.TimeoutOverrides != tt.timeouts || res.ModeOverrides != tt.modeOvr {
				t.Errorf("overrides: timeout %d mode %d, want %d %d", res.TimeoutOverrides, res.ModeOverrides, tt.timeouts, tt.modeOvr)
			}
			if tt.ok > 0 && (res.Latency.Count != int(tt.ok) || res.Latency.P50 <= 0 || res.RPS <= 0) {
				t.Errorf("latency %+v rps %v: want %d samples and positive figures", res.Latency, res.RPS, tt.ok)
			}
		})
	}
}

// waitStreams waits until the server has seen n streams end (the last ones end just
// after the client's cancel).
func waitStreams(t *testing.T, p *recorder, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		got := len(p.streams)
		p.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server saw %d streams, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWireShape checks the messages themselves: raw_value only, lower-case keys,
// pseudo-headers first, a unique x-request-id after them, end_of_stream flags,
// :status first on the response, and protocol_config on the first message only.
func TestWireShape(t *testing.T) {
	p, addr := start(t, noop)
	res, err := loadgen.Run(t.Context(), loadgen.Config{Target: addr, Requests: 5, Concurrency: 2}, postOutbound)
	if err != nil || res.OK != 5 {
		t.Fatalf("Run: %v, ok %d (errors %v)", err, res.OK, res.ErrorSamples)
	}
	waitStreams(t, p, 5)
	ids := map[string]bool{}
	for _, s := range p.streams {
		if len(s) != 4 {
			t.Fatalf("stream has %d messages, want 4", len(s))
		}
		for i, m := range s {
			if (m.GetProtocolConfig() != nil) != (i == 0) {
				t.Errorf("message %d (%s): protocol_config present = %v", i, kind(m), m.GetProtocolConfig() != nil)
			}
		}
		if pc := s[0].GetProtocolConfig(); pc.GetRequestBodyMode() != extprocfilterv3.ProcessingMode_BUFFERED {
			t.Errorf("protocol_config %v, want the BUFFERED request body mode", pc)
		}
		rh := s[0].GetRequestHeaders()
		if rh.GetEndOfStream() {
			t.Error("request_headers end_of_stream with a body to come")
		}
		var keys []string
		for i, h := range rh.GetHeaders().GetHeaders() {
			keys = append(keys, h.GetKey())
			if h.GetValue() != "" || (len(h.GetRawValue()) == 0 && h.GetKey() != "") {
				t.Errorf("header %q: value %q raw %q, want raw_value only", h.GetKey(), h.GetValue(), h.GetRawValue())
			}
			if h.GetKey() != strings.ToLower(h.GetKey()) {
				t.Errorf("header %q not lower-case", h.GetKey())
			}
			if h.GetKey() == "x-request-id" {
				if i != 4 {
					t.Errorf("x-request-id at %d, want right after the 4 pseudo-headers", i)
				}
				ids[string(h.GetRawValue())] = true
			}
		}
		want := []string{":method", ":path", ":authority", ":scheme", "x-request-id", "content-type"}
		if diff := cmp.Diff(want, keys); diff != "" {
			t.Errorf("request header keys (-want +got):\n%s", diff)
		}
		if b := s[1].GetRequestBody(); string(b.GetBody()) != string(postOutbound.RequestBody) || !b.GetEndOfStream() {
			t.Errorf("request_body %q eos %v", b.GetBody(), b.GetEndOfStream())
		}
		resp := s[2].GetResponseHeaders()
		if hs := resp.GetHeaders().GetHeaders(); hs[0].GetKey() != ":status" || string(hs[0].GetRawValue()) != "200" || resp.GetEndOfStream() {
			t.Errorf("response_headers first %v, eos %v; want :status 200 first and a body to come", hs[0], resp.GetEndOfStream())
		}
		if b := s[3].GetResponseBody(); !b.GetEndOfStream() || string(b.GetBody()) != "[]" {
			t.Errorf("response_body %q eos %v", b.GetBody(), b.GetEndOfStream())
		}
	}
	if len(ids) != 5 {
		t.Errorf("%d distinct x-request-id values in 5 requests", len(ids))
	}
}

// TestNoopInProcess is the baseline path: the real noop server, duration mode, with
// the CPU and allocation figures an in-process run reports.
func TestNoopInProcess(t *testing.T) {
	addr, stop, err := noopextproc.ServeLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	sc := withOverride(getUsers, true)
	res, err := loadgen.Run(t.Context(), loadgen.Config{
		Target: addr, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond,
		Concurrency: 8, Conns: 1, InProcess: true, MessageTimeout: 2 * time.Second,
	}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK == 0 || res.OK != res.Requests || res.Failed() != 0 || res.DeniedTotal() != 0 {
		t.Fatalf("ok %d of %d, errors %v", res.OK, res.Requests, res.ErrorSamples)
	}
	if res.AllocsPerRequest <= 0 || res.AllocBytesPerRequest <= 0 {
		t.Errorf("allocs/request %v bytes/request %v, want positive in-process figures", res.AllocsPerRequest, res.AllocBytesPerRequest)
	}
	if res.ServerCPU != -1 {
		t.Errorf("ServerCPU = %v without a ServerPID, want -1", res.ServerCPU)
	}
	if res.DatabaseCPU != -1 || res.DatabaseCPUPerRequest != -1 {
		t.Errorf("DatabaseCPU = %v (%v per request) without Config.DatabaseCPU, want -1", res.DatabaseCPU, res.DatabaseCPUPerRequest)
	}
	if res.Elapsed < 300*time.Millisecond || res.RPS <= 0 {
		t.Errorf("elapsed %v rps %v", res.Elapsed, res.RPS)
	}
	l := res.Latency
	if !(l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("percentiles out of order: %+v", l)
	}
}

// TestDatabaseCPU: the database's CPU is read before and after the measured window
// and divided by its requests; a reader that fails leaves it unknown.
func TestDatabaseCPU(t *testing.T) {
	addr, stop, err := noopextproc.ServeLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var reads atomic.Int64
	for _, tt := range []struct {
		name    string
		read    func() (time.Duration, error)
		unknown bool
	}{
		// Each read reports 7 ms more than the one before.
		{"counter", func() (time.Duration, error) { return time.Duration(reads.Add(1)) * 7 * time.Millisecond, nil }, false},
		{"failing", func() (time.Duration, error) { return 0, errors.New("no /proc") }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := loadgen.Run(t.Context(), loadgen.Config{
				Target: addr, Duration: 100 * time.Millisecond, Concurrency: 2, Conns: 1,
				MessageTimeout: 2 * time.Second, DatabaseCPU: tt.read,
			}, getUsers)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests == 0 {
				t.Fatal("no requests")
			}
			if tt.unknown {
				if res.DatabaseCPU != -1 || res.DatabaseCPUPerRequest != -1 {
					t.Errorf("DatabaseCPU = %v, %v per request; want -1 when the reader fails", res.DatabaseCPU, res.DatabaseCPUPerRequest)
				}
				return
			}
			if res.DatabaseCPU != 7*time.Millisecond || res.DatabaseCPUPerRequest != res.DatabaseCPU/time.Duration(res.Requests) {
				t.Errorf("DatabaseCPU = %v, %v per request over %d requests; want 7ms between the two reads", res.DatabaseCPU, res.DatabaseCPUPerRequest, res.Requests)
			}
		})
	}
}

// TestDrainTimeout: a processor that never answers cannot hold the run past its
// duration plus the drain timeout; the stuck requests count as cancelled.
func TestDrainTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	_, addr := start(t, func(int, *extprocv3.ProcessingRequest) step {
		<-block
		return step{end: true}
	})
	startT := time.Now()
	res, err := loadgen.Run(t.Context(), loadgen.Config{
		Target: addr, Duration: 100 * time.Millisecond, DrainTimeout: 100 * time.Millisecond, Concurrency: 3,
	}, getUsers)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(startT); d > 2*time.Second {
		t.Errorf("run took %v", d)
	}
	if diff := cmp.Diff(map[string]int64{loadgen.ErrKindCanceled: 3}, res.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  loadgen.Config
		sc   loadgen.Scenario
		want string
	}{
		{"no target", loadgen.Config{}, getUsers, "empty Target"},
		{"upper-case key", loadgen.Config{Target: "x:1"}, loadgen.Scenario{RequestHeaders: []loadgen.Header{
			{":method", "GET"}, {":path", "/"}, {":authority", "a"}, {":scheme", "http"}, {"Accept", "x"}}}, "lower-case"},
		{"pseudo-header after a regular one", loadgen.Config{Target: "x:1"}, loadgen.Scenario{RequestHeaders: []loadgen.Header{
			{":method", "GET"}, {"accept", "x"}, {":path", "/"}, {":authority", "a"}, {":scheme", "http"}}}, "pseudo-headers must come first"},
		{"missing :authority", loadgen.Config{Target: "x:1"}, loadgen.Scenario{RequestHeaders: []loadgen.Header{
			{":method", "GET"}, {":path", "/"}, {":scheme", "http"}}}, "lack :authority"},
		{"pseudo response header", loadgen.Config{Target: "x:1"}, func() loadgen.Scenario {
			sc := getUsers
			sc.ResponseHeaders = []loadgen.Header{{":status", "200"}}
			return sc
		}(), "not pseudo-headers"},
		{"bad status", loadgen.Config{Target: "x:1"}, func() loadgen.Scenario {
			sc := getUsers
			sc.ResponseStatus = 42
			return sc
		}(), "not an HTTP status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadgen.Run(t.Context(), tt.cfg, tt.sc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run error %v, want one containing %q", err, tt.want)
			}
		})
	}
	t.Run("cancelled context", func(t *testing.T) {
		_, addr := start(t, noop)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := loadgen.Run(ctx, loadgen.Config{Target: addr, Warmup: time.Millisecond, Duration: time.Second}, getUsers); err == nil {
			t.Error("Run with a cancelled context: nil error")
		}
	})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestUnreachable: a processor that is not there shows as failed requests.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res, err := loadgen.Run(t.Context(), loadgen.Config{Target: addr, Requests: 3, Concurrency: 1}, getUsers)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Errors["grpc_Unavailable"] != 3 {
		t.Errorf("ok %d errors %v, want 3 × grpc_Unavailable", res.OK, res.Errors)
	}
}

// TestPeakBodiesInFlight: a processor that answers no request_body until every stream
// has sent one shows all of them in flight at once; a scenario without bodies has none.
func TestPeakBodiesInFlight(t *testing.T) {
	const streams = 4
	var arrived atomic.Int32
	release := make(chan struct{})
	_, addr := start(t, func(n int, req *extprocv3.ProcessingRequest) step {
		if kind(req) == "request_body" && arrived.Add(1) == streams {
			close(release)
		}
		if kind(req) == "request_body" {
			select {
			case <-release:
			case <-time.After(10 * time.Second): // fails the count below rather than hanging
			}
		}
		return noop(n, req)
	})
	res, err := loadgen.Run(t.Context(), loadgen.Config{Target: addr, Requests: streams, Concurrency: streams}, postOutbound)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != streams || res.PeakBodiesInFlight != streams {
		t.Errorf("ok %d, peak bodies in flight %d; want %d and %d", res.OK, res.PeakBodiesInFlight, streams, streams)
	}

	_, addr = start(t, noop)
	res, err = loadgen.Run(t.Context(), loadgen.Config{Target: addr, Requests: streams, Concurrency: streams}, getUsers)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != streams || res.PeakBodiesInFlight != 0 {
		t.Errorf("headers only: ok %d, peak bodies in flight %d; want %d and 0", res.OK, res.PeakBodiesInFlight, streams)
	}
}

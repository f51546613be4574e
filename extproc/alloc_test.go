package extproc

import (
	"context"
	"io"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/quantaseal/gateway/internal/testenv"
)

// memStream is an ext_proc stream without gRPC: Process reads msgs in order and each
// reply is marshalled, as gRPC would, and counted. It measures the processor's own work
// (encoding its replies included), which a loopback gRPC benchmark mixes with the
// client's and the transport's.
type memStream struct {
	ctx     context.Context
	msgs    []*extprocv3.ProcessingRequest
	next    int
	replies int
	last    *extprocv3.ProcessingResponse
}

func (m *memStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if m.next == len(m.msgs) {
		return nil, io.EOF
	}
	m.next++
	return m.msgs[m.next-1], nil
}

func (m *memStream) Send(r *extprocv3.ProcessingResponse) error {
	if _, err := proto.Marshal(r); err != nil {
		return err
	}
	if r.GetResponse() == nil && r.GetOverrideMessageTimeout() != nil {
		return nil // a slow step extended Envoy's timer; the real reply follows
	}
	m.replies++
	m.last = r
	return nil
}

func (m *memStream) Context() context.Context     { return m.ctx }
func (m *memStream) SetHeader(metadata.MD) error  { return nil }
func (m *memStream) SendHeader(metadata.MD) error { return nil }
func (m *memStream) SetTrailer(metadata.MD)       {}
func (m *memStream) SendMsg(any) error            { return nil }
func (m *memStream) RecvMsg(any) error            { return nil }

// transparentMessages is a transparent read as Envoy sends it: request_headers, then
// response_headers of a 200 with two Link headers.
func transparentMessages() []*extprocv3.ProcessingRequest {
	return []*extprocv3.ProcessingRequest{
		reqHeaders(true, get("/api/v1/users?limit=2", "x-api-key", testBoundKey)...),
		respHeaders(false, ":status", "200", "content-type", "application/json",
			"link", `<https://acme.okta.com/api/v1/users?limit=2>; rel="self"`,
			"link", `<https://acme.okta.com/api/v1/users?after=x&limit=2>; rel="next"`),
	}
}

// processTransparent runs one transparent call through Process and checks that both
// replies let it through; the fake recorder is emptied after each call.
func processTransparent(tb testing.TB, e *env, msgs []*extprocv3.ProcessingRequest) {
	defer e.rec.reset()
	m := &memStream{ctx: tb.Context(), msgs: msgs}
	if err := e.srv.Process(m); err != nil {
		tb.Fatal(err)
	}
	if m.replies != 2 || m.last.GetResponseHeaders() == nil {
		tb.Fatalf("got %d replies, last %v; want 2 ending with response_headers", m.replies, m.last)
	}
}

// transparentAllocBudget is the most heap allocations one transparent call may cost
// the processor, its two replies marshalled (fakes included, which cost about 4: an
// id, the recorded slice). It is the measured figure (125 since dynamic metadata is
// written in wire form; 156 before) with a little headroom: raising it needs a
// reason, such as a feature that must allocate. BenchmarkProcessTransparent reports
// the current value.
const transparentAllocBudget = 140

func TestTransparentCallAllocationBudget(t *testing.T) {
	if testenv.Race {
		t.Skip("the race detector changes allocation counts")
	}
	e := newEnv(t, Config{})
	msgs := transparentMessages()
	processTransparent(t, e, msgs) // warm the auth and integration caches
	got := testing.AllocsPerRun(200, func() { processTransparent(t, e, msgs) })
	t.Logf("%.0f allocations per transparent call (budget %d)", got, transparentAllocBudget)
	if got > transparentAllocBudget {
		t.Errorf("a transparent call allocates %.0f times, over its budget of %d", got, transparentAllocBudget)
	}
}

// BenchmarkProcessTransparent is the processor's own cost of one transparent call,
// without gRPC: authentication, integration and token from their caches, policy, two
// audit records (fake), header mutations, Link rewriting and replies.
func BenchmarkProcessTransparent(b *testing.B) {
	e := newEnv(b, Config{})
	msgs := transparentMessages()
	processTransparent(b, e, msgs)
	b.ReportAllocs()
	for b.Loop() {
		processTransparent(b, e, msgs)
	}
}

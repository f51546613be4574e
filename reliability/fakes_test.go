package reliability

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quantaseal/gateway/extproc"
	"github.com/quantaseal/gateway/internal/secret"
)

// This file builds an in-process extproc server with hand-written fakes, for the
// stream-level fault tests and the processing-request fuzz target.

// fakeKey is the one API key the fake authenticator accepts.
const fakeKey = "qs_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, k secret.Secret) (extproc.Caller, error) {
	if k.Reveal() != fakeKey {
		return extproc.Caller{}, fmt.Errorf("fake: %w", extproc.ErrInvalidAPIKey)
	}
	return extproc.Caller{TenantID: "ten_fake", KeyID: "key_fake"}, nil
}

type fakeIntegrations struct{}

func (fakeIntegrations) ResolveIntegration(_ context.Context, tenantID, id, _ string) (extproc.Integration, error) {
	if id != "" && id != "int_fake" {
		return extproc.Integration{}, fmt.Errorf("fake: %w", extproc.ErrIntegrationNotFound)
	}
	return extproc.Integration{ID: "int_fake", TenantID: tenantID, SystemType: "okta", OktaOrigin: "https://fake.okta.com",
		AllowedOperations: allOperations, Envelope: extproc.EnvelopeOnRequest, CredentialID: "vlt_fake"}, nil
}

type fakeTokens struct{}

func (fakeTokens) Authorize(context.Context, extproc.AuthorizeRequest) (extproc.Authorization, error) {
	return extproc.Authorization{Header: secret.New("SSWS fake-okta-token")}, nil
}
func (fakeTokens) Invalidate(string) {}

type fakeSealer struct{}

func (fakeSealer) Seal(_ context.Context, _ string, r extproc.SealRequest) ([]byte, error) {
	return fmt.Appendf(nil, `{"fake_envelope":true,"status":%d}`, r.Status), nil
}

// fakeRecorder keeps every record.
type fakeRecorder struct {
	mu   sync.Mutex
	recs []extproc.AuditRecord
}

func (f *fakeRecorder) Record(_ context.Context, r extproc.AuditRecord) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, r)
	return fmt.Sprintf("aud_fake%06d", len(f.recs)), nil
}

// byPath counts the records per path.
func (f *fakeRecorder) byPath() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]int{}
	for _, r := range f.recs {
		m[r.Path]++
	}
	return m
}

// calls checks the records from index from on against audit-v1 "Chains" and counts
// the calls they describe: every intent (reason forwarded) is followed by exactly one
// outcome naming it, and every other record is either such an outcome or the one
// event of a call denied before forwarding. It returns a description of the first
// violation, or "".
func (f *fakeRecorder) calls(from int) (denied, forwarded int, bad string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	outcomes := map[string]int{}
	for _, r := range f.recs[from:] {
		if r.IntentID != "" {
			outcomes[r.IntentID]++
		}
	}
	for i, r := range f.recs[from:] {
		id := fmt.Sprintf("aud_fake%06d", from+i+1)
		switch {
		case r.Reason == "forwarded":
			if r.Decision != "allow" || r.Status != 0 || r.IntentID != "" || outcomes[id] != 1 {
				return denied, forwarded, fmt.Sprintf("intent %s %+v has %d outcomes, want 1", id, r, outcomes[id])
			}
			forwarded++
			delete(outcomes, id)
		case r.IntentID == "":
			if r.Decision != "deny" {
				return denied, forwarded, fmt.Sprintf("event %s %+v: allowed without an intent", id, r)
			}
			denied++
		}
	}
	for id := range outcomes {
		return denied, forwarded, fmt.Sprintf("an outcome names %s, which is not an intent of these records", id)
	}
	return denied, forwarded, ""
}

func (f *fakeRecorder) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

// inprocServer runs an extproc server with the fakes on a loopback port.
type inprocServer struct {
	srv  *extproc.Server
	rec  *fakeRecorder
	conn *grpc.ClientConn
	done chan error
}

func startInproc(t testing.TB, cfg extproc.Config) *inprocServer {
	t.Helper()
	rec := &fakeRecorder{}
	srv, err := extproc.New(cfg, extproc.Deps{Authenticator: fakeAuth{}, Integrations: fakeIntegrations{},
		Tokens: fakeTokens{}, Sealer: fakeSealer{}, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &inprocServer{srv: srv, rec: rec, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ln) }()
	s.conn, err = grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stop closes the client and stops the server, waiting for Serve to return.
func (s *inprocServer) stop(t testing.TB) {
	t.Helper()
	s.conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Errorf("extproc shutdown: %v", err)
	}
	if err := <-s.done; err != nil {
		t.Errorf("extproc Serve: %v", err)
	}
}

// headers builds a request_headers or response_headers message (raw_value only, as
// Envoy ≥ 1.27 sends them).
func headers(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

func reqHeaders(method, path string, eos bool, extra ...string) *extprocv3.ProcessingRequest {
	kv := append([]string{":method", method, ":path", path, ":authority", "fake.okta.com", ":scheme", "https",
		"authorization", "SSWS " + fakeKey, "x-request-id", "req-" + strings.ReplaceAll(path, "/", "_")}, extra...)
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headers(kv...), EndOfStream: eos}}}
}

// headersRequest is a request_headers message with exactly the given headers.
func headersRequest(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headers(kv...), EndOfStream: eos}}}
}

func reqBody(b []byte, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: b, EndOfStream: eos}}}
}

func respHeaders(status string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headers(":status", status, "content-type", "application/json"), EndOfStream: eos}}}
}

func respBody(b []byte, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: b, EndOfStream: eos}}}
}

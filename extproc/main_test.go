package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quantaseal/gateway/internal/secret"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Seeded secrets: the leak test checks none of them comes back anywhere it must not.
const (
	testKey      = "qs_live_SEEDAPIKEY0123456789abcdef"
	testBoundKey = "qs_live_SEEDBOUNDKEY0123456789abcd"
	testToken    = "SEEDACCESSTOKENeyJraWQiOiJrMSJ9"
	testProof    = "SEEDDPOPPROOFeyJ0eXAiOiJkcG9wK2p3dCJ9"
	oktaOrigin   = "https://acme.okta.com"
	tenantID     = "ten_01TEST"
	integID      = "int_01TEST"
)

// fakeAuth knows testKey (unbound) and testBoundKey (bound to integID).
type fakeAuth struct{ err error }

func (f *fakeAuth) Authenticate(_ context.Context, k secret.Secret) (Caller, error) {
	if f.err != nil {
		return Caller{}, f.err
	}
	switch {
	case k.Equal(secret.New(testKey)):
		return Caller{TenantID: tenantID, KeyID: "key_01TEST"}, nil
	case k.Equal(secret.New(testBoundKey)):
		return Caller{TenantID: tenantID, KeyID: "key_01BOUND", IntegrationID: integID}, nil
	}
	return Caller{}, fmt.Errorf("lookup: %w", ErrInvalidAPIKey)
}

type fakeIntegrations struct {
	mu    sync.Mutex
	integ Integration
	err   error
	asked []string // "integrationID|host"
}

func (f *fakeIntegrations) ResolveIntegration(_ context.Context, tenant, id, host string) (Integration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, id+"|"+host)
	if f.err != nil {
		return Integration{}, f.err
	}
	if tenant != f.integ.TenantID || (id != "" && id != f.integ.ID) || (id == "" && host != originHost(f.integ.OktaOrigin)) {
		return Integration{}, ErrIntegrationNotFound
	}
	return f.integ, nil
}

type tokErr struct {
	code, scope  string
	clientSecret bool
	retryAfter   time.Duration
}

func (e *tokErr) RetryAfter() time.Duration { return e.retryAfter }

func (e *tokErr) Error() string      { return "okta: " + e.code }
func (e *tokErr) ClientSecret() bool { return e.clientSecret }
func (e *tokErr) Code() string       { return e.code }
func (e *tokErr) Scope() string      { return e.scope }

type fakeTokens struct {
	mu          sync.Mutex
	delay       time.Duration
	err         error
	dpop        bool
	requests    []AuthorizeRequest
	invalidated []string
}

func (f *fakeTokens) Authorize(ctx context.Context, r AuthorizeRequest) (Authorization, error) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	delay, err, dpop := f.delay, f.err, f.dpop
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return Authorization{}, ctx.Err()
		}
	}
	if err != nil {
		return Authorization{}, err
	}
	if dpop {
		return Authorization{Header: secret.New("DPoP " + testToken), DPoPProof: secret.New(testProof)}, nil
	}
	return Authorization{Header: secret.New("Bearer " + testToken)}, nil
}

func (f *fakeTokens) Invalidate(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidated = append(f.invalidated, id)
}

type fakeSealer struct {
	mu   sync.Mutex
	err  error
	reqs []SealRequest
}

func (f *fakeSealer) Seal(_ context.Context, tenant string, r SealRequest) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.reqs = append(f.reqs, r)
	return json.Marshal(map[string]any{"v": 1, "tenant_id": tenant, "status": r.Status, "success": r.Success,
		"next": r.Next, "audit_event_id": r.AuditEventID, "ciphertext": r.Body})
}

type fakeRecorder struct {
	mu    sync.Mutex
	err   error
	delay time.Duration
	recs  []AuditRecord
	ids   []string
}

func (f *fakeRecorder) Record(ctx context.Context, r AuditRecord) (string, error) {
	f.mu.Lock()
	delay, err := f.delay, f.err
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if err != nil {
		return "", err
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("aud_%026d", len(f.recs)+1)
	f.recs = append(f.recs, r)
	f.ids = append(f.ids, id)
	return id, nil
}

// reset forgets what was recorded, so a benchmark's recorder does not grow (and copy
// its growing slices) without bound.
func (f *fakeRecorder) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs, f.ids = f.recs[:0], f.ids[:0]
}

func (f *fakeRecorder) records() []AuditRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]AuditRecord(nil), f.recs...)
}

// waitRecords polls until n events are recorded (abort events are written after the
// stream's last message, asynchronously to the test).
func (f *fakeRecorder) waitRecords(t *testing.T, n int) []AuditRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := f.records()
		if len(recs) >= n || time.Now().After(deadline) {
			if len(recs) != n {
				t.Fatalf("got %d audit records, want %d: %+v", len(recs), n, recs)
			}
			return recs
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type env struct {
	srv     *Server
	conn    *grpc.ClientConn
	proc    extprocv3.ExternalProcessorClient
	authz   authv3.AuthorizationClient
	auth    *fakeAuth
	integs  *fakeIntegrations
	tokens  *fakeTokens
	sealer  *fakeSealer
	rec     *fakeRecorder
	logs    *syncBuffer
	reg     *prometheus.Registry
	addr    string
	stopped chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testIntegration() Integration {
	return Integration{
		ID: integID, TenantID: tenantID, SystemType: "okta", OktaOrigin: oktaOrigin,
		AllowedOperations: []string{"list_users", "get_user", "create_user", "deactivate_user", "get_system_log"},
		Envelope:          EnvelopeOnRequest, CredentialID: "vlt_01TEST",
	}
}

// newEnv starts a Server on a loopback listener and dials it.
func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	e := &env{
		auth:    &fakeAuth{},
		integs:  &fakeIntegrations{integ: testIntegration()},
		tokens:  &fakeTokens{},
		sealer:  &fakeSealer{},
		rec:     &fakeRecorder{},
		logs:    &syncBuffer{},
		reg:     prometheus.NewRegistry(),
		stopped: make(chan error, 1),
	}
	srv, err := New(cfg, Deps{
		Authenticator: e.auth, Integrations: e.integs, Tokens: e.tokens, Sealer: e.sealer, Recorder: e.rec,
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: e.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	go func() { e.stopped <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///"+e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	e.conn = conn
	e.proc = extprocv3.NewExternalProcessorClient(conn)
	e.authz = authv3.NewAuthorizationClient(conn)
	t.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-e.stopped; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// hm builds a HeaderMap the way Envoy ≥1.27 does: raw_value only.
func hm(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

func reqHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: hm(kv...), EndOfStream: eos}}}
}

func respHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hm(kv...), EndOfStream: eos}}}
}

func reqBody(b []byte) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: b, EndOfStream: true}}}
}

func respBody(b []byte) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: b, EndOfStream: true}}}
}

// get is a GET request's headers as Envoy sends them (pseudo-headers first).
func get(path string, extra ...string) []string {
	return append([]string{":authority", "127.0.0.1:10000", ":path", path, ":method", "GET", ":scheme", "http",
		"x-request-id", "req-1"}, extra...)
}

type exchange struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[extprocv3.ProcessingRequest, extprocv3.ProcessingResponse]
	cancel context.CancelFunc
	all    []*extprocv3.ProcessingResponse // every reply received, overrides included
}

func (e *env) open(t *testing.T) *exchange {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s, err := e.proc.Process(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	x := &exchange{t: t, stream: s, cancel: cancel}
	t.Cleanup(x.close)
	return x
}

func (x *exchange) close() {
	_ = x.stream.CloseSend()
	x.cancel()
}

// do sends one message and returns the real reply, skipping (but keeping) replies
// that carry only override_message_timeout.
func (x *exchange) do(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	x.t.Helper()
	if err := x.stream.Send(req); err != nil {
		x.t.Fatalf("send: %v", err)
	}
	for {
		resp, err := x.stream.Recv()
		if err != nil {
			x.t.Fatalf("recv: %v", err)
		}
		x.all = append(x.all, resp)
		checkRawValues(x.t, resp)
		if resp.GetResponse() == nil && resp.GetOverrideMessageTimeout() != nil {
			continue
		}
		return resp
	}
}

// checkRawValues enforces gotcha 1: every header the processor writes carries
// raw_value and leaves value empty.
func checkRawValues(t *testing.T, resp *extprocv3.ProcessingResponse) {
	t.Helper()
	for _, hvo := range allSets(resp) {
		if hvo.GetHeader().GetValue() != "" {
			t.Errorf("header %q uses value", hvo.GetHeader().GetKey())
		}
		if len(hvo.GetHeader().GetRawValue()) == 0 {
			t.Errorf("header %q has an empty raw_value", hvo.GetHeader().GetKey())
		}
	}
}

func commonOf(resp *extprocv3.ProcessingResponse) *extprocv3.CommonResponse {
	switch r := resp.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		return r.RequestHeaders.GetResponse()
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		return r.ResponseHeaders.GetResponse()
	case *extprocv3.ProcessingResponse_RequestBody:
		return r.RequestBody.GetResponse()
	case *extprocv3.ProcessingResponse_ResponseBody:
		return r.ResponseBody.GetResponse()
	}
	return nil
}

func allSets(resp *extprocv3.ProcessingResponse) []*corev3.HeaderValueOption {
	if ir := resp.GetImmediateResponse(); ir != nil {
		return ir.GetHeaders().GetSetHeaders()
	}
	return commonOf(resp).GetHeaderMutation().GetSetHeaders()
}

// setsOf returns the header mutation as key → values, in order.
func setsOf(resp *extprocv3.ProcessingResponse) map[string][]string {
	out := map[string][]string{}
	for _, h := range allSets(resp) {
		out[h.GetHeader().GetKey()] = append(out[h.GetHeader().GetKey()], string(h.GetHeader().GetRawValue()))
	}
	return out
}

func removesOf(resp *extprocv3.ProcessingResponse) []string {
	return commonOf(resp).GetHeaderMutation().GetRemoveHeaders()
}

// errorJSON decodes an ImmediateResponse body.
type errorJSON struct {
	Error         string `json:"error"`
	Message       string `json:"message"`
	Field         string `json:"field"`
	Scope         string `json:"scope"`
	IntegrationID string `json:"integration_id"`
	AuditEventID  string `json:"audit_event_id"`
}

func mustImmediate(t *testing.T, resp *extprocv3.ProcessingResponse) (int, errorJSON) {
	t.Helper()
	ir := resp.GetImmediateResponse()
	if ir == nil {
		t.Fatalf("reply is %T, want an ImmediateResponse", resp.GetResponse())
	}
	var body errorJSON
	if err := json.Unmarshal(ir.GetBody(), &body); err != nil {
		t.Fatalf("body %q: %v", ir.GetBody(), err)
	}
	if got := setsOf(resp)["content-type"]; len(got) != 1 || got[0] != "application/json" {
		t.Errorf("content-type = %v", got)
	}
	return int(ir.GetStatus().GetCode()), body
}

var errStoreDown = errors.New("store down")

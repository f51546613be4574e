package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quantaseal/gateway/internal/noopextproc"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/internal/testenv"
)

// benchGateway is a gateway built by buildGateway, as `serve` builds it, with its
// ext_proc server on a loopback listener and one tenant, one api_key credential and
// one integration created through its HTTP API.
type benchGateway struct {
	gw            *gateway
	client        extprocv3.ExternalProcessorClient
	admin         string // the admin token
	tenantID      string
	apiKey        string // the tenant's qs_live_… key
	integrationID string
}

// newBenchGateway builds the gateway on the embedded store in a temporary data
// directory, or on a fresh PostgreSQL database when postgres is set.
func newBenchGateway(tb testing.TB, postgres bool) *benchGateway {
	tb.Helper()
	cfg := defaultConfig()
	cfg.DataDir = tb.TempDir()
	cfg.AdminToken = secret.New("qs_admin_bench")
	if postgres {
		cfg.DatabaseURL = secret.New(testenv.Postgres(tb))
	}
	ctx := tb.Context()
	// The logger `serve` builds (JSON, info), writing nowhere: formatting the per-call
	// log line is part of the cost measured.
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gw, err := buildGateway(ctx, cfg, logger, prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.flush(ctx); err != nil {
			tb.Errorf("flush: %v", err)
		}
		gw.close(logger)
	})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.extproc.Serve(lis) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := gw.extproc.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	bg := &benchGateway{gw: gw, client: dialExtProc(tb, lis.Addr().String()), admin: cfg.AdminToken.Reveal()}
	var tenant struct {
		TenantID string `json:"tenant_id"`
		APIKey   string `json:"api_key"`
	}
	bg.call(tb, "POST", "/api/v2/tenants", bg.admin, `{"name":"bench"}`, &tenant)
	bg.tenantID, bg.apiKey = tenant.TenantID, tenant.APIKey
	var cred struct {
		CredentialID string `json:"credential_id"`
	}
	bg.call(tb, "POST", "/api/v2/vault/seal", bg.apiKey,
		`{"credential_type":"api_key","name":"acme","secret":{"token":"00bench-okta-api-token-0123456789abcdefghij"}}`, &cred)
	var integ struct {
		IntegrationID string `json:"integration_id"`
	}
	bg.call(tb, "POST", "/api/v2/integrations", bg.apiKey,
		`{"system_type":"okta","name":"acme","okta_domain":"https://acme.okta.com","credential_id":"`+cred.CredentialID+
			`","allowed_operations":["list_users"],"envelope":"never"}`, &integ)
	bg.integrationID = integ.IntegrationID
	return bg
}

// call makes one in-process API request and decodes a 2xx JSON answer into out.
func (bg *benchGateway) call(tb testing.TB, method, path, bearer, body string, out any) {
	tb.Helper()
	req := httptest.NewRequestWithContext(tb.Context(), method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	rec := httptest.NewRecorder()
	bg.gw.api.ServeHTTP(rec, req)
	if rec.Code/100 != 2 {
		tb.Fatalf("%s %s: HTTP %d: %s", method, path, rec.Code, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			tb.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func headerMap(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

// transparentGET plays Envoy for one transparent GET /api/v1/users: request_headers,
// then response_headers of a 200 whose body is not buffered (envelope never, no
// response hashing), and checks both replies let the call through.
func (bg *benchGateway) transparentGET(ctx context.Context, tb testing.TB, req, resp *extprocv3.ProcessingRequest) {
	s, err := bg.client.Process(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Send(req); err != nil {
		tb.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		tb.Fatal(err)
	}
	if r.GetRequestHeaders() == nil {
		tb.Fatalf("request_headers reply: %v", r)
	}
	if err := s.Send(resp); err != nil {
		tb.Fatal(err)
	}
	if r, err = s.Recv(); err != nil {
		tb.Fatal(err)
	}
	if r.GetResponseHeaders() == nil {
		tb.Fatalf("response_headers reply: %v", r)
	}
	_ = s.CloseSend()
}

func (bg *benchGateway) messages() (req, resp *extprocv3.ProcessingRequest) {
	return bg.requestHeaders(bg.apiKey), &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(
			":status", "200", "content-type", "application/json",
			"link", `<https://acme.okta.com/api/v1/users?limit=2>; rel="self"`,
			"link", `<https://acme.okta.com/api/v1/users?after=00u2&limit=2>; rel="next"`), EndOfStream: false}}}
}

// requestHeaders is Envoy's request_headers message for GET /api/v1/users with key.
func (bg *benchGateway) requestHeaders(key string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(
			":authority", "127.0.0.1:10000", ":path", "/api/v1/users?limit=2", ":method", "GET", ":scheme", "http",
			"x-request-id", "bench", "authorization", "SSWS "+key, "accept", "application/json",
			"user-agent", "okta-sdk-golang/5.0.2"), EndOfStream: true}}}
}

// BenchmarkGatewayTransparentCall measures the gateway's own cost of one transparent
// call without envelope, through the real adapters and stores (API-key lookup,
// integration resolution, vault, SSWS token source, audit group commit) over loopback
// gRPC. Serial: one call at a time, so ns/op is the latency of one call, audit commit
// (fsync) included. Parallel: 16 streams per GOMAXPROCS, so the audit log group-commits
// and ns/op is the inverse of throughput. cpu-ns/op is this process's CPU time per
// call (the gateway and the in-process client; not the database server's).
//
// The postgres variants need QUANTASEAL_TEST_DATABASE_URL (source /tmp/qs-services/env).
func BenchmarkGatewayTransparentCall(b *testing.B) {
	for _, store := range []string{"embedded", "postgres"} {
		b.Run(store, func(b *testing.B) { benchCalls(b, newBenchGateway(b, store == "postgres")) })
	}
}

// BenchmarkNoopExtProcCall is the baseline of BenchmarkGatewayTransparentCall: the
// same two messages, client and loopback gRPC against internal/noopextproc, which
// answers CONTINUE and does nothing else. The ratio of the two is the gateway's own
// cost (the perf target: the gateway's throughput at least half the no-op server's).
func BenchmarkNoopExtProcCall(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := noopextproc.New()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	b.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	benchCalls(b, &benchGateway{client: dialExtProc(b, lis.Addr().String()), apiKey: "qs_live_noop"})
}

// benchCalls runs the serial and parallel sub-benchmarks of transparentGET against
// bg, after one warm-up call (vault unseal, caches).
func benchCalls(b *testing.B, bg *benchGateway) {
	req, resp := bg.messages()
	bg.transparentGET(b.Context(), b, req, resp)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU(b)
		for b.Loop() {
			bg.transparentGET(b.Context(), b, req, resp)
		}
		b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.ResetTimer()
		cpu := processCPU(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				bg.transparentGET(b.Context(), b, req, resp)
			}
		})
		b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
	})
}

// dialExtProc connects an ext_proc client to addr over plaintext loopback gRPC.
func dialExtProc(tb testing.TB, addr string) extprocv3.ExternalProcessorClient {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return extprocv3.NewExternalProcessorClient(conn)
}

// processCPU is the user+system CPU time this process has used, in nanoseconds. Per
// call it is steadier than wall time on a shared machine: it counts the gateway's work
// (and the in-process gRPC client's), not the time spent waiting for a core or for
// the database server.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestGatewayTransparentCall runs the benchmark's call once per store, so `go test`
// keeps the harness working; it also checks the API key is gone from what is forwarded.
func TestGatewayTransparentCall(t *testing.T) {
	for _, store := range []string{"embedded", "postgres"} {
		t.Run(store, func(t *testing.T) {
			bg := newBenchGateway(t, store == "postgres")
			req, _ := bg.messages()
			s, err := bg.client.Process(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(req); err != nil {
				t.Fatal(err)
			}
			r, err := s.Recv()
			if err != nil {
				t.Fatal(err)
			}
			mut := r.GetRequestHeaders().GetResponse().GetHeaderMutation()
			var auth string
			for _, h := range mut.GetSetHeaders() {
				if h.GetHeader().GetKey() == "authorization" {
					auth = string(h.GetHeader().GetRawValue())
				}
			}
			if auth != "SSWS 00bench-okta-api-token-0123456789abcdefghij" {
				t.Errorf("authorization set to %q", auth)
			}
			_ = s.CloseSend()
		})
	}
}

package extproc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/prototext"
)

// TestNoSecretLeaks drives allowed, denied, failing, envelope, outbound and ext_authz
// calls with seeded secrets and checks that none appears in logs, audit records,
// error bodies or anything sent back towards the client. The injected token and
// proof may only appear in request-direction mutations (they go to Okta); the
// caller's API key may appear nowhere.
func TestNoSecretLeaks(t *testing.T) {
	e := newEnv(t, Config{OverrideAfter: 5 * time.Millisecond})
	e.tokens.dpop = true
	var towardsClient, towardsOkta []string
	collect := func(x *exchange) {
		for _, r := range x.all {
			text := prototext.Format(r)
			switch r.GetResponse().(type) {
			case *extprocv3.ProcessingResponse_RequestHeaders, *extprocv3.ProcessingResponse_RequestBody:
				towardsOkta = append(towardsOkta, text)
			default:
				towardsClient = append(towardsClient, text)
			}
		}
	}

	// Allowed with envelope, a slow token (override path), interleaved Link headers.
	e.tokens.delay = 20 * time.Millisecond
	x := e.open(t)
	x.do(reqHeaders(true, append(get("/api/v1/users", "authorization", "SSWS "+testBoundKey), "accept", EnvelopeMediaType)...))
	x.do(respHeaders(false, ":status", "200", "link", `<https://acme.okta.com/api/v1/users?after=1>; rel="next"`))
	x.do(respBody([]byte(`[]`)))
	collect(x)
	e.tokens.delay = 0

	// Denied: not allowed, bad key, token failure, audit failure.
	for _, h := range [][]string{
		get("/api/v1/groups", "x-api-key", testBoundKey),
		get("/api/v1/users", "x-api-key", testKey+"x"),
		get("/api/v1/users", "authorization", "SSWS "+testKey, "x-api-key", testBoundKey),
	} {
		x := e.open(t)
		x.do(reqHeaders(true, h...))
		collect(x)
	}
	e.tokens.mu.Lock()
	e.tokens.err = &tokErr{code: "invalid_client"}
	e.tokens.mu.Unlock()
	x = e.open(t)
	x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...))
	collect(x)
	e.tokens.mu.Lock()
	e.tokens.err = nil
	e.tokens.mu.Unlock()

	// Outbound create_user (a password in the payload).
	body := []byte(`{"integration_id":"int_01TEST","operation":"create_user","payload":{"profile":{"login":"a"},"credentials":{"password":{"value":"SEEDPASSWORD123"}}}}`)
	x = e.open(t)
	x.do(outboundHeaders(body))
	x.do(reqBody(body))
	x.do(respHeaders(false, ":status", "200"))
	x.do(respBody([]byte(`{}`)))
	collect(x)

	// ext_authz allowed and denied.
	ok, err := e.authz.Check(t.Context(), checkReq("GET", "/api/v1/users", map[string]string{"x-api-key": testBoundKey}))
	if err != nil {
		t.Fatal(err)
	}
	towardsOkta = append(towardsOkta, prototext.Format(ok.GetOkResponse()))
	towardsClient = append(towardsClient, prototext.Format(ok.GetOkResponse().GetResponseHeadersToAdd()[0]))
	denied, err := e.authz.Check(t.Context(), checkReq("GET", "/api/v1/groups", map[string]string{"authorization": "Bearer " + testBoundKey}))
	if err != nil {
		t.Fatal(err)
	}
	towardsClient = append(towardsClient, prototext.Format(denied))

	// Let abort handlers of the closed streams finish before reading logs.
	time.Sleep(50 * time.Millisecond)
	places := map[string]string{
		"logs":           e.logs.String(),
		"audit":          fmt.Sprintf("%+v %#v", e.rec.records(), e.rec.records()),
		"towards client": strings.Join(towardsClient, "\n"),
	}
	for _, s := range []string{testKey, testBoundKey, testToken, testProof, "SEEDPASSWORD123"} {
		for where, text := range places {
			if strings.Contains(text, s) {
				t.Errorf("secret %q leaked into %s", s, where)
			}
		}
	}
	okta := strings.Join(towardsOkta, "\n")
	for _, s := range []string{testKey, testBoundKey} {
		if strings.Contains(okta, s) {
			t.Errorf("caller key %q forwarded to Okta", s)
		}
	}
	if !strings.Contains(okta, testToken) || !strings.Contains(okta, testProof) {
		t.Error("the test did not exercise token injection")
	}
	if !strings.Contains(places["logs"], `"operation"`) {
		t.Error("the test did not exercise logging")
	}
}

func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t, Config{})
	x := e.open(t)
	x.do(reqHeaders(true, get("/api/v1/groups", "x-api-key", testBoundKey)...))
	x = e.open(t)
	x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...))
	x.do(respHeaders(true, ":status", "200"))
	counter := func(labels ...string) float64 {
		var m dto.Metric
		if err := e.srv.metrics.requests.WithLabelValues(labels...).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	if got := counter("ext_proc", "transparent", "list_groups", "deny", "operation_not_allowed"); got != 1 {
		t.Errorf("deny counter = %v", got)
	}
	if got := counter("ext_proc", "transparent", "list_users", "allow", "ok"); got != 1 {
		t.Errorf("allow counter = %v", got)
	}
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, n := range []string{"quantaseal_extproc_requests_total", "quantaseal_extproc_phase_duration_seconds", "quantaseal_extproc_active_streams"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	hc := grpc_health_v1.NewHealthClient(e.conn)
	for _, svc := range healthServices {
		resp, err := hc.Check(t.Context(), &grpc_health_v1.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", svc, resp, err)
		}
	}
	e.srv.SetNotServing()
	resp, err := hc.Check(t.Context(), &grpc_health_v1.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after SetNotServing: %v %v", resp, err)
	}
}

func TestNewValidatesDeps(t *testing.T) {
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Error("New accepted missing dependencies")
	}
}

// TestShutdownFinishesInFlight starts a stream whose audit append is slow, shuts the
// server down meanwhile, and checks the stream still completes and commits.
func TestShutdownFinishesInFlight(t *testing.T) {
	e := newEnv(t, Config{OverrideAfter: time.Second})
	x := e.open(t)
	x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...))
	e.rec.mu.Lock()
	e.rec.delay = 200 * time.Millisecond
	e.rec.mu.Unlock()
	if err := x.stream.Send(respHeaders(true, ":status", "200")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the append is in progress
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(t.Context()) }()
	resp, err := x.stream.Recv()
	if err != nil {
		t.Fatalf("in-flight stream cut by shutdown: %v", err)
	}
	if resp.GetResponseHeaders() == nil {
		t.Errorf("reply %v", resp)
	}
	x.close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if len(e.rec.records()) != 2 {
		t.Errorf("records %d, want intent and outcome", len(e.rec.records()))
	}
}

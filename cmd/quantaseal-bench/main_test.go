package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/envoy"
	"github.com/quantaseal/gateway/internal/gatewaytest"
	"github.com/quantaseal/gateway/internal/loadgen"
)

// TestMain lets the test binary stand in for quantaseal-bench's noop-server
// subcommand, which runNoop starts as os.Executable(). gatewaytest builds the gateway
// binary the end-to-end memory test runs (not with -short).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "noop-server" {
		if err := runNoopServer(context.Background(), os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(gatewaytest.Main(m))
}

var benchLine = regexp.MustCompile(`^bench: scenario=([a-z_]+) store=(embedded|postgres) rps=(\d+) p99_ms=(\d+\.\d\d) ratio=(\d+\.\d{3}|-) target=(\d\.\d|-)$`)

// benchLinesOf returns the machine-readable lines of a run's output.
func benchLinesOf(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "bench: ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestRunNoop runs the driver end to end on the baseline only (no gateway): a child
// noop server, a short load, the table and the bench line.
func TestRunNoop(t *testing.T) {
	var out bytes.Buffer
	// A --workdir that does not exist yet is created.
	workDir := filepath.Join(t.TempDir(), "new", "work")
	err := run(t.Context(), []string{"--pin=false", "--scenarios", "noop", "--stores", "embedded", "--duration", "300ms", "--warmup", "0s", "--concurrency", "4", "--workdir", workDir}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	lines := benchLinesOf(out.String())
	if len(lines) != 1 {
		t.Fatalf("bench lines %q, want one\n%s", lines, out.String())
	}
	m := benchLine.FindStringSubmatch(lines[0])
	if m == nil || m[1] != "noop" || m[3] == "0" || m[5] != "1.000" || m[6] != "-" {
		t.Errorf("bench line %q does not match the contract", lines[0])
	}
	if !strings.Contains(out.String(), "peak RSS") {
		t.Errorf("no table:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(workDir, "noop.log")); err != nil {
		t.Errorf("the no-op server's log is not in --workdir: %v", err)
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // error substring, "" for success
	}{
		{"defaults", nil, ""},
		{"unknown scenario", []string{"--scenarios", "noop,bogus"}, `unknown scenario "bogus"`},
		{"unknown store", []string{"--stores", "mysql"}, `unknown store "mysql"`},
		{"zero concurrency", []string{"--concurrency", "0"}, "must be positive"},
		{"zero memory streams", []string{"--memory-streams", "0"}, "--memory-streams and --memory-body-bytes must be positive"},
		{"negative memory requests", []string{"--memory-requests", "-1"}, "--memory-requests not negative"},
		{"negative half-rate duration", []string{"--half-rate-duration", "-1s"}, "--half-rate-duration and --budget-duration must not be negative"},
		{"negative budget duration", []string{"--budget-duration", "-1s"}, "--half-rate-duration and --budget-duration must not be negative"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(allScenarios, o.scenarios); diff != "" {
					t.Errorf("scenarios (-want +got):\n%s", diff)
				}
				if o.duration != 10*time.Second || o.concurrency != 64 || o.conns != 2 || len(o.stores) != 2 || o.halfRateDuration != 5*time.Second {
					t.Errorf("defaults: %+v", o)
				}
				// Issue 8: 1,000 concurrent streams with 1 MiB responses, one request each.
				if o.memoryStreams != 1000 || o.memoryBodyBytes != 1<<20 || o.memoryRequestCount() != 1000 {
					t.Errorf("memory defaults: %d streams, %d-byte bodies, %d requests", o.memoryStreams, o.memoryBodyBytes, o.memoryRequestCount())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestBenchLines(t *testing.T) {
	ok := newRow(scTransparentEnvelope, "postgres")
	ok.ran, ok.ratio, ok.target = true, 0.8123, 0.8
	ok.res = loadgen.Result{RPS: 1234.4, Latency: loadgen.Latency{P99: 12345 * time.Microsecond}}
	broken := newRow(scOutbound, "embedded")
	broken.problem = "gateway did not start"
	memory := newRow(scEnvelopeMemory, "embedded")
	memory.ran, memory.peakRSS, memory.bodyBytes, memory.memoryStreams = true, 1536<<20, 1<<20, 1000
	memory.res = loadgen.Result{RPS: 45.4, Latency: loadgen.Latency{P99: 22 * time.Second}, PeakBodiesInFlight: 1000}
	memory.setMemoryRatio()
	half := newRow(scTransparentHalfRate, "postgres")
	half.ran, half.target = true, 1
	half.res = loadgen.Result{RPS: 1100.4, Latency: loadgen.Latency{P99: 9 * time.Millisecond}, Phases: map[loadgen.Phase]loadgen.Latency{
		loadgen.PhaseRequestHeaders: {P99: 1600 * time.Microsecond}, loadgen.PhaseResponseHeaders: {P99: 800 * time.Microsecond}}}
	half.setProcessingRatio()
	var out bytes.Buffer
	printBenchLines(&out, []*row{ok, broken, memory, half})
	want := "bench: scenario=transparent_envelope store=postgres rps=1234 p99_ms=12.35 ratio=0.812 target=0.8\n" +
		"bench: scenario=outbound store=embedded rps=0 p99_ms=0.00 ratio=- target=-\n" +
		"bench: scenario=envelope_memory store=embedded rps=45 p99_ms=22000.00 ratio=1.536 target=-\n" +
		// The processing time p99 is request_headers' 1.6 ms, not the 9 ms end to end.
		"bench: scenario=transparent_half_rate store=postgres rps=1100 p99_ms=1.60 ratio=1.250 target=1.0\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("bench lines (-want +got):\n%s", diff)
	}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !benchLine.MatchString(l) {
			t.Errorf("%q does not match the contract", l)
		}
	}
}

// fakeAPI is the part of the gateway's HTTP API the driver seeds through, checking
// the documented request shapes (ARCHITECTURE.md "Tenants and keys", "Vault",
// "Integrations").
func fakeAPI(t *testing.T, admin string, signer *envelope.SigningKey, hmac []byte) *httptest.Server {
	const apiKey = "qs_live_fake"
	decode := func(w http.ResponseWriter, r *http.Request) map[string]any {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("%s: %v", r.URL.Path, err)
		}
		return m
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/tenants", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+admin {
			http.Error(w, "no admin", http.StatusUnauthorized)
			return
		}
		m := decode(w, r)
		raw, _ := base64.StdEncoding.DecodeString(fmt.Sprint(m["response_kem_public_key"]))
		if _, err := envelope.ParseEncapsulationKey(raw); err != nil || m["name"] == "" {
			http.Error(w, "bad tenant", 400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"tenant_id": "ten_1", "api_key": apiKey, "hmac_key": base64.StdEncoding.EncodeToString(hmac)})
	})
	mux.HandleFunc("POST /api/v2/vault/seal", func(w http.ResponseWriter, r *http.Request) {
		m := decode(w, r)
		sec, _ := m["secret"].(map[string]any)
		if r.Header.Get("X-API-Key") != apiKey || m["credential_type"] != "api_key" || sec["token"] == nil {
			http.Error(w, "bad seal", 400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"credential_id": "vlt_1"})
	})
	mux.HandleFunc("POST /api/v2/integrations", func(w http.ResponseWriter, r *http.Request) {
		m := decode(w, r)
		if r.Header.Get("X-API-Key") != apiKey || m["system_type"] != "okta" || m["credential_id"] != "vlt_1" ||
			!strings.HasPrefix(fmt.Sprint(m["okta_domain"]), "http://127.0.0.1:") || m["envelope"] != "on_request" {
			http.Error(w, fmt.Sprintf("bad integration %v", m), 400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"integration_id": "int_1"})
	})
	mux.HandleFunc("GET /api/v2/signing-keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
			"key_id": signer.KeyID(), "algorithm": "ML-DSA-65", "current": true,
			"public_key": base64.StdEncoding.EncodeToString(signer.Public().Bytes())}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestSeedAndInspect seeds a fake API, then checks that the inspector opens a real
// envelope made for the seeded tenant and refuses a wrong one.
func TestSeedAndInspect(t *testing.T) {
	signer, err := envelope.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := envelope.GenerateHMACKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := fakeAPI(t, "admintoken", signer, hk.Secret().Bytes())
	g := &gatewayRun{child: &child{name: "fake", httpAddr: strings.TrimPrefix(srv.URL, "http://")}, admin: "admintoken"}
	page, err := loadgen.UsersPage("http://127.0.0.1:1234", 25)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.seed(t.Context(), "http://127.0.0.1:1234", page); err != nil {
		t.Fatal(err)
	}
	if g.fixture.apiKey != "qs_live_fake" || g.fixture.integrationID != "int_1" {
		t.Fatalf("fixture %+v", g.fixture)
	}

	sealed := func(t *testing.T, plaintext []byte) *extprocv3.ProcessingResponse {
		t.Helper()
		e, err := envelope.Seal(envelope.SealInput{
			TenantID: "ten_1", Recipient: g.keys.Response.Public(), Signer: signer, HMACKey: hk,
			Status: 200, AuditEventID: "aud_1", IssuedAt: time.Now(), Plaintext: plaintext,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{
			Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: b}}}}}}
	}
	tests := []struct {
		name     string
		envelope bool
		resp     *extprocv3.ProcessingResponse
		wantErr  bool
	}{
		{"the page, sealed", true, sealed(t, page), false},
		{"another body, sealed", true, sealed(t, []byte("[]")), true},
		{"not an envelope", true, sealed(t, page), true}, // body replaced below
		{"a body in a scenario without envelope", false, sealed(t, page), true},
	}
	tests[2].resp.GetResponseBody().GetResponse().GetBodyMutation().Mutation = &extprocv3.BodyMutation_Body{Body: page}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opened := &atomic.Bool{}
			err := inspector(g, tt.envelope, page, opened)(loadgen.PhaseResponseBody, tt.resp)
			if (err != nil) != tt.wantErr || opened.Load() == tt.wantErr {
				t.Errorf("inspect: %v, opened %v; want error %v", err, opened.Load(), tt.wantErr)
			}
			if err := inspector(g, tt.envelope, page, opened)(loadgen.PhaseRequestHeaders, tt.resp); err != nil {
				t.Errorf("headers reply inspected: %v", err)
			}
		})
	}
}

func TestAllowedCPUs(t *testing.T) {
	tests := []struct {
		name, status string
		want         []int
		server, gen  string
		wantErr      bool
	}{
		{"two", "Name:\tx\nCpus_allowed_list:\t0-1\n", []int{0, 1}, "0", "1", false},
		{"list and ranges", "Cpus_allowed_list:\t0,2-4,7\n", []int{0, 2, 3, 4, 7}, "0,2", "3,4,7", false},
		{"one", "Cpus_allowed_list:\t3\n", []int{3}, "", "3", false},
		{"missing", "Name:\tx\n", nil, "", "", true},
		{"garbage", "Cpus_allowed_list:\tx-y\n", nil, "", "", true},
		{"reversed range", "Cpus_allowed_list:\t3-1\n", nil, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := allowedCPUs(tt.status)
			if (err != nil) != tt.wantErr {
				t.Fatalf("allowedCPUs error %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("allowedCPUs (-want +got):\n%s", diff)
			}
			if err == nil {
				if s, g := splitCPUs(got); s != tt.server || g != tt.gen {
					t.Errorf("splitCPUs = %q, %q; want %q, %q", s, g, tt.server, tt.gen)
				}
			}
		})
	}
}

func TestMemoryStore(t *testing.T) {
	tests := []struct {
		stores []string
		want   string
	}{
		{[]string{"embedded", "postgres"}, "embedded"},
		{[]string{"postgres", "embedded"}, "embedded"},
		{[]string{"postgres"}, "postgres"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := (&options{stores: tt.stores}).memoryStore(); got != tt.want {
			t.Errorf("memoryStore(%v) = %q, want %q", tt.stores, got, tt.want)
		}
	}
}

// TestMemoryScenario: the default body is the largest Envoy sends in one BUFFERED
// message with the shipped buffer limit, and the request is one the gateway allows
// (get_system_log takes limit 1..1000) and envelopes.
func TestMemoryScenario(t *testing.T) {
	o, err := parseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{origin: "http://127.0.0.1:1234", apiKey: "qs_live_x", integrationID: "int_1"}
	r := newRow(scEnvelopeMemory, "embedded")
	sc, err := o.gatewayScenario(scEnvelopeMemory, f, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.ResponseBody) != envoy.DefaultBufferLimit || r.bodyBytes != len(sc.ResponseBody) || r.bodyEvents < 1 || r.bodyEvents > 1000 {
		t.Errorf("body %d bytes (row %d), %d events; want %d bytes, 1..1000 events", len(sc.ResponseBody), r.bodyBytes, r.bodyEvents, envoy.DefaultBufferLimit)
	}
	want := map[string]string{
		":method": "GET", ":path": fmt.Sprintf("/api/v1/logs?limit=%d", r.bodyEvents), "accept": envelopeMediaType,
		"x-quantaseal-integration": "int_1", "authorization": "SSWS qs_live_x",
	}
	for _, h := range sc.RequestHeaders {
		if v, ok := want[h.Key]; ok {
			if h.Value != v {
				t.Errorf("request header %s = %q, want %q", h.Key, h.Value, v)
			}
			delete(want, h.Key)
		}
	}
	if len(want) != 0 {
		t.Errorf("request headers missing: %v", want)
	}
	var contentLength string
	for _, h := range sc.ResponseHeaders {
		if h.Key == "content-length" {
			contentLength = h.Value
		}
	}
	if contentLength != fmt.Sprint(len(sc.ResponseBody)) || !sc.AllowModeOverride {
		t.Errorf("content-length %q for a %d-byte body; allow_mode_override %v", contentLength, len(sc.ResponseBody), sc.AllowModeOverride)
	}
	cfg := o.loadConfig("127.0.0.1:1", 0)
	o.memoryLoad(&cfg)
	if cfg.Concurrency != 1000 || cfg.Requests != 1000 || cfg.Duration != 0 || cfg.Warmup != 0 || cfg.MaxMessageTimeout != 0 || cfg.MessageTimeout < time.Minute {
		t.Errorf("memory load config %+v", cfg)
	}
}

func TestSetMemoryRatio(t *testing.T) {
	tests := []struct {
		name      string
		rss       int64
		streams   int
		want      float64
		wantLabel string
	}{
		{"every body held once and a half", 1500 << 20, 1000, 1.5, "1000 streams × 1.0 MiB"},
		{"bounded", 250 << 20, 1000, 0.25, "1000 streams × 1.0 MiB"},
		{"RSS unknown", -1, 1000, 0, ""},
		{"no streams", 256 << 20, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRow(scEnvelopeMemory, "embedded")
			r.peakRSS, r.bodyBytes, r.memoryStreams = tt.rss, 1<<20, tt.streams
			r.setMemoryRatio()
			if r.ratio != tt.want || r.baseline != tt.wantLabel {
				t.Errorf("ratio %v baseline %q, want %v %q", r.ratio, r.baseline, tt.want, tt.wantLabel)
			}
		})
	}
}

// TestRunEnvelopeMemory runs the memory scenario end to end, small, against the real
// gateway: the envelope of a 1 MiB page opens, no call is shed (six bodies fit the
// budget), and the table, the summary and the bench line report it.
func TestRunEnvelopeMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	const streams = 6
	var out bytes.Buffer
	profiles := filepath.Join(t.TempDir(), "profiles")
	err := run(t.Context(), []string{"--pin=false", "--gateway", gatewaytest.Binary(t), "--workdir", t.TempDir(),
		"--scenarios", scEnvelopeMemory, "--stores", "embedded", "--memory-streams", fmt.Sprint(streams),
		"--gateway-profile", profiles}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	// --gateway-profile: the gateway's CPU profile of the scenario, in pprof's gzipped
	// protobuf form.
	if b, err := os.ReadFile(filepath.Join(profiles, scEnvelopeMemory+"-embedded.pprof")); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("gateway profile: %d bytes, %v; want a gzipped pprof profile", len(b), err)
	}
	lines := benchLinesOf(out.String())
	if len(lines) != 1 {
		t.Fatalf("bench lines %q, want one\n%s", lines, out.String())
	}
	m := benchLine.FindStringSubmatch(lines[0])
	if m == nil || m[1] != scEnvelopeMemory || m[2] != "embedded" || m[5] == "-" || m[6] != "-" {
		t.Errorf("bench line %q: want scenario %s, a ratio and no target", lines[0], scEnvelopeMemory)
	}
	// How many bodies overlap depends on scheduling (loadgen's tests pin it down); the
	// summary must report between one and all of them, and a peak RSS.
	summary := regexp.MustCompile(fmt.Sprintf(`(?m)^%s/embedded: %d streams, %d requests of a %d-byte System Log page \(\d+ events\), sealed; `+
		`0 shed with 503 \+ Retry-After \(body budget full\); at most ([1-%d]) bodies awaiting their reply at the load generator at once; `+
		`server peak RSS \d+\.\d MiB = \d+\.\d\d × one body per stream\.$`,
		scEnvelopeMemory, streams, streams, envoy.DefaultBufferLimit, streams))
	if !summary.MatchString(out.String()) {
		t.Errorf("no memory summary matching %s:\n%s", summary, out.String())
	}
}

func TestSetProcessingRatio(t *testing.T) {
	p99s := func(hdr, resp time.Duration) map[loadgen.Phase]loadgen.Latency {
		return map[loadgen.Phase]loadgen.Latency{loadgen.PhaseRequestHeaders: {P99: hdr}, loadgen.PhaseResponseHeaders: {P99: resp}}
	}
	tests := []struct {
		name               string
		phases             map[loadgen.Phase]loadgen.Latency
		scheduled, dropped int64
		wantP99            time.Duration
		wantPhase          loadgen.Phase
		wantRatio          float64
		wantLine           string // ratio= of the bench line
	}{
		{"response headers slower, within budget", p99s(500*time.Microsecond, time.Millisecond), 1000, 10, time.Millisecond, loadgen.PhaseResponseHeaders, 2, "2.000"},
		{"request headers slower, over budget", p99s(4*time.Millisecond, time.Millisecond), 1000, 0, 4 * time.Millisecond, loadgen.PhaseRequestHeaders, 0.5, "0.500"},
		{"more than 1% dropped: unbounded", p99s(500*time.Microsecond, time.Millisecond), 1000, 11, time.Millisecond, loadgen.PhaseResponseHeaders, 0, "0.000"},
		{"nothing measured", nil, 0, 0, 0, loadgen.PhaseRequestHeaders, 0, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRow(scTransparentHalfRate, "embedded")
			r.ran, r.target = true, 1
			r.res.Phases, r.res.Scheduled, r.res.Dropped = tt.phases, tt.scheduled, tt.dropped
			r.setProcessingRatio()
			if r.processingP99 != tt.wantP99 || r.processingPhase != tt.wantPhase || r.ratio != tt.wantRatio || r.p99() != tt.wantP99 {
				t.Errorf("p99 %v (%s), ratio %v, bench p99 %v; want %v (%s), %v", r.processingP99, r.processingPhase, r.ratio, r.p99(), tt.wantP99, tt.wantPhase, tt.wantRatio)
			}
			var out bytes.Buffer
			printBenchLines(&out, []*row{r})
			if m := benchLine.FindStringSubmatch(strings.TrimSpace(out.String())); m == nil || m[5] != tt.wantLine || m[6] != "1.0" {
				t.Errorf("bench line %q, want ratio=%s target=1.0", out.String(), tt.wantLine)
			}
		})
	}
}

// TestRunTransparentHalfRate runs the transparent scenario end to end, small, against
// the real gateway: after the closed loop, an open loop at half its rps adds a row
// whose bench line carries the processing time p99 against the 2 ms budget, and a
// summary under the table. It asserts the shape, not the target: this machine is
// shared.
func TestRunTransparentHalfRate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	var out bytes.Buffer
	err := run(t.Context(), []string{"--pin=false", "--gateway", gatewaytest.Binary(t), "--workdir", t.TempDir(),
		"--scenarios", scTransparent, "--stores", "embedded", "--duration", "1s", "--warmup", "200ms",
		"--half-rate-duration", "1s", "--budget-duration", "1s", "--concurrency", "32"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	lines := map[string][]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if m := benchLine.FindStringSubmatch(l); m != nil {
			lines[m[1]] = m
		} else if strings.HasPrefix(l, "bench: ") {
			t.Errorf("%q does not match the contract", l)
		}
	}
	full, half := lines[scTransparent], lines[scTransparentHalfRate]
	if full == nil || half == nil || lines[scNoop] == nil {
		t.Fatalf("bench lines %v: want noop, transparent and transparent_half_rate\n%s", lines, out.String())
	}
	var fullRPS, halfRPS float64
	fmt.Sscan(full[3], &fullRPS)
	fmt.Sscan(half[3], &halfRPS)
	if half[2] != "embedded" || half[5] == "-" || half[6] != "1.0" || half[4] == "0.00" {
		t.Errorf("half-rate line %q: want a ratio, target 1.0 and a processing time", half[0])
	}
	if fullRPS == 0 || halfRPS < 0.4*fullRPS || halfRPS > 0.6*fullRPS {
		t.Errorf("half-rate rps %v, transparent %v: want about half", halfRPS, fullRPS)
	}
	summary := regexp.MustCompile(`(?m)^transparent_half_rate/embedded: open loop at \d+/s \(½ of transparent's \d+ rps\) for [0-9.]+m?s: \d+/s started, \d+ of \d+ starts dropped at the 32-stream cap, ` +
		`start lag p99 \d+\.\d\d ms; processing time p99 ` + regexp.QuoteMeta(half[4]) + ` ms \((request|response)_headers\)( over the requests made, unbounded over the schedule \(more than 1% of starts dropped\):)? (within|over) the 2\.00 ms budget; the noop server at the same rate: \d+\.\d\d ms\.$`)
	if !summary.MatchString(out.String()) {
		t.Errorf("no half-rate summary matching %s:\n%s", summary, out.String())
	}
	// The CPU of both servers at that one rate (the embedded store has no database).
	halfCPU := regexp.MustCompile(`(?m)^transparent_half_rate/embedded machine CPU per call at that rate: gateway \d+ \+ load generator \d+ \+ database not measured = \d+ µs, noop \d+ \+ \d+ = \d+ µs\.$`)
	if !halfCPU.MatchString(out.String()) {
		t.Errorf("no half-rate CPU line matching %s:\n%s", halfCPU, out.String())
	}
	fullCPU := regexp.MustCompile(`(?m)^transparent/embedded machine CPU per call: gateway \d+ \+ load generator \d+ \+ database not measured = \d+ µs, noop \d+ \+ \d+ = \d+ µs; CPU-bound ratio \d\.\d{3} \(measured ` + regexp.QuoteMeta(full[5]) + `\)$`)
	if !fullCPU.MatchString(out.String()) {
		t.Errorf("no machine CPU line matching %s:\n%s", fullCPU, out.String())
	}

	// The transparent ratio divides by the mean of a noop run before it (the noop
	// line) and one right after it.
	drift := regexp.MustCompile(`(?m)^transparent/embedded baseline: noop (\d+) rps before it and (\d+) right after \([+-]\d+%\); the ratio divides by their mean, (\d+)\.$`).FindStringSubmatch(out.String())
	if drift == nil || drift[1] != lines[scNoop][3] {
		t.Fatalf("no baseline line naming the noop line's %s rps before and one after:\n%s", lines[scNoop][3], out.String())
	}
	var before, after, ratio float64
	fmt.Sscan(drift[1], &before)
	fmt.Sscan(drift[2], &after)
	fmt.Sscan(full[5], &ratio)
	if want := fullRPS / ((before + after) / 2); math.Abs(ratio-want) > 0.002 {
		t.Errorf("transparent ratio %v, want rps %v ÷ mean(%v, %v) = %.3f", ratio, fullRPS, before, after, want)
	}
	// The noop at the target's rate, 0.5 × the mean noop rate, sets the CPU budget.
	budgetRE := regexp.MustCompile(`(?m)^transparent/embedded at the target's rate: 0\.5 × the noop's rate = (\d+) calls/s, where the \d+ CPUs allow \d+ µs per call; ` +
		`the noop server alone spends \d+ µs there \(server \d+ \+ load generator \d+, open loop\): \d+ µs (over before any work of the gateway's own|left for all of the gateway's own work)\.$`)
	if m := budgetRE.FindStringSubmatch(out.String()); m == nil {
		t.Errorf("no budget line matching %s:\n%s", budgetRE, out.String())
	} else {
		var rate, mean float64
		fmt.Sscan(m[1], &rate)
		fmt.Sscan(drift[3], &mean)
		if math.Abs(rate-mean/2) > 1 {
			t.Errorf("budget rate %v, want half the noop mean %v", rate, mean)
		}
	}
}

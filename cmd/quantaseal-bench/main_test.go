package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/loadgen"
)

// TestMain lets the test binary stand in for quantaseal-bench's noop-server
// subcommand, which runNoop starts as os.Executable().
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "noop-server" {
		if err := runNoopServer(context.Background(), os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var benchLine = regexp.MustCompile(`^bench: scenario=([a-z_]+) store=(embedded|postgres) rps=(\d+) p99_ms=(\d+\.\d\d) ratio=(\d+\.\d{3}|-) target=(\d\.\d|-)$`)

// TestRunNoop runs the driver end to end on the baseline only (no gateway): a child
// noop server, a short load, the table and the bench line.
func TestRunNoop(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"--pin=false", "--scenarios", "noop", "--stores", "embedded", "--duration", "300ms", "--warmup", "0s", "--concurrency", "4"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "bench: ") {
			lines = append(lines, l)
		}
	}
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
				if o.duration != 10*time.Second || o.concurrency != 64 || o.conns != 2 || len(o.stores) != 2 {
					t.Errorf("defaults: %+v", o)
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
	var out bytes.Buffer
	printBenchLines(&out, []*row{ok, broken})
	want := "bench: scenario=transparent_envelope store=postgres rps=1234 p99_ms=12.35 ratio=0.812 target=0.8\n" +
		"bench: scenario=outbound store=embedded rps=0 p99_ms=0.00 ratio=- target=-\n"
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
			err := inspector(g, tt.envelope, opened)(loadgen.PhaseResponseBody, tt.resp)
			if (err != nil) != tt.wantErr || opened.Load() == tt.wantErr {
				t.Errorf("inspect: %v, opened %v; want error %v", err, opened.Load(), tt.wantErr)
			}
			if err := inspector(g, tt.envelope, opened)(loadgen.PhaseRequestHeaders, tt.resp); err != nil {
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

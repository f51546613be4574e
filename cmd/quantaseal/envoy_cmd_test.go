package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/envoy"
)

func runEnvoyCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), cmdIO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, append([]string{"envoy"}, args...))
	return code, out.String(), errb.String()
}

// dropFirstLine removes the generated-by comment, which names the command line.
func dropFirstLine(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}

func TestEnvoyConfigMatchesExamples(t *testing.T) {
	tests := []struct {
		file string
		args []string
	}{
		{"sidecar.yaml", []string{"--mode", "sidecar", "--okta-domain", "example.okta.com"}},
		{"gateway.yaml", []string{"--mode=gateway", "--okta-domain=https://example.okta.com"}},
		{"sidecar-authz.yaml", []string{"--mode", "sidecar", "--okta-domain", "example.okta.com", "--authz-only"}},
		{"gateway-authz.yaml", []string{"--mode", "gateway", "--authz-only", "--okta-domain", "example.okta.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			code, stdout, stderr := runEnvoyCLI(t, append([]string{"config"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if _, err := envoy.Validate([]byte(stdout)); err != nil {
				t.Fatalf("printed YAML does not validate: %v", err)
			}
			want, err := os.ReadFile(filepath.Join("..", "..", "envoy", "examples", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(dropFirstLine(string(want)), dropFirstLine(stdout)); diff != "" {
				t.Errorf("output differs from envoy/examples/%s (-file +output):\n%s", tt.file, diff)
			}
		})
	}
}

func TestEnvoyConfigFlags(t *testing.T) {
	code, stdout, stderr := runEnvoyCLI(t, "config", "--mode", "gateway",
		"--okta-domain", "a.okta.com,b.oktapreview.com", "--okta-domain", "c.okta-emea.com",
		"--listen", "0.0.0.0:15001", "--processor", "quantaseal.qs.svc:9002", "--workload-mtls")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	b, err := envoy.Validate([]byte(stdout))
	if err != nil {
		t.Fatal(err)
	}
	var clusters []string
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters = append(clusters, c.GetName())
	}
	want := []string{envoy.ProcessorCluster, "okta_upstream_a_okta_com", "okta_upstream_b_oktapreview_com", "okta_upstream_c_okta_emea_com"}
	if diff := cmp.Diff(want, clusters); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	l := b.GetStaticResources().GetListeners()[0]
	if l.GetAddress().GetSocketAddress().GetPortValue() != 15001 || l.GetFilterChains()[0].GetTransportSocket() == nil {
		t.Errorf("listener %v", l)
	}
}

func TestEnvoyConfigUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", nil, 2, "usage"},
		{"unknown subcommand", []string{"render"}, 2, "usage"},
		{"no mode", []string{"config", "--okta-domain", "example.okta.com"}, 2, "mode"},
		{"bad mode", []string{"config", "--mode", "mesh", "--okta-domain", "example.okta.com"}, 2, "mode"},
		{"no domain", []string{"config", "--mode", "sidecar"}, 2, "Okta domain"},
		{"bad listen", []string{"config", "--mode", "sidecar", "--okta-domain", "example.okta.com", "--listen", "10000"}, 2, "--listen"},
		{"bad listen port", []string{"config", "--mode", "sidecar", "--okta-domain", "example.okta.com", "--listen", "127.0.0.1:x"}, 2, "bad port"},
		{"unknown flag", []string{"config", "--mode", "sidecar", "--okta-domian", "example.okta.com"}, 2, "okta-domian"},
		{"extra argument", []string{"config", "--mode", "sidecar", "--okta-domain", "example.okta.com", "extra"}, 2, "unexpected"},
		{"mTLS sidecar", []string{"config", "--mode", "sidecar", "--okta-domain", "example.okta.com", "--workload-mtls"}, 2, "gateway option"},
		{"help", []string{"config", "--help"}, 0, ""},
		{"envoy help", []string{"--help"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runEnvoyCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, stdout, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not mention %q", stderr, tt.want)
			}
			if code != 0 && stdout != "" {
				t.Errorf("printed a config on error: %q", stdout)
			}
		})
	}
}

package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "quantaseal.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaultsAreSafe(t *testing.T) {
	c, err := loadConfig("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.HTTPAddr, "127.0.0.1:") || !strings.HasPrefix(c.GRPCAddr, "127.0.0.1:") {
		t.Errorf("default binds are not loopback: %s %s", c.HTTPAddr, c.GRPCAddr)
	}
	if !c.DatabaseURL.IsZero() || c.KMS.Provider != "local" {
		t.Errorf("defaults must be the embedded store and local key provider")
	}
}

func TestLoadConfigFileThenEnv(t *testing.T) {
	p := writeFile(t, `
http_addr: 127.0.0.1:18080
admin_token: from-file
kms:
  provider: aws
  region: eu-west-2
  cache_ttl: 1m
okta:
  allowed_domains: ["http://127.0.0.1:9999"]
`)
	c, err := loadConfig(p, []string{
		"QUANTASEAL_GRPC_ADDR=127.0.0.1:19002",
		"QUANTASEAL_ADMIN_TOKEN=from-env",
		"QUANTASEAL_OKTA_ALLOWED_DOMAINS=https://login.example.com, http://localhost:1234",
		"QUANTASEAL_TEST_DATABASE_URL=ignored",
		"QUANTASEAL_AUDIT_MAX_IN_FLIGHT=3",
		"QUANTASEAL_MAX_BUFFERED_BODY_BYTES=67108864",
		"QUANTASEAL_DEBUG_ADDR=[::1]:6060",
		"PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:18080" || c.GRPCAddr != "127.0.0.1:19002" {
		t.Errorf("addrs = %s %s", c.HTTPAddr, c.GRPCAddr)
	}
	if c.AdminToken.Reveal() != "from-env" {
		t.Errorf("env must override the file")
	}
	if c.KMS.CacheTTL != time.Minute || c.KMS.Provider != "aws" {
		t.Errorf("kms = %+v", c.KMS)
	}
	if len(c.Okta.AllowedDomains) != 2 || c.Okta.AllowedDomains[1] != "http://localhost:1234" {
		t.Errorf("allowed domains = %v", c.Okta.AllowedDomains)
	}
	if c.Audit.MaxInFlight != 3 || c.Server.MaxBufferedBodyBytes != 64<<20 || c.Server.DebugAddr != "[::1]:6060" {
		t.Errorf("max_in_flight %d, max_buffered_body_bytes %d, debug_addr %q", c.Audit.MaxInFlight, c.Server.MaxBufferedBodyBytes, c.Server.DebugAddr)
	}
	if d := defaultConfig().Server.DebugAddr; d != "" {
		t.Errorf("the profiler is on by default (%q)", d)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		file string
		env  []string
		want []string
	}{
		"unknown yaml key":     {file: "htp_addr: x\n", want: []string{"htp_addr"}},
		"unknown nested key":   {file: "kms:\n  provder: aws\n", want: []string{"provder"}},
		"unknown env":          {env: []string{"QUANTASEAL_HTTP_ADR=x"}, want: []string{"QUANTASEAL_HTTP_ADR"}},
		"bad duration":         {env: []string{"QUANTASEAL_KMS_CACHE_TTL=soon"}, want: []string{"QUANTASEAL_KMS_CACHE_TTL"}},
		"bad integer":          {env: []string{"QUANTASEAL_AUDIT_MAX_IN_FLIGHT=two"}, want: []string{"QUANTASEAL_AUDIT_MAX_IN_FLIGHT"}},
		"in flight too many":   {env: []string{"QUANTASEAL_AUDIT_MAX_IN_FLIGHT=9"}, want: []string{"audit.max_in_flight"}},
		"in flight negative":   {file: "audit:\n  max_in_flight: -1\n", want: []string{"audit.max_in_flight"}},
		"body budget small":    {env: []string{"QUANTASEAL_MAX_BUFFERED_BODY_BYTES=1048575"}, want: []string{"server.max_buffered_body_bytes"}},
		"debug on the network": {env: []string{"QUANTASEAL_DEBUG_ADDR=0.0.0.0:6060"}, want: []string{"server.debug_addr", "loopback"}},
		"debug on a name":      {file: "server:\n  debug_addr: gateway.internal:6060\n", want: []string{"server.debug_addr"}},
		"debug without port":   {env: []string{"QUANTASEAL_DEBUG_ADDR=127.0.0.1"}, want: []string{"server.debug_addr"}},
		"every problem at once": {
			env:  []string{"QUANTASEAL_KMS=vault", "QUANTASEAL_HTTP_ADDR=nope", "QUANTASEAL_DATABASE_URL=mysql://x"},
			want: []string{"kms.provider", "http_addr", "database_url"},
		},
		"allowed domain with path": {env: []string{"QUANTASEAL_OKTA_ALLOWED_DOMAINS=https://x.example.com/api"}, want: []string{"origin"}},
	} {
		t.Run(name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			_, err := loadConfig(path, tc.env)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigLogValueRedacts(t *testing.T) {
	c, err := loadConfig("", []string{
		"QUANTASEAL_ADMIN_TOKEN=admin-secret-123",
		"QUANTASEAL_DATABASE_URL=postgres://u:dbpassword@127.0.0.1/x",
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	for _, s := range []string{"admin-secret-123", "dbpassword"} {
		if strings.Contains(buf.String(), s) {
			t.Errorf("log line leaks %q: %s", s, buf.String())
		}
	}
	if !strings.Contains(buf.String(), `"store":"postgres"`) {
		t.Errorf("log line lacks the store: %s", buf.String())
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadConfig: any file content either loads into a configuration that passes
// Validate, or is refused with an error; it never panics, and a secret given in the file
// never appears in the error text.
func FuzzLoadConfig(f *testing.F) {
	f.Add("http_addr: 127.0.0.1:8080\n")
	f.Add("kms:\n  provider: aws\n  region: eu-west-2\n")
	f.Add("okta:\n  allowed_domains: [\"http://127.0.0.1:1\"]\n")
	f.Add("admin_token: fuzz-secret-token\nhtp_addr: x\n")
	f.Add("audit:\n  commit_timeout: -1s\n")
	f.Add("{")
	f.Add("")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadConfig(p, nil)
		if err != nil {
			if strings.Contains(body, "fuzz-secret-token") && strings.Contains(err.Error(), "fuzz-secret-token") {
				t.Fatalf("error leaks the admin token: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loadConfig returned a config that fails Validate: %v", err)
		}
	})
}

// Package gateway_test holds repository-wide checks: the import graph rules of
// STYLE.md and one package doc comment per package.
package gateway_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type listedPackage struct {
	ImportPath string
	Name       string
	Doc        string
	Deps       []string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	var pkgs []listedPackage
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return pkgs
}

const module = "github.com/quantaseal/gateway"

// isTestHelperPath reports whether a package is a test helper (testenv, envoytest,
// oktatest, audittest, …): such packages may import testing; nothing else may import them.
func isTestHelperPath(r string) bool {
	last := r[strings.LastIndex(r, "/")+1:]
	// Prefix or suffix, not substring: "sqlitestore" is an adapter, not a helper.
	return strings.HasPrefix(last, "test") || strings.HasSuffix(last, "test")
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// TestImportGraph enforces STYLE.md's package boundaries.
func TestImportGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	pureCores := []string{"policy", "envelope", "audit", "vault"}
	bannedInPure := []string{
		"google.golang.org/grpc", "github.com/jackc/pgx", "github.com/aws/", "net/http",
		"github.com/envoyproxy/", "modernc.org/sqlite", "database/sql",
	}
	for _, p := range listPackages(t) {
		r := rel(p.ImportPath)
		isTestHelper := isTestHelperPath(r)
		for _, core := range pureCores {
			if r != core {
				continue
			}
			for _, d := range p.Deps {
				for _, b := range bannedInPure {
					if strings.HasPrefix(d, b) {
						t.Errorf("pure package %s depends on %s", r, d)
					}
				}
			}
		}
		if isTestHelper {
			continue
		}
		for _, d := range p.Deps {
			if d == "testing" {
				t.Errorf("production package %s depends on testing", r)
			}
			if strings.HasPrefix(d, module+"/") && isTestHelperPath(rel(d)) {
				t.Errorf("production package %s depends on test helper %s", r, rel(d))
			}
		}
		// Adapters never import the processor.
		if strings.Contains(r, "store") || strings.HasPrefix(r, "vault/") {
			for _, d := range p.Imports {
				if d == module+"/extproc" || d == module+"/httpapi" {
					t.Errorf("adapter %s imports %s", r, rel(d))
				}
			}
		}
	}
}

// TestPackageDocs checks every package has a doc comment and none is named like a junk drawer.
func TestPackageDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	banned := map[string]bool{"util": true, "utils": true, "common": true, "helpers": true, "shared": true, "types": true, "models": true}
	for _, p := range listPackages(t) {
		if p.ImportPath == module {
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", rel(p.ImportPath))
		}
		if banned[p.Name] {
			t.Errorf("package %s is named %q", rel(p.ImportPath), p.Name)
		}
	}
}

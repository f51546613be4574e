package main

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestREADMEConfigTable keeps the README honest: every QUANTASEAL_* variable it names
// exists, and every variable the gateway reads is documented there.
func TestREADMEConfigTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	known := map[string]bool{}
	for _, o := range envOverrides(&Config{}) {
		known[o.name] = true
	}
	// The table abbreviates families as `QUANTASEAL_KMS_ENDPOINT`, `_REGION`, `_KEY_ID`.
	re := regexp.MustCompile("`(QUANTASEAL_[A-Z_]+)`((?:, `_[A-Z_]+`)*)")
	documented := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(readme, -1) {
		documented[m[1]] = true
		prefix := m[1][:strings.LastIndex(m[1], "_")]
		for _, suffix := range regexp.MustCompile("`(_[A-Z_]+)`").FindAllStringSubmatch(m[2], -1) {
			// `_REGION` after `QUANTASEAL_KMS_ENDPOINT` means QUANTASEAL_KMS_REGION.
			documented[prefix+suffix[1]] = true
		}
	}
	var unknown, missing []string
	for name := range documented {
		if !known[name] && !strings.HasPrefix(name, "QUANTASEAL_TEST_") && name != "QUANTASEAL_WRITE_RELIABILITY_REPORT" {
			unknown = append(unknown, name)
		}
	}
	for name := range known {
		if !documented[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(unknown)
	sort.Strings(missing)
	if len(unknown) > 0 {
		t.Errorf("README names variables the gateway does not read: %v", unknown)
	}
	if len(missing) > 0 {
		t.Errorf("README does not document: %v", missing)
	}
}

// TestREADMECommands checks the first screen's commands exist: the make targets and the
// curl demo's endpoint.
func TestREADMECommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range regexp.MustCompile("(?m)^make ([a-z-]+)").FindAllStringSubmatch(string(readme), -1) {
		if !regexp.MustCompile("(?m)^" + regexp.QuoteMeta(target[1]) + ":").Match(makefile) {
			t.Errorf("README runs `make %s`, which the Makefile lacks", target[1])
		}
	}
	if !strings.Contains(string(readme), tenantProfileFile) {
		t.Errorf("README's demo does not read the bootstrap profile %s", tenantProfileFile)
	}
}

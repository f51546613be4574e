package gateway_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchDiff runs scripts/benchdiff.sh, make bench's regression list, on go test
// -bench outputs where the whole VM ran 30 % slower (the yardsticks too) and one
// benchmark ran 70 % slower: only that one is listed, with its raw change; an allocs/op
// increase is listed whatever the drift.
func TestBenchDiff(t *testing.T) {
	const base = `goos: linux
pkg: github.com/quantaseal/gateway/envelope
BenchmarkAES256GCMSeal/1KiB-2    	 2417979	       400.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkHMACSHA512/1KiB-2       	  196413	      4000 ns/op	     864 B/op	       6 allocs/op
BenchmarkMLDSA65Sign-2           	    3036	    300000 ns/op	     474 B/op	       4 allocs/op
BenchmarkSeal/31KiB-2            	    2000	    600000 ns/op	   90000 B/op	      39 allocs/op
pkg: github.com/quantaseal/gateway/extproc
BenchmarkProcessTransparent-2    	   33904	     30000 ns/op	   10879 B/op	     124 allocs/op
pkg: github.com/quantaseal/gateway/audit/sqlitestore
BenchmarkAppend/appenders=64-2   	   13429	     80000 ns/op	        58.13 cpu_us/event	     12000 events/s	   5747 B/op	      37 allocs/op
`
	slow := strings.NewReplacer(
		"400.0 ns/op", "520.0 ns/op", "4000 ns/op", "5200 ns/op", "300000 ns/op", "390000 ns/op", // yardsticks +30 %
		"600000 ns/op", "780000 ns/op", // +30 %: the drift, not listed
		"30000 ns/op", "51000 ns/op", // +70 %: +31 % after the drift, listed
		"124 allocs/op", "130 allocs/op", // +5 %: not listed
		"39 allocs/op", "50 allocs/op", // +28 %: listed, not adjusted
		"12000 events/s", "9300 events/s", // −22.5 % raw, within the drift
	).Replace(base)
	dir := t.TempDir()
	b, n := filepath.Join(dir, "base.txt"), filepath.Join(dir, "new.txt")
	if err := os.WriteFile(b, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n, []byte(slow), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "scripts/benchdiff.sh", b, n, "20").CombinedOutput()
	if err != nil {
		t.Fatalf("benchdiff: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("want the drift and two listed lines, got:\n%s", out)
	}
	if !strings.Contains(lines[0], "the 3 yardstick timings (crypto primitives) run +30% against the baseline") {
		t.Errorf("drift line %q", lines[0])
	}
	if !strings.Contains(lines[1], "BenchmarkSeal/31KiB-2") || !strings.Contains(lines[1], "allocs/op") || !strings.HasSuffix(lines[1], "+28%") {
		t.Errorf("allocs line %q: want Seal's 39 -> 50 allocs/op, unadjusted", lines[1])
	}
	if !strings.Contains(lines[2], "extproc.BenchmarkProcessTransparent-2") || !strings.HasSuffix(lines[2], "+31% (raw +70%)") {
		t.Errorf("timing line %q: want ProcessTransparent +31%% after the drift, raw +70%%", lines[2])
	}

	// Against itself nothing is listed; without yardsticks the timings are judged as
	// measured.
	out, err = exec.Command("bash", "scripts/benchdiff.sh", b, b, "20").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "none more than 20% worse") {
		t.Errorf("a file against itself: %v\n%s", err, out)
	}
	var noYard []string
	for _, l := range strings.Split(slow, "\n") {
		if !strings.Contains(l, "AES256") && !strings.Contains(l, "HMAC") && !strings.Contains(l, "MLDSA") {
			noYard = append(noYard, l)
		}
	}
	if err := os.WriteFile(n, []byte(strings.Join(noYard, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command("bash", "scripts/benchdiff.sh", b, n, "20").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no yardstick benchmarks in both files") ||
		!strings.Contains(string(out), "BenchmarkProcessTransparent-2    ns/op             30000 -> 51000        +70%\n") {
		t.Errorf("without yardsticks: %v\n%s", err, out)
	}
}

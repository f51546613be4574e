package reliability

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quantaseal/gateway/internal/gatewaytest"
)

func TestMain(m *testing.M) {
	code := gatewaytest.Main(m)
	if code == 0 && os.Getenv("QUANTASEAL_WRITE_RELIABILITY_REPORT") == "1" {
		if err := writeReport(filepath.Join("..", "docs", "reliability.md")); err != nil {
			fmt.Fprintln(os.Stderr, "reliability report:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// figures is one test's row of the report.
type figures struct {
	Test      string
	Faults    int // faults injected
	Requests  int // requests sent
	Committed int // audit events committed
	Verified  int // events verified (hash, links, checkpoints)
	Leaks     int // secrets found, goroutines leaked, lost acknowledged events
	// Unaudited counts calls (reads or writes) that reached Okta without a committed
	// intent event (audit-v1 "Chains": every forwarded call commits its intent first).
	// The tests that count it assert it is zero.
	Unaudited int
	Notes     string
	Took      time.Duration
}

var report struct {
	mu   sync.Mutex
	rows []figures
}

// addFigures records a test's figures for the report (only passing tests are kept).
func addFigures(t *testing.T, f figures) {
	t.Helper()
	f.Test = t.Name()
	t.Logf("figures: faults=%d requests=%d committed=%d verified=%d leaks=%d forwarded_without_intent=%d %s",
		f.Faults, f.Requests, f.Committed, f.Verified, f.Leaks, f.Unaudited, f.Notes)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		report.mu.Lock()
		defer report.mu.Unlock()
		report.rows = append(report.rows, f)
	})
}

func writeReport(path string) error {
	report.mu.Lock()
	rows := slices.Clone(report.rows)
	report.mu.Unlock()
	slices.SortFunc(rows, func(a, b figures) int { return strings.Compare(a.Test, b.Test) })
	var b strings.Builder
	fmt.Fprintf(&b, "# Reliability and security figures\n\n")
	fmt.Fprintf(&b, "Written by `QUANTASEAL_WRITE_RELIABILITY_REPORT=1 go test -race ./reliability/` "+
		"(package `reliability`, issue 9) on %s, %s/%s, %d CPUs. Each row is one passing test; "+
		"\"leaks\" counts secrets found in any scanned output, leaked goroutines and acknowledged audit events "+
		"missing from the store; \"forwarded without intent\" counts calls, reads or writes, that reached Okta "+
		"without a committed intent event (store down, process killed, or otherwise) — all must be zero.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if bin := os.Getenv(gatewaytest.BinaryEnv); bin != "" {
		fmt.Fprintf(&b, "The gateway binary was prebuilt (%s=%s), not built from this tree by the test.\n\n", gatewaytest.BinaryEnv, bin)
	}
	fmt.Fprintf(&b, "| test | faults injected | requests sent | events committed | events verified | leaks found | forwarded without intent | notes |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---|\n")
	var tot figures
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %d | %d | %d | %d | %d | %d | %s |\n", r.Test, r.Faults, r.Requests, r.Committed, r.Verified, r.Leaks, r.Unaudited, r.Notes)
		tot.Faults += r.Faults
		tot.Requests += r.Requests
		tot.Committed += r.Committed
		tot.Verified += r.Verified
		tot.Leaks += r.Leaks
		tot.Unaudited += r.Unaudited
	}
	fmt.Fprintf(&b, "| **total** | **%d** | **%d** | **%d** | **%d** | **%d** | **%d** | |\n", tot.Faults, tot.Requests, tot.Committed, tot.Verified, tot.Leaks, tot.Unaudited)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

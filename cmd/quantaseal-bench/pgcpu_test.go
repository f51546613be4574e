package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantaseal/gateway/internal/loadgen"
	"github.com/quantaseal/gateway/internal/testenv"
)

func TestPostmasterPID(t *testing.T) {
	for _, tt := range []struct {
		name, content string
		want          int
	}{
		{"postgres 15 layout", "4242\n/var/lib/postgresql/15/main\n1700000000\n5432\n/var/run/postgresql\n*\n  5432001         0\nready   \n", 4242},
		{"garbage", "not a pid\n", 0},
		{"zero", "0\n", 0},
		{"empty", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := postmasterPID(dir)
			if got != tt.want || (err != nil) != (tt.want == 0) {
				t.Errorf("postmasterPID = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
	if _, err := postmasterPID(t.TempDir()); err == nil {
		t.Error("postmasterPID of a directory without postmaster.pid: nil error")
	}
}

// TestPostgresCPU reads the test server's CPU, which a burst of queries must raise.
func TestPostgresCPU(t *testing.T) {
	url := testenv.Postgres(t)
	read, err := postgresCPU(t.Context(), url)
	if err != nil {
		t.Fatalf("postgresCPU: %v (the test server runs on this machine)", err)
	}
	before, err := read()
	if err != nil || before <= 0 {
		t.Fatalf("first read = %v, %v; a running server has used some CPU", before, err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// About half a second of backend CPU, well above the 10 ms resolution.
	if _, err := conn.Exec(t.Context(), "SELECT count(*) FROM generate_series(1, 5000000)"); err != nil {
		t.Fatal(err)
	}
	after, err := read()
	if err != nil || after-before < 50*time.Millisecond {
		t.Errorf("CPU before %v, after %v (%v): want the query's CPU counted", before, after, err)
	}

	if _, err := postgresCPU(t.Context(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"); err == nil {
		t.Error("postgresCPU of an unreachable server: nil error")
	}
}

func TestMachineCPULine(t *testing.T) {
	noop := newRow(scNoop, "postgres")
	noop.ran = true
	noop.res = loadgen.Result{Requests: 1000, ServerCPU: time.Second, ServerCPUPerRequest: 80 * time.Microsecond,
		SelfCPUPerRequest: 70 * time.Microsecond, DatabaseCPUPerRequest: -1}
	tr := newRow(scTransparent, "postgres")
	tr.ran, tr.ratio = true, 0.3
	tr.res = loadgen.Result{Requests: 1000, ServerCPU: time.Second, ServerCPUPerRequest: 200 * time.Microsecond,
		SelfCPUPerRequest: 150 * time.Microsecond, DatabaseCPUPerRequest: 100 * time.Microsecond}
	unmeasured := newRow(scTransparent, "embedded") // no noop row for embedded: no line
	unmeasured.ran = true
	unmeasured.res = tr.res
	var out bytes.Buffer
	printMachineCPU(&out, []*row{noop, tr, unmeasured})
	want := "transparent/postgres machine CPU per call: gateway 200 + load generator 150 + database 100 = 450 µs, noop 80 + 70 = 150 µs; CPU-bound ratio 0.333 (measured 0.300)\n"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}

	tr.res.DatabaseCPUPerRequest = -1
	out.Reset()
	printMachineCPU(&out, []*row{noop, tr})
	if !strings.Contains(out.String(), "+ database not measured = 350 µs") {
		t.Errorf("without the database's CPU: %q", out.String())
	}
}

func TestBudgetLine(t *testing.T) {
	b := &budget{cpus: 2, rate: 5000, perCall: 400 * time.Microsecond, noop: loadgen.Result{Requests: 25000, ServerCPU: time.Second,
		ServerCPUPerRequest: 154 * time.Microsecond, SelfCPUPerRequest: 168 * time.Microsecond}}
	tr := loadgen.Result{DatabaseCPUPerRequest: 123 * time.Microsecond}
	want := "0.5 × the noop's rate = 5000 calls/s, where the 2 CPUs allow 400 µs per call; " +
		"the noop server alone spends 322 µs there (server 154 + load generator 168, open loop) and the database 123 µs per transparent call (at transparent's rate): " +
		"45 µs over before any work of the gateway's own."
	if got := budgetLine(0.5, b, tr); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	tr.DatabaseCPUPerRequest = -1 // embedded: no database process
	if got := budgetLine(0.5, b, tr); !strings.HasSuffix(got, "(server 154 + load generator 168, open loop): 78 µs left for all of the gateway's own work.") {
		t.Errorf("without a database: %q", got)
	}
	b.problem = "12 of 100 starts dropped"
	if got := budgetLine(0.5, b, tr); !strings.HasSuffix(got, "; the noop server at that rate: not measured (12 of 100 starts dropped).") {
		t.Errorf("with a problem: %q", got)
	}
}

func TestMachineCPUs(t *testing.T) {
	o := &options{}
	if got := o.machineCPUs(); got != numCPU() {
		t.Errorf("unpinned: %d CPUs, want %d", got, numCPU())
	}
	o.serverCPUs = "0,1"
	if got := o.machineCPUs(); got != numCPU()+2 {
		t.Errorf("server pinned to 0,1: %d CPUs, want %d + 2", got, numCPU())
	}
}

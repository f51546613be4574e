package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/quantaseal/gateway/internal/loadgen"
)

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

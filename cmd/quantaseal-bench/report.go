package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/quantaseal/gateway/internal/loadgen"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func orDash(ok bool, s string) string {
	if !ok {
		return "-"
	}
	return s
}

// printTable writes the human-readable results.
func printTable(w io.Writer, o *options, rows []*row) {
	fmt.Fprintf(w, "\nquantaseal-bench: %s; concurrency %d, %d HTTP/2 connections, %s per scenario, message_timeout %s\n\n",
		o.cpuNote(), o.concurrency, o.conns, o.duration, o.messageTimeout)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tstore\trps\tp50 ms\tp99 ms\tp99.9 ms\treq_hdr p99\treq_body p99\tresp_hdr p99\tresp_body p99\tsrv CPU µs/req\tdb CPU µs/req\tgen CPU µs/req\tsrv allocs/req\tsrv KiB/req\tpeak RSS MiB\tok\tdenied\terrors\tratio\tcpu ratio\ttarget\tbaseline\t")
	for _, r := range rows {
		res := r.res
		phase := func(p loadgen.Phase) string {
			l, ok := res.Phases[p]
			return orDash(ok, ms(l.P99))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n",
			r.scenario, r.store,
			orDash(r.ran, fmt.Sprintf("%.0f", res.RPS)),
			orDash(r.ran, ms(res.Latency.P50)), orDash(r.ran, ms(res.Latency.P99)), orDash(r.ran, ms(res.Latency.P999)),
			phase(loadgen.PhaseRequestHeaders), phase(loadgen.PhaseRequestBody),
			phase(loadgen.PhaseResponseHeaders), phase(loadgen.PhaseResponseBody),
			orDash(r.ran && res.ServerCPU >= 0, us(res.ServerCPUPerRequest)),
			orDash(r.ran && res.DatabaseCPUPerRequest >= 0, us(res.DatabaseCPUPerRequest)),
			orDash(r.ran, us(res.SelfCPUPerRequest)),
			orDash(r.allocs >= 0, fmt.Sprintf("%.0f", r.allocs)),
			orDash(r.bytes >= 0, fmt.Sprintf("%.1f", r.bytes/1024)),
			orDash(r.peakRSS >= 0, fmt.Sprintf("%.1f", float64(r.peakRSS)/(1<<20))),
			res.OK, res.DeniedTotal(), res.Failed(),
			orDash(r.hasRatio(), fmt.Sprintf("%.3f", r.ratio)),
			orDash(r.cpuRatio > 0, fmt.Sprintf("%.3f", r.cpuRatio)),
			orDash(r.target > 0, fmt.Sprintf("%.1f", r.target)),
			orDash(r.baseline != "", r.baseline))
	}
	tw.Flush()

	seen := map[*loadgen.CeilingResult]bool{}
	for _, r := range rows {
		c := r.ceiling
		if c == nil || seen[c] {
			continue
		}
		seen[c] = true
		fmt.Fprintf(w, "\ncrypto ceiling (store=%s run, %d-byte users page, %d goroutines):\n", r.store, c.BodyBytes, o.concurrency)
		for _, x := range []struct {
			name string
			r    loadgen.Rate
		}{{"envelope.Seal", c.Seal}, {"envelope.Seal+MarshalJSON", c.SealJSON}, {"primitives (ML-KEM-768 encaps + ML-DSA-65 sign + AES-256-GCM + HMAC-SHA-512)", c.Primitives}} {
			fmt.Fprintf(w, "  %-80s %8.0f ops/s  %6s µs CPU/op\n", x.name, x.r.OpsPerSec, us(x.r.CPUPerOp))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ratio: rps ÷ baseline rps (noop for transparent; envelope.Seal ops/s of the same page for the envelope scenarios).")
	fmt.Fprintln(w, "cpu ratio: baseline CPU per op ÷ gateway CPU per request — the same comparison without the load generator sharing the cores.")
	fmt.Fprintln(w, "gen CPU: the load generator's own CPU per request (it runs on the same cores as the server).")
	fmt.Fprintln(w, "db CPU: the local PostgreSQL server's CPU per request, all its processes (it shares the same cores).")
	for _, r := range rows {
		if r.noopAfter > 0 {
			fmt.Fprintf(w, "transparent/%s baseline: noop %.0f rps before it and %.0f right after (%+.0f%%); the ratio divides by their mean, %.0f.\n",
				r.store, r.noopBefore, r.noopAfter, 100*(r.noopAfter-r.noopBefore)/r.noopBefore, (r.noopBefore+r.noopAfter)/2)
		}
	}
	printMachineCPU(w, rows)
	printBudget(w, rows)
	if slices.ContainsFunc(rows, func(r *row) bool { return r.scenario == scEnvelopeMemory }) {
		fmt.Fprintln(w, "envelope_memory ratio: server peak RSS ÷ one body per stream opened at once (below 1, and flat in RSS as streams grow = bounded; no target); a 503 there is the body budget shedding a call, not a failure.")
		printMemory(w, o, rows)
	}
	if slices.ContainsFunc(rows, func(r *row) bool { return r.scenario == scTransparentHalfRate }) {
		fmt.Fprintln(w, "transparent_half_rate: open loop at ½ of transparent's rps, latency from each request's scheduled start; "+
			"ratio = 2 ms ÷ processing time p99, the larger of req_hdr p99 and resp_hdr p99 (≥ 1.0 meets the target), which its bench line gives as p99_ms.")
		printHalfRate(w, o, rows)
	}
	for _, r := range rows {
		if r.problem != "" {
			fmt.Fprintf(w, "NOT VALID %s/%s: %s\n", r.scenario, r.store, r.problem)
		} else if r.target > 0 && r.ratio < r.target {
			fmt.Fprintf(w, "below target %s/%s: ratio %.3f < %.1f\n", r.scenario, r.store, r.ratio, r.target)
		}
	}
	fmt.Fprintln(w)
}

// printBenchLines writes the machine-readable summary, one line per row.
func printBenchLines(w io.Writer, rows []*row) {
	for _, r := range rows {
		target := "-"
		if r.target > 0 {
			target = fmt.Sprintf("%.1f", r.target)
		}
		ratio := "-"
		if r.hasRatio() && r.problem == "" {
			ratio = fmt.Sprintf("%.3f", r.ratio)
		}
		fmt.Fprintf(w, "bench: scenario=%s store=%s rps=%.0f p99_ms=%s ratio=%s target=%s\n",
			r.scenario, r.store, r.res.RPS, ms(r.p99()), ratio, target)
	}
}

// machineCPU is what one request cost the whole machine: the server's, the load
// generator's and (when known) the database's CPU. ok is false when the server's
// share is unknown.
func machineCPU(res loadgen.Result) (total time.Duration, ok bool) {
	if res.ServerCPU < 0 || res.Requests == 0 {
		return 0, false
	}
	total = res.ServerCPUPerRequest + res.SelfCPUPerRequest
	if res.DatabaseCPUPerRequest > 0 {
		total += res.DatabaseCPUPerRequest
	}
	return total, true
}

// printMachineCPU sets each transparent call's CPU on the whole machine against the
// noop call's. When every core is busy, throughput is inversely proportional to it, so
// noop ÷ transparent is the ratio the transparent row could reach if both kept the
// cores equally busy: a ratio far below it is latency-bound, one close to it
// CPU-bound. (CPU per call also grows as the rate falls; transparent_half_rate
// compares the two at one rate.)
func printMachineCPU(w io.Writer, rows []*row) {
	noops := map[string]loadgen.Result{}
	for _, r := range rows {
		if r.scenario == scNoop && r.ran {
			noops[r.store] = r.res
		}
	}
	for _, r := range rows {
		noop, found := noops[r.store]
		if r.scenario != scTransparent || !r.ran || !found {
			continue
		}
		t, ok1 := machineCPU(r.res)
		n, ok2 := machineCPU(noop)
		if !ok1 || !ok2 || t <= 0 {
			continue
		}
		fmt.Fprintf(w, "transparent/%s machine CPU per call: %s; CPU-bound ratio %.3f (measured %.3f)\n",
			r.store, cpuComparison(r.res, noop), float64(n)/float64(t), r.ratio)
	}
}

// cpuComparison spells out the machine CPU per call of a gateway run and of a noop
// run: "gateway G + load generator L + database D = T µs, noop S + L' = N µs".
// It is "" when either lacks the server's CPU.
func cpuComparison(gw, noop loadgen.Result) string {
	t, ok1 := machineCPU(gw)
	n, ok2 := machineCPU(noop)
	if !ok1 || !ok2 {
		return ""
	}
	db := "not measured"
	if gw.DatabaseCPUPerRequest >= 0 {
		db = us(gw.DatabaseCPUPerRequest)
	}
	return fmt.Sprintf("gateway %s + load generator %s + database %s = %s µs, noop %s + %s = %s µs",
		us(gw.ServerCPUPerRequest), us(gw.SelfCPUPerRequest), db, us(t),
		us(noop.ServerCPUPerRequest), us(noop.SelfCPUPerRequest), us(n))
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/loadgen"
)

func numCPU() int { return runtime.NumCPU() }

// row is one scenario run on one store.
type row struct {
	scenario, store string
	ran             bool
	res             loadgen.Result
	baseline        string  // what the ratio divides by, for the table
	ratio           float64 // throughput ÷ baseline throughput
	cpuRatio        float64 // baseline CPU per op ÷ server CPU per request (0 = n/a)
	target          float64 // 0 = none
	peakRSS         int64   // bytes, -1 unknown
	// noopBefore and noopAfter are, for transparent, the noop rates measured before
	// and right after it; its ratio divides by their mean (both 0: only before).
	noopBefore, noopAfter float64
	allocs, bytes         float64 // server heap allocations per request, -1 unknown
	ceiling               *loadgen.CeilingResult
	problem               string // why the run is not valid
	// The upstream body of the memory scenario: its size and System Log events.
	bodyBytes, bodyEvents int
	memoryStreams         int // envelope_memory: the streams opened at once
	// transparent_half_rate (halfrate.go): the closed-loop rate it halved, the
	// processing time p99 — the largest of the phases' p99s — and its phase, and the
	// noop server's at the same rate (0 unknown) with what went wrong measuring it.
	fullRPS         float64
	processingP99   time.Duration
	processingPhase loadgen.Phase
	noopP99         time.Duration
	noopProblem     string
	noopRes         loadgen.Result // the noop server's run at the same rate
	budget          *budget        // transparent: the CPU budget at the target's rate (nil: not measured)

	overCap bool // more than 1% of its starts dropped: the p99 is unbounded
}

func (r *row) invalid() bool { return r.problem != "" }

// hasRatio says whether r measured a ratio; only an unbounded p99 makes it 0.
func (r *row) hasRatio() bool { return r.ran && (r.ratio > 0 || r.overCap) }

func newRow(scenario, store string) *row {
	return &row{scenario: scenario, store: store, peakRSS: -1, allocs: -1, bytes: -1}
}

func (o *options) loadConfig(target string, pid int) loadgen.Config {
	return loadgen.Config{
		Target: target, Conns: o.conns, Concurrency: o.concurrency,
		Duration: o.duration, Warmup: o.warmup,
		MessageTimeout: o.messageTimeout, MaxMessageTimeout: 10 * time.Second,
		ServerPID: pid,
	}
}

// loadConfig is o's load aimed at the gateway, reading its CPU and its database's.
func (g *gatewayRun) loadConfig(o *options) loadgen.Config {
	cfg := o.loadConfig(g.grpcAddr, g.pid())
	cfg.DatabaseCPU = g.dbCPU
	return cfg
}

// check marks r invalid when the run was denied or failed too often. In
// envelope_memory a 503 is the gateway shedding a call its body budget had no room for
// (extproc bodyBudget): the behaviour under test, counted and reported, not a failure.
func (r *row) check() {
	res := &r.res
	switch {
	case res.Requests == 0:
		r.problem = "no request completed"
	case res.DeniedTotal()-r.shed() > 0:
		r.problem = fmt.Sprintf("%d requests denied %v", res.DeniedTotal(), res.Denied)
	case float64(res.Failed()) > 0.01*float64(res.Requests):
		r.problem = fmt.Sprintf("%d of %d requests failed %v", res.Failed(), res.Requests, res.Errors)
	}
	for kind, sample := range res.ErrorSamples {
		fmt.Fprintf(os.Stderr, "quantaseal-bench: %s/%s: %d × %s, e.g. %s\n", r.scenario, r.store, res.Errors[kind], kind, sample)
	}
}

// runStore runs the selected scenarios for one store: the noop baseline, then the
// gateway (started, seeded, ceiling measured while it idles, scenarios, stopped).
func runStore(ctx context.Context, o *options, store, dir string) []*row {
	var rows []*row
	usersPage := func(origin string) ([]byte, error) { return loadgen.UsersPage(origin, 25) }

	var noop *row
	if o.want(scNoop) || o.want(scTransparent) {
		noop = runNoop(ctx, o, store, dir, usersPage)
		rows = append(rows, noop)
	}
	var gwScenarios []string
	for _, s := range gatewayScenarios {
		if o.want(s) && (s != scEnvelopeMemory || store == o.memoryStore()) {
			gwScenarios = append(gwScenarios, s)
		}
	}
	if len(gwScenarios) == 0 || ctx.Err() != nil {
		return rows
	}
	fail := func(err error) []*row {
		for _, s := range gwScenarios {
			r := newRow(s, store)
			r.problem = err.Error()
			rows = append(rows, r)
		}
		fmt.Fprintf(os.Stderr, "quantaseal-bench: store=%s: %v\n", store, err)
		return rows
	}
	if store == "postgres" && o.databaseURL == "" {
		return fail(errors.New("no PostgreSQL: set QUANTASEAL_TEST_DATABASE_URL or --database-url (scripts/bench.sh starts one)"))
	}
	g, err := startGateway(ctx, o, store, dir, usersPage)
	if err != nil {
		return fail(err)
	}
	defer g.close()

	var ceiling *loadgen.CeilingResult
	if o.want(scTransparentEnvelope) || o.want(scOutbound) {
		c, err := loadgen.Ceiling(ctx, loadgen.CeilingConfig{Body: g.fixture.usersPage, Concurrency: o.concurrency, Duration: o.ceilingDuration})
		if err != nil {
			return fail(fmt.Errorf("crypto ceiling: %w", err))
		}
		ceiling = &c
	}
	for _, s := range gwScenarios {
		if ctx.Err() != nil {
			break
		}
		r := newRow(s, store)
		rows = append(rows, r)
		sc, err := o.gatewayScenario(s, g.fixture, r)
		if err != nil {
			r.problem = err.Error()
			continue
		}
		cfg := g.loadConfig(o)
		if s == scEnvelopeMemory {
			o.memoryLoad(&cfg)
		}
		envelopeWanted := s != scTransparent
		if !measure(ctx, g, cfg, sc, envelopeWanted, r) {
			continue
		}
		res := r.res
		switch s {
		case scEnvelopeMemory:
			r.setMemoryRatio()
		case scTransparent:
			r.target = targets[s]
			if noop != nil && noop.ran && noop.res.RPS > 0 {
				// This VM's speed drifts by 10–20% within minutes, and the noop ran a
				// minute earlier. A second noop run right after this one, averaged with
				// the first, cancels a drift that is linear over the three runs.
				base := noop.res.RPS
				r.baseline = fmt.Sprintf("noop %.0f rps", base)
				if after, err := runNoopLoad(ctx, o, dir, usersPage); err != nil {
					fmt.Fprintf(os.Stderr, "quantaseal-bench: noop after transparent/%s: %v (the ratio uses the noop run before it only)\n", store, err)
				} else {
					r.noopBefore, r.noopAfter = base, after.RPS
					base = (base + after.RPS) / 2
					r.baseline = fmt.Sprintf("noop %.0f rps", base)
				}
				r.ratio = res.RPS / base
				if res.ServerCPUPerRequest > 0 {
					r.cpuRatio = float64(noop.res.ServerCPUPerRequest) / float64(res.ServerCPUPerRequest)
				}
				if o.budgetDuration > 0 && ctx.Err() == nil {
					r.budget = o.measureBudget(ctx, dir, usersPage, r.target, base)
				}
			}
			if o.halfRateDuration > 0 && ctx.Err() == nil {
				rows = append(rows, o.runHalfRate(ctx, g, dir, sc, r))
			}
		default:
			r.target = targets[s]
			r.ceiling = ceiling
			r.ratio = res.RPS / ceiling.Seal.OpsPerSec
			r.baseline = fmt.Sprintf("seal %.0f ops/s", ceiling.Seal.OpsPerSec)
			if res.ServerCPUPerRequest > 0 {
				r.cpuRatio = float64(ceiling.Seal.CPUPerOp) / float64(res.ServerCPUPerRequest)
			}
		}
	}
	return rows
}

// measure runs one load against the gateway into r: its result, the server's heap
// allocations per request and peak RSS, and whether it ran cleanly — with an envelope
// wanted, at least one must have opened. It is false when the run could not happen.
func measure(ctx context.Context, g *gatewayRun, cfg loadgen.Config, sc loadgen.Scenario, envelopeWanted bool, r *row) bool {
	opened := &atomic.Bool{}
	cfg.Inspect = inspector(g, envelopeWanted, sc.ResponseBody, opened)
	if err := loadgen.ResetPeakRSS(g.pid()); err != nil {
		fmt.Fprintf(os.Stderr, "quantaseal-bench: %v (peak RSS covers the gateway's whole life)\n", err)
	}
	m0, b0, memErr0 := g.memstats(ctx)
	pctx, cancelProfile := context.WithCancel(ctx)
	defer cancelProfile()
	profiled := g.profile(pctx, cfg, r.scenario+"-"+r.store)
	res, err := loadgen.Run(ctx, cfg, sc)
	if err != nil {
		cancelProfile() // a failed run has nothing to profile; do not wait out the window
	}
	if perr := <-profiled; perr != nil && err == nil {
		fmt.Fprintf(os.Stderr, "quantaseal-bench: gateway profile of %s/%s: %v\n", r.scenario, r.store, perr)
	}
	if err != nil {
		r.problem = err.Error()
		return false
	}
	r.ran, r.res = true, res
	m1, b1, memErr1 := g.memstats(ctx)
	if memErr0 == nil && memErr1 == nil && res.Requests > 0 {
		r.allocs, r.bytes = (m1-m0)/float64(res.Requests), (b1-b0)/float64(res.Requests)
	}
	if rss, err := loadgen.PeakRSS(g.pid()); err == nil {
		r.peakRSS = rss
	}
	r.check()
	if envelopeWanted && r.problem == "" && !opened.Load() {
		r.problem = "no envelope was opened: the response body was never buffered and sealed"
	}
	return true
}

const envelopeMediaType = "application/vnd.quantaseal.envelope+json"

// gatewayScenario builds scenario s on the seeded gateway's fixture, noting in r what
// the memory scenario's body is.
func (o *options) gatewayScenario(s string, f fixture, r *row) (loadgen.Scenario, error) {
	switch s {
	case scTransparent:
		return transparentScenario(s, f, "application/json"), nil
	case scTransparentEnvelope:
		return transparentScenario(s, f, envelopeMediaType), nil
	case scOutbound:
		return outboundScenario(f)
	case scEnvelopeMemory:
		body, events, err := memoryBody(o.memoryBodyBytes)
		if err != nil {
			return loadgen.Scenario{}, err
		}
		r.bodyBytes, r.bodyEvents, r.memoryStreams = len(body), events, o.memoryStreams
		return memoryScenario(f, body, events), nil
	}
	return loadgen.Scenario{}, fmt.Errorf("no gateway scenario %q", s)
}

// inspector checks the gateway's replies: with an envelope expected, the first
// response_body reply must carry an envelope that opens, with this tenant's keys, to
// upstream, the body Okta sent; without one, no body may be replaced.
func inspector(g *gatewayRun, envelopeWanted bool, upstream []byte, opened *atomic.Bool) func(loadgen.Phase, *extprocv3.ProcessingResponse) error {
	return func(ph loadgen.Phase, resp *extprocv3.ProcessingResponse) error {
		if ph != loadgen.PhaseResponseBody {
			return nil
		}
		if !envelopeWanted {
			return errors.New("response_body sent in a scenario without an envelope")
		}
		if opened.Load() {
			return nil
		}
		body := resp.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
		plain, _, err := envelope.Open(body, g.keys)
		if err != nil {
			return fmt.Errorf("open the envelope: %w", err)
		}
		if !bytes.Equal(plain, upstream) {
			return errors.New("the envelope does not hold the upstream body")
		}
		opened.Store(true)
		return nil
	}
}

// runNoop measures the baseline processor in a child process with the transparent
// scenario's messages.
func runNoop(ctx context.Context, o *options, store, dir string, usersPage func(string) ([]byte, error)) *row {
	r := newRow(scNoop, store)
	r.ratio, r.baseline = 1, "itself"
	sc, err := noopScenario(usersPage)
	if err == nil {
		r.res, r.peakRSS, err = runOnNoop(ctx, o, dir, o.loadConfig("", 0), sc)
	}
	if err != nil {
		r.problem = err.Error()
		return r
	}
	r.ran = true
	r.check()
	return r
}

// runNoopLoad runs the baseline's load once more, in a fresh child, for a second
// measurement of its rate.
func runNoopLoad(ctx context.Context, o *options, dir string, usersPage func(string) ([]byte, error)) (loadgen.Result, error) {
	sc, err := noopScenario(usersPage)
	if err != nil {
		return loadgen.Result{}, err
	}
	res, _, err := runOnNoop(ctx, o, dir, o.loadConfig("", 0), sc)
	if err == nil {
		err = allAnswered(res)
	}
	return res, err
}

// noopScenario is the transparent scenario's messages as the noop server gets them.
func noopScenario(usersPage func(string) ([]byte, error)) (loadgen.Scenario, error) {
	page, err := usersPage("http://127.0.0.1:10001")
	if err != nil {
		return loadgen.Scenario{}, err
	}
	f := fixture{origin: "http://127.0.0.1:10001", apiKey: "qs_live_bench", integrationID: "int_bench", usersPage: page}
	return transparentScenario(scNoop, f, "application/json"), nil
}

// runOnNoop starts the noop server in a fresh child, runs sc against it with load cfg
// (its target and server become the child) and stops it; peakRSS is -1 when unknown.
func runOnNoop(ctx context.Context, o *options, dir string, cfg loadgen.Config, sc loadgen.Scenario) (res loadgen.Result, peakRSS int64, err error) {
	peakRSS = -1
	c, err := startNoop(dir, o.serverCPUs)
	if err != nil {
		return res, peakRSS, err
	}
	defer func() {
		if err := c.stop(10 * time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "quantaseal-bench: noop server: %v\n", err)
		}
	}()
	cfg.Target, cfg.ServerPID = c.grpcAddr, c.pid()
	_ = loadgen.ResetPeakRSS(c.pid())
	if res, err = loadgen.Run(ctx, cfg, sc); err != nil {
		return res, peakRSS, err
	}
	if rss, err := loadgen.PeakRSS(c.pid()); err == nil {
		peakRSS = rss
	}
	return res, peakRSS, nil
}

// allAnswered is nil when res has requests and every one got all its replies and none
// was denied.
func allAnswered(res loadgen.Result) error {
	if res.OK == 0 || res.OK < res.Requests {
		return fmt.Errorf("%d of %d requests failed or were denied", res.Requests-res.OK, res.Requests)
	}
	return nil
}

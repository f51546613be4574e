// Command quantaseal-bench measures the gateway the way Envoy loads it (issue 8).
//
// It starts the real `quantaseal serve` as a child process for each store (embedded,
// then PostgreSQL in a fresh database), seeds a tenant, an api_key credential and an
// Okta integration through the HTTP API, and plays Envoy against its ext_proc port
// with internal/loadgen: one gRPC stream per request on two shared HTTP/2
// connections. Each scenario's throughput is compared with a baseline measured next
// to it on the same machine:
//
//	noop                  the CONTINUE-everything processor (internal/noopextproc), also
//	                      a child process, with the transparent scenario's messages
//	transparent           GET /api/v1/users?limit=25, header phases only       ÷ noop, target 0.5
//	transparent_half_rate the same at half transparent's rps, open loop:
//	                      2 ms ÷ processing time p99                           target 1.0
//	transparent_envelope  the same with Accept: application/vnd.quantaseal.envelope+json,
//	                      the 30 KiB page buffered and sealed                  ÷ ceiling, target 0.8
//	outbound              POST /api/v2/proxy/outbound list_users, both bodies
//	                      buffered, the page sealed                            ÷ ceiling, target 0.8
//	envelope_memory       GET /api/v1/logs with an envelope, answered with a
//	                      1 MiB System Log page, 1,000 streams at once, one
//	                      request each: peak RSS                               ÷ the bodies in flight, no target
//
// transparent_half_rate is issue 8's "p99 processing time < 2 ms at half of the
// maximum rate" (halfrate.go). It is not a scenario of its own: after each transparent
// run, the same requests run again for --half-rate-duration (default 5s, 0 skips it)
// as an open loop at half the rps transparent reached — requests start on an evenly
// spaced schedule whatever is in flight, --concurrency caps the streams in flight and a
// start that finds the cap reached is dropped and counted, latency runs from each
// request's scheduled start (loadgen Config.Rate). The processing time is the time the
// gateway takes to answer one ext_proc message; its figure is the larger of the
// request_headers and response_headers reply-time p99s. The row's ratio is the 2 ms
// budget divided by it, so that, as on every other line, ratio ≥ target (1.0) meets the
// target; its bench line's p99_ms is the processing time p99 itself. More than 1% of
// starts dropped (every stream was busy) makes the p99 unbounded and the ratio 0. A summary
// under the table gives the rate held, the drops, the slower phase, and the noop
// server's processing time p99 at the same rate, run right after: the floor this
// machine and load generator set for an absolute figure like 2 ms.
//
// envelope_memory is issue 8's "memory bounded under 1,000 concurrent streams with
// 1 MiB responses" (memory.go). The body is exactly Envoy's default buffer limit, the
// largest response Envoy hands over in one BUFFERED message; the envelope path is the
// worst case because the gateway holds and seals the whole body. Its ratio is the
// server's peak RSS over the bytes of the bodies that were in flight at once: 1.0 means
// the process is as large as one copy of every body; a gateway that bounds its memory
// stays below 1 and falls as --memory-streams grows. It waits for every reply (no
// Envoy message_timeout), so that no stream's memory escapes through a 504. It runs
// once, on the embedded store (the bodies never reach the audit store), after the other
// scenarios, since it leaves the gateway's RSS high. A summary under the table says how
// many bodies were in flight at once and what the peak RSS was.
//
// The ceiling is envelope.Seal of the same page run with the same concurrency in this
// process (loadgen.Ceiling). With two or more CPUs (and taskset) the server runs on
// one half of them and this process — load generator and ceiling — on the other, so the
// server does not compete with its load and the ceiling has as many cores as the
// server (--pin=false shares all CPUs instead). Besides throughput the table shows
// latency per phase, CPU per request of the server (/proc/PID/stat) and of the
// generator, the server's heap allocations per request (its /metrics Go collector)
// and its peak RSS (VmHWM, reset before each scenario). After a human-readable table
// it prints one line per scenario and store:
//
//	bench: scenario=<name> store=<embedded|postgres> rps=<n> p99_ms=<x> ratio=<r> target=<t>
//
// (target=- for the noop baseline and envelope_memory, which have no target; p99_ms
// is the end-to-end latency p99 except for transparent_half_rate, above.) The exit
// status is 1 when a scenario could not run, was denied, or failed more than 1% of
// its requests.
//
// Usage:
//
//	quantaseal-bench [--duration 10s] [--concurrency 64] [--scenarios noop,transparent,...]
//	                 [--half-rate-duration 5s]
//	                 [--stores embedded,postgres] [--gateway PATH] [--database-url URL]
//	                 [--memory-streams 1000] [--memory-requests N] [--memory-body-bytes 1048576]
//	quantaseal-bench noop-server [--addr 127.0.0.1:0]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/quantaseal/gateway/envoy"
	"github.com/quantaseal/gateway/internal/noopextproc"
)

type options struct {
	duration, warmup, ceilingDuration, messageTimeout time.Duration
	halfRateDuration                                  time.Duration // transparent_half_rate's open loop; 0: none
	budgetDuration                                    time.Duration // the noop at the transparent target's rate (budget.go); 0: none
	concurrency, conns                                int
	memoryStreams, memoryBodyBytes                    int
	memoryRequests                                    int64
	scenarios, stores                                 []string
	gateway, databaseURL, gatewayLogLevel, workDir    string
	cpuProfile                                        string
	gatewayProfile                                    string            // --gateway-profile: a directory for the gateway's CPU profiles
	gatewayEnv                                        map[string]string // --gateway-env: extra settings of the gateway child
	pin                                               bool
	serverCPUs                                        string // set when pinned
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "noop-server" {
		err = runNoopServer(ctx, os.Args[2:])
	} else {
		err = run(ctx, os.Args[1:], os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quantaseal-bench:", err)
		stop()
		os.Exit(1)
	}
}

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("quantaseal-bench", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured load per scenario")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each scenario")
	fs.DurationVar(&o.halfRateDuration, "half-rate-duration", 5*time.Second, "after transparent: an open loop at half its rps for this long, for the processing time p99 (0: skip)")
	fs.DurationVar(&o.budgetDuration, "budget-duration", 5*time.Second, "after transparent: the noop server as an open loop at the target's rate (0.5 × its own) for this long, for the CPU budget per call (0: skip)")
	fs.DurationVar(&o.ceilingDuration, "ceiling-duration", 3*time.Second, "each crypto-ceiling measurement (seal, seal+json, primitives)")
	fs.DurationVar(&o.messageTimeout, "message-timeout", 2*time.Second, "Envoy's ext_proc message_timeout (envoy/examples use 2s; max_message_timeout 10s)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "requests in flight (and ceiling goroutines)")
	fs.IntVar(&o.conns, "conns", 2, "HTTP/2 connections the streams share")
	fs.IntVar(&o.memoryStreams, "memory-streams", defaultMemoryStreams, "envelope_memory: streams in flight at once")
	fs.Int64Var(&o.memoryRequests, "memory-requests", 0, "envelope_memory: requests in all (default --memory-streams: one each)")
	fs.IntVar(&o.memoryBodyBytes, "memory-body-bytes", envoy.DefaultBufferLimit, "envelope_memory: the Okta response body size (Envoy's per_connection_buffer_limit_bytes)")
	scenarios := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios")
	stores := fs.String("stores", "embedded,postgres", "comma-separated stores")
	fs.StringVar(&o.gateway, "gateway", "", "quantaseal binary (default: go build ./cmd/quantaseal into the work directory)")
	fs.StringVar(&o.databaseURL, "database-url", os.Getenv("QUANTASEAL_TEST_DATABASE_URL"), "PostgreSQL server for store=postgres (a fresh database is created)")
	fs.StringVar(&o.gatewayLogLevel, "gateway-log-level", "info", "the gateway's log level (its log goes to a file in the work directory)")
	fs.BoolVar(&o.pin, "pin", true, "run the server on half of the CPUs and the load generator and ceiling on the other half (taskset)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write this process's CPU profile (the load generator and ceiling) to a file")
	fs.StringVar(&o.gatewayProfile, "gateway-profile", "", "write the gateway's CPU profile of each measured scenario to DIR/<scenario>-<store>.pprof (through its QUANTASEAL_DEBUG_ADDR)")
	o.gatewayEnv = map[string]string{}
	fs.Func("gateway-env", "KEY=VALUE added to the gateway's environment, e.g. QUANTASEAL_AUDIT_MAX_DELAY=0s (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", s)
		}
		o.gatewayEnv[k] = v
		return nil
	})
	fs.StringVar(&o.workDir, "workdir", "", "directory for binaries, data and logs (default: a temporary one, removed afterwards)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	for _, s := range strings.Split(*scenarios, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			errs = append(errs, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ", ")))
		}
		o.scenarios = append(o.scenarios, s)
	}
	for _, s := range strings.Split(*stores, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if s != "embedded" && s != "postgres" {
			errs = append(errs, fmt.Errorf("unknown store %q (embedded or postgres)", s))
		}
		o.stores = append(o.stores, s)
	}
	if o.duration <= 0 || o.concurrency <= 0 || o.conns <= 0 {
		errs = append(errs, errors.New("--duration, --concurrency and --conns must be positive"))
	}
	if o.halfRateDuration < 0 || o.budgetDuration < 0 {
		errs = append(errs, errors.New("--half-rate-duration and --budget-duration must not be negative (0 skips the run)"))
	}
	if o.memoryStreams <= 0 || o.memoryBodyBytes <= 0 || o.memoryRequests < 0 {
		errs = append(errs, errors.New("--memory-streams and --memory-body-bytes must be positive, --memory-requests not negative"))
	}
	return o, errors.Join(errs...)
}

func (o *options) want(s string) bool { return slices.Contains(o.scenarios, s) }

// cpuNote says where things ran.
func (o *options) cpuNote() string {
	if o.serverCPUs == "" {
		return fmt.Sprintf("%d CPUs shared by the server, the load generator and the ceiling", numCPU())
	}
	return fmt.Sprintf("server pinned to CPU %s; load generator and crypto ceiling on the other %d CPU(s)", o.serverCPUs, numCPU())
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	if o.pin {
		if o.serverCPUs, err = pinSelf(args); err != nil {
			return fmt.Errorf("pin: %w", err)
		}
	}
	dir := o.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "quantaseal-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		// A missing directory otherwise surfaces per scenario, as "open …/noop.log".
		return fmt.Errorf("--workdir: %w", err)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	needGateway := slices.ContainsFunc(gatewayScenarios, o.want)
	if needGateway && o.gateway == "" {
		o.gateway = filepath.Join(dir, "quantaseal")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.gateway, "./cmd/quantaseal")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/quantaseal (run from the module root, or pass --gateway): %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "quantaseal-bench: %s, concurrency %d on %d HTTP/2 connections, %s per scenario after %s warm-up\n",
		o.cpuNote(), o.concurrency, o.conns, o.duration, o.warmup)

	var rows []*row
	for _, store := range o.stores {
		if ctx.Err() != nil {
			break
		}
		rows = append(rows, runStore(ctx, o, store, dir)...)
	}
	printTable(stdout, o, rows)
	printBenchLines(stdout, rows)
	var bad []string
	for _, r := range rows {
		if r.invalid() {
			bad = append(bad, r.scenario+"/"+r.store)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("scenarios that did not run cleanly: %s", strings.Join(bad, ", "))
	}
	return nil
}

// runNoopServer is the noop-server subcommand: the baseline processor in its own
// process, so that it is measured like the gateway. It prints "listening ADDR".
func runNoopServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("noop-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	s := noopextproc.New()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		s.GracefulStop()
	}()
	err = s.Serve(ln)
	cancel()
	<-done
	return err
}

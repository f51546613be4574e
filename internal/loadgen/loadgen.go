package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Config says where and how hard to load.
type Config struct {
	// Target is the processor's gRPC address, host:port.
	Target string
	// Conns is the number of HTTP/2 connections the streams share (default 2: Envoy
	// keeps one per worker thread to its ext_proc cluster).
	Conns int
	// Concurrency is the number of requests in flight at once (default 64); with a
	// Rate, the most requests in flight at once.
	Concurrency int
	// Rate, when positive, makes the run open-loop (openloop.go): requests start on a
	// fixed schedule, Rate per second evenly spaced, whether or not earlier ones have
	// finished; a start that comes while Concurrency requests are in flight is not
	// made but counted in [Result.Dropped]. Zero is the closed loop: Concurrency
	// streams, each starting its next request when its previous one ends, which
	// measures throughput but not latency at a given load.
	Rate float64
	// Duration is how long to load after the warm-up (default 10s when Requests is 0).
	Duration time.Duration
	// Requests, when positive, ends the run after this many requests instead (with a
	// Rate: this many scheduled starts, dropped ones included). Without
	// a Duration there is no drain timeout either: bound a stuck processor with
	// MessageTimeout or ctx.
	Requests int64
	// Warmup is run before measuring; its requests are not counted.
	Warmup time.Duration
	// MessageTimeout is Envoy's ext_proc message_timeout: a reply later than this is
	// an error (Envoy answers 504). Zero disables the timer.
	MessageTimeout time.Duration
	// MaxMessageTimeout is Envoy's max_message_timeout: the largest
	// override_message_timeout honoured. Zero ignores every override (Envoy's
	// default); the real reply is still awaited.
	MaxMessageTimeout time.Duration
	// DrainTimeout bounds the wait for in-flight requests once the run is over
	// (default 10s); requests still open then are cancelled and counted as errors.
	DrainTimeout time.Duration
	// ServerPID, when non-zero, is the server's process id: its CPU time is read from
	// /proc/PID/stat.
	ServerPID int
	// DatabaseCPU, when set, returns the CPU time the database server behind the
	// processor has used so far (for example [ProcessFamilyCPU] of a local
	// PostgreSQL's postmaster): on a shared machine it is part of a request's cost.
	DatabaseCPU func() (time.Duration, error)
	// InProcess says the server runs in this process, so that heap allocations per
	// request (runtime.MemStats, which then include the generator's) are reported.
	InProcess bool
	// DialOptions are added to the gRPC dial (after insecure credentials).
	DialOptions []grpc.DialOption
	// Inspect, when set, sees every accepted reply (not ImmediateResponse) of the
	// measured requests, from many goroutines at once; an error fails that request
	// with kind [ErrKindInspect]. The driver uses it to open one envelope and prove
	// the work measured is real.
	Inspect func(Phase, *extprocv3.ProcessingResponse) error
}

func (c *Config) defaults() error {
	if c.Target == "" {
		return errors.New("loadgen: empty Target")
	}
	if c.Conns <= 0 {
		c.Conns = 2
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Duration <= 0 && c.Requests <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || (c.Rate > 0 && c.interval() <= 0) {
		return fmt.Errorf("loadgen: Rate %v: want 0 (closed loop) or a positive rate of at most 1e9 per second", c.Rate)
	}
	return nil
}

// interval is the time between two scheduled starts of an open-loop run.
func (c *Config) interval() time.Duration {
	return time.Duration(float64(time.Second) / c.Rate)
}

// Latency summarises a set of durations.
type Latency struct {
	Count                int
	Mean, P50, P99, P999 time.Duration
	Max                  time.Duration
}

func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{
		Count: len(ds),
		Mean:  sum / time.Duration(len(ds)),
		P50:   quantile(ds, 0.50),
		P99:   quantile(ds, 0.99),
		P999:  quantile(ds, 0.999),
		Max:   ds[len(ds)-1],
	}
}

// quantile is the nearest-rank quantile of sorted ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// Result is what one run measured. Rates and per-request figures count completed
// requests that were neither denied nor failed ([Result.OK]); latency covers those too.
type Result struct {
	Scenario string
	Elapsed  time.Duration
	// Requests is every request started and finished in the measured window.
	Requests int64
	// OK is the requests whose every message got its reply and that were not denied.
	OK int64
	// Denied counts ImmediateResponse replies by HTTP status.
	Denied map[int]int64
	// Errors counts failed requests by kind (ErrKind*, or "grpc_<Code>").
	Errors map[string]int64
	// ErrorSamples holds the first error of each kind.
	ErrorSamples map[string]string
	// RPS is OK requests per second.
	RPS float64
	// Latency is the time from opening the stream to the last reply, of OK requests.
	// In an open-loop run (Config.Rate) it runs from the request's scheduled start
	// instead, so that a start the generator made late still counts its wait.
	Latency Latency
	// TargetRate is Config.Rate; the other open-loop figures are zero without one.
	TargetRate float64
	// Scheduled is the starts the schedule called for in the measured window; Dropped
	// is those not made because Concurrency requests were in flight (Requests counts
	// the others). A drop is not latency: the request never reached the processor, so
	// the latency figures do not cover it — many drops make them too kind.
	Scheduled, Dropped int64
	// AchievedRate is the requests started per second of the schedule: TargetRate less
	// the drops, and less again when the generator could not keep to the schedule.
	AchievedRate float64
	// StartLag is how late requests started after their scheduled time (timer
	// granularity, about 1 ms on Linux, and the generator's own load); it is part of
	// Latency but not of Phases.
	StartLag Latency
	// Phases is the reply time of each message, of OK requests that sent it.
	Phases map[Phase]Latency
	// TimeoutOverrides counts override_message_timeout replies; ModeOverrides counts
	// requests whose processing mode a mode_override changed.
	TimeoutOverrides, ModeOverrides int64
	// PeakBodiesInFlight is the most request_body and response_body messages that were
	// sent (or being sent) and not yet answered at one moment of the measured window:
	// an upper bound of the buffered bodies the processor held at once. Only a bound: a
	// reply the processor has written (and its body let go of) counts until this side
	// has read it, which under load can be much later.
	PeakBodiesInFlight int64
	// SelfCPU is the CPU time (user+system) of this process in the window;
	// ServerCPU that of the server process, or -1 when ServerPID was 0; DatabaseCPU
	// that of the database server, or -1 without Config.DatabaseCPU (or when it failed).
	SelfCPU, ServerCPU, DatabaseCPU time.Duration
	// SelfCPUPerRequest, ServerCPUPerRequest and DatabaseCPUPerRequest divide them by
	// all requests (DatabaseCPUPerRequest is -1 when unknown).
	SelfCPUPerRequest, ServerCPUPerRequest, DatabaseCPUPerRequest time.Duration
	// AllocsPerRequest and AllocBytesPerRequest are heap allocations of this whole
	// process (runtime.MemStats) per request; -1 unless Config.InProcess.
	AllocsPerRequest, AllocBytesPerRequest float64
}

// Failed is the number of requests that ended in an error.
func (r *Result) Failed() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// DeniedTotal is the number of requests answered with an ImmediateResponse.
func (r *Result) DeniedTotal() int64 {
	var n int64
	for _, c := range r.Denied {
		n += c
	}
	return n
}

type runner struct {
	cfg    Config
	p      *prepared
	ctx    context.Context // cancelled when the drain timeout ends the run
	cancel context.CancelFunc
	conns  []*grpc.ClientConn
	next   atomic.Uint64
	ids    atomic.Uint64
	idPfx  string
	bodies gauge // body messages awaiting their reply
}

// gauge counts things in flight and remembers the most there were at once.
type gauge struct{ now, peak atomic.Int64 }

func (g *gauge) inc() {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (g *gauge) dec() { g.now.Add(-1) }

// requestID returns a unique x-request-id, like the UUID the connection manager adds.
func (r *runner) requestID() string {
	return fmt.Sprintf("%s-%012x", r.idPfx, r.ids.Add(1))
}

// Run loads the processor at cfg.Target with sc until cfg.Duration has passed or
// cfg.Requests have been made, after cfg.Warmup. It returns an error when the run
// cannot happen (bad config or scenario) or ctx ends it — then with the partial
// Result; what goes wrong with single requests is counted in the Result. A processor
// that cannot be reached shows as failed requests, not as an error.
func Run(ctx context.Context, cfg Config, sc Scenario) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	p, err := prepare(&sc)
	if err != nil {
		return Result{}, err
	}
	hard, cancel := context.WithCancel(ctx)
	defer cancel()
	var pfx [8]byte
	_, _ = rand.Read(pfx[:])
	r := &runner{cfg: cfg, p: p, ctx: hard, cancel: cancel, idPfx: hex.EncodeToString(pfx[:])}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
	}, cfg.DialOptions...)
	for range cfg.Conns {
		// passthrough: one address, so one subchannel and one HTTP/2 connection per
		// ClientConn, shared by all the streams sent on it.
		c, err := grpc.NewClient("passthrough:///"+cfg.Target, opts...)
		if err != nil {
			r.close()
			return Result{}, fmt.Errorf("loadgen: dial %s: %w", cfg.Target, err)
		}
		c.Connect()
		r.conns = append(r.conns, c)
	}
	defer r.close()

	if cfg.Warmup > 0 {
		r.phase(ctx, cfg.Warmup, 0, false)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	// The warm-up's requests have all ended: only the measured window's peak counts.
	r.bodies.peak.Store(0)
	before := snapshot(cfg)
	start := time.Now()
	st := r.phase(ctx, cfg.Duration, cfg.Requests, true)
	elapsed := time.Since(start)
	after := snapshot(cfg)
	// A run cut short by ctx still reports what it measured.
	res := st.result(sc.Name, elapsed, before, after, cfg)
	res.PeakBodiesInFlight = r.bodies.peak.Load()
	return res, ctx.Err()
}

// maxMessageBytes matches the gateway's gRPC limit (a buffered body is one message).
const maxMessageBytes = 16 << 20

func (r *runner) close() {
	for _, c := range r.conns {
		_ = c.Close()
	}
}

// stats is what a phase of the run recorded.
type stats struct {
	mu        sync.Mutex
	requests  int64
	ok        int64
	denied    map[int]int64
	errors    map[string]int64
	samples   map[string]string
	latency   []time.Duration
	phases    [numPhases][]time.Duration
	overrides int64
	modeOvr   int64
	// open loop only
	scheduled, dropped int64
	lags               []time.Duration
	schedule           time.Duration // how long the schedule ran (AchievedRate's divisor)
}

func (s *stats) merge(o *stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests += o.requests
	s.ok += o.ok
	s.overrides += o.overrides
	s.modeOvr += o.modeOvr
	for k, v := range o.denied {
		s.denied[k] += v
	}
	for k, v := range o.errors {
		s.errors[k] += v
	}
	for k, v := range o.samples {
		if _, ok := s.samples[k]; !ok {
			s.samples[k] = v
		}
	}
	s.latency = append(s.latency, o.latency...)
	for i := range s.phases {
		s.phases[i] = append(s.phases[i], o.phases[i]...)
	}
}

func newStats() *stats {
	return &stats{denied: map[int]int64{}, errors: map[string]int64{}, samples: map[string]string{}}
}

func (s *stats) add(o outcome) {
	s.requests++
	if o.lag >= 0 {
		s.lags = append(s.lags, o.lag)
	}
	s.overrides += int64(o.overrides)
	if o.modeOverride {
		s.modeOvr++
	}
	switch {
	case o.errKind != "":
		s.errors[o.errKind]++
		if _, ok := s.samples[o.errKind]; !ok && o.err != nil {
			s.samples[o.errKind] = o.err.Error()
		}
	case o.denied:
		s.denied[o.denyStatus]++
	default:
		s.ok++
		s.latency = append(s.latency, o.total)
		for i, d := range o.phases {
			if d > 0 {
				s.phases[i] = append(s.phases[i], d)
			}
		}
	}
}

// phase runs Concurrency workers until d has passed or n requests were started
// (whichever is set), waits for the requests in flight (at most DrainTimeout, then
// cancels them), and returns what was recorded. With a Rate it is [runner.openPhase].
func (r *runner) phase(ctx context.Context, d time.Duration, n int64, record bool) *stats {
	if r.cfg.Rate > 0 {
		return r.openPhase(ctx, d, n, record)
	}
	total := newStats()
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			local := newStats()
			for ctx.Err() == nil {
				if n > 0 && claimed.Add(1) > n {
					break
				}
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					break
				}
				o := r.one(r.ctx, record, time.Time{})
				if record {
					local.add(o)
				}
			}
			total.merge(local)
		})
	}
	r.drain(&wg, deadline)
	return total
}

// drain waits for the requests in flight: without end, until they are over; with
// one, at most until DrainTimeout after it, then it cancels them.
func (r *runner) drain(wg *sync.WaitGroup, end time.Time) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var drain <-chan time.Time
	if !end.IsZero() {
		t := time.NewTimer(time.Until(end) + r.cfg.DrainTimeout)
		defer t.Stop()
		drain = t.C
	}
	select {
	case <-done:
	case <-drain:
		// Requests stuck past the drain timeout: end them, and the run with them.
		r.cancel()
		<-done
	}
}

// resources is a point-in-time reading of the counters a run reports.
type resources struct {
	self, server, database time.Duration
	serverOK, databaseOK   bool
	mallocs, bytes         uint64
}

func snapshot(cfg Config) resources {
	var res resources
	res.self = SelfCPU()
	if cfg.ServerPID != 0 {
		if c, err := ProcessCPU(cfg.ServerPID); err == nil {
			res.server, res.serverOK = c, true
		}
	}
	if cfg.DatabaseCPU != nil {
		if c, err := cfg.DatabaseCPU(); err == nil {
			res.database, res.databaseOK = c, true
		}
	}
	if cfg.InProcess {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		res.mallocs, res.bytes = ms.Mallocs, ms.TotalAlloc
	}
	return res
}

func (s *stats) result(name string, elapsed time.Duration, before, after resources, cfg Config) Result {
	res := Result{
		Scenario:     name,
		Elapsed:      elapsed,
		Requests:     s.requests,
		OK:           s.ok,
		Denied:       s.denied,
		Errors:       s.errors,
		ErrorSamples: s.samples,
		Latency:      summarise(s.latency),
		Phases:       map[Phase]Latency{},

		TimeoutOverrides: s.overrides,
		ModeOverrides:    s.modeOvr,
		SelfCPU:          after.self - before.self,
		ServerCPU:        -1,
		DatabaseCPU:      -1, DatabaseCPUPerRequest: -1,
		AllocsPerRequest: -1, AllocBytesPerRequest: -1,
	}
	if elapsed > 0 {
		res.RPS = float64(s.ok) / elapsed.Seconds()
	}
	if cfg.Rate > 0 {
		res.TargetRate, res.Scheduled, res.Dropped = cfg.Rate, s.scheduled, s.dropped
		res.StartLag = summarise(s.lags)
		if s.schedule > 0 {
			res.AchievedRate = float64(s.scheduled-s.dropped) / s.schedule.Seconds()
		}
	}
	for _, ph := range AllPhases() {
		if len(s.phases[ph]) > 0 {
			res.Phases[ph] = summarise(s.phases[ph])
		}
	}
	if before.serverOK && after.serverOK {
		res.ServerCPU = after.server - before.server
	}
	if before.databaseOK && after.databaseOK {
		res.DatabaseCPU = after.database - before.database
	}
	if s.requests > 0 {
		res.SelfCPUPerRequest = res.SelfCPU / time.Duration(s.requests)
		if res.ServerCPU >= 0 {
			res.ServerCPUPerRequest = res.ServerCPU / time.Duration(s.requests)
		}
		if res.DatabaseCPU >= 0 {
			res.DatabaseCPUPerRequest = res.DatabaseCPU / time.Duration(s.requests)
		}
		if cfg.InProcess {
			res.AllocsPerRequest = float64(after.mallocs-before.mallocs) / float64(s.requests)
			res.AllocBytesPerRequest = float64(after.bytes-before.bytes) / float64(s.requests)
		}
	}
	return res
}

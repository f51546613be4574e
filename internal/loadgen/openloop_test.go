package loadgen_test

import (
	"math"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/quantaseal/gateway/internal/loadgen"
	"github.com/quantaseal/gateway/internal/noopextproc"
)

// TestOpenLoopRate: against the real noop server, an open-loop run starts requests
// at the rate asked for, drops none (the server is far from its limit) and answers
// them all; the rate is not the closed loop's, which would be many times higher.
func TestOpenLoopRate(t *testing.T) {
	addr, stop, err := noopextproc.ServeLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// A cap far above rate × latency: the test machine is shared, and a stall of the
	// cap ÷ rate (over a second) would be needed to drop a start.
	const rate, streams = 200.0, 256
	const window = time.Second
	res, err := loadgen.Run(t.Context(), loadgen.Config{
		Target: addr, Rate: rate, Duration: window, Warmup: 100 * time.Millisecond,
		Concurrency: streams, Conns: 1, MessageTimeout: 2 * time.Second,
	}, withOverride(getUsers, true))
	if err != nil {
		t.Fatal(err)
	}
	// Slots at 0, 5 ms, … up to but not including 1 s.
	if want := int64(rate * window.Seconds()); res.Scheduled != want {
		t.Errorf("scheduled %d starts in %v at %v/s, want %d", res.Scheduled, window, rate, want)
	}
	if res.Dropped != 0 || res.Requests != res.Scheduled || res.OK != res.Requests {
		t.Fatalf("scheduled %d, dropped %d, requests %d, ok %d, errors %v", res.Scheduled, res.Dropped, res.Requests, res.OK, res.ErrorSamples)
	}
	if res.TargetRate != rate || !within(res.AchievedRate, rate, 0.03) || !within(res.RPS, rate, 0.05) {
		t.Errorf("target %v/s, achieved %.1f/s, ok %.1f/s; want all within a few %% of %v", res.TargetRate, res.AchievedRate, res.RPS, rate)
	}
	if res.StartLag.Count != int(res.Requests) || res.StartLag.P50 > 20*time.Millisecond {
		t.Errorf("start lag %+v over %d requests: want one per request, median well under a slot interval's worth of ms", res.StartLag, res.Requests)
	}
	if l := res.Latency; l.Count != int(res.OK) || !(l.P50 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency %+v", l)
	}
}

func within(got, want, frac float64) bool { return math.Abs(got-want) <= frac*want }

// TestOpenLoopDrops: a processor slower than the schedule fills the Concurrency cap;
// the starts that find it full are counted as dropped, not queued behind it (their
// lag would then grow to the processor's delay), and the latency of the requests
// made is at least the processor's delay.
func TestOpenLoopDrops(t *testing.T) {
	const delay = 200 * time.Millisecond
	_, addr := start(t, func(n int, req *extprocv3.ProcessingRequest) step {
		st := noop(n, req)
		if n == 0 {
			st.delay = delay
		}
		return st
	})
	const rate, streams = 100.0, 2
	const window = time.Second
	res, err := loadgen.Run(t.Context(), loadgen.Config{Target: addr, Rate: rate, Duration: window, Concurrency: streams}, getUsers)
	if err != nil {
		t.Fatal(err)
	}
	// Each stream makes at most one request per delay: 2 × (1 s / 200 ms + 1).
	const most = streams * (int64(window/delay) + 1)
	if res.Scheduled != int64(rate*window.Seconds()) || res.Requests+res.Dropped != res.Scheduled || res.Requests > most || res.Requests < streams {
		t.Errorf("scheduled %d, requests %d, dropped %d; want %d scheduled, %d..%d made, the rest dropped",
			res.Scheduled, res.Requests, res.Dropped, int64(rate*window.Seconds()), streams, most)
	}
	if res.OK != res.Requests || res.Latency.P50 < delay {
		t.Errorf("ok %d of %d, latency %+v; want all ok, at least %v", res.OK, res.Requests, res.Latency, delay)
	}
	if res.StartLag.Max >= delay/2 {
		t.Errorf("start lag up to %v: a start waited for a free stream instead of being dropped", res.StartLag.Max)
	}
	if want := float64(res.Requests) / window.Seconds(); !within(res.AchievedRate, want, 0.1) {
		t.Errorf("achieved %.1f/s, want about the %.1f/s made", res.AchievedRate, want)
	}
}

// TestOpenLoopRequests: with Requests, the schedule ends after that many starts, and a
// closed-loop run reports no open-loop figures.
func TestOpenLoopRequests(t *testing.T) {
	_, addr := start(t, noop)
	res, err := loadgen.Run(t.Context(), loadgen.Config{Target: addr, Rate: 1000, Requests: 7, Concurrency: 4}, getUsers)
	if err != nil {
		t.Fatal(err)
	}
	if res.Scheduled != 7 || res.Requests+res.Dropped != 7 || res.OK != res.Requests {
		t.Errorf("scheduled %d, requests %d, dropped %d, ok %d; want 7 scheduled, all made or dropped, all ok", res.Scheduled, res.Requests, res.Dropped, res.OK)
	}
	res, err = loadgen.Run(t.Context(), loadgen.Config{Target: addr, Requests: 3, Concurrency: 1}, getUsers)
	if err != nil {
		t.Fatal(err)
	}
	if res.TargetRate != 0 || res.Scheduled != 0 || res.AchievedRate != 0 || res.StartLag.Count != 0 || res.OK != 3 {
		t.Errorf("closed loop: %+v", res)
	}
}

func TestOpenLoopBadRate(t *testing.T) {
	for _, rate := range []float64{-1, math.NaN(), 1e12} {
		if _, err := loadgen.Run(t.Context(), loadgen.Config{Target: "127.0.0.1:1", Rate: rate}, getUsers); err == nil {
			t.Errorf("Rate %v: nil error", rate)
		}
	}
}

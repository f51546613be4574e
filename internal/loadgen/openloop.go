package loadgen

import (
	"context"
	"sync"
	"time"
)

// The open loop (Config.Rate) measures latency at a given load, which the closed loop
// cannot: there each of Concurrency streams starts its next request only when the
// previous one ends, so when the processor stalls the generator stalls with it and
// sends nothing for as long; the stall then shows in a handful of samples instead of
// every request that would have arrived meanwhile ("coordinated omission"). Here
// requests start when the schedule says, whatever is still in flight, and each one's
// latency runs from its scheduled start, not from the moment the generator got round
// to it.
//
// The schedule is evenly spaced, one start every 1/Rate, as wrk2 and Gil Tene's
// HdrHistogram tools do: a Poisson schedule would model independent clients more
// closely, but its random bursts queue requests even at a processor with no slack to
// lose, so its p99 would mix the schedule's randomness with the processor's, and two
// runs would differ by more than the processor did.
//
// Concurrency still bounds the requests in flight — Envoy has a bounded number of
// streams too, and an unbounded generator would run out of memory against a stuck
// processor. A start that comes while the bound is reached is dropped and counted
// ([Result.Dropped]), never held back until a stream frees up: holding it would
// hide exactly the wait the open loop is there to measure.
//
// Go's timers wake a sleeping process about 1 ms late on Linux (the network poller
// sleeps in whole milliseconds), so at a few thousand requests per second the starts
// go out in small batches, each request still timed from its own slot; the lag is
// reported as [Result.StartLag]. The per-message reply times ([Result.Phases]) run
// from each message's send and do not include it.

// openPhase starts a request every 1/Rate from now until d has passed or n starts
// were scheduled (whichever is set), at most Concurrency at once, waits for the
// requests in flight like the closed loop, and returns what was recorded.
func (r *runner) openPhase(ctx context.Context, d time.Duration, n int64, record bool) *stats {
	total := newStats()
	interval := r.cfg.interval()
	begin := time.Now()
	var end time.Time
	if d > 0 {
		end = begin.Add(d)
	}
	slots := make(chan struct{}, r.cfg.Concurrency) // one token per request in flight
	var mu sync.Mutex                               // guards total while requests run
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var scheduled, dropped int64
	lastStart := begin
	for ctx.Err() == nil {
		at := begin.Add(time.Duration(scheduled) * interval)
		if (n > 0 && scheduled >= n) || (!end.IsZero() && !at.Before(end)) {
			break
		}
		if !sleepUntil(ctx, timer, at) {
			break
		}
		scheduled++
		select {
		case slots <- struct{}{}:
		default:
			dropped++
			continue
		}
		lastStart = time.Now()
		wg.Go(func() {
			defer func() { <-slots }()
			o := r.one(r.ctx, record, at)
			if record {
				mu.Lock()
				total.add(o)
				mu.Unlock()
			}
		})
	}
	// The schedule ran for its nominal length, or longer when the generator fell behind
	// and made its last starts late.
	span := max(time.Duration(scheduled)*interval, lastStart.Sub(begin))
	r.drain(&wg, end)
	total.scheduled, total.dropped, total.schedule = scheduled, dropped, span
	return total
}

// sleepUntil waits for t (at once when it has passed: a late generator catches up,
// each request keeping its own slot); it is false when ctx ended first.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return true
	}
	timer.Reset(wait)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

package audittest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/secret"
)

func secretSeed() secret.Secret { return secret.FromBytes(Seed()) }

// BenchmarkAppend measures Log.Append on store with 1, 64 and 1,024 concurrent
// appenders and reports events/s and the p50/p99 commit latency seen by a caller.
// newStore returns a fresh store for each sub-benchmark.
func BenchmarkAppend(b *testing.B, newStore func(b *testing.B) audit.Store) {
	for _, n := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			store := newStore(b)
			l := NewLog(b, store, audit.Config{})
			RunAppenders(b, n, 4, []*audit.Log{l})
		})
	}
}

// RunAppenders drives b.N appends through n goroutines spread over logs, for events of
// the given number of tenants, and reports events/s, p50_ms and p99_ms.
func RunAppenders(b *testing.B, n, tenants int, logs []*audit.Log) {
	ctx := context.Background()
	work := make(chan struct{})
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			var mine []time.Duration
			for range work {
				t0 := time.Now()
				if _, err := logs[g%len(logs)].Append(ctx, Sample(fmt.Sprintf("ten_%d", g%tenants), g)); err != nil {
					b.Error(err)
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	start := time.Now()
	for b.Loop() {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

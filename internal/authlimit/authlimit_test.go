package authlimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLimiter(t *testing.T) {
	type step struct {
		advance  time.Duration
		failures int
		source   string
		wantOK   bool
		wantWait time.Duration
	}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "burst then refused then one refill",
			cfg:  Config{Burst: 3, Refill: 10 * time.Second},
			steps: []step{
				{source: "a", wantOK: true},
				{failures: 2, source: "a", wantOK: true},
				{failures: 1, source: "a", wantOK: false, wantWait: 10 * time.Second},
				{advance: 4 * time.Second, source: "a", wantOK: false, wantWait: 6 * time.Second},
				{advance: 6 * time.Second, source: "a", wantOK: true},
				{failures: 1, source: "a", wantOK: false, wantWait: 10 * time.Second},
			},
		},
		{
			name: "sources are independent",
			cfg:  Config{Burst: 1, Refill: time.Minute},
			steps: []step{
				{failures: 1, source: "a", wantOK: false, wantWait: time.Minute},
				{source: "b", wantOK: true},
			},
		},
		{
			name: "failures beyond empty do not go negative",
			cfg:  Config{Burst: 2, Refill: time.Second},
			steps: []step{
				{failures: 50, source: "a", wantOK: false, wantWait: time.Second},
				{advance: time.Second, source: "a", wantOK: true},
			},
		},
		{
			name: "wait is at least one second",
			cfg:  Config{Burst: 1, Refill: 100 * time.Millisecond},
			steps: []step{
				{failures: 1, source: "a", wantOK: false, wantWait: time.Second},
			},
		},
		{
			name: "defaults: ten failures then a six second wait",
			steps: []step{
				{failures: 9, source: "a", wantOK: true},
				{failures: 1, source: "a", wantOK: false, wantWait: 6 * time.Second},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1_700_000_000, 0)}
			cfg := tt.cfg
			cfg.Now = c.now
			l := New(cfg)
			for i, s := range tt.steps {
				c.advance(s.advance)
				for range s.failures {
					l.Failure(s.source)
				}
				ok, wait := l.Allow(s.source)
				if ok != s.wantOK || wait != s.wantWait {
					t.Fatalf("step %d: Allow(%q) = %v, %v; want %v, %v", i, s.source, ok, wait, s.wantOK, s.wantWait)
				}
			}
		})
	}
}

func TestLimiterForgetsFullBuckets(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := New(Config{Burst: 2, Refill: time.Second, Now: c.now})
	l.Failure("a")
	if l.Len() != 1 {
		t.Fatalf("Len = %d, want 1", l.Len())
	}
	c.advance(time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refilled source refused")
	}
	if l.Len() != 0 {
		t.Fatalf("Len after refill = %d, want 0 (a full bucket is forgotten)", l.Len())
	}
}

func TestLimiterMemoryBound(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := New(Config{Burst: 1, Refill: time.Hour, MaxSources: 100, Now: c.now})
	for i := range 10_000 {
		l.Failure(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		if l.Len() > 100 {
			t.Fatalf("Len = %d after %d sources, want ≤ 100", l.Len(), i+1)
		}
	}
	// The most recent sources are still limited; the oldest were evicted (forgiven).
	if ok, _ := l.Allow("10.0.39.15"); ok { // i = 9999
		t.Error("most recent source allowed")
	}
	if ok, _ := l.Allow("10.0.0.0"); !ok {
		t.Error("evicted source still refused")
	}
}

func TestLimiterLRUKeepsActiveSources(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := New(Config{Burst: 1, Refill: time.Hour, MaxSources: 2, Now: c.now})
	l.Failure("a")
	l.Failure("b")
	l.Allow("a") // touches a: b is now the least recently used
	l.Failure("c")
	if ok, _ := l.Allow("a"); ok {
		t.Error("a was evicted although it was used more recently than b")
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("b, the least recently used, was not evicted")
	}
}

func TestNilLimiter(t *testing.T) {
	var l *Limiter
	l.Failure("a")
	if ok, wait := l.Allow("a"); !ok || wait != 0 || l.Len() != 0 {
		t.Errorf("nil limiter: Allow = %v, %v, Len = %d", ok, wait, l.Len())
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := New(Config{Burst: 1000, Refill: time.Hour, MaxSources: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				src := fmt.Sprintf("192.0.2.%d", (g*500+i)%80)
				l.Failure(src)
				l.Allow(src)
			}
		})
	}
	wg.Wait()
	if l.Len() > 50 {
		t.Errorf("Len = %d, want ≤ 50", l.Len())
	}
}

func TestSourceFromAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.1:5555", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{" 198.51.100.9 ", "198.51.100.9"},
		{"Unix-Socket", "unix-socket"},
		{"", ""},
		{string(make([]byte, 100)), string(make([]byte, 64))},
	}
	for _, tt := range tests {
		if got := SourceFromAddr(tt.in); got != tt.want {
			t.Errorf("SourceFromAddr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func BenchmarkLimiter(b *testing.B) {
	l := New(Config{})
	i := 0
	for b.Loop() {
		src := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		l.Failure(src)
		l.Allow(src)
		i++
	}
}

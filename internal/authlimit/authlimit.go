package authlimit

import (
	"container/list"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Config configures a [Limiter]. The zero value takes the defaults named below.
type Config struct {
	// Burst is how many failures a source may make in a row. Default 10.
	Burst int
	// Refill is how often one failure token comes back. Default 6s (10 a minute).
	Refill time.Duration
	// MaxSources caps the sources tracked at once (least recently used evicted first).
	// Default 10,000.
	MaxSources int
	// Now is the clock. nil: time.Now.
	Now func() time.Time
}

// Defaults of [Config].
const (
	DefaultBurst      = 10
	DefaultRefill     = 6 * time.Second
	DefaultMaxSources = 10_000
)

// Limiter is a per-source limiter of failed authentication attempts. It is safe for
// concurrent use. A nil *Limiter allows everything.
type Limiter struct {
	burst      float64
	refill     time.Duration
	maxSources int
	now        func() time.Time

	mu    sync.Mutex
	items map[string]*list.Element // source → element of lru holding *bucket
	lru   *list.List               // front: most recently used
}

type bucket struct {
	source string
	tokens float64   // failure tokens left at time at
	at     time.Time // when tokens was computed
}

// New returns a limiter with cfg's settings (defaults for zero fields).
func New(cfg Config) *Limiter {
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Refill <= 0 {
		cfg.Refill = DefaultRefill
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{
		burst: float64(cfg.Burst), refill: cfg.Refill, maxSources: cfg.MaxSources, now: cfg.Now,
		items: make(map[string]*list.Element), lru: list.New(),
	}
}

// refilled returns b's tokens at now, capped at the burst.
func (l *Limiter) refilled(b *bucket, now time.Time) float64 {
	elapsed := now.Sub(b.at)
	if elapsed <= 0 {
		return b.tokens
	}
	return math.Min(l.burst, b.tokens+float64(elapsed)/float64(l.refill))
}

// Allow reports whether source may attempt to authenticate now. When it may not, wait
// is how long until it may (for a Retry-After header).
func (l *Limiter) Allow(source string) (ok bool, wait time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, found := l.items[source]
	if !found {
		return true, 0
	}
	b := e.Value.(*bucket)
	tokens := l.refilled(b, now)
	if tokens >= l.burst {
		// Fully refilled: forget it.
		l.lru.Remove(e)
		delete(l.items, source)
		return true, 0
	}
	l.lru.MoveToFront(e)
	if tokens >= 1 {
		return true, 0
	}
	wait = time.Duration((1 - tokens) * float64(l.refill))
	if wait < time.Second {
		// Retry-After has one-second resolution; never tell a caller to retry now.
		wait = time.Second
	}
	return false, wait.Round(time.Second)
}

// Failure records a failed authentication attempt by source.
func (l *Limiter) Failure(source string) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, found := l.items[source]; found {
		b := e.Value.(*bucket)
		b.tokens = math.Max(0, l.refilled(b, now)-1)
		b.at = now
		l.lru.MoveToFront(e)
		return
	}
	for l.lru.Len() >= l.maxSources {
		oldest := l.lru.Back()
		l.lru.Remove(oldest)
		delete(l.items, oldest.Value.(*bucket).source)
	}
	l.items[source] = l.lru.PushFront(&bucket{source: source, tokens: l.burst - 1, at: now})
}

// Len returns how many sources are tracked (at most Config.MaxSources).
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// SourceFromAddr returns the source key of addr: "host:port", "[v6]:port" or a bare
// IP. IPv4 (and IPv4-mapped IPv6) addresses are keyed whole; other IPv6 addresses by
// their /64 prefix. Anything that is not an IP address is returned as is, lower-cased
// and cut to 64 bytes, so that a strange value still limits itself without growing
// the key space unboundedly per request.
func SourceFromAddr(addr string) string {
	addr = strings.TrimSpace(addr)
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return sourceOf(ap.Addr())
	}
	if a, err := netip.ParseAddr(strings.Trim(addr, "[]")); err == nil {
		return sourceOf(a)
	}
	s := strings.ToLower(addr)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

func sourceOf(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

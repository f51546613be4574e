package okta

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	cache    *prometheus.CounterVec
	requests *prometheus.CounterVec
	// cacheHit, cacheMiss and cacheNegative are cache's children, resolved once:
	// Authorize counts one of them on every call that reaches the cache.
	cacheHit, cacheMiss, cacheNegative prometheus.Counter
}

// Label values are bounded: result ∈ {hit, miss, negative} for the cache, and "ok",
// an [Error] code or "error" for token fetches. No integration or tenant id is a label.
func newMetrics() *metrics {
	m := &metrics{
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quantaseal_okta_token_cache_lookups_total",
			Help: "Authorize calls served from the token cache (hit), answered with a remembered token-fetch failure without a request (negative), or waiting for a token request (miss).",
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quantaseal_okta_token_fetches_total",
			Help: "Token fetches (one per shared request, including the DPoP round trips and retries inside it), by result.",
		}, []string{"result"}),
	}
	m.cacheHit, m.cacheMiss, m.cacheNegative = m.cache.WithLabelValues("hit"), m.cache.WithLabelValues("miss"), m.cache.WithLabelValues("negative")
	return m
}

// Describe implements [prometheus.Collector], so that the caller registers the source's
// metrics on its own registry: reg.Register(ts).
func (ts *TokenSource) Describe(ch chan<- *prometheus.Desc) {
	ts.metrics.cache.Describe(ch)
	ts.metrics.requests.Describe(ch)
}

// Collect implements [prometheus.Collector].
func (ts *TokenSource) Collect(ch chan<- prometheus.Metric) {
	ts.metrics.cache.Collect(ch)
	ts.metrics.requests.Collect(ch)
}

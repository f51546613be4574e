package extproc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	phase    *prometheus.HistogramVec
	streams  prometheus.Gauge
	// phases holds phase's children, resolved once (the map is read-only after
	// newMetrics), so observing a phase takes no label hashing or vector lock.
	phases map[string]prometheus.Observer
}

// Label values are bounded: api ∈ {ext_proc, ext_authz}; mode ∈ {transparent,
// outbound, ""}; operation is a catalogue name or ""; decision ∈ {allow, deny};
// code is a status.go code or an audit reason; phase is a constant below.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quantaseal_extproc_requests_total",
			Help: "Calls processed, by API, mode, catalogue operation, decision and machine code.",
		}, []string{"api", "mode", "operation", "decision", "code"}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quantaseal_extproc_phase_duration_seconds",
			Help: "Latency of each processing phase.",
			// From 1 ms (cached token, API-key lookup) to 10 s (token fetch with DPoP
			// retries, the override_message_timeout ceiling).
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"phase"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quantaseal_extproc_active_streams",
			Help: "ext_proc streams currently open.",
		}),
	}
	m.phases = make(map[string]prometheus.Observer, len(allPhases))
	for _, p := range allPhases {
		m.phases[p] = m.phase.WithLabelValues(p)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.phase, m.streams} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Phases.
const (
	phaseAuthenticate = "authenticate"
	phaseResolve      = "resolve"
	phaseToken        = "token"
	phaseAudit        = "audit"
	phaseSeal         = "seal"
)

var allPhases = []string{phaseAuthenticate, phaseResolve, phaseToken, phaseAudit, phaseSeal}

func (m *metrics) observe(phase string, start time.Time) {
	o, ok := m.phases[phase]
	if !ok {
		o = m.phase.WithLabelValues(phase)
	}
	o.Observe(time.Since(start).Seconds())
}

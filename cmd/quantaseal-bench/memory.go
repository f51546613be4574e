package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/quantaseal/gateway/envoy"
	"github.com/quantaseal/gateway/internal/loadgen"
)

// The envelope_memory scenario answers issue 8's "memory: bounded under 1,000
// concurrent streams with 1 MiB responses". It is the envelope path, the worst case for
// memory: the gateway asks Envoy for the BUFFERED response body (a transparent call
// without envelope never sees it), holds it, seals it and replies with an envelope
// larger than the body.
//
// The body is exactly Envoy's default per_connection_buffer_limit_bytes, 1 MiB, which
// every example config in envoy/examples sets too (envoy-extproc.md §3 "Buffer limit"):
// Envoy's WatermarkBuffer trips only when a buffer holds more than its limit, so a
// body of exactly the limit is the largest response Envoy still hands over in one
// BUFFERED response_body; one byte more and Envoy answers 500 itself and the gateway
// never sees it. The body is a System Log page (GET /api/v1/logs, the Okta list whose
// pages reach this size: about 1.1 KiB per event, up to 1000 events) with as many
// whole events as fit, padded with JSON whitespace to the exact size.
//
// All --memory-streams streams start at once and each makes requests until
// --memory-requests have been made, so the first wave has every stream's body in
// flight together; the run is bounded by a request count rather than a duration
// because with this many large bodies a request can take seconds.
//
// It measures the worst case, so it waits for every reply: Envoy's message_timeout
// (and the override_message_timeout that extends it) would cancel the streams the
// gateway is slowest to answer, and the memory those streams hold would go unmeasured.
// A reply later than Envoy's max_message_timeout (10 s in envoy/examples) shows in
// the latency columns; the run reports it rather than hiding it behind 504s.

// defaultMemoryStreams is issue 8's figure.
const defaultMemoryStreams = 1000

// memoryStore is the store the memory scenario runs on: the embedded one when it is
// selected, else the first selected. One store is enough: the response body never
// reaches the audit store (its events carry the body's SHA-256 and size only), so the
// store changes nothing about what the gateway holds per stream; and embedded is the
// larger process, SQLite running inside it.
func (o *options) memoryStore() string {
	for _, s := range o.stores {
		if s == "embedded" {
			return s
		}
	}
	if len(o.stores) == 0 {
		return ""
	}
	return o.stores[0]
}

// memoryRequestCount is --memory-requests, or by default one request per stream: a
// single wave, all bodies in flight together, which is the peak; a second wave would
// double the run time (about 20 s for 1,000 streams on one core) to show it again.
func (o *options) memoryRequestCount() int64 {
	if o.memoryRequests > 0 {
		return o.memoryRequests
	}
	return int64(o.memoryStreams)
}

// memoryMessageTimeout bounds each reply of the memory scenario. It is not Envoy's
// budget (see above) but a guard against a stuck gateway, far above the tens of seconds
// a reply can take when a thousand 1 MiB bodies queue for one core.
const memoryMessageTimeout = 2 * time.Minute

// memoryLoad turns a load config into the memory scenario's: its own concurrency and
// request count, no warm-up (a warm-up at this concurrency would be the peak itself),
// and a message timer no override shortens.
func (o *options) memoryLoad(cfg *loadgen.Config) {
	cfg.Concurrency = o.memoryStreams
	cfg.Requests = o.memoryRequestCount()
	cfg.Duration = 0
	cfg.Warmup = 0
	cfg.MessageTimeout = memoryMessageTimeout
	cfg.MaxMessageTimeout = 0
}

// memoryBody is the scenario's upstream body and its number of events.
func memoryBody(size int) ([]byte, int, error) {
	if size <= 0 {
		size = envoy.DefaultBufferLimit
	}
	return loadgen.SystemLogPageOfSize(size)
}

// memoryScenario is an Okta SDK's GET /api/v1/logs?limit=<events> asking for an
// envelope, answered with body.
func memoryScenario(f fixture, body []byte, events int) loadgen.Scenario {
	path := "/api/v1/logs?limit=" + strconv.Itoa(events)
	return getScenario(scEnvelopeMemory, f, path, envelopeMediaType, body)
}

// setMemoryRatio sets r's ratio: the server's peak RSS over the bytes of one body per
// stream opened at once — what a server that holds every stream's body would need at
// least. A server that bounds what it holds stays below 1, and its ratio falls as
// --memory-streams grows; one that holds every body stays above 1 however many streams
// there are.
func (r *row) setMemoryRatio() {
	if r.peakRSS <= 0 || r.memoryStreams <= 0 || r.bodyBytes <= 0 {
		return
	}
	r.ratio = float64(r.peakRSS) / (float64(r.memoryStreams) * float64(r.bodyBytes))
	r.baseline = fmt.Sprintf("%d streams × %s", r.memoryStreams, mib(int64(r.bodyBytes)))
}

// shed is the number of calls the gateway answered 503 in the memory scenario: its
// body budget had no room for them within its wait (extproc bodyBudget).
func (r *row) shed() int64 {
	if r.scenario != scEnvelopeMemory {
		return 0
	}
	return r.res.Denied[503]
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// printMemory explains the memory rows under the table: what was held at once and
// what it cost.
func printMemory(w io.Writer, o *options, rows []*row) {
	for _, r := range rows {
		if r.scenario != scEnvelopeMemory || !r.ran {
			continue
		}
		rss := "unknown"
		if r.peakRSS >= 0 {
			rss = mib(r.peakRSS)
		}
		fmt.Fprintf(w, "%s/%s: %d streams, %d requests of a %d-byte System Log page (%d events), sealed; "+
			"%d shed with 503 + Retry-After (body budget full); at most %d bodies awaiting their reply at the load generator at once; server peak RSS %s",
			r.scenario, r.store, o.memoryStreams, r.res.Requests, r.bodyBytes, r.bodyEvents,
			r.shed(), r.res.PeakBodiesInFlight, rss)
		if r.ratio > 0 {
			fmt.Fprintf(w, " = %.2f × one body per stream", r.ratio)
		}
		fmt.Fprintln(w, ".")
	}
}

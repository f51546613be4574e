package extproc

import (
	"context"
	"errors"
	"strconv"
	"time"

	"golang.org/x/sync/semaphore"
)

// bodyBudget bounds the response bodies the processor holds at once. An envelope (or
// hashed) call asks Envoy for the whole response body in one BUFFERED message; with
// nothing in the way, N such calls hold N bodies — plus, while sealing, each body's
// envelope and the reply that carries it — so memory grows with concurrency × body
// size: measured with cmd/quantaseal-bench's envelope_memory scenario before this
// existed, 1,000 streams of 1 MiB bodies took the gateway to 3 GiB of RSS.
//
// A call reserves its body's size in its response_headers step, before it answers:
// until that answer Envoy holds the body in its own buffer (BUFFERED sends the body
// only after the headers reply; envoy-extproc.md §3), so a waiting call costs the
// processor nothing. The semaphore is FIFO, so a large body is not starved by small
// ones. A call that cannot get room within Config.BodyWait is answered 503 with
// Retry-After: shedding beats a response that Envoy's message timeout would cut off.
// A state-changing call reserves the largest body it may get before it is forwarded
// instead (stream.reserveForWrite), so it is never shed after the operation happened.
type bodyBudget struct {
	sem      *semaphore.Weighted
	capacity int64
}

func newBodyBudget(capacity int64) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(capacity), capacity: capacity}
}

// bodyBudgetMessage answers a call shed by the budget. It was forwarded (the generic
// unavailable message says nothing was), so it must not claim otherwise.
const bodyBudgetMessage = "The gateway is holding as many response bodies as it may; the Okta call was made but its response was not returned. Retry later."

// bodyBudgetBeforeMessage answers a state-changing call refused for room before it was
// forwarded (stream.reserveForWrite).
const bodyBudgetBeforeMessage = "The gateway is holding as many response bodies as it may; nothing was forwarded. Retry later."

// errBodyBudget is the cause of a call shed because the budget stayed full.
var errBodyBudget = errors.New("response body budget full")

// reserve waits up to wait for n bytes and returns what it reserved (n, capped at the
// capacity so one body larger than the whole budget can still pass alone).
func (b *bodyBudget) reserve(ctx context.Context, n int64, wait time.Duration) (int64, error) {
	n = min(max(n, 1), b.capacity)
	if b.sem.TryAcquire(n) {
		return n, nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := b.sem.Acquire(ctx, n); err != nil {
		return 0, errBodyBudget
	}
	return n, nil
}

func (b *bodyBudget) release(n int64) {
	if n > 0 {
		b.sem.Release(n)
	}
}

// announcedBodySize is what a response body will cost: its content-length when Envoy
// passed one, else limit (the most the processor accepts).
func announcedBodySize(l headerList, limit int) int64 {
	if v, n := l.get("content-length"); n == 1 {
		if cl, err := strconv.ParseInt(v, 10, 64); err == nil && cl >= 0 {
			return cl
		}
	}
	return int64(limit)
}

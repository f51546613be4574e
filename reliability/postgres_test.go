package reliability

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/quantaseal/gateway/internal/gatewaytest"
	"github.com/quantaseal/gateway/internal/testenv"
)

// TestPostgresOutage cuts PostgreSQL (a TCP proxy between the gateway and the server)
// twice in the middle of a load of reads and creates, then restores it. Every call
// answered during an outage gets 503 "unavailable"; /readyz says 503; nothing reaches
// Okta without a committed audit event for it; after the outage the gateway serves
// again without a restart; the chain verifies; every audit id a client received is in
// the store. Reads and creates alike commit their intent before they are forwarded.
func TestPostgresOutage(t *testing.T) {
	realURL := testenv.Postgres(t)
	proxy, proxied := gatewaytest.NewURLProxy(t, realURL)
	w := newWorld(t, worldOptions{gatewayDBURL: proxied, realDBURL: realURL})

	if r := w.call(t.Context(), w.intSSWS, "GET", "/api/v1/users?limit=1", nil, nil); r.status != http.StatusOK {
		t.Fatalf("warm-up call: %d %s", r.status, r.body)
	}
	ctx, stopLoad := context.WithCancel(t.Context())
	done := make(chan []result)
	go func() { done <- w.load(ctx, 4, 5) }()

	var outageResults []result
	for range 2 {
		time.Sleep(700 * time.Millisecond)
		proxy.Down()
		time.Sleep(300 * time.Millisecond) // let in-flight calls fail over
		for i := range 3 {
			r := w.call(t.Context(), w.intSSWS, "GET", "/api/v1/users?limit=1&q=outage"+string(rune('a'+i)), nil, nil)
			outageResults = append(outageResults, r)
		}
		if r, err := w.api.Do(t.Context(), "GET", "/readyz", nil, nil); err != nil || r.Status != http.StatusServiceUnavailable {
			t.Errorf("/readyz during the outage: %v %v, want 503", r, err)
		}
		for _, p := range []string{"/api/v2/integrations", "/api/v2/vault", "/api/v2/audit/events"} {
			if r, err := w.api.Do(t.Context(), "GET", p, gatewaytest.APIKeyHeader(w.tenant.APIKey), nil); err != nil || r.Status != http.StatusServiceUnavailable {
				t.Errorf("GET %s during the outage: %v %v, want 503 (never 401: the key could not be checked)", p, r, err)
			}
		}
		time.Sleep(700 * time.Millisecond)
		proxy.Up()
		waitFor(t, 15*time.Second, "calls succeed again after PostgreSQL returned", func() bool {
			return w.call(t.Context(), w.intSSWS, "GET", "/api/v1/users?limit=1", nil, nil).status == http.StatusOK
		})
	}
	time.Sleep(500 * time.Millisecond)
	stopLoad()
	loadResults := <-done

	for _, r := range outageResults {
		if r.status != http.StatusServiceUnavailable || r.code() != "unavailable" {
			t.Errorf("call during the outage: %d %s (err %v), want 503 unavailable", r.status, r.body, r.err)
		}
	}
	st := statuses(loadResults)
	for s, n := range st {
		switch s {
		case http.StatusOK, http.StatusCreated, http.StatusServiceUnavailable:
		default:
			t.Errorf("%d load calls got status %d (0 = transport error); want only 200, 201 or 503", n, s)
		}
	}
	if st[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no load call saw the outage (statuses %v)", st)
	}

	w.gw.Stop(t)
	events := w.verifiedEvents(t)
	if missing := w.missingAcked(events); len(missing) > 0 {
		t.Errorf("%d acknowledged audit events are missing from the store: %v", len(missing), missing)
	}
	// Every call, read or create, has its intent committed before it is forwarded
	// (audit-v1 "Chains"): nothing reached the Okta double without one, even while
	// the store went away under the load.
	unaudited := w.unaudited(events)
	if len(unaudited) > 0 {
		t.Errorf("%d calls reached Okta without a committed intent event:\n%s", len(unaudited), describe(unaudited))
	}
	addFigures(t, figures{
		Faults: int(proxy.Downs()), Requests: int(w.sent.Load()), Committed: len(events), Verified: len(events),
		Leaks: len(w.missingAcked(events)), Unaudited: len(unaudited),
		Notes: fmt.Sprintf("PostgreSQL cut twice for ~1 s under 4 workers; statuses %s", fmtStatuses(st)),
	})
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package reliability

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/quantaseal/gateway/internal/testenv"
)

// TestKillUnderLoad kills `quantaseal serve` with SIGKILL twice in the middle of a load
// of reads and creates and restarts it on the same ports and data. Calls in flight at
// the kill fail closed (Envoy's status_on_error); no acknowledged audit event is lost;
// no call, read or create, reached Okta without its intent event; the tenant's chain
// continues across the restarts and verifies (hashes, links, contiguous seq, signed
// checkpoints).
func TestKillUnderLoad(t *testing.T) {
	for _, store := range []string{"embedded", "postgres"} {
		t.Run(store, func(t *testing.T) {
			o := worldOptions{}
			if store == "postgres" {
				o.realDBURL = testenv.Postgres(t)
				o.gatewayDBURL = o.realDBURL
			}
			w := newWorld(t, o)
			ctx, stopLoad := context.WithCancel(t.Context())
			done := make(chan []result)
			go func() { done <- w.load(ctx, 4, 4) }()
			kills := 0
			for range 2 {
				time.Sleep(time.Second)
				w.gw.Kill(t)
				kills++
				time.Sleep(200 * time.Millisecond)
				w.gw.Restart(t)
			}
			time.Sleep(time.Second)
			stopLoad()
			rs := <-done

			st := statuses(rs)
			for s, n := range st {
				switch s {
				case http.StatusOK, http.StatusCreated, http.StatusInternalServerError, http.StatusServiceUnavailable:
				default:
					t.Errorf("%d calls got status %d (0 = transport error); want 200, 201, or 500/503 while the processor was down", n, s)
				}
			}
			if st[http.StatusOK]+st[http.StatusCreated] == 0 {
				t.Fatalf("no call succeeded: %v", st)
			}
			w.gw.Stop(t)
			events := w.verifiedEvents(t)
			missing := w.missingAcked(events)
			if len(missing) > 0 {
				t.Errorf("%d acknowledged audit events lost: %v", len(missing), missing)
			}
			unaudited := w.unaudited(events)
			if len(unaudited) > 0 {
				t.Errorf("%d calls reached Okta without a committed intent:\n%s", len(unaudited), describe(unaudited))
			}
			leaks := scanEverything(t, w, nil, events)
			chains := map[string]int64{}
			intents, outcomes := 0, 0
			for _, e := range events {
				chains[e.ChainID] = max(chains[e.ChainID], e.Seq)
				if e.Reason == "forwarded" {
					intents++
				}
				if e.IntentID != "" {
					outcomes++
				}
			}
			if len(chains) != 1 {
				t.Errorf("events are in %d chains, want the tenant's one chain continued across restarts: %v", len(chains), chains)
			}
			addFigures(t, figures{
				Faults: kills, Requests: int(w.sent.Load()), Committed: len(events), Verified: len(events), Leaks: len(missing) + leaks, Unaudited: len(unaudited),
				Notes: fmt.Sprintf("%s store, SIGKILL×%d under 4 workers; statuses %s; %d intents, %d outcomes (%d calls cut between forwarding and answer)",
					store, kills, fmtStatuses(st), intents, outcomes, intents-outcomes),
			})
		})
	}
}

package loadgen

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quantaseal/gateway/internal/noopextproc"
)

// TestLatencyFromSchedule: a request that starts after its scheduled time counts the
// wait in its total latency (and its lag), not in its per-message reply times — the
// correction for coordinated omission, and what keeps the phase figures about the
// processor.
func TestLatencyFromSchedule(t *testing.T) {
	addr, stop, err := noopextproc.ServeLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sc := Scenario{Name: "get", RequestHeaders: []Header{{":method", "GET"}, {":path", "/"}, {":authority", "a"}, {":scheme", "http"}}}
	p, err := prepare(&sc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := &runner{cfg: Config{Rate: 1}, p: p, ctx: ctx, cancel: cancel, conns: []*grpc.ClientConn{conn}, idPfx: "t"}
	if o := r.one(ctx, false, time.Time{}); o.errKind != "" || o.lag != -1 {
		t.Fatalf("warm-up request (closed loop): %v %v, lag %v", o.errKind, o.err, o.lag)
	}

	const late = 300 * time.Millisecond
	o := r.one(ctx, false, time.Now().Add(-late))
	if o.errKind != "" {
		t.Fatalf("%s: %v", o.errKind, o.err)
	}
	if o.lag < late || o.total < late+o.phases[PhaseRequestHeaders] {
		t.Errorf("lag %v, total %v; want both from the schedule, %v or more before the start", o.lag, o.total, late)
	}
	for ph, d := range o.phases {
		if d >= late {
			t.Errorf("%s reply time %v includes the start's lag", Phase(ph), d)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/quantaseal/gateway/internal/loadgen"
)

// The transparent target's CPU budget. At the rate the target asks for — 0.5 × the
// noop's rate — the machine's CPUs can give each call at most CPUs ÷ rate of CPU time,
// and the gateway, the load generator and the database share it. What one call costs
// the machine depends on the rate itself (wake-ups, system calls and HTTP/2 frames are
// shared by fewer messages as traffic thins), so the noop server is run once more, as
// an open loop at exactly that rate: what it spends per call there is the harness's own
// share, with no work done. Whatever is left after it and the database's commits is
// all the gateway's own work may cost if the target is to be met.

// budget is that measurement for one store.
type budget struct {
	cpus    int            // the CPUs the server, the load generator and the database share
	rate    float64        // calls/s: the target × the noop's rate
	perCall time.Duration  // the machine's CPU time per call at that rate
	noop    loadgen.Result // the noop server, open loop at that rate
	problem string         // why noop is missing
}

// measureBudget runs the noop server as an open loop at target × noopRPS for
// o.budgetDuration with the transparent scenario's messages.
func (o *options) measureBudget(ctx context.Context, dir string, usersPage func(string) ([]byte, error), target, noopRPS float64) *budget {
	b := &budget{cpus: o.machineCPUs(), rate: target * noopRPS}
	b.perCall = time.Duration(float64(b.cpus) * float64(time.Second) / b.rate)
	sc, err := noopScenario(usersPage)
	if err != nil {
		b.problem = err.Error()
		return b
	}
	cfg := o.loadConfig("", 0)
	cfg.Rate, cfg.Duration = b.rate, o.budgetDuration
	// The same open-loop noop run, and the same checks, as the half-rate row's floor.
	b.noop, _, b.problem = noopFloor(ctx, o, dir, cfg, sc)
	return b
}

// machineCPUs is how many CPUs the run uses: the server's and this process's (which
// runs on the others when pinned).
func (o *options) machineCPUs() int {
	if o.serverCPUs == "" {
		return numCPU()
	}
	return numCPU() + len(strings.Split(o.serverCPUs, ","))
}

// printBudget writes the budget line of each transparent row that has one.
func printBudget(w io.Writer, rows []*row) {
	for _, r := range rows {
		if r.scenario != scTransparent || r.budget == nil {
			continue
		}
		fmt.Fprintf(w, "transparent/%s at the target's rate: %s\n", r.store, budgetLine(r.target, r.budget, r.res))
	}
}

// budgetLine spells out b against the transparent run's database CPU per call (tr).
func budgetLine(target float64, b *budget, tr loadgen.Result) string {
	head := fmt.Sprintf("%.1f × the noop's rate = %.0f calls/s, where the %d CPUs allow %s µs per call",
		target, b.rate, b.cpus, us(b.perCall))
	n, ok := machineCPU(b.noop)
	if b.problem != "" || !ok {
		return head + fmt.Sprintf("; the noop server at that rate: not measured (%s).", orDash(b.problem != "", b.problem))
	}
	s := head + fmt.Sprintf("; the noop server alone spends %s µs there (server %s + load generator %s, open loop)",
		us(n), us(b.noop.ServerCPUPerRequest), us(b.noop.SelfCPUPerRequest))
	left := b.perCall - n
	if tr.DatabaseCPUPerRequest >= 0 {
		s += fmt.Sprintf(" and the database %s µs per transparent call (at transparent's rate)", us(tr.DatabaseCPUPerRequest))
		left -= tr.DatabaseCPUPerRequest
	}
	if left < 0 {
		return s + fmt.Sprintf(": %s µs over before any work of the gateway's own.", us(-left))
	}
	return s + fmt.Sprintf(": %s µs left for all of the gateway's own work.", us(left))
}

package envelope_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/testenv"
)

// Seal and MarshalJSON are the gateway's per-call envelope path. Their allocations are
// budgeted so that an extra copy of the body (the costly regression: a 1 MiB page
// copied once more is 1 MiB more per call) or a new per-call allocation is caught.
// Today: 39 allocations; ~2.35 bytes allocated per body byte (the signed message M,
// which holds the ciphertext, and the JSON, which holds its base64) plus ~20 KiB.
const (
	sealAllocBudget      = 45
	sealBytesPerBodyByte = 2.5
	sealBytesOverhead    = 32 << 10
)

func TestSealAllocationBudget(t *testing.T) {
	if testenv.Race {
		t.Skip("the race detector changes allocation counts")
	}
	f := newFixture(t)
	for _, n := range []int{16 << 10, 1 << 20} {
		t.Run(fmt.Sprintf("%dKiB", n>>10), func(t *testing.T) {
			in := f.input(make([]byte, n))
			seal := func() {
				e, err := envelope.Seal(in, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.MarshalJSON(); err != nil {
					t.Fatal(err)
				}
			}
			seal()
			allocs := testing.AllocsPerRun(10, seal)

			const runs = 10
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				seal()
			}
			runtime.ReadMemStats(&after)
			bytes := float64(after.TotalAlloc-before.TotalAlloc) / runs
			budget := sealBytesPerBodyByte*float64(n) + sealBytesOverhead

			t.Logf("Seal+MarshalJSON of %d bytes: %.0f allocations (budget %d), %.0f bytes (budget %.0f)", n, allocs, sealAllocBudget, bytes, budget)
			if allocs > sealAllocBudget {
				t.Errorf("%.0f allocations, over the budget of %d", allocs, sealAllocBudget)
			}
			if bytes > budget {
				t.Errorf("%.0f bytes allocated, over the budget of %.0f", bytes, budget)
			}
		})
	}
}

#!/usr/bin/env bash
# Lists the Go benchmarks of NEW that are more than PCT% (default 20) worse than in BASE,
# both `go test -bench` outputs: ns/op (and cpu-ns/op) or allocs/op higher, or events/s
# lower. scripts/bench.sh runs it against the checked-in docs/bench/go-baseline.txt.
#
#   scripts/benchdiff.sh BASE NEW [PCT]
#
# Timings on a shared VM move by ±20% from hour to hour, so a timing line is a hint to
# re-run (benchstat with COUNT=6 decides); an allocs/op line is deterministic and real.
set -euo pipefail
base=$1 new=$2 pct=${3:-20}
awk -v pct="$pct" '
	/^pkg: / { pkg = $2; next }
	/^Benchmark/ {
		key = pkg "." $1
		for (i = 3; i < NF; i += 2) {
			unit = $(i + 1)
			if (unit == "ns/op" || unit == "cpu-ns/op" || unit == "allocs/op" || unit == "events/s") {
				if (FNR == NR) base[key, unit] = $i
				else if ((key, unit) in base) check(key, unit, base[key, unit], $i)
			}
		}
	}
	function check(key, unit, old, cur,   worse) {
		if (old <= 0) return
		worse = (unit == "events/s") ? (old - cur) / old : (cur - old) / old
		if (worse * 100 > pct) {
			printf "  %-70s %-10s %12s -> %-12s %+.0f%%\n", key, unit, old, cur, (unit == "events/s" ? -worse : worse) * 100
			found = 1
		}
	}
	END { if (!found) printf "  none more than %d%% worse\n", pct }
' "$base" "$new"

#!/usr/bin/env bash
# Lists the Go benchmarks of NEW that are more than PCT% (default 20) worse than in BASE,
# both `go test -bench` outputs: ns/op (and cpu-ns/op) or allocs/op higher, or events/s
# lower. scripts/bench.sh runs it against the checked-in docs/bench/go-baseline.txt.
#
#   scripts/benchdiff.sh BASE NEW [PCT]
#
# Timings on a shared VM move by ±20–40% from hour to hour, whatever the code. So the
# timing lines are judged against the VM's own drift, read off yardsticks: benchmarks of
# primitives no change of ours touches (AES-GCM and HMAC from the standard library,
# circl's ML-KEM-768 and ML-DSA-65). Their median new/old ns/op ratio is the drift; a
# timing line is listed when it is more than PCT% worse after dividing by it, and shows
# its raw change too. A change that slows everything shows as a normal drift with the
# yardsticks unmoved, so it is not hidden. Without yardsticks in both files no drift is
# assumed. The yardsticks see the CPU, not the disk: the audit stores' Append and
# TwoWriters wait for fsyncs and move with them. Even so a timing line is a hint to
# re-run (benchstat with COUNT=6 decides); an allocs/op line is deterministic and real.
set -euo pipefail
base=$1 new=$2 pct=${3:-20}
awk -v pct="$pct" '
	/^pkg: / { pkg = $2; next }
	/^Benchmark/ {
		key = pkg "." $1
		for (i = 3; i < NF; i += 2) {
			unit = $(i + 1)
			if (unit != "ns/op" && unit != "cpu-ns/op" && unit != "allocs/op" && unit != "events/s") continue
			if (FNR == NR) { old[key, unit] = $i; continue }
			if (!((key, unit) in old)) continue
			n++; k[n] = key; u[n] = unit; cur[n] = $i
			if (unit == "ns/op" && $1 ~ /^Benchmark(AES256GCMSeal|HMACSHA512|MLKEM768(En|De)capsulate|MLDSA65(Sign|Verify))[\/-]/ && old[key, unit] > 0)
				yard[++ny] = $i / old[key, unit]
		}
	}
	function median(a, m,   i, j, t) {
		for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	}
	END {
		drift = ny ? median(yard, ny) : 1
		if (ny) printf "  VM speed: the %d yardstick timings (crypto primitives) run %+.0f%% against the baseline; timing lines are judged after dividing by that\n", ny, (drift - 1) * 100
		else print "  no yardstick benchmarks in both files: timing lines are judged as measured"
		for (i = 1; i <= n; i++) {
			o = old[k[i], u[i]]
			if (o <= 0) continue
			if (u[i] == "allocs/op") { raw = cur[i] / o; adj = raw }
			else if (u[i] == "events/s") { raw = o / cur[i]; adj = raw / drift }
			else { raw = cur[i] / o; adj = raw / drift }
			if ((adj - 1) * 100 > pct) {
				sign = (u[i] == "events/s") ? -1 : 1
				printf "  %-70s %-10s %12s -> %-12s %+.0f%%", k[i], u[i], o, cur[i], sign * (adj - 1) * 100
				if (u[i] != "allocs/op" && ny) printf " (raw %+.0f%%)", sign * (raw - 1) * 100
				printf "\n"
				found = 1
			}
		}
		if (!found) printf "  none more than %d%% worse\n", pct
	}
' "$base" "$new"

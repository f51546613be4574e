#!/usr/bin/env bash
# Benchmarks (issue 8): the Go benchmarks in benchstat-friendly form, then the gateway
# load benchmark (cmd/quantaseal-bench), which plays Envoy against the real
# `quantaseal serve` on the embedded store and on PostgreSQL.
#
#   scripts/bench.sh                 # what `make bench` runs
#
# Environment (all optional):
#   COUNT=1 BENCHTIME=1s   go test -count / -benchtime
#   BENCH_OUT=bin/bench.txt   where the go test -bench output goes (compare runs with benchstat);
#                          benchmarks more than 20% worse than the checked-in
#                          docs/bench/go-baseline.txt are listed (scripts/benchdiff.sh)
#   GO_BENCH=0             skip the Go benchmarks;  LOAD=0  skip the load benchmark
#   DURATION=10s CONCURRENCY=64 CONNS=2
#   SCENARIOS=noop,transparent,transparent_envelope,outbound,envelope_memory
#   STORES=embedded,postgres PIN=true   passed to quantaseal-bench
#
# quantaseal-bench pins the server to half of the CPUs and itself (load generator and
# crypto ceiling) to the other half with taskset when it can; PIN=false shares them.
#
# PostgreSQL and the local KMS server are started with scripts/services.sh (and stopped
# on exit) unless QUANTASEAL_TEST_DATABASE_URL and QUANTASEAL_TEST_KMS_ENDPOINT are
# already set. The whole run is sized to finish within 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d "${TMPDIR:-/tmp}/quantaseal-bench.XXXXXX")
started=0
cleanup() {
	if [ "$started" = 1 ]; then scripts/services.sh stop "$dir" || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT

if [ -z "${QUANTASEAL_TEST_DATABASE_URL:-}" ] || [ -z "${QUANTASEAL_TEST_KMS_ENDPOINT:-}" ]; then
	started=1
	scripts/services.sh start "$dir"
	# shellcheck disable=SC1091
	source "$dir/env"
fi

out=${BENCH_OUT:-bin/bench.txt}
status=0
if [ "${GO_BENCH:-1}" != 0 ]; then
	mkdir -p "$(dirname "$out")"
	echo "== go test -bench (benchstat input: $out)" >&2
	# A failing package does not stop the load benchmark; the exit status reports it.
	go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" -count "${COUNT:-1}" -timeout 30m ./... | tee "$out" || status=$?
	baseline=docs/bench/go-baseline.txt
	echo "== Go benchmarks more than 20% worse than $baseline once the VM's drift is divided out (the README's run; benchstat $baseline $out for the whole comparison)" >&2
	scripts/benchdiff.sh "$baseline" "$out" 20 >&2
fi

if [ "${LOAD:-1}" != 0 ]; then
	echo "== load benchmark (quantaseal-bench)" >&2
	go build -o "$dir/quantaseal" ./cmd/quantaseal
	go build -o "$dir/quantaseal-bench" ./cmd/quantaseal-bench
	mkdir -p "$dir/work"
	"$dir/quantaseal-bench" \
		--gateway "$dir/quantaseal" --workdir "$dir/work" \
		--duration "${DURATION:-10s}" --concurrency "${CONCURRENCY:-64}" --conns "${CONNS:-2}" \
		--scenarios "${SCENARIOS:-noop,transparent,transparent_envelope,outbound,envelope_memory}" \
		--stores "${STORES:-embedded,postgres}" --pin="${PIN:-true}" || {
		status=$?
		mkdir -p bin/bench-logs
		cp "$dir"/work/*.log bin/bench-logs/ 2>/dev/null || true
		echo "bench.sh: quantaseal-bench failed; server logs kept in bin/bench-logs" >&2
	}
fi
exit "$status"

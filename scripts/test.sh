#!/usr/bin/env bash
# Runs the tests (or benchmarks) with real services: starts a throwaway PostgreSQL
# cluster and the local KMS server (scripts/services.sh), exports their addresses,
# and stops them on exit. With QUANTASEAL_TEST_DATABASE_URL or
# QUANTASEAL_TEST_KMS_ENDPOINT already set, that service is used instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}

dir=$(mktemp -d "${TMPDIR:-/tmp}/quantaseal-test.XXXXXX")
cleanup() { scripts/services.sh stop "$dir" || true; rm -rf "$dir"; }
trap cleanup EXIT
scripts/services.sh start "$dir"
# shellcheck disable=SC1091
source "$dir/env"

case "$mode" in
test)
	go test -race -count=1 -timeout 20m ./...
	# The race detector changes allocation counts, so the allocation budgets
	# (Test*AllocationBudget) skip themselves above; run them once without it.
	go test -count=1 -run 'AllocationBudget' ./...
	;;
cover)
	go test -count=1 -timeout 20m -coverprofile=cover.out ./...
	go tool cover -html=cover.out -o cover.html
	;;
bench)
	go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-1s}" -count "${COUNT:-1}" -timeout 30m ./...
	;;
*)
	echo "usage: test.sh test|cover|bench" >&2
	exit 2
	;;
esac

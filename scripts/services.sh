#!/usr/bin/env bash
# Starts (or stops) the throwaway services the tests need: a PostgreSQL 15 cluster and the
# local KMS server, both on free loopback ports, all state under one directory.
#
#   scripts/services.sh start DIR   # writes DIR/env (source it) and leaves both running
#   scripts/services.sh stop DIR
#
# initdb refuses to run as root, so as root the cluster is created and run as the
# "postgres" user. Nothing here downloads anything but the pinned local-kms module
# through the Go module proxy.
set -euo pipefail

LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6
cmd=${1:?usage: services.sh start|stop DIR}
dir=${2:?usage: services.sh start|stop DIR}

pgbin() {
	for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
	done
	if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
	return 1
}

free_port() {
	python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_for() { # wait_for SECONDS CMD...
	local deadline=$((SECONDS + $1)); shift
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then return 1; fi
		sleep 0.2
	done
}

start() {
	local bin
	if ! bin=$(pgbin); then
		echo "services.sh: PostgreSQL server binaries not found." >&2
		echo "  Install them: apt-get install -y postgresql (Debian/Ubuntu; provides initdb and postgres)," >&2
		echo "  or set QUANTASEAL_TEST_DATABASE_URL to an existing server." >&2
		exit 1
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	chmod 755 "$dir"
	local pgport kmsport
	pgport=$(free_port)
	kmsport=$(free_port)
	while [ "$kmsport" = "$pgport" ]; do kmsport=$(free_port); done

	if [ -z "${QUANTASEAL_TEST_DATABASE_URL:-}" ]; then
		if [ -e "$dir/pg/data" ]; then
			echo "services.sh: $dir already holds a PostgreSQL cluster (running or left from an earlier start)." >&2
			echo "  Stop and remove it with: scripts/services.sh stop $dir && rm -rf $dir; or start in a new directory." >&2
			exit 1
		fi
		mkdir -p "$dir/pg"
		[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/pg"
		as_pg "$bin/initdb" --auth=trust --username=postgres -D "$dir/pg/data" >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
		as_pg "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 \
			-o "-p $pgport -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300 -c shared_buffers=128MB" \
			start >/dev/null || { cat "$dir/pg/server.log" >&2; exit 1; }
		echo "export QUANTASEAL_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$pgport/postgres?sslmode=disable'" >"$dir/env"
	else
		echo "export QUANTASEAL_TEST_DATABASE_URL='$QUANTASEAL_TEST_DATABASE_URL'" >"$dir/env"
	fi

	if [ -z "${QUANTASEAL_TEST_KMS_ENDPOINT:-}" ]; then
		mkdir -p "$dir/kms" "$dir/bin"
		if [ ! -x "$dir/bin/local-kms" ]; then
			GOBIN="$dir/bin" GOFLAGS=-mod=mod go install "github.com/nsmithuk/local-kms@$LOCAL_KMS_VERSION"
		fi
		PORT=$kmsport KMS_DATA_PATH="$dir/kms" nohup "$dir/bin/local-kms" >"$dir/kms.log" 2>&1 &
		echo $! >"$dir/kms.pid"
		wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$kmsport" || { cat "$dir/kms.log" >&2; exit 1; }
		echo "export QUANTASEAL_TEST_KMS_ENDPOINT='http://127.0.0.1:$kmsport'" >>"$dir/env"
	else
		echo "export QUANTASEAL_TEST_KMS_ENDPOINT='$QUANTASEAL_TEST_KMS_ENDPOINT'" >>"$dir/env"
	fi
	echo "export QUANTASEAL_TEST_REQUIRE_SERVICES=1" >>"$dir/env"
	echo "services.sh: PostgreSQL and local KMS ready; source $dir/env" >&2
}

stop() {
	local bin
	if [ -f "$dir/kms.pid" ]; then kill "$(cat "$dir/kms.pid")" 2>/dev/null || true; rm -f "$dir/kms.pid"; fi
	if [ -d "$dir/pg/data" ] && bin=$(pgbin); then
		as_pg "$bin/pg_ctl" -D "$dir/pg/data" -m immediate stop >/dev/null 2>&1 || true
	fi
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) echo "usage: services.sh start|stop DIR" >&2; exit 2 ;;
esac

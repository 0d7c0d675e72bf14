#!/usr/bin/env bash
# bench/run.sh — one courier-bench run against a fresh courier server.
#
#   bench/run.sh --scenario dm --users 1000 --duration 10s [more courier-bench flags]
#
# Builds courier and courier-bench, starts `courier serve` pinned to one core
# (taskset -c $SERVER_CPU, GOMAXPROCS=1) on a free loopback port with a
# temporary --data directory, runs courier-bench pinned to another core
# ($BENCH_CPU, GOMAXPROCS=1) with the given flags, stops the server and
# prints courier-bench's JSON line on stdout (everything else goes to
# stderr). Everything it made is removed on exit.
#
# Environment: TARGET (courier, the default, or socketio: the Node peer in
# bench/peers/socketio, same pinning), SERVER_CPU (default 0), BENCH_CPU (default 1), SERVER_ARGS
# (extra `courier serve` flags, e.g. "--rate -1"), TIMEOUT (seconds for the
# bench, default 900), WAIT_QUIET (how long courier-bench first waits for an
# idle machine, default 60s), KEEP_LOG=1 keeps the server log (path on
# stderr), COURIER_BIN and BENCH_BIN (prebuilt binaries to run instead of
# building this checkout's: for a series of runs that must all measure the
# same build while the tree changes), PROFILE=FILE (courier only: serve
# --pprof-addr on a free port, and courier-bench saves the server's CPU
# profile over the sending time of a dm or room run to FILE).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
server_cpu=${SERVER_CPU:-0}
bench_cpu=${BENCH_CPU:-1}
timeout_s=${TIMEOUT:-900}
work=$(mktemp -d "${TMPDIR:-/tmp}/courier-run.XXXXXX")
srv_pid=""

stop_server() {
	if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then
		kill -TERM "$srv_pid" 2>/dev/null || true
		for _ in $(seq 150); do # up to 15 s, then SIGKILL
			kill -0 "$srv_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$srv_pid" 2>/dev/null || true
		wait "$srv_pid" 2>/dev/null || true
	fi
	srv_pid=""
}
cleanup() {
	stop_server
	if [ "${KEEP_LOG:-0}" = 1 ] && [ -f "$work/server.log" ]; then
		cp "$work/server.log" "${TMPDIR:-/tmp}/courier-server-$$.log"
		echo "run.sh: server log kept in ${TMPDIR:-/tmp}/courier-server-$$.log" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${COURIER_BIN:-}" ]; then
	cp "$COURIER_BIN" "$work/courier"
else
	(cd "$root" && go build -o "$work/courier" ./cmd/courier)
fi
if [ -n "${BENCH_BIN:-}" ]; then
	cp "$BENCH_BIN" "$work/courier-bench"
else
	(cd "$root" && go build -o "$work/courier-bench" ./cmd/courier-bench)
fi

# Both sides may use every descriptor the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
apikey=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
target=${TARGET:-courier}
case "$target" in
courier)
	# courier serve raises GOMAXPROCS to 2 itself (see docs/benchmarks.md).
	# shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
	pprof_args=()
	[ -n "${PROFILE:-}" ] && pprof_args=(--pprof-addr 127.0.0.1:0)
	GOMAXPROCS=1 taskset -c "$server_cpu" "$work/courier" serve --addr 127.0.0.1:0 --data "$work/data" \
		--jwt-secret "$secret" --api-key "$apikey" "${pprof_args[@]}" ${SERVER_ARGS:-} >"$work/server.log" 2>&1 &
	;;
socketio)
	peer="$root/bench/peers/socketio"
	[ -d "$peer/node_modules" ] || (cd "$peer" && npm ci --no-audit --no-fund >&2)
	taskset -c "$server_cpu" node "$peer/server.js" --port 0 >"$work/server.log" 2>&1 &
	;;
*)
	echo "run.sh: TARGET=$target: want courier or socketio" >&2
	exit 2
	;;
esac
srv_pid=$!

addr=""
for _ in $(seq 100); do # up to 10 s
	addr=$(grep -o 'listening on [0-9.]*:[0-9]*' "$work/server.log" | head -n1 | cut -d' ' -f3 || true)
	[ -n "$addr" ] && break
	if ! kill -0 "$srv_pid" 2>/dev/null; then
		echo "run.sh: courier serve exited:" >&2
		cat "$work/server.log" >&2
		exit 1
	fi
	sleep 0.1
done
if [ -z "$addr" ]; then
	echo "run.sh: courier serve did not log 'listening on' within 10 s" >&2
	exit 1
fi
echo "run.sh: courier serve pid $srv_pid on $addr (cpu $server_cpu); courier-bench on cpu $bench_cpu: $*" >&2

prof_args=()
if [ -n "${PROFILE:-}" ] && [ "$target" = courier ]; then
	pp=$(grep -o 'pprof on http://[0-9.]*:[0-9]*' "$work/server.log" | head -n1 | cut -d/ -f3 || true)
	if [ -z "$pp" ]; then
		echo "run.sh: PROFILE: the server did not log its pprof address" >&2
		exit 1
	fi
	prof_args=(--server-pprof "$pp" --server-profile "$PROFILE")
fi

rc=0
GOMAXPROCS=1 timeout --signal=INT --kill-after=30 "$timeout_s" \
	taskset -c "$bench_cpu" "$work/courier-bench" --target "$target" --url "ws://$addr" --secret "$secret" --api-key "$apikey" \
	--pid "$srv_pid" --timeout "$((timeout_s - 10))s" --wait-quiet "${WAIT_QUIET:-60s}" "${prof_args[@]}" "$@" >"$work/out.json" || rc=$?

stop_server
if grep -qE 'level=(WARN|ERROR)' "$work/server.log"; then
	echo "run.sh: server warnings/errors:" >&2
	grep -E 'level=(WARN|ERROR)' "$work/server.log" | tail -n 20 >&2
fi
cat "$work/out.json"
exit "$rc"

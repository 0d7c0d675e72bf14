#!/usr/bin/env bash
# bench/nodes.sh — courier-bench against one node and against three, on a
# shared PostgreSQL and a broker, for docs/benchmarks.md#many-nodes.
#
#   bench/nodes.sh NODES BROKER [courier-bench flags]
#   bench/nodes.sh 3 nats --scenario dm --users 1000 --rate 2000 --duration 10s
#   bench/nodes.sh 1 none --scenario dm --users 1000 --rate 2000 --durable
#
# NODES courier processes (taskset onto $NODE_CPUS, default "0", GOMAXPROCS=1
# each) share a fresh database on PostgreSQL at $PG (default
# postgres://postgres@127.0.0.1:5432) and, with BROKER nats or redis, the
# broker at its default loopback port; BROKER none runs one node without a
# broker. courier-bench (on $BENCH_CPU, default 1) spreads its users over
# every node, so that most messages cross nodes, and sums the CPU of all of
# them. Prints courier-bench's JSON line on stdout; everything it made is
# removed on exit. PostgreSQL, NATS and Redis themselves are not pinned: on a
# 2-core machine this measures what crossing nodes costs, not how far more
# machines scale.
set -euo pipefail

nodes=${1:?nodes}
broker=${2:?broker: nats, redis or none}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
node_cpus=${NODE_CPUS:-0}
bench_cpu=${BENCH_CPU:-1}
pg=${PG:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d "${TMPDIR:-/tmp}/courier-cluster.XXXXXX")
db="courier_bench_$$"
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$root" && go build -o "$work/courier" ./cmd/courier && go build -o "$work/bench" ./cmd/courier-bench)
psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null

case "$broker" in
nats) broker_args=(--broker nats://127.0.0.1:4222 --cluster-name "bench$$") ;;
redis) broker_args=(--broker redis://127.0.0.1:6379 --cluster-name "bench$$") ;;
none) broker_args=() ;;
*) echo "nodes.sh: broker $broker: want nats, redis or none" >&2; exit 2 ;;
esac

urls=()
for i in $(seq "$nodes"); do
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	GOMAXPROCS=1 taskset -c "$node_cpus" "$work/courier" serve --addr "127.0.0.1:$port" --data "$work/n$i" \
		--jwt-secret benchsecret --api-key benchkey --rate -1 --store "$pg/$db" "${broker_args[@]}" \
		>"$work/n$i.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		grep -q "listening on" "$work/n$i.log" && break
		sleep 0.1
	done
	grep -q "listening on" "$work/n$i.log" || { cat "$work/n$i.log" >&2; exit 1; }
	urls+=("ws://127.0.0.1:$port")
done
sleep 2 # the nodes find each other (heartbeats)

pidlist=$(IFS=,; echo "${pids[*]}")
urllist=$(IFS=,; echo "${urls[*]}")
GOMAXPROCS=1 taskset -c "$bench_cpu" "$work/bench" --quiet --secret benchsecret --api-key benchkey \
	--url "$urllist" --server-pid "$pidlist" "$@"

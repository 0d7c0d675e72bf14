#!/usr/bin/env bash
# bench/sweep.sh — latency against offered rate, medians of several runs.
#
#   bench/sweep.sh OUT.jsonl [PNG] [-- more courier-bench flags]
#
# For each rate in RATES (default "5000 10000 20000 30000"), runs the dm
# scenario (1,000 users, volatile, 10 s, at that fixed rate) ROUNDS times
# (default 3) against each of TARGETS (default "courier socketio"),
# alternating the targets round by round (bench/compare.sh), and appends
# every JSON line to OUT.jsonl. Then, when PNG is given, draws the median
# p50 and p99 of each rate and target with bench/plot/latplot. Each run is
# bounded by bench/run.sh (TIMEOUT, default here 180 s); at the defaults
# the sweep takes about 15 minutes on 2 cores.
set -euo pipefail
out=$1
shift
png=""
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
	png=$1
	shift
fi
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "$0")" && pwd)
export TIMEOUT=${TIMEOUT:-180}
for rate in ${RATES:-5000 10000 20000 30000}; do
	"$here/compare.sh" "${ROUNDS:-3}" "$out" -- --scenario dm --users 1000 --duration 10s --rate "$rate" "$@"
done
if [ -n "$png" ]; then
	(cd "$here/.." && go run ./bench/plot/latplot -out "$png" "$out")
fi

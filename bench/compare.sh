#!/usr/bin/env bash
# bench/compare.sh — alternate courier and the Socket.IO peer on one scenario.
#
#   bench/compare.sh ROUNDS OUT.jsonl -- courier-bench flags...
#
# Runs bench/run.sh ROUNDS times for each target, alternating (courier,
# socketio, courier, …) so that both see the same machine conditions, and
# appends every JSON line to OUT.jsonl. Set TARGETS="courier" to run one.
set -euo pipefail
rounds=$1 out=$2
shift 2
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "$0")" && pwd)
for r in $(seq "$rounds"); do
	for t in ${TARGETS:-courier socketio}; do
		echo "compare.sh: round $r/$rounds $t: $*" >&2
		TARGET=$t "$here/run.sh" "$@" | tail -n 1 >>"$out"
	done
done

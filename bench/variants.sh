#!/usr/bin/env bash
# bench/variants.sh — alternate several variants of one run, round by round.
#
#   bench/variants.sh ROUNDS OUT.jsonl -- courier-bench flags... <<'END'
#   label-a | ENV=VALUE ... | more courier-bench flags
#   label-b | SERVER_ARGS='--compress' | --compress
#   END
#
# Each line of standard input is a variant: a label, environment settings
# for bench/run.sh (TARGET, SERVER_ARGS, COURIER_BIN, … quoted as in the
# shell; RUNNER='bench/nodes.sh 3 nats' runs another script that takes
# courier-bench flags, here a cluster) and courier-bench flags added to the
# common ones, separated by '|'; blank lines and lines starting with # are skipped. Every round runs
# each variant once, in order, so that all see the same machine
# conditions; each JSON line goes to OUT.jsonl with "variant":"label"
# added after "target". Every run is bounded by run.sh (TIMEOUT).
set -euo pipefail
rounds=$1 out=$2
shift 2
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "$0")" && pwd)
labels=() envs=() flags=()
while IFS='|' read -r label env_part flag_part; do
	label=$(echo "$label" | xargs)
	case "$label" in "" | \#*) continue ;; esac
	labels+=("$label") envs+=("$env_part") flags+=("$flag_part")
done
[ "${#labels[@]}" -gt 0 ] || {
	echo "variants.sh: no variants on standard input" >&2
	exit 2
}
for r in $(seq "$rounds"); do
	for i in "${!labels[@]}"; do
		eval "env_arr=(${envs[$i]})"
		eval "flag_arr=(${flags[$i]})"
		echo "variants.sh: round $r/$rounds ${labels[$i]}: ${envs[$i]} $* ${flags[$i]}" >&2
		# RUNNER is split into words: a script and its leading arguments.
		# shellcheck disable=SC2016 # $0 and $RUNNER belong to the inner shell
		line=$(cd "$here/.." && env "${env_arr[@]}" bash -c '${RUNNER:-"$0"} "$@"' "$here/run.sh" "$@" "${flag_arr[@]}" | tail -n 1) || true
		if [ -z "$line" ]; then
			echo "variants.sh: ${labels[$i]}: no result line" >&2
			continue
		fi
		# The label goes in after "target", where a reader looks first.
		echo "$line" | sed "s/^{\"target\":\"\([^\"]*\)\",/{\"target\":\"\1\",\"variant\":\"${labels[$i]}\",/" >>"$out"
	done
done

#!/usr/bin/env bash
# Runs the whole comparison: every library, idle and throughput, several
# rounds with the library order alternating, then prints the markdown tables.
# Bounded: each run has its own timeout and internal watchdog.
set -uo pipefail
cd "$(dirname "$0")"

LIBS=${LIBS:-"nbio nbio-std gws coder gorilla gorilla-lean gobwas"}
NS=${NS-"10000 19000"}   # idle connection counts (RLIMIT_NOFILE here is 20000)
ROUNDS=${ROUNDS:-2}       # idle rounds per N
TROUNDS=${TROUNDS:-3}     # throughput rounds
OUT=${OUT:-results/$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$OUT")"

bin="$(mktemp -d)/wscompare"
go build -o "$bin" . || exit 1

order() { # round number -> library list, reversed on even rounds
	if (( $1 % 2 == 0 )); then echo "$LIBS" | tr ' ' '\n' | tac | tr '\n' ' '; else echo "$LIBS"; fi
}

fail=0
for n in $NS; do
	for r in $(seq "$ROUNDS"); do
		for lib in $(order "$r"); do
			timeout 900 "$bin" -lib "$lib" -mode idle -n "$n" -per-src 5000 -out "$OUT" || { echo "FAILED: $lib idle $n"; fail=$((fail+1)); }
		done
	done
done
for r in $(seq "$TROUNDS"); do
	for lib in $(order "$r"); do
		timeout 300 "$bin" -lib "$lib" -mode throughput -tn 1000 -d 10s -out "$OUT" || { echo "FAILED: $lib throughput"; fail=$((fail+1)); }
	done
done

echo
echo "results: $OUT"
"$bin" -summarize "$OUT"
rm -rf "$(dirname "$bin")"
echo "failed runs: $fail"
exit $(( fail > 0 ))

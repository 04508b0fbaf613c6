#!/usr/bin/env bash
# Collector load: one collector with 100 simulated VMs and 100 HTTP probes at
# 1 s, publishing over CurveZMQ to an engine-side subscriber, for 60 s (or
# $MEDIC_COLLECTOR_BENCH_SECONDS, or $2). The HTTP server and the engine run
# as separate processes, so the figures are the collector's alone.
# Goal (issue 4): at most 10 MiB RSS and at most 1% of one core.
#
#   bench/collector_bench.sh build            # 60 s
#   bench/collector_bench.sh build 10         # a quick run
set -euo pipefail
build=${1:-build}
secs=${2:-${MEDIC_COLLECTOR_BENCH_SECONDS:-60}}
bin="$build/bench/collector_load_bench"
[ -x "$bin" ] || { echo "collector_bench: $bin not built" >&2; exit 1; }
out="$build/bench-results"
mkdir -p "$out"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$bin" --http $((2 * secs + 30)) >"$tmp/http" 2>&1 &
pids+=($!)
"$bin" --engine $((2 * secs + 30)) >"$tmp/engine" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q '^port ' "$tmp/http" && grep -q '^urgent ' "$tmp/engine" && break
  sleep 0.1
done
port=$(awk '/^port /{print $2}' "$tmp/http")
events=$(awk '/^events /{print $2}' "$tmp/engine")
urgent=$(awk '/^urgent /{print $2}' "$tmp/engine")
[ -n "$port" ] && [ -n "$urgent" ] || { echo "collector_bench: helpers did not start" >&2; exit 1; }

echo "collector_bench: $(nproc) cores, ${secs}s, http on $port, engine on $events $urgent"
"$bin" --collector "$secs" "$port" "$events" "$urgent" 100 100 | tee "$out/collector.txt"
# The same with probe connections kept alive between runs (reuse_connection).
"$bin" --collector "$secs" "$port" "$events" "$urgent" 100 100 reuse | tee -a "$out/collector.txt"
# The floor: the same libraries doing one of each thing, with no medic code
# (bench/floor/library_floor.cc). Collector RSS minus this is medic's own.
floor_bin="$build/bench/library_floor"
if [ -x "$floor_bin" ]; then
  "$floor_bin" "$port" 100 | tee -a "$out/collector.txt"
  col=$(awk '/^collector: rss now/{print $4; exit}' "$out/collector.txt")
  flo=$(awk '/^floor: rss/{print $3; exit}' "$out/collector.txt")
  echo "collector over the library floor: $((col - flo)) KiB ($col - $flo)" | tee -a "$out/collector.txt"
fi
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
grep -h '^engine:\|^http:' "$tmp/engine" "$tmp/http" | tee -a "$out/collector.txt"

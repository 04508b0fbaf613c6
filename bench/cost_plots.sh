#!/usr/bin/env bash
# How cost grows, as data and plots: runs cost_bench (rules), scale_bench
# (VMs) and replay_bench (replay speed by fleet size) with --csv into
# BUILD/bench-results/, then draws each CSV as a PNG there with gnuplot:
#   cost_rules.csv / .png    ingest per CPU second and decision time against rules
#   cost_vms.csv / .png      engine memory per VM and ingest against VMs
#   cost_replay.csv / .png   replay speed (times real time, events/s) against VMs
#
#   bench/cost_plots.sh [BUILD]        (default build; make bench runs it)
# COST_RULES (1,10,100,1000,10000), COST_VMS (10000,100000,1000000),
# REPLAY_VMS ("1000 10000"), REPLAY_SECONDS (60) narrow it for a quick look.
# About 3 minutes on 2 cores with the defaults. ingest against engines is not
# drawn: the engine does not yet run with others on PostgreSQL (issue 15).
set -euo pipefail
build=${1:-build}
out="$build/bench-results"
mkdir -p "$out"
if ! command -v gnuplot >/dev/null; then
  echo "cost_plots: gnuplot is missing (scripts/bootstrap installs gnuplot-nox)" >&2
  exit 1
fi
"$build/bench/cost_bench" --rules "${COST_RULES:-1,10,100,1000,10000}" --csv "$out/cost_rules.csv"
"$build/bench/scale_bench" --sizes "${COST_VMS:-10000,100000,1000000}" --csv "$out/cost_vms.csv"
rm -f "$out/cost_replay.csv"
for vms in ${REPLAY_VMS:-1000 10000}; do
  "$build/bench/replay_bench" --vms "$vms" --seconds "${REPLAY_SECONDS:-60}" --runs 3 \
    --dir "$out/replay-recording" --csv "$out/cost_replay.csv"
done

gnuplot <<EOF
set terminal pngcairo size 800,480 font "sans,10"
set datafile separator ","
set key top center
set grid
set logscale x 10
set format y "%.0s%c"
set format y2 "%.1s%c"

set output "$out/cost_rules.png"
set title "Rules engine: cost against the number of rules (10k VMs, half the rules evaluated per report)"
set xlabel "rules"
set ylabel "state reports per CPU second"
set y2label "panic -> decision, CPU microseconds"
set logscale y 10
set logscale y2 10
set ytics nomirror
set y2tics
plot "$out/cost_rules.csv" using 1:2 skip 1 with linespoints lw 2 title "ingest", \
     "" using 1:3 skip 1 axes x1y2 with linespoints title "decision p50", \
     "" using 1:4 skip 1 axes x1y2 with linespoints title "decision p99"

set output "$out/cost_vms.png"
set title "Rules engine: cost against the fleet (heartbeats, 103 rules)"
set xlabel "VMs"
set ylabel "heartbeats per CPU second"
set y2label "resident bytes per VM"
unset logscale y2
set y2range [0:*]
plot "$out/cost_vms.csv" using 1:4 skip 1 with linespoints lw 2 title "ingest", \
     "" using 1:2 skip 1 axes x1y2 with linespoints title "memory per VM"

set output "$out/cost_replay.png"
set title "medic rules replay: speed against the recorded fleet (103 rules)"
set xlabel "VMs in the recording"
set xrange [500:20000]
set ylabel "times real time"
set y2label "events per wall second"
set y2range [0:*]
plot "$out/cost_replay.csv" using 1:5 skip 1 with linespoints lw 2 title "replay speed", \
     "" using 1:6 skip 1 axes x1y2 with linespoints title "events per second"
EOF
rm -rf "$out/replay-recording"
for f in cost_rules cost_vms cost_replay; do
  [ -s "$out/$f.png" ] || { echo "cost_plots: $out/$f.png was not drawn" >&2; exit 1; }
  echo "cost_plots: $out/$f.csv, $out/$f.png"
done

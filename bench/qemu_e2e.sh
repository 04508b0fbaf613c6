#!/usr/bin/env bash
# Times the QEMU end-to-end scenarios: runs the e2e test binaries RUNS times
# (default 3) and prints, for each figure it reports (E2E_TIMING lines), the
# median, min and max in seconds, plus each scenario's wall time and that of
# one whole run.
# Usage: bench/qemu_e2e.sh [BUILD_DIR]   (env: RUNS, MEDIC_E2E_ACCEL=tcg|kvm|auto,
#   GTEST_FILTER to run some scenarios only, e.g. 'QemuFault.*' for the faults
#   of guests that lack pvpanic or an ACPI handler)
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bins=("$build/tests/e2e_qemu_guest_test" "$build/tests/e2e_qemu_lifecycle_test"
      "$build/tests/e2e_qemu_agent_test")
for bin in "${bins[@]}"; do
  [ -x "$bin" ] || { echo "qemu_e2e: no $bin (build first)" >&2; exit 1; }
done
runs=${RUNS:-3}
export MEDIC_SOURCE_DIR=$here
export MEDIC_GUEST_CACHE=${MEDIC_GUEST_CACHE:-$build/tests/e2e/guest-cache}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "# qemu e2e: accel=${MEDIC_E2E_ACCEL:-tcg}, $runs runs, $(nproc) cores, $(qemu-system-x86_64 --version | head -n 1)"
for i in $(seq "$runs"); do
  start=$(date +%s.%N)
  out=""
  for bin in "${bins[@]}"; do
    one=$("$bin" 2>&1) || { echo "$one" | tail -n 40; echo "qemu_e2e: run $i of $bin failed" >&2; exit 1; }
    out+=$one$'\n'
  done
  end=$(date +%s.%N)
  echo "$out" | grep '^E2E_TIMING ' >> "$tmp"
  # Each scenario's own wall time, from GoogleTest's "[       OK ] Suite.Name (N ms)".
  echo "$out" | sed -n 's/^\[ *OK \] Qemu[A-Za-z]*\.\([A-Za-z]*\) (\([0-9]*\) ms)$/\1 \2/p' \
    | awk '{ printf "E2E_TIMING scenario:%s %.2f\n", $1, $2 / 1000 }' >> "$tmp"
  awk -v s="$start" -v e="$end" 'BEGIN { printf "E2E_TIMING whole_e2e_binary_wall %.2f\n", e - s }' >> "$tmp"
done
printf '%-72s %8s %8s %8s\n' figure median min max
sort -k2,2 -k3,3n "$tmp" | awk '
  { v[$2] = v[$2] " " $3; n[$2]++ }
  END {
    for (k in v) {
      split(substr(v[k], 2), a, " ")
      m = n[k]; med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
      printf "%-72s %8.2f %8.2f %8.2f\n", k, med, a[1], a[m]
    }
  }' | sort

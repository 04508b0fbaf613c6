#!/usr/bin/env bash
# How long a newcomer's `make demo` takes to reach the live timeline: a clean
# clone of this checkout's HEAD in a temp dir, `make demo` with a timestamp
# (seconds since the start) on every output line, then the phases.
#
#   bench/make_demo_time.sh [--remove PKG...]
#
# --remove first uninstalls the named Debian packages (apt-get remove), so the
# run pays for installing them as a fresh machine would; the figure in
# docs/PERFORMANCE.md removed those this machine kind does not ship:
#   --remove libzmq3-dev cppzmq-dev libprotobuf-dev protobuf-compiler
#     libsodium-dev libcurl4-openssl-dev libspdlog-dev libyaml-cpp-dev
#     libcli11-dev nlohmann-json3-dev libmicrohttpd-dev prometheus-cpp-dev
#     libsystemd-dev libpqxx-dev
# The demo then runs its minute to the end; the clone is deleted afterwards.
# Set CCACHE_DISABLE=1 if ccache is configured, or the build is not cold.
set -euo pipefail

src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
if [[ "${1:-}" == --remove ]]; then
  shift
  [[ $# -gt 0 ]] || { echo "make_demo_time: --remove needs package names" >&2; exit 2; }
  apt-get remove -y -q "$@" >/dev/null
fi

work=$(mktemp -d /tmp/medic-demo-time.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone -q "$src" "$work/medic"
log="$work/make-demo.log"
start=$(date +%s%N)
(cd "$work/medic" && make demo 2>&1) | while IFS= read -r line; do
  now=$(( $(date +%s%N) - start ))
  printf '%d.%d %s\n' $(( now / 1000000000 )) $(( now / 100000000 % 10 )) "$line"
done > "$log"

phase() {  # the time of the first line matching $2, labelled $1
  local t
  t=$(grep -m1 -E "$2" "$log" | cut -d' ' -f1 || true)
  printf '%-28s %s\n' "$1" "$([[ -n "$t" ]] && echo "$t s" || echo "(not seen)")"
}
echo "make demo from a clean clone of $(git -C "$src" rev-parse --short HEAD), $(nproc) cores"
phase "bootstrap done" 'bootstrap: (done|all [0-9]+ packages present)'
phase "build files written" 'Build files have been written'
phase "medic built" 'Built target medic$'
phase "live timeline (first line)" '^[0-9.]+ +0\.00s '

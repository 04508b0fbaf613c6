#!/usr/bin/env bash
# What the build spends its time on: the user CPU seconds of compiling a few
# of medic's files with different debug-information flags, and of one file
# that includes nothing but a heavy header. Uses BUILD's compile_commands.json
# (run cmake first); each figure is one compile, so repeat on a noisy machine.
#
#   bench/compile_cost.sh [BUILD] [FILE.cc...]
set -euo pipefail

build=${1:-build}
shift || true
src=$(cd "$(dirname "$0")/.." && pwd)
files=("$@")
[[ ${#files[@]} -gt 0 ]] || files=(node/engine_outbox.cc rules/policies.cc audit/why_story.cc)
db="$build/compile_commands.json"
[[ -f "$db" ]] || { echo "compile_cost: no $db (configure $build with cmake first)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The compile command of FILE, NUL-separated, without its output, its
# source and its optimisation and debug flags.
base_command() {
  python3 - "$db" "$src/$1" <<'PY'
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if e["file"] == sys.argv[2]:
        args = shlex.split(e["command"])
        i = args.index("-o"); del args[i:i + 2]
        keep = [a for a in args
                if a not in ("-c", e["file"]) and not a.startswith(("-O", "-g"))]
        sys.stdout.write("\0".join(keep) + "\0")
        break
else:
    sys.exit("compile_cost: %s is not in the compile database" % sys.argv[2])
PY
}

cpu() {  # user seconds of one compile: cpu "FLAGS" SOURCE COMMAND...
  local flags=$1 source=$2; shift 2
  # shellcheck disable=SC2086 # FLAGS is a list of flags
  /usr/bin/time -f %U "$@" $flags -c "$source" -o "$out/x.o" 2>&1 >/dev/null | tail -1
}

echo "user CPU seconds, sum over: ${files[*]}"
for flags in "-O2 -g" "-O2 -g1" "-O2" "-O1 -g1"; do
  total=0
  for f in "${files[@]}"; do
    mapfile -d '' cmd < <(base_command "$f")
    t=$(cpu "$flags" "$src/$f" "${cmd[@]}")
    total=$(python3 -c "print(round($total + $t, 2))")
  done
  printf '  %-10s %s\n' "$flags" "$total"
done

echo "one file that includes only the header, -O2 -g1:"
mapfile -d '' cmd < <(base_command "${files[0]}")
for h in '<nlohmann/json.hpp>' '<yaml-cpp/yaml.h>' '"medic/v1/events.pb.h"' '<spdlog/spdlog.h>' '<string>'; do
  echo "#include $h" > "$out/h.cc"
  printf '  %-26s %s\n' "$h" "$(cpu "-O2 -g1" "$out/h.cc" "${cmd[@]}")"
done

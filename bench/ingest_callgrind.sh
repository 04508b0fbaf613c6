#!/bin/sh
# Instructions per event of each stage of the engine's ingest path, counted by
# callgrind (repeatable where wall time on a shared machine is not):
#
#   bench/ingest_callgrind.sh build/bench/ingest_bench [OUTDIR]
#
# Runs BM_IngestPath for 8 and for 72 batches and prints the difference per
# event (64 batches of 1000 state reports from VMs the engine already knows).
# Needs valgrind (not installed by scripts/bootstrap).
set -eu
bin=${1:?usage: $0 build/bench/ingest_bench [OUTDIR]}
out=${2:-${TMPDIR:-/tmp}/medic-ingest-callgrind}
mkdir -p "$out"
for n in 8 72; do
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$n" \
    --toggle-collect='medic::fabric::Opener::open*' \
    --toggle-collect='medic::fabric::BatchDecoder::decode*' \
    --toggle-collect='medic::rules::Engine::ingest*' \
    --toggle-collect='medic::rules::Engine::host_seen*' \
    "$bin" --benchmark_filter="BM_IngestPath/iterations:$n\$" >"$out/cg.$n.log" 2>&1
done
python3 - "$out/cg.8" "$out/cg.72" <<'EOF'
import re, sys
# Inclusive cost of every call to a function, summed by name, from the
# call records (calls= lines) of a callgrind file.
def inclusive(path):
    names, cost, cur = {}, {}, None
    lines = open(path).read().split('\n')
    for i, l in enumerate(lines):
        m = re.match(r'(c?fn)=\((\d+)\)(?: (.*))?$', l)
        if m:
            if m.group(3): names[m.group(2)] = m.group(3)
            if m.group(1) == 'cfn': cur = names[m.group(2)]
        elif l.startswith('calls='):
            cost[cur] = cost.get(cur, 0) + int(lines[i + 1].split()[1])
    return cost
def stage(cost, pattern):
    return sum(v for k, v in cost.items() if pattern in k and "'" not in k)
few, many = inclusive(sys.argv[1]), inclusive(sys.argv[2])
events = 64 * 1000
stages = [
    ('open (whole)', 'medic::fabric::Opener::open('),
    ('  of which Ed25519 verify', 'medic::fabric::verify_signature('),
    ('  of which schema walks', 'medic::fabric::check_schema('),
    ('  of which walk + fill', 'medic::fabric::check_and_fill('),
    ('decode', 'medic::fabric::BatchDecoder::decode('),
    ('Engine::host_seen', 'medic::rules::Engine::host_seen('),
    ('Engine::ingest', 'medic::rules::Engine::ingest('),
]
total = 0
for label, pattern in stages:
    per = (stage(many, pattern) - stage(few, pattern)) / events
    if not label.startswith(' '): total += per
    print(f'{label:28s} {per:8.0f} instructions per event')
print(f'{"total":28s} {total:8.0f} instructions per event')
EOF

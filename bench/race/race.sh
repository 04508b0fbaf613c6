#!/usr/bin/env bash
# The race: one fault, three remediators, side by side.
#
# A guest-like process (python3 http.server on 127.0.0.1) stops answering
# (SIGSTOP: "hang") or dies (SIGKILL: "crash"). Each contender must notice and
# run the same restart program (restart.sh: kill what is left, start a new
# server). Per repetition we record, in ns of CLOCK_REALTIME:
#   fault           the signal was sent
#   restart         restart.sh started (it stamps restarts.log first thing)
#   answering       the first HTTP 200 from the new server (polled every 10 ms)
# Contenders, each at its fastest sensible setting:
#   monit       Debian monit, `set daemon 1`, check process + HTTP check, restart program
#   prometheus  Debian prometheus (1 s scrape and evaluation) + blackbox exporter
#               (HTTP probe) + alertmanager (group_wait 0s) + a webhook receiver
#               (python3) that runs the restart program
#   medic       medic engine + medic agent as processes, sim backend with one VM,
#               an HTTP probe every 1 s on that VM (timeout learned from the
#               service's answers, a failure confirmed by a second run at once)
#               and a process probe every 1 s on the same pid file Monit reads
#               (its exit seen through a pidfd), a `probe.failed -> restart`
#               rule, the actuator's restart_hook running the restart program
#
# Fault phase: every contender runs its checks on its own free-running 1 s
# cycle, and the previous repetition's restart happened at a moment set by
# that cycle; so before each fault the script waits a further random
# 0-999 ms (bash $RANDOM, seeded with RACE_SEED, default 1), which puts the
# fault at a uniformly random point of every contender's cycle.
#
# Usage: bench/race/race.sh [build-dir]     (default: build)
# Env:   RACE_RUNS=20               repetitions per contender and fault kind
#        RACE_CONTENDERS="monit prometheus medic"
#        RACE_FAULTS="hang crash"
#        RACE_SEED=1                the seed of the fault phases
#        RACE_WARMUP=6              seconds every contender runs before its first fault
# Missing packages are installed with apt-get (only when missing); a contender
# whose package cannot be installed is skipped with a message. Everything
# listens on 127.0.0.1, is started and stopped here, and every wait is bounded.
set -uo pipefail

# Killed servers must not linger as zombies (a container's PID 1 may never
# reap orphans, and Monit counts a zombie as "still running"): re-run this
# script as a child subreaper, so bash reaps the orphans itself.
if [ -z "${RACE_SUBREAPER:-}" ]; then
  export RACE_SUBREAPER=1
  exec python3 -c 'import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
os.execvp("bash", ["bash"] + sys.argv[1:])' "$0" "$@"
fi

build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RACE_RUNS:-20}
CONTENDERS=${RACE_CONTENDERS:-"monit prometheus medic"}
FAULTS=${RACE_FAULTS:-"hang crash"}
RANDOM=${RACE_SEED:-1}
WARMUP=${RACE_WARMUP:-6}
work=$(mktemp -d /tmp/medic-race.XXXXXX)
results="$work/results.tsv"
: >"$results"
pids=()

log() { echo "race: $*" >&2; }
now_ns() { date +%s%N; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

cleanup() {
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null
  done
  sleep 0.3
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null
  done
  stop_service
  [ -n "${RACE_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# apt-get only when a command is missing; false when it stays missing.
need() {  # need <command> <package>
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends "$2" \
    >"$work/apt-$2.log" 2>&1 || true
  command -v "$1" >/dev/null 2>&1
}

svc_port=$(free_port)
mkdir -p "$work/www"
echo ok >"$work/www/index.html"

# The restart program every contender runs. It stamps the time first, then
# replaces the server. It never touches a process other than the one in the
# pid file.
cat >"$work/restart.sh" <<EOF
#!/bin/sh
date +%s%N >>"$work/restarts.log"
pid=\$(cat "$work/service.pid" 2>/dev/null)
if [ -n "\$pid" ]; then kill -9 "\$pid" 2>/dev/null; fi
cd "$work/www" && setsid python3 -m http.server --bind 127.0.0.1 $svc_port \\
  </dev/null >>"$work/service.log" 2>&1 &
echo \$! >"$work/service.pid"
exit 0
EOF
chmod +x "$work/restart.sh"
# Monit's restart is "stop program" then, once the process is gone, "start
# program"; its stop program kills the server and stamps the same log, so the
# restart counts from the moment Monit acted.
cat >"$work/stop.sh" <<EOF
#!/bin/sh
date +%s%N >>"$work/restarts.log"
pid=\$(cat "$work/service.pid" 2>/dev/null)
if [ -n "\$pid" ]; then kill -9 "\$pid" 2>/dev/null; fi
exit 0
EOF
chmod +x "$work/stop.sh"

stop_service() {
  local pid
  pid=$(cat "$work/service.pid" 2>/dev/null) || return 0
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  rm -f "$work/service.pid"
}

answering() {
  [ "$(curl -s -m 0.2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$svc_port/" 2>/dev/null)" = 200 ]
}

# Waits up to $2 seconds for the command $1 to succeed.
wait_for() {
  local cond=$1 limit_ns=$(($(now_ns) + $2 * 1000000000))
  while ! eval "$cond"; do
    [ "$(now_ns)" -gt "$limit_ns" ] && return 1
    sleep 0.01
  done
}

restarts() { [ -f "$work/restarts.log" ] && wc -l <"$work/restarts.log" || echo 0; }

# One contender: $1 name, $2 seconds to let it see the service healthy
# between repetitions.
race() {
  local name=$1 settle=$2 fault rep before t_fault t_restart t_up pid
  # Every contender has run this long before its first fault, as a deployed
  # one has (medic's probe has then learned its timeout from 5 answers).
  sleep "$WARMUP"
  for fault in $FAULTS; do
    for rep in $(seq 1 "$RUNS"); do
      if ! wait_for answering 15; then
        log "$name: service not answering before $fault #$rep; restarting it by hand"
        "$work/restart.sh"; wait_for answering 10 || { log "$name: giving up"; return 1; }
      fi
      sleep "$settle"
      sleep "0.$(printf '%03d' $((RANDOM % 1000)))"  # a random phase of every cycle
      before=$(restarts)
      pid=$(cat "$work/service.pid")
      t_fault=$(now_ns)
      if [ "$fault" = hang ]; then kill -STOP "$pid"; else kill -9 "$pid"; fi
      if ! wait_for '[ "$(restarts)" -gt "$before" ]' 30; then
        log "$name: no restart within 30 s after $fault #$rep"
        echo -e "$name\t$fault\t$rep\tmissed\tmissed" >>"$results"
        "$work/restart.sh"
        continue
      fi
      t_restart=$(sed -n "$((before + 1))p" "$work/restarts.log")
      if ! wait_for answering 30; then
        log "$name: not answering 30 s after the restart ($fault #$rep)"
        echo -e "$name\t$fault\t$rep\t$(((t_restart - t_fault) / 1000000))\tmissed" >>"$results"
        continue
      fi
      t_up=$(now_ns)
      echo -e "$name\t$fault\t$rep\t$(((t_restart - t_fault) / 1000000))\t$(((t_up - t_fault) / 1000000))" >>"$results"
      printf '.' >&2
    done
  done
  echo >&2
}

started=
start_bg() {  # start_bg <log> <argv...>: a daemon of ours, remembered for cleanup; pid in $started
  local logf=$1
  shift
  "$@" >"$logf" 2>&1 &
  started=$!
  pids+=("$started")
}

stop_pid() {
  kill "$1" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null
}

# ---------------------------------------------------------------- monit
run_monit() {
  need monit monit || { log "monit: cannot be installed; skipped"; return 0; }
  local d="$work/monit" port
  mkdir -p "$d"
  port=$(free_port)
  cat >"$d/monitrc" <<EOF
set daemon 1
set logfile $d/monit.log
set pidfile $d/monit.pid
set idfile $d/monit.id
set statefile $d/monit.state
set httpd port $port and use address 127.0.0.1
  allow 127.0.0.1
check process race-svc with pidfile $work/service.pid
  start program = "$work/restart.sh" with timeout 10 seconds
  stop program = "$work/stop.sh"
  if failed host 127.0.0.1 port $svc_port protocol http request "/" with timeout 1 seconds then restart
EOF
  chmod 600 "$d/monitrc"
  "$work/restart.sh"
  wait_for answering 10 || { log "monit: the service did not start"; return 1; }
  local m
  start_bg "$d/stdout.log" monit -c "$d/monitrc" -I
  m=$started
  sleep 2
  kill -0 "$m" 2>/dev/null || { log "monit: did not start: $(cat "$d/stdout.log")"; return 0; }
  log "monit $(monit -V | head -1 | awk '{print $NF}'): set daemon 1"
  race monit 2
  stop_pid "$m"
  stop_service
}

# ---------------------------------------------------------------- prometheus
run_prometheus() {
  need prometheus prometheus && need prometheus-alertmanager prometheus-alertmanager &&
    need prometheus-blackbox-exporter prometheus-blackbox-exporter ||
    { log "prometheus: a package cannot be installed; skipped"; return 0; }
  local d="$work/prom" pp ap bp wp
  mkdir -p "$d/data" "$d/am"
  pp=$(free_port); ap=$(free_port); bp=$(free_port); wp=$(free_port)
  cat >"$d/blackbox.yml" <<EOF
modules:
  http_2xx:
    prober: http
    timeout: 900ms
    http:
      preferred_ip_protocol: ip4
EOF
  cat >"$d/rules.yml" <<EOF
groups:
  - name: race
    interval: 1s
    rules:
      - alert: ServiceDown
        expr: probe_success{job="race"} == 0
        for: 0s
EOF
  cat >"$d/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 950ms
  evaluation_interval: 1s
rule_files: [$d/rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: ['127.0.0.1:$ap']}]
scrape_configs:
  - job_name: race
    metrics_path: /probe
    params: {module: [http_2xx]}
    static_configs: [{targets: ['http://127.0.0.1:$svc_port/']}]
    relabel_configs:
      - {source_labels: [__address__], target_label: __param_target}
      - {source_labels: [__param_target], target_label: instance}
      - {target_label: __address__, replacement: '127.0.0.1:$bp'}
EOF
  cat >"$d/alertmanager.yml" <<EOF
route:
  receiver: restart
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: restart
    webhook_configs:
      - url: http://127.0.0.1:$wp/
        send_resolved: false
EOF
  # The webhook receiver: runs the restart program once per firing alert
  # (keyed by its startsAt), answers at once.
  cat >"$d/webhook.py" <<EOF
import http.server, json, subprocess
seen = set()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        for a in body.get("alerts", []):
            key = (a.get("fingerprint"), a.get("startsAt"))
            if a.get("status") == "firing" and key not in seen:
                seen.add(key)
                subprocess.Popen(["$work/restart.sh"])
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", $wp), H).serve_forever()
EOF
  "$work/restart.sh"
  wait_for answering 10 || { log "prometheus: the service did not start"; return 1; }
  local w b a p
  start_bg "$d/webhook.log" python3 "$d/webhook.py"
  w=$started
  start_bg "$d/blackbox.log" prometheus-blackbox-exporter --config.file="$d/blackbox.yml" \
    --web.listen-address="127.0.0.1:$bp"
  b=$started
  start_bg "$d/alertmanager.log" prometheus-alertmanager --config.file="$d/alertmanager.yml" \
    --storage.path="$d/am" --web.listen-address="127.0.0.1:$ap" --cluster.listen-address=
  a=$started
  start_bg "$d/prometheus.log" prometheus --config.file="$d/prometheus.yml" \
    --storage.tsdb.path="$d/data" --web.listen-address="127.0.0.1:$pp"
  p=$started
  # Ready when Prometheus has scraped the probe as a success.
  if ! wait_for "curl -s 'http://127.0.0.1:$pp/api/v1/query?query=probe_success' | grep -q '\"1\"\\]'" 30; then
    log "prometheus: no successful probe in 30 s; skipped"
    tail -5 "$d/prometheus.log" "$d/alertmanager.log" "$d/blackbox.log" >&2
    for x in $p $a $b $w; do stop_pid "$x"; done
    stop_service
    return 0
  fi
  log "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), alertmanager, blackbox exporter: 1 s scrape and evaluation, group_wait 0s"
  # Settle 4 s: the previous alert must resolve (Prometheus stops sending it,
  # Alertmanager marks it resolved) so the next fault fires a new one.
  race prometheus 4
  for x in $p $a $b $w; do stop_pid "$x"; done
  stop_service
}

# ---------------------------------------------------------------- medic
run_medic() {
  local medic="$build/app/medic"
  [ -x "$medic" ] || { log "medic: $medic not built; skipped"; return 0; }
  local d="$work/medic" ek hk pe pu pa pc
  mkdir -p "$d"
  ek=$("$medic" keygen -o "$d/engine.key" 2>/dev/null | head -1)
  hk=$("$medic" keygen -o "$d/host-a.key" 2>/dev/null | head -1)
  pe=$(free_port); pu=$(free_port); pa=$(free_port); pc=$(free_port)
  cat >"$d/trust.yaml" <<EOF
nodes:
  - {name: engine-1, key: $ek, roles: [engine]}
  - {name: host-a, key: $hk, roles: [collector, actuator], hosts: [host-a]}
EOF
  cat >"$d/rules.yaml" <<EOF
rules:
  - name: web-down
    description: The service's HTTP probe failed; restart it.
    on: probe.failed
    do: restart
    cooldown: 1s
    budget: 1000 per 1h
    heal_within: 20s
EOF
  cat >"$d/engine.yaml" <<EOF
engine:
  name: engine-1
  key: $d/engine.key
  trust: $d/trust.yaml
  listen:
    events: tcp://127.0.0.1:$pe
    urgent: tcp://127.0.0.1:$pu
    actions: tcp://127.0.0.1:$pa
    control: tcp://127.0.0.1:$pc
  rules: [$d/rules.yaml]
  audit: {path: $d/audit.db}
  action_ttl: 30s
EOF
  # The probe is about the sim backend's one VM. Its id is the first uuid of
  # the simulator's id sequence for seed 1 (vmm/sim/sim.cc make_uuid over
  # splitmix64); the actuator refuses a VM its backend does not know.
  local vm_id
  vm_id=$(python3 -c '
M = (1 << 64) - 1
def nxt(s):
    s = (s + 0x9E3779B97F4A7C15) & M
    z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return s, z ^ (z >> 31)
s, hi = nxt(1)
s, lo = nxt(s)
hi = (hi & ~0xF000 & M) | 0x4000
lo = (lo & 0x3FFFFFFFFFFFFFFF) | 0x8000000000000000
print("%08x-%04x-%04x-%04x-%012x" % (hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFFF, lo >> 48, lo & 0xFFFFFFFFFFFF))')
  # Collector: flush every 100 ms so a probe result leaves at once; the probe
  # itself runs every 1 s like the peers' checks.
  cat >"$d/agent.yaml" <<EOF
collector:
  host: host-a
  key: $d/host-a.key
  trust: $d/trust.yaml
  interval: 100ms
  backend: {kind: sim, vms_per_host: 1, seed: 1, faults_per_hour: 0}
  engines:
    - {name: engine-1, key: $ek, events: tcp://127.0.0.1:$pe, urgent: tcp://127.0.0.1:$pu}
  probes:
    - name: web
      vm: $vm_id
      http: http://127.0.0.1:$svc_port/
      interval: 1s
      timeout: 900ms
      jitter: 0
      learn_timeout: true
      confirm: true
    - name: web-process
      vm: $vm_id
      process: {pid_file: $work/service.pid}
      interval: 1s
      jitter: 0
actuator:
  host: host-a
  engine: tcp://127.0.0.1:$pa
  engine_key: $ek
  key_file: $d/host-a.key
  trust_store: $d/trust.yaml
  journal: $d/host-a.journal.db
  restart_hook: [$work/restart.sh, "{vm}"]
EOF
  "$work/restart.sh"
  wait_for answering 10 || { log "medic: the service did not start"; return 1; }
  local e a
  start_bg "$d/engine.log" "$medic" engine -c "$d/engine.yaml"
  e=$started
  start_bg "$d/agent.log" "$medic" agent -c "$d/agent.yaml"
  a=$started
  sleep 2
  if ! kill -0 "$e" 2>/dev/null || ! kill -0 "$a" 2>/dev/null; then
    log "medic: engine or agent did not start"
    tail -5 "$d/engine.log" "$d/agent.log" >&2
    for x in $a $e; do stop_pid "$x"; done
    stop_service
    return 0
  fi
  log "medic $("$medic" --version 2>/dev/null | head -1): HTTP probe (learned timeout, confirmed) and process probe every 1 s, collector flush 100 ms"
  race medic 2
  for x in $a $e; do stop_pid "$x"; done
  stop_service
}

log "work dir $work; service on 127.0.0.1:$svc_port; $RUNS runs per contender and fault"
for c in $CONTENDERS; do
  case $c in
    monit) run_monit ;;
    prometheus) run_prometheus ;;
    medic) run_medic ;;
    *) log "unknown contender $c" ;;
  esac
done

# Summary: median and p95 per contender and fault, and each one's ratio to medic.
python3 - "$results" <<'EOF'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
data = {}
for name, fault, rep, restart, up in rows:
    d = data.setdefault((name, fault), {"restart": [], "up": [], "missed": 0})
    if restart == "missed" or up == "missed":
        d["missed"] += 1
    if restart != "missed": d["restart"].append(int(restart))
    if up != "missed": d["up"].append(int(up))
def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")
print("| fault | contender | runs | missed | fault → restart executed, median / p95 (ms) | fault → answering again, median / p95 (ms) | answering median / medic's |")
print("|---|---|---:|---:|---:|---:|---:|")
for fault in ["hang", "crash"]:
    ref = data.get(("medic", fault))
    ref_med = statistics.median(ref["up"]) if ref and ref["up"] else None
    for name in ["monit", "prometheus", "medic"]:
        d = data.get((name, fault))
        if not d: continue
        n = len(d["up"]) + d["missed"]
        um = statistics.median(d["up"]) if d["up"] else float("nan")
        ratio = f"{um / ref_med:.2f}" if ref_med else "-"
        print(f"| {fault} | {name} | {n} | {d['missed']} | {statistics.median(d['restart']) if d['restart'] else float('nan'):.0f} / {pct(d['restart'], 0.95):.0f} | {um:.0f} / {pct(d['up'], 0.95):.0f} | {ratio} |")
# The verdict: is medic ahead of every peer at the median and the p95, on
# both measures?
print()
for fault in ["hang", "crash"]:
    me = data.get(("medic", fault))
    peers = [n for n in ["monit", "prometheus"] if (n, fault) in data]
    if not me or not me["up"] or not peers: continue
    ahead = True
    for n in peers:
        d = data[(n, fault)]
        for key in ["restart", "up"]:
            if not d[key]: continue
            for q in [0.5, 0.95]:
                if pct(me[key], q) >= pct(d[key], q): ahead = False
    print(f"{fault}: medic {'ahead of' if ahead else 'NOT ahead of'} every peer ({', '.join(peers)}) at the median and p95 of both measures")
EOF

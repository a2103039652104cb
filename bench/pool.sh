#!/usr/bin/env bash
# Layer-4 load balancing benchmark: mtgate's `tcp` listener and HAProxy (Debian's, round-robin)
# in front of the same four local echo backends, and a direct connection to one backend, in one
# run on loopback. Prints new connections per second (the median of ROUNDS rounds that
# alternate between the two balancers over shared backends), throughput, and the time from a
# backend's death (SIGKILL under load) to the last client-visible error.
#
#   bench/pool.sh                 # about two minutes
#   DURATION=2s ROUNDS=1 bench/pool.sh     # quicker
#
# Installs haproxy with apt when it is missing (needs root). Each balancer gets the same
# health check (TCP, every 200 ms, fall 2, rise 2) and up to 3 connection attempts, moving to
# another server after a refusal (HAProxy: `retries 3` + `option redispatch 1`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${DURATION:-4s}"
# The same in seconds, for per-connection figures ("4s", "1500ms").
DURATION_S="$(awk -v d="$DURATION" 'BEGIN { if (d ~ /ms$/) print substr(d, 1, length(d) - 2) / 1000; else { sub(/s$/, "", d); print d } }')"
CONCURRENCY="${CONCURRENCY:-32}"
BENCH="$ROOT/target/release/mtgate-bench"
MTGATE="$ROOT/target/release/mtgate"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mtgate-pool-bench.XXXXXX")"
PIDS=()

log() { printf '== %s\n' "$*" >&2; }
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

if ! command -v haproxy >/dev/null; then
  log "installing haproxy"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null
fi
log "building release binaries"
cargo build --release --locked -q -p mtgate -p mtgate-bench

# Four echo backends; BACKEND_PIDS[i] serves BACKEND_PORTS[i].
BACKEND_PIDS=()
BACKEND_PORTS=()
start_backends() {
  BACKEND_PIDS=()
  BACKEND_PORTS=()
  for i in 0 1 2 3; do
    local port
    port="$(free_port)"
    "$BENCH" echo-server --listen "127.0.0.1:$port" >/dev/null &
    PIDS+=($!)
    BACKEND_PIDS+=($!)
    BACKEND_PORTS+=("$port")
  done
  for port in "${BACKEND_PORTS[@]}"; do wait_port "$port"; done
}
stop_backends() {
  for pid in "${BACKEND_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}

start_mtgate() {
  local port="$1" servers=""
  for p in "${BACKEND_PORTS[@]}"; do
    servers+="{ url = \"tcp://127.0.0.1:$p\" }, "
  done
  cat >"$WORK/mtgate.toml" <<EOF
[server]
log_level = "error"
[metrics]
enabled = false
[limits]
max_connections = 100000
[[pool]]
name = "bench"
strategy = "round-robin"
servers = [ $servers ]
[pool.health]
check = "tcp"
interval = "200ms"
timeout = "200ms"
rise = 2
fall = 2
[pool.retry]
attempts = 3
backoff_base = "1ms"
[[tcp]]
name = "bench"
listen = ["127.0.0.1:$port"]
pool = "bench"
EOF
  "$MTGATE" run --config "$WORK/mtgate.toml" >"$WORK/mtgate.log" 2>&1 &
  BALANCER_PID=$!
  PIDS+=($!)
  wait_port "$port"
}

start_haproxy() {
  local port="$1"
  {
    echo "global"
    echo "  maxconn 8000"
    echo "  nbthread 2"
    echo "defaults"
    echo "  mode tcp"
    echo "  timeout connect 2s"
    echo "  timeout client 30s"
    echo "  timeout server 30s"
    echo "  retries 3"
    echo "  option redispatch 1"
    echo "listen bench"
    echo "  bind 127.0.0.1:$port"
    echo "  balance roundrobin"
    for i in 0 1 2 3; do
      echo "  server b$i 127.0.0.1:${BACKEND_PORTS[$i]} check inter 200ms fall 2 rise 2"
    done
  } >"$WORK/haproxy.cfg"
  haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
  BALANCER_PID=$!
  PIDS+=($!)
  wait_port "$port"
}

load() {
  timeout 120 "$BENCH" tcp-load --duration "$DURATION" "$@" | sed -n 's/^result //p'
}

cpu_seconds() {
  awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"
}

declare -A RESULT
# The connection rate of both balancers, in alternating rounds over the same four backends
# (both up at once, one loaded at a time), so a drift of the machine's speed during the run
# weighs on both alike. Each balancer's figure is its median round.
ROUNDS="${ROUNDS:-5}"
connection_rounds() {
  local mtgate_port haproxy_port mtgate_pid haproxy_pid
  mtgate_port="$(free_port)"; haproxy_port="$(free_port)"
  start_backends
  start_mtgate "$mtgate_port"; mtgate_pid="$BALANCER_PID"
  start_haproxy "$haproxy_port"; haproxy_pid="$BALANCER_PID"
  local -A rates=() cpu=() per_conn=() failed=()
  local round name port pid before after row
  for round in $(seq "$ROUNDS"); do
    for name in mtgate haproxy; do
      if [[ "$name" == mtgate ]]; then port="$mtgate_port"; pid="$mtgate_pid"; else port="$haproxy_port"; pid="$haproxy_pid"; fi
      log "$name: connections, round $round of $ROUNDS"
      before="$(cpu_seconds "$pid")"
      row="$(load --target "127.0.0.1:$port" --mode connections --concurrency "$CONCURRENCY")"
      after="$(cpu_seconds "$pid")"
      rates[$name]+="$(field "$row" connections_per_second) "
      cpu[$name]+="$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }') "
      # CPU per proxied connection: both balancers get about the same CPU share of the two
      # cores, so this is what sets the rate, and it drifts less with the machine.
      per_conn[$name]+="$(awk -v a="$after" -v b="$before" -v r="$(field "$row" connections_per_second)" \
        -v d="$DURATION_S" 'BEGIN { printf "%.0f", (a - b) * 1e6 / (r * d) }') "
      failed[$name]=$(( ${failed[$name]:-0} + $(field "$row" failed) ))
    done
  done
  for name in mtgate haproxy; do
    local median
    median="$(tr ' ' '\n' <<<"${rates[$name]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
    RESULT[$name.conn]="connections_per_second=$median failed=${failed[$name]}"
    RESULT[$name.rounds]="${rates[$name]% }"
    RESULT[$name.cpu]="$(tr ' ' '\n' <<<"${cpu[$name]}" | grep . | paste -sd/)"
    RESULT[$name.per_conn]="$(tr ' ' '\n' <<<"${per_conn[$name]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
  done
  kill "$mtgate_pid" "$haproxy_pid" 2>/dev/null || true
  wait "$mtgate_pid" "$haproxy_pid" 2>/dev/null || true
  stop_backends
}

measure() {
  local name="$1" kind="$2" port
  port="$(free_port)"
  start_backends
  case "$kind" in
    mtgate) start_mtgate "$port" ;;
    haproxy) start_haproxy "$port" ;;
    direct) port="${BACKEND_PORTS[0]}"; BALANCER_PID="" ;;
  esac
  if [[ "$kind" == direct ]]; then
    log "$name: connections"
    RESULT[$name.conn]="$(load --target "127.0.0.1:$port" --mode connections --concurrency "$CONCURRENCY")"
    RESULT[$name.cpu]="-"
  fi
  log "$name: throughput"
  RESULT[$name.tput]="$(load --target "127.0.0.1:$port" --mode throughput --concurrency 8)"
  if [[ "$kind" != direct ]]; then
    log "$name: a backend dies under load"
    RESULT[$name.kill]="$(load --target "127.0.0.1:$port" --mode connections --concurrency "$CONCURRENCY" --kill-pid "${BACKEND_PIDS[1]}" --kill-after 1s)"
    kill "$BALANCER_PID" 2>/dev/null || true
    wait "$BALANCER_PID" 2>/dev/null || true
  fi
  stop_backends
}

field() { sed -n "s/.*$2=\([^ ]*\).*/\1/p" <<<"$1"; }
connection_rounds
measure "mtgate" mtgate
measure "haproxy" haproxy
measure "direct" direct

printf '\n%-10s %14s %16s %12s %10s %22s\n' "target" "new conn/s" "CPU s/round" "MB/s (8c)" "failed" "errors after a kill"
for name in mtgate haproxy direct; do
  conn="${RESULT[$name.conn]}"
  kill_row="${RESULT[$name.kill]:-}"
  after="-"
  if [[ -n "$kill_row" ]]; then
    after="$(field "$kill_row" errors_after_kill_ms) ms ($(field "$kill_row" failed) failed)"
  fi
  printf '%-10s %14s %16s %12s %10s %22s\n' "$name" "$(field "$conn" connections_per_second)" \
    "${RESULT[$name.cpu]}" "$(field "${RESULT[$name.tput]}" megabytes_per_second)" \
    "$(field "$conn" failed)" "$after"
done
printf '\nnew conn/s per round (alternating, median above): mtgate %s; haproxy %s\n' \
  "${RESULT[mtgate.rounds]}" "${RESULT[haproxy.rounds]}"
printf 'balancer CPU per connection (median round): mtgate %s µs; haproxy %s µs\n' \
  "${RESULT[mtgate.per_conn]}" "${RESULT[haproxy.per_conn]}"
mtgate_rate="$(field "${RESULT[mtgate.conn]}" connections_per_second)"
haproxy_rate="$(field "${RESULT[haproxy.conn]}" connections_per_second)"
printf '\ntarget: mtgate new conn/s >= haproxy: %s (%s vs %s)\n' \
  "$( [[ "$mtgate_rate" -ge "$haproxy_rate" ]] && echo met || echo MISSED)" "$mtgate_rate" "$haproxy_rate"
echo "failover target: errors end within ejection (immediate on refusal) + one check interval (200 ms)"

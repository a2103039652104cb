#!/usr/bin/env bash
# Middle-proxy mode against direct mode, on loopback, in one run: the same mtgate build, the
# same client load (plain secret, intermediate transport), once with `mode = "direct"` to a
# fake DC (raw echo) and once with `mode = "middle"` through a fake Telegram middle proxy
# (mtgate-bench fake-middle: the RPC protocol with AES-256-CBC, echoing each RPC_PROXY_REQ).
#
#   bench/middle.sh
#   CLIENTS=2000 DURATION=2s bench/middle.sh     # quicker
#
# Prints relay throughput (1 and 8 connections), handshakes per second (8 clients), and the
# proxy's RSS with CLIENTS idle clients, plus how many middle-proxy connections carried them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${DURATION:-3s}"
CLIENTS="${CLIENTS:-5000}"
MAX_CONNECTIONS="${MAX_CONNECTIONS:-8}"
KEY="0123456789abcdef0123456789abcdef"
TAG="00112233445566778899aabbccddeeff"
BENCH="$ROOT/target/release/mtgate-bench"
MTGATE="$ROOT/target/release/mtgate"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mtgate-middle-bench.XXXXXX")"
PIDS=()

log() { printf '== %s\n' "$*" >&2; }
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  log "building release binaries"
  cargo build --release --locked -p mtgate -p mtgate-bench >&2
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_listening() {
  local logfile="$1" line
  for _ in $(seq 100); do
    line="$(grep -m1 '^listening ' "$logfile" 2>/dev/null || true)"
    if [[ -n "$line" ]]; then echo "${line#listening }"; return 0; fi
    sleep 0.1
  done
  return 1
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

"$BENCH" fake-dc --listen 127.0.0.1:0 --raw-echo --idle-timeout 600s >"$WORK/dc.log" 2>&1 &
PIDS+=($!)
DC="$(wait_listening "$WORK/dc.log")"
head -c 128 /dev/urandom >"$WORK/proxy-secret"
"$BENCH" fake-middle --listen 127.0.0.1:0 --secret-file "$WORK/proxy-secret" \
  >"$WORK/me.log" 2>&1 &
ME_PID=$!
PIDS+=("$ME_PID")
ME="$(wait_listening "$WORK/me.log")"
printf 'default 2;\nproxy_for 2 %s;\n' "$ME" >"$WORK/proxy-multi.conf"

run_mode() {
  local mode="$1" port pid
  port="$(free_port)"
  cat >"$WORK/$mode.toml" <<EOF
[server]
log_level = "warn"
state_dir = "$WORK/state"
[metrics]
listen = "127.0.0.1:0"
[limits]
max_connections = 100000
[telegram]
mode = "$mode"
ad_tag = "$TAG"
dc_overrides = { "2" = ["$DC"] }
[telegram.middle]
proxy_secret_file = "$WORK/proxy-secret"
proxy_config_file = "$WORK/proxy-multi.conf"
min_connections = 4
max_connections = $MAX_CONNECTIONS
[[mtproto]]
name = "bench"
listen = ["127.0.0.1:$port"]
modes = ["classic"]
idle_timeout = "10m"
[mtproto.masking]
enabled = false
[mtproto.users]
bench = "$KEY"
EOF
  "$MTGATE" run --config "$WORK/$mode.toml" >"$WORK/$mode.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_port "$port" || { cat "$WORK/$mode.log" >&2; exit 1; }
  log "load: $mode mode"
  MTGATE_BENCH_SECRET="$KEY" timeout 600 "$BENCH" load --target "127.0.0.1:$port" \
    --output kv --duration "$DURATION" --handshake-duration "$DURATION" \
    --idle-connections "$CLIENTS" --measure-pid "$pid" --idle-cooldown 1s \
    >"$WORK/$mode.kv" 2>"$WORK/$mode.err" || {
    echo "load_error=$(tail -n1 "$WORK/$mode.err")" >>"$WORK/$mode.kv"
  }
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

kv() { grep -m1 "^$2=" "$WORK/$1.kv" 2>/dev/null | cut -d= -f2- || echo "-"; }

run_mode direct
run_mode middle
kill "$ME_PID"
wait "$ME_PID" 2>/dev/null || true

printf '\nmtgate, direct vs middle-proxy mode: %s cores, loopback, plain secret (intermediate)\n' "$(nproc)"
printf '%-8s %9s %9s %13s %11s %11s %9s %8s\n' mode "MB/s 1c" "MB/s 8c" "handshakes/s" \
  "RSS before" "RSS idle" "KiB/conn" "clients"
for mode in direct middle; do
  printf '%-8s %9s %9s %13s %10sK %10sK %9s %8s\n' "$mode" \
    "$(kv "$mode" throughput_mbps_c1)" "$(kv "$mode" throughput_mbps_c8)" \
    "$(kv "$mode" handshakes_per_s)" "$(kv "$mode" rss_before_kib)" \
    "$(kv "$mode" rss_after_kib)" "$(kv "$mode" rss_per_conn_kib)" "$(kv "$mode" idle_opened)"
  if [[ "$(kv "$mode" load_error)" != "-" ]]; then
    printf '         ! %s\n' "$(kv "$mode" load_error)"
  fi
done
printf '\nmiddle-proxy side: %s\n' "$(grep -m1 '^fake middle proxy:' "$WORK/me.log" || echo '-')"
printf '(connections = middle-proxy connections mtgate opened; max_connections = %s)\n' \
  "$MAX_CONNECTIONS"

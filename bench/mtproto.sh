#!/usr/bin/env bash
# MTProto proxy benchmark: mtgate (dd, ee) and mtprotoproxy (dd, ee) side by side with the
# ceiling (clients straight to the fake DC), all on loopback, in one run of a few minutes.
#
#   bench/mtproto.sh                 # everything
#   DURATION=1s IDLE_CONNECTIONS=2000 bench/mtproto.sh   # quicker
#   WORKERS="1 2" bench/mtproto.sh   # only mtgate dd, once per `server.workers` value (-M N)
#
# What it does: builds the release binaries, starts one fake DC (raw echo), then for each
# proxy and secret kind starts a fresh proxy pointed at the fake DC, runs `mtgate-bench load`
# (idle memory first, then relay throughput with 1 and 8 connections, then handshakes per
# second with 8 clients), stops the proxy, and prints a table with the issue's targets.
# mtprotoproxy comes from PyPI into bench/.venv and runs through bench/mtprotoproxy_bench.py,
# which points its hard-coded DC table at the fake DC and keeps it off the network.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${DURATION:-3s}"
HANDSHAKE_DURATION="${HANDSHAKE_DURATION:-3s}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-10000}"
KEY="0123456789abcdef0123456789abcdef"
DOMAIN="example.com"
DOMAIN_HEX="$(printf '%s' "$DOMAIN" | od -An -tx1 | tr -d ' \n')"
SECRET_DD="dd${KEY}"
SECRET_EE="ee${KEY}${DOMAIN_HEX}"

WORKERS="${WORKERS:-}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET_DIR/release/mtgate-bench"
MTGATE="$TARGET_DIR/release/mtgate"
VENV="$ROOT/bench/.venv"
RESULTS="$ROOT/bench/results"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mtgate-bench.XXXXXX")"
STARTED_PIDS=()
ROWS=()
NOTES=()

log() { printf '== %s\n' "$*" >&2; }

cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until a process prints "listening ADDR" into its log; echoes ADDR.
wait_listening() {
  local pid="$1" logfile="$2" line
  for _ in $(seq 100); do
    line="$(grep -m1 '^listening ' "$logfile" 2>/dev/null || true)"
    if [[ -n "$line" ]]; then
      line="${line#listening }"
      echo "${line%% *}"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Waits until something accepts on 127.0.0.1:PORT while PID lives.
wait_port() {
  local pid="$1" port="$2"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# run_load LABEL TARGET PID|"" SECRET|"" [extra load args...]: figures into $WORK/LABEL.kv.
run_load() {
  local label="$1" target="$2" pid="$3" secret="$4"
  shift 4
  local args=(load --target "$target" --output kv --duration "$DURATION"
    --handshake-duration "$HANDSHAKE_DURATION" --idle-connections "$IDLE")
  if [[ -n "$pid" ]]; then
    args+=(--measure-pid "$pid")
  fi
  # The secret travels in the environment, not on the command line where ps shows it.
  local env=(env -u MTGATE_BENCH_SECRET)
  if [[ -n "$secret" ]]; then
    env=(env "MTGATE_BENCH_SECRET=$secret")
  else
    args+=(--direct)
  fi
  log "load: $label"
  if ! "${env[@]}" timeout 200 "$BENCH" "${args[@]}" "$@" \
    >"$WORK/$label.kv" 2>"$WORK/$label.err"; then
    echo "load_error=mtgate-bench load failed: $(tail -n1 "$WORK/$label.err")" >>"$WORK/$label.kv"
  fi
  ROWS+=("$label")
}

# not_run LABEL MESSAGE: a row without figures, MESSAGE printed in its place.
not_run() {
  echo "not_run=$2" >"$WORK/$1.kv"
  ROWS+=("$1")
}

kv() {
  local value
  value="$(grep -m1 "^$2=" "$WORK/$1.kv" 2>/dev/null | cut -d= -f2- || true)"
  echo "${value:--}"
}

# ---------------------------------------------------------------------------------------------

log "building release binaries"
cargo build --release -j2 -p mtgate-bench
MTGATE_BUILD="no target/release/mtgate"
if ! cargo build --release -j2 -p mtgate --bins >"$WORK/mtgate-build.log" 2>&1; then
  MTGATE_BUILD="cargo build -p mtgate failed: $(grep -m1 '^error' "$WORK/mtgate-build.log" || tail -n1 "$WORK/mtgate-build.log")"
fi

# Every client connection through a proxy costs the proxy two descriptors (client and DC).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
IDLE="$IDLE_CONNECTIONS"
if [[ "$NOFILE" != "unlimited" ]] && ((IDLE > (NOFILE - 500) / 2)); then
  IDLE=$(((NOFILE - 500) / 2))
  NOTES+=("idle connections limited to $IDLE by the open-files hard limit ($NOFILE); \
a proxy needs two descriptors per client; RSS at 10,000 is projected linearly")
fi

log "starting the fake DC"
"$BENCH" fake-dc --listen 127.0.0.1:0 --raw-echo --idle-timeout 300s \
  >"$WORK/fake-dc.log" 2>&1 &
DC_PID=$!
STARTED_PIDS+=("$DC_PID")
DC_ADDR="$(wait_listening "$DC_PID" "$WORK/fake-dc.log")" || {
  cat "$WORK/fake-dc.log" >&2
  exit 1
}
DC_PORT="${DC_ADDR##*:}"

run_load ceiling "$DC_ADDR" "" "" --skip idle

# --- mtgate ----------------------------------------------------------------------------------
# mtgate_row KIND SECRET [WORKERS [extra load args...]]: WORKERS sets `server.workers` (the
# runtime's worker threads, what the official -M N maps to) and names the row KIND-wN.
mtgate_row() {
  local kind="$1" secret="$2" workers="${3:-}" port pid
  shift 2
  shift $(($# > 0 ? 1 : 0))
  local workers_line=""
  if [[ -n "$workers" ]]; then
    workers_line="workers = $workers"
    kind="$kind-w$workers"
  fi
  if [[ ! -x "$MTGATE" ]]; then
    not_run "mtgate-$kind" "mtgate: not built ($MTGATE_BUILD)"
    return
  fi
  port="$(free_port)"
  cat >"$WORK/mtgate-$kind.toml" <<EOF
[server]
log_level = "warn"
state_dir = "$WORK/mtgate-state-$kind"
$workers_line

[metrics]
listen = "127.0.0.1:0"

[telegram]
dc_overrides = { "2" = ["$DC_ADDR"] }

[[mtproto]]
name = "bench"
listen = ["127.0.0.1:$port"]
modes = ["classic", "padded", "fake-tls"]

[mtproto.fake_tls]
domains = ["$DOMAIN"]

[mtproto.masking]
enabled = false

[mtproto.users]
bench = "$KEY"
EOF
  "$MTGATE" run --config "$WORK/mtgate-$kind.toml" >"$WORK/mtgate-$kind.log" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  if ! wait_port "$pid" "$port"; then
    not_run "mtgate-$kind" "mtgate: not built or failed to start ($(tail -n1 "$WORK/mtgate-$kind.log"))"
    stop "$pid"
    return
  fi
  run_load "mtgate-$kind" "127.0.0.1:$port" "$pid" "$secret" "$@"
  stop "$pid"
}
if [[ -n "$WORKERS" ]]; then
  for w in $WORKERS; do
    mtgate_row dd "$SECRET_DD" "$w" --skip idle
  done
else
  mtgate_row dd "$SECRET_DD"
  mtgate_row ee "$SECRET_EE"
fi

# --- mtprotoproxy ----------------------------------------------------------------------------
MTPP_REASON=""
setup_mtprotoproxy() {
  if [[ ! -x "$VENV/bin/python" ]] && ! python3 -m venv "$VENV" >"$WORK/venv.log" 2>&1; then
    MTPP_REASON="cannot create a venv: $(tail -n1 "$WORK/venv.log")"
    return 1
  fi
  if [[ ! -f "$VENV/bin/mtprotoproxy.py" ]]; then
    log "installing mtprotoproxy into bench/.venv"
    # cryptography and uvloop are what mtprotoproxy's README recommends for speed.
    if ! "$VENV/bin/pip" install -q --disable-pip-version-check \
      mtprotoproxy==1.0.6 cryptography uvloop >"$WORK/pip.log" 2>&1 &&
      ! "$VENV/bin/pip" install -q --disable-pip-version-check \
        mtprotoproxy==1.0.6 >>"$WORK/pip.log" 2>&1; then
      MTPP_REASON="pip install failed: $(tail -n1 "$WORK/pip.log")"
      return 1
    fi
  fi
  if [[ ! -f "$VENV/bin/mtprotoproxy.py" ]]; then
    MTPP_REASON="the package installed no mtprotoproxy.py"
    return 1
  fi
}

mtprotoproxy_row() {
  local kind="$1" secret="$2" port pid
  if [[ -n "$MTPP_REASON" ]]; then
    not_run "mtprotoproxy-$kind" "mtprotoproxy: not run ($MTPP_REASON)"
    return
  fi
  port="$(free_port)"
  "$VENV/bin/python" bench/mtprotoproxy_bench.py "$VENV/bin/mtprotoproxy.py" "$port" "$KEY" \
    127.0.0.1 "$DC_PORT" "$DOMAIN" >"$WORK/mtprotoproxy-$kind.log" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  if ! wait_listening "$pid" "$WORK/mtprotoproxy-$kind.log" >/dev/null; then
    not_run "mtprotoproxy-$kind" "mtprotoproxy: not run (failed to start: $(tail -n1 "$WORK/mtprotoproxy-$kind.log"))"
    stop "$pid"
    return
  fi
  run_load "mtprotoproxy-$kind" "127.0.0.1:$port" "$pid" "$secret"
  stop "$pid"
}
if [[ -z "$WORKERS" ]]; then
  setup_mtprotoproxy || true
  mtprotoproxy_row dd "$SECRET_DD"
  mtprotoproxy_row ee "$SECRET_EE"
fi

# --- table -----------------------------------------------------------------------------------
CEILING_8="$(kv ceiling throughput_mbps_c8)"

pct_of_ceiling() {
  awk -v v="$1" -v c="$CEILING_8" \
    'BEGIN { if (v == "-" || c == "-" || c == 0) print "-"; else printf "%.0f%%", 100 * v / c }'
}

mib() {
  awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1fM", k / 1024 }'
}

# RSS with 10,000 idle connections in MB (10^6 bytes), projected when fewer were opened.
rss_at_10k_mb() {
  local label="$1"
  awk -v before="$(kv "$label" rss_before_kib)" -v per="$(kv "$label" rss_per_conn_kib)" \
    -v after="$(kv "$label" rss_after_kib)" -v opened="$(kv "$label" idle_opened)" \
    'BEGIN {
       if (after == "-") { print "-"; exit }
       kib = (opened >= 10000) ? after : before + per * 10000
       printf "%.1f", kib * 1024 / 1e6
     }'
}

print_table() {
  local label name hs
  printf '\nMTProto relay benchmark: %s cores, %s, loopback; fake DC in raw-echo mode\n' \
    "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf 'throughput = echoed MB/s (10^6 bytes; each byte crossed the proxy once each way);\n'
  printf 'handshakes = connect + fake TLS (ee) + obfs2 header + one echoed frame + close;\n'
  printf 'idle = RSS of the proxy process with %s idle connections (handshake + echo done)\n\n' "$IDLE"
  printf '%-18s %10s %10s %8s %13s %11s %11s %9s\n' "" "MB/s 1c" "MB/s 8c" "8c/ceil" \
    "handshakes/s" "RSS before" "RSS idle" "KiB/conn"
  for label in "${ROWS[@]}"; do
    case "$label" in
      ceiling) name="direct (ceiling)" ;;
      *) name="${label/-/ }" ;;
    esac
    if [[ "$(kv "$label" not_run)" != "-" ]]; then
      printf '%-18s %s\n' "$name" "$(kv "$label" not_run)"
      continue
    fi
    hs="$(kv "$label" handshakes_per_s)"
    printf '%-18s %10s %10s %8s %13s %10s %10s %9s\n' "$name" \
      "$(kv "$label" throughput_mbps_c1)" "$(kv "$label" throughput_mbps_c8)" \
      "$(pct_of_ceiling "$(kv "$label" throughput_mbps_c8)")" "$hs" \
      "$(mib "$(kv "$label" rss_before_kib)")" "$(mib "$(kv "$label" rss_after_kib)")" \
      "$(kv "$label" rss_per_conn_kib)"
    local key
    for key in load_error throughput_error_c1 throughput_error_c8 handshakes_error idle_error \
      throughput_c1_error throughput_c8_error; do
      if [[ "$(kv "$label" "$key")" != "-" ]]; then
        printf '%-18s   ! %s: %s\n' "" "$key" "$(kv "$label" "$key")"
      fi
    done
  done

  if [[ -n "$WORKERS" ]]; then
    printf '\nworkers runs (WORKERS="%s"): idle memory not measured\n' "$WORKERS"
    return
  fi
  printf '\ntargets (issue): mtgate ee 8c >= 40%% of ceiling, dd >= 45%%; handshakes ee >= 4000/s,'
  printf ' dd >= 6000/s; RSS with 10,000 idle connections <= 50 MB\n'
  check_targets mtgate-ee 40 4000
  check_targets mtgate-dd 45 6000
  local note
  for note in "${NOTES[@]}"; do
    printf 'note: %s\n' "$note"
  done
}

check_targets() {
  local label="$1" pct="$2" hs_target="$3"
  if [[ "$(kv "$label" not_run)" != "-" ]]; then
    printf '  %-10s not run\n' "$label"
    return
  fi
  awk -v label="$label" -v tp="$(kv "$label" throughput_mbps_c8)" -v ceil="$CEILING_8" \
    -v pct="$pct" -v hs="$(kv "$label" handshakes_per_s)" -v hs_target="$hs_target" \
    -v rss="$(rss_at_10k_mb "$label")" \
    'function verdict(ok) { return ok ? "ok  " : "MISS" }
     BEGIN {
       need = ceil * pct / 100
       printf "  %-10s throughput %s (%s >= %.0f MB/s)   handshakes %s (%s >= %d/s)   RSS@10k %s (%s <= 50 MB)\n",
         label,
         verdict(tp != "-" && tp >= need), tp, need,
         verdict(hs != "-" && hs >= hs_target), hs, hs_target,
         verdict(rss != "-" && rss <= 50), rss
     }'
}

STAMP="$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RESULTS/mtproto-$STAMP-logs"
cp "$WORK"/*.log "$WORK"/*.err "$WORK"/*.kv "$RESULTS/mtproto-$STAMP-logs/" 2>/dev/null || true
print_table | tee "$RESULTS/mtproto-$STAMP.txt"
log "saved to bench/results/mtproto-$STAMP.txt (logs beside it)"

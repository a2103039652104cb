#!/usr/bin/env bash
# WebSocket throughput: messages/s and MB/s through mtgate's websocket listener vs directly to
# the Node `ws` echo backend, in one run, with the CPU seconds mtgate and the backend spent per
# message. Cases (binary, echo): 200 connections x 16 KiB and 200 x 64 B with one message in
# flight per connection (lockstep: each echo must come back before the next message leaves), and
# 200 x 64 B with 16 in flight per connection (a stream of small messages, as a chat or broker
# fan-out carries). 127.0.0.1 only.
#
# Usage: bench/websocket.sh [SECONDS]      (default 10 per case)
# Env:   MTGATE_BIN  the binary (default target/release/mtgate, built if missing)
#        MTGATE_INTEROP_DIR  where ws is installed (default /tmp/mtgate-interop-ws)
#        MTGATE_WORKERS  mtgate's runtime threads (default 2)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-10}"
work="${MTGATE_INTEROP_DIR:-/tmp/mtgate-interop-ws}"
target="${CARGO_TARGET_DIR:-$repo/target}"
bin="${MTGATE_BIN:-$target/release/mtgate}"
mkdir -p "$work"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}
# CPU seconds (user + system) a process has used.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

if [ ! -d "$work/node/node_modules/ws" ]; then
    timeout 300 npm install --silent --no-audit --no-fund --prefix "$work/node" ws@8.18.3 >/dev/null
fi
export NODE_PATH="$work/node/node_modules"
[ -x "$bin" ] || (cd "$repo" && cargo build --release --locked -p mtgate -q)

port_echo="$(free_port)"; port_ws="$(free_port)"; port_metrics="$(free_port)"
node "$repo/tests/interop/websocket/backend.js" "$port_echo" echo >"$work/bench-backend.log" 2>&1 &
backend=$!; pids+=("$backend")
cat >"$work/bench.toml" <<TOML
[server]
log_level = "warn"
state_dir = "$work/state"
workers = ${MTGATE_WORKERS:-2}
[metrics]
listen = "127.0.0.1:$port_metrics"
[[pool]]
name = "echo"
servers = [{ url = "tcp://127.0.0.1:$port_echo" }]
[[websocket]]
listen = ["127.0.0.1:$port_ws"]
routes = [{ path = "/", pool = "echo" }]
ping_interval = "0s"
TOML
"$bin" run --config "$work/bench.toml" >"$work/bench-mtgate.log" 2>&1 &
mtgate=$!; pids+=("$mtgate")
wait_port "$port_echo"; wait_port "$port_ws"

printf '%-8s %-6s %-7s %-7s %10s %8s %14s %14s  %s\n' path conns size window msgs/s MB/s "mtgate us/msg" "node us/msg" "target: >= 0.7x direct, mtgate us/msg < node's"
for case in "200 16384 1" "200 64 1" "200 64 16"; do
    set -- $case
    direct_rate=0
    for path in direct mtgate; do
        url="ws://127.0.0.1:$port_echo/"; [ "$path" = mtgate ] && url="ws://127.0.0.1:$port_ws/"
        m0="$(cpu "$mtgate")"; b0="$(cpu "$backend")"
        out="$(timeout $((seconds + 60)) node "$repo/bench/websocket/load.js" "$url" "$1" "$2" "$seconds" "$3")"
        m1="$(cpu "$mtgate")"; b1="$(cpu "$backend")"
        python3 - "$out" "$path" "$m0" "$m1" "$b0" "$b1" "$direct_rate" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); path = sys.argv[2]
m = float(sys.argv[4]) - float(sys.argv[3]); b = float(sys.argv[6]) - float(sys.argv[5])
n = max(r["messages"], 1)
mt = f"{m / n * 1e6:.1f}" if path == "mtgate" else "-"
verdict = ""
if path == "mtgate":
    ratio = r["msgs_per_s"] / max(int(sys.argv[7]), 1)
    met = ratio >= 0.7 and m / n < b / n
    verdict = f"  {ratio:.2f}x: {'met' if met else 'MISSED'}"
print(f"{path:<8} {r['conns']:<6} {r['size']:<7} {r['window']:<7} {r['msgs_per_s']:>10} {r['mb_per_s']:>8} {mt:>14} {b / n * 1e6:>14.1f}{verdict}")
PY
        if [ "$path" = direct ]; then
            direct_rate="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["msgs_per_s"])' "$out")"
        fi
    done
done

#!/usr/bin/env bash
# The reverse tunnel (gateway + agent over wss, TLS on) on loopback, in one run:
#   - iperf3 single-stream and 4-stream throughput: directly, through haproxy in TCP mode (the
#     plain-relay reference), and through mtgate's SOCKS5 listener -> gateway -> agent -> iperf3
#     (proxychains4 puts iperf3's connections through the SOCKS5 listener, as bench/socks.sh);
#   - p50/p99 of 64-byte request/response round trips on one stream (mtgate-bench rr-latency
#     against an echo server through the tunnel), idle and while another stream runs an iperf3
#     bulk transfer through the same agent connection;
#   - the gateway's RSS with 1,000 idle streams (bench/socks_idle.py: SOCKS5 CONNECT through the
#     tunnel to a local sink, one echo, then silence).
# Targets from issue 6 are printed next to the figures: single stream >= 3 Gbit/s and >= 0.5x
# haproxy's; interactive p99 < 50 ms under bulk load.
#
# Usage: bench/tunnel.sh        (root: installs missing Debian packages with apt-get)
# Env:   DURATION (iperf3 seconds, default 5), IDLE_STREAMS (default 1000),
#        MTGATE, MTGATE_BENCH (binaries, default target/release/…, built if missing),
#        MTGATE_BENCH_DIR (work directory, default /tmp/mtgate-bench-tunnel)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${MTGATE_BENCH_DIR:-/tmp/mtgate-bench-tunnel}"
duration="${DURATION:-5}"
idle="${IDLE_STREAMS:-1000}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
mtgate="${MTGATE:-$target_dir/release/mtgate}"
bench_bin="${MTGATE_BENCH:-$target_dir/release/mtgate-bench}"
log() { printf '[bench/tunnel] %s\n' "$*" >&2; }

packages=(iperf3 proxychains4 haproxy openssl)
missing=()
for p in iperf3 proxychains4 haproxy openssl; do command -v "$p" >/dev/null || missing+=("$p"); done
if ((${#missing[@]})); then
    log "installing Debian packages (missing: ${missing[*]})"
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
if [[ ! -x "$mtgate" || ! -x "$bench_bin" ]]; then
    (cd "$repo" && timeout 2400 cargo build --release --locked -p mtgate -p mtgate-bench)
fi

rm -rf "$work"; mkdir -p "$work"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    log "nothing listens on $1 ($2)"; tail -n 20 "$work/$2.log" >&2 || true; exit 1
}
# start NAME COMMAND...: runs in the background, logs to NAME.log, sets last_pid.
start() { local name="$1"; shift; "$@" >"$work/$name.log" 2>&1 & last_pid=$!; pids+=("$last_pid"); }

# A self-signed certificate for 127.0.0.1 (`mtgate cert`; openssl as a fallback, as an end
# entity: webpki refuses a CA certificate as the server's own); the agent pins it as ca_file.
if ! "$mtgate" cert --name 127.0.0.1 --name localhost --out-cert "$work/cert.pem" \
    --out-key "$work/key.pem" >"$work/cert.log" 2>&1; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -addext "basicConstraints=critical,CA:FALSE" \
        -keyout "$work/key.pem" -out "$work/cert.pem" 2>"$work/openssl.log"
fi

iperf_port=$(free_port); start iperf3 iperf3 -s -B 127.0.0.1 -p "$iperf_port"
echo_port=$(free_port); start echo "$bench_bin" echo-server --listen "127.0.0.1:$echo_port"
haproxy_port=$(free_port)
cat >"$work/haproxy.cfg" <<CONF
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend f
    bind 127.0.0.1:$haproxy_port
    default_backend b
backend b
    server iperf 127.0.0.1:$iperf_port
CONF
start haproxy haproxy -f "$work/haproxy.cfg"

gw_port=$(free_port); socks_port=$(free_port)
cat >"$work/gateway.toml" <<CONF
[server]
log_level = "warn"
state_dir = "$work/state"

[metrics]
enabled = false

[[gateway]]
name = "bench"
listen = ["127.0.0.1:$gw_port"]
path = "/ws"
cert = "$work/cert.pem"
key = "$work/key.pem"
max_streams_per_agent = 8192
[[gateway.credential]]
username = "bench"
password = "bench-password-0123456789"
group = "bench"

[[socks5]]
listen = ["127.0.0.1:$socks_port"]
gateway = "bench"
agent_group = "bench"
max_connections = 10000
rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
CONF
cat >"$work/agent.toml" <<CONF
gateway = "wss://127.0.0.1:$gw_port/ws"
ca_file = "$work/cert.pem"
username = "bench"
password = "bench-password-0123456789"
client_id = "bench-agent"
replicas = 1
max_concurrent_conns = 8192
allowed_hosts = ["127.0.0.1"]
log_level = "warn"
CONF
start gateway "$mtgate" run --config "$work/gateway.toml"; gateway_pid=$last_pid
for p in "$iperf_port" "$echo_port" "$haproxy_port" "$gw_port" "$socks_port"; do wait_port "$p" "port $p"; done
start agent "$mtgate" agent --config "$work/agent.toml"; agent_pid=$last_pid

log "waiting for the agent to join"
joined=0
for _ in $(seq 1 60); do
    if timeout 10 "$bench_bin" rr-latency --proxy "127.0.0.1:$socks_port" --target "127.0.0.1:$echo_port" \
        --count 1 --warmup 0 >/dev/null 2>&1; then joined=1; break; fi
    sleep 0.5
done
if ((!joined)); then
    log "no tunnel through the agent after 30 s"; tail -n 20 "$work/gateway.log" "$work/agent.log" >&2; exit 1
fi

gbits() { python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))'; }
printf 'strict_chain\nquiet_mode\n[ProxyList]\nsocks5 127.0.0.1 %s\n' "$socks_port" >"$work/pc.conf"
via_tunnel() {  # STREAMS
    timeout $((duration + 30)) proxychains4 -q -f "$work/pc.conf" iperf3 -c 127.0.0.1 -p "$iperf_port" -t "$duration" -P "$1" -J | gbits
}
direct_iperf() { timeout $((duration + 30)) iperf3 -c 127.0.0.1 -p "$1" -t "$duration" -P "$2" -J | gbits; }
rr() {  # extra mtgate-bench rr-latency arguments
    timeout 120 "$bench_bin" rr-latency --target "127.0.0.1:$echo_port" --count 1000 --size 64 "$@"
}
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
verdict() { if [ "$1" = 1 ]; then echo "met"; else echo "NOT met"; fi; }

log "throughput"
# A failed run reads as 0 so the other figures still print.
direct1=$(direct_iperf "$iperf_port" 1 || echo 0); direct4=$(direct_iperf "$iperf_port" 4 || echo 0)
haproxy1=$(direct_iperf "$haproxy_port" 1 || echo 0); haproxy4=$(direct_iperf "$haproxy_port" 4 || echo 0)
tunnel1=$(via_tunnel 1 || echo 0); tunnel4=$(via_tunnel 4 || echo 0)

log "latency"
rr_direct=$(rr || echo failed)
rr_idle=$(rr --proxy "127.0.0.1:$socks_port" || echo failed)
# Bulk on another stream of the same agent connection for the whole latency run.
bulk_seconds=$((duration + 10))
proxychains4 -q -f "$work/pc.conf" iperf3 -c 127.0.0.1 -p "$iperf_port" -t "$bulk_seconds" -J \
    >"$work/bulk.json" 2>"$work/bulk.err" &
bulk_pid=$!; pids+=("$bulk_pid")
sleep 1
rr_loaded=$(rr --proxy "127.0.0.1:$socks_port" || echo "failed")
timeout $((bulk_seconds + 30)) tail --pid="$bulk_pid" -f /dev/null || true
bulk_gbits=$(gbits <"$work/bulk.json" 2>/dev/null || echo "?")

log "idle streams"
idle_line=$(timeout 600 python3 "$repo/bench/socks_idle.py" "$socks_port" "$gateway_pid" "$idle" || echo "failed")
agent_rss=$(awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status" 2>/dev/null || echo "?")

single_ok=$(python3 -c "print(int($tunnel1 >= 3.0 and $tunnel1 >= 0.5 * $haproxy1))")
p99_loaded_us=$(echo "$rr_loaded" | field p99_us)
p99_ok=0; [ -n "$p99_loaded_us" ] && [ "$p99_loaded_us" -lt 50000 ] && p99_ok=1

results="$work/results.txt"
{
    echo "| relay (loopback, ${duration}s, TLS between gateway and agent) | 1 stream Gbit/s | 4 streams Gbit/s |"
    echo "|---|---|---|"
    echo "| iperf3 direct | $direct1 | $direct4 |"
    echo "| haproxy (TCP mode) | $haproxy1 | $haproxy4 |"
    echo "| mtgate socks5 -> gateway -> agent (wss) | $tunnel1 | $tunnel4 |"
    echo
    echo "target: single stream >= 3 Gbit/s and >= 0.5x haproxy ($(python3 -c "print('%.2f' % (0.5 * $haproxy1))")): $(verdict "$single_ok")" \
        "(tunnel/haproxy = $(python3 -c "print('%.2f' % ($tunnel1 / $haproxy1 if $haproxy1 else 0))"))"
    echo
    echo "| 64-byte request/response, 1,000 rounds, one stream | p50 ms | p99 ms | max ms |"
    echo "|---|---|---|---|"
    for row in "echo directly|$rr_direct" "via the tunnel, idle|$rr_idle" "via the tunnel, bulk stream running ($bulk_gbits Gbit/s)|$rr_loaded"; do
        line="${row#*|}"
        if [ "$line" = failed ]; then echo "| ${row%%|*} | failed | failed | failed |"; continue; fi
        echo "| ${row%%|*} | $(ms "$(echo "$line" | field p50_us)") | $(ms "$(echo "$line" | field p99_us)") | $(ms "$(echo "$line" | field max_us)") |"
    done
    echo
    echo "target: interactive p99 < 50 ms under bulk load: $(verdict "$p99_ok")"
    echo
    echo "gateway, $idle idle streams: $idle_line"
    echo "agent RSS after the idle run: ${agent_rss} KiB"
} | tee "$results"
log "results in $results (logs of every process beside it)"

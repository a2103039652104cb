#!/usr/bin/env bash
# mtgate's SOCKS5 and HTTP listeners side by side with Debian's microsocks, dante, haproxy
# (plain TCP relay), tinyproxy and squid, on loopback, in one run:
#   - iperf3 single-stream and 4-stream throughput through each SOCKS5 server (proxychains4),
#     and through haproxy in TCP mode (iperf3 straight at it: the plain-relay reference);
#   - HTTP forward-proxy requests/s with keep-alive (hey -c 50) through mtgate, tinyproxy and
#     squid to the same local nginx, and to nginx directly;
#   - new SOCKS5 connections/s (mtgate-bench socks-connect) through mtgate, microsocks, dante;
#   - RSS per idle SOCKS5 tunnel (bench/socks_idle.py) for mtgate and microsocks.
#
# Usage: bench/socks.sh          (root: installs missing Debian packages with apt-get)
# Env:   DURATION (iperf3/hey seconds, default 5), IDLE_TUNNELS (default 5000),
#        MTGATE, MTGATE_BENCH (binaries, default target/release/…, built if missing)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${MTGATE_BENCH_DIR:-/tmp/mtgate-bench-socks}"
duration="${DURATION:-5}"
idle="${IDLE_TUNNELS:-5000}"
mtgate="${MTGATE:-$repo/target/release/mtgate}"
bench_bin="${MTGATE_BENCH:-$repo/target/release/mtgate-bench}"
log() { printf '[bench/socks] %s\n' "$*" >&2; }

packages=(iperf3 proxychains4 hey nginx-light squid dante-server microsocks haproxy tinyproxy)
missing=()
for p in iperf3 proxychains4 hey nginx squid danted microsocks haproxy tinyproxy; do
    command -v "$p" >/dev/null || missing+=("$p")
done
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
    log "nothing listens on $1 ($2)"; exit 1
}
# start NAME COMMAND...: runs in the background, logs to NAME.log, sets last_pid.
start() { local name="$1"; shift; "$@" >"$work/$name.log" 2>&1 & last_pid=$!; pids+=("$last_pid"); }

iperf_port=$(free_port); start iperf3 iperf3 -s -B 127.0.0.1 -p "$iperf_port"
nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$nginx_port; location / { return 200 "hello from nginx\n"; } }
}
CONF
start nginx nginx -c "$work/nginx.conf" -p "$work/nginx"

socks_port=$(free_port); splice_port=$(free_port); http_port=$(free_port)
cat >"$work/mtgate.toml" <<CONF
[metrics]
enabled = false
[[socks5]]
listen = ["127.0.0.1:$socks_port"]
rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
[[socks5]]
name = "spliced"
listen = ["127.0.0.1:$splice_port"]
splice = true
rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
[[http]]
listen = ["127.0.0.1:$http_port"]
rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
CONF
start mtgate "$mtgate" run --config "$work/mtgate.toml"; mtgate_pid=$last_pid
micro_port=$(free_port); start microsocks microsocks -i 127.0.0.1 -p "$micro_port"; micro_pid=$last_pid
dante_port=$(free_port)
cat >"$work/danted.conf" <<CONF
logoutput: $work/danted.out
internal: 127.0.0.1 port = $dante_port
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 }
CONF
start danted danted -f "$work/danted.conf" -p "$work/danted.pid"
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
tiny_port=$(free_port)
cat >"$work/tinyproxy.conf" <<CONF
User nobody
Group nogroup
Port $tiny_port
Listen 127.0.0.1
Timeout 60
MaxClients 200
Allow 127.0.0.1
DisableViaHeader Yes
CONF
start tinyproxy tinyproxy -d -c "$work/tinyproxy.conf"
squid_port=$(free_port)
mkdir -p "$work/squid"; chown proxy: "$work/squid" 2>/dev/null || true
cat >"$work/squid.conf" <<CONF
http_port 127.0.0.1:$squid_port
http_access allow localhost
http_access deny all
cache deny all
access_log none
cache_log $work/squid/cache.log
pid_filename $work/squid/squid.pid
coredump_dir $work/squid
shutdown_lifetime 0 seconds
CONF
start squid squid -N -f "$work/squid.conf"

for p in "$iperf_port" "$nginx_port" "$socks_port" "$splice_port" "$http_port" "$micro_port" "$dante_port" "$haproxy_port" "$tiny_port" "$squid_port"; do
    wait_port "$p" "port $p"
done

gbits() { python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))'; }
via_socks() {  # PORT STREAMS
    printf 'strict_chain\nquiet_mode\n[ProxyList]\nsocks5 127.0.0.1 %s\n' "$1" >"$work/pc.conf"
    timeout $((duration + 30)) proxychains4 -q -f "$work/pc.conf" iperf3 -c 127.0.0.1 -p "$iperf_port" -t "$duration" -P "$2" -J | gbits
}
direct_iperf() { timeout $((duration + 30)) iperf3 -c 127.0.0.1 -p "$1" -t "$duration" -P "$2" -J | gbits; }
rps() {  # PROXY_URL or ""
    local args=(-c 50 -z "${duration}s")
    [[ -n "$1" ]] && args+=(-x "$1")
    timeout $((duration + 30)) hey "${args[@]}" "http://127.0.0.1:$nginx_port/" | awk '/Requests\/sec/ {printf "%.0f", $2}'
}

results="$work/results.txt"
{
    echo "| relay (loopback, ${duration}s) | 1 stream Gbit/s | 4 streams Gbit/s |"
    echo "|---|---|---|"
    echo "| iperf3 direct | $(direct_iperf "$iperf_port" 1) | $(direct_iperf "$iperf_port" 4) |"
    echo "| haproxy (TCP mode) | $(direct_iperf "$haproxy_port" 1) | $(direct_iperf "$haproxy_port" 4) |"
    echo "| mtgate socks5 | $(via_socks "$socks_port" 1) | $(via_socks "$socks_port" 4) |"
    echo "| mtgate socks5, splice = true | $(via_socks "$splice_port" 1) | $(via_socks "$splice_port" 4) |"
    echo "| microsocks | $(via_socks "$micro_port" 1) | $(via_socks "$micro_port" 4) |"
    echo "| dante | $(via_socks "$dante_port" 1) | $(via_socks "$dante_port" 4) |"
    echo
    echo "| new SOCKS5 connections/s (16 clients, CONNECT to a local sink) | connects/s |"
    echo "|---|---|"
    for row in "mtgate:$socks_port" "microsocks:$micro_port" "dante:$dante_port"; do
        echo "| ${row%%:*} | $(timeout $((duration + 30)) "$bench_bin" socks-connect --proxy "127.0.0.1:${row##*:}" --duration "${duration}s" | sed 's/connects_per_sec=//') |"
    done
    echo
    echo "| HTTP forward proxy, hey -c 50 to nginx | requests/s |"
    echo "|---|---|"
    echo "| nginx directly | $(rps "") |"
    echo "| mtgate http | $(rps "http://127.0.0.1:$http_port") |"
    echo "| tinyproxy | $(rps "http://127.0.0.1:$tiny_port") |"
    echo "| squid | $(rps "http://127.0.0.1:$squid_port") |"
    echo
    echo "mtgate:     $(timeout 300 python3 "$repo/bench/socks_idle.py" "$socks_port" "$mtgate_pid" "$idle")"
    echo "microsocks: $(timeout 300 python3 "$repo/bench/socks_idle.py" "$micro_port" "$micro_pid" "$idle")"
} | tee "$results"
log "results in $results"

#!/usr/bin/env bash
# Interop test of mtgate's `https://` upstream connector against software nobody here wrote:
# Debian's HAProxy terminates TLS (tcp mode, `bind … ssl crt`) in front of Debian's tinyproxy
# (HTTP CONNECT). mtgate's SOCKS5 and HTTP listeners send everything through
# `upstream = ["https://…"]`, verifying HAProxy's self-signed certificate with
# `upstream_tls.ca`; curl is the client, Python's http.server the origin:
#
#   curl -> mtgate (socks5 / http CONNECT) -> TLS -> HAProxy -> tinyproxy -> origin
#
# Also checks that without the CA (public roots only) the same path fails. 127.0.0.1 only;
# every wait is bounded.
#
# Usage: tests/interop/https-upstream/run.sh
# Env:   MTGATE_INTEROP_DIR   work directory (default /tmp/mtgate-interop-https-upstream)
#        MTGATE_INTEROP_SKIP_INSTALL=1   do not apt-get install missing packages
#        CARGO_BUILD_JOBS     passed to cargo (default 2)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
work="${MTGATE_INTEROP_DIR:-/tmp/mtgate-interop-https-upstream}"
jobs="${CARGO_BUILD_JOBS:-2}"
target="${CARGO_TARGET_DIR:-$repo/target}"
mkdir -p "$work"
log() { printf '[https-upstream] %s\n' "$*" >&2; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v tinyproxy >/dev/null || missing+=(tinyproxy)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]} > 0)); then
    if [[ "${MTGATE_INTEROP_SKIP_INSTALL:-}" == 1 ]]; then log "missing packages: ${missing[*]}"; exit 1; fi
    log "installing ${missing[*]}"
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
haproxy_bin="$(command -v haproxy)"
tinyproxy_bin="$(command -v tinyproxy)"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$2 did not listen on 127.0.0.1:$1"; tail -n 20 "$work/$2.log" >&2 || true
    exit 1
}
start() {
    local name="$1"; shift
    "$@" >"$work/$name.log" 2>&1 &
    pids+=("$!")
}

log "building mtgate"
(cd "$repo" && timeout 1200 cargo build -j"$jobs" --locked -p mtgate -q)
mtgate="$target/debug/mtgate"

port_origin="$(free_port)"; port_tiny="$(free_port)"; port_tls="$(free_port)"
port_socks="$(free_port)"; port_http="$(free_port)"; port_plain="$(free_port)"

# The origin: a file served by Python's http.server.
mkdir -p "$work/www"
marker="through haproxy and tinyproxy $(date +%s%N)"
echo "$marker" >"$work/www/hello.txt"
start origin python3 -m http.server "$port_origin" --bind 127.0.0.1 --directory "$work/www"

# tinyproxy: CONNECT from loopback only. No ConnectPort line: every port may be reached.
cat >"$work/tinyproxy.conf" <<CONF
Port $port_tiny
Listen 127.0.0.1
Timeout 60
MaxClients 20
Allow 127.0.0.1
LogLevel Info
CONF
start tinyproxy "$tinyproxy_bin" -d -c "$work/tinyproxy.conf"

# HAProxy terminates TLS with a self-signed certificate for 127.0.0.1 (made by `mtgate cert`)
# and passes the bytes to tinyproxy.
"$mtgate" cert --name 127.0.0.1 --name localhost \
    --out-cert "$work/proxy-cert.pem" --out-key "$work/proxy-key.pem" >/dev/null
cat "$work/proxy-cert.pem" "$work/proxy-key.pem" >"$work/proxy-combined.pem"
cat >"$work/haproxy.cfg" <<CONF
global
    maxconn 100
    log stdout format raw local0
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend tls_in
    bind 127.0.0.1:$port_tls ssl crt $work/proxy-combined.pem
    default_backend tinyproxy
backend tinyproxy
    server tiny 127.0.0.1:$port_tiny
CONF
"$haproxy_bin" -c -f "$work/haproxy.cfg" >/dev/null
start haproxy "$haproxy_bin" -db -f "$work/haproxy.cfg"

cat >"$work/mtgate.toml" <<TOML
[metrics]
listen = "127.0.0.1:0"

[[socks5]]
name = "socks"
listen = ["127.0.0.1:$port_socks"]
rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
upstream = ["https://127.0.0.1:$port_tls"]
upstream_tls = { ca = "$work/proxy-cert.pem" }   # HAProxy's self-signed certificate

[[http]]
name = "http"
listen = ["127.0.0.1:$port_http"]
connect_ports = ["1024-65535"]
rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
upstream = ["https://127.0.0.1:$port_tls"]
upstream_tls = { ca = "$work/proxy-cert.pem" }

# The same upstream without the CA: the public roots do not vouch for HAProxy's certificate.
[[socks5]]
name = "untrusting"
listen = ["127.0.0.1:$port_plain"]
rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
upstream = ["https://127.0.0.1:$port_tls"]
TOML
"$mtgate" check-config "$work/mtgate.toml" >/dev/null
start mtgate "$mtgate" run --config "$work/mtgate.toml"
for p in "$port_origin:origin" "$port_tiny:tinyproxy" "$port_tls:haproxy" "$port_socks:mtgate" "$port_http:mtgate" "$port_plain:mtgate"; do
    wait_port "${p%%:*}" "${p#*:}"
done

url="http://127.0.0.1:$port_origin/hello.txt"
curl_() { curl --silent --show-error --max-time 15 --noproxy '' "$@"; }
check() {
    local what="$1"; shift
    local got
    got="$(curl_ "$@")" || { log "FAIL $what: curl failed"; tail -n 20 "$work"/*.log >&2; exit 1; }
    [[ "$got" == "$marker" ]] || { log "FAIL $what: got '$got'"; exit 1; }
    echo "ok  $what"
}
check "curl --socks5 -> mtgate -> https://HAProxy -> tinyproxy -> origin" --socks5 "127.0.0.1:$port_socks" "$url"
check "curl --socks5-hostname (name resolved at the far end)" --socks5-hostname "127.0.0.1:$port_socks" "http://localhost:$port_origin/hello.txt"
check "curl -p -x (CONNECT) -> mtgate -> https://HAProxy -> tinyproxy -> origin" -p -x "http://127.0.0.1:$port_http" "$url"
check "curl -x (forwarded GET) through the https upstream" -x "http://127.0.0.1:$port_http" "$url"

if got="$(curl_ --socks5 "127.0.0.1:$port_plain" "$url" 2>/dev/null)"; then
    log "FAIL without upstream_tls.ca the self-signed upstream was trusted: $got"; exit 1
fi
# mtgate aborted the TLS handshake (unknown issuer) before sending any CONNECT.
grep -qi "handshake failure\|SSL handshake" "$work/haproxy.log" ||
    { log "FAIL HAProxy logged no failed TLS handshake"; tail -n 20 "$work/haproxy.log" >&2; exit 1; }
echo "ok  without upstream_tls.ca the self-signed HAProxy certificate is refused"
grep -q "CONNECT" "$work/tinyproxy.log" || { log "FAIL tinyproxy saw no CONNECT"; exit 1; }
echo "ok  tinyproxy saw the CONNECT requests"
log "all https upstream interop checks passed"

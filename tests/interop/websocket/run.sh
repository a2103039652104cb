#!/usr/bin/env bash
# Interop tests of the websocket listener with software nobody here wrote: Node's `ws` package
# (npm) as the echo backends and as a client, Python's `websockets` as a second client.
# Checks text, binary, fragmented messages, ping/pong, close codes, 1009 on 1 MiB + 1 byte, an
# MB Server Node style message byte for byte, a backend killed mid-session (1011, then a
# reconnect to the other backend) and 1001 on graceful shutdown. 127.0.0.1 only; every wait
# is bounded. One more Node `ws` backend serves wss (Node's https server, a self-signed
# certificate from `mtgate cert`) behind a `wss://` pool server: client -> mtgate (ws) -> wss.
#
# Usage: tests/interop/websocket/run.sh
# Env:   MTGATE_INTEROP_DIR   work directory (default /tmp/mtgate-interop-ws)
#        CARGO_BUILD_JOBS     passed to cargo (default 2)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
work="${MTGATE_INTEROP_DIR:-/tmp/mtgate-interop-ws}"
jobs="${CARGO_BUILD_JOBS:-2}"
target="${CARGO_TARGET_DIR:-$repo/target}"
mkdir -p "$work"
log() { printf '[ws-interop] %s\n' "$*" >&2; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

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
# start NAME COMMAND...: in the background, pid in NAME.pid, output in NAME.log.
start() {
    local name="$1"; shift
    "$@" >"$work/$name.log" 2>&1 &
    pids+=("$!")
    echo "$!" >"$work/$name.pid"
}

log "installing ws (npm) into $work/node and websockets (pip) into .venv"
if [ ! -d "$work/node/node_modules/ws" ]; then
    timeout 300 npm install --silent --no-audit --no-fund --prefix "$work/node" ws@8.18.3 >/dev/null
fi
export NODE_PATH="$work/node/node_modules"
[ -x "$repo/.venv/bin/python" ] || python3 -m venv "$repo/.venv"
timeout 300 "$repo/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

log "building mtgate"
(cd "$repo" && timeout 1200 cargo build -j"$jobs" --locked -p mtgate -q)

port_a="$(free_port)"; port_b="$(free_port)"; port_tls="$(free_port)"
port_ws="$(free_port)"; port_admin="$(free_port)"; port_metrics="$(free_port)"
"$target/debug/mtgate" cert --name localhost --name 127.0.0.1 \
    --out-cert "$work/backend-cert.pem" --out-key "$work/backend-key.pem" >/dev/null
start backend-a node "$here/backend.js" "$port_a" a
start backend-b node "$here/backend.js" "$port_b" b
start backend-tls node "$here/backend.js" "$port_tls" tls "$work/backend-cert.pem" "$work/backend-key.pem"
wait_port "$port_a" backend-a
wait_port "$port_b" backend-b
wait_port "$port_tls" backend-tls

cat >"$work/mtgate.toml" <<TOML
[server]
log_level = "info"
state_dir = "$work/state"
shutdown_grace = "10s"

[metrics]
listen = "127.0.0.1:$port_metrics"

[admin]
listen = "127.0.0.1:$port_admin"
token = "interop-admin-token-0123456789"

[[pool]]
name = "echo"
servers = [{ url = "tcp://127.0.0.1:$port_a" }, { url = "tcp://127.0.0.1:$port_b" }]
[pool.ejection]
consecutive_failures = 1

[[pool]]
name = "tls"
servers = [{ url = "wss://127.0.0.1:$port_tls" }]
[pool.tls]
ca = "$work/backend-cert.pem"       # the backend's self-signed certificate
server_name = "localhost"
[pool.health]
check = "websocket"
path = "/health"
interval = "200ms"
fall = 1                            # one failed check over TLS takes it down

[[websocket]]
listen = ["127.0.0.1:$port_ws"]
routes = [{ path = "/mb", pool = "echo" }, { path = "/tls", pool = "tls" }]
TOML
start mtgate "$target/debug/mtgate" run --config "$work/mtgate.toml"
wait_port "$port_ws" mtgate
url="ws://127.0.0.1:$port_ws/mb"

log "Node ws client"
timeout 60 node "$here/client.js" "$url"
log "Python websockets client"
timeout 60 "$repo/.venv/bin/python" "$here/client.py" "$url"
log "Node ws client through a wss:// backend (Node https + ws)"
timeout 60 node "$here/client.js" "ws://127.0.0.1:$port_ws/tls" tls
up='mtgate_pool_server_up{pool="tls",server="127.0.0.1:'"$port_tls"'"} 1'
curl -s --max-time 5 "http://127.0.0.1:$port_metrics/metrics" | grep -qF "$up" ||
    { log "the wss backend is not up by its TLS health check"; exit 1; }
echo "ok  the websocket health check passes over TLS"

log "admin API lists live sessions"
rm -f "$work/ready"
start shutdown-client node "$here/shutdown.js" "$url" "$work/ready"
for _ in $(seq 1 100); do [ -f "$work/ready" ] && break; sleep 0.1; done
listing="$(curl -s --max-time 5 -H 'Authorization: Bearer interop-admin-token-0123456789' "http://127.0.0.1:$port_admin/websockets")"
echo "$listing" | grep -q '"path": *"/mb"' || { log "admin listing lacks the session: $listing"; exit 1; }
echo "ok  admin /websockets lists the session"

log "graceful shutdown sends 1001"
kill -TERM "$(cat "$work/mtgate.pid")"
shutdown_pid="$(cat "$work/shutdown-client.pid")"
timeout 30 tail --pid="$shutdown_pid" -f /dev/null
wait "$shutdown_pid" || { cat "$work/shutdown-client.log" >&2; exit 1; }
cat "$work/shutdown-client.log"
timeout 30 tail --pid="$(cat "$work/mtgate.pid")" -f /dev/null || true

log "backend killed mid-session"
start mtgate "$target/debug/mtgate" run --config "$work/mtgate.toml"
wait_port "$port_ws" mtgate
timeout 60 node "$here/failover.js" "$url" "$work"
log "all websocket interop checks passed"

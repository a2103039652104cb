#!/usr/bin/env bash
# Interop tests of the reverse tunnel's AnyProxy JSON mode with programs written only from
# AnyProxy's documented message shapes (tests/interop/tunnel/anyproxy_{agent,gateway}.py):
#   (a) mtgate's gateway ([[gateway]], plain ws) + the Python agent: curl --socks5-hostname
#       (and curl -x through the HTTP listener) via the agent to a local python http.server
#       returns the file; a host the agent refuses (with an `error` FORBIDDEN_HOST message, or
#       with connect_response success=false) gives a SOCKS failure (curl exit 97);
#   (b) the Python gateway + `mtgate agent` with protocol = "anyproxy-json": bytes through the
#       gateway's port forward come back intact from an echo target; a target the agent's
#       forbidden_hosts names gets an `error` message with code FORBIDDEN_HOST; the agent's
#       `ping` messages get their `pong`s.
# 127.0.0.1 only; every wait is bounded. Prints a PASS/FAIL line per check and a summary;
# exits non-zero when a check failed.
#
# Usage: tests/interop/tunnel/run.sh
# Env:   MTGATE_INTEROP_DIR   work directory (default /tmp/mtgate-interop-tunnel)
#        MTGATE               the binary (default: built from this checkout, debug)
#        CARGO_BUILD_JOBS     passed to cargo (default 2)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
work="${MTGATE_INTEROP_DIR:-/tmp/mtgate-interop-tunnel}"
jobs="${CARGO_BUILD_JOBS:-2}"
target="${CARGO_TARGET_DIR:-$repo/target}"
mtgate="${MTGATE:-$target/debug/mtgate}"
py="$repo/.venv/bin/python"
rm -rf "$work"; mkdir -p "$work"
log() { printf '[tunnel-interop] %s\n' "$*" >&2; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

results=()
failed=0
pass() { results+=("PASS  $1"); echo "PASS  $1"; }
fail() {
    results+=("FAIL  $1"); echo "FAIL  $1${2:+: $2}"; failed=$((failed + 1))
}
summary() {
    echo
    echo "tunnel interop summary:"
    printf '  %s\n' "${results[@]}"
    if ((failed)); then
        echo "tunnel interop: $failed check(s) FAILED (logs in $work)"
        exit 1
    fi
    echo "tunnel interop: all ${#results[@]} checks PASSED"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$2 did not listen on 127.0.0.1:$1"; tail -n 20 "$work/$2.log" >&2 || true
    return 1
}
wait_file() {  # FILE NAME SECONDS
    for _ in $(seq 1 $(($3 * 10))); do [ -s "$1" ] && return 0; sleep 0.1; done
    log "$2 not ready after $3 s"; tail -n 20 "$work/$2.log" >&2 || true
    return 1
}
wait_line() {  # FILE PATTERN SECONDS
    for _ in $(seq 1 $(($3 * 10))); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# start NAME COMMAND...: in the background, output in NAME.log, pid in NAME.pid.
start() {
    local name="$1"; shift
    "$@" >"$work/$name.log" 2>&1 &
    pids+=("$!")
    echo "$!" >"$work/$name.pid"
}
stop() { kill "$(cat "$work/$1.pid")" 2>/dev/null || true; }

log "installing websockets (pip) into .venv"
[ -x "$py" ] || python3 -m venv "$repo/.venv"
timeout 300 "$repo/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
if [ -z "${MTGATE:-}" ]; then
    log "building mtgate"
    (cd "$repo" && timeout 1200 cargo build -j"$jobs" --locked -p mtgate -q)
fi

# A local origin with a file, and an echo target.
mkdir -p "$work/www"
head -c 200000 /dev/urandom | base64 >"$work/www/file.txt"
http_origin="$(free_port)"
start origin python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$http_origin"
echo_port="$(free_port)"
start echo "$py" -c '
import asyncio, sys
async def echo(r, w):
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()
async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())' "$echo_port"
wait_port "$http_origin" origin
wait_port "$echo_port" echo
udp_echo_port="$(free_port)"
start udp-echo "$py" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(600)
while True:
    data, peer = s.recvfrom(65536)
    s.sendto(data, peer)' "$udp_echo_port"

# ---------------------------------------------------------------------------------------------
log "(a) mtgate gateway + the Python AnyProxy-style agent"
gw_port="$(free_port)"; socks_port="$(free_port)"; http_port="$(free_port)"
cat >"$work/gateway.toml" <<TOML
[server]
log_level = "info"
state_dir = "$work/state"

[metrics]
enabled = false

[[gateway]]
name = "agents"
listen = ["127.0.0.1:$gw_port"]
path = "/ws"
plain = true
[[gateway.credential]]
username = "interop"
password = "interop-secret"
group = "interop"

[[socks5]]
listen = ["127.0.0.1:$socks_port"]
gateway = "agents"
agent_group = "interop"
rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]

[[http]]
listen = ["127.0.0.1:$http_port"]
gateway = "agents"
agent_group = "interop"
connect_ports = ["1-65535"]
rules = [{ action = "allow", cidrs = ["127.0.0.0/8"] }]
TOML
if ! "$mtgate" check-config "$work/gateway.toml" >"$work/check-gateway.log" 2>&1; then
    fail "(a) mtgate accepts the gateway config" "$(tail -n 3 "$work/check-gateway.log")"
else
    pass "(a) mtgate accepts the gateway config"
fi
start mtgate-gateway "$mtgate" run --config "$work/gateway.toml"
if wait_port "$gw_port" mtgate-gateway; then
    start py-agent "$py" "$here/anyproxy_agent.py" --gateway "ws://127.0.0.1:$gw_port/ws" \
        --username interop --password interop-secret --client-id py-agent-1 \
        --forbid 127.0.0.2 --refuse 127.0.0.3 --ready "$work/py-agent.ready"
    if wait_file "$work/py-agent.ready" py-agent 15; then
        pass "(a) auth -> auth_response success, ping -> pong with the same timestamp"
        url="http://127.0.0.1:$http_origin/file.txt"
        if timeout 30 curl -sS --max-time 20 --socks5-hostname "127.0.0.1:$socks_port" "$url" \
            -o "$work/got-socks.txt" 2>"$work/curl-socks.err" &&
            cmp -s "$work/got-socks.txt" "$work/www/file.txt"; then
            pass "(a) curl --socks5-hostname via the agent returns the file"
        else
            fail "(a) curl --socks5-hostname via the agent returns the file" "$(cat "$work/curl-socks.err")"
        fi
        if timeout 30 curl -sS --max-time 20 -x "http://127.0.0.1:$http_port" "$url" \
            -o "$work/got-http.txt" 2>"$work/curl-http.err" &&
            cmp -s "$work/got-http.txt" "$work/www/file.txt"; then
            pass "(a) curl -x (HTTP listener) via the agent returns the file"
        else
            fail "(a) curl -x (HTTP listener) via the agent returns the file" "$(cat "$work/curl-http.err")"
        fi
        for refusal in "127.0.0.2:error FORBIDDEN_HOST:forbidden" "127.0.0.3:connect_response success=false:refused"; do
            host="${refusal%%:*}"; rest="${refusal#*:}"; how="${rest%:*}"; mark="${rest##*:}"
            set +e
            timeout 30 curl -sS --max-time 20 --socks5-hostname "127.0.0.1:$socks_port" \
                "http://$host:$http_origin/file.txt" -o /dev/null 2>"$work/curl-$mark.err"
            code=$?
            set -e
            if [ "$code" = 97 ] && grep -q "\"event\": \"$mark\"" "$work/py-agent.log"; then
                pass "(a) the agent refuses $host with $how: SOCKS failure (curl exit 97)"
            else
                fail "(a) the agent refuses $host with $how: SOCKS failure (curl exit 97)" \
                    "curl exit $code: $(cat "$work/curl-$mark.err")"
            fi
        done
        if grep -q '"event": "failed"' "$work/py-agent.log"; then
            fail "(a) the Python agent saw no protocol violation" "$(grep failed "$work/py-agent.log")"
        else
            pass "(a) the Python agent saw no protocol violation"
        fi
    else
        fail "(a) auth -> auth_response success, ping -> pong with the same timestamp" \
            "$(tail -n 3 "$work/py-agent.log")"
    fi
    stop py-agent
    # Last in (a): a failed login may lock 127.0.0.1 out for a while.
    set +e
    timeout 30 "$py" "$here/anyproxy_agent.py" --gateway "ws://127.0.0.1:$gw_port/ws" \
        --username interop --password wrong-password >"$work/py-agent-wrong.log" 2>&1
    code=$?
    set -e
    if [ "$code" = 1 ] && grep -qE 'auth_refused|ConnectionClosed' "$work/py-agent-wrong.log"; then
        pass "(a) a wrong password is refused (auth_response success=false or a close)"
    else
        fail "(a) a wrong password is refused (auth_response success=false or a close)" \
            "exit $code: $(tail -n 2 "$work/py-agent-wrong.log")"
    fi
else
    fail "(a) mtgate gateway listens" "$(tail -n 3 "$work/mtgate-gateway.log")"
fi
stop mtgate-gateway

# ---------------------------------------------------------------------------------------------
log "(b) the Python AnyProxy-style gateway + mtgate agent (protocol = \"anyproxy-json\")"
pgw_port="$(free_port)"; fwd_ok="$(free_port)"; fwd_forbidden="$(free_port)"
forbidden_port="$(free_port)"; fwd_udp="$(free_port)"
start_py_gateway() {  # extra anyproxy_gateway.py arguments
    rm -f "$work/py-gateway.ready"
    start py-gateway "$py" "$here/anyproxy_gateway.py" --port "$pgw_port" \
        --username interop --password interop-secret \
        --forward "$fwd_ok=127.0.0.1:$echo_port" \
        --forward "$fwd_forbidden=127.0.0.1:$forbidden_port" \
        --udp-forward "$fwd_udp=127.0.0.1:$udp_echo_port" --ready "$work/py-gateway.ready" "$@"
    wait_file "$work/py-gateway.ready" py-gateway 15
}
cat >"$work/agent.toml" <<TOML
gateway = "ws://127.0.0.1:$pgw_port/ws"
username = "interop"
password = "interop-secret"
client_id = "mtgate-agent-interop"
protocol = "anyproxy-json"
allowed_hosts = ["127.0.0.1"]
forbidden_hosts = ["127.0.0.1:$forbidden_port"]
ping_interval = "1s"
log_level = "debug"
TOML
# AnyProxy's document names no subprotocol, so a gateway written from it selects none.
start_py_gateway
start mtgate-agent "$mtgate" agent --config "$work/agent.toml"
if wait_line "$work/py-gateway.log" '"event": "auth"' 15; then
    pass "(b) mtgate agent logs in (auth message) to a gateway that selects no subprotocol"
else
    fail "(b) mtgate agent logs in (auth message) to a gateway that selects no subprotocol" \
        "$(grep -iE 'warn|error' "$work/mtgate-agent.log" | tail -n 2)"
    log "retrying (b) with a gateway that selects anyproxy-json, for the remaining checks"
    stop mtgate-agent; stop py-gateway
    mv "$work/mtgate-agent.log" "$work/mtgate-agent-nosubprotocol.log"
    mv "$work/py-gateway.log" "$work/py-gateway-nosubprotocol.log"
    sleep 0.5
    start_py_gateway --select-subprotocol
    start mtgate-agent "$mtgate" agent --config "$work/agent.toml"
fi
if wait_line "$work/py-gateway.log" '"event": "auth"' 15; then
    if timeout 60 "$py" - "$fwd_ok" <<'PY' >"$work/roundtrip.log" 2>&1; then
import os, socket, sys
port = int(sys.argv[1])
for size in (1, 1000, 300_000):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    sent = os.urandom(size)
    s.sendall(sent)
    got = b""
    while len(got) < size:
        chunk = s.recv(65536)
        assert chunk, f"EOF after {len(got)} of {size} bytes"
        got += chunk
    assert got == sent, f"{size} bytes came back different"
    s.close()
    print(f"{size} bytes round-tripped")
PY
        pass "(b) bytes through the forward round-trip (1 B, 1 kB, 300 kB)"
    else
        fail "(b) bytes through the forward round-trip (1 B, 1 kB, 300 kB)" "$(tail -n 2 "$work/roundtrip.log")"
    fi
    timeout 20 "$py" -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.recv(1)' "$fwd_forbidden" || true
    if wait_line "$work/py-gateway.log" '"code": "FORBIDDEN_HOST"' 5 &&
        grep '"code": "FORBIDDEN_HOST"' "$work/py-gateway.log" | grep -q '"connection_id": "c'; then
        pass "(b) a forbidden target gets an error message, code FORBIDDEN_HOST, with its connection_id"
    else
        fail "(b) a forbidden target gets an error message, code FORBIDDEN_HOST, with its connection_id" \
            "$(grep -E 'connect_response|error|refused' "$work/py-gateway.log" | tail -n 3)"
    fi
    if timeout 60 "$py" - "$fwd_udp" <<'PY' >"$work/udp.log" 2>&1; then
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for size in (1, 1000, 20_000):
    sent = os.urandom(size)
    s.sendto(sent, ("127.0.0.1", int(sys.argv[1])))
    got, _ = s.recvfrom(65536)
    assert got == sent, f"{size}-byte datagram came back as {len(got)} bytes"
    print(f"{size}-byte datagram round-tripped")
PY
        pass "(b) datagrams through a UDP forward (connect protocol udp) come back whole"
    else
        fail "(b) datagrams through a UDP forward (connect protocol udp) come back whole" \
            "$(tail -n 2 "$work/udp.log")"
    fi
    if wait_line "$work/py-gateway.log" '"event": "ping"' 5 && ! grep -q '"event": "agent_gone"' "$work/py-gateway.log"; then
        pass "(b) mtgate agent sends ping messages and stays connected on the pongs"
    else
        fail "(b) mtgate agent sends ping messages and stays connected on the pongs" \
            "$(tail -n 2 "$work/py-gateway.log")"
    fi
else
    fail "(b) mtgate agent logs in at all (also tried with a gateway selecting anyproxy-json)" \
        "$(tail -n 3 "$work/mtgate-agent.log")"
fi
stop mtgate-agent
stop py-gateway

summary

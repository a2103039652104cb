# Shared by tests/interop/client/run.sh and bench/client/run.sh: installs Debian's dante,
# microsocks and tinyproxy when missing and starts them on 127.0.0.1 with generated configs.
# Source it, then call `start_servers`; it sets dante_port, micro_port, micro_auth_port,
# tiny_port and the pool array, and stops everything on exit.
# shellcheck shell=bash

lib_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$lib_dir/../../.." && pwd)"
work="${MTGATE_INTEROP_DIR:-/tmp/mtgate-interop-client}"
jobs="${CARGO_BUILD_JOBS:-2}"
dante_user="mtgate-interop"
dante_pass="p@ss:w0rd%$(date +%s)"   # URL-special characters, percent-encoded in URLs
tiny_user="tiny"
tiny_pass="t1ny.pa-ss"            # tinyproxy accepts [-a-z0-9._] only
micro_user="micro"
micro_pass="m1cro"

log() { printf '[interop] %s\n' "$*" >&2; }

need_packages() {
    local missing=()
    command -v danted >/dev/null || missing+=(dante-server)
    command -v microsocks >/dev/null || missing+=(microsocks)
    command -v tinyproxy >/dev/null || missing+=(tinyproxy)
    if ((${#missing[@]} == 0)); then return; fi
    if [[ "${MTGATE_INTEROP_SKIP_INSTALL:-}" == 1 ]]; then
        log "missing packages: ${missing[*]}"; exit 1
    fi
    log "installing ${missing[*]}"
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Stops a process by pid file: resume it first in case a test froze it.
stop_pidfile() {
    local file="$1" pid
    [[ -f "$file" ]] || return 0
    pid="$(cat "$file" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

cleanup() {
    local f
    for f in "$work"/*.pid; do [[ -e "$f" ]] && stop_pidfile "$f"; done
    return 0
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
    local port="$1" name="$2"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$name did not listen on 127.0.0.1:$port"; tail -n 20 "$work/$name.log" >&2 || true
    exit 1
}

# start NAME COMMAND...: runs in the background, records the pid, logs to NAME.log.
start() {
    local name="$1"; shift
    "$@" >"$work/$name.log" 2>&1 &
    echo $! >"$work/$name.pid"
    disown $!   # the tests SIGKILL some of these; no job-control noise
}

urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

start_servers() {
# (not indented: the here-documents below must start at column 0)
need_packages
mkdir -p "$work"
cleanup
trap cleanup EXIT
chmod 0755 "$work"

# dante authenticates "username" against the system password database.
if ! id "$dante_user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$dante_user"
fi
echo "$dante_user:$dante_pass" | chpasswd

dante_port="$(free_port)"
cat >"$work/danted.conf" <<CONF
logoutput: $work/danted.log
internal: 127.0.0.1 port = $dante_port
external: 127.0.0.1
clientmethod: none
socksmethod: username
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect bind udpassociate }
socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: bindreply udpreply }
socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 }
CONF
: >"$work/danted.log"
start danted danted -f "$work/danted.conf" -p "$work/danted.pid.internal"
wait_port "$dante_port" danted

micro_port="$(free_port)"
start microsocks microsocks -i 127.0.0.1 -p "$micro_port"
micro_auth_port="$(free_port)"
start microsocks-auth microsocks -i 127.0.0.1 -p "$micro_auth_port" -u "$micro_user" -P "$micro_pass"

tiny_port="$(free_port)"
touch "$work/tinyproxy.log"; chmod 0666 "$work/tinyproxy.log"
cat >"$work/tinyproxy.conf" <<CONF
User nobody
Group nogroup
Port $tiny_port
Listen 127.0.0.1
Timeout 60
LogFile "$work/tinyproxy.log"
LogLevel Info
MaxClients 50
Allow 127.0.0.1
BasicAuth $tiny_user $tiny_pass
DisableViaHeader Yes
CONF
start tinyproxy tinyproxy -d -c "$work/tinyproxy.conf"

pool=()
for i in 0 1 2; do
    port="$(free_port)"
    start "pool$i" microsocks -i 127.0.0.1 -p "$port"
    pool+=("127.0.0.1:$port/$(cat "$work/pool$i.pid")")
done

wait_port "$micro_port" microsocks
wait_port "$micro_auth_port" microsocks-auth
wait_port "$tiny_port" tinyproxy
for entry in "${pool[@]}"; do p="${entry%%/*}"; wait_port "${p##*:}" pool; done
log "dante :$dante_port, microsocks :$micro_port / :$micro_auth_port, tinyproxy :$tiny_port, pool ${pool[*]}"
}

#!/usr/bin/env bash
# Interop tests of mtgate-client against real proxy servers nobody here wrote:
# Debian's dante (danted, SOCKS5 + username/password via a system user), microsocks (with and
# without auth, plus three more for the pool failover test) and tinyproxy (HTTP CONNECT with
# BasicAuth). Everything listens on 127.0.0.1 only; every wait is bounded.
#
# Usage: tests/interop/client/run.sh            (from anywhere; needs root for apt and dante)
# Env:   MTGATE_INTEROP_DIR   work directory (default /tmp/mtgate-interop-client)
#        MTGATE_INTEROP_SKIP_INSTALL=1   do not apt-get install missing packages
#        CARGO_BUILD_JOBS     passed to cargo (default 2)
#
# Idempotent: stops whatever a previous run left (by the pid files in the work directory),
# rewrites the configs, starts fresh servers and stops them on exit.
set -euo pipefail

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
start_servers

export MTGATE_INTEROP_DANTE="127.0.0.1:$dante_port"
export MTGATE_INTEROP_DANTE_CREDS="$dante_user:$dante_pass"
export MTGATE_INTEROP_MICROSOCKS="127.0.0.1:$micro_port"
export MTGATE_INTEROP_MICROSOCKS_AUTH="$micro_user:$micro_pass@127.0.0.1:$micro_auth_port"
export MTGATE_INTEROP_TINYPROXY="$(urlencode "$tiny_user"):$(urlencode "$tiny_pass")@127.0.0.1:$tiny_port"
export MTGATE_INTEROP_POOL="$(IFS=,; echo "${pool[*]}")"

cd "$repo"
timeout 1200 cargo test -j"$jobs" -p mtgate-client --test interop -- --ignored --test-threads=1 "$@"

# The examples against the real servers, as a user would run them.
timeout 600 cargo build -j"$jobs" -p mtgate-client --examples -q
ex="$repo/target/debug/examples"
target_port="$(free_port)"
python3 - "$target_port" >"$work/http-origin.log" 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"interop origin\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
echo $! >"$work/http-origin.pid"
wait_port "$target_port" http-origin
timeout 30 "$ex/single_proxy" "socks5h://$dante_user:$(urlencode "$dante_pass")@$MTGATE_INTEROP_DANTE" "127.0.0.1:$target_port"
timeout 30 "$ex/single_proxy" "http://$MTGATE_INTEROP_TINYPROXY" "127.0.0.1:$target_port"
timeout 30 "$ex/single_proxy" "socks5://$MTGATE_INTEROP_MICROSOCKS" "localhost:$target_port"
log "all interop checks passed"

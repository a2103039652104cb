#!/usr/bin/env bash
# Autobahn test cases 1-10 through mtgate in front of Node's `ws` echo server (a conformant
# backend), driven by the PyPI runner `kosoku` (no Docker). Prints a summary and fails unless
# every case is OK, NON-STRICT or INFORMATIONAL. Cases 12-13 (permessage-deflate) are not run:
# mtgate does not negotiate it (docs/websocket.md).
#
# Usage: tests/interop/websocket/autobahn.sh
# Env:   MTGATE_INTEROP_DIR   work directory (default /tmp/mtgate-interop-ws)
#        MTGATE_BIN   a built mtgate to use (default: build target/debug/mtgate)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
work="${MTGATE_INTEROP_DIR:-/tmp/mtgate-interop-ws}"
target="${CARGO_TARGET_DIR:-$repo/target}"
mkdir -p "$work"
log() { printf '[autobahn] %s\n' "$*" >&2; }
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
    log "nothing listens on 127.0.0.1:$1"; exit 1
}

if [ ! -d "$work/node/node_modules/ws" ]; then
    timeout 300 npm install --silent --no-audit --no-fund --prefix "$work/node" ws@8.18.3 >/dev/null
fi
export NODE_PATH="$work/node/node_modules"
[ -x "$repo/.venv/bin/python" ] || python3 -m venv "$repo/.venv"
timeout 300 "$repo/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
bin="${MTGATE_BIN:-$target/debug/mtgate}"
[ -n "${MTGATE_BIN:-}" ] || (cd "$repo" && timeout 1200 cargo build -j"${CARGO_BUILD_JOBS:-2}" --locked -p mtgate -q)

port_echo="$(free_port)"; port_ws="$(free_port)"; port_metrics="$(free_port)"
node "$here/backend.js" "$port_echo" echo >"$work/autobahn-backend.log" 2>&1 &
pids+=("$!")
wait_port "$port_echo"
# Autobahn 9.x sends messages of up to 16 MiB in up to 65536 fragments.
cat >"$work/autobahn.toml" <<TOML
[server]
log_level = "warn"
state_dir = "$work/state"
[metrics]
listen = "127.0.0.1:$port_metrics"
[[pool]]
name = "echo"
servers = [{ url = "tcp://127.0.0.1:$port_echo" }]
[[websocket]]
listen = ["127.0.0.1:$port_ws"]
routes = [{ path = "/", pool = "echo" }]
max_payload = 67108864
max_fragments = 1000000
ping_interval = "0s"
TOML
"$bin" run --config "$work/autobahn.toml" >"$work/autobahn-mtgate.log" 2>&1 &
pids+=("$!")
wait_port "$port_ws"

rm -rf "$work/autobahn"
cases=()
# Autobahn has no 8.x.
for i in 1 2 3 4 5 6 7 9 10; do cases+=(-i "$i.*"); done
log "kosoku: cases 1-10 against ws://127.0.0.1:$port_ws"
timeout 1200 "$repo/.venv/bin/kosoku" -m fuzzingclient "${cases[@]}" -p 2 -o "$work/autobahn" "127.0.0.1:$port_ws" >"$work/autobahn-kosoku.log" 2>&1 || {
    tail -n 30 "$work/autobahn-kosoku.log" >&2; exit 1; }
"$repo/.venv/bin/python" - "$work/autobahn" <<'PY'
import collections, json, pathlib, sys
index = next(pathlib.Path(sys.argv[1]).rglob("index.json"))
results = json.loads(index.read_text())
counts, bad = collections.Counter(), []
for agent, cases in results.items():
    for case, r in cases.items():
        counts[r["behavior"]] += 1
        if r["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL"):
            bad.append((case, r["behavior"], r.get("behaviorClose")))
        elif r["behavior"] != "OK":
            print(f"  {case}: {r['behavior']} (close: {r.get('behaviorClose')})")
print(f"autobahn 1-10 through mtgate: {sum(counts.values())} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
if bad:
    for case, b, c in sorted(bad, key=lambda x: [int(p) for p in x[0].split(".")]):
        print(f"  FAILED {case}: {b} (close: {c})")
    sys.exit(1)
PY

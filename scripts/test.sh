#!/usr/bin/env bash
# Runs every test of mtgate: formatting, lints, unit and integration tests, interop tests with
# clients and servers nobody here wrote (installed here: a Python venv, Debian packages), and
# brief fuzz runs. Needs network access to the package registries on the first run.
#
# Usage: scripts/test.sh [--no-interop] [--no-fuzz]
#   MTGATE_FUZZ_SECONDS   seconds per fuzz target (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
interop=1
fuzz=1
for arg in "$@"; do
    case "$arg" in
        --no-interop) interop=0 ;;
        --no-fuzz) fuzz=0 ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

if [ "$interop" = 1 ]; then
    step "interop: Python venv (.venv)"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt

    step "interop: Telethon and TelethonFakeTLS through mtgate (direct and middle-proxy modes)"
    # `cargo test` above built both binaries from the current sources; build only if missing
    # (a separate `cargo build` would compile mtgate again without dev-dependency features).
    [ -x target/debug/mtgate ] && [ -x target/debug/mtgate-bench ] ||
        cargo build --locked -p mtgate -p mtgate-bench
    timeout 300 .venv/bin/python tests/interop/mtproto/telethon_echo.py target/debug/mtgate target/debug/mtgate-bench
    timeout 300 .venv/bin/python tests/interop/mtproto/telethon_echo.py target/debug/mtgate target/debug/mtgate-bench --middle

    step "interop: python-socks, PyRoxi and httpx through mtgate's SOCKS5/HTTP listeners"
    timeout 300 .venv/bin/python tests/interop/socks/clients.py target/debug/mtgate

    step "interop: mtgate-client against dante, microsocks and tinyproxy"
    timeout 1500 tests/interop/client/run.sh

    step "interop: https:// upstream through HAProxy (TLS) and tinyproxy"
    timeout 900 tests/interop/https-upstream/run.sh

    step "interop: websocket listener with Node ws (npm) and Python websockets"
    timeout 900 tests/interop/websocket/run.sh

    step "interop: Autobahn cases 1-10 through the websocket listener (kosoku)"
    timeout 1500 tests/interop/websocket/autobahn.sh

    step "interop: reverse tunnel, AnyProxy JSON mode, with an agent and a gateway written from its document"
    timeout 900 tests/interop/tunnel/run.sh
fi

if [ "$fuzz" = 1 ]; then
    step "fuzz: every target for ${MTGATE_FUZZ_SECONDS:-15}s"
    scripts/fuzz.sh "${MTGATE_FUZZ_SECONDS:-15}"
fi

step "all tests passed in $((SECONDS - started))s"

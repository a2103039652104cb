#!/usr/bin/env bash
# mtgate-client vs tokio-socks through Debian's dante (SOCKS5 with username/password) and
# microsocks (no auth), on loopback: connect latency, upload throughput, and pool overhead
# against a single proxy. Prints one table.
#
# Usage: bench/client/run.sh
# Env:   MTGATE_BENCH_CONNECTS (default 400), MTGATE_BENCH_MIB (default 256),
#        CARGO_BUILD_JOBS (default 2); see tests/interop/client/lib.sh for the servers.
set -euo pipefail

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../tests/interop/client/lib.sh"
start_servers

export MTGATE_BENCH_PROXIES="dante=127.0.0.1:$dante_port=$dante_user:$dante_pass,microsocks=127.0.0.1:$micro_port"
cd "$repo"
timeout 1800 cargo bench -j"$jobs" -p mtgate-client --bench proxy_client 2>&1 | grep -v '^\s*\(Compiling\|Finished\|Running\)'

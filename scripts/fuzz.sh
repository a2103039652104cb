#!/usr/bin/env bash
# Runs every fuzz target briefly (default 15 s each) on the stable toolchain.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
# Installs cargo-fuzz if it is missing. Corpora and crash artifacts stay under
# crates/mtgate-proto/fuzz/{corpus,artifacts} (git-ignored).
set -euo pipefail
seconds="${1:-15}"
cd "$(dirname "$0")/../crates/mtgate-proto"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -j2
targets=$(cargo fuzz list)
CARGO_BUILD_JOBS=2 cargo fuzz build --sanitizer none >/dev/null
for target in $targets; do
    echo "fuzz: $target for ${seconds}s"
    cargo fuzz run --sanitizer none "$target" -- -max_total_time="$seconds" -rss_limit_mb=1024 2>&1 \
        | grep -E "^(Done|==|SUMMARY|thread|panicked)|Test unit written|deadly signal" || true
    if ls fuzz/artifacts/"$target"/crash-* >/dev/null 2>&1; then
        echo "fuzz: $target found a crash: $(ls fuzz/artifacts/"$target"/crash-*)"
        exit 1
    fi
done
echo "fuzz: all targets ran without a crash"

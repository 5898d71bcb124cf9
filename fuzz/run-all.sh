#!/usr/bin/env bash
# A bounded fuzzing run of every target: RUNS executions each (default 1,000,000), one after
# another on one core, new inputs kept in fuzz/work/<target>/ (ignored by git), crashes in
# fuzz/artifacts/<target>/. Needs the nightly toolchain and cargo-fuzz:
#   cargo install cargo-fuzz --locked && bash fuzz/run-all.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-1000000}"
for target in idx npy grid_png checkpoint config; do
    mkdir -p "work/$target"
    echo "== $target: $runs runs"
    cargo +nightly fuzz run -O "$target" "work/$target" "seeds/$target" -- \
        -runs="$runs" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -20
done

#!/usr/bin/env bash
# Runs every test of mnist-gan: the Rust test suite, then every notebook on the real evcxr
# Rust kernel. Installs what is missing (evcxr_jupyter with cargo, nbclient with pip).
set -euo pipefail
cd "$(dirname "$0")/.."

# candle's CPU thread pool spin-waits: tests run in parallel threads, so one candle thread each.
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-1}" RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}"

echo "== Rust tests"
cargo test --workspace

echo "== Notebooks"
EVCXR_VERSION=0.22.0
if ! command -v evcxr_jupyter >/dev/null || ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
    echo "installing evcxr_jupyter $EVCXR_VERSION (10-17 minutes on 2 cores)"
    cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION"
fi
if ! python3 -c "import nbclient, nbformat, jupyter_client" 2>/dev/null; then
    python3 -m pip install --quiet nbclient nbconvert
fi
evcxr_jupyter --install >/dev/null
# One fixed build folder for the kernel, so runs after the first reuse compiled crates. It must
# lie outside this cargo workspace, or cargo refuses the kernel's generated project.
export EVCXR_TMPDIR="${EVCXR_TMPDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mnist-gan/evcxr}" MNIST_GAN_QUICK=1
mkdir -p "$EVCXR_TMPDIR"
# The kernel dlopens code linked against the toolchain's libstd-*.so; cargo's relative rpath
# does not reach it from every EVCXR_TMPDIR, so name the folder.
export LD_LIBRARY_PATH="$(rustc --print target-libdir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 tests/run_notebooks.py

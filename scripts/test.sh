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
# The kernel, its build settings and a warm build folder (see scripts/setup-notebooks.sh).
bash scripts/setup-notebooks.sh
export MNIST_GAN_QUICK=1
python3 tests/run_notebooks.py
# Interrupting a training cell, then re-running the cells, picks the run up where it stopped.
python3 tests/notebook_interrupt.py
# Two notebooks open at once: each kernel compiles in a build folder of its own.
python3 tests/notebook_two_kernels.py

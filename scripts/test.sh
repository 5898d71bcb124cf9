#!/usr/bin/env bash
# Runs every test of mnist-gan: the Rust test suite, then the class setup (scripts/setup.sh:
# prerequisites, the project's Python environment, the evcxr kernel, the shared compiled
# template) and every notebook, exercise solution and kernel check on the real evcxr kernel.
set -euo pipefail
cd "$(dirname "$0")/.."

# candle's CPU thread pool spin-waits: tests run in parallel threads, so one candle thread each.
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-1}" RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}"
# pip refuses to install outside a virtual environment, as the system Python of Debian 12 and
# Ubuntu 24.04 does (PEP 668): the setup must work without touching the system's Python.
export PIP_REQUIRE_VIRTUALENV=1

echo "== Rust tests"
cargo test --workspace

echo "== Class setup"
bash scripts/setup.sh
PY="${MNIST_GAN_VENV:-$PWD/.venv}/bin/python"

echo "== Notebooks"
export MNIST_GAN_QUICK=1
"$PY" tests/run_notebooks.py
# Interrupting a training cell, then re-running the cells, picks the run up where it stopped.
"$PY" tests/notebook_interrupt.py
# Notebooks open at once: each kernel in a build folder of its own, none compiling a dependency.
"$PY" tests/notebook_kernels.py

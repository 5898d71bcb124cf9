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
# evcxr_jupyter, when missing, compiles beside the test suite's build (about 17 and 18 minutes of
# compiling on a fresh 2-core AMD EPYC Zen 1 machine; together, both cores stay busy).
mkdir -p outputs
bash scripts/setup.sh --evcxr-only > outputs/evcxr-install.log 2>&1 &
evcxr_install=$!
cargo test --workspace --no-run
if ! wait "$evcxr_install"; then
    tail -n 40 outputs/evcxr-install.log
    echo "installing evcxr_jupyter failed (above; whole log: outputs/evcxr-install.log)" >&2
    exit 1
fi
cargo test --workspace

echo "== Class setup"
bash scripts/setup.sh
PY="${MNIST_GAN_VENV:-$PWD/.venv}/bin/python"
# The second command of "Before class": JupyterLab serves the notebooks with their kernel.
"$PY" tests/open_notebooks.py

echo "== Notebooks"
export MNIST_GAN_QUICK=1
# Every notebook, then its exercises' solutions in the same kernel.
"$PY" tests/run_notebooks.py
# Interrupting a training cell, then re-running the cells, picks the run up where it stopped.
"$PY" tests/notebook_interrupt.py
# Notebooks open at once: each kernel in a build folder of its own, none compiling a dependency.
"$PY" tests/notebook_kernels.py

echo "== A class on one server (JupyterHub)"
# The browser test's browser (Debian's chromium) and its driver (playwright-core, npm).
if ! command -v chromium >/dev/null; then
    echo "installing Debian's chromium for the browser test"
    sudo_=(); [ "$(id -u)" = 0 ] || sudo_=(sudo -n)
    "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
        > outputs/chromium-install.log 2>&1 \
        || { "${sudo_[@]}" apt-get update -qq && "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends chromium > outputs/chromium-install.log 2>&1; } \
        || { tail -n 20 outputs/chromium-install.log; echo "installing chromium failed" >&2; exit 1; }
fi
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
# The server's setup, then four students at once: three through the hub's API, one in the browser.
bash scripts/hub/setup-server.sh
"${MNIST_GAN_SERVER:-/opt/mnist-gan}/venv/bin/python" tests/jupyterhub_class.py

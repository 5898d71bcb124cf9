#!/usr/bin/env bash
# Makes this machine ready for the notebooks, once, before a class. Run again any time: every
# step that is done already is skipped or quick.
#   1. checks the prerequisites (README, "Before class") and names any that is missing;
#   2. the Python side (JupyterLab, nbclient) in a virtual environment of the project's own,
#      .venv (MNIST_GAN_VENV to put it elsewhere), never in the system's Python;
#   3. the evcxr Rust kernel (cargo install, 10-17 minutes on 2 cores, only when missing);
#   4. the notebooks' kernel, "mnist-gan" ("Rust (mnist-gan)" in Jupyter's menu), installed in
#      that environment: evcxr with cells compiled like the release binary, each running kernel
#      in a build folder of its own (scripts/kernel_launcher.py);
#   5. gan_lib and its dependencies compiled once into a template folder (scripts/warm_kernel.py),
#      which every kernel's build folder links to instead of compiling again (MNIST_GAN_TEMPLATE to
#      put it elsewhere, MNIST_GAN_BUILD_DIR for the kernels' folders).
# Then `bash scripts/notebooks.sh` opens JupyterLab. `--evcxr-only` checks the prerequisites and
# installs evcxr_jupyter, nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

RUST_MIN=1.95        # evcxr_jupyter 0.22 needs it
EVCXR_VERSION=0.22.0
VENV="${MNIST_GAN_VENV:-$PWD/.venv}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mnist-gan"
TEMPLATE="${MNIST_GAN_TEMPLATE:-$CACHE/evcxr-template}"
BUILD_DIR="${MNIST_GAN_BUILD_DIR:-$CACHE/evcxr-kernel}"

# -- 1. Prerequisites: all of them checked, every missing one named with its install command.
missing=()
version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then
    missing+=("Rust $RUST_MIN or newer (cargo, rustc): curl https://sh.rustup.rs -sSf | sh, then open a new shell")
else
    rust_version=$(rustc --version | awk '{print $2}')
    if ! version_at_least "$rust_version" "$RUST_MIN"; then
        missing+=("Rust $RUST_MIN or newer (this is rustc $rust_version; a distribution's rustc is too old): rustup update stable")
    fi
fi
if ! command -v cc >/dev/null; then
    missing+=("a C compiler and linker (cc): sudo apt install build-essential   (Fedora: sudo dnf install gcc)")
fi
if ! command -v python3 >/dev/null; then
    missing+=("Python 3.9 or newer: sudo apt install python3 python3-venv")
elif ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
    missing+=("Python 3.9 or newer (this is $(python3 --version)): sudo apt install python3")
elif [ ! -x "$VENV/bin/python" ] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    py=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    missing+=("Python's venv module: sudo apt install python3-venv   (or python$py-venv)")
fi
disk_dir="$CACHE"
while [ ! -d "$disk_dir" ]; do disk_dir=$(dirname "$disk_dir"); done
free_gb=$(df -Pk "$disk_dir" | awk 'NR == 2 {print int($4 / 1048576)}' || true)
if [ -n "$free_gb" ] && [ "$free_gb" -lt 6 ]; then
    missing+=("6 GB of free disk for the kernel and its compiled dependencies ($free_gb GB free at $disk_dir)")
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: missing prerequisites:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi

install_evcxr() {
    if ! grep -q "^evcxr_jupyter v$EVCXR_VERSION:" <<< "$(cargo install --list)"; then
        echo "installing evcxr_jupyter $EVCXR_VERSION (10-17 minutes on 2 cores)"
        cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION"
    fi
}
if [ "${1:-}" = "--evcxr-only" ]; then   # what scripts/test.sh builds beside the test suite
    install_evcxr
    exit 0
fi

# -- 2. The Python side, in the project's own virtual environment.
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating the Python environment $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c 'import jupyterlab, nbclient, nbformat, jupyter_client' 2>/dev/null; then
    echo "installing JupyterLab and nbclient into $VENV (about a minute)"
    "$PY" -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi

# -- 3. The evcxr kernel.
install_evcxr
EVCXR=$(command -v evcxr_jupyter || echo "${CARGO_HOME:-$HOME/.cargo}/bin/evcxr_jupyter")

# -- 4. The mnist-gan kernel, in the environment (its jupyter finds it; nothing in ~/.local).
"$PY" scripts/install_kernel.py --evcxr "$EVCXR" --template "$TEMPLATE" --build-dir "$BUILD_DIR" \
    --libdir "$(rustc --print target-libdir)"

# -- 5. gan_lib and its dependencies compiled once, into the template every kernel links to.
echo "compiling gan_lib for the notebooks into $TEMPLATE (5-10 minutes on 2 cores the first time, seconds after)"
started=$(date +%s)
rm -f "$TEMPLATE/.mnist-gan-template"
"$PY" scripts/warm_kernel.py
date -u +%Y-%m-%dT%H:%M:%SZ > "$TEMPLATE/.mnist-gan-template"
chmod -R a+rX "$TEMPLATE"
echo "ready in $(( $(date +%s) - started )) s: $(du -sh "$TEMPLATE" | cut -f1) in $TEMPLATE"
echo "open the notebooks with: bash scripts/notebooks.sh"

#!/usr/bin/env bash
# Opens the notebooks in JupyterLab, from the project's environment (made by scripts/setup.sh).
# Arguments go to JupyterLab, for example: bash scripts/notebooks.sh --no-browser --port 8890
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MNIST_GAN_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/jupyter-lab" ]; then
    echo "notebooks: no JupyterLab in $VENV; run: bash scripts/setup.sh" >&2
    exit 1
fi
kernels=$("$VENV/bin/jupyter" kernelspec list 2>/dev/null || true)
if ! grep -q '^ *mnist-gan ' <<< "$kernels"; then
    echo "notebooks: the mnist-gan kernel is not installed; run: bash scripts/setup.sh" >&2
    exit 1
fi
# JupyterLab refuses to run as root unless told; a class's cloud machine often is root.
as_root=()
[ "$(id -u)" = 0 ] && as_root=(--allow-root)
exec "$VENV/bin/jupyter-lab" --notebook-dir=notebooks "${as_root[@]}" "$@"

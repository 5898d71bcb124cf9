#!/usr/bin/env bash
# Makes this machine ready to run the notebooks, once, before a class:
#   1. the evcxr Rust kernel (cargo install, 10-17 minutes on 2 cores, only when missing) and the
#      Python side that runs notebooks headless (nbclient, only when missing);
#   2. a kernel of its own, "mnist-gan" ("Rust (mnist-gan)" in Jupyter's menu), which the notebooks
#      ask for: evcxr with build settings in its environment (cells compiled like the release
#      binary: opt-level 3, no debug assertions or overflow checks, instead of evcxr's opt-level 2
#      with both) and a build folder that later runs reuse, one per kernel running at the same time
#      (scripts/kernel_launcher.py). evcxr's own "rust" kernel is left as evcxr installs it;
#   3. gan_lib and its dependencies compiled ahead into that folder, by running the first cell
#      of a notebook once.
# Run again any time: every step that is done already is skipped or quick.
set -euo pipefail
cd "$(dirname "$0")/.."

EVCXR_VERSION=0.22.0
if ! command -v evcxr_jupyter >/dev/null || ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
    echo "installing evcxr_jupyter $EVCXR_VERSION (10-17 minutes on 2 cores)"
    cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION"
fi
if ! python3 -c "import nbclient, nbformat, jupyter_client" 2>/dev/null; then
    python3 -m pip install --quiet nbclient nbconvert
fi
evcxr_jupyter --install >/dev/null   # evcxr's own "rust" kernel, as evcxr writes it

# The build folder must lie outside this cargo workspace, or cargo refuses the kernel's crate.
build_dir="${EVCXR_TMPDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mnist-gan/evcxr}"
mkdir -p "$build_dir"
python3 - "$build_dir" "$(rustc --print target-libdir)" "$(command -v evcxr_jupyter)" <<'PY'
import json, shutil, sys, tempfile
from pathlib import Path
from jupyter_client.kernelspec import KernelSpecManager

build_dir, libdir, evcxr = sys.argv[1:4]
manager = KernelSpecManager()
with tempfile.TemporaryDirectory() as folder:
    spec_dir = Path(folder) / "mnist-gan"
    # evcxr's logos, then the launcher (copied, so the kernel works wherever the clone moves).
    shutil.copytree(manager.get_kernel_spec("rust").resource_dir, spec_dir)
    shutil.copy("scripts/kernel_launcher.py", spec_dir / "kernel_launcher.py")
    kernel = {
        "argv": [sys.executable, "{resource_dir}/kernel_launcher.py", "--evcxr", evcxr,
                 "--build-dir", build_dir, "--", "--control_file", "{connection_file}"],
        "display_name": "Rust (mnist-gan)",
        "language": "rust",
        "interrupt_mode": "message",
        "env": {
            # Cargo's environment overrides the profile evcxr writes into the cells' Cargo.toml.
            "CARGO_PROFILE_DEV_OPT_LEVEL": "3",
            "CARGO_PROFILE_DEV_DEBUG_ASSERTIONS": "false",
            "CARGO_PROFILE_DEV_OVERFLOW_CHECKS": "false",
            # The cells' libraries link the toolchain's libstd-*.so; cargo's rpath does not reach
            # it from every build folder.
            "LD_LIBRARY_PATH": libdir,
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(kernel, indent=2) + "\n")
    installed = manager.install_kernel_spec(str(spec_dir), kernel_name="mnist-gan", user=True)
print(f"kernel 'mnist-gan': {installed} (build folders {build_dir}, {build_dir}-1, ...)")
PY

echo "compiling gan_lib for the notebooks (about 5 minutes on 2 cores the first time, seconds after)"
started=$(date +%s)
python3 tests/run_notebooks.py --first-cells notebooks/01-training-a-gan.ipynb
echo "ready in $(( $(date +%s) - started )) s"

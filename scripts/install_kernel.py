#!/usr/bin/env python3
"""Installs the notebooks' kernel, "mnist-gan" ("Rust (mnist-gan)" in Jupyter's menu), into the
Python environment that runs this script (its Jupyter finds it there; nothing in ~/.local).

The kernel is evcxr started through scripts/kernel_launcher.py (copied beside the kernel spec),
which gives every running kernel a build folder of its own made from a compiled template; its
cells compile like the release binary. Used by scripts/setup.sh (one machine) and
scripts/hub/setup-server.sh (one server, many users), which pass what differs between them:

  install_kernel.py --evcxr PATH --template DIR --build-dir DIR --libdir DIR
                    [--cargo-config FILE] [--env KEY=VALUE]...

--libdir is the toolchain's target libdir (`rustc --print target-libdir`), --cargo-config is
cargo's configuration for the kernels' builds (scripts/kernel_launcher.py), --env adds settings to
the kernel's environment (PATH for a shared toolchain, thread counts for a busy server).
"""
import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

LAUNCHER = Path(__file__).resolve().parent / "kernel_launcher.py"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evcxr", required=True, help="the evcxr_jupyter program")
    parser.add_argument("--template", required=True, help="the compiled template folder")
    parser.add_argument("--build-dir", required=True, help="the kernels' folders' base (~ allowed)")
    parser.add_argument("--libdir", required=True, help="`rustc --print target-libdir`")
    parser.add_argument("--cargo-config", help="cargo's configuration for the kernels' builds")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    options = parser.parse_args()

    env = {
        # Cargo's environment overrides the profile evcxr writes into the cells' Cargo.toml.
        "CARGO_PROFILE_DEV_OPT_LEVEL": "3",
        "CARGO_PROFILE_DEV_DEBUG_ASSERTIONS": "false",
        "CARGO_PROFILE_DEV_OVERFLOW_CHECKS": "false",
        # No debug info: it made each build folder about 2 GB; panics still name the line.
        "CARGO_PROFILE_DEV_DEBUG": "line-tables-only",
        # The cells' libraries link the toolchain's libstd-*.so; cargo's rpath does not reach
        # it from every build folder.
        "LD_LIBRARY_PATH": options.libdir,
    }
    for setting in options.env:
        key, separator, value = setting.partition("=")
        if not separator or not key:
            sys.exit(f"install_kernel: --env {setting!r} is not KEY=VALUE")
        env[key] = value

    with tempfile.TemporaryDirectory() as folder:
        spec_dir = Path(folder) / "mnist-gan"
        spec_dir.mkdir()
        shutil.copy(LAUNCHER, spec_dir / "kernel_launcher.py")
        cargo_config = ["--cargo-config", options.cargo_config] if options.cargo_config else []
        kernel = {
            "argv": [sys.executable, "{resource_dir}/kernel_launcher.py",
                     "--evcxr", options.evcxr, "--template", options.template,
                     "--build-dir", options.build_dir, *cargo_config,
                     "--", "--control_file", "{connection_file}"],
            "display_name": "Rust (mnist-gan)",
            "language": "rust",
            "interrupt_mode": "message",
            "env": env,
        }
        (spec_dir / "kernel.json").write_text(json.dumps(kernel, indent=2) + "\n")
        installed = KernelSpecManager().install_kernel_spec(
            str(spec_dir), kernel_name="mnist-gan", prefix=sys.prefix)
    print(f"kernel 'mnist-gan': {installed}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Starts the evcxr kernel in a build folder that no other running kernel uses.

evcxr compiles every cell in the folder EVCXR_TMPDIR names (its Cargo.toml, src/lib.rs, target/)
and takes no lock there: two kernels in one folder overwrite each other's cell and fail with
"Error renaming .../libctx.so". Without EVCXR_TMPDIR every kernel gets a fresh folder and compiles
candle and gan_lib again (about 5 minutes on 2 cores). So each kernel takes the first of the
folders BUILD_DIR, BUILD_DIR-1, BUILD_DIR-2, ... whose lock no running kernel holds, and holds it
until it exits: one notebook at a time always finds BUILD_DIR, warm; a second notebook open at the
same time compiles BUILD_DIR-1 once, and finds it warm after that.

scripts/setup-notebooks.sh copies this file into the mnist-gan kernel's folder and runs it as
    kernel_launcher.py --evcxr PATH --build-dir BUILD_DIR -- ARGS...
which runs PATH ARGS... with EVCXR_TMPDIR set (ARGS: evcxr_jupyter's --control_file FILE).
"""
import argparse
import fcntl
import os
import sys
from pathlib import Path

MAX_FOLDERS = 16


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evcxr", required=True, help="the program to run (evcxr_jupyter)")
    parser.add_argument("--build-dir", required=True, type=Path, help="the first build folder")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the program's arguments")
    options = parser.parse_args()
    args = options.args[1:] if options.args[:1] == ["--"] else options.args

    base = options.build_dir.expanduser()
    for slot in range(MAX_FOLDERS):
        folder = base if slot == 0 else base.with_name(f"{base.name}-{slot}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = os.open(folder.with_name(folder.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            sys.exit(f"mnist-gan kernel: cannot use the build folder {folder}: {error}")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            continue
        # The lock lives as long as this descriptor: passed on to the kernel, it is released
        # when the kernel (and every process it started) has exited.
        os.set_inheritable(lock, True)
        os.environ["EVCXR_TMPDIR"] = str(folder)
        try:
            os.execv(options.evcxr, [options.evcxr, *args])
        except OSError as error:
            sys.exit(f"mnist-gan kernel: cannot run {options.evcxr}: {error}; "
                     "run scripts/setup-notebooks.sh again")
    sys.exit(f"mnist-gan kernel: all {MAX_FOLDERS} build folders beside {base} are in use by "
             "running kernels; shut some notebooks down")


if __name__ == "__main__":
    main()

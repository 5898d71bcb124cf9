#!/usr/bin/env python3
"""Starts the evcxr kernel in a build folder of its own, made from one shared compiled template.

evcxr compiles every cell in the folder EVCXR_TMPDIR names (its Cargo.toml, src/lib.rs, target/)
and takes no lock there: two kernels in one folder overwrite each other's cell and fail with
"Error renaming .../libctx.so". Without EVCXR_TMPDIR every kernel gets a fresh folder and compiles
candle and gan_lib again (about 2 GB and 5-10 minutes on 2 cores, for every notebook open).

So the dependencies are compiled once, by scripts/setup.sh, into a TEMPLATE folder, and each
kernel takes the first of the folders BUILD_DIR-0, BUILD_DIR-1, ... whose lock no running kernel
holds (it keeps the lock until it exits). A folder made from an older template, or never made, is
made again from the template: its large files (compiled libraries) as hard links to the
template's, which cost no disk and no compiling; its small files (cargo's fingerprints, evcxr's
sources) as copies, which each kernel may rewrite without touching the others. Compilers replace
their outputs (a new file renamed over the old one) rather than write into them, so a kernel that
recompiles something never changes the template. Where the file system refuses a hard link (another
file system, or, on a server, a template another user owns: Linux's fs.protected_hardlinks lets a
user hard-link only files they could write), the large file is a symbolic link to the template's
instead: still no disk, and a file the kernel's user cannot write, so nothing can change it.

scripts/setup.sh copies this file into the mnist-gan kernel's folder and runs it as
    kernel_launcher.py --evcxr PATH --template TEMPLATE --build-dir BUILD_DIR -- ARGS...
which runs PATH ARGS... with EVCXR_TMPDIR set (ARGS: evcxr_jupyter's --control_file FILE).
With --cargo-config FILE (a server's kernel, scripts/hub/setup-server.sh), that file becomes
.cargo/config.toml in the folder above the build folder, which cargo reads for every build in it
(evcxr writes the build folder's own .cargo/config.toml): there it points cargo at the server's
vendored sources, so that every user's cargo builds from the same files as the template. (Not
above the toolchain: evcxr's rust-analyzer reads the standard library's sources with cargo, and
their dependencies are not among the vendored ones.)
A leading ~ in BUILD_DIR is the home of the user running the kernel (one server, many users).
With MNIST_GAN_BUILD_TEMPLATE=1 in its environment the kernel compiles in TEMPLATE itself: what
scripts/setup.sh does once.
"""
import argparse
import errno
import fcntl
import os
import shutil
import sys
from pathlib import Path

MAX_FOLDERS = 16
# What the template was made at: a kernel folder holding another stamp is made again.
STAMP = ".mnist-gan-template"
# Files at least this large are hard links; smaller ones (fingerprints, sources) are copies.
LINK_FROM_BYTES = 64 * 1024


def stamp_of(folder):
    try:
        return (folder / STAMP).read_text().strip()
    except OSError:
        return None


def take_lock(folder):
    """An exclusive lock on `folder`, or None when a running kernel holds it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(folder.with_name(folder.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        return None
    return lock


def link_or_copy(source, target):
    if os.path.getsize(source) >= LINK_FROM_BYTES:
        try:
            os.link(source, target)
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EXDEV, errno.EACCES, errno.EMLINK):
                raise
            os.symlink(os.path.abspath(source), target)
        return
    shutil.copy2(source, target)


def make_from_template(template, folder):
    """Replaces `folder` by the template's tree (links for large files, copies for small)."""
    partial = folder.with_name(folder.name + ".partial")
    for old in (partial, folder):
        shutil.rmtree(old, ignore_errors=True)
    # A shared lock (read-only, so another user's template works): waits while
    # scripts/setup.sh is compiling the template.
    lock = os.open(template.with_name(template.name + ".lock"), os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_SH)
        shutil.copytree(template, partial, symlinks=True, copy_function=link_or_copy)
    finally:
        os.close(lock)
    partial.rename(folder)


def place_cargo_config(config, folder):
    """Makes `config` the .cargo/config.toml above `folder`, unless it is there already."""
    text = config.read_text()
    target = folder.parent / ".cargo" / "config.toml"
    if not target.exists() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"config.toml.{os.getpid()}")
        partial.write_text(text)
        partial.rename(target)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evcxr", required=True, help="the program to run (evcxr_jupyter)")
    parser.add_argument("--template", type=Path, help="the folder scripts/setup.sh compiled")
    parser.add_argument("--build-dir", required=True, type=Path, help="the kernels' folders' base")
    parser.add_argument("--cargo-config", type=Path, help="cargo's configuration for the builds")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the program's arguments")
    options = parser.parse_args()
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    template = options.template.expanduser() if options.template else None

    if template and os.environ.get("MNIST_GAN_BUILD_TEMPLATE") == "1":
        candidates = [template]
    else:
        base = options.build_dir.expanduser()
        candidates = [base.with_name(f"{base.name}-{slot}") for slot in range(MAX_FOLDERS)]
    for folder in candidates:
        try:
            lock = take_lock(folder)
            if lock is None:
                continue
            ready = stamp_of(template) if template else None
            if folder != template and ready and stamp_of(folder) != ready:
                make_from_template(template, folder)
            folder.mkdir(parents=True, exist_ok=True)
            if options.cargo_config:
                place_cargo_config(options.cargo_config, folder)
        except OSError as error:
            sys.exit(f"mnist-gan kernel: cannot use the build folder {folder}: {error}")
        # The lock lives as long as this descriptor: passed on to the kernel, it is released
        # when the kernel (and every process it started) has exited.
        os.set_inheritable(lock, True)
        os.environ["EVCXR_TMPDIR"] = str(folder)
        try:
            os.execv(options.evcxr, [options.evcxr, *args])
        except OSError as error:
            sys.exit(f"mnist-gan kernel: cannot run {options.evcxr}: {error}; "
                     "run scripts/setup.sh again")
    sys.exit(f"mnist-gan kernel: all {MAX_FOLDERS} build folders beside {candidates[0]} are in "
             "use by running kernels; shut some notebooks down")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Two notebooks open at once: each kernel compiles its cells in a build folder of its own.

evcxr takes no lock on its build folder; two kernels sharing one overwrite each other's cell
("Error renaming .../libctx.so"). The mnist-gan kernel starts through
scripts/kernel_launcher.py, which gives every running kernel its own folder and keeps them for
the next kernels. This script checks, with the installed mnist-gan kernel's command and settings
but build folders of its own (so the warm ones are left alone):
  1. the launcher: two kernels started together get different folders, a kernel started
     after both have exited gets the first folder again, and a missing evcxr is named;
  2. the real kernel: two kernels compiling and running cells at the same moment each get the
     results of their own cells.

Usage: notebook_two_kernels.py   (needs the kernel of scripts/setup-notebooks.sh)
"""
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_interrupt import run  # noqa: E402
from run_notebooks import KERNEL  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "scripts" / "kernel_launcher.py"


def launch(build_dir, seconds):
    """Starts the launcher with a shell in place of evcxr that prints its build folder."""
    return subprocess.Popen(
        [sys.executable, str(LAUNCHER), "--evcxr", "/bin/sh", "--build-dir", str(build_dir),
         "--", "-c", f'echo "$EVCXR_TMPDIR"; sleep {seconds}'],
        stdout=subprocess.PIPE, text=True)


def check_launcher(scratch):
    base = scratch / "launcher" / "evcxr"
    first, second = launch(base, 3), launch(base, 3)
    folders = [first.stdout.readline().strip(), second.stdout.readline().strip()]
    for process in (first, second):
        process.wait()
    later = launch(base, 0)
    again = later.stdout.readline().strip()
    later.wait()
    print(f"launcher: together {folders}, afterwards {again}")
    expected = {str(base), f"{base}-1"}
    if set(folders) != expected:
        return f"two kernels at once got {folders}, expected the folders {sorted(expected)}"
    if again != str(base):
        return f"a kernel started after both exited got {again}, expected {base} (a lock was kept)"
    # A kernel that cannot start says why, in the kernel's log that Jupyter shows.
    missing = subprocess.run(
        [sys.executable, str(LAUNCHER), "--evcxr", str(scratch / "no-evcxr"), "--build-dir", str(base)],
        capture_output=True, text=True)
    if missing.returncode == 0 or "cannot run" not in missing.stderr:
        return f"a missing evcxr_jupyter gave exit {missing.returncode} and {missing.stderr!r}"
    return None


def scratch_kernelspec(scratch):
    """A copy of the installed KERNEL whose build folders lie in `scratch`."""
    manager = KernelSpecManager()
    installed = Path(manager.get_kernel_spec(KERNEL).resource_dir)
    spec_dir = scratch / "mnist-gan-two-kernels"
    shutil.copytree(installed, spec_dir)
    kernel = json.loads((spec_dir / "kernel.json").read_text())
    argv = kernel["argv"]
    argv[argv.index("--build-dir") + 1] = str(scratch / "kernel" / "evcxr")
    (spec_dir / "kernel.json").write_text(json.dumps(kernel, indent=2))
    manager.install_kernel_spec(str(spec_dir), kernel_name="mnist-gan-two-kernels", user=True)
    return manager


def check_kernels(scratch):
    manager = scratch_kernelspec(scratch)
    kernels = []
    try:
        for _ in range(2):
            kernels.append(start_new_kernel(kernel_name="mnist-gan-two-kernels", cwd=str(ROOT)))
        # Both kernels compile and run a cell at the same moment, twice.
        steps = [
            [f"let who = \"kernel {i}\"; let number = {i}u32 * 100;" for i in range(2)],
            ['println!("{who}: {} in {}", number + 1, std::env::var("EVCXR_TMPDIR").unwrap());'] * 2,
        ]
        for codes in steps:
            results = [None, None]

            def execute(i):
                results[i] = run(kernels[i][1], codes[i], timeout=600)

            threads = [threading.Thread(target=execute, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for i, (out, error) in enumerate(results):
                if error:
                    return f"kernel {i}: {error}\n{out}"
        printed = [out.strip() for out, _ in results]
        print(f"kernels: {printed}")
        folders = set()
        for i, text in enumerate(printed):
            mine, _, folder = text.partition(" in ")
            if mine != f"kernel {i}: {i * 100 + 1}":
                return f"kernel {i} printed {text!r}, expected its own variables"
            folders.add(folder)
        if len(folders) != 2:
            return f"both kernels compiled in {folders}"
        return None
    finally:
        for km, _ in kernels:
            km.shutdown_kernel(now=True)
        manager.remove_kernel_spec("mnist-gan-two-kernels")


def main():
    scratch = Path(tempfile.mkdtemp(prefix="mnist-gan-two-kernels-"))
    try:
        for check in (check_launcher, check_kernels):
            problem = check(scratch)
            if problem:
                print(f"FAILED: {problem}")
                return 1
        print("ok: each kernel running at the same time compiles in a build folder of its own")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

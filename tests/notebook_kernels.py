#!/usr/bin/env python3
"""Notebooks open at once: each kernel runs in a build folder of its own, and none compiles a
dependency again, because every folder links to the template scripts/setup.sh compiled once.

evcxr takes no lock on its build folder; two kernels sharing one overwrite each other's cell
("Error renaming .../libctx.so"). The mnist-gan kernel starts through scripts/kernel_launcher.py,
which gives every running kernel its own folder, made from the template. This script checks,
with the installed mnist-gan kernel's command, settings and template, but build folders of its
own (so the class's folders are left alone):
  1. the launcher: two kernels started together get different folders, a kernel started after
     both have exited gets the first folder again, a folder is made from the template with its
     large files as hard links and its small ones as copies, made again when the template
     changes and kept otherwise, and a missing evcxr is named;
  2. the real kernel: two kernels compiling and running cells at the same moment each get the
     results of their own cells, and neither compiles a dependency, for a build or for the
     `cargo check` evcxr runs when a cell keeps a closure: cargo's fingerprint folders
     (one per compiled crate) in each kernel's folder are the template's, plus only the cells'
     own crate, and every compiled library of the template is still the one in the kernel's
     folder (the same file where it was linked, the same modification time where it was
     copied), not a rebuilt one. It reports the disk each kernel adds;
  3. a class at work: with three kernels busy training, a fourth opens notebook 3 and runs it to
     its first figure; the time it took is reported (README, "Before class").

Usage: notebook_kernels.py   (needs the kernel of scripts/setup.sh)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_notebooks import KERNEL  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from warm_kernel import run  # noqa: E402  (executes a cell on a kernel)

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "scripts" / "kernel_launcher.py"
SCRATCH_KERNEL = "mnist-gan-kernels-check"
SETUP = ':dep gan_lib = { path = "../gan_lib", default-features = false }'


def launch(build_dir, seconds, template=None, command=None):
    """Starts the launcher with a shell in place of evcxr that prints its build folder."""
    extra = ["--template", str(template)] if template else []
    script = command or f'echo "$EVCXR_TMPDIR"; sleep {seconds}'
    return subprocess.Popen(
        [sys.executable, str(LAUNCHER), "--evcxr", "/bin/sh", *extra, "--build-dir", str(build_dir),
         "--", "-c", script],
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
    expected = {f"{base}-0", f"{base}-1"}
    if set(folders) != expected:
        return f"two kernels at once got {folders}, expected the folders {sorted(expected)}"
    if again != f"{base}-0":
        return f"a kernel started after both exited got {again}, expected {base}-0 (a lock was kept)"

    # A folder made from a template: large files linked, small ones copied.
    template = scratch / "launcher" / "template"
    (template / "target" / "deps").mkdir(parents=True)
    (template / "target" / "deps" / "libbig.rlib").write_bytes(b"x" * 200_000)
    (template / "target" / "fingerprint").write_text("small")
    (template / ".mnist-gan-template").write_text("one")
    made = scratch / "launcher" / "kernel"
    write_mark = 'echo "$EVCXR_TMPDIR"; echo mine > "$EVCXR_TMPDIR/mark"'
    launch(made, 0, template, write_mark).wait()
    folder = Path(f"{made}-0")
    big, small = folder / "target" / "deps" / "libbig.rlib", folder / "target" / "fingerprint"
    if not big.exists() or os.stat(big).st_ino != os.stat(template / "target/deps/libbig.rlib").st_ino:
        return f"{big} is not a hard link to the template's file"
    if small.read_text() != "small" or os.stat(small).st_ino == os.stat(template / "target/fingerprint").st_ino:
        return f"{small} is not a copy of the template's file"
    launch(made, 0, template, "true").wait()
    if not (folder / "mark").exists():
        return "a kernel folder made from the current template was made again"
    (template / ".mnist-gan-template").write_text("two")
    launch(made, 0, template, "true").wait()
    if (folder / "mark").exists() or (folder / ".mnist-gan-template").read_text() != "two":
        return "a kernel folder of an older template was not made again"

    # A kernel that cannot start says why, in the kernel's log that Jupyter shows.
    missing = subprocess.run(
        [sys.executable, str(LAUNCHER), "--evcxr", str(scratch / "no-evcxr"), "--build-dir", str(base)],
        capture_output=True, text=True)
    if missing.returncode == 0 or "cannot run" not in missing.stderr:
        return f"a missing evcxr_jupyter gave exit {missing.returncode} and {missing.stderr!r}"
    return None


def scratch_kernelspec(scratch):
    """A copy of the installed KERNEL whose kernels' folders lie in `scratch`; and its template."""
    manager = KernelSpecManager()
    installed = Path(manager.get_kernel_spec(KERNEL).resource_dir)
    spec_dir = scratch / SCRATCH_KERNEL
    shutil.copytree(installed, spec_dir)
    kernel = json.loads((spec_dir / "kernel.json").read_text())
    argv = kernel["argv"]
    argv[argv.index("--build-dir") + 1] = str(scratch / "kernel" / "evcxr")
    (spec_dir / "kernel.json").write_text(json.dumps(kernel, indent=2))
    manager.install_kernel_spec(str(spec_dir), kernel_name=SCRATCH_KERNEL, prefix=sys.prefix)
    return manager, Path(argv[argv.index("--template") + 1])


def compiled_units(folder):
    """Names of cargo's fingerprint folders: one per crate compiled there."""
    return {p.name for p in folder.rglob(".fingerprint/*") if p.is_dir()}


def libraries(folder):
    """{path inside `folder`: (inode, modification time, size)} of every compiled library."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("deps/*") if p.suffix in (".rlib", ".rmeta", ".so") and p.is_file()}


def rebuilt(template_libraries, folder):
    """The template's libraries that `folder` holds in another version: written since (another
    modification time; the launcher's copies keep the template's), or, for those the launcher
    links (64 KiB and more), another file."""
    found = []
    for path, (inode, mtime, size) in template_libraries.items():
        mine = folder / path
        if not mine.exists() or mine.name.startswith("libctx"):  # the cells' own crate
            continue
        stat = mine.stat()
        if stat.st_mtime_ns != mtime or size >= 64 * 1024 and stat.st_ino != inode:
            found.append(path)
    return sorted(found)


def disk_kib(*folders):
    """KiB each folder adds, a file linked from an earlier folder counted only once (du)."""
    out = subprocess.run(["du", "-sk", *map(str, folders)], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()]


def check_kernels(scratch):
    manager, template = scratch_kernelspec(scratch)
    if not (template / ".mnist-gan-template").exists():
        return f"no compiled template in {template}: run scripts/setup.sh"
    kernels = []
    try:
        for _ in range(2):
            kernels.append(start_new_kernel(kernel_name=SCRATCH_KERNEL, cwd=str(ROOT / "notebooks")))
        # Both kernels compile and run the same cells at the same moment.
        steps = [
            [SETUP] * 2,
            [f"let who = String::from(\"kernel {i}\"); let number = {i}u32 * 100; "
             "let mnist = gan_lib::data::Mnist::load_vendored().unwrap();" for i in range(2)],
            ['println!("{who}: {} in {}; {} digits", number + 1, std::env::var("EVCXR_TMPDIR").unwrap(), mnist.train.len());'] * 2,
            # A closure in a variable: evcxr refuses it after a `cargo check` of everything.
            ["let f = || ();"] * 2,
        ]
        started = time.time()
        for codes in steps:
            results = [None, None]

            def execute(i):
                results[i] = run(kernels[i][1], codes[i], timeout=900)

            threads = [threading.Thread(target=execute, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for i, (out, error) in enumerate(results):
                if error and "is a closure" not in out:
                    return f"kernel {i}: {error}\n{out}"
            if codes[0].startswith("println"):
                printed = [out.strip() for out, _ in results]
        seconds = time.time() - started
        print(f"kernels: {printed} ({seconds:.0f} s for both to load gan_lib and run 3 cells)")
        folders = []
        for i, text in enumerate(printed):
            mine = re.fullmatch(rf"kernel {i}: {i * 100 + 1} in (\S+); 60000 digits", text)
            if not mine:
                return f"kernel {i} printed {text!r}, expected its own variables"
            folders.append(Path(mine.group(1)))
        if len(set(folders)) != 2:
            return f"both kernels compiled in {folders}"

        template_units, template_libraries = compiled_units(template), libraries(template)
        if not template_units:
            return f"the template {template} holds no compiled crate"
        for folder in folders:
            new = compiled_units(folder) - template_units
            # The cells' own crate: evcxr names it ctx.
            compiled = sorted(n for n in new if not n.startswith("ctx-"))
            if compiled:
                return f"{folder} compiled dependencies again: {compiled[:10]}"
            again = rebuilt(template_libraries, folder)
            if again:
                return (f"{folder} holds other files than the template's libraries (rebuilt, or copied "
                        f"instead of linked): {again[:10]}")
        sizes = disk_kib(template, *folders)
        print(f"disk: template {sizes[0] / 1024:.0f} MiB; each kernel adds "
              + ", ".join(f"{s / 1024:.0f} MiB" for s in sizes[1:])
              + f"; {len(template_units)} crates compiled once, none again")
        if max(sizes[1:]) > sizes[0] / 2:
            return f"a kernel's folder holds copies, not links: {sizes} KiB"
        return None
    finally:
        for km, _ in kernels:
            km.shutdown_kernel(now=True)
        manager.remove_kernel_spec(SCRATCH_KERNEL)


BUSY = """
let mnist = gan_lib::data::Mnist::load_vendored().unwrap();
let mut config = gan_lib::config::TrainConfig::preset("fast-mlp").unwrap();
config.epochs = 1000;
let (mut trainer, _) = gan_lib::train::Trainer::open(&config, &format!("../outputs/kernels-check-busy-{}", std::process::id()), gan_lib::train::Start::Fresh, &gan_lib::candle_core::Device::Cpu).unwrap();
let data = mnist.train.clone().limit(6400);
println!("busy");
while trainer.epoch < config.epochs { trainer.train_epoch(&data).unwrap(); }
"""


def check_busy_class(scratch):
    """Three kernels training, then a fourth runs notebook 3 to its first figure."""
    manager, _ = scratch_kernelspec(scratch)
    busy = []
    try:
        for _ in range(3):
            km, kc = start_new_kernel(kernel_name=SCRATCH_KERNEL, cwd=str(ROOT / "notebooks"))
            busy.append((km, kc))
            out, error = run(kc, SETUP, timeout=900)
            if error:
                return f"a busy kernel's first cell: {error}\n{out}"
            kc.execute(BUSY)
        time.sleep(10)
        notebook = nbformat.read(ROOT / "notebooks" / "03-batch-analysis.ipynb", as_version=4)
        started = time.time()
        km, kc = start_new_kernel(kernel_name=SCRATCH_KERNEL, cwd=str(ROOT / "notebooks"))
        busy.append((km, kc))
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            out, error = run(kc, cell.source, timeout=900)
            if error:
                return f"notebook 3 beside three busy kernels: {error}\n{out}"
            if "expect-image" in cell.metadata.get("tags", []):
                break
        seconds = time.time() - started
        print(f"class: notebook 3 reached its first figure {seconds:.0f} s after its kernel was "
              "asked for, beside three kernels training (start, gan_lib loaded, cells run)")
        return None
    finally:
        for km, _ in busy:
            km.shutdown_kernel(now=True)
        for folder in (ROOT / "outputs").glob("kernels-check-busy-*"):
            shutil.rmtree(folder, ignore_errors=True)
        manager.remove_kernel_spec(SCRATCH_KERNEL)


def main():
    scratch = Path(tempfile.mkdtemp(prefix="mnist-gan-kernels-"))
    try:
        for check in (check_launcher, check_kernels, check_busy_class):
            problem = check(scratch)
            if problem:
                print(f"FAILED: {problem}")
                return 1
            shutil.rmtree(scratch / SCRATCH_KERNEL, ignore_errors=True)
        print("ok: each kernel in a build folder of its own, linked to one compiled template")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

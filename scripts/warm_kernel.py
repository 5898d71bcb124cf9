#!/usr/bin/env python3
"""Compiles what the notebooks' kernels need, once, into the template every kernel links to.

Run by scripts/setup.sh with the project's environment: starts the installed mnist-gan kernel with
MNIST_GAN_BUILD_TEMPLATE=1 (so it compiles in the template folder itself, see
scripts/kernel_launcher.py) in notebooks/, and runs there
  1. notebook 1's first code cell (the `:dep` on gan_lib and the `use` lines): cargo builds gan_lib
     and every dependency;
  2. its second cell, the first that calls gan_lib: the cells' own crate, linked;
  3. a cell that keeps a closure in a variable. evcxr cannot keep one, and to say so it runs
     `cargo check`, which compiles every dependency again in check mode (metadata only); a student's
     first closure, or any variable whose type evcxr cannot work out, does the same. Done here, the
     kernels find that in the template too.
Prints each step's time; exits 1 with the kernel's message when a step fails.

Usage: warm_kernel.py [NOTEBOOKS]   (the notebooks folder to run in; this project's by default)
"""
import os
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "mnist-gan"
CHECK_CELL = "let warm_up_cargo_check = || ();"


def run(client, code, timeout=3600, on_output=None):
    """Executes `code` on a kernel; returns (its output, its error name or None). `on_output`,
    when given, is called with the output so far at every new piece of it."""
    msg_id = client.execute(code)
    text, error = [], None
    deadline = time.time() + timeout
    while True:
        message = client.get_iopub_msg(timeout=max(1, deadline - time.time()))
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            text.append(content["text"])
            if on_output:
                on_output("".join(text))
        elif kind == "error":
            error = content.get("ename", "error")
            text.append("\n".join(content.get("traceback", [])))
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(text), error


def main():
    notebooks = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "notebooks"
    notebook = nbformat.read(notebooks / "01-training-a-gan.ipynb", as_version=4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code"][:2]
    os.environ["MNIST_GAN_BUILD_TEMPLATE"] = "1"
    manager, client = start_new_kernel(kernel_name=KERNEL, cwd=str(notebooks))
    try:
        steps = [("gan_lib and its dependencies", cells[0], None),
                 ("the cells' own crate", cells[1], None),
                 ("the dependencies in check mode", CHECK_CELL, "is a closure")]
        for name, code, expected_error in steps:
            started = time.time()
            out, error = run(client, code)
            seconds = time.time() - started
            if expected_error and expected_error not in out or not expected_error and error:
                print(f"warm_kernel: compiling {name} failed:\n{out[-4000:]}", file=sys.stderr)
                return 1
            print(f"compiled {name}: {seconds:.1f} s")
        return 0
    finally:
        manager.shutdown_kernel(now=True)


if __name__ == "__main__":
    sys.exit(main())

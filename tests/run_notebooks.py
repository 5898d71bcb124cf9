#!/usr/bin/env python3
"""Executes every notebook in notebooks/ with the real evcxr Rust kernel and fails on any error.

nbconvert alone hides rustc's messages and lets a panic pass (it is only a stderr stream), so
this runner executes with allow_errors, then scans every output for errors and panics, and
checks that every cell tagged "expect-image" produced a figure (PNG, or SVG inside HTML).

The exercises' solutions run too: notebooks/solutions/NAME.ipynb holds a code cell starting
`// Exercise N` for every "### Exercise N" heading of notebooks/NAME.ipynb, and its cells run
after the notebook's own, in the same kernel (they use its variables), with the same checks.

Usage: run_notebooks.py [--write-back] [--first-cells] [--kernel=NAME] [NOTEBOOK ...]
  --write-back   save the executed notebooks in place (to refresh the committed outputs);
                 by default they are written to outputs/notebooks/.
  --first-cells  run only the first two code cells (the `:dep` cell and the first that calls
                 gan_lib), print how long each took, and write nothing: a measure of how
                 soon a notebook is ready.
  --kernel=NAME  run on another kernel than mnist-gan (to time evcxr's plain `rust` kernel,
                 for example); the notebooks' own kernel is then not checked.
"""
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
# The kernel scripts/setup.sh installs: evcxr with the project's build settings.
KERNEL = "mnist-gan"
ERROR_PATTERNS = [re.compile(p) for p in (r"panicked at", r"^error(\[E\d+\])?:", r"variable was lost")]


def problems(notebook, kernel):
    """(cell index, message) for every error or missing figure."""
    found = []
    asked = notebook.metadata.get("kernelspec", {}).get("name")
    if kernel == KERNEL and asked != KERNEL:
        found.append((-1, f"the notebook asks for the kernel {asked!r}; the notebooks use {KERNEL!r}"))
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        figures = 0
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append((index, f"{output.get('ename')}: {output.get('evalue')}\n" + "\n".join(output.get("traceback", []))))
            text = output.get("text", "") if output.output_type == "stream" else ""
            for line in text.splitlines():
                if any(p.search(line) for p in ERROR_PATTERNS):
                    found.append((index, text))
                    break
            data = output.get("data", {})
            if "image/png" in data or "image/gif" in data or "image/svg+xml" in data or "<svg" in data.get("text/html", ""):
                figures += 1
        if "expect-image" in cell.metadata.get("tags", []) and figures == 0:
            found.append((index, "expected a figure, got none"))
    return found


EXERCISE = re.compile(r"^### Exercise (\d+)", re.M)
SOLUTION = re.compile(r"^// Exercise (\d+)")


def with_solutions(notebook, path):
    """The notebook with its solutions' cells appended, and a problem if any is missing."""
    asked = sorted({int(n) for c in notebook.cells if c.cell_type == "markdown"
                    for n in EXERCISE.findall(c.source)})
    solutions_path = path.parent / "solutions" / path.name
    if not solutions_path.exists():
        return notebook, (f"{len(asked)} exercises and no {solutions_path}" if asked else None)
    solutions = [c for c in nbformat.read(solutions_path, as_version=4).cells if c.cell_type == "code"]
    answered = sorted(int(m.group(1)) for c in solutions if (m := SOLUTION.match(c.source)))
    combined = nbformat.from_dict(notebook)
    combined.cells = notebook.cells + solutions
    if answered != asked:
        return combined, f"exercises {asked} but solutions {answered} in {solutions_path}"
    return combined, None


def cell_seconds(cell):
    """Seconds a code cell took, from the timing nbclient records."""
    from datetime import datetime
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return float("nan")
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))
    return (parse(end) - parse(start)).total_seconds()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    write_back = "--write-back" in sys.argv
    first_cells = "--first-cells" in sys.argv
    kernel = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--kernel=")), KERNEL)
    paths = [Path(a) for a in args] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not paths:
        print(f"FAILED: no notebooks in {ROOT / 'notebooks'}")
        return 1
    out_dir = ROOT / "outputs" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        own_cells = len(notebook.cells)
        missing = None
        if first_cells:
            code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
            notebook.cells = notebook.cells[: code[1] + 1]
        elif kernel == KERNEL:
            notebook, missing = with_solutions(notebook, path)
        started = time.time()
        client = NotebookClient(notebook, kernel_name=kernel, timeout=3600, allow_errors=True, resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
            found = problems(notebook, kernel)
            if missing:
                found.append((-1, missing))
        except Exception as error:  # kernel died, timeout
            found = [(-1, f"{type(error).__name__}: {error}")]
        seconds = time.time() - started
        if first_cells:
            times = [cell_seconds(c) for c in notebook.cells if c.cell_type == "code"]
            print(f"first cells of {path.name}: " + ", ".join(f"{t:.1f} s" for t in times))
        else:
            solved = len(notebook.cells) - own_cells
            if solved:
                solutions = nbformat.from_dict(notebook)
                solutions.cells = notebook.cells[own_cells:]
                nbformat.write(solutions, out_dir / f"solutions-{path.name}")
                print(f"       {path.name}: {solved} solution cells ran after it")
            notebook.cells = notebook.cells[:own_cells]
            nbformat.write(notebook, path if write_back else out_dir / path.name)
        if found:
            failed += 1
            print(f"FAILED {path.name} ({seconds:.0f} s)")
            for index, message in found:
                print(f"  cell {index}: {message[:3000]}")
        else:
            print(f"ok     {path.name} ({seconds:.0f} s)")
    print(f"notebooks: {len(paths) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

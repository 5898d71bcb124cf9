#!/usr/bin/env python3
"""Executes every notebook in notebooks/ with the real evcxr Rust kernel and fails on any error.

nbconvert alone hides rustc's messages and lets a panic pass (it is only a stderr stream), so
this runner executes with allow_errors, then scans every output for errors and panics, checks
that every cell tagged "expect-image" produced a figure (PNG, or SVG inside HTML), and checks the
values each notebook prints against what its code must produce (PRINTED_CHECKS: an accuracy, the
epoch lines, a class distribution summing to 100%). No notebook found is a failure.

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


def printed(cells):
    """Everything these code cells printed, in order."""
    return "".join(output.get("text", "") for cell in cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []) if output.output_type == "stream")


def epochs_problem(text):
    """The epoch lines of a training cell: numbered 1, 2, ... after a new run (or on from a
    resumed one), with finite losses."""
    epochs = [(int(n), float(d), float(g)) for n, d, g in
              re.findall(r"^epoch (\d+): D loss (\S+)  G loss (\S+)", text, re.M)]
    if not epochs:
        return "no epoch line (epoch N: D loss ...  G loss ...)"
    numbers = [n for n, _, _ in epochs]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))) or \
            ("a new run" in text and numbers[0] != 1):
        return f"epochs printed in the order {numbers}"
    if not all(0 < d < 20 and 0 < g < 20 for _, d, g in epochs):
        return f"losses out of any sane range: {epochs}"
    return None


def percentages(row):
    return [float(x) for x in re.findall(r"(\d+\.\d)%", row)]


def check_01(text):
    if "60000 training images, 10000 test images" not in text:
        return "the data cell did not print 60000 training and 10000 test images"
    if not re.search(r"^saved \.\./outputs/\S+/generator\.safetensors", text, re.M):
        return "no 'saved .../generator.safetensors' line"
    if "D: 6 tensors with gradients" not in text:
        return "the autograd cell did not find D's 6 tensors with gradients"
    return epochs_problem(text)


def check_02(text):
    trained = re.search(r"trained on (\d+) images: test accuracy (\d+\.\d+)%", text)
    # Quick mode trains on 2,000 images (about 70%), a full run on 10,000 (about 95%); chance is 10%.
    floor = 80 if trained and int(trained.group(1)) >= 10000 else 50
    if not trained or float(trained.group(2)) < floor:
        return f"the classifier trained in the notebook: {trained and trained.group(0)!r}, expected >= {floor}%"
    shipped = re.search(r"^accuracy (\d+\.\d+)%", text, re.M)
    mistakes = re.search(r"^(\d+) mistakes", text, re.M)
    if not shipped or not mistakes or float(shipped.group(1)) < 99.0:
        return f"the shipped classifier: {shipped and shipped.group(0)!r}, expected >= 99% on the test set"
    if int(mistakes.group(1)) != round(10000 * (1 - float(shipped.group(1)) / 100)):
        return f"{mistakes.group(0)} disagrees with {shipped.group(0)} of 10000"
    return None


def check_03(text):
    share = re.search(r"^share\s+(.*)$", text, re.M)
    shares = percentages(share.group(1)) if share else []
    if len(shares) != 10 or abs(sum(shares) - 100) > 0.6:
        return f"the class distribution's shares {shares} are not 10 shares summing to 100%"
    if "digits covered       10/10" not in text:
        return "the shipped generator did not cover all 10 digits"
    return None


def check_04(text):
    if not re.search(r"^most likely \d \(\d+%\), then \d \(\d+%\), then \d \(\d+%\)", text, re.M):
        return "no 'most likely D (P%), then ...' line for the chosen digit"
    return None


def check_05(text):
    accuracy = re.search(r"label accuracy \(classified as the digit asked for\): (\d+\.\d+)% of (\d+)", text)
    if not accuracy or float(accuracy.group(1)) < 90:
        return f"label accuracy {accuracy and accuracy.group(0)!r}, expected >= 90%"
    digits = re.search(r"^accuracy\s+(.*)$", text, re.M)
    if not digits or len(percentages(digits.group(1))) != 10:
        return "no per-digit accuracy row of 10 digits"
    return epochs_problem(text)


# What each notebook must print, whatever the mode: the values its code must produce.
PRINTED_CHECKS = {"01": check_01, "02": check_02, "03": check_03, "04": check_04, "05": check_05}


def printed_problem(path, cells):
    """What is wrong in what the notebook at `path` printed in `cells` (its own, not the
    solutions'), or None."""
    check = PRINTED_CHECKS.get(path.name[:2])
    if check is None:
        return f"no check of what {path.name} prints: add one to PRINTED_CHECKS"
    return check(printed(cells))


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
            wrong = None if first_cells else printed_problem(path, notebook.cells[:own_cells])
            if wrong:
                found.append((-1, f"printed: {wrong}"))
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

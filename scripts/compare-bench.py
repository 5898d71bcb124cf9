#!/usr/bin/env python3
"""Two builds of the benchmark side by side: each preset's training step, generation and peak
memory, the two binaries run in turn (alternating which goes first), medians.

    python3 scripts/compare-bench.py BEFORE/bench AFTER/bench [--repeat 3] [--train-only] [PRESET ...]

Build the "before" binary from an earlier commit (a `git worktree`, `cargo build --release --bin
bench`) and copy it out first. Run it with nothing else busy: on two cores any other job moves the
numbers."""
import argparse
import json
import statistics
import subprocess

PRESETS = ["fast-mlp", "quick-mlp", "fc-gan-64", "mlp-smoothing", "fc-gan-100", "dcgan-course",
           "dcgan-fast", "dcgan-tf"]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("before")
parser.add_argument("after")
parser.add_argument("presets", nargs="*", default=PRESETS)
parser.add_argument("--repeat", type=int, default=3)
parser.add_argument("--steps", type=int, default=30)
parser.add_argument("--train-only", action="store_true")
args = parser.parse_intermixed_args()


def measure(binary, preset):
    steps = str(10 if preset == "dcgan-tf" else args.steps)
    command = [binary, "--one", preset, "--steps", steps] + (["--train-only"] * args.train_only)
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


keys = ["ms_per_step"] + ([] if args.train_only else ["generate_10k_s", "peak_mib"])
print("| preset | " + " | ".join(f"{k} before | after" for k in keys) + " | step after/before |")
print("|---|" + "---|---|" * len(keys) + "---|")
for preset in args.presets:
    runs = {"before": [], "after": []}
    for r in range(args.repeat):
        pair = [("before", args.before), ("after", args.after)]
        for label, binary in pair if r % 2 == 0 else pair[::-1]:
            runs[label].append(measure(binary, preset))
    median = {label: {k: statistics.median(run[k] for run in rs) for k in keys}
              for label, rs in runs.items()}
    cells = " | ".join(f"{median['before'][k]:.3g} | {median['after'][k]:.3g}" for k in keys)
    ratio = median["after"]["ms_per_step"] / median["before"]["ms_per_step"]
    print(f"| {preset} | {cells} | {ratio:.3f} |", flush=True)

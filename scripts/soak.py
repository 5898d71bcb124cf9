#!/usr/bin/env python3
"""Memory over a long run: trains a preset with the release binary and reads the process's resident
memory (VmRSS) each time it reports an epoch, and its peak (VmHWM) at the end; prints a table and
writes it to outputs/soak/<preset>.csv. docs/reliability.md, "Memory over long runs", holds results.

Usage: python3 scripts/soak.py PRESET EPOCHS [LIMIT]   (LIMIT: train on the first LIMIT digits, for
       shorter epochs; the memory a run holds per epoch does not depend on it)
"""
import csv
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def status_mib(pid, key):
    """VmRSS or VmHWM of `pid` in MiB, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def slope(points):
    """Least-squares MiB per epoch over (epoch, MiB) points."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    preset, epochs = sys.argv[1], sys.argv[2]
    limit = ["--limit", sys.argv[3]] if len(sys.argv) == 4 else []
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    out = ROOT / "outputs" / "soak"
    out.mkdir(parents=True, exist_ok=True)
    command = [str(ROOT / "target" / "release" / "mnist-gan"), "train", "--preset", preset,
               "--epochs", epochs, *limit, "--out", str(out), "--run", preset]
    shutil.rmtree(out / preset, ignore_errors=True)  # the soak's own run of an earlier soak
    started = time.time()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1)
    rows, peak = [], 0.0
    for line in child.stdout:
        if line.startswith("epoch"):
            epoch = int(line.split()[1].split("/")[0])
            rss, peak = status_mib(child.pid, "VmRSS"), status_mib(child.pid, "VmHWM")
            rows.append((epoch, round(time.time() - started, 1), round(rss, 1), round(peak, 1)))
            print(f"epoch {epoch:>4}  {rows[-1][1]:>7.1f} s  RSS {rss:7.1f} MiB  peak {peak:7.1f} MiB", flush=True)
    if child.wait() != 0:
        sys.exit(f"soak: {' '.join(command)} failed with {child.returncode}")
    with open(out / f"{preset}.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "seconds", "rss_mib", "peak_mib"])
        writer.writerows(rows)
    settled = [(e, rss) for e, _, rss, _ in rows if e > max(2, len(rows) // 10)]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    print(f"{preset}, {len(rows)} epochs{' of ' + limit[1] + ' digits' if limit else ''}, "
          f"{os.cpu_count()} CPUs ({cpu}): RSS after epoch 1 {rows[0][2]:.0f} MiB, after the last "
          f"{rows[-1][2]:.0f} MiB, peak {peak:.0f} MiB; growth after epoch {settled[0][0] if settled else '-'}: "
          f"{slope(settled) * 1024 if len(settled) > 1 else 0:.1f} KiB per epoch")


if __name__ == "__main__":
    main()

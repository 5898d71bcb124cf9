#!/usr/bin/env python3
"""Interrupts a training cell on the real evcxr kernel and checks that training goes on.

evcxr 0.22 answers Jupyter's interrupt by killing the process that runs the cells: every
variable is lost, and the kernel restarts that process. A run loses at most its unfinished
epoch: the trainer checkpoints after each one, and `Trainer::open(.., Start::Continue, ..)` in a re-run cell
picks the run up there. This script does what a class would: runs the setup and training
cells, presses "interrupt" after a few epochs, re-runs the cells, and checks that training
continues after the last finished epoch (not from scratch, and not from a broken file).

Usage: notebook_interrupt.py   (needs the kernel of scripts/setup.sh)
"""
import re
import shutil
import sys
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

from run_notebooks import KERNEL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from warm_kernel import run  # noqa: E402  (executes a cell on a kernel)

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / "outputs" / "interrupt-check"

SETUP = ":dep gan_lib = { path = \"../gan_lib\", default-features = false }"
CELLS = """
use gan_lib::candle_core::Device;
use gan_lib::config::TrainConfig;
use gan_lib::data::Mnist;
use gan_lib::train::{Start, Trainer};
let mut config = TrainConfig::preset("fast-mlp").unwrap();
config.limit = Some(3000);
config.epochs = 1000;
let mnist = Mnist::load_vendored().unwrap();
let data = mnist.train.clone().limit(3000);
let (mut trainer, opened) = Trainer::open(&config, "../outputs/interrupt-check", Start::Continue, &Device::Cpu).unwrap();
println!("{opened}; starting after epoch {}", trainer.epoch);
"""
TRAIN = """
while trainer.epoch < config.epochs {
    let report = trainer.train_epoch(&data).unwrap();
    println!("epoch {} done", report.epoch);
}
"""
ONE_MORE = """
let report = trainer.train_epoch(&data).unwrap();
println!("then epoch {} done", report.epoch);
"""


def main():
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    km, kc = start_new_kernel(kernel_name=KERNEL, cwd=str(ROOT / "notebooks"))
    try:
        for code in (SETUP, CELLS):
            out, error = run(kc, code)
            if error or "starting after epoch 0" not in out and code is CELLS:
                print(f"FAILED: setup cell: {error}\n{out}")
                return 1

        interrupted = []

        def interrupt_after_epoch_three(text):
            if not interrupted and "epoch 3 done" in text:
                interrupted.append(time.time())
                km.interrupt_kernel()

        out, error = run(kc, TRAIN, on_output=interrupt_after_epoch_three)
        finished = [int(n) for n in re.findall(r"epoch (\d+) done", out)]
        if not interrupted or not finished or finished[-1] >= 1000:
            print(f"FAILED: the training cell was not interrupted\n{out[-2000:]}")
            return 1
        print(f"interrupted the training cell after epoch {finished[-1]} ({error or 'no error shown'})")

        # The process that held `trainer` is gone; re-running the cells picks the run up.
        out, error = run(kc, CELLS)
        match = re.search(r"starting after epoch (\d+)", out)
        if error or not match:
            print(f"FAILED: re-running the cells after the interrupt: {error}\n{out[-3000:]}")
            return 1
        resumed = int(match.group(1))
        if not 3 <= resumed <= finished[-1] + 1:
            print(f"FAILED: resumed after epoch {resumed}, the cell had finished {finished[-1]}")
            return 1
        out, error = run(kc, ONE_MORE)
        if error or f"then epoch {resumed + 1} done" not in out:
            print(f"FAILED: training after the resume: {error}\n{out[-3000:]}")
            return 1
        print(f"ok     resumed after epoch {resumed} and trained epoch {resumed + 1}")
        return 0
    finally:
        km.shutdown_kernel(now=True)
        shutil.rmtree(RUN_DIR, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

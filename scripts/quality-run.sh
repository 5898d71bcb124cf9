#!/usr/bin/env bash
# One row of the README's quality table: trains a preset for a wall-clock budget, then scores
# its generator with `eval` on 10,000 digits (noise seed 0) against the real-MNIST reference.
#   bash scripts/quality-run.sh RUN MINUTES [train flags...]
#   bash scripts/quality-run.sh dcgan-course-10min 10 --preset dcgan-course --epochs 1000
# Writes outputs/RUN/ (the run), outputs/RUN/eval.json and outputs/RUN/train.log.
set -euo pipefail
cd "$(dirname "$0")/.."
run="$1" minutes="$2"
shift 2
cargo build --release --quiet
bin=target/release/mnist-gan
mkdir -p "outputs/$run"
start=$(date +%s)
"$bin" train --run "$run" --minutes "$minutes" --quiet "$@" > "outputs/$run/train.log" 2>&1
end=$(date +%s)
"$bin" eval "outputs/$run/generator.safetensors" --json > "outputs/$run/eval.json" 2> /dev/null
epochs=$(ls "outputs/$run/images" | sort | tail -1 | tr -dc 0-9 | sed 's/^0*//')
echo "$run: $((end - start)) s of training, last grid after epoch $epochs"
python3 - "outputs/$run/eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps(r)[:2000])
PY

#!/usr/bin/env bash
# The benchmark as an AVX2-only CPU (such as the AMD EPYC Zen 1 this project also runs on) would
# run it, on a CPU with AVX-512: builds a copy of the working tree whose `gemm` lacks its
# AVX-512 kernels (the `x86-v4` feature gan_lib turns on), with `--cfg mnist_gan_avx2_only` so
# the benchmark says so and measures the AVX2 ceiling; PyTorch is held to AVX2 alike
# (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS). Arguments go to `bench`:
#   bash scripts/bench-avx2.sh --steps 20 --repeat 2
# The clock is still this CPU's: an AVX2-only machine of another make runs at its own speed.
set -euo pipefail
cd "$(dirname "$0")/.."
copy=target/avx2-only/src
rm -rf "$copy"
mkdir -p "$copy"
# The checkout's files but MNIST (the benchmark reads it from this checkout, found upwards).
git ls-files -z --cached --others --exclude-standard | grep -zv '^data/mnist/' \
    | xargs -0 cp --parents -t "$copy"
manifest="$copy/gan_lib/Cargo.toml"
grep -q 'features = \["x86-v4"\]' "$manifest" || { echo "gan_lib/Cargo.toml no longer turns on gemm's x86-v4: update $0" >&2; exit 1; }
sed -i 's/gemm = { version = "\([^"]*\)", features = \["x86-v4"\] }/gemm = { version = "\1" }/' "$manifest"
# Nothing else may turn the AVX-512 kernels back on.
if cargo tree --manifest-path "$copy/Cargo.toml" -e features -i gemm-common 2>/dev/null | grep -q x86-v4; then
    echo "another crate turns on gemm's x86-v4: this build would still use AVX-512" >&2
    exit 1
fi
RUSTFLAGS="--cfg mnist_gan_avx2_only" CARGO_TARGET_DIR=target/avx2-only/target \
    cargo build --release --quiet --manifest-path "$copy/Cargo.toml" --bin bench
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
exec target/avx2-only/target/release/bench "$@"

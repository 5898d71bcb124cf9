#!/usr/bin/env bash
# Builds mnist-gan and the bench with `--features cuda` on a machine that may have neither a GPU
# nor a CUDA toolkit, for copying to one that has a GPU and its driver:
#
#   bash scripts/build-cuda.sh          # binaries in target/cuda/release/{mnist-gan,bench}
#
# With a CUDA toolkit and driver installed, `cargo build --release --features cuda` is all you need.
# Without them, this script
#   1. installs CUDA's compiler (nvcc, nvvm, headers) from PyPI into target/cuda-toolkit; candle
#      compiles its kernels to PTX with it at build time;
#   2. links against stub libraries (libcuda.so.1, libcublas.so.13, ...) that only name the
#      functions candle's CUDA layer (cudarc) calls, as the toolkit's own lib64/stubs/libcuda.so
#      does; the real libraries are found when the program starts on the GPU machine.
#
# CUDA_VERSION must not be newer than the GPU machine's driver supports (`nvidia-smi` says which):
# the driver compiles the PTX, and refuses PTX from a newer toolkit. CUDA_COMPUTE_CAP is the GPU's
# compute capability times ten (H100 and H200: 90; A100: 80; RTX 4090: 89).
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA_VERSION="${CUDA_VERSION:-13.0.88}"
CCCL_VERSION="${CCCL_VERSION:-13.0.85}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/cuda}"
toolkit="$PWD/target/cuda-toolkit"
stubs="$PWD/target/cuda-stubs"

if ! "$toolkit/nvidia/cu13/bin/nvcc" --version 2>/dev/null | grep -q "V$CUDA_VERSION"; then
    echo "installing nvcc $CUDA_VERSION from PyPI into $toolkit"
    rm -rf "$toolkit"
    python3 -m pip install --quiet --no-deps --target "$toolkit" \
        "nvidia-cuda-nvcc==$CUDA_VERSION" "nvidia-nvvm==$CUDA_VERSION" \
        "nvidia-cuda-crt==$CUDA_VERSION" "nvidia-cuda-runtime==$CUDA_VERSION" \
        "nvidia-cuda-cccl==$CCCL_VERSION"
fi
export CUDA_ROOT="$toolkit/nvidia/cu13" PATH="$toolkit/nvidia/cu13/bin:$PATH"

# One stub per library cudarc links to: every function its bindings declare, as an empty body.
cudarc=$(cargo metadata --format-version 1 --features cuda |
    python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc").rsplit("/", 1)[0])')
mkdir -p "$stubs/lib64"
for entry in driver:cuda:1 cublas:cublas:13 cublaslt:cublasLt:13 curand:curand:10 nvrtc:nvrtc:13; do
    IFS=: read -r module lib soversion <<<"$entry"
    grep -ohE "fn [a-zA-Z][A-Za-z0-9_]*\(" "$cudarc/src/$module/sys/mod.rs" | sort -u |
        sed -E 's/fn (.*)\(/void \1(void) {}/' >"$stubs/$lib.c"
    cc -shared -fPIC -Wl,-soname,"lib$lib.so.$soversion" -o "$stubs/lib64/lib$lib.so" "$stubs/$lib.c"
done
# candle's fused MoE kernels call the CUDA runtime, which the toolkit's wheel brings.
ln -sf "$toolkit/nvidia/cu13/lib/libcudart.so.13" "$stubs/lib64/libcudart.so"
# cudarc's build script adds $CUDA_HOME/lib64 to the linker's search path.
export CUDA_HOME="$stubs"

cargo build --release --features cuda --bin mnist-gan --bin bench
echo "built $CARGO_TARGET_DIR/release/mnist-gan and bench (compute capability $CUDA_COMPUTE_CAP, CUDA $CUDA_VERSION)"
echo "on the GPU machine, put libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and libcudart.so.13"
echo "(CUDA $CUDA_VERSION's, or PyTorch's nvidia/cu13/lib) on LD_LIBRARY_PATH"

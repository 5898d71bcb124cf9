#!/usr/bin/env bash
# Writes the committed seed corpora in fuzz/seeds/ from files the tool itself produces (run
# from the repository root; needs the release binary's dependencies built).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=fuzz/seeds
rm -rf "$seeds" && mkdir -p "$seeds"/{idx,npy,grid_png,checkpoint,config}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A tiny generator, so that a fuzzed checkpoint builds a tiny model.
cargo run --release -q -- train --dry-run --quiet --preset quick-mlp --out "$tmp" --run tiny \
    --set latent_dim=4 --set 'model.g_hidden=[8]' --set 'model.d_hidden=[8]' >/dev/null
cp "$tmp/tiny/generator.safetensors" "$seeds/checkpoint/generator.safetensors"
# And a tiny conditional one (labels in G's input), whose checkpoint also holds D and Adam's state.
cargo run --release -q -- train --dry-run --quiet --preset cgan-mlp --out "$tmp" --run tiny-cgan \
    --set latent_dim=4 --set 'model.g_hidden=[8]' --set 'model.d_hidden=[8]' >/dev/null
cp "$tmp/tiny-cgan/generator.safetensors" "$seeds/checkpoint/conditional-generator.safetensors"
cp "$tmp/tiny-cgan/checkpoint.safetensors" "$seeds/checkpoint/conditional-checkpoint.safetensors"

# Four digits: an IDX file, raw and gzip, and their grid picture.
cargo run --release -q -- sample --n 4 --nrow 2 --out "$tmp/sample" >/dev/null
cp "$tmp/sample/samples-images-idx3-ubyte" "$seeds/idx/images-idx3-ubyte"
gzip -c "$tmp/sample/samples-images-idx3-ubyte" >"$seeds/idx/images-idx3-ubyte.gz"
printf '\x00\x00\x08\x01\x00\x00\x00\x04\x07\x02\x01\x00' >"$seeds/idx/labels-idx1-ubyte"
gzip -c "$seeds/idx/labels-idx1-ubyte" >"$seeds/idx/labels-idx1-ubyte.gz"
# Grid seeds: two option bytes (0 = detect the cell and padding), then the PNG.
{ printf '\x00\x00'; cat "$tmp/sample/samples.png"; } >"$seeds/grid_png/detect.bin"
{ printf '\x38\x04'; cat "$tmp/sample/samples.png"; } >"$seeds/grid_png/cell56-pad4.bin"

# .npy: one digit as uint8 (1, 28, 28) and as float32 (1, 784), written by hand like numpy.
python3 - "$seeds/npy" "$tmp/sample/samples-images-idx3-ubyte" <<'PY'
import struct, sys
out, idx = sys.argv[1], open(sys.argv[2], "rb").read()
digit = idx[16:16 + 784]
def npy(descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data
open(f"{out}/u8.npy", "wb").write(npy("|u1", "(1, 28, 28)", digit))
floats = b"".join(struct.pack("<f", b / 127.5 - 1) for b in digit)
open(f"{out}/f32.npy", "wb").write(npy("<f4", "(1, 784)", floats))
PY

cp configs/*.toml "$seeds/config/"
du -sh "$seeds"/*

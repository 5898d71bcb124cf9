#!/usr/bin/env python3
"""PyTorch reference for `cargo run --release --bin bench`: the same architectures, built
from the same preset files (configs/*.toml), trained with the same steps (D step on real and
detached fake, then G step, BCE with logits, Adam), on the same vendored MNIST.

Prints one JSON line per run, which the bench binary reads and sets beside its own figures.

    python3 bench/torch_reference.py --preset quick-mlp --steps 30 --threads 1
    python3 bench/torch_reference.py --classifier --steps 30 --threads 1
    python3 bench/torch_reference.py --preset dcgan-tf --steps 30 --device cuda
"""

import argparse
import gzip
import json
import pathlib
import resource
import struct
import time
import tomllib
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_images(limit):
    """The first `limit` training images as a float tensor (n, 1, 28, 28) in [0, 1]."""
    with gzip.open(ROOT / "data/mnist/train-images-idx3-ubyte.gz", "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051 and rows == cols == 28
        n = min(limit, count)
        pixels = bytearray(f.read(n * 28 * 28))
    return torch.frombuffer(pixels, dtype=torch.uint8).float().div(255).view(n, 1, 28, 28)


def activation(spec):
    if spec == "relu":
        return nn.ReLU()
    return nn.LeakyReLU(spec["leaky-relu"])


def mlp_gan(m, latent):
    g, inputs = [], latent
    for width in m["g_hidden"]:
        g.append(nn.Linear(inputs, width))
        if m.get("g_batch_norm", False):
            g.append(nn.BatchNorm1d(width))
        g.append(activation(m["g_activation"]))
        inputs = width
    g += [nn.Linear(inputs, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28))]
    d, inputs = [nn.Flatten()], 784
    for width in m["d_hidden"]:
        d.append(nn.Linear(inputs, width))
        if m.get("d_batch_norm", False):
            d.append(nn.BatchNorm1d(width))
        d.append(activation(m["d_activation"]))
        if m.get("d_dropout", 0.0) > 0:
            d.append(nn.Dropout(m["d_dropout"]))
        inputs = width
    d.append(nn.Linear(inputs, 1))
    return nn.Sequential(*g), nn.Sequential(*d)


def dcgan(m, latent):
    bias = m.get("g_bias", True)
    start = m["g_start"]
    if start == "latent1x1":
        g, channels = [nn.Unflatten(1, (latent, 1, 1))], latent
    else:
        c, s = start["dense"]["channels"], start["dense"]["side"]
        g = [nn.Linear(latent, c * s * s, bias=bias), nn.BatchNorm1d(c * s * s),
             activation(m["g_activation"]), nn.Unflatten(1, (c, s, s))]
        channels = c
    for i, l in enumerate(m["g_layers"]):
        g.append(nn.ConvTranspose2d(channels, l["channels"], l["kernel"], l["stride"],
                                    l.get("padding", 0), l.get("output_padding", 0), bias=bias))
        if l.get("batch_norm", False):
            g.append(nn.BatchNorm2d(l["channels"]))
        g.append(nn.Tanh() if i == len(m["g_layers"]) - 1 else activation(m["g_activation"]))
        channels = l["channels"]
    d, channels, side = [], 1, 28
    head = m.get("d_linear_head", False)
    for i, l in enumerate(m["d_layers"]):
        d.append(nn.Conv2d(channels, l["channels"], l["kernel"], l["stride"], l.get("padding", 0)))
        if l.get("batch_norm", False):
            d.append(nn.BatchNorm2d(l["channels"]))
        if head or i != len(m["d_layers"]) - 1:
            d.append(activation(m["d_activation"]))
            if m.get("d_dropout", 0.0) > 0:
                d.append(nn.Dropout(m["d_dropout"]))
        channels = l["channels"]
        side = (side + 2 * l.get("padding", 0) - l["kernel"]) // l["stride"] + 1
    d.append(nn.Flatten())
    if head:
        d.append(nn.Linear(channels * side * side, 1))
    return nn.Sequential(*g), nn.Sequential(*d)


def classifier():
    """The LeNet-like digit classifier of gan_lib::classifier."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, 10))


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize(device):
    """Waits for the GPU's queued work, so that wall-clock times count it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_preset(name, steps, device):
    cfg = tomllib.loads((ROOT / "configs" / f"{name}.toml").read_text())
    latent, batch = cfg["latent_dim"], cfg["batch_size"]
    m = cfg["model"]
    g, d = (mlp_gan if m["kind"] == "mlp" else dcgan)(m, latent)
    g, d = g.to(device), d.to(device)
    betas = tuple(cfg.get("betas", (0.5, 0.999)))
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg["lr_g"], betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg["lr_d"], betas=betas)
    real_label, fake_label = cfg.get("real_label", 1.0), cfg.get("fake_label", 0.0)
    sigma, d_steps = cfg.get("instance_noise", 0.0), cfg.get("d_steps", 1)
    images = load_images((steps + 3) * batch).mul(2).sub(1).to(device)

    def discriminate(x):
        return d(x + sigma * torch.randn_like(x) if sigma > 0 else x)

    def bce(logits, label):
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))

    def step(real):
        for _ in range(d_steps):
            fake = g(torch.randn(batch, latent, device=device)).detach()
            loss_d = bce(discriminate(real), real_label) + bce(discriminate(fake), fake_label)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = bce(discriminate(g(torch.randn(batch, latent, device=device))), 1.0)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return loss_g.item()

    g.train()
    d.train()
    for i in range(3):
        step(images[i * batch:(i + 1) * batch])
    started = time.perf_counter()
    for i in range(3, steps + 3):
        step(images[i * batch:(i + 1) * batch])
    synchronize(device)
    seconds_per_step = (time.perf_counter() - started) / steps

    g.eval()
    z = torch.randn(10_000, latent, device=device)
    with torch.no_grad():
        g(z[:100])
        times = []
        for _ in range(3):
            started = time.perf_counter()
            torch.cat([g(chunk) for chunk in z.split(500)]).sum().item()
            times.append(time.perf_counter() - started)
    return {"preset": name, "ms_per_step": 1000 * seconds_per_step,
            "generate_10k_s": sorted(times)[1], "peak_mib": peak_mib()}


def bench_classifier(steps, device):
    model = classifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = load_images(64).to(device)
    y = torch.randint(0, 10, (64,)).to(device)
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    train_rate = 64 * steps / (time.perf_counter() - started)
    model.eval()
    test = load_images(10_000)
    with torch.no_grad():
        started = time.perf_counter()
        for chunk in test.split(500):
            model(chunk.to(device))
        synchronize(device)
        inference_rate = 10_000 / (time.perf_counter() - started)
    return {"classifier": True, "train_images_per_s": train_rate,
            "inference_images_per_s": inference_rate, "peak_mib": peak_mib()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset")
    parser.add_argument("--classifier", action="store_true")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.classifier:
        result = bench_classifier(args.steps, device)
    else:
        result = bench_preset(args.preset, args.steps, device)
    result.update(torch=torch.__version__, threads=torch.get_num_threads())
    print(json.dumps(result))


if __name__ == "__main__":
    main()

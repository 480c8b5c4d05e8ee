#!/usr/bin/env python3
"""Evaluate a network on verification benchmarks every N training steps, as insightface's
CallBackVerification does, with aifr-eval's exact numbers.

    python python/examples/training_callback.py                     # a small pack of real faces
    python python/examples/training_callback.py --data-dir data --benchmarks lfw_bin agedb30 cfp_fp

Without --data-dir it evaluates a small insightface pack it writes itself from the 20 LFW faces
in tests/data/small_lfw.bin (their 10 genuine pairs plus 10 impostor pairs), so it runs from a
clone with no data downloaded.

With PyTorch installed the network is a small torch CNN; without it, a NumPy stand-in (a fixed
random projection of the pixels), so the example runs anywhere NumPy does.
"""

import argparse
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

import aifr_eval


def numpy_network(dim=128, seed=0):
    """A stand-in 'network': pixels → a fixed random projection (deterministic)."""
    rng = np.random.default_rng(seed)
    w = None

    def embed(images):  # images: N × H × W × 3 uint8
        nonlocal w
        x = images.reshape(len(images), -1).astype(np.float32) / 127.5 - 1.0
        if w is None:
            w = rng.standard_normal((x.shape[1], dim)).astype(np.float32) / np.sqrt(x.shape[1])
        return x @ w

    return embed, lambda: None


def torch_network(dim=128):
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(32 * 16, dim),
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    @torch.no_grad()
    def embed(images):
        net.eval()
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        return net(x)  # a CPU tensor: evaluate() reads it through __array__

    def train_step():
        net.train()
        x = torch.randn(8, 3, 112, 112)
        loss = net(x).pow(2).mean()  # placeholder objective: the example is about the callback
        opt.zero_grad()
        loss.backward()
        opt.step()

    return embed, train_step


def small_pack(dir):
    """faces_emore/lfw.bin under `dir`: the faces of tests/data/small_lfw.bin in 20 pairs."""
    src = Path(__file__).resolve().parents[2] / "tests" / "data" / "small_lfw.bin"
    with open(src, "rb") as f:
        bins, _ = pickle.load(f, encoding="bytes")
    # First faces of pairs showing different people (tests/data/PROVENANCE.md).
    impostors = [(1, 4), (1, 10), (4, 10), (2, 5), (3, 7), (6, 8), (1, 2), (4, 5), (10, 7), (9, 1)]
    faces, same = [], []
    for i, (p, q) in enumerate(impostors):
        faces += [bins[2 * i], bins[2 * i + 1], bins[2 * (p - 1)], bins[2 * (q - 1)]]
        same += [True, False]
    (Path(dir) / "faces_emore").mkdir(parents=True, exist_ok=True)
    with open(Path(dir) / "faces_emore" / "lfw.bin", "wb") as f:
        pickle.dump(([bytes(b) for b in faces], same), f, protocol=4)
    return dir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", help="benchmarks under their datasets.toml roots [default: a small pack]")
    ap.add_argument("--benchmarks", nargs="+", default=["lfw_bin"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--every", type=int, default=1, help="evaluate every N steps")
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()

    try:
        embed, train_step = torch_network()
        kind = "torch"
    except ImportError:
        embed, train_step = numpy_network()
        kind = "numpy stand-in"
    scratch = None
    if args.data_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="aifr-example-")
        args.data_dir = small_pack(scratch.name)
    # Opened once: the image lists are read once, the images decoded at every evaluation.
    benches = [aifr_eval.open(b, data_dir=args.data_dir) for b in args.benchmarks]
    print(f"network: {kind}; benchmarks: {', '.join(f'{b.name} ({len(b)} images)' for b in benches)}")
    for step in range(1, args.steps + 1):
        train_step()
        if step % args.every == 0:
            t = time.perf_counter()
            logs = aifr_eval.evaluate_callback(benches, embed, batch_size=args.batch_size)
            shown = ", ".join(f"{k} {v:.4f}" for k, v in logs.items())
            print(f"step {step}: {shown} ({time.perf_counter() - t:.2f} s)")


if __name__ == "__main__":
    main()

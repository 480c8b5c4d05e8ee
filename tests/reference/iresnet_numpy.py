"""Independent NumPy forward pass of insightface arcface_torch's IResNet (eval mode).

Written from the architecture description (backbones/iresnet.py layout), unfolded: every
BatchNorm is applied as (x - mean) / sqrt(var + eps) * gamma + beta in float64, convolutions are
sliding-window tensordots, nothing is fused.  Weights come from a deterministic integer hash of
(key name, element index) that the Rust test reproduces bit-exactly (see ``weight``), so the
fixture only stores the outputs.

Writes tests/fixtures/model/iresnet18_numpy.json:
    python3 tests/reference/iresnet_numpy.py [--arch iresnet18] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

LAYERS = {
    "iresnet18": [2, 2, 2, 2],
    "iresnet34": [3, 4, 6, 3],
    "iresnet50": [3, 4, 14, 3],
    "iresnet100": [3, 13, 30, 3],
}
WIDTHS = [64, 128, 256, 512]
EPS = 1e-5
M32 = np.uint64(0xFFFFFFFF)


def fnv1a32(s: str) -> int:
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def hash_u01(seed: int, n: int) -> np.ndarray:
    """u in [0,1): a 32-bit integer mix of (seed, index), exact in uint64 arithmetic."""
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(seed)) & M32
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(2246822519)) & M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(3266489917)) & M32
    h ^= h >> np.uint64(16)
    return h.astype(np.float64) / 4294967296.0


def weight(name: str, shape: list[int]) -> np.ndarray:
    """Deterministic f32 value of every parameter, by the key's last component; returned as f64."""
    n = int(np.prod(shape)) if shape else 1
    u = hash_u01(fnv1a32(name), n)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "weight" and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        v = (2.0 * u - 1.0) * math.sqrt(3.0 / fan_in)
    elif leaf == "weight" and ".prelu" in "." + name:
        v = 0.1 + 0.2 * u
    elif leaf == "weight":
        v = 0.8 + 0.4 * u
    elif leaf == "bias":
        v = 0.2 * (2.0 * u - 1.0)
    elif leaf == "running_mean":
        v = 0.2 * (2.0 * u - 1.0)
    elif leaf == "running_var":
        v = 0.5 + u
    else:
        raise ValueError(name)
    return v.astype(np.float32).astype(np.float64).reshape(shape)


def layout(arch: str, dim: int = 512) -> dict[str, list[int]]:
    """Every state-dict key (with shape), as arcface_torch's IResNet names them."""
    m: dict[str, list[int]] = {}

    def bn(p, c):
        for k in ("weight", "bias", "running_mean", "running_var"):
            m[f"{p}.{k}"] = [c]
        m[f"{p}.num_batches_tracked"] = []

    m["conv1.weight"] = [64, 3, 3, 3]
    bn("bn1", 64)
    m["prelu.weight"] = [64]
    inplanes = 64
    for i, (n, planes) in enumerate(zip(LAYERS[arch], WIDTHS)):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            bn(f"{p}.bn1", inplanes)
            m[f"{p}.conv1.weight"] = [planes, inplanes, 3, 3]
            bn(f"{p}.bn2", planes)
            m[f"{p}.prelu.weight"] = [planes]
            m[f"{p}.conv2.weight"] = [planes, planes, 3, 3]
            bn(f"{p}.bn3", planes)
            if j == 0:
                m[f"{p}.downsample.0.weight"] = [planes, inplanes, 1, 1]
                bn(f"{p}.downsample.1", planes)
            inplanes = planes
    bn("bn2", 512)
    m["fc.weight"] = [dim, 512 * 49]
    m["fc.bias"] = [dim]
    bn("features", dim)
    return m


def conv(x, w, stride, pad):
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def bn(x, W, p):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    g, b = W[f"{p}.weight"].reshape(shape), W[f"{p}.bias"].reshape(shape)
    m, v = W[f"{p}.running_mean"].reshape(shape), W[f"{p}.running_var"].reshape(shape)
    return (x - m) / np.sqrt(v + EPS) * g + b


def prelu(x, a):
    a = a.reshape(1, -1, 1, 1)
    return np.where(x > 0, x, a * x)


def forward(arch: str, W: dict, x: np.ndarray) -> np.ndarray:
    x = prelu(bn(conv(x, W["conv1.weight"], 1, 1), W, "bn1"), W["prelu.weight"])
    for i, n in enumerate(LAYERS[arch]):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            s = 2 if j == 0 else 1
            out = bn(x, W, f"{p}.bn1")
            out = conv(out, W[f"{p}.conv1.weight"], 1, 1)
            out = prelu(bn(out, W, f"{p}.bn2"), W[f"{p}.prelu.weight"])
            out = bn(conv(out, W[f"{p}.conv2.weight"], s, 1), W, f"{p}.bn3")
            if j == 0:
                identity = bn(conv(x, W[f"{p}.downsample.0.weight"], s, 0), W, f"{p}.downsample.1")
            else:
                identity = x
            x = out + identity
    x = bn(x, W, "bn2").reshape(x.shape[0], -1)
    x = x @ W["fc.weight"].T + W["fc.bias"]
    return bn(x, W, "features")


def formula_input(n: int, size: int = 112) -> np.ndarray:
    """x[n,h,w,c] = (n*131 + h*31 + w*17 + c*7) % 256 (RGB), then (x/255-0.5)/0.5 in f32; NCHW."""
    nn_, h, w, c = np.meshgrid(np.arange(n), np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    raw = ((nn_ * 131 + h * 31 + w * 17 + c * 7) % 256).astype(np.float32)
    x = (raw / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)
    return x.transpose(0, 3, 1, 2).astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="iresnet18")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    lay = layout(a.arch)
    W = {k: weight(k, s) for k, s in lay.items() if not k.endswith("num_batches_tracked")}
    y = forward(a.arch, W, formula_input(a.batch))
    out = Path(a.out or Path(__file__).resolve().parents[1] / "fixtures" / "model" / f"{a.arch}_numpy.json")
    doc = {
        "model": f"arcface_torch {a.arch}, 512-D, eval mode, unfolded float64 NumPy forward",
        "weights": "tests/reference/iresnet_numpy.py weight(): fnv1a32(key) seeds a 32-bit hash of the element index",
        "input": {
            "layout": "NHWC RGB, then (x/255-0.5)/0.5 in float32",
            "shape": [a.batch, 112, 112, 3],
            "formula": "x[n,h,w,c] = (n*131 + h*31 + w*17 + c*7) % 256",
        },
        "numpy": np.__version__,
        "outputs": {"embedding": {"shape": list(y.shape), "data": [float(v) for v in y.ravel()]}},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc) + "\n")
    print(f"wrote {out}: |y| max {np.abs(y).max():.4f}, mean {np.abs(y).mean():.4f}")


if __name__ == "__main__":
    main()

"""PyTorch definitions of insightface arcface_torch's IResNet and MobileFaceNet backbones.

Written for aifr-eval from the published layer layout (module names, so state-dict keys, match
arcface_torch's backbones/iresnet.py and backbones/mobilefacenet.py).  Used for:

* ``keys``: write tests/fixtures/model/arcface_torch_keys.json (state-dict key -> shape for
  iresnet18/34/50/100 and mobilefacenet), checked first against the real arcface_torch state dict
  tests/data/models/mbf_seed0.pth when present (strict load + its recorded outputs);
* ``bench``: PyTorch images/s on the same machine and device (CPU or CUDA), for benches/networks.rs.

    python3 tests/reference/arcface_torch_nets.py keys
    python3 tests/reference/arcface_torch_nets.py bench --arch mobilefacenet --batch 32 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

IRESNET_LAYERS = {
    "iresnet18": [2, 2, 2, 2],
    "iresnet34": [3, 4, 6, 3],
    "iresnet50": [3, 4, 14, 3],
    "iresnet100": [3, 13, 30, 3],
}


class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    def __init__(self, layers, num_features=512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        for i, (n, planes) in enumerate(zip(layers, [64, 128, 256, 512])):
            blocks = []
            for j in range(n):
                down = None
                if j == 0:
                    down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
                blocks.append(IBasicBlock(inplanes, planes, 2 if j == 0 else 1, down))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(512 * 49, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, k=1, s=1, p=0, groups=1, act=True):
        super().__init__()
        mods = [nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act:
            mods.append(nn.PReLU(cout))
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        return self.layers(x)


class DepthWise(nn.Module):
    def __init__(self, cin, cout, residual, stride, groups):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(cin, groups),
            ConvBlock(groups, groups, 3, stride, 1, groups=groups),
            ConvBlock(groups, cout, act=False),
        )

    def forward(self, x):
        y = self.layers(x)
        return x + y if self.residual else y


class Residual(nn.Module):
    def __init__(self, c, n, groups):
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(c, c, True, 1, groups) for _ in range(n)])

    def forward(self, x):
        return self.layers(x)


class GDC(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.layers = nn.Sequential(
            ConvBlock(512, 512, 7, 1, 0, groups=512, act=False),
            nn.Flatten(),
            nn.Linear(512, dim, bias=False),
            nn.BatchNorm1d(dim),
        )

    def forward(self, x):
        return self.layers(x)


class MobileFaceNet(nn.Module):
    def __init__(self, blocks=(1, 4, 6, 2), scale=2, dim=512):
        super().__init__()
        c1, c2 = 64 * scale, 128 * scale
        self.layers = nn.ModuleList([ConvBlock(3, c1, 3, 2, 1)])
        if blocks[0] == 1:
            self.layers.append(ConvBlock(c1, c1, 3, 1, 1, groups=64))
        else:
            self.layers.append(Residual(c1, blocks[0], 128))
        self.layers.extend(
            [
                DepthWise(c1, c1, False, 2, 128),
                Residual(c1, blocks[1], 128),
                DepthWise(c1, c2, False, 2, 256),
                Residual(c2, blocks[2], 256),
                DepthWise(c2, c2, False, 2, 512),
                Residual(c2, blocks[3], 256),
            ]
        )
        self.conv_sep = ConvBlock(c2, 512)
        self.features = GDC(dim)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))


def build(arch: str) -> nn.Module:
    if arch in IRESNET_LAYERS:
        return IResNet(IRESNET_LAYERS[arch])
    if arch == "mobilefacenet":
        return MobileFaceNet()
    raise SystemExit(f"unknown arch {arch}")


def check_real_mbf(root: Path) -> None:
    """Our definition loads the real arcface_torch state dict strictly and reproduces its outputs."""
    pth = root / "tests" / "data" / "models" / "mbf_seed0.pth"
    ref = json.loads(pth.with_name("mbf_seed0_outputs.json").read_text())
    net = MobileFaceNet().eval()
    net.load_state_dict(torch.load(pth, map_location="cpu"), strict=True)
    n = ref["input"]["shape"][0]
    idx = torch.meshgrid(*[torch.arange(s) for s in (n, 112, 112, 3)], indexing="ij")
    raw = ((idx[0] * 131 + idx[1] * 31 + idx[2] * 17 + idx[3] * 7) % 256).float()
    x = ((raw / 255 - 0.5) / 0.5).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        y = net(x)
    want = torch.tensor(ref["outputs"]["embedding"]["data"]).reshape(y.shape)
    err = (y - want).abs().max().item()
    assert err < 1e-5, err
    print(f"mbf_seed0.pth: strict load ok, max |diff| {err:.2e}", file=sys.stderr)


def keys(out: Path) -> None:
    check_real_mbf(Path(__file__).resolve().parents[2])
    doc = {"torch": torch.__version__}
    for arch in [*IRESNET_LAYERS, "mobilefacenet"]:
        sd = build(arch).state_dict()
        doc[arch] = {k: list(v.shape) for k, v in sd.items()}
    out.write_text(json.dumps(doc, indent=0) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def bench(arch: str, batch: int, seconds: float, threads: int | None, device: str, dtype: str) -> None:
    if threads:
        torch.set_num_threads(threads)
    dt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    net = build(arch).eval().to(device=device, dtype=dt)
    x = torch.randn(batch, 3, 112, 112, device=device, dtype=dt)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        net(x)  # warm-up
        sync()
        done, t0 = 0, time.perf_counter()
        while True:
            # Embeddings come back to the host, as they do in aifr-eval.
            net(x).float().cpu()
            done += batch
            el = time.perf_counter() - t0
            if el >= seconds:
                break
    print(
        json.dumps(
            {
                "impl": "pytorch",
                "arch": arch,
                "batch": batch,
                "device": device,
                "dtype": dtype,
                "images_per_s": done / el,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    )


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys")
    k.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "fixtures/model/arcface_torch_keys.json"))
    b = sub.add_parser("bench")
    b.add_argument("--arch", required=True)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    b.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    a = ap.parse_args()
    if a.cmd == "keys":
        keys(Path(a.out))
    else:
        bench(a.arch, a.batch, a.seconds, a.threads, a.device, a.dtype)


if __name__ == "__main__":
    main()

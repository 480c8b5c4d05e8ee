"""Independent NumPy forward pass of dlib's face-recognition ResNet, for cross-checking the Rust
reader/network (src/model/dlib_serialize.rs, dlib_resnet.rs) when changing them.

    python3 tests/reference/dlib_resnet_ref.py [MODEL.dat] [tests/data/models/dlib_pattern.json]

Parses the .dat with its own decoder (dlib compact ints, mantissa/exponent floats, v2 tensors),
runs the anet_type graph in float64 (im2col convolutions, dlib padding rules, zero-padded
add_prev) on the pattern input and prints the max |diff| to the real dlib's descriptors
(measured: 1.9e-7). Needs numpy only; no fixture is written (the reference is dlib itself).
"""
import json
import sys

import numpy as np

MODEL = sys.argv[1] if len(sys.argv) > 1 else ".models/dlib_face_recognition_resnet_model_v1.dat"
PATTERN = sys.argv[2] if len(sys.argv) > 2 else "tests/data/models/dlib_pattern.json"
d = open(MODEL, "rb").read()
pos = 0


def integer():
    global pos
    ctl = d[pos]
    n = ctl & 0x0F
    v = int.from_bytes(d[pos + 1 : pos + 1 + n], "little")
    pos += 1 + n
    return -v if ctl & 0x80 else v


def string():
    global pos
    n = integer()
    s = d[pos : pos + n].decode()
    pos += n
    return s


def real():
    m = integer()
    return m * 2.0 ** integer()


def tensor():
    global pos
    assert integer() == 2
    shape = [integer() for _ in range(4)]
    n = int(np.prod(shape))
    a = np.frombuffer(d[pos : pos + 4 * n], dtype="<f4").astype(np.float64)
    pos += 4 * n
    return a


def alias():
    assert integer() == 1
    return [integer() for _ in range(4)]


integer(), string(), real(), real()  # loss_metric_2 and its margin/threshold
while integer() != 3:  # layer wrapper versions down to the input's layer
    pass
assert string() == "input_rgb_image_sized"
avg = np.array([real(), real(), real()])
integer(), integer()
layers = []
while pos < len(d):
    name = string()
    if name == "con_4":
        a = tensor()
        _, _, _, stride, _, pad, _ = [integer() for _ in range(7)]
        f = alias()
        alias()
        [real() for _ in range(4)]
        nf = int(np.prod(f))
        layers.append(("con", a[:nf].reshape(f), a[nf:], stride, pad))
    elif name == "affine_":
        a = tensor()
        alias(), alias(), integer()
        c = len(a) // 2
        layers.append(("affine", a[:c], a[c:]))
    elif name in ("relu_", "add_prev_"):
        layers.append((name,))
    elif name in ("max_pool_2", "avg_pool_2"):
        layers.append((name, [integer() for _ in range(6)]))
    elif name == "fc_2":
        n_out, n_in = integer(), integer()
        a = tensor()
        alias(), alias(), integer()
        [real() for _ in range(4)]
        layers.append(("fc", a.reshape(n_in, n_out)))
    else:
        raise SystemExit(f"unknown layer {name!r}")
    pos += 3  # three '0'/'1' bools
    for _ in range(3):
        tensor()
    if len(layers) == 1:
        integer()  # sample expansion factor


def conv(x, w, b, s, p):
    n, c, h, wd = x.shape
    k = w.shape[2]
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = 1 + (h + 2 * p - k) // s, 1 + (wd + 2 * p - k) // s
    cols = np.empty((n, c, k, k, ho, wo))
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = x[:, :, i : i + s * ho : s, j : j + s * wo : s]
    return np.einsum("nckluv,fckl->nfuv", cols, w) + b[None, :, None, None]


def pool(x, k, s, is_max):
    ho, wo = 1 + (x.shape[2] - k) // s, 1 + (x.shape[3] - k) // s
    st = np.stack([x[:, :, i : i + s * ho : s, j : j + s * wo : s] for i in range(k) for j in range(k)])
    return st.max(0) if is_max else st.mean(0)


def add_zero_padded(a, b):
    out = np.zeros([max(x, y) for x, y in zip(a.shape, b.shape)])
    out[tuple(slice(0, s) for s in a.shape)] += a
    out[tuple(slice(0, s) for s in b.shape)] += b
    return out


def con_affine(x, i):
    _, w, b, s, p = layers[i]
    _, g, be = layers[i + 1]
    return conv(x, w, b, s, p) * g[None, :, None, None] + be[None, :, None, None]


n = np.arange(2)[:, None, None, None]
h = np.arange(150)[None, :, None, None]
w = np.arange(150)[None, None, :, None]
c = np.arange(3)[None, None, None, :]
img = ((n * 131 + h * 31 + w * 17 + c * 7) % 256).astype(np.float64)
x = ((img - avg) / 256).transpose(0, 3, 1, 2)
x = pool(np.maximum(con_affine(x, 0), 0), 3, 2, True)
i = 4
while i + 2 < len(layers):
    y = con_affine(np.maximum(con_affine(x, i), 0), i + 3)
    down = layers[i + 5][0] == "avg_pool_2"
    x = np.maximum(add_zero_padded(y, pool(x, 2, 2, False) if down else x), 0)
    i += 8 if down else 7
out = x.mean((2, 3)) @ layers[-1][1]
ref = np.array(json.load(open(PATTERN))["outputs"]["descriptor"]["data"]).reshape(2, 128)
print(json.dumps({"max_abs_diff": float(np.abs(out - ref).max()), "layers": len(layers)}))

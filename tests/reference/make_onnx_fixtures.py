"""ONNX fixtures for aifr-eval's ONNX loader (src/model/onnx.rs, tests/onnx_model.rs).

Exports one small arcface_torch MobileFaceNet (blocks (1,1,1,1), scale 1, 64-D; the PyTorch module of
arcface_torch_nets.py) twice, the two ways insightface ONNX models exist in the wild:

* ``mbf_tiny_dynamic.onnx``: a plain ``torch.onnx.export`` (like ``w600k_r50.onnx``/``w600k_mbf.onnx``):
  dynamic batch, input normalised outside the graph, so insightface uses mean = std = 127.5;
* ``mbf_tiny_mxnet_style.onnx``: the same network behind an in-graph ``(x - 127.5) * (1/127.5)``, fixed
  batch of 1, initializers listed as graph inputs, Sub/Mul nodes named as MXNet's exporter names them
  (``_minusscalar0``, ``_mulscalar0``): insightface feeds raw pixels (mean 0, std 1).

The weights are the deterministic hash weights of iresnet_numpy.py ``weight()`` (bit-identical to
``aifr_eval::model::weights::synthetic``), so the Rust test can also build the same network natively.
Expected outputs on the formula image are computed by onnxruntime and by PyTorch (cross-checked here);
the preprocessing each file should get is computed with insightface's rule (arcface_onnx.py: a node
whose *name* starts with Sub/_minus and one starting with Mul/_mul among the first 8 nodes).

    pip install torch onnx onnxruntime onnxscript numpy
    python3 tests/reference/make_onnx_fixtures.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from arcface_torch_nets import MobileFaceNet  # noqa: E402
from iresnet_numpy import weight  # noqa: E402

OUT = HERE.parent / "fixtures" / "model"
BLOCKS, SCALE, DIM = (1, 1, 1, 1), 1, 64
BATCH = 3


def tiny_mbf() -> nn.Module:
    net = MobileFaceNet(BLOCKS, SCALE, DIM).eval()
    sd = {}
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = v
        else:
            sd[k] = torch.from_numpy(weight(k, list(v.shape)).astype(np.float32))
    net.load_state_dict(sd, strict=True)
    return net


class InGraphNorm(nn.Module):
    """MXNet-style: raw 0..255 pixels in, normalisation as the first graph nodes."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x - 127.5) * (1.0 / 127.5))


def raw_formula(n: int) -> np.ndarray:
    """x[n,h,w,c] = (n*131 + h*31 + w*17 + c*7) % 256, RGB; NCHW float32 (0..255)."""
    i, h, w, c = np.meshgrid(np.arange(n), np.arange(112), np.arange(112), np.arange(3), indexing="ij")
    raw = ((i * 131 + h * 31 + w * 17 + c * 7) % 256).astype(np.float32)
    return np.ascontiguousarray(raw.transpose(0, 3, 1, 2))


def insightface_preprocessing(model: onnx.ModelProto) -> tuple[float, float]:
    """insightface/model_zoo/arcface_onnx.py's rule, by node names."""
    names = [n.name for n in model.graph.node[:8]]
    sub = any(s.startswith("Sub") or s.startswith("_minus") for s in names)
    mul = any(s.startswith("Mul") or s.startswith("_mul") for s in names)
    return (0.0, 1.0) if sub and mul else (127.5, 127.5)


def export(module: nn.Module, path: Path, dynamic: bool, input_name: str, output_name: str, keep_inits: bool):
    x = torch.zeros(1, 3, 112, 112)
    torch.onnx.export(
        module,
        (x,),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes={input_name: {0: "None"}, output_name: {0: "None"}} if dynamic else None,
        opset_version=11,
        keep_initializers_as_inputs=keep_inits,
        dynamo=False,
    )


def mxnet_names(path: Path) -> None:
    """Renames the leading Sub/Mul nodes the way MXNet's ONNX exporter names them."""
    m = onnx.load(str(path))
    seen = {"Sub": 0, "Mul": 0}
    for node in m.graph.node[:8]:
        if node.op_type in seen:
            node.name = ("_minusscalar" if node.op_type == "Sub" else "_mulscalar") + str(seen[node.op_type])
            seen[node.op_type] += 1
    assert seen == {"Sub": 1, "Mul": 1}, seen
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def run_ort(path: Path, x: np.ndarray, fixed_batch: bool) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # the initializers-as-inputs warnings are expected here
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    outs = sess.get_outputs()
    assert len(outs) == 1, [o.name for o in outs]
    name = inputs[0].name
    if fixed_batch:
        return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    return sess.run(None, {name: x})[0]


def describe(y: np.ndarray) -> dict:
    return {"shape": list(y.shape), "data": [float(v) for v in y.astype(np.float32).ravel()]}


def bad_graphs() -> None:
    """Tiny well-formed graphs the loader must refuse with a clear message."""
    from onnx import TensorProto, helper

    def save(name, nodes, inputs, outputs, inits=()):
        g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
        onnx.checker.check_model(m)
        onnx.save(m, str(OUT / f"bad_{name}.onnx"))

    img = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])
    emb = helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["N", 37632])
    flat = helper.make_node("Flatten", ["data"], ["flat"], name="flatten0")
    # Hardmax: a standard operator candle-onnx does not implement.
    save("unsupported_op", [flat, helper.make_node("Hardmax", ["flat"], ["emb"], name="hardmax0")], [img], [emb])
    other = helper.make_tensor_value_info("other", TensorProto.FLOAT, ["N", 3, 112, 112])
    save("two_inputs", [helper.make_node("Add", ["data", "other"], ["sum"], name="add0"),
                        helper.make_node("Flatten", ["sum"], ["emb"], name="flatten0")], [img, other], [emb])
    nhwc = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 112, 112, 3])
    save("nhwc_input", [helper.make_node("Flatten", ["data"], ["emb"], name="flatten0")], [nhwc], [emb])
    half = helper.make_tensor_value_info("data", TensorProto.FLOAT16, ["N", 3, 112, 112])
    half_out = helper.make_tensor_value_info("emb", TensorProto.FLOAT16, ["N", 37632])
    save("float16_input", [helper.make_node("Flatten", ["data"], ["emb"], name="flatten0")], [half], [half_out])


def size_graphs() -> None:
    """Flatten-only graphs (embedding = the input pixels): the input size (and a fixed batch of 2) is
    read off the graph."""
    from onnx import TensorProto, helper

    for name, n, h, w in [("size_64x48", "N", 64, 48), ("size_symbolic", "N", "H", "W"), ("batch2_64x48", 2, 64, 48)]:
        img = helper.make_tensor_value_info("data", TensorProto.FLOAT, [n, 3, h, w])
        emb = helper.make_tensor_value_info("emb", TensorProto.FLOAT, [n, None])
        g = helper.make_graph([helper.make_node("Flatten", ["data"], ["emb"], name="flatten0")], name, [img], [emb])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
        onnx.checker.check_model(m)
        onnx.save(m, str(OUT / f"{name}.onnx"))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = tiny_mbf()
    raw = raw_formula(BATCH)
    normalised = ((raw - np.float32(127.5)) / np.float32(127.5)).astype(np.float32)
    with torch.no_grad():
        y_torch = net(torch.from_numpy(normalised)).numpy()
        y_torch_mx = InGraphNorm(net)(torch.from_numpy(raw)).numpy()

    cases = [
        # file, module, dynamic batch, input/output names, initializers as inputs, input fed
        ("mbf_tiny_dynamic.onnx", net, True, "input.1", "embedding", False, normalised, y_torch),
        ("mbf_tiny_mxnet_style.onnx", InGraphNorm(net), False, "data", "fc1", True, raw, y_torch_mx),
    ]
    doc = {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "network": f"arcface_torch MobileFaceNet blocks {list(BLOCKS)} scale {SCALE}, {DIM}-D, eval mode",
        "weights": "iresnet_numpy.py weight() for every state-dict key (= aifr_eval::model::weights::synthetic)",
        "input": {
            "formula": "x[n,h,w,c] = (n*131 + h*31 + w*17 + c*7) % 256, RGB, NCHW",
            "batch": BATCH,
            "fed": "(x - mean) / std in float32 with the file's preprocessing",
        },
        "models": {},
    }
    for fname, module, dynamic, iname, oname, keep, x, y_ref in cases:
        path = OUT / fname
        export(module, path, dynamic, iname, oname, keep)
        if not dynamic:
            mxnet_names(path)
        model = onnx.load(str(path))
        mean, std = insightface_preprocessing(model)
        # The input each file is fed is the raw image under its own preprocessing.
        assert np.array_equal(x, ((raw - np.float32(mean)) / np.float32(std)).astype(np.float32)), fname
        y_ort = run_ort(path, x, fixed_batch=not dynamic)
        err = float(np.abs(y_ort - y_ref).max())
        assert err < 1e-4, (fname, err)
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in
                 model.graph.input[0].type.tensor_type.shape.dim]
        print(f"{fname}: {path.stat().st_size} bytes, input {iname} {shape}, mean/std {mean}/{std}, "
              f"onnxruntime vs torch max |diff| {err:.2e}", file=sys.stderr)
        doc["models"][fname] = {
            "input_name": iname,
            "input_shape": shape,
            "output_name": oname,
            "fixed_batch": None if dynamic else 1,
            "first_nodes": [[n.op_type, n.name] for n in model.graph.node[:8]],
            "insightface_preprocessing": {"mean": mean, "std": std},
            "onnxruntime": describe(y_ort),
            "torch": describe(y_ref),
        }
    # Both files are the same function of the raw image.
    a, b = (np.array(m["onnxruntime"]["data"]) for m in doc["models"].values())
    print(f"dynamic vs mxnet-style max |diff| {np.abs(a - b).max():.2e}", file=sys.stderr)
    bad_graphs()
    size_graphs()
    out = OUT / "onnx_outputs.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

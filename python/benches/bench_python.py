#!/usr/bin/env python3
"""Benchmarks of the Python package (not timed tests; figures go to docs/benchmarks.md).

    aifr-eval demo --out reports/demo
    python python/benches/bench_python.py reports/demo [--repeat 5]

1. LFW, 6,000 pairs of the demo (128-d float32 rows from a NumPy array):
   a. `aifr_eval.evaluate("lfw", emb, ...)`: the whole CLI evaluation (scores, every metric in
      every rule, 1,000 bootstrap resamples, age-gap breakdown, curves) from the array;
   b. the project's NumPy/scikit-learn reference (tests/reference/verification_ref.py) on the same
      embeddings: cosine scores in NumPy, then `evaluate_all` (exact ROC, AUC, EER, TAR@FAR in both
      rules, k-fold accuracy in three modes; no bootstrap);
   c. `aifr_eval.metrics` on the reference's scores: the same metric set as (b).
   Ratios b/a and b/c. Needs scikit-learn for (b).
2. Image iterator on an insightface .bin pack of real 112×112 JPEG faces (6,000 by default): `bench.images()` (decoded in Rust threads,
   prefetched) against a plain Python loop (pickle + Pillow + NumPy), images per second.
   Needs Pillow for the Python loop.
"""

import argparse
import io
import json
import os
import pickle
import statistics
import tempfile
import sys
import time
from pathlib import Path

import numpy as np

import aifr_eval
from aifr_eval import metrics

ROOT = Path(__file__).resolve().parents[2]


def median_time(f, repeat):
    f()  # warm-up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def lfw(demo, repeat):
    data = demo / "data"
    emb = np.load(data / "embeddings" / "embeddings.npy")
    keys = (data / "embeddings" / "keys.txt").read_text().splitlines()
    t_eval = median_time(lambda: aifr_eval.evaluate("lfw", emb, keys=keys, data_dir=data, flip="none"), repeat)
    d = aifr_eval.evaluate("lfw", emb, keys=keys, data_dir=data, flip="none").to_dict()
    # The pairs, from LFW's pairs.txt (folds of matched `name n1 n2`, then mismatched
    # `name1 n1 name2 n2` lines), rows looked up by key.
    row = {k: i for i, k in enumerate(keys)}
    key = lambda name, n: f"{name}/{name}_{int(n):04d}.jpg"  # noqa: E731
    lines = (data / "lfw" / "pairs.txt").read_text().split("\n")
    k_folds, per = map(int, lines[0].split())
    a, b, labels, folds = [], [], [], []
    for i, line in enumerate(x for x in lines[1:] if x.strip()):
        f = line.split()
        p, q = (key(f[0], f[1]), key(f[0], f[2])) if len(f) == 3 else (key(f[0], f[1]), key(f[2], f[3]))
        a.append(row[p]); b.append(row[q]); labels.append(len(f) == 3); folds.append(i // (2 * per))
    a, b, labels, folds = np.array(a), np.array(b), np.array(labels), np.array(folds)
    out = {"pairs": int(len(a)), "dim": int(emb.shape[1]), "aifr_eval.evaluate_s": t_eval}
    far_targets = [t["far_target"] for t in d["metrics"]["tar_at_far"] if t["rule"] == "strict"]
    x = emb.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = np.einsum("ij,ij->i", x[a], x[b])
    try:
        sys.path.insert(0, str(ROOT / "tests" / "reference"))
        import verification_ref as ref
    except ImportError as e:
        ref = None
        out["reference"] = f"skipped: {e}"

    def reference():
        y = emb.astype(np.float64)
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        sc = np.einsum("ij,ij->i", y[a], y[b])
        ref.evaluate_all(sc, 2 - 2 * sc, labels, folds, far_targets)

    def ours_metrics():
        metrics.roc(s, labels)
        metrics.auc(s, labels)
        metrics.eer(s, labels)
        for far in far_targets:
            metrics.tar_at_far(s, labels, far, rule="strict")
            metrics.tar_at_far(s, labels, far, rule="insightface_nearest")
        metrics.kfold_accuracy(s, labels, folds, mode="strict")
        metrics.kfold_accuracy(2 - 2 * s, labels, folds, mode="insightface")
        metrics.kfold_accuracy(s, labels, folds, mode="facexzoo")

    out["aifr_eval.metrics_s"] = median_time(ours_metrics, repeat)
    if ref is None:
        return out
    out["reference_numpy_s"] = median_time(reference, repeat)
    # Same pairs, same numbers: the k-fold accuracy of the reference and of the CLI agree.
    out["accuracy_cli"] = d["metrics"]["accuracy"]["mean"]
    out["ratio_reference_over_evaluate"] = out["reference_numpy_s"] / t_eval
    out["ratio_reference_over_metrics"] = out["reference_numpy_s"] / out["aifr_eval.metrics_s"]
    return out


def images(n_images, repeat):
    # The demo's packs hold placeholder bytes, so the pack is made of real faces: the 20 aligned
    # 112×112 LFW JPEGs of tests/data/small_lfw.bin, repeated to n_images (in pairs, all genuine).
    with open(ROOT / "tests" / "data" / "small_lfw.bin", "rb") as f:
        bins, _ = pickle.load(f, encoding="bytes")
    faces = [bytes(bins[i % len(bins)]) for i in range(n_images)]
    tmp = tempfile.TemporaryDirectory(prefix="aifr-bench-")
    data = Path(tmp.name)
    (data / "faces_emore").mkdir()
    pack = data / "faces_emore" / "lfw.bin"
    with open(pack, "wb") as f:
        pickle.dump((faces, [True] * (n_images // 2)), f, protocol=4)
    bench = aifr_eval.open("lfw_bin", data_dir=data)
    n = len(bench)

    def ours():
        for _ in bench.images(batch_size=256):
            pass

    out = {"images": n, "pack_bytes": pack.stat().st_size}
    out["aifr_eval_images_per_s"] = n / median_time(ours, repeat)
    try:
        from PIL import Image
    except ImportError as e:
        out["python_loop"] = f"skipped: {e}"
        return out

    def plain():
        with open(pack, "rb") as f:
            bins, _ = pickle.load(f, encoding="bytes")
        for i in range(0, len(bins), 256):
            batch = [np.asarray(Image.open(io.BytesIO(bytes(b))).convert("RGB")) for b in bins[i:i + 256]]
            x = np.stack(batch)
            np.ascontiguousarray(x[:, :, ::-1, :])

    out["python_loop_images_per_s"] = n / median_time(plain, repeat)
    out["ratio"] = out["aifr_eval_images_per_s"] / out["python_loop_images_per_s"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo", type=Path, help="output folder of `aifr-eval demo`")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--images", type=int, default=6000, help="images in the .bin pack of the iterator benchmark")
    args = ap.parse_args()
    res = {"threads": os.cpu_count(), "numpy": np.__version__, "lfw": lfw(args.demo, args.repeat),
           "images": images(args.images, args.repeat)}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

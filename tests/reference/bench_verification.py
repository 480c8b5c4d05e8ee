#!/usr/bin/env python3
"""Time the NumPy reference implementation of all verification metrics.

    python3 tests/reference/bench_verification.py INPUT.json [--repeat N]

INPUT.json needs keys scores, distances, labels, folds, far_targets (any
fixture in tests/fixtures/verification/ works, e.g. lfw_like.json).  Runs
every metric (exact ROC, AUC, EER, TAR@FAR strict + nearest, k-fold strict /
insightface / facexzoo) once as warm-up, then N timed times, and prints one
JSON line with the median seconds per full evaluation.

Timing covers the metric computation from in-memory NumPy arrays (the JSON
parse / list->array conversion is done once, outside the timed region).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import sklearn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verification_ref as ref  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description="benchmark the NumPy verification reference")
    ap.add_argument("input")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    with open(args.input, encoding="utf-8") as fh:
        doc = json.load(fh)
    scores = np.asarray(doc["scores"], dtype=np.float64)
    distances = np.asarray(doc["distances"], dtype=np.float64)
    labels = np.asarray(doc["labels"], dtype=bool)
    folds = np.asarray(doc["folds"], dtype=np.int64)
    far_targets = [float(x) for x in doc["far_targets"]]

    ref.evaluate_all(scores, distances, labels, folds, far_targets)  # warm-up
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ref.evaluate_all(scores, distances, labels, folds, far_targets)
        times.append(time.perf_counter() - t0)

    print(json.dumps({
        "impl": "numpy",
        "pairs": int(scores.size),
        "seconds_per_eval": statistics.median(times),
        "repeat": args.repeat,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
    }))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generate the demographic-differential fixtures used by the Rust tests.

    pip install numpy
    python3 tests/reference/make_differentials_fixtures.py [--out DIR]

Writes tests/fixtures/differentials/<case>.json. Deterministic (fixed seeds, no timestamps).
Cases: `basic` (four groups with different error rates, cross-group pairs, a reference group),
`ties` (scores on a 1/16 grid: many ties at the threshold, within and across groups),
`edge` (an empty group, a group without impostor pairs, a tiny group, ungrouped pairs, a target
below 1/N), `zero_rates` (no false match in any group: Gini 0, unbounded max/min ratio).
The `edge` case's hand-computed answers are asserted here too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import differentials_ref as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "differentials")


def _q(x, step):
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * step) / step, -1.0, 1.0) + 0.0


def synthetic(seed, n_per_group, names, shifts, step, cross=60):
    """Genuine mean falls and impostor mean rises with each group's shift."""
    rng = np.random.default_rng(seed)
    scores, genuine, ga, gb, clusters = [], [], [], [], []
    cid = 0
    for g, shift in enumerate(shifts):
        for k in range(n_per_group):
            is_gen = k % 2 == 0
            s = rng.normal(0.7 - shift, 0.12) if is_gen else rng.normal(0.1 + shift, 0.12)
            scores.append(s)
            genuine.append(is_gen)
            ga.append(g)
            gb.append(g)
            clusters.append(cid + k // 4)
        cid += n_per_group // 4 + 1
    for k in range(cross):
        a, b = rng.choice(len(names), 2, replace=False)
        scores.append(rng.normal(0.15, 0.12))
        genuine.append(k % 10 == 0)
        ga.append(int(a))
        gb.append(int(b))
        clusters.append(cid + k // 4)
    return _q(scores, step).tolist(), genuine, ga, gb, clusters


def case(name, description, scores, genuine, ga, gb, clusters, names, far_targets, reference,
         fdr_alpha=0.5, garbe_alpha=0.5):
    expected = ref.differentials(scores, genuine, ga, gb, names, far_targets, fdr_alpha, garbe_alpha, reference)
    return {
        "case": name,
        "description": description,
        "names": names,
        "far_targets": far_targets,
        "fdr_alpha": fdr_alpha,
        "garbe_alpha": garbe_alpha,
        "reference": reference,
        "scores": [float(s) for s in scores],
        "genuine": [bool(g) for g in genuine],
        "group_a": ga,
        "group_b": gb,
        "clusters": clusters,
        "expected": expected,
    }


def case_basic():
    names = ["African", "Asian", "Caucasian", "Indian"]
    s, g, a, b, c = synthetic(20260101, 400, names, [0.12, 0.08, 0.0, 0.05], 4096)
    return case("basic", "four groups with planted differentials, cross-group pairs, reference Caucasian",
                s, g, a, b, c, names, [1e-3, 1e-2, 5e-2, 0.1], "Caucasian")


def case_ties():
    names = ["g0", "g1", "g2"]
    s, g, a, b, c = synthetic(7, 120, names, [0.1, 0.0, 0.2], 16, cross=30)
    return case("ties", "scores on a 1/16 grid: ties at the threshold within and across groups",
                s, g, a, b, c, names, [0.01, 0.05, 0.1, 0.3], "g1", fdr_alpha=0.25, garbe_alpha=0.75)


def case_edge():
    names = ["empty", "genuine_only", "tiny", "big"]
    # big: 6 genuine, 8 impostors; tiny: 1 genuine, 1 impostor; genuine_only: 3 genuine.
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4,            # big genuine
              0.6, 0.5, 0.5, 0.3, 0.2, 0.1, 0.0, -0.1,  # big impostors
              0.55, 0.5,                               # tiny: genuine 0.55, impostor 0.5
              0.9, 0.5, 0.2,                           # genuine_only
              0.7,                                     # cross-group impostor big/tiny
              0.99]                                    # ungrouped impostor
    genuine = [True] * 6 + [False] * 8 + [True, False] + [True] * 3 + [False, False]
    ga = [3] * 14 + [2, 2] + [1] * 3 + [3, None]
    gb = [3] * 14 + [2, 2] + [1] * 3 + [2, 3]
    clusters = list(range(len(scores)))
    c = case("edge", "an empty group, a group without impostors, a tiny group, ungrouped pairs, a target below 1/N",
             scores, genuine, ga, gb, clusters, names, [0.01, 0.1, 0.25, 0.5], "big")
    # 11 impostors in all. FAR 0.25 allows 2 (2/11 <= 0.25 < 3/11 ... 0.99 and 0.7 accepted): t = 0.7.
    at = c["expected"]["at"]
    assert at[0] == {"far_target": 0.01, "available": False}
    assert at[2]["threshold"] == 0.7, at[2]["threshold"]
    groups = {g["group"]: g for g in at[2]["groups"]}
    assert groups["empty"]["fmr"] is None and groups["empty"]["fnmr"] is None
    assert groups["genuine_only"]["fmr"] is None and groups["genuine_only"]["fnmr"] == 2 / 3
    assert groups["big"]["fnmr"] == 3 / 6 and groups["big"]["fmr"] == 0.0
    assert groups["tiny"]["fnmr"] == 1.0 and groups["tiny"]["fmr"] == 0.0
    assert at[2]["cross_group"] == {"n_impostor": 1, "false_matches": 1, "n_genuine": 0, "false_non_matches": 0}
    assert c["expected"]["ungrouped_pairs"] == 1
    # FAR 0.5 allows 5 of 11: scores >= 0.5 among impostors are 0.99, 0.7, 0.6, 0.5, 0.5, 0.5 = 6 > 5,
    # so the threshold is 0.6 (3 false matches).
    assert at[3]["threshold"] == 0.6
    return c


def case_zero_rates():
    names = ["a", "b", "c"]
    scores, genuine, ga = [], [], []
    for g, gen in enumerate([[0.99, 0.98], [0.97, 0.5], [0.96, 0.4]]):
        scores += gen + [0.2, 0.1]
        genuine += [True, True, False, False]
        ga += [g] * 4
    scores.append(0.95)  # one cross-group impostor above everything
    genuine.append(False)
    gb = ga + [2]
    ga = ga + [0]
    clusters = list(range(len(scores)))
    return case("zero_rates", "no within-group false match at the threshold: Gini 0, max/min ratio unbounded",
                scores, genuine, ga, gb, clusters, names, [1 / 7, 0.2], "a")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=DEFAULT_OUT)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for make in (case_basic, case_ties, case_edge, case_zero_rates):
        c = make()
        path = os.path.join(args.out, c["case"] + ".json")
        with open(path, "w") as f:
            json.dump(c, f, indent=1, sort_keys=False)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()

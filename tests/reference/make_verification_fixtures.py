#!/usr/bin/env python3
"""Generate the verification-metric JSON fixtures used by the Rust tests.

    pip install numpy scikit-learn
    python3 tests/reference/make_verification_fixtures.py [--out DIR]

Writes one file per case to tests/fixtures/verification/<case>.json
(relative to the repository root).  Deterministic: fixed seeds, no
timestamps / version strings in the output, so two runs give byte-identical
files.

Besides the vectorised reference (verification_ref.py) this script carries a
second, deliberately naive loop-per-candidate implementation of every metric
and asserts that both agree exactly, plus cross-checks against
sklearn.metrics.roc_auc_score / roc_curve(drop_intermediate=False).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verification_ref as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "verification")
DEFAULT_FARS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


# --------------------------------------------------------------------------
# case builders
# --------------------------------------------------------------------------
def _blocked(gen_per_fold, imp_per_fold, k, gen_scores, imp_scores):
    """LFW-style layout: fold f = [gen_per_fold genuine, imp_per_fold impostor]."""
    s, y, f = [], [], []
    for fold in range(k):
        g = gen_scores[fold * gen_per_fold:(fold + 1) * gen_per_fold]
        i = imp_scores[fold * imp_per_fold:(fold + 1) * imp_per_fold]
        s.extend(g)
        s.extend(i)
        y.extend([True] * len(g) + [False] * len(i))
        f.extend([fold] * (len(g) + len(i)))
    return np.asarray(s, dtype=np.float64), np.asarray(y, dtype=bool), np.asarray(f, dtype=np.int64)


def case_basic():
    rng = np.random.default_rng(20240101)
    k, gpf, ipf = 10, 30, 30
    gen = rng.normal(0.5, 0.15, k * gpf)
    imp = rng.normal(0.1, 0.15, k * ipf)
    s, y, f = _blocked(gpf, ipf, k, gen, imp)
    return dict(
        case="basic",
        description="600 pairs, 10 folds x (30 gen + 30 imp), gen~N(0.5,0.15), imp~N(0.1,0.15), continuous; distances = 2 - 2*score",
        scores=s, distances=2.0 - 2.0 * s, labels=y, folds=f, far_targets=DEFAULT_FARS,
    )


def case_ties():
    rng = np.random.default_rng(20240102)
    k, gpf, ipf = 10, 20, 20
    q = lambda x: np.clip(np.round(x * 32.0) / 32.0, -1.0, 1.0) + 0.0  # noqa: E731  (+0.0: no -0.0)
    gen = q(rng.normal(0.40, 0.15, k * gpf))
    imp = q(rng.normal(0.15, 0.15, k * ipf))
    s, y, f = _blocked(gpf, ipf, k, gen, imp)
    d = 2.0 - 2.0 * s
    assert np.all((2.0 - d) / 2.0 == s)  # exact
    return dict(
        case="ties",
        description="400 pairs, 10 folds x (20 gen + 20 imp), scores quantised to multiples of 1/32 (many ties within and across classes); distances = 2 - 2*score (exact)",
        scores=s, distances=d, labels=y, folds=f, far_targets=DEFAULT_FARS,
    )


def case_unbalanced():
    rng = np.random.default_rng(20240103)
    n_gen, n_imp = 50, 2000
    gen = rng.normal(0.5, 0.15, n_gen)
    imp = rng.normal(0.1, 0.15, n_imp)
    s = np.concatenate((gen, imp))
    y = np.concatenate((np.ones(n_gen, bool), np.zeros(n_imp, bool)))
    f = np.arange(s.size, dtype=np.int64) % 10  # round-robin
    return dict(
        case="unbalanced",
        description="50 genuine vs 2000 impostors (genuine first), folds round-robin i % 10; far 1e-4 < 1/N_imp unavailable, 5e-4 == 1/N_imp exactly available",
        scores=s, distances=2.0 - 2.0 * s, labels=y, folds=f,
        far_targets=[1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 1e-1],
    )


def case_far_below_1_over_n():
    rng = np.random.default_rng(20240104)
    k, gpf, ipf = 10, 2, 3
    gen = rng.normal(0.5, 0.15, k * gpf)
    imp = rng.normal(0.1, 0.15, k * ipf)
    s, y, f = _blocked(gpf, ipf, k, gen, imp)
    return dict(
        case="far_below_1_over_n",
        description="tiny: 20 gen + 30 imp, 10 folds x (2 gen + 3 imp); only far >= 1/30 available",
        scores=s, distances=2.0 - 2.0 * s, labels=y, folds=f, far_targets=DEFAULT_FARS,
    )


def case_top_ties():
    rng = np.random.default_rng(20240105)
    k, gpf, ipf = 10, 10, 10
    q = lambda x: np.clip(np.round(x * 32.0) / 32.0, -1.0, 1.0) + 0.0  # noqa: E731  (+0.0: no -0.0)
    top = 0.875  # 28/32
    gen = q(rng.normal(0.70, 0.15, k * gpf))
    imp = q(rng.normal(0.20, 0.15, k * ipf))
    imp = np.minimum(imp, top - 1.0 / 32.0)
    # 5 impostors tied at the maximum impostor score, one in each of 5 folds
    for fold in (0, 2, 4, 6, 8):
        imp[fold * ipf + 3] = top
    # genuine scores tied with the top impostors and with other impostors
    for fold in (1, 3, 5):
        gen[fold * gpf + 0] = top
    gen[7 * gpf + 1] = 0.25
    gen[9 * gpf + 2] = 0.25
    imp[9 * ipf + 5] = 0.25
    s, y, f = _blocked(gpf, ipf, k, gen, imp)
    assert np.count_nonzero(s[~y] == s[~y].max()) == 5 and s[~y].max() == top
    return dict(
        case="top_ties",
        description="200 pairs, 10 folds x (10 gen + 10 imp), 1/32-quantised; 5 of 100 impostors tied at max impostor score 0.875 (genuine also at 0.875); far 0.01/0.025/0.03 hit the 'nextafter(max_imp)' branch, 0.05 is exactly the tie size; 0.025 is equidistant from ROC vertices fpr 0 and 0.05 (nearest-rule tie)",
        scores=s, distances=2.0 - 2.0 * s, labels=y, folds=f,
        far_targets=[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.025, 0.03, 0.05, 1e-1],
    )


def case_perfect():
    rng = np.random.default_rng(20240106)
    k, gpf, ipf = 10, 15, 15
    gen = rng.uniform(0.6, 0.9, k * gpf)
    imp = rng.uniform(-0.2, 0.3, k * ipf)
    s, y, f = _blocked(gpf, ipf, k, gen, imp)
    return dict(
        case="perfect",
        description="300 pairs, 10 folds x (15 gen + 15 imp), gen~U(0.6,0.9), imp~U(-0.2,0.3): perfectly separated (AUC 1, EER 0)",
        scores=s, distances=2.0 - 2.0 * s, labels=y, folds=f, far_targets=DEFAULT_FARS,
    )


def _unit(x):
    return x / np.sqrt(np.sum(x * x, axis=1, keepdims=True))


def case_lfw_like():
    rng = np.random.default_rng(20240107)
    k, gpf, ipf, dim = 10, 300, 300, 128
    n_gen, n_imp = k * gpf, k * ipf
    # genuine: b = c*a + sqrt(1-c^2)*u, u unit and orthogonal to a
    a = _unit(rng.standard_normal((n_gen, dim)))
    u = rng.standard_normal((n_gen, dim))
    u = _unit(u - np.sum(u * a, axis=1, keepdims=True) * a)
    c = np.clip(rng.normal(0.55, 0.13, n_gen), -0.99, 0.99)[:, None]
    b = _unit(c * a + np.sqrt(1.0 - c * c) * u)
    # impostor: independent unit vectors (cos ~ N(0, 1/sqrt(128)))
    a2 = _unit(rng.standard_normal((n_imp, dim)))
    b2 = _unit(rng.standard_normal((n_imp, dim)))
    A = np.empty((n_gen + n_imp, dim))
    B = np.empty_like(A)
    y = np.empty(n_gen + n_imp, bool)
    f = np.empty(n_gen + n_imp, np.int64)
    pos = 0
    for fold in range(k):
        sl = slice(fold * gpf, (fold + 1) * gpf)
        A[pos:pos + gpf], B[pos:pos + gpf], y[pos:pos + gpf] = a[sl], b[sl], True
        f[pos:pos + gpf] = fold
        pos += gpf
        sl = slice(fold * ipf, (fold + 1) * ipf)
        A[pos:pos + ipf], B[pos:pos + ipf], y[pos:pos + ipf] = a2[sl], b2[sl], False
        f[pos:pos + ipf] = fold
        pos += ipf
    s = np.sum(A * B, axis=1)
    diff = A - B
    d = np.sum(diff * diff, axis=1)
    assert np.max(np.abs(d - (2.0 - 2.0 * s))) < 1e-12
    return dict(
        case="lfw_like",
        description="6000 pairs, 10 folds x (300 gen + 300 imp); 128-d random float64 unit vectors, scores = a.b, distances = ||a-b||^2 (consistent); ~99% accuracy. Also the benchmark input.",
        scores=s, distances=d, labels=y, folds=f, far_targets=DEFAULT_FARS,
    )


CASES = [
    case_basic,
    case_ties,
    case_unbalanced,
    case_far_below_1_over_n,
    case_top_ties,
    case_perfect,
    case_lfw_like,
]


# --------------------------------------------------------------------------
# naive second implementation (loops straight from the spec)
# --------------------------------------------------------------------------
def naive_roc(s, y):
    gen, imp = s[y], s[~y]
    thr = sorted(set(s.tolist()), reverse=True)
    fpr, tpr = [0.0], [0.0]
    for t in thr:
        fpr.append(np.count_nonzero(imp >= t) / imp.size)
        tpr.append(np.count_nonzero(gen >= t) / gen.size)
    return fpr, tpr, [None] + thr


def naive_eer(s, y):
    gen, imp = s[y], s[~y]
    u = sorted(set(s.tolist()))
    if len(u) < 2:
        return None
    best = None
    for a, b in zip(u[:-1], u[1:]):
        t = (a + b) / 2.0
        far = np.count_nonzero(imp >= t) / imp.size
        frr = np.count_nonzero(gen < t) / gen.size
        if best is None or abs(far - frr) < best[0]:  # strict: keep smallest t on ties
            best = (abs(far - frr), t, far, frr)
    _, t, far, frr = best
    return {"eer": (far + frr) / 2.0, "threshold": t, "far": far, "frr": frr}


def naive_tar_strict(fars, s, y):
    gen, imp = s[y], s[~y]
    out = []
    for far in fars:
        if far * imp.size < 1:
            out.append({"far_target": far, "available": False})
            continue
        t = None
        for v in sorted(set(imp.tolist())):
            if np.count_nonzero(imp >= v) / imp.size <= far:
                t = v
                break
        if t is None:
            t = float(np.nextafter(imp.max(), np.inf))
        fa = int(np.count_nonzero(imp >= t))
        out.append({"far_target": far, "available": True,
                    "tar": np.count_nonzero(gen >= t) / gen.size,
                    "far": fa / imp.size, "threshold": t, "false_accepts": fa})
    return out


def naive_tar_nearest(fars, s, y):
    fpr, tpr, thr = roc_curve(y, s)
    n_imp = int(np.count_nonzero(~y))
    out = []
    for far in fars:
        if far * n_imp < 1:
            out.append({"far_target": far, "available": False})
            continue
        best = 0
        for i in range(1, len(fpr)):
            di, db = abs(fpr[i] - far), abs(fpr[best] - far)
            if di < db or (di == db and tpr[i] > tpr[best]):
                best = i
        t = float(thr[best])
        out.append({"far_target": far, "available": True, "tar": float(tpr[best]),
                    "far": float(fpr[best]), "threshold": None if math.isinf(t) else t,
                    "false_accepts": int(round(float(fpr[best]) * n_imp))})
    return out


def _naive_fold_loop(x, y, folds, candidates_fn, train_score_fn, test_acc_fn):
    accs, thrs = [], []
    for k in sorted(set(folds.tolist())):
        te = folds == k
        tr = ~te
        best_t, best_v = None, None
        for t in candidates_fn(x[tr]):
            v = train_score_fn(x[tr], y[tr], t)
            if best_v is None or v > best_v:  # strict > keeps the first / smallest
                best_t, best_v = t, v
        accs.append(test_acc_fn(x[te], y[te], best_t))
        thrs.append(best_t)
    return ref.fold_summary(accs, thrs)


def naive_kfold_strict(s, y, folds):
    def cands(st):
        u = sorted(set(st.tolist()))
        return [u[0] - 1.0] + [(a + b) / 2.0 for a, b in zip(u[:-1], u[1:])] + [u[-1] + 1.0]

    def acc(x, yy, t):
        return (np.count_nonzero(x[yy] >= t) + np.count_nonzero(x[~yy] < t)) / x.size

    return _naive_fold_loop(s, y, folds, cands, acc, acc)


def naive_kfold_insightface(d, y, folds):
    def cands(_):
        return [float(t) for t in np.arange(0, 4, 0.01)]

    def acc(x, yy, t):
        pred = x < t
        return np.count_nonzero(pred == yy) / x.size

    return _naive_fold_loop(d, y, folds, cands, acc, acc)


def naive_kfold_facexzoo(s, y, folds):
    def cands(st):
        lo, hi = float(st.min()), float(st.max())
        step = (hi - lo) / 1000
        return [lo + step * j for j in range(1, 1001)]

    def train(x, yy, t):
        return np.mean(x[yy] > t) - np.mean(x[~yy] > t)

    def test(x, yy, t):
        return (np.count_nonzero(x[yy] > t) + np.count_nonzero(x[~yy] < t)) / x.size

    return _naive_fold_loop(s, y, folds, cands, train, test)


# --------------------------------------------------------------------------
# checks + output
# --------------------------------------------------------------------------
def _same(a, b, path="$"):
    """Exact structural equality (floats compared with ==)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (path, a, b)
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), (path, len(a), len(b))
        for i, (p, q) in enumerate(zip(a, b)):
            _same(p, q, f"{path}[{i}]")
    elif a is None or b is None:
        assert a is None and b is None, (path, a, b)
    elif isinstance(a, bool) or isinstance(b, bool):
        assert a is b, (path, a, b)
    else:
        assert float(a) == float(b), (path, a, b)


def _close(a, b, path, rel=1e-12):
    assert abs(a - b) <= rel * max(1.0, abs(a), abs(b)), (path, a, b)


def check_case(c, res):
    s, y, f, d = c["scores"], c["labels"], c["folds"], c["distances"]
    name = c["case"]
    # every fold: train and test contain both classes
    for k in np.unique(f):
        te = f == k
        for part in (te, ~te):
            assert np.any(y[part]) and np.any(~y[part]), (name, "fold", k)
    n_imp = res["n_impostor"]
    for far in c["far_targets"]:
        assert (far < 1.0 / n_imp) == (far * n_imp < 1), (name, far)

    # exact ROC == sklearn roc_curve(drop_intermediate=False)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    assert np.array_equal(fpr, res["roc"]["fpr"]) and np.array_equal(tpr, res["roc"]["tpr"]), name
    assert math.isinf(thr[0]) and np.array_equal(thr[1:], res["roc"]["thresholds"][1:]), name
    assert res["roc"]["fpr"][-1] == 1.0 and res["roc"]["tpr"][-1] == 1.0
    # AUC
    _close(res["auc"], roc_auc_score(y, s), f"{name}.auc")
    _close(res["auc"], float(np.trapezoid(res["roc"]["tpr"], res["roc"]["fpr"])), f"{name}.auc2")

    nf, nt, nthr = naive_roc(s, y)
    _same(res["roc"], {"fpr": nf, "tpr": nt, "thresholds": nthr}, f"{name}.roc")
    _same(res["eer"], naive_eer(s, y), f"{name}.eer")
    _same(res["tar_at_far_strict"], naive_tar_strict(c["far_targets"], s, y), f"{name}.tar_strict")
    _same(res["tar_at_far_insightface"], naive_tar_nearest(c["far_targets"], s, y), f"{name}.tar_if")
    _same(res["kfold_strict"], naive_kfold_strict(s, y, f), f"{name}.kfold_strict")
    _same(res["kfold_insightface"], naive_kfold_insightface(d, y, f), f"{name}.kfold_if")
    _same(res["kfold_facexzoo"], naive_kfold_facexzoo(s, y, f), f"{name}.kfold_fxz")


KEY_ORDER = [
    "case", "description", "n_pairs", "n_folds", "n_genuine", "n_impostor",
    "far_targets", "scores", "distances", "labels", "folds",
    "roc", "auc", "eer", "tar_at_far_strict", "tar_at_far_insightface",
    "kfold_strict", "kfold_insightface", "kfold_facexzoo",
]


def to_json(c, res):
    doc = {
        "case": c["case"],
        "description": c["description"],
        "n_pairs": int(c["scores"].size),
        "n_folds": int(np.unique(c["folds"]).size),
        "far_targets": [float(x) for x in c["far_targets"]],
        "scores": [float(x) for x in c["scores"]],
        "distances": [float(x) for x in c["distances"]],
        "labels": [bool(x) for x in c["labels"]],
        "folds": [int(x) for x in c["folds"]],
    }
    doc.update(res)
    assert list(sorted(doc)) == sorted(KEY_ORDER), sorted(doc)
    # one top-level key per line, values compact; floats via repr (round-trip)
    lines = [
        f"  {json.dumps(k)}: {json.dumps(doc[k], allow_nan=False, separators=(', ', ': '))}"
        for k in KEY_ORDER
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--no-check", action="store_true", help="skip the naive cross-check")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for build in CASES:
        c = build()
        res = ref.evaluate_all(c["scores"], c["distances"], c["labels"], c["folds"], c["far_targets"])
        if not args.no_check:
            check_case(c, res)
        text = to_json(c, res)
        # round-trip sanity: every float survives json
        back = json.loads(text)
        assert back["scores"] == [float(x) for x in c["scores"]]
        path = os.path.join(args.out, c["case"] + ".json")
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        print(
            f"{c['case']:>20}: pairs={c['scores'].size:5d} auc={res['auc']:.6f} "
            f"eer={res['eer']['eer'] if res['eer'] else None} "
            f"acc strict/if/fxz={res['kfold_strict']['mean']:.4f}/"
            f"{res['kfold_insightface']['mean']:.4f}/{res['kfold_facexzoo']['mean']:.4f} -> {os.path.relpath(path, REPO)}"
        )


if __name__ == "__main__":
    main()

"""Independent NumPy / scikit-learn reference implementation of the
pair-verification metrics used by aifr-eval.

Written from the project's metric spec (see tests/reference/README.md), not
ported from insightface / FaceX-Zoo / bob.  Every function is pure: it takes
NumPy arrays and returns plain Python values (float / int / bool / None /
list / dict) that can be dumped directly with ``json``.

Conventions
-----------
* ``scores``    float64 similarity, higher = more alike.
* ``distances`` float64 squared euclidean distances (only used by the
  insightface-compatible k-fold protocol).
* ``labels``    bool, True = genuine (same identity).
* ``folds``     int fold index per pair.

All counting is done on sorted arrays with ``np.searchsorted``:

* ``#(x >= t) = n - searchsorted(sorted_x, t, 'left')``
* ``#(x <  t) = searchsorted(sorted_x, t, 'left')``
* ``#(x >  t) = n - searchsorted(sorted_x, t, 'right')``
* ``#(x <= t) = searchsorted(sorted_x, t, 'right')``

so every metric is O(n log n) and fully vectorised.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_curve

__all__ = [
    "split_classes",
    "exact_roc",
    "auc_trapezoid",
    "eer",
    "far_unavailable",
    "tar_at_far_strict",
    "tar_at_far_nearest",
    "kfold_strict",
    "kfold_insightface",
    "kfold_facexzoo",
    "fold_summary",
    "evaluate_all",
    "INSIGHTFACE_THRESHOLDS",
    "FACEXZOO_STEPS",
]

# G. insightface thresholds: exactly np.arange(0, 4, 0.01) in float64
#    (400 values, element i == i * 0.01 bit-for-bit).
INSIGHTFACE_THRESHOLDS = np.arange(0, 4, 0.01, dtype=np.float64)
# H. facexzoo: thresholds lo + step * j, j = 1..1000
FACEXZOO_STEPS = 1000


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _as_arrays(scores, labels):
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError("scores and labels must be 1-D arrays of equal length")
    return s, y


def split_classes(scores, labels):
    """Return (sorted genuine scores, sorted impostor scores)."""
    s, y = _as_arrays(scores, labels)
    gen = np.sort(s[y], kind="stable")
    imp = np.sort(s[~y], kind="stable")
    return gen, imp


def _count_ge(sorted_x, t):
    return sorted_x.size - np.searchsorted(sorted_x, t, side="left")


def _count_lt(sorted_x, t):
    return np.searchsorted(sorted_x, t, side="left")


def _count_gt(sorted_x, t):
    return sorted_x.size - np.searchsorted(sorted_x, t, side="right")


def _f(x):
    """numpy scalar -> python float (None for +-inf)."""
    x = float(x)
    if math.isinf(x):
        return None
    if math.isnan(x):
        raise ValueError("NaN in output")
    return x


# --------------------------------------------------------------------------
# A. exact ROC
# --------------------------------------------------------------------------
def exact_roc(scores, labels, *, _gen=None, _imp=None):
    """Exact ROC, accept iff score >= t.

    One vertex per distinct score value in descending order, preceded by
    (0, 0) at threshold +inf (written as None).
    """
    s, _ = _as_arrays(scores, labels)
    gen, imp = (_gen, _imp) if _gen is not None else split_classes(scores, labels)
    thr = np.unique(s)[::-1]  # distinct, descending
    tpr = _count_ge(gen, thr) / gen.size
    fpr = _count_ge(imp, thr) / imp.size
    fpr = np.concatenate(([0.0], fpr))
    tpr = np.concatenate(([0.0], tpr))
    return fpr, tpr, np.concatenate(([np.inf], thr))


def roc_to_json(fpr, tpr, thr):
    return {
        "fpr": [float(v) for v in fpr],
        "tpr": [float(v) for v in tpr],
        "thresholds": [_f(v) for v in thr],
    }


# --------------------------------------------------------------------------
# B. AUC
# --------------------------------------------------------------------------
def auc_trapezoid(fpr, tpr):
    """Trapezoid rule over the exact ROC vertices (last vertex is (1,1)).

    Computed as sum_i (fpr[i+1]-fpr[i]) * (tpr[i+1]+tpr[i]) / 2 with NumPy's
    (pairwise) summation, i.e. ``np.trapezoid(tpr, fpr)``.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


# --------------------------------------------------------------------------
# C. EER
# --------------------------------------------------------------------------
def eer(scores, labels, *, _gen=None, _imp=None):
    s, _ = _as_arrays(scores, labels)
    gen, imp = (_gen, _imp) if _gen is not None else split_classes(scores, labels)
    u = np.unique(s)  # ascending, distinct
    if u.size < 2:
        return None
    cand = (u[:-1] + u[1:]) / 2.0
    far = _count_ge(imp, cand) / imp.size
    frr = _count_lt(gen, cand) / gen.size
    i = int(np.argmin(np.abs(far - frr)))  # first minimum == smallest threshold
    return {
        "eer": float((far[i] + frr[i]) / 2.0),
        "threshold": float(cand[i]),
        "far": float(far[i]),
        "frr": float(frr[i]),
    }


# --------------------------------------------------------------------------
# D./E. TAR @ FAR
# --------------------------------------------------------------------------
def far_unavailable(far, n_imp):
    """A FAR target is unavailable when it is below one false accept.

    Implemented as ``far < 1.0 / n_imp`` (float64).  The spec also states it
    as ``far * n_imp < 1``; the fixture generator asserts both forms agree on
    every committed target.
    """
    return far < 1.0 / n_imp


def tar_at_far_strict(far_targets, gen, imp):
    """bob.measure-style: lowest observed impostor score t with
    #(imp >= t)/N_imp <= far.  ``gen``/``imp`` must be sorted ascending."""
    n_imp, n_gen = imp.size, gen.size
    v = np.unique(imp)  # ascending distinct impostor scores
    ratio = _count_ge(imp, v) / n_imp  # non-increasing in v
    out = []
    for far in far_targets:
        far = float(far)
        if far_unavailable(far, n_imp):
            out.append({"far_target": far, "available": False})
            continue
        ok = ratio <= far
        if ok.any():
            t = v[int(np.argmax(ok))]  # first (lowest) admissible score
        else:  # ties at the top: even max impostor exceeds the budget
            t = np.nextafter(v[-1], np.inf)
        fa = int(_count_ge(imp, t))
        out.append(
            {
                "far_target": far,
                "available": True,
                "tar": float(_count_ge(gen, t) / n_gen),
                "far": float(fa / n_imp),
                "threshold": float(t),
                "false_accepts": fa,
            }
        )
    return out


def tar_at_far_nearest(far_targets, scores, labels, n_imp):
    """insightface-compatible: nearest vertex of sklearn's roc_curve
    (drop_intermediate=True) in |fpr - far|; ties -> larger tpr, then the
    smaller index."""
    fpr, tpr, thr = roc_curve(labels, scores)
    idx = np.arange(fpr.size)
    out = []
    for far in far_targets:
        far = float(far)
        if far_unavailable(far, n_imp):
            out.append({"far_target": far, "available": False})
            continue
        d = np.abs(fpr - far)
        # lexsort: last key is primary
        i = int(np.lexsort((idx, -tpr, d))[0])
        out.append(
            {
                "far_target": far,
                "available": True,
                "tar": float(tpr[i]),
                "far": float(fpr[i]),
                "threshold": _f(thr[i]),
                "false_accepts": int(round(float(fpr[i]) * n_imp)),
            }
        )
    return out


# --------------------------------------------------------------------------
# F./G./H. k-fold accuracy
# --------------------------------------------------------------------------
def fold_summary(acc, thresholds):
    acc = np.asarray(acc, dtype=np.float64)
    k = acc.size
    return {
        "fold_accuracies": [float(a) for a in acc],
        "thresholds": [float(t) for t in thresholds],
        "mean": float(np.mean(acc)),
        "std": float(np.std(acc, ddof=0)),
        "se": float(np.std(acc, ddof=1) / np.sqrt(k)) if k > 1 else None,
    }


def _fold_masks(folds):
    folds = np.asarray(folds)
    for k in np.unique(folds):
        test = folds == k
        yield test


def kfold_strict(scores, labels, folds):
    s, y = _as_arrays(scores, labels)
    accs, thrs = [], []
    for test in _fold_masks(folds):
        tr = ~test
        g = np.sort(s[tr & y])
        i_ = np.sort(s[tr & ~y])
        u = np.unique(s[tr])
        cand = np.concatenate(([u[0] - 1.0], (u[:-1] + u[1:]) / 2.0, [u[-1] + 1.0]))
        correct = _count_ge(g, cand) + _count_lt(i_, cand)
        t = cand[int(np.argmax(correct))]  # first max == smallest threshold
        tg = s[test & y]
        ti = s[test & ~y]
        n_test = tg.size + ti.size
        accs.append((np.count_nonzero(tg >= t) + np.count_nonzero(ti < t)) / n_test)
        thrs.append(t)
    return fold_summary(accs, thrs)


def kfold_insightface(distances, labels, folds):
    d, y = _as_arrays(distances, labels)
    T = INSIGHTFACE_THRESHOLDS
    accs, thrs = [], []
    for test in _fold_masks(folds):
        tr = ~test
        g = np.sort(d[tr & y])
        i_ = np.sort(d[tr & ~y])
        # same iff d < t:  TP = #gen d<t, TN = #imp d>=t
        correct = _count_lt(g, T) + _count_ge(i_, T)
        t = T[int(np.argmax(correct))]
        tg = d[test & y]
        ti = d[test & ~y]
        n_test = tg.size + ti.size
        accs.append((np.count_nonzero(tg < t) + np.count_nonzero(ti >= t)) / n_test)
        thrs.append(t)
    return fold_summary(accs, thrs)


def kfold_facexzoo(scores, labels, folds):
    s, y = _as_arrays(scores, labels)
    j = np.arange(1, FACEXZOO_STEPS + 1, dtype=np.float64)
    accs, thrs = [], []
    for test in _fold_masks(folds):
        tr = ~test
        st = s[tr]
        lo, hi = np.min(st), np.max(st)
        step = (hi - lo) / FACEXZOO_STEPS
        T = lo + step * j
        g = np.sort(s[tr & y])
        i_ = np.sort(s[tr & ~y])
        tpr = _count_gt(g, T) / g.size
        fpr = _count_gt(i_, T) / i_.size
        t = T[int(np.argmax(tpr - fpr))]
        tg = s[test & y]
        ti = s[test & ~y]
        n_test = tg.size + ti.size
        accs.append((np.count_nonzero(tg > t) + np.count_nonzero(ti < t)) / n_test)
        thrs.append(t)
    return fold_summary(accs, thrs)


# --------------------------------------------------------------------------
# everything
# --------------------------------------------------------------------------
def evaluate_all(scores, distances, labels, folds, far_targets):
    """Run every metric; returns a JSON-ready dict (result keys only)."""
    s, y = _as_arrays(scores, labels)
    gen, imp = split_classes(s, y)
    fpr, tpr, thr = exact_roc(s, y, _gen=gen, _imp=imp)
    return {
        "n_genuine": int(gen.size),
        "n_impostor": int(imp.size),
        "roc": roc_to_json(fpr, tpr, thr),
        "auc": auc_trapezoid(fpr, tpr),
        "eer": eer(s, y, _gen=gen, _imp=imp),
        "tar_at_far_strict": tar_at_far_strict(far_targets, gen, imp),
        "tar_at_far_insightface": tar_at_far_nearest(far_targets, s, y, imp.size),
        "kfold_strict": kfold_strict(s, y, folds),
        "kfold_insightface": kfold_insightface(distances, y, folds),
        "kfold_facexzoo": kfold_facexzoo(s, y, folds),
    }

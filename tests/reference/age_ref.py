"""Independent NumPy reference for aifr-eval's age-aware metrics.

Written from the project's metric definitions (see tests/reference/README.md,
section "Age metrics"), not ported from any other code base.  Every public
function is pure: it takes array-likes and returns plain Python values
(float / int / bool / None / list / dict) that ``json`` can dump directly.

A. ``age_gap_breakdown``  – pair verification broken down by the age gap
   ``|age_a - age_b|`` at one global strict-rule threshold.
B. ``fgnet_loo``           – FG-NET-style leave-one-image-out rank-1
   identification on a precomputed similarity matrix, broken down by probe
   age group and by the gap to the nearest-in-age same-subject image.

Bins / groups are lists of ``[lo, hi]`` inclusive integer ranges; ``hi`` is
``None`` for an open-ended range.  Every bin is evaluated independently (a
value is counted in every bin that contains it; the default bins do not
overlap).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEFAULT_GAP_BINS",
    "DEFAULT_AGE_GROUPS",
    "DEFAULT_FAR",
    "strict_threshold",
    "in_bin",
    "age_gap_breakdown",
    "fgnet_loo",
]

DEFAULT_GAP_BINS = [[0, 4], [5, 9], [10, 19], [20, 29], [30, None]]
DEFAULT_AGE_GROUPS = [[0, 12], [13, 19], [20, 39], [40, None]]
DEFAULT_FAR = 1e-3


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _ratio(num, den):
    """Python float ``num / den`` (IEEE division of two exact ints), None if den == 0."""
    return None if den == 0 else float(int(num) / int(den))


def in_bin(values, lo, hi):
    """Boolean mask ``lo <= values <= hi`` (``hi is None``: no upper bound)."""
    v = np.asarray(values, dtype=np.int64)
    m = v >= int(lo)
    if hi is not None:
        m &= v <= int(hi)
    return m


def _bins_json(bins):
    return [[int(lo), None if hi is None else int(hi)] for lo, hi in bins]


# --------------------------------------------------------------------------
# A. age-gap breakdown of pair verification
# --------------------------------------------------------------------------
def strict_threshold(imp_scores, far):
    """Strict (bob-style) rule on the impostor scores.

    t = lowest observed impostor score v with ``#(imp >= v) / N_imp <= far``
    (float division); if even the highest impostor violates it,
    ``t = nextafter(max_imp, +inf)``.
    """
    imp = np.sort(np.asarray(imp_scores, dtype=np.float64), kind="stable")
    if imp.size == 0:
        raise ValueError("no impostor scores")
    v = np.unique(imp)  # ascending, distinct
    n_ge = imp.size - np.searchsorted(imp, v, side="left")
    ok = (n_ge / imp.size) <= float(far)  # non-decreasing in v
    if ok.any():
        return float(v[int(np.argmax(ok))])
    return float(np.nextafter(v[-1], np.inf))


def age_gap_breakdown(scores, labels, age_a, age_b, bins=None, far=DEFAULT_FAR):
    """Definition A.  Returns ``{"threshold", "bins": [...], "unbinned"}``."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    a = np.asarray(age_a, dtype=np.int64)
    b = np.asarray(age_b, dtype=np.int64)
    if not (s.ndim == 1 and s.shape == y.shape == a.shape == b.shape):
        raise ValueError("scores, labels, age_a, age_b must be 1-D of equal length")
    bins = DEFAULT_GAP_BINS if bins is None else bins
    gap = np.abs(a - b)

    t = strict_threshold(s[~y], far)
    accept = s >= t

    out_bins = []
    any_bin = np.zeros(s.shape, dtype=bool)
    for lo, hi in bins:
        m = in_bin(gap, lo, hi)
        any_bin |= m
        g = m & y
        i = m & ~y
        n_g, n_i = int(g.sum()), int(i.sum())
        ta = int((accept & g).sum())  # genuine accepted
        fa = int((accept & i).sum())  # impostor accepted
        tr = int((~accept & i).sum())  # impostor rejected
        out_bins.append(
            {
                "lo": int(lo),
                "hi": None if hi is None else int(hi),
                "n_genuine": n_g,
                "n_impostor": n_i,
                "tar": _ratio(ta, n_g),
                "far": _ratio(fa, n_i),
                "accuracy": _ratio(ta + tr, n_g + n_i),
                "mean_genuine_score": float(np.mean(s[g])) if n_g else None,
            }
        )
    return {"threshold": t, "bins": out_bins, "unbinned": int((~any_bin).sum())}


# --------------------------------------------------------------------------
# B. FG-NET leave-one-image-out identification
# --------------------------------------------------------------------------
def _group_rows(values, hit, evaluated, groups):
    rows = []
    for lo, hi in groups:
        m = evaluated & in_bin(values, lo, hi)
        p, h = int(m.sum()), int((m & hit).sum())
        rows.append(
            {"lo": int(lo), "hi": None if hi is None else int(hi),
             "probes": p, "hits": h, "rank1": _ratio(h, p)}
        )
    return rows


def fgnet_loo(similarity, subject, age, age_groups=None, gap_bins=None):
    """Definition B.

    For probe i the gallery is every j != i (the diagonal is never read).
    g = max S[i, j] over same-subject j != i, m = max S[i, j] over
    other-subject j (-inf when there is none).  Hit iff g > m (a tie is a
    miss).  Probes whose subject has no other image are excluded.
    """
    S = np.asarray(similarity, dtype=np.float64)
    subj = np.asarray(subject, dtype=np.int64)
    ag = np.asarray(age, dtype=np.int64)
    n = subj.size
    if S.shape != (n, n) or ag.shape != (n,):
        raise ValueError("similarity must be n x n, subject/age length n")
    if not np.array_equal(S, S.T):
        raise ValueError("similarity must be exactly symmetric")
    age_groups = DEFAULT_AGE_GROUPS if age_groups is None else age_groups
    gap_bins = DEFAULT_GAP_BINS if gap_bins is None else gap_bins

    same = subj[:, None] == subj[None, :]
    offdiag = ~np.eye(n, dtype=bool)
    mate = same & offdiag
    other = ~same  # never contains the diagonal

    evaluated = mate.any(axis=1)
    g = np.where(mate, S, -np.inf).max(axis=1)
    m = np.where(other, S, -np.inf).max(axis=1)
    hit = evaluated & (g > m)

    agap = np.abs(ag[:, None] - ag[None, :])
    big = np.iinfo(np.int64).max
    nearest = np.where(mate, agap, big).min(axis=1)  # big where excluded

    n_eval = int(evaluated.sum())
    n_hit = int(hit.sum())
    return {
        "probes": n_eval,
        "excluded": int(n - n_eval),
        "hits": n_hit,
        "rank1": _ratio(n_hit, n_eval),
        "by_age_group": _group_rows(ag, hit, evaluated, age_groups),
        "by_gap": _group_rows(np.where(evaluated, nearest, 0), hit, evaluated, gap_bins),
        "hit": [bool(hit[i]) if evaluated[i] else None for i in range(n)],
        "nearest_gap": [int(nearest[i]) if evaluated[i] else None for i in range(n)],
        "best_mate": [float(g[i]) if evaluated[i] else None for i in range(n)],
        "best_impostor": [
            (None if math.isinf(m[i]) else float(m[i])) if evaluated[i] else None
            for i in range(n)
        ],
    }

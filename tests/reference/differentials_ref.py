"""Demographic differentials, written independently from the published definitions.

    FMR_g(t)  = #{impostor pairs of group g with score >= t} / #{impostor pairs of g}
    FNMR_g(t) = #{genuine pairs of group g with score <  t} / #{genuine pairs of g}

A pair belongs to group g when both of its images are in g; pairs whose images are in two
different groups are "cross-group"; pairs with an image in no group are left out.

t is one global threshold per FMR target: the strict (bob.measure) rule on all pairs, i.e.
the lowest observed impostor score whose false-match rate does not exceed the target, or just
above the highest impostor score when even that one exceeds it; a target below 1/N_impostor is
not measurable.

Summary measures over the groups where a rate is defined:
  * max/min ratio (undefined when min is 0 or fewer than two groups), max - min;
  * Fairness Discrepancy Rate (de Freitas Pereira & Marcel, 2021):
        FDR(t) = 1 - (alpha * A(t) + (1 - alpha) * B(t)),
        A = max_{i,j} |FMR_i - FMR_j|, B = max_{i,j} |FNMR_i - FNMR_j|;
  * GARBE (Howard et al., 2022): alpha * Gini(FMR) + (1 - alpha) * Gini(FNMR) with
        Gini(x) = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))   (0 when mean(x) = 0).

Python floats are used for the summary arithmetic, in the order written above, so the Rust
results can be compared with ==.
"""

from __future__ import annotations

import numpy as np


def strict_threshold(impostor_scores, far):
    """(available, threshold, false_matches) of the strict rule on these impostor scores."""
    imp = np.asarray(impostor_scores, dtype=np.float64) + 0.0
    n = imp.size
    if n == 0 or far * n < 1.0:
        return False, None, None
    values = np.unique(imp)[::-1]  # distinct impostor scores, descending
    fp = np.array([(imp >= v).sum() for v in values])
    within = [i for i in range(values.size) if fp[i] / n <= far]
    if not within:
        return True, float(np.nextafter(values[0], np.inf)), 0
    i = within[-1]
    return True, float(values[i]), int(fp[i])


def cell_of(ga, gb):
    if ga is None or gb is None:
        return None
    return ga if ga == gb else "cross"


def rate(hits, n):
    return None if n == 0 else hits / n


def gini(x):
    n = len(x)
    if n < 2:
        return None
    mean = sum(x) / n
    if mean == 0.0:
        return 0.0
    s = 0.0
    for a in x:
        for b in x:
            s += abs(a - b)
    return n / (n - 1.0) * s / (2.0 * n * n * mean)


def spread(rates, names):
    defined = [(i, r) for i, r in enumerate(rates) if r is not None]
    hi = lo = None
    for i, r in defined:
        if hi is None or r > hi[1]:
            hi = (i, r)
        if lo is None or r < lo[1]:
            lo = (i, r)
    two = len(defined) >= 2
    return {
        "groups": len(defined),
        "max": None if hi is None else hi[1],
        "max_group": None if hi is None else names[hi[0]],
        "min": None if lo is None else lo[1],
        "min_group": None if lo is None else names[lo[0]],
        "max_min_ratio": hi[1] / lo[1] if two and lo[1] > 0.0 else None,
        "max_difference": hi[1] - lo[1] if two else None,
        "gini": gini([r for _, r in defined]),
    }


def differentials(scores, genuine, group_a, group_b, names, far_targets, fdr_alpha, garbe_alpha, reference):
    scores = np.asarray(scores, dtype=np.float64)
    genuine = np.asarray(genuine, dtype=bool)
    cells = [cell_of(a, b) for a, b in zip(group_a, group_b)]
    ref = names.index(reference) if reference in names else None
    out = []
    for far in far_targets:
        available, t, _ = strict_threshold(scores[~genuine], far)
        if not available:
            out.append({"far_target": far, "available": False})
            continue
        accepted = scores >= t
        groups = []
        for g, name in enumerate(names):
            in_g = np.array([c == g for c in cells], dtype=bool)
            gen, imp = in_g & genuine, in_g & ~genuine
            n_gen, n_imp = int(gen.sum()), int(imp.sum())
            fnm, fm = int((gen & ~accepted).sum()), int((imp & accepted).sum())
            own_ok, own_t, _ = strict_threshold(scores[imp], far)
            groups.append({
                "group": name,
                "n_genuine": n_gen,
                "false_non_matches": fnm,
                "fnmr": rate(fnm, n_gen),
                "n_impostor": n_imp,
                "false_matches": fm,
                "fmr": rate(fm, n_imp),
                "own_threshold": own_t if own_ok else None,
            })
        for gr in groups:
            for key in ("fmr", "fnmr"):
                r = None if ref is None else groups[ref][key]
                gr[key + "_ratio_to_reference"] = gr[key] / r if gr[key] is not None and r is not None and r > 0.0 else None
        cross = np.array([c == "cross" for c in cells], dtype=bool)
        c_imp, c_gen = cross & ~genuine, cross & genuine
        fmr = spread([g["fmr"] for g in groups], names)
        fnmr = spread([g["fnmr"] for g in groups], names)
        a, b = fmr["max_difference"], fnmr["max_difference"]
        ga, gb = fmr["gini"], fnmr["gini"]
        out.append({
            "far_target": far,
            "available": True,
            "threshold": t,
            "groups": groups,
            "cross_group": {
                "n_impostor": int(c_imp.sum()),
                "false_matches": int((c_imp & accepted).sum()),
                "n_genuine": int(c_gen.sum()),
                "false_non_matches": int((c_gen & ~accepted).sum()),
            },
            "summary": {
                "fmr": fmr,
                "fnmr": fnmr,
                "fdr": None if a is None or b is None else 1.0 - (fdr_alpha * a + (1.0 - fdr_alpha) * b),
                "garbe": None if ga is None or gb is None else garbe_alpha * ga + (1.0 - garbe_alpha) * gb,
            },
        })
    ungrouped = sum(1 for c in cells if c is None)
    return {"ungrouped_pairs": ungrouped, "at": out}

"""Independent NumPy reference for aifr-eval's MegaFace protocol (docs/protocols.md §4).

Written from the definitions, FaceX-Zoo style: one dense probe x distractor score matrix held in
memory, ranks by direct comparison.  Nothing here streams or prunes, which is the point: it is
the slow, obvious implementation the Rust code is checked against.

Definitions implemented:
* features are L2-normalised; score = dot product in float32.
* identification: every ordered pair (a, b) of distinct images of one probe identity is a
  search; rank(a, b) = #{distractors d : s(a, d) > s(a, b)} (a tie goes to the mate);
  CMC(k) = fraction of searches with rank < k.
* cleaning 'insightface': a noisy distractor never outranks anything (score -inf) and is never
  accepted; 'facexzoo': a noisy distractor is the zero vector (score 0).  A noisy probe becomes the
  normalised mean of its identity's clean normalised features (+ jitter, which the fixtures set
  to 0).
* verification: positives = unordered same-identity probe pairs.
  strict (bob.measure): threshold = the lowest impostor score t with #(imp >= t)/N <= far; if
  even the highest impostor breaks the target, t is just above it (no false accept); TAR =
  #(gen >= t)/G.  Negatives: all probe x distractor scores.
  devkit: negatives = distractor scores of the first `devkit_probes` probes; the ranking sorts
  scores descending with positives before negatives among ties; TAR = the largest fraction of
  positives in any prefix containing at most floor(far * N) negatives.
  A target with far * N < 1 is unavailable.
"""

from __future__ import annotations

import math

import numpy as np


def normalise(x):
    x = np.asarray(x, dtype=np.float64)
    n = np.sqrt((x * x).sum(axis=1, keepdims=True))
    return (x / n).astype(np.float32)


def clean_probes(feats, ids, noisy, mode):
    """Replace noisy probes by their identity's clean centre (normalised); jitter 0."""
    feats = feats.copy()
    if mode == "none":
        return feats
    for i in np.nonzero(noisy)[0]:
        same = [j for j in range(len(ids)) if ids[j] == ids[i] and not noisy[j]]
        c = feats[same].astype(np.float64).mean(axis=0)
        feats[i] = (c / np.sqrt((c * c).sum())).astype(np.float32)
    return feats


def distractor_scores(probes, distractors, noisy_d, mode):
    d = distractors.copy()
    if mode == "facexzoo":
        d[noisy_d] = 0.0
    s = (probes @ d.T).astype(np.float32)
    if mode == "insightface":
        s[:, noisy_d] = -np.inf
    return s


def tar_strict(gen, imp_finite, n_imp, far):
    """bob.measure far_threshold + farfrr on finite impostors (the -inf ones never count)."""
    if far * n_imp < 1:
        return dict(available=False)
    imp = np.sort(np.asarray(imp_finite, dtype=np.float64))[::-1]
    best = None
    # candidate thresholds: every distinct impostor value, ascending; lowest satisfying target.
    for t in np.unique(imp):
        fa = int((imp >= t).sum())
        if fa / n_imp <= far:
            best = (float(t), fa)
            break
    if best is None:
        t = float(np.nextafter(imp.max(), np.inf)) if imp.size else -math.inf
        best = (t, 0)
    t, fa = best
    tar = float((np.asarray(gen) >= t).sum() / len(gen))
    return dict(available=True, tar=tar, false_accepts=fa, far=fa / n_imp, threshold=t)


def tar_devkit(gen, imp_finite, n_imp, far):
    """Sort descending, positives first among ties; best prefix with <= floor(far*N) negatives."""
    if far * n_imp < 1:
        return dict(available=False)
    k = int(math.floor(far * n_imp))
    # (score desc, positives first): sort key (-score, label 0 for positive)
    items = [(-float(s), 0) for s in gen] + [(-float(s), 1) for s in imp_finite]
    items.sort()
    best_tp, best_fp, tp, fp = 0, 0, 0, 0
    for _, lab in items:
        if lab == 0:
            tp += 1
        else:
            fp += 1
        if fp <= k and tp > best_tp:
            best_tp, best_fp = tp, fp
    # The reported cut is the one just before the (k+1)-th negative.
    fa = min(k, len(imp_finite)) if len(imp_finite) > k else len(imp_finite)
    return dict(available=True, tar=best_tp / len(gen), false_accepts=fa, far=fa / n_imp)


def in_group(v, lo, hi):
    return v >= lo and (hi is None or v <= hi)


def evaluate(probe_feats, probe_ids, probe_ages, probe_noisy, distractor_sets, mode, far_targets,
             devkit_probes, cmc_ranks, gap_bins, age_groups):
    """distractor_sets: list of (size, features (N x D), noisy flags)."""
    p = normalise(probe_feats)
    p = clean_probes(p, probe_ids, probe_noisy, mode)
    pp = (p @ p.T).astype(np.float32)
    n = len(probe_ids)
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b and probe_ids[a] == probe_ids[b]]
    gen = [float(pp[a, b]) for a in range(n) for b in range(a + 1, n) if probe_ids[a] == probe_ids[b]]
    out = []
    for size, dfeats, dnoisy in distractor_sets:
        d = normalise(dfeats)
        dnoisy = np.asarray(dnoisy, dtype=bool)
        s = distractor_scores(p, d, dnoisy, mode)
        ranks = [int((s[a] > pp[a, b]).sum()) for a, b in pairs]
        r = np.asarray(ranks)
        cmc = [dict(rank=k, rate=float((r < k).sum() / len(r))) for k in cmc_ranks if k <= size + 1]
        n_strict = s.size
        n_devkit = min(devkit_probes, n) * s.shape[1]
        imp_all = s[np.isfinite(s)].astype(np.float64)
        first = s[:devkit_probes]
        imp_first = first[np.isfinite(first)].astype(np.float64)
        tars = []
        for f in far_targets:
            tars.append(dict(rule="strict", far_target=f, **tar_strict(gen, imp_all, n_strict, f)))
        for f in far_targets:
            tars.append(dict(rule="devkit_positives_first", far_target=f, **tar_devkit(gen, imp_first, n_devkit, f)))
        res = dict(distractors=size, searches=len(pairs), rank1=float((r == 0).sum() / len(r)), cmc=cmc,
                   tar_at_far=tars, worst_rank=int(r.max()))
        if probe_ages is not None:
            by_gap = []
            for lo, hi in gap_bins:
                sel = [i for i, (a, b) in enumerate(pairs) if in_group(abs(probe_ages[a] - probe_ages[b]), lo, hi)]
                by_gap.append(dict(lo=lo, hi=hi, probes=len(sel),
                                   rank1=None if not sel else float(sum(ranks[i] == 0 for i in sel) / len(sel))))
            by_age = []
            for lo, hi in age_groups:
                sel = [i for i, (a, b) in enumerate(pairs) if in_group(probe_ages[a], lo, hi)]
                by_age.append(dict(lo=lo, hi=hi, probes=len(sel),
                                   rank1=None if not sel else float(sum(ranks[i] == 0 for i in sel) / len(sel))))
            res["age"] = dict(by_gap=by_gap, by_query_age=by_age)
        out.append(res)
    return dict(genuine_pairs=len(gen), searches=len(pairs), sizes=out)

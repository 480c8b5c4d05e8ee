#!/usr/bin/env python3
"""Independent NumPy/scikit-learn reference for IJB-B/C (docs/protocols.md §2, §3).

    python3 tests/reference/ijb_ref.py make  [--out tests/fixtures/ijb]
    python3 tests/reference/ijb_ref.py bench DIR

`make` writes small synthetic releases in insightface's real layout (meta files, 1:N CSVs,
embeddings as .npy plus keys.txt) and, for each, `expected.json` computed here:

* template pooling written the way insightface's image2template_feature loops over templates
  and medias, in float64, for all eight combinations of (flip, normalise images, detector weight);
* 1:1 scores in float64; TAR@FAR under the strict rule (bob.measure: lowest impostor score whose
  FAR does not exceed the target) and the insightface nearest rule (sklearn roc_curve vertices);
  AUC with sklearn;
* 1:N per gallery: TPIR@FPIR strict (bob) and compat=ijb_evals (its evaluation_1N, transcribed),
  CMC, and the legacy merged-gallery numbers (ijb_1n.py's evaluation, transcribed).

The data has exact ties (templates that copy another template's images under another subject)
and FAR targets below 1/N_impostor.

`bench DIR` times the same pooling, scoring and ROC/TAR in vectorised NumPy/sklearn on arrays the
Rust benchmark wrote (DIR/{image_template,image_media,scores,t1,t2,label}.npy from the parsed
release, DIR/embeddings.npy, DIR/embeddings_flip.npy) and prints one JSON line.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import resource
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

FARS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
FPIRS = [1e-4, 1e-3, 1e-2, 1e-1]
RANKS = [1, 5, 10]
LEGACY_FARS = [0.01, 0.1]


# --------------------------------------------------------------------------------------------
# Pooling (insightface's loops, float64)

def image_features(emb, emb_f, scores, flip, normalize, detector):
    f = emb.astype(np.float64)
    if flip:
        f = f + emb_f.astype(np.float64)
    if normalize:
        f = f / np.sqrt(np.sum(f ** 2, -1, keepdims=True))
    if detector:
        f = f * scores.astype(np.float64)[:, None]
    return f


def image2template(feats, templates, medias):
    unique_templates = np.unique(templates)
    out = np.zeros((len(unique_templates), feats.shape[1]))
    for c, uqt in enumerate(unique_templates):
        (ind_t,) = np.where(templates == uqt)
        face = feats[ind_t]
        face_medias = medias[ind_t]
        media_feats = []
        for u in np.unique(face_medias):
            (ind_m,) = np.where(face_medias == u)
            media_feats.append(np.mean(face[ind_m], 0))
        out[c] = np.sum(np.array(media_feats), 0)
    return out / np.sqrt(np.sum(out ** 2, -1, keepdims=True)), unique_templates


# --------------------------------------------------------------------------------------------
# 1:1 rules

def tar_strict(gen, imp, far):
    n = len(imp)
    if far * n < 1:
        return None
    values = np.unique(imp)[::-1]  # distinct impostor scores, descending
    best_t, best_fa = None, 0
    for v in values:
        fa = int(np.sum(imp >= v))
        if fa / n <= far:
            best_t, best_fa = v, fa
        else:
            break
    if best_t is None:
        best_t = np.nextafter(values[0], np.inf)
    return {"tar": float(np.sum(gen >= best_t) / len(gen)), "far": best_fa / n, "threshold": float(best_t),
            "false_accepts": best_fa}


def tar_nearest(labels, scores, far):
    n_imp = int(np.sum(labels == 0))
    if far * n_imp < 1:
        return None
    fpr, tpr, thr = roc_curve(labels, scores)
    gap = np.abs(fpr - far)
    best = None
    for i in range(len(fpr)):
        if best is None or gap[i] < gap[best] or (gap[i] == gap[best] and tpr[i] > tpr[best]):
            best = i
    return {"tar": float(tpr[best]), "far": float(fpr[best]),
            "threshold": None if not np.isfinite(thr[best]) else float(thr[best]),
            "false_accepts": int(round(fpr[best] * n_imp))}


def one_to_one(t_feats, tindex, p1, p2, label):
    scores = np.array([float(np.dot(t_feats[tindex[a]], t_feats[tindex[b]])) for a, b in zip(p1, p2)])
    gen, imp = scores[label == 1], scores[label == 0]
    return scores, {
        "auc": float(roc_auc_score(label, scores)),
        "strict": [tar_strict(gen, imp, f) for f in FARS],
        "nearest": [tar_nearest(label, scores, f) for f in FARS],
    }


# --------------------------------------------------------------------------------------------
# 1:N

def gallery_features(t_feats, tindex, tids, sids):
    unique, idx = np.unique(tids, return_index=True)
    return t_feats[[tindex[t] for t in unique]], sids[idx]


def evaluation_1n(query_feats, gallery_feats, query_ids, reg_ids):
    """insightface ijb_evals.py evaluation_1N, plus the strict rule and pessimistic ranks."""
    sim = query_feats @ gallery_feats.T
    pos, neg_max, ranks, nongal = [], [], [], []
    for i, qid in enumerate(query_ids):
        if qid in reg_ids:
            g = np.argwhere(reg_ids == qid)[0, 0]
            p = sim[i, g]
            neg = np.delete(sim[i], g)
            pos.append(p)
            neg_max.append(neg.max() if len(neg) else -np.inf)
            ranks.append(1 + int(np.sum(neg >= p)))
        else:
            nongal.append(sim[i].max())
    pos, neg_max, nongal = np.array(pos), np.array(neg_max), np.array(nongal)
    correct = pos > neg_max
    nm_sorted = np.sort(nongal)[::-1]
    n = len(nongal)
    out = {"mated": len(pos), "nonmated": n, "ijb_evals": [], "strict": [],
           "cmc": [int(np.sum(np.array(ranks) <= k)) for k in RANKS]}
    for far in FPIRS:
        th = nm_sorted[max(int(n * far) - 1, 0)]
        out["ijb_evals"].append({"tpir": float(np.logical_and(correct, pos > th).sum() / len(pos)),
                                 "threshold": float(th), "false_alarms": int(np.sum(nongal > th))})
        if far * n < 1:
            out["strict"].append(None)
            continue
        best_t, best_fa = None, 0
        for v in np.unique(nongal)[::-1]:
            fa = int(np.sum(nongal >= v))
            if fa / n <= far:
                best_t, best_fa = v, fa
            else:
                break
        if best_t is None:
            best_t = np.nextafter(nm_sorted[0], np.inf)
        out["strict"].append({"tpir": float(np.logical_and(correct, pos >= best_t).sum() / len(pos)),
                              "threshold": float(best_t), "false_alarms": best_fa})
    return out


def legacy_1n(query_feats, gallery_feats, query_ids, reg_ids):
    """insightface ijb_1n.py evaluation on the merged gallery (ranks pessimistic on ties)."""
    mask = []
    for q in query_ids:
        pos = [i for i, x in enumerate(reg_ids) if q == x]
        assert len(pos) == 1
        mask.append(pos[0])
    sim = query_feats @ gallery_feats.T
    qn = len(query_ids)
    pos_sims = np.array([sim[i, mask[i]] for i in range(qn)])
    ranks = [1 + int(np.sum(np.delete(sim[i], mask[i]) >= pos_sims[i])) for i in range(qn)]
    required = [math.ceil(qn * x) for x in LEGACY_FARS]
    top = sim.copy()
    for i in range(qn):
        top[i, mask[i]] = -2.0
    neg = heapq.nlargest(max(required), top[np.where(top > -2.0)])
    points = []
    for far, k in zip(LEGACY_FARS, required):
        th = neg[k - 1]
        points.append({"k": k, "threshold": float(th), "tpr": float(np.sum(pos_sims > th) / qn)})
    return {"cmc": [int(np.sum(np.array(ranks) <= k)) for k in RANKS], "points": points}


# --------------------------------------------------------------------------------------------
# Fixture data (real layout)

def make_case(root, seed, n_subjects=30, n_probes=160, dim=16, impostors=20):
    rng = np.random.default_rng(seed)
    meta = os.path.join(root, "data", "IJB_release", "IJBC", "meta")
    os.makedirs(meta, exist_ok=True)
    os.makedirs(os.path.join(root, "data", "IJB_release", "IJBC", "loose_crop"), exist_ok=True)
    centers = rng.normal(size=(n_subjects, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    n_t = n_subjects + n_probes
    subject = np.concatenate([np.arange(n_subjects), rng.integers(0, n_subjects, n_probes)])
    tids = 5 + 4 * rng.permutation(n_t)  # IDs not in file order
    templates = []  # per template: list of (media, emb, emb_f, score)
    media_id = 500
    for t in range(n_t):
        q = rng.uniform(0.4, 1.0)
        imgs = []
        for _ in range(rng.integers(1, 4 if t >= n_subjects else 6)):
            media_id += int(rng.integers(1, 4))
            off = rng.normal(size=dim) * 0.35 / q
            for _ in range(rng.integers(1, 4)):
                x = (centers[subject[t]] + off + rng.normal(size=dim) * 0.3 / q) * rng.uniform(5, 20)
                xf = x + rng.normal(size=dim) * 0.2
                s = float(rng.choice([1.0, 0.5, 0.75, 0.25]) if rng.random() < 0.3 else 0.875)
                imgs.append((media_id, x, xf, s))
        templates.append(imgs)
    # Ties: probe templates copying the previous probe's images under another subject, and the
    # last gallery template copying the first one's images (two subjects, identical features).
    for t in range(n_subjects + 1, n_t, 9):
        if subject[t - 1] != subject[t]:
            templates[t] = templates[t - 1]
    templates[n_subjects - 1] = templates[0]
    faces, lmk, emb, embf = [], [], [], []
    order = rng.permutation(n_t)
    k = 0
    for t in order:
        for (m, x, xf, s) in templates[t]:
            k += 1
            name = f"{k}.jpg"
            faces.append(f"{name} {tids[t]} {m}")
            pts = " ".join(f"{v:.3f}" for v in (rng.uniform(30, 90, 10)))
            lmk.append(f"{name} {pts} {s}")
            emb.append(x)
            embf.append(xf)
    emb = np.array(emb, dtype=np.float32)
    embf = np.array(embf, dtype=np.float32)
    with open(os.path.join(meta, "ijbc_face_tid_mid.txt"), "w") as f:
        f.write("\n".join(faces) + "\n")
    # Landmark rows in another order: the adapter joins by name.
    perm = rng.permutation(len(lmk))
    with open(os.path.join(meta, "ijbc_name_5pts_score.txt"), "w") as f:
        f.write("\n".join(lmk[i] for i in perm) + "\n")
    pairs = []
    for p in range(n_subjects, n_t):
        s = subject[p]
        pairs.append((tids[s], tids[p], 1))
        others = [g for g in range(n_subjects) if g != s]
        for g in rng.choice(others, impostors, replace=False):
            pairs.append((tids[g], tids[p], 0))
    with open(os.path.join(meta, "ijbc_template_pair_label.txt"), "w") as f:
        f.write("".join(f"{a} {b} {l}\n" for a, b, l in pairs))
    sid = lambda s: 1000 + 3 * int(s)  # noqa: E731

    def csv(name, ts):
        with open(os.path.join(meta, name), "w") as f:
            f.write("TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA_ID\n")
            for t in ts:
                for (m, *_rest) in templates[t]:
                    f.write(f"{tids[t]},{sid(subject[t])},img/x.jpg,{m}\n")

    half = n_subjects // 2
    csv("ijbc_1N_gallery_G1.csv", range(half))
    csv("ijbc_1N_gallery_G2.csv", range(half, n_subjects))
    csv("ijbc_1N_probe_mixed.csv", range(n_subjects, n_t))
    np.save(os.path.join(root, "embeddings.npy"), emb)
    np.save(os.path.join(root, "embeddings_flip.npy"), embf)
    with open(os.path.join(root, "keys.txt"), "w") as f:
        f.write("\n".join(line.split()[0] for line in faces) + "\n")
    return expected(root)


def read_release(root):
    meta = os.path.join(root, "data", "IJB_release", "IJBC", "meta")
    faces = [l.split() for l in open(os.path.join(meta, "ijbc_face_tid_mid.txt"))]
    lm = {l.split()[0]: float(l.split()[-1]) for l in open(os.path.join(meta, "ijbc_name_5pts_score.txt"))}
    names = [f[0] for f in faces]
    templates = np.array([int(f[1]) for f in faces])
    medias = np.array([int(f[2]) for f in faces])
    scores = np.array([lm[n] for n in names], dtype=np.float32)
    pairs = np.array([[int(x) for x in l.split()] for l in open(os.path.join(meta, "ijbc_template_pair_label.txt"))])

    def csv(name):
        rows = [l.strip().split(",") for l in open(os.path.join(meta, name))][1:]
        return np.array([int(r[0]) for r in rows]), np.array([int(r[1]) for r in rows])

    return names, templates, medias, scores, pairs, [csv(f"ijbc_1N_{n}.csv") for n in ("gallery_G1", "gallery_G2", "probe_mixed")]


def expected(root):
    names, templates, medias, scores, pairs, one_n = read_release(root)
    keys = [l.strip() for l in open(os.path.join(root, "keys.txt"))]
    assert keys == names
    emb = np.load(os.path.join(root, "embeddings.npy"))
    embf = np.load(os.path.join(root, "embeddings_flip.npy"))
    p1, p2, label = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    out = {"counts": {"images": len(names), "templates": int(len(np.unique(templates))), "pairs": len(pairs),
                      "genuine": int(np.sum(label == 1)), "impostor": int(np.sum(label == 0))},
           "far_targets": FARS, "fpir_targets": FPIRS, "cmc_ranks": RANKS, "legacy_fars": LEGACY_FARS,
           "switches": {}}
    for flip in (True, False):
        for norm in (False, True):
            for det in (True, False):
                feats = image_features(emb, embf, scores, flip, norm, det)
                t_feats, uniq = image2template(feats, templates, medias)
                tindex = {int(t): i for i, t in enumerate(uniq)}
                s, res = one_to_one(t_feats, tindex, p1, p2, label)
                key = f"F{int(flip)}N{int(norm)}D{int(det)}"
                out["switches"][key] = {"auc": res["auc"], "strict": res["strict"], "nearest": res["nearest"]}
                if key == "F1N0D1":
                    out["template_ids"] = [int(t) for t in uniq]
                    out["template_features"] = t_feats.tolist()
                    out["distinct_scores"] = int(len(np.unique(s)))
                    # aifr-eval scores in float32: values closer than an f32 ulp (not ties) merge there.
                    out["distinct_scores_f32"] = int(len(np.unique(s.astype(np.float32))))
                    out["tied_genuine_impostor"] = int(len(np.intersect1d(s[label == 1], s[label == 0])))
                    (g1t, g1s), (g2t, g2s), (pt, ps) = one_n
                    g1f, g1i = gallery_features(t_feats, tindex, g1t, g1s)
                    g2f, g2i = gallery_features(t_feats, tindex, g2t, g2s)
                    pf, pi = gallery_features(t_feats, tindex, pt, ps)
                    r1, r2 = evaluation_1n(pf, g1f, pi, g1i), evaluation_1n(pf, g2f, pi, g2i)
                    out["one_n"] = {"galleries": [r1, r2], "probes": len(pi),
                                    "combined_cmc": [a + b for a, b in zip(r1["cmc"], r2["cmc"])],
                                    "legacy": legacy_1n(pf, np.concatenate([g1f, g2f]), pi, np.concatenate([g1i, g2i]))}
    return out


# --------------------------------------------------------------------------------------------
# Benchmark: vectorised NumPy on the arrays the Rust bench wrote

def bench(d):
    it, im, sc, t1, t2, label = (np.load(os.path.join(d, f"{k}.npy"))
                                 for k in ("image_template", "image_media", "scores", "t1", "t2", "label"))
    emb = np.load(os.path.join(d, "embeddings.npy"), mmap_mode="r")
    embf = np.load(os.path.join(d, "embeddings_flip.npy"), mmap_mode="r")
    n_t = int(it.max()) + 1
    t0 = time.perf_counter()
    # Pooling: per-image features in blocks (images sorted by template, then media), media sums
    # with reduceat, media means, template sums with reduceat, L2.
    order = np.lexsort((im, it))
    it_s, im_s = it[order], im[order]
    new_group = np.r_[True, (it_s[1:] != it_s[:-1]) | (im_s[1:] != im_s[:-1])]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    media_sum = np.zeros((len(starts), emb.shape[1]), dtype=np.float64)
    block = 65536
    for b in range(0, len(order), block):
        idx = order[b:b + block]
        f = (emb[idx] + embf[idx]).astype(np.float64) * sc[idx].astype(np.float64)[:, None]
        g = group[b:b + block]
        bounds = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        media_sum[g[bounds]] += np.add.reduceat(f, bounds, axis=0)
    counts = np.diff(np.r_[starts, len(order)])
    media_mean = media_sum / counts[:, None]
    media_t = it_s[starts]
    tb = np.flatnonzero(np.r_[True, media_t[1:] != media_t[:-1]])
    templ = np.add.reduceat(media_mean, tb, axis=0)
    templ = (templ / np.linalg.norm(templ, axis=1, keepdims=True)).astype(np.float32)
    assert templ.shape[0] == n_t
    t_pool = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = np.empty(len(t1), dtype=np.float32)
    step = 1 << 17
    for b in range(0, len(t1), step):
        scores[b:b + step] = np.einsum("ij,ij->i", templ[t1[b:b + step]], templ[t2[b:b + step]])
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    auc, table = tar_table(label, scores)
    t_roc = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"pool_s": t_pool, "score_s": t_score, "roc_s": t_roc, "total_s": t_pool + t_score + t_roc,
           "auc": auc, "tar": table, "peak_rss_mib": peak}
    # The same table on aifr-eval's own f32 scores (not timed): the two implementations' scores
    # can differ in the last bit, which may move the nearest rule's vertex at the extreme tail.
    theirs = os.path.join(d, "aifr_scores.npy")
    if os.path.exists(theirs):
        out["auc_on_aifr_scores"], out["tar_on_aifr_scores"] = tar_table(label, np.load(theirs))
    print(json.dumps(out))


def tar_table(label, scores):
    """AUC and TAR at every FAR under both rules, vectorised (docs/protocols.md §3.2, §3.3)."""
    fpr, tpr, thr = roc_curve(label, scores)
    asc = np.sort(scores[label == 0])
    gen = scores[label == 1]
    n = len(asc)
    table = []
    for far in FARS:
        gap = np.abs(fpr - far)
        # Nearest vertex; among equal distances the larger TPR.
        nearest = int(np.flatnonzero(gap == gap.min())[np.argmax(tpr[gap == gap.min()])])
        strict = None
        k = int(math.floor(far * n))
        if k >= 1:
            t = asc[n - k]  # k-th highest impostor
            above = n - int(np.searchsorted(asc, t, side="left"))  # #(imp >= t)
            if above > k:  # ties: step up to the next higher distinct value
                higher = n - int(np.searchsorted(asc, t, side="right"))
                t = asc[n - higher] if higher > 0 else np.nextafter(asc[-1], np.float32(np.inf))
            strict = float(np.mean(gen >= t))
        table.append({"far": far, "strict": strict, "nearest": float(tpr[nearest])})
    return float(np.trapezoid(tpr, fpr)), table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "ijb"))
    b = sub.add_parser("bench")
    b.add_argument("dir")
    args = ap.parse_args(argv)
    if args.cmd == "bench":
        bench(args.dir)
        return
    for name, seed in (("basic", 11),):
        root = os.path.join(args.out, name)
        exp = make_case(root, seed)
        with open(os.path.join(root, "expected.json"), "w") as f:
            json.dump(exp, f, indent=1)
            f.write("\n")
        print(name, exp["counts"], "ties:", exp["tied_genuine_impostor"], file=sys.stderr)


if __name__ == "__main__":
    main()

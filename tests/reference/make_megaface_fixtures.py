"""Writes tests/fixtures/megaface/*.json: small MegaFace-layout problems and the values
megaface_ref.py computes for them.  Run from the repository root:

    python3 tests/reference/make_megaface_fixtures.py

Cases:
* ties         exactly representable unit vectors (entries 0 or +-0.5): scores are multiples of
               1/4, so mates and distractors tie exactly, in any summation order; an identity
               with one image (no search), identities of very different sizes.
* fgnet        FG-NET-style names (001A02.JPG) with ages: rank-1 by age gap and query age.
* insightface  FaceScrub-style names, noise lists, cleaning 'insightface' (jitter 0).
* facexzoo     the same data, cleaning 'facexzoo'.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import megaface_ref as ref  # noqa: E402

OUT = os.path.join("tests", "fixtures", "megaface")
FAR = [1e-4, 1e-3, 1e-2, 0.05, 0.2]
CMC = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 50, 100, 1000]
GAP_BINS = [[0, 4], [5, 9], [10, 19], [20, 29], [30, None]]
AGE_GROUPS = [[0, 12], [13, 19], [20, 39], [40, None]]
DEVKIT_PROBES = 3
SIZES = [10, 100, 1000]


def f32list(a):
    return [[float(v) for v in row] for row in np.asarray(a, dtype=np.float32)]


def exact_vectors(rng, n, dim=8):
    out = np.zeros((n, dim), dtype=np.float32)
    for i in range(n):
        idx = rng.choice(dim, 4, replace=False)
        out[i, idx] = rng.choice([-0.5, 0.5], 4)
    return out


def draw_lists(rng, pool):
    return {str(n): sorted(rng.choice(pool, n, replace=False).tolist()) for n in SIZES}


def write(name, mode, probe_paths, probe_ids, probe_feats, pool_paths, pool_feats, lists, probe_noise=(),
          distractor_noise=(), ages=None):
    noisy_p = np.array([os.path.basename(p) in set(probe_noise) or p in set(probe_noise) for p in probe_paths])
    sets = []
    for n in SIZES:
        idx = lists[str(n)]
        # The devkit list order is the pool order of the drawn indices (sorted); the protocol does
        # not depend on it.
        noisy_d = np.array([pool_paths[i] in set(distractor_noise) for i in idx], dtype=bool)
        sets.append((n, pool_feats[idx], noisy_d if mode != "none" else np.zeros(len(idx), dtype=bool)))
    expected = ref.evaluate(probe_feats, probe_ids, ages, noisy_p if mode != "none" else np.zeros(len(probe_ids), bool),
                            sets, mode, FAR, DEVKIT_PROBES, CMC, GAP_BINS, AGE_GROUPS)
    doc = dict(
        name=name,
        cleaning=mode,
        protocol=dict(far_targets=FAR, devkit_probes=DEVKIT_PROBES, cmc_ranks=CMC, gap_bins=GAP_BINS,
                      age_groups=AGE_GROUPS),
        probes=dict(paths=probe_paths, ids=probe_ids, features=f32list(probe_feats)),
        pool=dict(paths=pool_paths, features=f32list(pool_feats)),
        lists=lists,
        noise=dict(probes=list(probe_noise), distractors=list(distractor_noise)),
        expected=expected,
    )
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")


def case_ties():
    rng = np.random.default_rng(11)
    sizes = [2, 3, 1, 5, 9, 2]
    vocab = exact_vectors(rng, 24)
    probe_paths, probe_ids, feats = [], [], []
    for k, m in enumerate(sizes):
        base = rng.integers(0, 24)
        for j in range(m):
            probe_paths.append(f"person{k}/img{j}.jpg")
            probe_ids.append(f"person{k}")
            # Mostly the identity's vector, sometimes another: mates both tie and lose.
            feats.append(vocab[base] if rng.random() < 0.6 else vocab[rng.integers(0, 24)])
    pool = [f"{rng.integers(100, 999)}/{i}_0.jpg" for i in range(1200)]
    pool_feats = vocab[rng.integers(0, 24, len(pool))]
    write("ties", "none", probe_paths, probe_ids, np.array(feats), pool, pool_feats, draw_lists(rng, len(pool)))


def cohort(rng, n_ids, dim, names):
    """Identity centres plus per-image noise growing with the age difference."""
    probe_paths, probe_ids, feats, ages = [], [], [], []
    sizes = [2, 3, 4, 6, 8, 12, 18, 25][:n_ids]
    for k, m in enumerate(sizes):
        c = rng.normal(size=dim)
        for j in range(m):
            age = int(rng.integers(0, 70))
            path = names(k, j, age)
            probe_paths.append(path)
            probe_ids.append(k + 1)
            ages.append(age)
            feats.append(c + rng.normal(scale=0.6 + age / 60.0, size=dim))
    return probe_paths, probe_ids, np.array(feats, dtype=np.float32), ages


def case_fgnet():
    rng = np.random.default_rng(12)
    used = set()

    def name(k, j, age):
        base = f"{k + 1:03d}A{age:02d}"
        n = base + ".JPG"
        letter = iter("abcdefghijklmnop")
        while n in used:
            n = base + next(letter) + ".JPG"
        used.add(n)
        return "FGNET/images/" + n

    paths, ids, feats, _ = cohort(rng, 8, 16, name)
    ages = [int(os.path.basename(p)[4:6]) for p in paths]
    pool = [f"{rng.integers(100, 999)}/{i}_1.jpg" for i in range(1500)]
    pool_feats = rng.normal(size=(len(pool), 16)).astype(np.float32)
    write("fgnet", "none", paths, ids, feats, pool, pool_feats, draw_lists(rng, len(pool)), ages=ages)


def case_clean(mode):
    rng = np.random.default_rng(13)
    names = ["Ann_Lee", "Bo_Chen", "Cy_Diaz", "Di_Eze", "Ed_Fox", "Flo_Gu"]

    def name(k, j, age):
        return f"{names[k]}/{names[k]}_{100 + j}.png"

    paths, ids, feats, _ = cohort(rng, 6, 16, name)
    ids = [names[i - 1] for i in ids]
    pool = [f"{rng.integers(100, 999)}/{i}_2.jpg" for i in range(1500)]
    pool_feats = rng.normal(size=(len(pool), 16)).astype(np.float32)
    # Some distractors are near-copies of probes: cleaning them changes ranks.
    for i in range(0, 60, 3):
        pool_feats[i] = feats[i % len(feats)] + rng.normal(scale=0.01, size=16)
    lists = draw_lists(rng, len(pool))
    probe_noise = [os.path.basename(paths[i]) for i in (1, 5, 9, 20)]
    distractor_noise = [pool[i] for i in range(0, 60, 3)] + [pool[i] for i in range(700, 720)]
    write(mode, mode, paths, ids, feats, pool, pool_feats, lists, probe_noise, distractor_noise)


if __name__ == "__main__":
    case_ties()
    case_fgnet()
    case_clean("insightface")
    case_clean("facexzoo")
    print("wrote", sorted(os.listdir(OUT)))

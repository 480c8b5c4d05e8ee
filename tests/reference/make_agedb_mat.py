#!/usr/bin/env python3
"""AgeDB protocol .mat fixtures written by SciPy, with expected values from NumPy.

    pip install numpy scipy
    python3 tests/reference/make_agedb_mat.py [--out DIR]

Writes tests/fixtures/agedb/ (deterministic, byte-identical on rerun):

* data/AgeDB/04_FINAL_protocol_30_years.mat  the official structure (see below), uncompressed
* data/AgeDB/01_FINAL_protocol_5_years.mat   the same protocol, zlib-compressed (MATLAB -v7 style)
* no_splits.mat                              a v5 file without the `splits` variable
* bad_label.mat                              label 0 for pair 3 of split 2
* embeddings.npy (float32), keys.txt         one row per image, keys `<name>.jpg`
* expected.json                              the pairs as written (keys, same, fold, ages) and the
                                             metrics computed here with verification_ref/age_ref

The structure is the one the public readers of the official files index (insightface's
agedb2pack.py and a public pairs.txt converter; see src/dataset/agedb.rs): `splits` a 10x1
cell array; each cell a 1x1 struct whose first field is a 2xN cell array of images (one pair
per column) and whose second field a 1xN double array of labels (1 same, -1 different); each
image a 1x1 struct of its file name without extension (char) and its age (double). The field
names of the official files are unknown: deliberately different ones are used here, and the
script asserts that both public indexing recipes work on the file SciPy wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import scipy.io as sio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import age_ref  # noqa: E402
import verification_ref as vref  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "agedb")
SPLITS, SAME, DIFF, DIM = 10, 5, 5, 16
FAR = 0.1  # operating FAR of the age-gap layer in the test (50 impostor pairs)
NAMES = ["MariaCallas", "ElvisPresley", "SophiaLoren", "Jean_Gabin", "AudreyHepburn", "CaryGrant"]


def build(rng):
    """Identities with images at several ages; pairs per split (identity-disjoint splits)."""
    images = []  # (name, identity, age)
    per_split = []
    next_id = 0
    for s in range(SPLITS):
        ids = []
        for k in range(3):
            ident = f"{NAMES[(3 * s + k) % len(NAMES)]}{s}x{k}"
            ages = sorted(int(a) for a in rng.choice(np.arange(1, 90), size=4, replace=False))
            mine = []
            for a in ages:
                gender = "f" if (s + k) % 2 else "m"
                images.append((f"{next_id}_{ident}_{a}_{gender}", ident, a))
                mine.append(len(images) - 1)
                next_id += 1
            ids.append(mine)
        pairs = []
        for _ in range(SAME):
            m = ids[rng.integers(3)]
            i, j = rng.choice(len(m), size=2, replace=False)
            pairs.append((m[i], m[j], True))
        for _ in range(DIFF):
            x, y = rng.choice(3, size=2, replace=False)
            pairs.append((ids[x][rng.integers(4)], ids[y][rng.integers(4)], False))
        per_split.append(pairs)
    return images, per_split


def image_struct(name, age):
    st = np.empty((1, 1), dtype=[("img_name", "O"), ("img_age", "O")])
    st[0, 0]["img_name"] = name
    st[0, 0]["img_age"] = np.array([[float(age)]])
    return st


def splits_value(images, per_split, labels_override=None):
    splits = np.empty((SPLITS, 1), dtype=object)
    for s, pairs in enumerate(per_split):
        cells = np.empty((2, len(pairs)), dtype=object)
        for c, (a, b, _) in enumerate(pairs):
            cells[0, c] = image_struct(images[a][0], images[a][2])
            cells[1, c] = image_struct(images[b][0], images[b][2])
        labels = np.array([[1.0 if same else -1.0 for _, _, same in pairs]])
        if labels_override and s in labels_override:
            for c, v in labels_override[s].items():
                labels[0, c] = v
        st = np.empty((1, 1), dtype=[("pair_cells", "O"), ("same_flag", "O")])
        st[0, 0]["pair_cells"] = cells
        st[0, 0]["same_flag"] = labels
        splits[s, 0] = st
    return splits


def check_public_recipes(path, images, per_split):
    """Both public readers' indexing must recover names, ages and labels."""
    mat = sio.loadmat(path)
    data = mat["splits"]
    assert data.shape == (SPLITS, 1)
    for i in range(SPLITS):
        split = data[i][0][0][0][0]  # insightface agedb2pack.py
        assert split.shape == (2, SAME + DIFF)
        fold = data[i][0][0][0]  # pairs.txt converter
        for c, (a, b, same) in enumerate(per_split[i]):
            for r, idx in enumerate((a, b)):
                item = split[r][c][0][0]
                # `int(item[1])` in the original; NumPy 2 wants the (1, 1) array unwrapped.
                assert str(item[0][0]) == images[idx][0] and int(item[1][0][0]) == images[idx][2]
                assert fold[0][r, c][0][0][0][0] == images[idx][0]
            assert fold[1][0][c] == (1 if same else -1)


def write_json(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=1, sort_keys=False) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    out = ap.parse_args().out
    rng = np.random.default_rng(30)
    images, per_split = build(rng)
    root = os.path.join(out, "data", "AgeDB")
    os.makedirs(root, exist_ok=True)
    plain = os.path.join(root, "04_FINAL_protocol_30_years.mat")
    packed = os.path.join(root, "01_FINAL_protocol_5_years.mat")
    sio.savemat(plain, {"splits": splits_value(images, per_split)})
    sio.savemat(packed, {"splits": splits_value(images, per_split)}, do_compression=True)
    sio.savemat(os.path.join(out, "no_splits.mat"), {"pairs": np.ones((2, 3)), "names": "x"})
    sio.savemat(
        os.path.join(out, "bad_label.mat"),
        {"splits": splits_value(images, per_split, {1: {2: 0.0}})},
        do_compression=True,
    )
    for p in (plain, packed):
        check_public_recipes(p, images, per_split)
        # savemat stamps a creation date into the header text: blank it so reruns are identical.
        with open(p, "r+b") as f:
            head = bytearray(f.read(116))
            head[:] = b"MATLAB 5.0 MAT-file Platform: posix, Created by tests/reference/make_agedb_mat.py".ljust(116)
            f.seek(0)
            f.write(head)
    for name in ("no_splits.mat", "bad_label.mat"):
        with open(os.path.join(out, name), "r+b") as f:
            f.write(b"MATLAB 5.0 MAT-file Platform: posix, fixture".ljust(116))

    # Embeddings: identity centre + noise, in the order images were named.
    centres = {}
    emb = np.empty((len(images), DIM), dtype=np.float32)
    for i, (_, ident, age) in enumerate(images):
        if ident not in centres:
            centres[ident] = rng.standard_normal(DIM)
        emb[i] = (centres[ident] + 0.9 * rng.standard_normal(DIM) + 0.01 * age).astype(np.float32)
    np.save(os.path.join(out, "embeddings.npy"), emb)
    with open(os.path.join(out, "keys.txt"), "w") as f:
        f.write("".join(f"{n}.jpg\n" for n, _, _ in images))

    # Expected values, computed here from the pairs as built (not from the file).
    unit = emb.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    rows = [(a, b, same, s) for s, pairs in enumerate(per_split) for a, b, same in pairs]
    scores = np.array([float(unit[a] @ unit[b]) for a, b, _, _ in rows])
    labels = np.array([same for _, _, same, _ in rows])
    folds = np.array([s for _, _, _, s in rows])
    age_a = np.array([images[a][2] for a, _, _, _ in rows])
    age_b = np.array([images[b][2] for _, b, _, _ in rows])
    fpr, tpr, _ = vref.exact_roc(scores, labels)
    expected = {
        "pairs": [
            {"a": images[a][0] + ".jpg", "b": images[b][0] + ".jpg", "same": bool(same), "fold": int(s),
             "age_a": int(images[a][2]), "age_b": int(images[b][2])}
            for a, b, same, s in rows
        ],
        "distinct_images": len({images[a][0] for a, _, _, _ in rows} | {images[b][0] for _, b, _, _ in rows}),
        "identities": len({images[a][1] for a, _, _, _ in rows} | {images[b][1] for _, b, _, _ in rows}),
        "operating_far": FAR,
        "kfold_strict": vref.kfold_strict(scores, labels, folds),
        "auc": vref.auc_trapezoid(fpr, tpr),
        "age_gap": age_ref.age_gap_breakdown(scores, labels, age_a, age_b, far=FAR),
    }
    write_json(os.path.join(out, "expected.json"), expected)
    print(f"wrote {out}: {len(rows)} pairs, {expected['distinct_images']} images")


if __name__ == "__main__":
    main()

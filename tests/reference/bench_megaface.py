"""NumPy reference for `cargo bench --bench megaface`: the MegaFace definitions implemented the
FaceX-Zoo way (one dense probe x distractor float32 score matrix in RAM), on the same stores the
Rust run reads.  Prints one JSON line with its timings, its peak RSS and rank-1 / CMC@10 / strict
TAR@FAR=1e-6 so the bench can check both sides agree.

usage: bench_megaface.py PROBES.aifrstore DISTRACTORS.aifrstore PROBE_LIST.json DISTRACTOR_LIST.json
"""

import json
import resource
import sys
import time

import numpy as np

HEADER = 4096


def store(path):
    """Rows of an aifr-eval store (f32, first view) as a memory map, and its keys."""
    with open(path, "rb") as f:
        head = f.read(HEADER)
    assert head[:8] == b"AIFREMB\0", path
    # Header layout (little-endian, see src/store/format.rs): magic, version u32, dtype u32,
    # dim u32, views u32, count u64, data_offset u64, keys_offset u64, keys_len u64, ...
    dim = int.from_bytes(head[16:20], "little")
    count = int.from_bytes(head[24:32], "little")
    keys_offset = int.from_bytes(head[40:48], "little")
    keys_len = int.from_bytes(head[48:56], "little")
    rows = np.memmap(path, dtype=np.float32, mode="r", offset=HEADER, shape=(count, dim))
    with open(path, "rb") as f:
        f.seek(keys_offset)
        keys = f.read(keys_len).decode().split("\n")[:-1]
    return rows, keys


def main():
    probes_store, dist_store, probe_list, dist_list = sys.argv[1:5]
    t0 = time.perf_counter()
    prow, pkeys = store(probes_store)
    drow, dkeys = store(dist_store)
    plist = json.load(open(probe_list))
    dlist = json.load(open(dist_list))["path"]
    pidx = {k: i for i, k in enumerate(pkeys)}
    didx = {k: i for i, k in enumerate(dkeys)}
    p = np.asarray(prow[[pidx[k] for k in plist["path"]]], dtype=np.float64)
    p = (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)
    sel = np.array([didx[k] for k in dlist])
    d = np.asarray(drow[np.sort(sel)], dtype=np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    t_load = time.perf_counter() - t0

    t0 = time.perf_counter()
    s = p @ d.T  # P x N float32, the whole matrix in RAM
    t_gemm = time.perf_counter() - t0

    t0 = time.perf_counter()
    ids = plist["id"]
    pp = p @ p.T
    ranks = []
    for a in range(len(ids)):
        mates = [b for b in range(len(ids)) if b != a and ids[b] == ids[a]]
        if not mates:
            continue
        m = pp[a, mates]
        ranks.extend((s[a][None, :] > m[:, None]).sum(axis=1).tolist())
    r = np.asarray(ranks)
    t_rank = time.perf_counter() - t0

    t0 = time.perf_counter()
    gen = np.array([pp[a, b] for a in range(len(ids)) for b in range(a + 1, len(ids)) if ids[a] == ids[b]],
                   dtype=np.float64)
    n_imp = s.size
    k = int(np.floor(1e-6 * n_imp))
    flat = s.ravel()
    top = np.partition(flat, flat.size - (k + 1))[flat.size - (k + 1):].astype(np.float64)
    top = np.sort(top)[::-1]
    # strict rule: lowest impostor value t with #(imp >= t) <= k
    t = None
    for v in np.unique(top)[::-1]:
        if (top >= v).sum() <= k:
            t = v
        else:
            break
    if t is None:
        t = np.nextafter(top[0], np.inf)
    tar = float((gen >= t).sum() / len(gen))
    t_tar = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(dict(load=t_load, gemm=t_gemm, ranks=t_rank, tar=t_tar,
                          total=t_gemm + t_rank + t_tar, rss_mb=rss, searches=len(ranks),
                          rank1=float((r == 0).mean()), cmc10=float((r < 10).mean()), tar_1e6=tar)))


if __name__ == "__main__":
    main()

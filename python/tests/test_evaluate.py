"""`aifr_eval.evaluate` against the CLI: for every benchmark kind of the demo, the results from
arrays are the CLI's results.json byte for byte; bad input raises the right exception."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import aifr_eval
from conftest import read_store, run_cli


def text(p: Path) -> str:
    return p.read_text()


def e(demo, name):
    return demo / "data" / "embeddings" / name


def test_lfw_from_arrays_equals_cli(demo):
    emb = np.load(e(demo, "embeddings.npy"))
    r = aifr_eval.evaluate("lfw", emb, keys=e(demo, "keys.txt"), flip_embeddings=np.load(e(demo, "embeddings_flip.npy")),
                           data_dir=demo / "data", ages=e(demo, "ages.txt"))
    assert r.to_json() == text(demo / "results.json")
    assert r.to_dict() == json.loads(text(demo / "results.json"))
    d = r.to_dict()
    assert r.kind == "pair_verification"
    assert r.accuracy == d["metrics"]["accuracy"]["mean"]
    assert r.auc == d["metrics"]["roc"]["auc"]
    strict = [t for t in d["metrics"]["tar_at_far"] if t["rule"] == "strict"]
    assert r.tar_at_far(strict[0]["far_target"]) == strict[0]["tar"]
    with pytest.raises(KeyError, match="no TAR at FAR"):
        r.tar_at_far(0.123)


def test_keys_as_list_and_every_mode(demo):
    emb = np.load(e(demo, "embeddings.npy"))
    keys = e(demo, "keys.txt").read_text().splitlines()
    for mode in ("strict", "insightface", "facexzoo"):
        a = aifr_eval.evaluate("lfw", emb, keys=keys, data_dir=demo / "data", mode=mode, flip="none")
        assert a.to_dict()["protocol"]["mode"] in (mode, f"compat={mode}")
        # The CLI on the .npy file: the same bytes.
        out = demo / f"cli-lfw-{mode}"
        run_cli("--data-dir", demo / "data", "--cache-dir", demo / "cache-py", "run", "lfw", "--embeddings",
                e(demo, "embeddings.npy"), "--keys", e(demo, "keys.txt"), "--mode", mode, "--flip", "none",
                "--out", out, "-q")
        assert a.to_json() == text(out / "results.json"), mode


def test_bin_pack_rows_in_pack_order_need_no_keys(demo):
    r = aifr_eval.evaluate("agedb30", np.load(e(demo, "bin.npy")), flip_embeddings=np.load(e(demo, "bin_flip.npy")),
                           data_dir=demo / "data", ages=e(demo, "bin_ages.txt"))
    assert r.to_json() == text(demo / "agedb30" / "results.json")


@pytest.mark.parametrize("bench,stem", [("agedb_30", "agedb"), ("cacd_vs", "cacd_vs")])
def test_agedb_and_cacd(demo, bench, stem):
    r = aifr_eval.evaluate(bench, np.load(e(demo, f"{stem}.npy")), keys=e(demo, f"{stem}_keys.txt"),
                           flip_embeddings=np.load(e(demo, f"{stem}_flip.npy")), data_dir=demo / "data")
    assert r.to_json() == text(demo / bench / "results.json")


def test_fgnet(demo):
    r = aifr_eval.evaluate("fgnet", np.load(e(demo, "fgnet.npy")), keys=e(demo, "fgnet_keys.txt"),
                           flip_embeddings=np.load(e(demo, "fgnet_flip.npy")), data_dir=demo / "data")
    assert r.to_json() == text(demo / "fgnet" / "results.json")
    d = r.to_dict()
    assert r.rank1 == d["metrics"]["identification"]["rank1"]
    assert r.auc == d["metrics"]["verification"]["auc"] and r.accuracy is None
    assert set(r.headline()) >= {"rank1", "auc"}


def test_ijbc_from_store_rows(demo):
    rows, flip, keys = read_store(e(demo, "ijbc.aifrstore"))
    r = aifr_eval.evaluate("ijbc", rows, keys=keys, flip_embeddings=flip, data_dir=demo / "data")
    assert r.to_json() == text(demo / "ijbc" / "results.json")
    d = r.to_dict()
    strict = [t for t in d["metrics"]["tar_at_far"] if t["rule"] == "strict"]
    assert r.tar_at_far(strict[-1]["far_target"]) == strict[-1]["tar"]
    assert r.rank1 == d["metrics"]["identification"]["cmc"][0]["rate"]
    assert r.auc == d["metrics"]["roc"]["auc"] and "rank1" in r.headline()


def test_megaface_with_distractor_arrays(demo):
    d_rows, _, d_keys = read_store(demo / "data" / "megaface" / "embeddings" / "distractors.aifrstore")
    r = aifr_eval.evaluate("megaface_fgnet", np.load(e(demo, "fgnet.npy")), keys=e(demo, "fgnet_keys.txt"),
                           data_dir=demo / "data", flip="none", sizes=[10, 100, 1000, 10000],
                           distractors=d_rows, distractor_keys=d_keys)
    assert r.to_json() == text(demo / "megaface_fgnet" / "results.json")
    assert r.rank1 == r.rank1_at(10000) == r.to_dict()["metrics"]["sizes"][-1]["rank1"]
    assert r.rank1_at(10) == r.to_dict()["metrics"]["sizes"][0]["rank1"] and r.auc is None
    assert "rank1" in r.headline() and "megaface" in repr(r)


def test_manifest(demo, tmp_path):
    # The demo cohort's manifest (manifest.csv beside its embeddings), protocol built for the run.
    manifest = demo / "data" / "manifest.csv"
    out = tmp_path / "cli"
    run_cli("--cache-dir", tmp_path / "c", "run", "--manifest", manifest, "--embeddings", e(demo, "embeddings.npy"),
            "--keys", e(demo, "keys.txt"), "--flip-embeddings", e(demo, "embeddings_flip.npy"), "--out", out, "-q")
    r = aifr_eval.evaluate("manifest", np.load(e(demo, "embeddings.npy")), keys=e(demo, "keys.txt"),
                           flip_embeddings=np.load(e(demo, "embeddings_flip.npy")), manifest=manifest)
    assert r.to_json() == text(out / "results.json")
    assert r.rank1 == r.to_dict()["identification"]["gallery_rank1"]["rank1"]


def test_out_writes_the_cli_run_directory(demo, tmp_path):
    emb = np.load(e(demo, "embeddings.npy"))
    out = tmp_path / "run"
    r = aifr_eval.evaluate("lfw", emb, keys=e(demo, "keys.txt"), flip_embeddings=np.load(e(demo, "embeddings_flip.npy")),
                           data_dir=demo / "data", ages=e(demo, "ages.txt"), out=out)
    assert r.path == str(out / "results.json")
    assert text(out / "results.json") == text(demo / "results.json") == r.to_json()
    for name in ("curves.json", "pair_scores.npy", "report.html", "timings.json"):
        assert (out / name).exists(), name
    assert (out / "curves.json").read_bytes() == (demo / "curves.json").read_bytes()
    assert (out / "pair_scores.npy").read_bytes() == (demo / "pair_scores.npy").read_bytes()


def test_no_copy_for_c_contiguous_float32(demo):
    emb = np.load(e(demo, "embeddings.npy"))
    assert emb.dtype == np.float32 and emb.flags.c_contiguous
    r = aifr_eval.evaluate("lfw", emb, keys=e(demo, "keys.txt"), data_dir=demo / "data")
    # The store read the rows at the array's own address.
    assert r._addresses == [emb.__array_interface__["data"][0]]
    # float64 is converted (a copy, rounded as the CLI's import rounds), with the same results.
    r64 = aifr_eval.evaluate("lfw", emb.astype(np.float64), keys=e(demo, "keys.txt"), data_dir=demo / "data")
    assert r64._addresses != r._addresses
    assert r64.to_json() == r.to_json()


def test_fortran_order_float16_and_array_like(demo):
    emb = np.load(e(demo, "embeddings.npy"))
    keys = e(demo, "keys.txt")
    base = aifr_eval.evaluate("lfw", emb, keys=keys, data_dir=demo / "data").to_json()
    assert aifr_eval.evaluate("lfw", np.asfortranarray(emb), keys=keys, data_dir=demo / "data").to_json() == base

    class Tensor:  # what a CPU torch tensor offers NumPy
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    r = aifr_eval.evaluate("lfw", Tensor(emb), keys=keys, data_dir=demo / "data")
    assert r.to_json() == base and r._addresses == [emb.__array_interface__["data"][0]]

    class Capsule:  # only DLPack, as some frameworks' tensors
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    r = aifr_eval.evaluate("lfw", Capsule(emb), keys=keys, data_dir=demo / "data")
    assert r.to_json() == base and r._addresses == [emb.__array_interface__["data"][0]]
    # float16 stays float16 (as the CLI's import keeps it): the CLI on the same .npy agrees.
    h = emb.astype(np.float16)
    np.save(demo / "h.npy", h)
    run_cli("--data-dir", demo / "data", "--cache-dir", demo / "cache-py", "run", "lfw", "--embeddings",
            demo / "h.npy", "--keys", keys, "--out", demo / "cli-h", "-q")
    rh = aifr_eval.evaluate("lfw", h, keys=keys, data_dir=demo / "data")
    assert rh.to_dict()["embeddings"]["dtype"] == "f16"
    assert rh.to_json() == text(demo / "cli-h" / "results.json")


# Bad input: the exception type and the CLI's message.

def test_bad_shapes_and_dtypes(demo):
    keys = e(demo, "keys.txt")
    emb = np.load(e(demo, "embeddings.npy"))
    with pytest.raises(ValueError, match="expected a 2-D array"):
        aifr_eval.evaluate("lfw", emb[0], keys=keys, data_dir=demo / "data")
    with pytest.raises(ValueError, match="dtype 'int32' is not supported"):
        aifr_eval.evaluate("lfw", emb.astype(np.int32), keys=keys, data_dir=demo / "data")
    with pytest.raises(ValueError, match="no rows"):
        aifr_eval.evaluate("lfw", emb[:0], keys=keys, data_dir=demo / "data")
    with pytest.raises(ValueError, match="keys but embeddings has"):
        aifr_eval.evaluate("lfw", emb[:-1], keys=keys, data_dir=demo / "data")
    with pytest.raises(ValueError, match="flip embeddings of embeddings are"):
        aifr_eval.evaluate("lfw", emb, keys=keys, flip_embeddings=emb[:, :-1], data_dir=demo / "data")
    with pytest.raises(ValueError, match="keys are required"):
        aifr_eval.evaluate("lfw", emb, data_dir=demo / "data")
    with pytest.raises(TypeError, match="2-D array"):
        aifr_eval.evaluate("lfw", "not an array", keys=keys, data_dir=demo / "data")


def test_nan_and_zero_rows_name_the_row_and_key(demo):
    keys = e(demo, "keys.txt").read_text().splitlines()
    emb = np.load(e(demo, "embeddings.npy")).copy()
    emb[3, 5] = np.nan
    with pytest.raises(ValueError, match=r"row 3 \(key '" + keys[3] + r"'\) has a non-finite value NaN in column 5"):
        aifr_eval.evaluate("lfw", emb, keys=keys, data_dir=demo / "data")
    emb[3, 5] = 0.5
    emb[7] = 0
    with pytest.raises(ValueError, match="row 7 .* is all zeros"):
        aifr_eval.evaluate("lfw", emb, keys=keys, data_dir=demo / "data")


def test_missing_keys_files_and_benchmarks(demo, tmp_path):
    emb = np.load(e(demo, "embeddings.npy"))
    keys = e(demo, "keys.txt").read_text().splitlines()
    renamed = ["x/" + k for k in keys]
    with pytest.raises(ValueError):
        aifr_eval.evaluate("lfw", emb, keys=renamed, data_dir=demo / "data")
    dup = list(keys)
    dup[1] = dup[0]
    with pytest.raises(ValueError, match="duplicate key"):
        aifr_eval.evaluate("lfw", emb, keys=dup, data_dir=demo / "data")
    with pytest.raises(FileNotFoundError, match="needs"):
        aifr_eval.evaluate("lfw", emb, keys=keys, data_dir=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        aifr_eval.evaluate("lfw", emb, keys=tmp_path / "no-keys.txt", data_dir=demo / "data")
    with pytest.raises(ValueError, match="unknown|not a registered|no benchmark|datasets"):
        aifr_eval.evaluate("no_such_benchmark", emb, keys=keys, data_dir=demo / "data")
    with pytest.raises(ValueError, match="mode must be"):
        aifr_eval.evaluate("lfw", emb, keys=keys, data_dir=demo / "data", mode="fast")
    with pytest.raises(TypeError, match="unexpected keyword"):
        aifr_eval.evaluate("lfw", emb, keys=keys, data_dir=demo / "data", colour="blue")


def test_results_headline_is_loggable(demo):
    r = aifr_eval.evaluate("lfw", np.load(e(demo, "embeddings.npy")), keys=e(demo, "keys.txt"), data_dir=demo / "data")
    h = r.headline()
    assert set(h) >= {"accuracy", "auc"} and all(isinstance(v, float) and math.isfinite(v) for v in h.values())
    assert "pair_verification" in repr(r)


def megaface_call(demo):
    d_rows, _, d_keys = read_store(demo / "data" / "megaface" / "embeddings" / "distractors.aifrstore")
    probes = np.load(e(demo, "fgnet.npy"))
    keys = e(demo, "fgnet_keys.txt").read_text().splitlines()
    return lambda: aifr_eval.evaluate("megaface_fgnet", probes, keys=keys, data_dir=demo / "data", flip="none",
                                      sizes=[10, 100, 1000, 10000], distractors=d_rows, distractor_keys=d_keys)


def test_long_calls_release_the_gil(demo):
    import threading
    import time
    call = megaface_call(demo)
    ticks = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    start = time.perf_counter()
    call()
    took = time.perf_counter() - start
    stop.set()
    t.join()
    # A thread holding the GIL for the whole call would leave the counter near zero.
    assert ticks[0] >= 0.1 * took / 0.001, (ticks[0], took)


def test_ctrl_c_interrupts_a_long_call():
    import _thread
    import threading
    import time
    from aifr_eval import metrics
    # An exact ROC of enough scores to take a while here (sized by measuring).
    rng = np.random.default_rng(0)
    n = 1 << 20
    while True:
        s, g = rng.standard_normal(n), rng.random(n) < 0.5
        start = time.perf_counter()
        metrics.auc(s, g)
        full = time.perf_counter() - start
        if full > 0.8 or n >= 1 << 25:
            break
        n *= 2
    # Ctrl-C a quarter of the way in: KeyboardInterrupt long before the call would have ended.
    timer = threading.Timer(full / 4, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        metrics.auc(s, g)
        time.sleep(5)  # only reached if the interrupt was not raised inside the call
    took = time.perf_counter() - start
    timer.join()
    assert took < 0.75 * full, (n, full, took)

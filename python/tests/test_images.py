"""The training-loop path on an insightface .bin pack of real JPEG faces: decoded batches, a
stand-in network, evaluation, and the callback.

The demo's packs hold placeholder bytes, not images, so the pack here is made from the 20 real
LFW faces of tests/data/small_lfw.bin: its 10 genuine pairs, interleaved with 10 impostor pairs
of faces of different people (PROVENANCE.md says who is who), so each of the 10 folds has one
pair of each class."""

import io
import pickle

import numpy as np
import pytest

import aifr_eval
from conftest import ROOT

# Pairs (1-based, as PROVENANCE.md numbers them) whose first faces show different people:
# people are pairs {1}, {2, 3}, {4}, {5, 6}, {7, 8, 9}, {10}.
IMPOSTORS = [(1, 4), (1, 10), (4, 10), (2, 5), (3, 7), (6, 8), (1, 2), (4, 5), (10, 7), (9, 1)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    with open(ROOT / "tests" / "data" / "small_lfw.bin", "rb") as f:
        bins, issame = pickle.load(f, encoding="bytes")
    assert len(bins) == 20 and all(issame)
    faces, same = [], []
    for i, (p, q) in enumerate(IMPOSTORS):
        faces += [bins[2 * i], bins[2 * i + 1], bins[2 * (p - 1)], bins[2 * (q - 1)]]
        same += [True, False]
    d = tmp_path_factory.mktemp("packs")
    (d / "faces_emore").mkdir()
    with open(d / "faces_emore" / "lfw.bin", "wb") as f:
        pickle.dump(([bytes(b) for b in faces], same), f, protocol=4)
    return d


def standin(images):
    """A NumPy 'network': a fixed random projection of the pixels (deterministic)."""
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    w = np.random.default_rng(0).standard_normal((x.shape[1], 32)).astype(np.float32)
    return x @ w


def test_batches_cover_the_pack_in_order(data):
    bench = aifr_eval.open("lfw_bin", data_dir=data)
    seen = []
    for batch in bench.images(batch_size=50):
        assert batch.images.dtype == np.uint8 and batch.images.shape[1:] == (112, 112, 3)
        assert batch.mirrored.shape == batch.images.shape
        # The mirror is the image flipped left-right, pixel for pixel.
        assert np.array_equal(batch.mirrored, batch.images[:, :, ::-1, :])
        assert batch.keys == bench.keys[batch.start:batch.start + len(batch)]
        seen.extend(batch.keys)
    assert seen == bench.keys and len(bench) == len(seen) > 0
    # Decoding is deterministic: a second pass gives the same pixels.
    first = next(iter(bench.images(batch_size=8)))
    again = next(iter(bench.images(batch_size=8, flip=False)))
    assert np.array_equal(first.images, again.images) and again.mirrored is None
    bgr = next(iter(bench.images(batch_size=8, channels="bgr")))
    assert np.array_equal(bgr.images, first.images[..., ::-1])


def test_decoded_pixels_are_the_jpeg_pixels(data):
    # Pack images are at the network's size already: the pixels are the decoded JPEG's. Checked
    # against Pillow (libjpeg-turbo): JPEG decoders may differ by a few levels (IDCT rounding,
    # chroma upsampling); on these 40 faces at most 4, 0.3 on average, 78 % of values equal.
    Image = pytest.importorskip("PIL.Image")
    with open(data / "faces_emore" / "lfw.bin", "rb") as f:
        bins, _ = pickle.load(f)
    first = next(iter(aifr_eval.open("lfw_bin", data_dir=data).images(batch_size=4)))
    for i in range(4):
        ref = np.asarray(Image.open(io.BytesIO(bins[i])).convert("RGB"), dtype=np.int16)
        assert ref.shape == first.images[i].shape
        diff = np.abs(ref - first.images[i])
        assert diff.max() <= 6 and diff.mean() < 0.6, (i, diff.max(), diff.mean())


def test_embed_then_evaluate_and_callback(data):
    bench = aifr_eval.open("lfw_bin", data_dir=data)
    emb, emb_flip = bench.embed(standin, batch_size=64)
    assert emb.shape == (len(bench), 32) and emb_flip.shape == emb.shape
    r = bench.evaluate(emb, emb_flip)
    assert r.kind == "pair_verification" and 0.0 <= r.accuracy <= 1.0
    logs = aifr_eval.evaluate_callback([bench], standin, batch_size=64)
    assert logs["lfw_bin/accuracy"] == r.accuracy
    assert logs["lfw_bin/auc"] == r.auc
    # By name too, as a training script calls it.
    assert aifr_eval.evaluate_callback(["lfw_bin"], standin, data_dir=data, batch_size=7) == logs


def test_image_errors(data, demo, tmp_path):
    with pytest.raises(FileNotFoundError):
        aifr_eval.open("lfw_bin", data_dir=tmp_path)
    bench = aifr_eval.open("lfw_bin", data_dir=data)
    with pytest.raises(ValueError, match="channels must be"):
        next(iter(bench.images(channels="yuv")))
    # The demo's pack holds placeholder bytes: the error names the pack and the image.
    with pytest.raises(ValueError, match=r"agedb_30.bin: image 0 of the pack: not a JPEG or PNG"):
        next(iter(aifr_eval.open("agedb30", data_dir=demo / "data").images()))


def test_worked_example_runs_with_the_numpy_standin():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, str(ROOT / "python" / "examples" / "training_callback.py"), "--steps", "1"],
                       capture_output=True, text=True, cwd=ROOT / "python" / "examples")
    assert r.returncode == 0, r.stderr
    assert "step 1: lfw_bin/accuracy" in r.stdout

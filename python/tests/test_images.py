"""The training-loop path on the demo's insightface .bin pack: decoded batches, a stand-in
network, evaluation, and the callback."""

import numpy as np
import pytest

import aifr_eval


def standin(images):
    """A NumPy 'network': a fixed random projection of the pixels (deterministic)."""
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    w = np.random.default_rng(0).standard_normal((x.shape[1], 32)).astype(np.float32)
    return x @ w


def test_batches_cover_the_pack_in_order(demo):
    bench = aifr_eval.open("agedb30", data_dir=demo / "data")
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


def test_embed_then_evaluate_and_callback(demo):
    bench = aifr_eval.open("agedb30", data_dir=demo / "data")
    emb, emb_flip = bench.embed(standin, batch_size=64)
    assert emb.shape == (len(bench), 32) and emb_flip.shape == emb.shape
    r = bench.evaluate(emb, emb_flip)
    assert r.kind == "pair_verification" and 0.0 <= r.accuracy <= 1.0
    logs = aifr_eval.evaluate_callback([bench], standin, batch_size=64)
    assert logs["agedb30/accuracy"] == r.accuracy
    assert logs["agedb30/auc"] == r.auc


def test_image_errors(demo, tmp_path):
    with pytest.raises(FileNotFoundError):
        aifr_eval.open("agedb30", data_dir=tmp_path)
    bench = aifr_eval.open("agedb30", data_dir=demo / "data")
    with pytest.raises(ValueError, match="channels must be"):
        next(iter(bench.images(channels="yuv")))

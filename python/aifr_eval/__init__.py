"""aifr-eval from Python: NumPy arrays in, the CLI's exact results out.

Every number comes from the same Rust code path as ``aifr-eval run``, so ``evaluate(...).to_json()``
is byte for byte the ``results.json`` the CLI writes for the same inputs.

>>> import numpy as np, aifr_eval
>>> r = aifr_eval.evaluate("lfw", emb, keys=keys, data_dir="data")   # doctest: +SKIP
>>> r.accuracy, r.tar_at_far(1e-3)                                   # doctest: +SKIP
(0.9953333333333333, 0.981)

See docs/python.md for the whole interface.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from . import metrics

__all__ = ["evaluate", "open", "Results", "Benchmark", "Batch", "evaluate_callback", "metrics", "__version__"]
__version__ = _native.VERSION

PathLike = Union[str, "os.PathLike[str]"]
Keys = Union[Sequence[str], PathLike, None]


def _as_rows(x: Any, name: str) -> np.ndarray:
    """A 2-D little-endian float32 or float16 C-contiguous array viewing ``x`` where it can.

    float32 and float16 in C order are used as they are (no copy); float64 becomes float32 (the
    CLI's import rounds the same way); Fortran order and non-contiguous views are copied into C
    order. Objects with ``__array__`` (a CPU torch tensor) or ``__dlpack__`` are viewed through
    NumPy without a copy.
    """
    if not isinstance(x, np.ndarray):
        if hasattr(x, "__array__"):
            x = np.asarray(x)
        elif hasattr(x, "__dlpack__"):
            x = np.from_dlpack(x)
        else:
            raise TypeError(f"{name} must be a 2-D array (or an object with __array__ / __dlpack__), "
                            f"not {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (N images × D dims), found shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: the array has no rows: there are no embeddings to evaluate")
    if x.shape[1] == 0:
        raise ValueError(f"{name}: the embeddings are {x.shape[0]}×0: each row needs at least one value")
    kind = x.dtype
    if kind == np.float32 or kind == np.float16:
        target = kind.newbyteorder("<")
    elif kind == np.float64:
        target = np.dtype("<f4")
    else:
        raise ValueError(f"{name}: dtype '{kind}' is not supported; expected float32, float16 or float64")
    # No-ops (the same object back) for a C-contiguous little-endian float32/float16 array.
    x = np.ascontiguousarray(x, dtype=target)
    if not x.flags.aligned:
        x = x.copy()
    return x


def _desc(x: np.ndarray) -> Tuple[Any, int, int, int, str]:
    return (x, x.__array_interface__["data"][0], x.shape[0], x.shape[1], "f16" if x.dtype == np.float16 else "f32")


def _keys(keys: Keys) -> Optional[List[str]]:
    if keys is None:
        return None
    if isinstance(keys, (str, os.PathLike)):
        return _native.read_keys(os.fspath(keys))
    out = [str(k) for k in keys]
    return out


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


class Results:
    """The results of one run: ``to_dict()`` / ``to_json()`` are the CLI's ``results.json``.

    Typed access to the headline numbers (``None`` where a run kind does not have them):

    >>> r.kind, r.accuracy, r.auc, r.eer                     # doctest: +SKIP
    ('pair_verification', 0.9953333333333333, 0.9991, 0.006)
    >>> r.tar_at_far(1e-4, rule="strict")                    # doctest: +SKIP
    0.9566666666666667
    """

    def __init__(self, text: str, table: str = "", path: Optional[str] = None, addresses: Sequence[int] = ()):
        self._text = text
        self._data = json.loads(text)
        #: The summary the CLI prints on the terminal.
        self.table = table
        #: The results.json written, when ``out=`` was given.
        self.path = path
        self._addresses = list(addresses)

    def to_json(self) -> str:
        """``results.json`` as the CLI writes it (pretty-printed, trailing newline)."""
        return self._text

    def to_dict(self) -> Dict[str, Any]:
        """``results.json`` parsed (a fresh copy each call)."""
        return json.loads(self._text)

    def __repr__(self) -> str:
        return f"<aifr_eval.Results {self.kind} {self.benchmark}: {self.headline()}>"

    @property
    def kind(self) -> str:
        """``pair_verification``, ``fgnet_identification``, ``ijb``, ``megaface_identification``."""
        return self._data["kind"]

    @property
    def benchmark(self) -> str:
        return self._data["benchmark"]["name"]

    def _verification(self) -> Optional[Dict[str, Any]]:
        m = self._data["metrics"]
        if self.kind == "pair_verification":
            return {"roc": m["roc"], "tar_at_far": m["tar_at_far"]}
        if self.kind == "fgnet_identification":
            # All-pairs verification (one model only): auc, eer, tar_at_far at its top level.
            v = m.get("verification")
            return None if v is None else {"roc": {"auc": v["auc"], "eer": v["eer"]}, "tar_at_far": v["tar_at_far"]}
        if self.kind == "ijb":
            return {"roc": m["roc"], "tar_at_far": m["tar_at_far"]}
        return None

    @property
    def accuracy(self) -> Optional[float]:
        """k-fold verification accuracy (mean over folds) of a pair benchmark or manifest run."""
        acc = self._data["metrics"].get("accuracy")
        return None if acc is None else acc["mean"]

    @property
    def accuracy_spread(self) -> Optional[float]:
        """What the reference tool prints after ± (``se`` or ``std`` by mode)."""
        acc = self._data["metrics"].get("accuracy")
        return None if acc is None else acc[acc["reported_spread"]]

    @property
    def auc(self) -> Optional[float]:
        v = self._verification()
        return None if v is None else v["roc"]["auc"]

    @property
    def eer(self) -> Optional[float]:
        v = self._verification()
        if v is None or v["roc"]["eer"] is None:
            return None
        return v["roc"]["eer"]["eer"]

    def tar_at_far(self, far: float, rule: str = "strict", size: Optional[int] = None) -> Optional[float]:
        """TAR at a FAR target of the protocol under ``rule`` (``strict``, ``insightface_nearest``,
        MegaFace also ``devkit_positives_first``); ``None`` when the target is not measurable.
        MegaFace: ``size`` picks the distractor set (default: the largest)."""
        if self.kind == "megaface_identification":
            entries = self._size(size)["tar_at_far"]
        else:
            v = self._verification()
            if v is None:
                raise ValueError(f"a {self.kind} run has no verification results")
            entries = v["tar_at_far"]
        for e in entries:
            if e["rule"] == rule and e["far_target"] == far:
                return e["tar"]
        have = sorted({(e["rule"], e["far_target"]) for e in entries})
        raise KeyError(f"no TAR at FAR {far} under rule '{rule}' in these results; they hold {have}")

    def _size(self, size: Optional[int]) -> Dict[str, Any]:
        sizes = self._data["metrics"]["sizes"]
        if size is None:
            return sizes[-1]
        for s in sizes:
            if s["distractors"] == size:
                return s
        raise KeyError(f"no distractor set of size {size}; evaluated: {[s['distractors'] for s in sizes]}")

    @property
    def rank1(self) -> Optional[float]:
        """Rank-1 identification rate: FG-NET leave-one-image-out, MegaFace at the largest set,
        IJB over both galleries, a manifest's closed-set gallery search."""
        m = self._data["metrics"]
        if self.kind == "fgnet_identification":
            return m["identification"]["rank1"]
        if self.kind == "megaface_identification":
            return self._size(None)["rank1"]
        if self.kind == "ijb":
            ident = m.get("identification")
            if not ident:
                return None
            for p in ident.get("cmc", []):
                if p["rank"] == 1:
                    return p["rate"]
            return None
        ident = self._data.get("identification")
        if ident and ident.get("gallery_rank1"):
            return ident["gallery_rank1"]["rank1"]
        return None

    def rank1_at(self, size: int) -> Optional[float]:
        """MegaFace: rank-1 with ``size`` distractors."""
        return self._size(size)["rank1"]

    def headline(self) -> Dict[str, float]:
        """A few numbers for a training log: accuracy, AUC, TAR@FAR (strict) or rank-1."""
        out: Dict[str, float] = {}
        for name in ("accuracy", "auc", "rank1"):
            v = getattr(self, name)
            if v is not None:
                out[name] = v
        if self.kind != "megaface_identification":
            v = self._verification()
            entries = [] if v is None else v["tar_at_far"]
        else:
            entries = self._size(None)["tar_at_far"]
        for e in entries:
            if e["rule"] == "strict" and e["available"] and e["tar"] is not None:
                out[f"tar@far={e['far_target']:g}"] = e["tar"]
        return out


def evaluate(
    benchmark: str,
    embeddings: Any,
    keys: Keys = None,
    flip_embeddings: Any = None,
    data_dir: Optional[PathLike] = None,
    mode: Optional[str] = None,
    flip: Optional[str] = None,
    out: Optional[PathLike] = None,
    **options: Any,
) -> Results:
    """Evaluate embeddings on a benchmark, exactly as ``aifr-eval run`` does.

    Parameters
    ----------
    benchmark: a ``datasets.toml`` name (``lfw``, ``agedb_30``, ``cfp_fp``, ``fgnet``, ``ijbc``,
        ``megaface_fgnet`` …) or ``"manifest"`` with ``manifest="faces.csv"``.
    embeddings: N × D float32/float16/float64 array, C or Fortran order, or an object with
        ``__array__``/``__dlpack__`` (a CPU torch tensor). A C-contiguous float32 or float16 array
        is read in place: do not write to it while the call runs.
    keys: the image key of each row (a list, or a key-list file as for ``--keys``); may be left out
        for ``.bin`` packs, whose rows follow the pack's order.
    flip_embeddings: embeddings of the mirrored images, same shape and row order.
    data_dir: where the benchmarks are (default: ``$AIFR_DATA_DIR``, else ``data``).
    mode: ``strict`` (default), ``insightface`` or ``facexzoo`` (k-fold accuracy rules).
    flip: ``auto``, ``sum``, ``concat`` or ``none`` (flip fusion).
    out: write the run directory (results.json, curves, report.html …) as the CLI does.
    options: ``protocol_file``, ``ages``, ``datasets``; MegaFace: ``sizes=[10, 100, …]``,
        ``distractors`` (array), ``distractor_keys``, ``distractor_flip_embeddings``, ``cleaning``,
        ``probe_noise``, ``distractor_noise``; manifests: ``manifest``, ``protocol_dir``, ``pairs``,
        ``min_age_gap``, ``gallery``, ``stratify``, ``seed``, ``pairs_per_fold``,
        ``age_tolerance``, ``loo_max_images``.

    Raises ``ValueError`` for bad input (shape, dtype, NaN rows, missing keys), and
    ``FileNotFoundError`` when benchmark files are missing, with the CLI's messages.

    >>> r = aifr_eval.evaluate("lfw", emb, keys="keys.txt", data_dir="data")   # doctest: +SKIP
    >>> r.accuracy                                                             # doctest: +SKIP
    0.9953333333333333
    """
    emb = _as_rows(embeddings, "embeddings")
    fl = None if flip_embeddings is None else _as_rows(flip_embeddings, "flip_embeddings")
    datasets = options.pop("datasets", None)
    native: Dict[str, Any] = {}
    for k, v in options.items():
        if k in ("distractors", "distractor_flip_embeddings"):
            native[k] = None if v is None else _desc(_as_rows(v, k))
        elif k == "distractor_keys":
            native[k] = _keys(v)
        elif k in ("protocol_file", "ages", "manifest", "protocol_dir", "pairs", "probe_noise", "distractor_noise"):
            native[k] = _path(v)
        elif k in ("sizes", "stratify"):
            native[k] = list(v)
        elif k in ("cleaning", "gallery", "min_age_gap", "seed", "pairs_per_fold", "age_tolerance", "loo_max_images"):
            native[k] = v
        else:
            raise TypeError(f"evaluate() got an unexpected keyword argument '{k}'")
    scratch = None
    if benchmark == "manifest" and out is None and native.get("protocol_dir") is None:
        # The protocol built for the run needs a directory; without out= it is thrown away.
        scratch = tempfile.TemporaryDirectory(prefix="aifr-eval-")
        native["scratch_dir"] = scratch.name
    try:
        text, table, addresses, path = _native.evaluate(
            benchmark,
            _desc(emb),
            None if fl is None else _desc(fl),
            _keys(keys),
            _path(data_dir),
            _path(datasets),
            mode,
            flip,
            _path(out),
            native,
        )
    finally:
        if scratch is not None:
            scratch.cleanup()
    return Results(text, table, path, addresses)


class Batch:
    """One batch of decoded images: ``images`` (n × H × W × 3 uint8), ``mirrored`` (the same,
    flipped left-right; ``None`` with ``flip=False``), ``keys`` and ``start`` (first row)."""

    __slots__ = ("start", "keys", "images", "mirrored")

    def __init__(self, start: int, keys: List[str], images: np.ndarray, mirrored: Optional[np.ndarray]):
        self.start = start
        self.keys = keys
        self.images = images
        self.mirrored = mirrored

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self):
        # `for images, mirrored in bench.images()` works too.
        return iter((self.images, self.mirrored))


class Benchmark:
    """A benchmark opened for the training loop (see :func:`open`)."""

    def __init__(self, name: str, data_dir: Optional[PathLike] = None, datasets: Optional[PathLike] = None):
        self.name = name
        self.data_dir = data_dir
        self.datasets = datasets
        self._native = _native.Benchmark(name, _path(data_dir), _path(datasets))
        self.keys: List[str] = self._native.keys

    def __len__(self) -> int:
        return len(self.keys)

    def images(self, batch_size: int = 256, size: Tuple[int, int] = (112, 112), channels: str = "rgb",
               flip: bool = True, prefetch: int = 2) -> Iterator[Batch]:
        """Decoded, aligned images in row order, ``batch_size`` at a time.

        Decoding runs in Rust threads without the GIL, ``prefetch`` batches ahead. ``size`` is
        (height, width); ``channels`` ``rgb`` or ``bgr``. The pixels are those ``aifr-eval embed``
        gives its networks, rounded to uint8.

        >>> for batch in bench.images(batch_size=256):           # doctest: +SKIP
        ...     x = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        """
        h, w = size
        for start, n, pixels, mirrored in self._native.batches(batch_size, h, w, channels, flip, prefetch):
            images = np.frombuffer(pixels, dtype=np.uint8).reshape(n, h, w, 3)
            m = None if mirrored is None else np.frombuffer(mirrored, dtype=np.uint8).reshape(n, h, w, 3)
            yield Batch(start, self.keys[start:start + n], images, m)

    def evaluate(self, embeddings: Any, flip_embeddings: Any = None, **kwargs: Any) -> Results:
        """:func:`evaluate` on this benchmark, rows in the order :meth:`images` gave them."""
        kwargs.setdefault("data_dir", self.data_dir)
        if self.datasets is not None:
            kwargs.setdefault("datasets", self.datasets)
        return evaluate(self.name, embeddings, keys=self.keys, flip_embeddings=flip_embeddings, **kwargs)

    def embed(self, embed: Callable[[np.ndarray], Any], batch_size: int = 256, flip: bool = True,
              **image_options: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Runs ``embed(images) -> (n, D) array`` over every batch (and its mirror)."""
        rows, mirrored = [], []
        for batch in self.images(batch_size=batch_size, flip=flip, **image_options):
            rows.append(np.asarray(embed(batch.images), dtype=np.float32))
            if flip:
                mirrored.append(np.asarray(embed(batch.mirrored), dtype=np.float32))
        return np.concatenate(rows), (np.concatenate(mirrored) if flip else None)


def open(benchmark: str, data_dir: Optional[PathLike] = None, datasets: Optional[PathLike] = None) -> Benchmark:
    """Opens a benchmark's images for embedding in a training loop.

    >>> bench = aifr_eval.open("agedb_30", data_dir="data")            # doctest: +SKIP
    >>> emb, emb_flip = bench.embed(my_network, batch_size=256)          # doctest: +SKIP
    >>> bench.evaluate(emb, emb_flip).accuracy                           # doctest: +SKIP
    """
    return Benchmark(benchmark, data_dir, datasets)


def evaluate_callback(benchmarks: Sequence[Union[str, Benchmark]], embed: Callable[[np.ndarray], Any],
                      data_dir: Optional[PathLike] = None, batch_size: int = 256, flip: bool = True,
                      **evaluate_options: Any) -> Dict[str, float]:
    """Evaluates ``embed`` on each benchmark and returns ``{"<bench>/<metric>": value}`` for logging.

    The training-loop callback (insightface's ``CallBackVerification``, exactly): ``embed`` takes
    an n × H × W × 3 uint8 batch and returns n × D embeddings (any array type with ``__array__``).

    >>> logs = aifr_eval.evaluate_callback(["lfw", "agedb_30", "cfp_fp"], embed, data_dir="data")  # doctest: +SKIP
    >>> logs["lfw/accuracy"]                                                                     # doctest: +SKIP
    0.9953333333333333
    """
    out: Dict[str, float] = {}
    for b in benchmarks:
        bench = b if isinstance(b, Benchmark) else open(b, data_dir)
        emb, emb_flip = bench.embed(embed, batch_size=batch_size, flip=flip)
        r = bench.evaluate(emb, emb_flip, **evaluate_options)
        for k, v in r.headline().items():
            out[f"{bench.name}/{k}"] = v
    return out

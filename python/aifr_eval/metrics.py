"""The metrics the CLI computes, on raw scores: the same Rust functions, no I/O.

Scores are similarities (accept iff ``score >= threshold``); ``labels`` are True for genuine
(same-identity) pairs. Ties, FAR targets below 1/N and empty classes follow docs/protocols.md.

>>> from aifr_eval import metrics
>>> metrics.auc([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
0.75
>>> metrics.tar_at_far([0.9, 0.8, 0.3, 0.1], [True, False, True, False], 0.5)["tar"]
0.5
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import _native

__all__ = ["roc", "auc", "eer", "tar_at_far", "kfold_accuracy", "cmc"]


def _scores(scores: Any, labels: Any):
    s = np.ascontiguousarray(np.asarray(scores, dtype=np.float64).reshape(-1), dtype="<f8")
    g = np.asarray(labels)
    if g.dtype != np.bool_:
        if g.size and not np.isin(g, (0, 1)).all():
            raise ValueError("labels must be booleans (True = genuine) or 0/1")
        g = g.astype(np.bool_)
    g = np.ascontiguousarray(g.reshape(-1))
    return s.tobytes(), g.view(np.uint8).tobytes()


def roc(scores: Any, labels: Any) -> Dict[str, np.ndarray]:
    """The exact ROC: one vertex per distinct score, descending threshold, ``fpr``/``tpr``/
    ``threshold`` arrays (the first vertex has threshold +inf)."""
    v = json.loads(_native.roc(*_scores(scores, labels)))
    th = [np.inf if p["threshold"] is None else p["threshold"] for p in v]
    return {"fpr": np.array([p["fpr"] for p in v]), "tpr": np.array([p["tpr"] for p in v]),
            "threshold": np.array(th, dtype=np.float64)}


def auc(scores: Any, labels: Any) -> float:
    """Area under the exact ROC (trapezoid)."""
    return _native.auc(*_scores(scores, labels))


def eer(scores: Any, labels: Any) -> Optional[Dict[str, float]]:
    """Equal error rate: ``{"eer", "threshold", "far", "frr"}``; ``None`` if all scores are equal."""
    return json.loads(_native.eer(*_scores(scores, labels)))


def tar_at_far(scores: Any, labels: Any, far: float, rule: str = "strict") -> Dict[str, Any]:
    """TAR at a FAR target: ``rule="strict"`` (bob.measure: the FAR achieved never exceeds the
    target) or ``"insightface_nearest"`` (the sklearn ROC vertex nearest the target). Returns
    ``available``, ``tar``, ``far`` (achieved), ``threshold``, ``false_accepts``, ``note``."""
    return json.loads(_native.tar_at_far(*_scores(scores, labels), float(far), rule))


def kfold_accuracy(scores: Any, labels: Any, folds: Sequence[int], mode: str = "strict",
                   k: Optional[int] = None) -> Dict[str, Any]:
    """k-fold verification accuracy: threshold chosen on the other folds, measured on each.

    ``mode="insightface"`` takes squared distances (``2 - 2 * score`` for unit vectors) as
    ``scores``, as insightface does. Returns ``fold_accuracies``, ``thresholds``, ``mean``,
    ``std``, ``se``, ``reported_spread``."""
    f = np.asarray(folds).reshape(-1)
    if f.size and (f.min() < 0 or not np.issubdtype(f.dtype, np.integer)):
        raise ValueError("folds must be non-negative integers (the fold of each pair)")
    k = int(f.max()) + 1 if k is None and f.size else (k or 0)
    return json.loads(_native.kfold_accuracy(*_scores(scores, labels), [int(x) for x in f], k, mode))


def cmc(ranks: Any, ks: Optional[Sequence[int]] = None) -> List[Dict[str, float]]:
    """Cumulative match characteristic from exact ranks (0 = the mate came first; a rank counts
    the gallery items scoring strictly above the mate). ``ks``: the 1-based ranks to report
    (default: every step of the curve). Each point is ``{"rank", "identification_rate"}``."""
    r = np.asarray(ranks).reshape(-1)
    if r.size and (r.min() < 0 or not np.issubdtype(r.dtype, np.integer)):
        raise ValueError("ranks must be non-negative integers")
    return json.loads(_native.cmc([int(x) for x in r], None if ks is None else [int(k) for k in ks]))

"""`aifr_eval.metrics` against the independent NumPy/scikit-learn references: the committed
fixtures of tests/reference/make_verification_fixtures.py (tests/fixtures/verification), the same
values tests/it/metrics_reference.rs checks the Rust functions against."""

import json
import math

import numpy as np
import pytest

from aifr_eval import metrics
from conftest import ROOT

CASES = ["basic", "ties", "unbalanced", "far_below_1_over_n", "top_ties", "perfect", "lfw_like"]


def load(case):
    return json.loads((ROOT / "tests" / "fixtures" / "verification" / f"{case}.json").read_text())


def close(a, b, what):
    assert abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1e-300), f"{what}: {a!r} vs reference {b!r}"


@pytest.mark.parametrize("case", CASES)
def test_roc_auc_eer(case):
    v = load(case)
    s, g = np.array(v["scores"]), np.array(v["labels"])
    r = metrics.roc(s, g)
    assert r["fpr"].tolist() == v["roc"]["fpr"] and r["tpr"].tolist() == v["roc"]["tpr"]
    th = [math.inf if t is None else t for t in v["roc"]["thresholds"]]
    assert r["threshold"].tolist() == th
    close(metrics.auc(s, g), v["auc"], f"{case} auc")
    got = metrics.eer(s, g)
    if v["eer"] is None:
        assert got is None
    else:
        assert got == v["eer"], case


@pytest.mark.parametrize("case", CASES)
def test_tar_at_far_both_rules(case):
    v = load(case)
    s, g = v["scores"], v["labels"]
    for rule, key in [("strict", "tar_at_far_strict"), ("insightface_nearest", "tar_at_far_insightface")]:
        for ex in v[key]:
            got = metrics.tar_at_far(s, g, ex["far_target"], rule=rule)
            what = f"{case} {rule} @ {ex['far_target']}"
            assert got["available"] == ex["available"], what
            if not got["available"]:
                assert got["tar"] is None and got["threshold"] is None, what
                continue
            for k in ("tar", "far", "threshold", "false_accepts"):
                assert got[k] == ex[k], f"{what}: {k}"


@pytest.mark.parametrize("case", CASES)
def test_kfold_accuracy_all_modes(case):
    v = load(case)
    for mode, key, values in [("strict", "kfold_strict", v["scores"]),
                              ("insightface", "kfold_insightface", v["distances"]),
                              ("facexzoo", "kfold_facexzoo", v["scores"])]:
        got = metrics.kfold_accuracy(values, v["labels"], v["folds"], mode=mode, k=v["n_folds"])
        ex = v[key]
        assert got["thresholds"] == ex["thresholds"], f"{case} {mode}"
        assert got["fold_accuracies"] == ex["fold_accuracies"], f"{case} {mode}"
        for k in ("mean", "std", "se"):
            close(got[k], ex[k], f"{case} {mode} {k}")


def test_cmc_counts_ranks_below_k():
    # Ranks 0 (first place) twice, 1, 4: CMC(1) = 2/4, CMC(2) = 3/4, CMC(5) = 1.
    pts = metrics.cmc([0, 4, 1, 0], ks=[1, 2, 5])
    assert [(p["rank"], p["identification_rate"]) for p in pts] == [(1, 0.5), (2, 0.75), (5, 1.0)]
    assert metrics.cmc([0, 4, 1, 0])[-1] == {"rank": 5, "identification_rate": 1.0}


def test_metric_errors_are_value_errors():
    with pytest.raises(ValueError, match="not a finite number"):
        metrics.auc([0.1, float("nan")], [True, False])
    with pytest.raises(ValueError, match="2 scores but 3 labels"):
        metrics.auc([0.1, 0.2], [True, False, True])
    with pytest.raises(ValueError, match="no impostor pairs"):
        metrics.eer([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="rule must be"):
        metrics.tar_at_far([0.1, 0.2], [True, False], 0.1, rule="loose")
    with pytest.raises(ValueError, match="far must be"):
        metrics.tar_at_far([0.1, 0.2], [True, False], 0.0)
    with pytest.raises(ValueError, match="labels must be"):
        metrics.auc([0.1, 0.2], [2, 0])
    with pytest.raises(ValueError, match="ranks must be"):
        metrics.cmc([-1, 0])

//! Every metric against the independent NumPy/scikit-learn reference
//! (`tests/reference/make_verification_fixtures.py`, outputs committed in tests/fixtures/verification).
//! Count ratios and thresholds must match exactly; summation-dependent values to 1e-12 relative.

use aifr_eval::metrics::{kfold_accuracy, kfold_sorted, FoldMode, Roc, SortedPairs, TarRule};
use serde_json::Value;
use std::path::PathBuf;

const CASES: &[&str] = &["basic", "ties", "unbalanced", "far_below_1_over_n", "top_ties", "perfect", "lfw_like"];

fn load(case: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/verification").join(format!("{case}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn close(a: f64, b: f64, what: &str) {
    let tol = 1e-12 * a.abs().max(b.abs()).max(1e-300);
    assert!((a - b).abs() <= tol, "{what}: rust {a:e} vs reference {b:e}");
}

struct Case {
    name: &'static str,
    v: Value,
    scores: Vec<f64>,
    labels: Vec<bool>,
    folds: Vec<usize>,
}

fn cases() -> Vec<Case> {
    CASES
        .iter()
        .map(|&name| {
            let v = load(name);
            let scores = f64s(&v["scores"]);
            let labels = v["labels"].as_array().unwrap().iter().map(|x| x.as_bool().unwrap()).collect();
            let folds = v["folds"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            Case { name, v, scores, labels, folds }
        })
        .collect()
}

#[test]
fn exact_roc_vertices() {
    for c in cases() {
        let roc = Roc::new(&c.scores, &c.labels).unwrap();
        let got = roc.vertices();
        // Built from the k-fold sort, the ROC must be identical.
        let sorted =
            SortedPairs::new(&c.scores, &c.labels, &c.folds, c.v["n_folds"].as_u64().unwrap() as usize).unwrap();
        assert_eq!(Roc::from_sorted(&sorted).vertices(), got, "{}: from_sorted", c.name);
        let r = &c.v["roc"];
        let (fpr, tpr) = (f64s(&r["fpr"]), f64s(&r["tpr"]));
        assert_eq!(got.len(), fpr.len(), "{}: vertex count", c.name);
        for (i, p) in got.iter().enumerate() {
            assert_eq!((p.fpr, p.tpr), (fpr[i], tpr[i]), "{}: vertex {i}", c.name);
            match r["thresholds"][i].as_f64() {
                Some(t) => assert_eq!(p.threshold, t, "{}: threshold {i}", c.name),
                None => assert!(p.threshold.is_infinite()),
            }
        }
        assert_eq!(roc.n_genuine(), c.v["n_genuine"].as_u64().unwrap());
        assert_eq!(roc.n_impostor(), c.v["n_impostor"].as_u64().unwrap());
    }
}

#[test]
fn auc_and_eer() {
    for c in cases() {
        let roc = Roc::new(&c.scores, &c.labels).unwrap();
        close(roc.auc(), c.v["auc"].as_f64().unwrap(), &format!("{} auc", c.name));
        let e = &c.v["eer"];
        match roc.eer() {
            None => assert!(e.is_null(), "{}: eer missing", c.name),
            Some(got) => {
                assert_eq!(got.eer, e["eer"].as_f64().unwrap(), "{} eer", c.name);
                assert_eq!(got.threshold, e["threshold"].as_f64().unwrap(), "{} eer threshold", c.name);
                assert_eq!((got.far, got.frr), (e["far"].as_f64().unwrap(), e["frr"].as_f64().unwrap()), "{}", c.name);
            }
        }
    }
}

#[test]
fn tar_at_far_both_rules() {
    for c in cases() {
        let roc = Roc::new(&c.scores, &c.labels).unwrap();
        for (rule, key) in
            [(TarRule::Strict, "tar_at_far_strict"), (TarRule::InsightfaceNearest, "tar_at_far_insightface")]
        {
            let expected = c.v[key].as_array().unwrap();
            assert_eq!(expected.len(), c.v["far_targets"].as_array().unwrap().len());
            for e in expected {
                let far = e["far_target"].as_f64().unwrap();
                let got = roc.tar_at_far(far, rule);
                let what = format!("{} {key} @ {far:e}", c.name);
                assert_eq!(got.available, e["available"].as_bool().unwrap(), "{what}: available");
                if !got.available {
                    assert!(got.tar.is_none() && got.threshold.is_none(), "{what}");
                    continue;
                }
                assert_eq!(got.tar, e["tar"].as_f64(), "{what}: tar");
                assert_eq!(got.far, e["far"].as_f64(), "{what}: far");
                assert_eq!(got.threshold, e["threshold"].as_f64(), "{what}: threshold");
                assert_eq!(got.false_accepts, e["false_accepts"].as_u64(), "{what}: false accepts");
            }
        }
    }
}

#[test]
fn kfold_accuracy_all_modes() {
    for c in cases() {
        let distances = f64s(&c.v["distances"]);
        let k = c.v["n_folds"].as_u64().unwrap() as usize;
        for (mode, key, values) in [
            (FoldMode::Strict, "kfold_strict", &c.scores),
            (FoldMode::Insightface, "kfold_insightface", &distances),
            (FoldMode::Facexzoo, "kfold_facexzoo", &c.scores),
        ] {
            let got = kfold_accuracy(mode, values, &c.labels, &c.folds, k).unwrap();
            // Sorting from another order (the protocol starts distances from the score order)
            // must not change anything.
            let by_score = SortedPairs::new(&c.scores, &c.labels, &c.folds, k).unwrap();
            let hinted =
                SortedPairs::new_from_order(values, &c.labels, &c.folds, k, by_score.descending_order()).unwrap();
            assert_eq!(kfold_sorted(mode, &hinted), got, "{}: hinted sort", c.name);
            let e = &c.v[key];
            let what = format!("{} {key}", c.name);
            assert_eq!(got.thresholds, f64s(&e["thresholds"]), "{what}: thresholds");
            assert_eq!(got.fold_accuracies, f64s(&e["fold_accuracies"]), "{what}: fold accuracies");
            close(got.spread.mean, e["mean"].as_f64().unwrap(), &format!("{what} mean"));
            close(got.spread.std, e["std"].as_f64().unwrap(), &format!("{what} std"));
            close(got.spread.se, e["se"].as_f64().unwrap(), &format!("{what} se"));
        }
    }
}

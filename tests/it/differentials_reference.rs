//! Demographic differentials against the independent NumPy reference
//! (tests/reference/differentials_ref.py): thresholds, counts, rates, per-group thresholds,
//! ratios, FDR and GARBE agree exactly, on fixtures with ties at the threshold, an empty group, a
//! group without impostor pairs, a tiny group, ungrouped pairs and a target below 1/N.

use aifr_eval::metrics::bootstrap::BootstrapSpec;
use aifr_eval::metrics::differentials::{differentials, DifferentialParams, GroupedPairs, RateSpread};
use aifr_eval::metrics::Roc;
use serde_json::Value;
use std::path::PathBuf;

fn load(case: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/differentials").join(format!("{case}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn check_spread(got: &RateSpread, want: &Value, what: &str) {
    assert_eq!(got.groups as u64, want["groups"].as_u64().unwrap(), "{what}: groups");
    assert_eq!(got.max, want["max"].as_f64(), "{what}: max");
    assert_eq!(got.min, want["min"].as_f64(), "{what}: min");
    assert_eq!(got.max_group.as_deref(), want["max_group"].as_str(), "{what}: max group");
    assert_eq!(got.min_group.as_deref(), want["min_group"].as_str(), "{what}: min group");
    assert_eq!(got.max_min_ratio, want["max_min_ratio"].as_f64(), "{what}: max/min");
    assert_eq!(got.max_difference, want["max_difference"].as_f64(), "{what}: max difference");
    assert_eq!(got.gini, want["gini"].as_f64(), "{what}: gini");
}

#[test]
fn differentials_match_the_reference_exactly() {
    for case in ["basic", "ties", "edge", "zero_rates"] {
        let v = load(case);
        let scores: Vec<f64> = v["scores"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let genuine: Vec<bool> = v["genuine"].as_array().unwrap().iter().map(|x| x.as_bool().unwrap()).collect();
        let side = |k: &str| -> Vec<Option<u32>> {
            v[k].as_array().unwrap().iter().map(|x| x.as_u64().map(|g| g as u32)).collect()
        };
        let (a, b) = (side("group_a"), side("group_b"));
        let groups: Vec<[Option<u32>; 2]> = a.iter().zip(&b).map(|(&x, &y)| [x, y]).collect();
        let names: Vec<String> = v["names"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().into()).collect();
        let clusters: Vec<u32> = v["clusters"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let n_clusters = *clusters.iter().max().unwrap() as usize + 1;
        let params = DifferentialParams {
            far_targets: v["far_targets"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect(),
            fdr_alpha: v["fdr_alpha"].as_f64().unwrap(),
            garbe_alpha: v["garbe_alpha"].as_f64().unwrap(),
            reference: v["reference"].as_str().map(String::from),
        };
        let pairs = GroupedPairs {
            scores: &scores,
            genuine: &genuine,
            groups: &groups,
            names: &names,
            clusters: &clusters,
            n_clusters,
        };
        let roc = Roc::new(&scores, &genuine).unwrap();
        let spec = BootstrapSpec { resamples: 50, ..Default::default() };
        let got = differentials("group", &pairs, &roc, &params, &spec).unwrap();
        let want = &v["expected"];
        assert_eq!(got.ungrouped_pairs, want["ungrouped_pairs"].as_u64().unwrap(), "{case}: ungrouped");
        assert_eq!(got.at.len(), params.far_targets.len());
        for (g, w) in got.at.iter().zip(want["at"].as_array().unwrap()) {
            let what = format!("{case} at FAR {}", g.far_target);
            assert_eq!(g.available, w["available"].as_bool().unwrap(), "{what}: available");
            if !g.available {
                assert!(g.threshold.is_none() && g.groups.is_empty() && g.note.is_some(), "{what}");
                continue;
            }
            assert_eq!(g.threshold, w["threshold"].as_f64(), "{what}: threshold");
            for (gr, wr) in g.groups.iter().zip(w["groups"].as_array().unwrap()) {
                let what = format!("{what} group {}", gr.group);
                assert_eq!(gr.group, wr["group"].as_str().unwrap());
                for (got, key) in [
                    (gr.n_genuine, "n_genuine"),
                    (gr.false_non_matches, "false_non_matches"),
                    (gr.n_impostor, "n_impostor"),
                    (gr.false_matches, "false_matches"),
                ] {
                    assert_eq!(got, wr[key].as_u64().unwrap(), "{what}: {key}");
                }
                for (got, key) in [
                    (gr.fmr, "fmr"),
                    (gr.fnmr, "fnmr"),
                    (gr.own_threshold, "own_threshold"),
                    (gr.fmr_ratio_to_reference, "fmr_ratio_to_reference"),
                    (gr.fnmr_ratio_to_reference, "fnmr_ratio_to_reference"),
                ] {
                    assert_eq!(got, wr[key].as_f64(), "{what}: {key}");
                }
                // An interval exactly where the rate is defined, around the estimate.
                for (rate, iv) in [(gr.fmr, gr.fmr_interval), (gr.fnmr, gr.fnmr_interval)] {
                    assert_eq!(rate.is_some(), iv.is_some(), "{what}: interval iff rate");
                    if let (Some(r), Some(iv)) = (rate, iv) {
                        assert_eq!(iv.estimate, r, "{what}");
                        assert!(iv.lo <= iv.hi, "{what}: {iv:?}");
                    }
                }
            }
            let c = g.cross_group.as_ref().unwrap();
            let wc = &w["cross_group"];
            assert_eq!(
                (c.n_impostor, c.false_matches, c.n_genuine, c.false_non_matches),
                (
                    wc["n_impostor"].as_u64().unwrap(),
                    wc["false_matches"].as_u64().unwrap(),
                    wc["n_genuine"].as_u64().unwrap(),
                    wc["false_non_matches"].as_u64().unwrap()
                ),
                "{what}: cross-group"
            );
            let s = g.summary.as_ref().unwrap();
            check_spread(&s.fmr, &w["summary"]["fmr"], &format!("{what} FMR"));
            check_spread(&s.fnmr, &w["summary"]["fnmr"], &format!("{what} FNMR"));
            assert_eq!(s.fdr, w["summary"]["fdr"].as_f64(), "{what}: FDR");
            assert_eq!(s.garbe, w["summary"]["garbe"].as_f64(), "{what}: GARBE");
        }
    }
}

//! Age-gap breakdown against the independent NumPy reference (tests/reference/age_ref.py).

use aifr_eval::metrics::age_gap::{age_gap_breakdown, GapBin};
use aifr_eval::metrics::bootstrap::BootstrapSpec;
use aifr_eval::metrics::{Roc, TarRule};
use serde_json::Value;
use std::path::PathBuf;

fn load(case: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/age").join(format!("{case}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn age_gap_breakdown_matches_reference() {
    for case in ["age_gap_basic", "age_gap_custom_bins", "age_gap_empty_bin"] {
        let v = load(case);
        let f64s = |k: &str| -> Vec<f64> { v[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
        let u32s =
            |k: &str| -> Vec<u32> { v[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
        let scores = f64s("scores");
        let labels: Vec<bool> = v["labels"].as_array().unwrap().iter().map(|x| x.as_bool().unwrap()).collect();
        let (a, b) = (u32s("age_a"), u32s("age_b"));
        let gaps: Vec<u32> = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).collect();
        let bins: Vec<GapBin> = v["bin_ranges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| GapBin { lo: r[0].as_u64().unwrap() as u32, hi: r[1].as_u64().map(|h| h as u32) })
            .collect();
        let far = v["far"].as_f64().unwrap();
        // The operating threshold comes from the strict TAR@FAR rule over all pairs.
        let threshold = Roc::new(&scores, &labels).unwrap().tar_at_far(far, TarRule::Strict).threshold.unwrap();
        assert_eq!(threshold, v["threshold"].as_f64().unwrap(), "{case}: threshold");
        let clusters: Vec<u32> = (0..scores.len() as u32).collect();
        let spec = BootstrapSpec { resamples: 20, ..Default::default() };
        let got = age_gap_breakdown(&scores, &labels, &gaps, &bins, threshold, far, &clusters, scores.len(), &spec);
        assert_eq!(got.unbinned as u64, v["unbinned"].as_u64().unwrap(), "{case}: unbinned");
        for (g, e) in got.bins.iter().zip(v["bins"].as_array().unwrap()) {
            let what = format!("{case} bin {}", g.bin.label());
            assert_eq!(g.n_genuine as u64, e["n_genuine"].as_u64().unwrap(), "{what}");
            assert_eq!(g.n_impostor as u64, e["n_impostor"].as_u64().unwrap(), "{what}");
            assert_eq!(g.tar, e["tar"].as_f64(), "{what}: tar");
            assert_eq!(g.far, e["far"].as_f64(), "{what}: far");
            assert_eq!(g.accuracy, e["accuracy"].as_f64(), "{what}: accuracy");
            assert_eq!(g.mean_genuine_score, e["mean_genuine_score"].as_f64(), "{what}: mean genuine score");
            assert_eq!(g.tar_interval.is_some(), g.tar.is_some(), "{what}: interval iff tar");
        }
    }
}

//! The synthetic ageing cohort: with drift on, the age-gap analysis must show the degradation
//! the generator put in. The expected genuine similarity per pair comes from the generator's
//! model (DemoSpec::expected_genuine_cosine) and the ages it wrote, not from the evaluation code.

use aifr_eval::demo::DemoSpec;
use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;

#[test]
fn measured_age_gap_curve_tracks_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_aifr-eval")).args(["demo", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let ages: HashMap<String, u32> = std::fs::read_to_string(out.join("data/embeddings/ages.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let (k, a) = l.split_once('\t').unwrap();
            (k.to_string(), a.parse().unwrap())
        })
        .collect();
    let key = |name: &str, n: &str| format!("{name}/{name}_{:04}.jpg", n.parse::<u32>().unwrap());
    let spec = DemoSpec::default();
    let r: Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let bins = r["metrics"]["age_gap"]["bins"].as_array().unwrap().clone();
    let mut expected = vec![(0.0, 0usize); bins.len()];
    for line in std::fs::read_to_string(out.join("data/lfw/pairs.txt")).unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 3 {
            continue; // mismatched pair
        }
        let (a, b) = (ages[&key(f[0], f[1])], ages[&key(f[0], f[2])]);
        let a0 = ages[&key(f[0], "1")]; // images are numbered in age order
        let gap = a.abs_diff(b) as u64;
        let bin = bins
            .iter()
            .position(|x| gap >= x["lo"].as_u64().unwrap() && x["hi"].as_u64().is_none_or(|h| gap <= h))
            .unwrap();
        expected[bin].0 += spec.expected_genuine_cosine(a, b, a0);
        expected[bin].1 += 1;
    }
    let mut previous = (f64::INFINITY, f64::INFINITY);
    for (x, (sum, n)) in bins.iter().zip(&expected) {
        assert_eq!(x["n_genuine"].as_u64().unwrap() as usize, *n, "genuine pairs per bin");
        let truth = sum / *n as f64;
        let measured = x["mean_genuine_score"].as_f64().unwrap();
        assert!((measured - truth).abs() < 0.03, "bin {}: measured {measured:.4} vs generator {truth:.4}", x["lo"]);
        let tar = x["tar"].as_f64().unwrap();
        // Degradation with the gap, in the truth and in what the protocol measures.
        assert!(truth < previous.0 && tar < previous.1, "bin {}: no degradation", x["lo"]);
        previous = (truth, tar);
    }
}

//! FG-NET leave-one-image-out identification against the NumPy reference (tests/reference/age_ref.py).

use aifr_eval::metrics::age_gap::default_bins;
use aifr_eval::metrics::identification::{default_age_groups, leave_one_out, rank1_by};
use serde_json::Value;
use std::path::PathBuf;

#[test]
fn leave_one_out_rank1_matches_reference() {
    for case in ["fgnet_small", "fgnet_ties"] {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/age").join(format!("{case}.json"));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        let u32s =
            |k: &str| -> Vec<u32> { v[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
        let (subject, age) = (u32s("subject"), u32s("age"));
        let sim: Vec<Vec<f64>> = v["similarity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
            .collect();
        let loo = leave_one_out(subject.len(), |i, j| sim[i][j], &subject, &age);
        let expected_hit: Vec<Option<bool>> = v["hit"].as_array().unwrap().iter().map(Value::as_bool).collect();
        let expected_gap: Vec<Option<u32>> =
            v["nearest_gap"].as_array().unwrap().iter().map(|x| x.as_u64().map(|g| g as u32)).collect();
        assert_eq!(loo.hit, expected_hit, "{case}: hits");
        assert_eq!(loo.nearest_gap, expected_gap, "{case}: nearest gaps");
        let probes = loo.hit.iter().flatten().count();
        let hits = loo.hit.iter().flatten().filter(|h| **h).count();
        assert_eq!((probes as u64, hits as u64), (v["probes"].as_u64().unwrap(), v["hits"].as_u64().unwrap()));
        assert_eq!(loo.hit.iter().filter(|h| h.is_none()).count() as u64, v["excluded"].as_u64().unwrap());
        let ages: Vec<Option<u32>> = age.iter().map(|&a| Some(a)).collect();
        for (got, exp) in [
            (rank1_by(&loo.hit, &ages, &default_age_groups()), &v["by_age_group"]),
            (rank1_by(&loo.hit, &loo.nearest_gap, &default_bins()), &v["by_gap"]),
        ] {
            for (g, e) in got.iter().zip(exp.as_array().unwrap()) {
                assert_eq!(g.group.lo as u64, e["lo"].as_u64().unwrap());
                assert_eq!(
                    (g.probes as u64, g.hits as u64),
                    (e["probes"].as_u64().unwrap(), e["hits"].as_u64().unwrap())
                );
                assert_eq!(g.rank1, e["rank1"].as_f64(), "{case}: group {}", g.group.lo);
            }
        }
    }
}

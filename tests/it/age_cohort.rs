//! The synthetic ageing cohort: with drift on, the age-gap analysis must show the degradation
//! the generator put in. The expected genuine similarity per pair comes from the generator's
//! model (DemoSpec::expected_genuine_cosine) and the ages it wrote, not from the evaluation code.

use aifr_eval::demo::DemoSpec;
use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;

#[test]
fn measured_age_gap_curve_tracks_the_generator() {
    let out = crate::support::demo();

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

/// AgeDB's four official protocols on the drifting cohort: per protocol (every pair exactly the
/// protocol's gap apart) the measured mean genuine score must match the generator's expected
/// cosine, and the truth, the measured score and the accuracy must fall protocol by protocol.
#[test]
fn agedb_protocols_on_the_drifting_cohort_track_the_generator() {
    use aifr_eval::cohort::{generate_agedb, AGEDB_PROTOCOLS};
    use aifr_eval::dataset::agedb::read_protocol;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = DemoSpec::default();
    let files = generate_agedb(&spec, &data).unwrap();
    // The identity's first age, from the generator's own image names (`<id>_<Name>_<age>_<g>.jpg`).
    let mut first_age: HashMap<String, u32> = HashMap::new();
    for e in std::fs::read_dir(data.join("AgeDB/03_Protocol_Images")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let f: Vec<&str> = name.trim_end_matches(".jpg").split('_').collect();
        let age: u32 = f[2].parse().unwrap();
        let a = first_age.entry(f[1].to_string()).or_insert(age);
        *a = (*a).min(age);
    }
    let mut previous = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let mut tars = Vec::new();
    for (gap, file) in AGEDB_PROTOCOLS {
        let bench = format!("agedb_{gap}");
        let out = dir.path().join(&bench);
        let o = Command::new(crate::support::EXE)
            .args(["run", &bench, "--data-dir"])
            .arg(&data)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .arg("--embeddings")
            .arg(&files.embeddings)
            .arg("--keys")
            .arg(&files.keys)
            .arg("--flip-embeddings")
            .arg(&files.flip_embeddings)
            .arg("--out")
            .arg(&out)
            .env_remove("AIFR_DATA_DIR")
            .env_remove("AIFR_DATASETS")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let b = read_protocol(&data.join("AgeDB").join(file), None).unwrap();
        let ages = b.ages.as_ref().unwrap();
        let (mut sum, mut n) = (0.0, 0usize);
        for p in b.pairs.iter().filter(|p| p.genuine) {
            let (a, c) = (ages[p.a as usize], ages[p.b as usize]);
            assert_eq!(a.abs_diff(c), gap);
            let who = b.keys[p.a as usize].split('_').nth(1).unwrap();
            sum += spec.expected_genuine_cosine(a.min(c), a.max(c), first_age[who]);
            n += 1;
        }
        let truth = sum / n as f64;
        let r: Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
        let bins = r["metrics"]["age_gap"]["bins"].as_array().unwrap();
        let bin = bins
            .iter()
            .find(|x| gap as u64 >= x["lo"].as_u64().unwrap() && x["hi"].as_u64().is_none_or(|h| gap as u64 <= h))
            .unwrap();
        assert_eq!(bin["n_genuine"].as_u64().unwrap() as usize, n, "{bench}: every genuine pair in the gap's bin");
        let measured = bin["mean_genuine_score"].as_f64().unwrap();
        assert!((measured - truth).abs() < 0.03, "{bench}: measured {measured:.4} vs generator {truth:.4}");
        let accuracy = r["metrics"]["accuracy"]["mean"].as_f64().unwrap();
        let tar = bin["tar"].as_f64().unwrap();
        // TAR sits on the 3 false accepts FAR 1e-3 allows among 3,000 impostors: compared end to end.
        assert!(
            truth < previous.0 && measured < previous.1 && accuracy < previous.2,
            "{bench}: no degradation (truth {truth:.4}, measured {measured:.4}, accuracy {accuracy:.4} vs {previous:?})"
        );
        previous = (truth, measured, accuracy);
        tars.push(tar);
    }
    assert!(tars[3] < tars[0] - 0.1, "TAR at AgeDB-30 {} vs AgeDB-5 {}", tars[3], tars[0]);
}

/// CACD-VS: the release has no ages, and the results say so; with the generator's ages the
/// age-gap layer appears.
#[test]
fn cacd_vs_reports_missing_ages_and_uses_supplied_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let files = aifr_eval::cohort::generate_cacd_vs(&DemoSpec::default(), &data).unwrap();
    let run = |ages: Option<&std::path::Path>, out: &str| -> Value {
        let mut c = Command::new(crate::support::EXE);
        c.args(["run", "cacd_vs", "--data-dir"]).arg(&data).arg("--cache-dir").arg(dir.path().join("cache"));
        c.arg("--embeddings").arg(&files.embeddings).arg("--keys").arg(&files.keys);
        c.arg("--out").arg(dir.path().join(out)).env_remove("AIFR_DATA_DIR").env_remove("AIFR_DATASETS");
        if let Some(a) = ages {
            c.arg("--ages").arg(a);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&std::fs::read(dir.path().join(out).join("results.json")).unwrap()).unwrap()
    };
    let r = run(None, "plain");
    assert_eq!((r["counts"]["genuine"].as_u64(), r["counts"]["impostor"].as_u64()), (Some(2000), Some(2000)));
    assert!(r["metrics"].get("age_gap").is_none());
    assert!(r["metrics"]["age_gap_unavailable"].as_str().unwrap().contains("no ages"));
    assert_eq!(r["metrics"]["bootstrap"]["unit"], "pair");
    let r = run(Some(&files.ages), "aged");
    assert!(r["metrics"].get("age_gap_unavailable").is_none());
    let bins = r["metrics"]["age_gap"]["bins"].as_array().unwrap();
    let genuine: u64 = bins.iter().map(|b| b["n_genuine"].as_u64().unwrap()).sum();
    assert_eq!(genuine, 2000);
}

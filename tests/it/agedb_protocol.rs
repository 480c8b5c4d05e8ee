//! AgeDB official protocol files: SciPy-written `.mat` fixtures in the official structure
//! (tests/reference/make_agedb_mat.py) read by the adapter, and `aifr-eval run agedb_30`
//! against the NumPy reference values computed from the pairs as the script built them.

use aifr_eval::dataset::agedb::read_protocol;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agedb")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap()
}

fn aifr(args: &[&str], dir: &Path) -> Output {
    Command::new(crate::support::EXE)
        .args(args)
        .current_dir(dir)
        .env_remove("AIFR_DATA_DIR")
        .env_remove("AIFR_DATASETS")
        .env_remove("AIFR_CACHE_DIR")
        .output()
        .unwrap()
}

#[test]
fn scipy_written_protocols_give_the_pairs_they_were_built_from() {
    let exp = expected();
    let want = exp["pairs"].as_array().unwrap();
    for file in ["04_FINAL_protocol_30_years.mat", "01_FINAL_protocol_5_years.mat"] {
        let b = read_protocol(&fixtures().join("data/AgeDB").join(file), None).unwrap();
        assert_eq!(b.folds, 10, "{file}");
        assert_eq!(b.pairs.len(), want.len(), "{file}");
        assert_eq!(b.keys.len() as u64, exp["distinct_images"].as_u64().unwrap());
        let ages = b.ages.as_ref().unwrap();
        for (p, w) in b.pairs.iter().zip(want) {
            assert_eq!(b.keys[p.a as usize], w["a"].as_str().unwrap(), "{file}");
            assert_eq!(b.keys[p.b as usize], w["b"].as_str().unwrap(), "{file}");
            assert_eq!(p.genuine, w["same"].as_bool().unwrap());
            assert_eq!(p.fold as u64, w["fold"].as_u64().unwrap());
            assert_eq!(ages[p.a as usize] as u64, w["age_a"].as_u64().unwrap());
            assert_eq!(ages[p.b as usize] as u64, w["age_b"].as_u64().unwrap());
        }
        // Identities from the AgeDB naming convention (one name has an underscore in it).
        let ids = b.identities.unwrap();
        let distinct: std::collections::BTreeSet<u32> = ids.iter().copied().collect();
        assert_eq!(distinct.len() as u64, exp["identities"].as_u64().unwrap());
    }
}

/// The built-in protocol with the age-gap layer at the FAR the reference used (50 impostors).
fn protocol_file(dir: &Path, far: f64) -> PathBuf {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("protocols/pair_verification.toml"))
            .unwrap()
            .replace("operating_far = 1e-3", &format!("operating_far = {far}"));
    let p = dir.join("protocol.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn run_agedb(bench: &str, data: &Path, dir: &Path, out: &str) -> Output {
    let f = fixtures();
    let protocol = protocol_file(dir, expected()["operating_far"].as_f64().unwrap());
    aifr(
        &[
            "run",
            bench,
            "--data-dir",
            data.to_str().unwrap(),
            "--cache-dir",
            "cache",
            "--embeddings",
            f.join("embeddings.npy").to_str().unwrap(),
            "--keys",
            f.join("keys.txt").to_str().unwrap(),
            "--protocol-file",
            protocol.to_str().unwrap(),
            "--out",
            out,
        ],
        dir,
    )
}

#[test]
fn run_agedb_matches_the_numpy_reference() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() <= 1e-12, "{what}: {a} vs {b}");
    for (bench, out) in [("agedb_30", "a30"), ("agedb_5", "a5")] {
        let o = run_agedb(bench, &fixtures().join("data"), dir.path(), out);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(out).join("results.json")).unwrap()).unwrap();
        assert_eq!(r["counts"]["pairs"], 100);
        assert_eq!(r["counts"]["genuine"], 50);
        assert_eq!(r["counts"]["folds"], 10);
        assert_eq!(r["metrics"]["bootstrap"]["unit"], "identity");
        let k = &exp["kfold_strict"];
        let acc = &r["metrics"]["accuracy"];
        assert_eq!(acc["fold_accuracies"], k["fold_accuracies"], "{bench}: fold accuracies");
        for (t, e) in acc["thresholds"].as_array().unwrap().iter().zip(k["thresholds"].as_array().unwrap()) {
            close(t.as_f64().unwrap(), e.as_f64().unwrap(), "fold threshold");
        }
        close(acc["mean"].as_f64().unwrap(), k["mean"].as_f64().unwrap(), "mean accuracy");
        close(r["metrics"]["roc"]["auc"].as_f64().unwrap(), exp["auc"].as_f64().unwrap(), "auc");
        let g = &r["metrics"]["age_gap"];
        close(g["threshold"].as_f64().unwrap(), exp["age_gap"]["threshold"].as_f64().unwrap(), "age-gap threshold");
        for (b, e) in g["bins"].as_array().unwrap().iter().zip(exp["age_gap"]["bins"].as_array().unwrap()) {
            for f in ["lo", "hi", "n_genuine", "n_impostor", "tar", "far", "accuracy"] {
                assert_eq!(b[f], e[f], "{bench} bin {}: {f}", e["lo"]);
            }
            match (b["mean_genuine_score"].as_f64(), e["mean_genuine_score"].as_f64()) {
                (Some(x), Some(y)) => close(x, y, "mean genuine score"),
                (x, y) => assert_eq!(x, y),
            }
        }
        assert!(g["bins"].as_array().unwrap().iter().filter(|b| b["n_genuine"].as_u64() > Some(0)).count() >= 4);
    }
}

#[test]
fn bad_protocol_files_name_the_file_and_the_variable() {
    let f = fixtures();
    let e = read_protocol(&f.join("no_splits.mat"), None).unwrap_err().to_string();
    assert!(
        e.contains("no_splits.mat: no variable 'splits'") && e.contains("variables in the file: pairs, names"),
        "{e}"
    );
    let e = read_protocol(&f.join("bad_label.mat"), None).unwrap_err().to_string();
    assert!(e.ends_with("bad_label.mat: splits{2}: label 0 of pair 3 is neither 1 (same) nor -1 (different)"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mat");
    std::fs::write(&junk, vec![b'x'; 300]).unwrap();
    let e = read_protocol(&junk, None).unwrap_err().to_string();
    assert!(e.contains("junk.mat: byte 126") && e.contains("not a MATLAB Level-5"), "{e}");
    // Truncated compressed file: an offset, never a panic.
    let packed = std::fs::read(f.join("data/AgeDB/01_FINAL_protocol_5_years.mat")).unwrap();
    for cut in [130, 200, packed.len() - 9] {
        std::fs::write(&junk, &packed[..cut]).unwrap();
        let e = read_protocol(&junk, None).unwrap_err().to_string();
        assert!(e.contains("junk.mat: byte"), "cut {cut}: {e}");
    }
}

#[test]
fn missing_images_stop_the_run_with_their_pair() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data/AgeDB");
    let images = root.join("03_Protocol_Images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(
        fixtures().join("data/AgeDB/04_FINAL_protocol_30_years.mat"),
        root.join("04_FINAL_protocol_30_years.mat"),
    )
    .unwrap();
    let pairs = expected()["pairs"].as_array().unwrap().clone();
    let last = pairs.last().unwrap()["b"].as_str().unwrap().to_string();
    for p in &pairs {
        for side in ["a", "b"] {
            let k = p[side].as_str().unwrap();
            if k != last {
                std::fs::write(images.join(k), b"").unwrap();
            }
        }
    }
    let o = run_agedb("agedb_30", &dir.path().join("data"), dir.path(), "out");
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("04_FINAL_protocol_30_years.mat: 1 of the 99 images") && e.contains(&format!("'{last}'")),
        "{e}"
    );
    assert!(e.contains("splits{10}, pair "), "{e}");
    std::fs::write(images.join(&last), b"").unwrap();
    let o = run_agedb("agedb_30", &dir.path().join("data"), dir.path(), "out");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

//! The typed run model reads back every results.json the product writes, byte for byte: a field
//! the model forgot would be dropped on the way back and show up here as a difference.

use aifr_eval::run::results::Results;

fn round_trip(path: &std::path::Path) -> Results {
    let bytes = std::fs::read(path).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let typed = Results::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let again = aifr_eval::io::to_json(&typed);
    assert!(again == bytes, "{}: the typed model does not write back the same bytes", path.display());
    typed
}

#[test]
fn every_kind_of_the_demo_reads_back_byte_for_byte() {
    let demo = crate::support::demo();
    let mut kinds = Vec::new();
    for dir in ["", "agedb30", "agedb_30", "cacd_vs", "fgnet", "ijbc", "megaface_fgnet", "rfw"] {
        let r = round_trip(&demo.join(dir).join("results.json"));
        kinds.push(r.kind_label());
    }
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["FG-NET identification", "IJB", "MegaFace identification", "pair verification"]);
}

/// The committed baseline is a schema-1 run directory written by an earlier build.
#[test]
fn the_committed_schema_1_baseline_reads_back() {
    let r = round_trip(&crate::support::repo().join("tests/baselines/demo/results.json"));
    assert!(matches!(r, Results::Pairs(_)));
}

/// A results.json written before the differentials existed (no `metrics.differentials`, no
/// `metrics.group_accuracy`) still reads back, byte for byte, with none.
#[test]
fn a_run_written_before_the_differentials_reads_back() {
    let path = crate::support::repo().join("tests/fixtures/run_model/results_before_differentials.json");
    let Results::Pairs(r) = round_trip(&path) else { panic!("a pair-verification run") };
    assert!(r.metrics.differentials.is_empty() && r.metrics.group_accuracy.is_none());
}

#[test]
fn foreign_and_damaged_results_are_refused_with_the_reason() {
    let demo = crate::support::demo();
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(demo.join("ijbc/results.json")).unwrap()).unwrap();
    let err = |v: &serde_json::Value| Results::from_value(v.clone()).unwrap_err();
    v["schema_version"] = 99.into();
    assert!(err(&v).contains("schema version 99 is not supported"), "{}", err(&v));
    v["schema_version"] = 1.into();
    v["kind"] = "mystery".into();
    assert!(err(&v).contains("unknown run kind \"mystery\""), "{}", err(&v));
    v["kind"] = "ijb".into();
    v["metrics"]["roc"]["auc"] = "high".into();
    assert!(err(&v).contains("not a valid ijb result"), "{}", err(&v));
    assert!(err(&serde_json::json!({"schema": "other"})).contains("not an aifr-eval results.json"));
}

/// A run written over another kind's run directory leaves none of the other kind's data files:
/// FG-NET over LFW drops pair_scores.npy, MegaFace over that drops curves.json, and the files
/// that remain are this run's.
#[test]
fn a_run_over_another_kinds_directory_leaves_only_its_own_files() {
    let t = tempfile::tempdir().unwrap();
    let demo = crate::support::demo();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for f in ["results.json", "curves.json", "pair_scores.npy"] {
        std::fs::copy(demo.join(f), out.join(f)).unwrap();
    }
    let data = demo.join("data");
    let emb = data.join("embeddings");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(crate::support::EXE).args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let (e, k) = (emb.join("fgnet.npy"), emb.join("fgnet_keys.txt"));
    let (e, k) = (e.to_str().unwrap(), k.to_str().unwrap());
    run(&["run", "fgnet", "--data-dir", d, "--embeddings", e, "--keys", k, "--out", o, "-q"]);
    assert!(!out.join("pair_scores.npy").exists() && out.join("curves.json").exists());
    let kind = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(p.join("results.json")).unwrap()).unwrap()["kind"]
            .clone()
    };
    assert_eq!(kind(&out), "fgnet_identification");
    let distractors = data.join("megaface/embeddings/distractors.aifrstore");
    let mf = ["megaface", "--data-dir", d, "--distractors", "10,100", "--flip", "none", "--embeddings", e, "--keys", k];
    run(&[&mf[..], &["--distractor-embeddings", distractors.to_str().unwrap(), "--out", o, "-q"]].concat());
    assert!(!out.join("curves.json").exists() && !out.join("pair_scores.npy").exists());
    assert!(out.join("cmc_curves.json").exists());
    assert_eq!(kind(&out), "megaface_identification");
}

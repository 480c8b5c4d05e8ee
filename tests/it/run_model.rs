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

/// Rows handed over in memory (the Python bindings' path) give the CLI's results.json byte for
/// byte: the store over them has the fingerprint the imported file store has, and the request →
/// results path is the same. LFW from the demo's arrays, and the `.bin` pack keyed by its order.
#[test]
fn embeddings_in_memory_give_the_clis_results_byte_for_byte() {
    use aifr_eval::app::{evaluate_pairs, ArrayEmbeddings, Embeddings, Env, RunRequest};
    use aifr_eval::store::{import, RowBytes, View};
    use std::sync::Arc;
    let demo = crate::support::demo();
    let data = demo.join("data");
    let tmp = tempfile::tempdir().unwrap();
    let env = Env {
        data_dir: data.clone(),
        registry: aifr_eval::config::Registry::builtin().unwrap(),
        cache_dir: tmp.path().join("cache"),
        trust_store: false,
    };
    let e = |name: &str| data.join("embeddings").join(name);
    for (bench, stem, keys, ages, dir) in
        [("lfw", "embeddings", Some("keys.txt"), "ages.txt", ""), ("agedb30", "bin", None, "bin_ages.txt", "agedb30")]
    {
        // The rows of the demo's .npy files, as the import reads them (a store of them).
        let key_file = match keys {
            Some(k) => e(k),
            None => {
                // A pack's rows need no keys: the import still wants them, in the pack's order.
                let pack = aifr_eval::embed::list::ImageList::from_bin(&data.join("faces_emore/agedb_30.bin")).unwrap();
                let p = tmp.path().join("pack-keys.txt");
                std::fs::write(&p, pack.keys().iter().map(|k| format!("{k}\n")).collect::<String>()).unwrap();
                p
            }
        };
        let src = import::EmbeddingSource {
            embeddings: e(&format!("{stem}.npy")),
            keys: key_file.clone(),
            flip: Some(e(&format!("{stem}_flip.npy"))),
        };
        let store = import::import(&src, &tmp.path().join(format!("{stem}.aifrstore"))).unwrap();
        let view = |v: View| -> Arc<dyn RowBytes> { Arc::new(store.view_bytes(v).to_vec()) };
        let arrays = ArrayEmbeddings {
            label: "embeddings".into(),
            dtype: store.header().dtype,
            count: store.len(),
            dim: store.dim(),
            rows: view(View::Original),
            flip: Some(view(View::Flipped)),
            keys: keys.map(|_| import::read_keys(&key_file).unwrap()),
        };
        let req = RunRequest {
            benchmark: bench.into(),
            embeddings: Embeddings::Arrays(Arc::new(arrays)),
            per_subject_models: false,
            keys: None,
            flip_embeddings: None,
            mode: None,
            flip: None,
            protocol_file: None,
            ages: Some(e(ages)),
            out_dir: tmp.path().join("unused"),
        };
        let ev = evaluate_pairs(&env, &req).unwrap();
        let cli = std::fs::read(demo.join(dir).join("results.json")).unwrap();
        assert!(aifr_eval::io::to_json(&ev.results) == cli, "{bench}: results differ from the CLI's");
        assert!(!tmp.path().join("unused").exists(), "an evaluation alone writes no run directory");
    }
}

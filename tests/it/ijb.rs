//! IJB-B/C: the adapter on real-layout files (errors by file and line), template pooling under
//! every switch combination, 1:1 TAR@FAR under both rules, 1:N TPIR@FPIR strict and ijb_evals,
//! CMC and the legacy numbers, all against tests/fixtures/ijb/*/expected.json from the
//! independent NumPy/scikit-learn script tests/reference/ijb_ref.py; then the CLI end to end.

use aifr_eval::dataset::ijb::{read_release, IjbFiles, IjbRelease};
use aifr_eval::metrics::open_set::FpirRule;
use aifr_eval::metrics::TarRule;
use aifr_eval::protocol::ijb::{identify, pool, score_pairs, verification_metrics, Pooling};
use aifr_eval::store::import::{import, EmbeddingSource};
use aifr_eval::store::EmbeddingStore;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ijb").join(name)
}

fn meta(root: &Path) -> PathBuf {
    root.join("data/IJB_release/IJBC/meta")
}

fn files(root: &Path) -> IjbFiles {
    files_at(&root.join("data/IJB_release/IJBC"))
}

fn expected(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(name).join("expected.json")).unwrap()).unwrap()
}

fn store(root: &Path, dir: &Path) -> EmbeddingStore {
    let src = EmbeddingSource {
        embeddings: root.join("embeddings.npy"),
        keys: root.join("keys.txt"),
        flip: Some(root.join("embeddings_flip.npy")),
    };
    import(&src, &dir.join("s.aifrstore")).unwrap()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
}

use crate::support::copy_dir;

/// Compares TAR@FAR entries (one rule) with the reference list (null = unavailable).
fn check_tar(ours: &[aifr_eval::metrics::TarAtFar], want: &Value, fars: &[f64], rule: TarRule, ctx: &str) {
    for (i, &far) in fars.iter().enumerate() {
        let t = ours.iter().find(|t| t.rule == rule && t.far_target == far).unwrap();
        let w = &want[i];
        if w.is_null() {
            assert!(!t.available && t.tar.is_none(), "{ctx} {rule:?} {far}: expected unavailable");
            continue;
        }
        assert!(t.available, "{ctx} {rule:?} {far}");
        assert_eq!(t.tar, w["tar"].as_f64(), "{ctx} {rule:?} TAR at {far}");
        assert_eq!(t.far, w["far"].as_f64(), "{ctx} {rule:?} FAR at {far}");
        assert_eq!(t.false_accepts, w["false_accepts"].as_u64(), "{ctx} {rule:?} false accepts at {far}");
        match (t.threshold, w["threshold"].as_f64()) {
            (Some(a), Some(b)) => close(a, b, 2e-6, &format!("{ctx} {rule:?} threshold at {far}")),
            (a, b) => assert_eq!(a, b, "{ctx} {rule:?} threshold at {far}"),
        }
    }
}

fn load(name: &str) -> (IjbRelease, EmbeddingStore, tempfile::TempDir, Value) {
    let root = fixture(name);
    let dir = tempfile::tempdir().unwrap();
    let release = read_release(&files(&root), ["G1", "G2"]).unwrap();
    let s = store(&root, dir.path());
    (release, s, dir, expected(name))
}

#[test]
fn adapter_reads_the_fixture_release() {
    let (r, _, _dir, exp) = load("basic");
    let c = &exp["counts"];
    assert_eq!(r.images.len() as u64, c["images"].as_u64().unwrap());
    assert_eq!(r.template_ids.len() as u64, c["templates"].as_u64().unwrap());
    assert_eq!(r.pairs.len() as u64, c["pairs"].as_u64().unwrap());
    let ids: Vec<u64> = exp["template_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(r.template_ids.iter().map(|&t| t as u64).collect::<Vec<_>>(), ids);
    // Landmark rows are shuffled in the fixture: the join is by name.
    let text = std::fs::read_to_string(meta(&fixture("basic")).join("ijbc_name_5pts_score.txt")).unwrap();
    let first = text.lines().next().unwrap();
    let name = first.split(' ').next().unwrap();
    let img = r.images.iter().find(|i| i.name == name).unwrap();
    let vals: Vec<f32> = first.split(' ').skip(1).map(|v| v.parse().unwrap()).collect();
    assert_eq!(img.landmarks[0], [vals[0], vals[1]]);
    assert_eq!(img.landmarks[4], [vals[8], vals[9]]);
    assert_eq!(img.score, vals[10]);
    let one_n = r.one_n.as_ref().unwrap();
    assert_eq!(one_n.galleries.len(), 2);
    assert_eq!(one_n.probes.templates.len() as u64, exp["one_n"]["probes"].as_u64().unwrap());
}

#[test]
fn pooling_switches_and_one_to_one_match_the_reference() {
    let (r, s, _dir, exp) = load("basic");
    let rows = aifr_eval::protocol::ijb::image_rows(&r, &s).unwrap();
    let fars: Vec<f64> = exp["far_targets"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for flip in [true, false] {
        for normalize_images in [false, true] {
            for detector_weight in [true, false] {
                let key = format!("F{}N{}D{}", flip as u8, normalize_images as u8, detector_weight as u8);
                let pooling = Pooling { flip, normalize_images, detector_weight };
                let m = pool(&r, &s, &rows, pooling).unwrap();
                if pooling == Pooling::default() {
                    let want = exp["template_features"].as_array().unwrap();
                    for (t, row) in want.iter().enumerate() {
                        for (j, v) in row.as_array().unwrap().iter().enumerate() {
                            close(m.row(t)[j] as f64, v.as_f64().unwrap(), 1e-6, &format!("template {t} dim {j}"));
                        }
                    }
                }
                let scores = score_pairs(&m, &r.pairs.t1, &r.pairs.t2);
                let (roc, tars, _) = verification_metrics(&scores, &r.pairs.genuine, &fars).unwrap();
                let w = &exp["switches"][&key];
                close(roc.auc, w["auc"].as_f64().unwrap(), 1e-9, &format!("{key} AUC"));
                check_tar(&tars, &w["strict"], &fars, TarRule::Strict, &key);
                check_tar(&tars, &w["nearest"], &fars, TarRule::InsightfaceNearest, &key);
                if pooling == Pooling::default() {
                    // Exact ties between genuine and impostor scores survive f32 scoring; values
                    // closer than an f32 ulp merge as they do in the reference's f64 → f32 rounding.
                    let bits = |g: bool| -> std::collections::BTreeSet<u32> {
                        scores.iter().zip(&r.pairs.genuine).filter(|p| *p.1 == g).map(|p| p.0.to_bits()).collect()
                    };
                    let (gen_bits, imp_bits) = (bits(true), bits(false));
                    let distinct = gen_bits.union(&imp_bits).count() as u64;
                    assert_eq!(distinct, exp["distinct_scores_f32"].as_u64().unwrap());
                    let tied = gen_bits.intersection(&imp_bits).count() as u64;
                    assert_eq!(tied, exp["tied_genuine_impostor"].as_u64().unwrap());
                    assert!(tied > 0, "the fixture must contain ties");
                }
            }
        }
    }
}

#[test]
fn one_to_n_matches_the_reference() {
    let (r, s, _dir, exp) = load("basic");
    let rows = aifr_eval::protocol::ijb::image_rows(&r, &s).unwrap();
    let m = pool(&r, &s, &rows, Pooling::default()).unwrap();
    let fpirs: Vec<f64> = exp["fpir_targets"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let ranks: Vec<u32> = exp["cmc_ranks"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let lfars: Vec<f64> = exp["legacy_fars"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let (id, curves) = identify(&m, r.one_n.as_ref().unwrap(), &fpirs, &ranks, &lfars);
    let want = &exp["one_n"];
    assert_eq!(curves.len(), 2);
    let mut some_below_one_over_n = false;
    for (g, w) in id.galleries.iter().zip(want["galleries"].as_array().unwrap()) {
        assert_eq!(g.mated_probes as u64, w["mated"].as_u64().unwrap(), "{}", g.name);
        assert_eq!(g.nonmated_probes as u64, w["nonmated"].as_u64().unwrap(), "{}", g.name);
        for (rule, key) in [(FpirRule::Strict, "strict"), (FpirRule::IjbEvals, "ijb_evals")] {
            for (i, &f) in fpirs.iter().enumerate() {
                let ours = g.tpir_at_fpir.iter().find(|x| x.rule == rule && x.fpir_target == f).unwrap();
                let ref_ = &w[key][i];
                let ctx = format!("{} {key} FPIR {f}", g.name);
                if ref_.is_null() {
                    some_below_one_over_n = true;
                    assert!(!ours.available, "{ctx}: expected unavailable");
                    continue;
                }
                assert_eq!(ours.tpir, ref_["tpir"].as_f64(), "{ctx}");
                assert_eq!(ours.false_alarms, ref_["false_alarms"].as_u64(), "{ctx}");
                close(ours.threshold.unwrap(), ref_["threshold"].as_f64().unwrap(), 2e-6, &ctx);
            }
        }
        let hits: Vec<u64> = g.cmc.iter().map(|p| p.hits).collect();
        let want_hits: Vec<u64> = w["cmc"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(hits, want_hits, "{} CMC", g.name);
    }
    assert!(some_below_one_over_n, "the fixture must have an FPIR target below 1/N");
    let combined: Vec<u64> = id.cmc.iter().map(|p| p.hits).collect();
    let want_combined: Vec<u64> =
        want["combined_cmc"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(combined, want_combined);
    assert_eq!(id.cmc[0].probes, want["probes"].as_u64().unwrap());
    // Mean of the galleries, ijb_evals rule.
    let mean = id.mean_tpir_at_fpir.iter().find(|x| x.rule == FpirRule::IjbEvals && x.fpir_target == 0.1).unwrap();
    let i = fpirs.iter().position(|&f| f == 0.1).unwrap();
    let g: Vec<f64> =
        want["galleries"].as_array().unwrap().iter().map(|w| w["ijb_evals"][i]["tpir"].as_f64().unwrap()).collect();
    close(mean.tpir.unwrap(), (g[0] + g[1]) / 2.0, 1e-15, "mean TPIR");
    // Legacy: merged gallery, labelled.
    let l = &id.legacy;
    assert!(l.available && l.label.contains("legacy") && l.label.contains("Not comparable"), "{}", l.label);
    let lw = &want["legacy"];
    let hits: Vec<u64> = l.cmc.iter().map(|p| p.hits).collect();
    let want_hits: Vec<u64> = lw["cmc"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(hits, want_hits, "legacy CMC");
    for (p, w) in l.points.iter().zip(lw["points"].as_array().unwrap()) {
        assert_eq!(p.k, w["k"].as_u64().unwrap());
        assert_eq!(p.tpr, w["tpr"].as_f64(), "legacy TPR at {}", p.legacy_far);
        close(p.threshold.unwrap(), w["threshold"].as_f64().unwrap(), 2e-6, "legacy threshold");
    }
}

// ---------------------------------------------------------------------------------------------
// Adapter errors

/// A writable copy of the fixture release with `file` replaced by `edit(text)`.
fn edited(file: &str, edit: impl Fn(&str) -> String) -> (tempfile::TempDir, IjbFiles) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("basic"), dir.path());
    let p = meta(dir.path()).join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, edit(&text)).unwrap();
    let f = files(dir.path());
    (dir, f)
}

fn error_of(file: &str, edit: impl Fn(&str) -> String) -> String {
    let (_dir, f) = edited(file, edit);
    read_release(&f, ["G1", "G2"]).unwrap_err().to_string()
}

#[test]
fn pairs_with_unknown_templates_are_errors_with_the_line() {
    let e = error_of("ijbc_template_pair_label.txt", |t| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        lines[6] = "999999 5 0".into();
        lines.join("\n") + "\n"
    });
    assert!(e.contains("ijbc_template_pair_label.txt:7:") && e.contains("template 999999"), "{e}");
}

#[test]
fn duplicated_rows_are_errors() {
    let e = error_of("ijbc_template_pair_label.txt", |t| {
        let first = t.lines().next().unwrap().to_string();
        format!("{t}{first}\n")
    });
    assert!(e.contains("is listed again (first on line 1)"), "{e}");
    let e = error_of("ijbc_face_tid_mid.txt", |t| {
        let first = t.lines().next().unwrap().to_string();
        format!("{t}{first}\n")
    });
    assert!(e.contains("ijbc_face_tid_mid.txt:") && e.contains("listed again"), "{e}");
}

#[test]
fn landmark_rows_must_match_the_face_list() {
    // A face without landmarks.
    let e = error_of("ijbc_name_5pts_score.txt", |t| t.lines().skip(1).collect::<Vec<_>>().join("\n") + "\n");
    assert!(e.contains("ijbc_face_tid_mid.txt:") && e.contains("has no landmark row"), "{e}");
    // Landmarks for an unknown image.
    let e = error_of("ijbc_name_5pts_score.txt", |t| format!("{t}nope.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n"));
    let n = std::fs::read_to_string(meta(&fixture("basic")).join("ijbc_name_5pts_score.txt")).unwrap().lines().count();
    assert!(e.contains(&format!("ijbc_name_5pts_score.txt:{}:", n + 1)) && e.contains("'nope.jpg'"), "{e}");
    // A malformed landmark row.
    let e = error_of("ijbc_name_5pts_score.txt", |t| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        lines[2] = lines[2].rsplit_once(' ').unwrap().0.to_string();
        lines.join("\n") + "\n"
    });
    assert!(e.contains("ijbc_name_5pts_score.txt:3:") && e.contains("12 space-separated fields, found 11"), "{e}");
}

#[test]
fn one_to_n_lists_are_checked() {
    let e = error_of("ijbc_1N_gallery_G1.csv", |t| format!("{t}424242,7,x.jpg,1\n"));
    assert!(e.contains("ijbc_1N_gallery_G1.csv:") && e.contains("template 424242"), "{e}");
    let e = error_of("ijbc_1N_probe_mixed.csv", |t| {
        let second = t.lines().nth(1).unwrap();
        let (tid, rest) = second.split_once(',').unwrap();
        let (_, rest) = rest.split_once(',').unwrap();
        format!("{t}{tid},99999,{rest}\n")
    });
    assert!(e.contains("ijbc_1N_probe_mixed.csv:") && e.contains("subject 99999"), "{e}");
    // Two templates of one subject in a gallery: give the second template the first one's subject.
    let e = error_of("ijbc_1N_gallery_G1.csv", |t| {
        let rows: Vec<Vec<String>> = t.lines().map(|l| l.split(',').map(str::to_string).collect()).collect();
        let (ta, sa) = (rows[1][0].clone(), rows[1][1].clone());
        let tb = rows.iter().skip(1).find(|r| r[0] != ta).unwrap()[0].clone();
        let fixed: Vec<String> = rows
            .into_iter()
            .map(|mut r| {
                if r[0] == tb {
                    r[1] = sa.clone();
                }
                r.join(",")
            })
            .collect();
        fixed.join("\n") + "\n"
    });
    assert!(e.contains("two templates") && e.contains("gallery G1"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The synthetic generator and the CLI

#[test]
fn synthetic_release_round_trips_through_the_adapter() {
    use aifr_eval::synth::ijb::{generate, SynthSpec};
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec::small(3);
    let root = dir.path().join("IJBC");
    let synth = generate(&spec, &root).unwrap();
    let r = read_release(&files_at(&root), ["G1", "G2"]).unwrap();
    assert_eq!(r.images.len(), spec.images);
    assert_eq!(r.template_ids.len(), spec.subjects + spec.probe_templates);
    assert_eq!(r.pairs.len(), spec.probe_templates * (spec.impostors_per_probe + 1));
    assert_eq!(r.pairs.genuine.iter().filter(|&&g| g).count(), spec.probe_templates);
    let names: Vec<&str> = r.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, synth.names.iter().map(String::as_str).collect::<Vec<_>>());
    let p = synth.write_store(&dir.path().join("s.aifrstore")).unwrap();
    let s = EmbeddingStore::open(&p).unwrap();
    let params = aifr_eval::protocol::ijb::IjbParams {
        pooling: Pooling::default(),
        far_targets: vec![1e-3, 1e-2, 1e-1],
        fpir_targets: vec![1e-2, 1e-1],
        cmc_ranks: vec![1, 5],
        legacy_fars: vec![0.1],
    };
    let out = aifr_eval::protocol::ijb::evaluate(&r, &s, &params).unwrap();
    // The copied templates tie genuine and impostor scores exactly.
    let rows = aifr_eval::protocol::ijb::image_rows(&r, &s).unwrap();
    let m = pool(&r, &s, &rows, Pooling::default()).unwrap();
    let scores = score_pairs(&m, &r.pairs.t1, &r.pairs.t2);
    let bits = |g: bool| -> std::collections::BTreeSet<u32> {
        scores.iter().zip(&r.pairs.genuine).filter(|p| *p.1 == g).map(|p| p.0.to_bits()).collect()
    };
    assert!(bits(true).intersection(&bits(false)).count() > 0, "the synthetic release must contain ties");
    // Genuine pairs should mostly beat impostors.
    assert!(out.metrics.roc.auc > 0.8, "{}", out.metrics.roc.auc);
    assert!(
        out.metrics.identification.as_ref().unwrap().cmc[1].rate
            >= out.metrics.identification.as_ref().unwrap().cmc[0].rate
    );
}

fn files_at(root: &Path) -> IjbFiles {
    IjbFiles::in_release(root, "ijbc", ["G1", "G2"])
}

fn cli(dir: &Path, out: &str, threads: &str) -> std::process::Output {
    let root = dir.join("case");
    Command::new(crate::support::EXE)
        .env_remove("AIFR_DATA_DIR")
        .env_remove("AIFR_DATASETS")
        .env("RAYON_NUM_THREADS", threads)
        .args(["run", "ijbc", "--data-dir"])
        .arg(root.join("data"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--embeddings")
        .arg(root.join("embeddings.npy"))
        .arg("--keys")
        .arg(root.join("keys.txt"))
        .arg("--flip-embeddings")
        .arg(root.join("embeddings_flip.npy"))
        .arg("--out")
        .arg(dir.join(out))
        .output()
        .unwrap()
}

#[test]
fn cli_end_to_end_on_the_real_layout() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("basic"), &dir.path().join("case"));
    let o = cli(dir.path(), "run1", "2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("1:N") && stdout.contains("legacy"), "{stdout}");
    let run1 = dir.path().join("run1");
    let results: Value = serde_json::from_slice(&std::fs::read(run1.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["kind"], "ijb");
    assert_eq!(results["protocol"]["pooling"]["detector_weight"], true);
    assert_eq!(results["protocol"]["flip_fusion"], "sum");
    let exp = expected("basic");
    let strict = results["metrics"]["tar_at_far"].as_array().unwrap();
    let want = &exp["switches"]["F1N0D1"]["strict"];
    let i = exp["far_targets"].as_array().unwrap().iter().position(|f| f.as_f64() == Some(1e-2)).unwrap();
    let e = strict.iter().find(|e| e["rule"] == "strict" && e["far_target"].as_f64() == Some(1e-2)).unwrap();
    assert_eq!(e["tar"], want[i]["tar"]);
    for f in ["report.html", "roc.png", "tpir_fpir.png", "curves.json", "summary.md", "timings.json"] {
        assert!(run1.join(f).exists(), "{f}");
    }
    assert!(!run1.join("pair_scores.npy").exists());
    let html = std::fs::read_to_string(run1.join("report.html")).unwrap();
    assert!(html.contains("1:N open-set identification") && html.contains("Legacy merged-gallery"), "report");
    // The paper table reads the documented fields.
    let md = std::fs::read_to_string(run1.join("summary.md")).unwrap();
    let row = md.lines().nth(2).unwrap();
    let tar =
        want[exp["far_targets"].as_array().unwrap().iter().position(|f| f.as_f64() == Some(1e-4)).unwrap()].clone();
    let cell = if tar.is_null() { "–".to_string() } else { format!("{:.2}", 100.0 * tar["tar"].as_f64().unwrap()) };
    assert_eq!(row.split('|').nth(6).unwrap().trim(), cell, "{md}");
    // Deterministic whatever the thread count.
    let o = cli(dir.path(), "run2", "1");
    assert!(o.status.success());
    for f in ["results.json", "curves.json"] {
        assert_eq!(
            std::fs::read(run1.join(f)).unwrap(),
            std::fs::read(dir.path().join("run2").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn cli_without_one_to_n_lists_and_with_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("basic"), &dir.path().join("case"));
    let m = meta(&dir.path().join("case"));
    for f in ["ijbc_1N_gallery_G1.csv", "ijbc_1N_gallery_G2.csv", "ijbc_1N_probe_mixed.csv"] {
        std::fs::remove_file(m.join(f)).unwrap();
    }
    let o = cli(dir.path(), "run", "2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results: Value = serde_json::from_slice(&std::fs::read(dir.path().join("run/results.json")).unwrap()).unwrap();
    assert!(results["metrics"]["identification"].is_null());
    assert!(results["metrics"]["identification_note"].as_str().unwrap().contains("1:N"));
    // An unknown template in the pair file: exit 3, file and line named, nothing written.
    let pairs = m.join("ijbc_template_pair_label.txt");
    let text = std::fs::read_to_string(&pairs).unwrap();
    std::fs::write(&pairs, format!("{text}123456 5 1\n")).unwrap();
    let o = cli(dir.path(), "bad", "2");
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ijbc_template_pair_label.txt:") && err.contains("template 123456"), "{err}");
    assert!(!dir.path().join("bad/results.json").exists());
}

#[test]
fn cli_runs_ijbb_from_a_store_on_a_generated_release() {
    use aifr_eval::synth::ijb::{generate, SynthSpec};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = SynthSpec { prefix: "ijbb".into(), ..SynthSpec::small(5) };
    let synth = generate(&spec, &data.join("IJB_release/IJBB")).unwrap();
    let store = synth.write_store(&dir.path().join("ijbb.aifrstore")).unwrap();
    let run = |args: &[&str]| {
        Command::new(crate::support::EXE)
            .env_remove("AIFR_DATA_DIR")
            .env_remove("AIFR_DATASETS")
            .current_dir(dir.path())
            .args(["run", "ijbb", "--data-dir", "data", "--cache-dir", "cache"])
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["--embeddings", store.to_str().unwrap(), "--out", "out"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(dir.path().join("out/results.json")).unwrap()).unwrap();
    let galleries: Vec<&str> = r["metrics"]["identification"]["galleries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(galleries, ["S1", "S2"]);
    assert_eq!(r["counts"]["images"], spec.images);
    // A corrupt store and a missing data directory: clear errors with their exit codes.
    std::fs::write(dir.path().join("bad.aifrstore"), b"not a store at all").unwrap();
    let o = run(&["--embeddings", "bad.aifrstore", "--out", "bad"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("too short for an embedding store"));
    std::fs::remove_dir_all(data.join("IJB_release/IJBB/meta")).unwrap();
    let o = run(&["--embeddings", store.to_str().unwrap(), "--out", "bad"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ijbb_face_tid_mid.txt"));
}

/// `run ijbc --model`: every loose crop aligned with its landmarks and embedded, then evaluated
/// exactly as `embed` + `run --embeddings` would.
#[test]
fn cli_run_with_model_aligns_and_embeds_the_crops() {
    use aifr_eval::synth::ijb::{generate, SynthSpec};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data/IJB_release/IJBC");
    let spec = SynthSpec { images: 240, probe_templates: 40, ..SynthSpec::small(7) };
    let synth = generate(&spec, &root).unwrap();
    let crops = root.join("loose_crop");
    std::fs::create_dir_all(&crops).unwrap();
    for (i, name) in synth.names.iter().enumerate() {
        let img = ::image::RgbImage::from_fn(128, 128, |x, y| {
            let v = ((x as f32 * (0.05 + (i % 7) as f32 * 0.01)).sin() * 90.0 + 128.0) as u8;
            ::image::Rgb([v, ((y as usize * 3 + i * 13) % 256) as u8, (i % 256) as u8])
        });
        img.save_with_format(crops.join(name), ::image::ImageFormat::Png).unwrap();
    }
    std::fs::write(dir.path().join("w.bin"), b"seed").unwrap();
    let run = |args: &[&str]| {
        Command::new(crate::support::EXE)
            .env_remove("AIFR_DATA_DIR")
            .env_remove("AIFR_DATASETS")
            .current_dir(dir.path())
            .args(["--data-dir", "data", "--cache-dir", "cache"])
            .args(args)
            .output()
            .unwrap()
    };
    let model = ["--model", "w.bin", "--arch", "test-net"];
    let o = run(&[&["run", "ijbc", "--out", "a", "-q"][..], &model].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[&["embed", "ijbc", "-o", "s.aifrstore"][..], &model].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.aifrstore.meta.json")).unwrap()).unwrap();
    assert_eq!(meta["input"]["aligned_images"], spec.images, "{meta}");
    let o = run(&["run", "ijbc", "--embeddings", "s.aifrstore", "--out", "b", "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = std::fs::read_to_string(dir.path().join("a/results.json")).unwrap();
    let b = std::fs::read_to_string(dir.path().join("b/results.json")).unwrap();
    assert_eq!(a, b);
    let r: Value = serde_json::from_str(&a).unwrap();
    assert_eq!(r["embeddings"]["model"]["arch"], "test-net", "{}", r["embeddings"]);
    // A missing crop is named (exit 4).
    std::fs::remove_file(crops.join(&synth.names[3])).unwrap();
    let o = run(&[&["run", "ijbc", "--out", "c", "-q"][..], &model].concat());
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&synth.names[3]));
    // Skipping it is refused: a template would silently lose a crop.
    let o = run(&[&["run", "ijbc", "--out", "d", "-q", "--skip-bad-images"][..], &model].concat());
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("IJB templates need every crop"));
}

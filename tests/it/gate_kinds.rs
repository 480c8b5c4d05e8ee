//! The gate on every run kind, through the CLI as CI uses it: a run against itself passes (0), a
//! run of the same benchmark with degraded embeddings fails (6) naming what regressed, and a run
//! of another benchmark or protocol is refused (3), never passed.
//!
//! The degraded runs are real evaluations: the demo's embeddings with seeded Gaussian noise
//! added to every row, evaluated by the same command as the baseline.

use crate::support::{demo, EXE};
use aifr_eval::store::{EmbeddingStore, View};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Noise of the degraded runs, relative to each row's own scale: per coordinate a normal
/// deviate with standard deviation NOISE·‖row‖/√d, so the noise vector is about NOISE times as
/// long as the row (the demo's embeddings are not unit-norm).
const NOISE: f32 = 1.0;

fn aifr(dir: &Path, args: &[&str]) -> Output {
    Command::new(EXE).args(args).current_dir(dir).output().unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Rows of a float32 .npy.
fn read_npy(path: &Path) -> (usize, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let cols = npy.shape()[1] as usize;
    (cols, npy.into_vec::<f32>().unwrap())
}

/// `rows` (row-major, `cols` wide) plus seeded noise (relative, see NOISE), as a float32 .npy.
fn write_noisy(path: &Path, cols: usize, rows: &[f32], seed: u64, noise: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    let mut data = rows.to_vec();
    if noise > 0.0 {
        for row in data.chunks_exact_mut(cols) {
            let sd = noise * row.iter().map(|x| x * x).sum::<f32>().sqrt() / (cols as f32).sqrt();
            row.iter_mut().for_each(|x| *x += sd * normal.sample(&mut rng));
        }
    }
    aifr_eval::store::import::write_npy_f32(path, rows.len() / cols, cols, &data).unwrap();
}

/// A store's rows, keys and mirrored rows as .npy + keys.txt (noise added when `noise` > 0).
fn export_store(store: &Path, dir: &Path, stem: &str, noise: f32) -> (PathBuf, PathBuf, PathBuf) {
    let s = EmbeddingStore::open(store).unwrap();
    let (n, d) = (s.len(), s.dim());
    let mut rows = vec![0f32; n * d];
    let mut flip = vec![0f32; n * d];
    for i in 0..n {
        s.read_row(i, View::Original, &mut rows[i * d..(i + 1) * d]);
        s.read_row(i, View::Flipped, &mut flip[i * d..(i + 1) * d]);
    }
    let keys: Vec<&str> = (0..n).map(|i| s.key(i)).collect();
    let (e, f, k) =
        (dir.join(format!("{stem}.npy")), dir.join(format!("{stem}_flip.npy")), dir.join(format!("{stem}_keys.txt")));
    write_noisy(&e, d, &rows, 1, noise);
    write_noisy(&f, d, &flip, 2, noise);
    std::fs::write(&k, keys.join("\n") + "\n").unwrap();
    (e, f, k)
}

fn gate(dir: &Path, current: &str, baseline: &str) -> Output {
    aifr(dir, &["gate", current, "--baseline", baseline])
}

/// 0 against itself, 6 against the degraded run with `regressed` among the failing rows (those
/// in `significant` with a paired bootstrap interval that excludes 0), 3 against `other`
/// (another benchmark or protocol).
fn check_kind(dir: &Path, base: &str, worse: &str, regressed: &[&str], significant: &[&str], others: &[&str]) {
    let same = gate(dir, base, base);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&same.stdout),
        String::from_utf8_lossy(&same.stderr)
    );
    let o = gate(dir, worse, base);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(6), "{table}{}", String::from_utf8_lossy(&o.stderr));
    for metric in regressed {
        let line = table.lines().find(|l| l.split_whitespace().next() == Some(metric));
        assert!(line.is_some_and(|l| l.contains("REGRESSED")), "{metric} should have regressed:\n{table}");
    }
    for metric in significant {
        // The table's note lines: "  <metric>: worse by …; 95% interval of Δ […] excludes 0".
        let note = table.lines().find(|l| l.trim_start().starts_with(&format!("{metric}: ")));
        assert!(
            note.is_some_and(|l| l.contains("interval of Δ") && l.contains("excludes 0")),
            "{metric} should carry a paired bootstrap interval:\n{table}"
        );
    }
    for other in others {
        let o = gate(dir, other, base);
        assert_eq!(o.status.code(), Some(3), "{other}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("cannot gate"), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn ijb_runs_are_gated_on_tar_tpir_and_rank1() {
    let t = tempfile::tempdir().unwrap();
    let data = demo().join("data");
    let store = data.join("embeddings/ijbc.aifrstore");
    for (stem, noise) in [("base", 0.0), ("worse", NOISE)] {
        let (e, f, k) = export_store(&store, t.path(), stem, noise);
        let data = data.to_str().unwrap();
        let args = ["run", "ijbc", "--data-dir", data, "--embeddings", e.to_str().unwrap()];
        let more = ["--keys", k.to_str().unwrap(), "--flip-embeddings", f.to_str().unwrap(), "--out", stem, "-q"];
        ok(&aifr(t.path(), &[&args[..], &more[..]].concat()));
    }
    // The same embeddings without flip pooling: another protocol.
    let data_s = data.to_str().unwrap();
    let (e, k) = (t.path().join("base.npy"), t.path().join("base_keys.txt"));
    let args =
        ["run", "ijbc", "--data-dir", data_s, "--embeddings", e.to_str().unwrap(), "--keys", k.to_str().unwrap()];
    ok(&aifr(t.path(), &[&args[..], &["--out", "noflip", "-q"]].concat()));
    let lfw = demo().to_str().unwrap().to_string();
    check_kind(
        t.path(),
        "base",
        "worse",
        &["tar@far=1e-3", "nearest:tar@far=1e-3", "tpir@fpir=1e-1@G1", "ijb_evals:tpir@fpir=1e-1@G2", "rank1@G1"],
        &["rank1@G1", "rank1"],
        &["noflip", &lfw],
    );
}

#[test]
fn fgnet_runs_are_gated_on_rank1_overall_and_by_age() {
    let t = tempfile::tempdir().unwrap();
    let data = demo().join("data");
    let emb = data.join("embeddings");
    let (cols, rows) = read_npy(&emb.join("fgnet.npy"));
    let keys = emb.join("fgnet_keys.txt");
    for (stem, noise) in [("base", 0.0), ("worse", NOISE)] {
        let npy = t.path().join(format!("{stem}.npy"));
        write_noisy(&npy, cols, &rows, 3, noise);
        let args = ["run", "fgnet", "--data-dir", data.to_str().unwrap(), "--embeddings", npy.to_str().unwrap()];
        ok(&aifr(t.path(), &[&args[..], &["--keys", keys.to_str().unwrap(), "--out", stem, "-q"]].concat()));
    }
    let ijbc = demo().join("ijbc");
    check_kind(t.path(), "base", "worse", &["rank1", "auc"], &["rank1"], &[ijbc.to_str().unwrap()]);
}

#[test]
fn megaface_runs_are_gated_per_distractor_set() {
    let t = tempfile::tempdir().unwrap();
    let data = demo().join("data");
    let emb = data.join("embeddings");
    let (cols, rows) = read_npy(&emb.join("fgnet.npy"));
    let keys = emb.join("fgnet_keys.txt");
    let distractors = data.join("megaface/embeddings/distractors.aifrstore");
    let run = |stem: &str, npy: &Path, clean: &str| {
        let args =
            ["megaface", "--data-dir", data.to_str().unwrap(), "--distractors", "10,100,1k,10k", "--flip", "none"];
        let files = ["--embeddings", npy.to_str().unwrap(), "--keys", keys.to_str().unwrap()];
        let more = ["--distractor-embeddings", distractors.to_str().unwrap(), "--clean", clean, "--out", stem, "-q"];
        ok(&aifr(t.path(), &[&args[..], &files[..], &more[..]].concat()));
    };
    for (stem, noise) in [("base", 0.0), ("worse", NOISE)] {
        let npy = t.path().join(format!("{stem}.npy"));
        write_noisy(&npy, cols, &rows, 4, noise);
        run(stem, &npy, "none");
    }
    let fgnet = demo().join("fgnet");
    check_kind(t.path(), "base", "worse", &["rank1@10k"], &["rank1@10k"], &[fgnet.to_str().unwrap()]);
}

#[test]
fn manifest_runs_are_gated_on_verification_rank1_and_strata() {
    let t = tempfile::tempdir().unwrap();
    let data = demo().join("data");
    let emb = data.join("embeddings");
    let (cols, rows) = read_npy(&emb.join("embeddings.npy"));
    let keys = emb.join("keys.txt");
    let manifest = data.join("manifest.csv");
    let run = |stem: &str, noise: f32, extra: &[&str]| {
        let npy = t.path().join(format!("{stem}.npy"));
        write_noisy(&npy, cols, &rows, 5, noise);
        let args = ["run", "--manifest", manifest.to_str().unwrap(), "--embeddings", npy.to_str().unwrap()];
        let more = ["--keys", keys.to_str().unwrap(), "--out", stem, "-q"];
        ok(&aifr(t.path(), &[&args[..], &more[..], extra].concat()));
    };
    run("base", 0.0, &[]);
    run("worse", NOISE, &[]);
    // Another gallery rule: another protocol.
    run("oldest", 0.0, &["--gallery", "oldest"]);
    check_kind(t.path(), "base", "worse", &["accuracy", "rank1@gallery"], &["accuracy"], &["oldest"]);
}

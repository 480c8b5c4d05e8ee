//! The image pipeline and extraction: alignment against the NumPy reference, resumption,
//! reuse, bad images, the flip view, and the CLI end to end on a tiny LFW-layout dataset with
//! real JPEG/PNG files.

use aifr_eval::app::embed::{embed_benchmark, run_with_model, ModelRequest};
use aifr_eval::app::Env;
use aifr_eval::config::Registry;
use aifr_eval::embed::extract::ExtractOptions;
use aifr_eval::image::align::{similarity_lstsq, ARCFACE_TEMPLATE};
use aifr_eval::image::{to_network_size, Rgb};
use aifr_eval::model::InputSpec;
use aifr_eval::store::{EmbeddingStore, View};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const NAMES: [&str; 4] = ["Ann_Lee", "Bo_Chen", "Cy_Diaz", "Di_Evans"];

/// A tiny LFW layout: 2 folds × (2 matched + 2 mismatched) pairs, 250×250 images of 4 people,
/// JPEG and PNG files (all named `.jpg`, as LFW's are; the decoder goes by the bytes).
struct Tiny {
    dir: tempfile::TempDir,
}

fn face(person: usize, shot: usize, mirror: bool) -> ::image::RgbImage {
    ::image::RgbImage::from_fn(250, 250, |x, y| {
        let x = if mirror { 249 - x } else { x };
        let (fx, fy) = (x as f32 / 250.0, y as f32 / 250.0);
        let base = ((fx * (3.0 + person as f32) + fy * 2.0).sin() * 100.0 + 128.0) as u8;
        let shade = ((fx * 7.0 + shot as f32).cos() * 20.0 + (person * 40) as f32) as u8;
        ::image::Rgb([base, shade, base.wrapping_add((x / 25) as u8 * 9)])
    })
}

fn encode(img: &::image::RgbImage, format: ::image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

impl Tiny {
    fn new() -> Tiny {
        let dir = tempfile::tempdir().unwrap();
        let lfw = dir.path().join("data/lfw");
        let pairs = "2\t2\nAnn_Lee\t1\t2\nBo_Chen\t1\t2\nAnn_Lee\t1\tBo_Chen\t1\nAnn_Lee\t2\tBo_Chen\t2\n\
                     Cy_Diaz\t1\t2\nDi_Evans\t1\t2\nCy_Diaz\t1\tDi_Evans\t1\nCy_Diaz\t2\tDi_Evans\t2\n";
        std::fs::create_dir_all(&lfw).unwrap();
        std::fs::write(lfw.join("pairs.txt"), pairs).unwrap();
        for (p, name) in NAMES.iter().enumerate() {
            let d = lfw.join("lfw").join(name);
            std::fs::create_dir_all(&d).unwrap();
            for shot in 1..=2 {
                let format = if shot == 1 { ::image::ImageFormat::Jpeg } else { ::image::ImageFormat::Png };
                std::fs::write(d.join(format!("{name}_{shot:04}.jpg")), encode(&face(p, shot, false), format)).unwrap();
            }
        }
        std::fs::write(dir.path().join("weights.bin"), b"test-net weights, seed text").unwrap();
        Tiny { dir }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn image(&self, key: &str) -> PathBuf {
        self.root().join("data/lfw/lfw").join(key)
    }
    fn env(&self) -> Env {
        Env {
            data_dir: self.root().join("data"),
            registry: Registry::builtin().unwrap(),
            cache_dir: self.root().join("cache"),
            trust_store: false,
        }
    }
    fn model(&self, batch_size: usize) -> ModelRequest {
        ModelRequest {
            weights: self.root().join("weights.bin"),
            arch: Some("test-net".into()),
            device: "cpu".into(),
            dtype: "f32".into(),
            options: ExtractOptions { batch_size, progress: false, ..Default::default() },
        }
    }
    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(crate::support::EXE)
            .args(["--data-dir", "data", "--cache-dir", "cache"])
            .args(args)
            .current_dir(self.root())
            .output()
            .unwrap()
    }
}

fn approx(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

/// Rebuilds the reference script's synthetic image.
fn synthetic(w: usize, h: usize) -> Rgb {
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                data.push(((7 * x + 13 * y + 50 * c + (x * y) % 11) % 256) as u8);
            }
        }
    }
    Rgb { width: w, height: h, data }
}

fn check_summary(out: &[f32], expect: &Value, what: &str) {
    for c in 0..3 {
        let sum: f64 = out.iter().skip(c).step_by(3).map(|&v| v as f64).sum();
        let want = expect["channel_sums"][c].as_f64().unwrap();
        assert!(approx(sum, want, 1e-6), "{what}: channel {c} sum {sum} vs NumPy {want}");
    }
    for s in expect["samples"].as_array().unwrap() {
        let (x, y, c) = (s[0].as_u64().unwrap() as usize, s[1].as_u64().unwrap() as usize, s[2].as_u64().unwrap());
        let got = out[(y * 112 + x) * 3 + c as usize] as f64;
        let want = s[3].as_f64().unwrap();
        assert!((got - want).abs() < 1e-3, "{what}: pixel ({x},{y},{c}) = {got}, NumPy {want}");
    }
}

#[test]
fn alignment_and_warp_match_the_numpy_reference() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align/align_ref.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spec = InputSpec::arcface();
    let mut warped = 0;
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let lm: Vec<[f64; 2]> = case["landmarks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
            .collect();
        let m = similarity_lstsq(&lm, &ARCFACE_TEMPLATE).unwrap();
        for r in 0..2 {
            for k in 0..3 {
                let want = case["matrix"][r][k].as_f64().unwrap();
                assert!((m.0[r][k] - want).abs() < 1e-9, "{name}: M[{r}][{k}] = {} vs NumPy {want}", m.0[r][k]);
            }
        }
        if let Some(w) = case.get("warp") {
            let img = synthetic(w["width"].as_u64().unwrap() as usize, w["height"].as_u64().unwrap() as usize);
            // The fixture's landmarks are exact in f32.
            let lm32: [[f32; 2]; 5] = std::array::from_fn(|i| [lm[i][0] as f32, lm[i][1] as f32]);
            let out = to_network_size(&img, Some(&lm32), &spec).unwrap();
            check_summary(&out, w, name);
            warped += 1;
        }
    }
    assert_eq!(warped, 1);
    let r = &fx["resize"];
    let img = synthetic(r["width"].as_u64().unwrap() as usize, r["height"].as_u64().unwrap() as usize);
    check_summary(&to_network_size(&img, None, &spec).unwrap(), r, "resize");
}

#[test]
fn interrupted_extraction_resumes_to_an_identical_store() {
    let t = Tiny::new();
    let env = t.env();
    let whole = t.root().join("whole.aifrstore");
    let r = embed_benchmark(&env, "lfw", &t.model(3), Some(&whole)).unwrap();
    assert!(r.extraction.complete && r.extraction.computed == 8);

    let cut = t.root().join("cut.aifrstore");
    let mut m = t.model(3);
    m.options.stop_after_batches = Some(1);
    let r = embed_benchmark(&env, "lfw", &m, Some(&cut)).unwrap();
    assert!(!r.extraction.complete && !cut.exists());
    assert!(t.root().join("cut.aifrstore.partial").exists() && t.root().join("cut.aifrstore.progress").exists());
    let r = embed_benchmark(&env, "lfw", &t.model(3), Some(&cut)).unwrap();
    assert_eq!((r.extraction.complete, r.extraction.resumed_rows, r.extraction.computed), (true, 3, 5));
    assert_eq!(std::fs::read(&whole).unwrap(), std::fs::read(&cut).unwrap());
    assert!(!t.root().join("cut.aifrstore.partial").exists() && !t.root().join("cut.aifrstore.progress").exists());
    let meta = |p: &str| std::fs::read(t.root().join(p)).unwrap();
    assert_eq!(meta("whole.aifrstore.meta.json"), meta("cut.aifrstore.meta.json"));
    EmbeddingStore::open(&cut).unwrap().verify().unwrap();

    // Another model's partial is not continued: it starts afresh and still matches its own run.
    let mut m = t.model(3);
    m.options.stop_after_batches = Some(2);
    embed_benchmark(&env, "lfw", &m, Some(&t.root().join("x.aifrstore"))).unwrap();
    std::fs::write(t.root().join("weights.bin"), b"other weights").unwrap();
    let r = embed_benchmark(&env, "lfw", &t.model(3), Some(&t.root().join("x.aifrstore"))).unwrap();
    assert_eq!((r.extraction.resumed_rows, r.extraction.computed), (0, 8));
}

#[test]
fn a_finished_store_is_reused_and_a_changed_image_is_not() {
    let t = Tiny::new();
    let env = t.env();
    let first = embed_benchmark(&env, "lfw", &t.model(4), None).unwrap();
    assert!(first.extraction.store.starts_with(t.root().join("cache/embeddings")));
    let again = embed_benchmark(&env, "lfw", &t.model(4), None).unwrap();
    assert!(again.extraction.reused && again.extraction.computed == 0);
    assert_eq!(again.extraction.store, first.extraction.store);
    // One image changes: another fingerprint, a new store.
    let img = t.image("Bo_Chen/Bo_Chen_0002.jpg");
    std::fs::write(&img, encode(&face(3, 3, false), ::image::ImageFormat::Png)).unwrap();
    let changed = embed_benchmark(&env, "lfw", &t.model(4), None).unwrap();
    assert!(!changed.extraction.reused && changed.extraction.computed == 8);
    assert_ne!(changed.extraction.store, first.extraction.store);
}

#[test]
fn bad_images_are_named_and_can_be_skipped_explicitly() {
    let t = Tiny::new();
    let env = t.env();
    let key = "Cy_Diaz/Cy_Diaz_0002.jpg"; // a PNG: truncation is always detectable
    let bytes = std::fs::read(t.image(key)).unwrap();
    std::fs::write(t.image(key), &bytes[..bytes.len() / 3]).unwrap();
    let e = embed_benchmark(&env, "lfw", &t.model(4), None).unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(e.to_string().contains(&t.image(key).display().to_string()), "{e}");
    assert!(e.to_string().contains("--skip-bad-images"), "{e}");

    std::fs::remove_file(t.image(key)).unwrap();
    let e = embed_benchmark(&env, "lfw", &t.model(4), None).unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    assert!(e.to_string().contains(&t.image(key).display().to_string()), "{e}");

    std::fs::write(t.image(key), b"not an image").unwrap();
    let mut m = t.model(4);
    m.options.skip_bad_images = true;
    let req = aifr_eval::app::RunRequest {
        benchmark: "lfw".into(),
        embeddings: PathBuf::new().into(),
        per_subject_models: false,
        keys: None,
        flip_embeddings: None,
        mode: None,
        flip: None,
        protocol_file: None,
        ages: None,
        out_dir: t.root().join("run"),
    };
    let (embedded, run) = run_with_model(&env, &req, &m).unwrap();
    assert_eq!(embedded.extraction.skipped.len(), 1);
    let store = EmbeddingStore::open(&embedded.extraction.store).unwrap();
    assert_eq!((store.len(), store.row_of(key)), (7, None));
    let results: Value = serde_json::from_slice(&std::fs::read(run.unwrap().results_path).unwrap()).unwrap();
    let skipped = &results["embeddings"]["skipped_images"];
    assert_eq!(skipped["images"][0]["key"], key);
    assert!(skipped["images"][0]["reason"].as_str().unwrap().contains("not a JPEG or PNG"));
    assert!(skipped["policy"].as_str().unwrap().starts_with("excluded"));
    // Cy_Diaz 2 appears in one matched and one mismatched pair of fold 2.
    assert_eq!(skipped["excluded_pairs"], 2);
    assert_eq!(results["counts"]["pairs"], 6);
    // Without the flag, the reused store's skipped image is an error again, not silently accepted.
    let e = embed_benchmark(&env, "lfw", &t.model(4), None).unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
}

#[test]
fn flip_view_holds_the_mirrored_image() {
    let t = Tiny::new();
    // Make Di_Evans_0002 the exact mirror of Di_Evans_0001 (both PNG, lossless).
    let d = t.root().join("data/lfw/lfw/Di_Evans");
    std::fs::write(d.join("Di_Evans_0001.jpg"), encode(&face(3, 1, false), ::image::ImageFormat::Png)).unwrap();
    std::fs::write(d.join("Di_Evans_0002.jpg"), encode(&face(3, 1, true), ::image::ImageFormat::Png)).unwrap();
    let r = embed_benchmark(&t.env(), "lfw", &t.model(8), None).unwrap();
    let s = EmbeddingStore::open(&r.extraction.store).unwrap();
    assert!(s.has_flip());
    let (a, b) = (s.row_of("Di_Evans/Di_Evans_0001.jpg").unwrap(), s.row_of("Di_Evans/Di_Evans_0002.jpg").unwrap());
    let read = |row, view| {
        let mut v = vec![0f32; s.dim()];
        s.read_row(row, view, &mut v);
        v
    };
    let (orig, flipped, mirror) = (read(a, View::Original), read(a, View::Flipped), read(b, View::Original));
    let diff = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    assert!(diff(&orig, &flipped) > 1e-3, "the test network must see left from right");
    assert!(diff(&flipped, &mirror) < 1e-5, "flip view {flipped:?} vs mirrored file {mirror:?}");
    // Without flips: one view.
    let mut m = t.model(8);
    m.options.flip = false;
    let r = embed_benchmark(&t.env(), "lfw", &m, None).unwrap();
    assert!(!EmbeddingStore::open(&r.extraction.store).unwrap().has_flip());
}

#[test]
fn cli_run_with_model_equals_embed_then_run() {
    let t = Tiny::new();
    let model = ["--model", "weights.bin", "--arch", "test-net"];
    let o = t.cli(&[&["embed", "lfw", "-o", "lfw.aifrstore"][..], &model].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("embedded 8 images"));
    let o = t.cli(&["run", "lfw", "--embeddings", "lfw.aifrstore", "--out", "r1", "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = t.cli(&[&["run", "lfw", "--out", "r2"][..], &model].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r1 = std::fs::read(t.root().join("r1/results.json")).unwrap();
    let r2 = std::fs::read(t.root().join("r2/results.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&r1), String::from_utf8_lossy(&r2));
    let v: Value = serde_json::from_slice(&r1).unwrap();
    assert_eq!(v["embeddings"]["model"]["arch"], "test-net");
    assert_eq!(v["embeddings"]["model"]["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(v["embeddings"]["has_flip"], true);
    assert_eq!(v["counts"]["pairs"], 8);
    // A second run reuses the cached store.
    let o = t.cli(&[&["run", "lfw", "--out", "r3"][..], &model].concat());
    assert!(String::from_utf8_lossy(&o.stdout).contains("reused"), "{}", String::from_utf8_lossy(&o.stdout));
    // GPU without a CUDA build: a usage error that says how to get one.
    if !cfg!(feature = "cuda") {
        let o = t.cli(&[&["embed", "lfw", "--device", "cuda:0"][..], &model].concat());
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--features cuda"));
    }
    let o = t.cli(&["embed", "lfw", "--model", "nope.bin", "--arch", "test-net"]);
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn sharded_embedding_merges_into_the_unsharded_store_byte_for_byte() {
    let t = Tiny::new();
    let model = ["--model", "weights.bin", "--arch", "test-net"];
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let read = |p: &str| std::fs::read(t.root().join(p)).unwrap();
    // One unreadable image, skipped: the pieces drop it as the whole run does.
    std::fs::write(t.image("Cy_Diaz/Cy_Diaz_0001.jpg"), b"not an image").unwrap();
    for batch in ["1", "3"] {
        let whole = format!("whole-{batch}.aifrstore");
        let args = ["embed", "lfw", "--skip-bad-images", "-q", "--batch-size", batch, "-o", &whole];
        ok(t.cli(&[&args[..], &model].concat()));
        let counts: &[usize] = if batch == "1" { &[1, 2, 3, 7] } else { &[2, 3] };
        for &n in counts {
            // Shard processes started together, as a job array would.
            let children: Vec<_> = (0..n)
                .map(|k| {
                    let (shard, out) = (format!("{k}/{n}"), format!("parts-{batch}-{n}/p{k}.aifrstore"));
                    let args = ["embed", "lfw", "--skip-bad-images", "-q", "--batch-size", batch, "--shard", &shard];
                    Command::new(crate::support::EXE)
                        .args(["--data-dir", "data", "--cache-dir", "cache"])
                        .args(args)
                        .args(["-o", &out])
                        .args(model)
                        .current_dir(t.root())
                        .output()
                })
                .collect();
            for c in children {
                ok(c.unwrap());
            }
            let merged = format!("merged-{batch}-{n}.aifrstore");
            // Pieces in any order.
            let mut args: Vec<String> = vec!["store".into(), "merge".into(), "-o".into(), merged.clone()];
            args.extend((0..n).rev().map(|k| format!("parts-{batch}-{n}/p{k}.aifrstore")));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = ok(t.cli(&args));
            assert!(out.contains(&format!("{n} pieces, 7 rows (1 images skipped)")), "{out}");
            assert!(read(&merged) == read(&whole), "batch {batch}, {n} shards: merged store differs");
            assert_eq!(read(&format!("{merged}.meta.json")), read(&format!("{whole}.meta.json")));
        }
    }
    // A missing, a duplicated and a foreign piece are errors naming them.
    let o = t.cli(&["store", "merge", "-o", "m.aifrstore", "parts-1-3/p0.aifrstore", "parts-1-3/p2.aifrstore"]);
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 of 3 shards are missing: 1/3"));
    let args = ["store", "merge", "-o", "m.aifrstore", "parts-1-2/p0.aifrstore", "parts-1-2/p0.aifrstore"];
    let o = t.cli(&args);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("are both shard 0/2"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let args = ["store", "merge", "-o", "m.aifrstore", "parts-1-2/p0.aifrstore", "parts-3-2/p1.aifrstore"];
    let o = t.cli(&args);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pieces of different runs"));
    let o = t.cli(&["store", "merge", "-o", "m.aifrstore", "whole-1.aifrstore"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a piece"));
    assert!(!t.root().join("m.aifrstore").exists());
    let o = t.cli(&[&["embed", "lfw", "--batch-size", "1", "--shard", "8/8"][..], &model].concat());
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_local_shard_script_runs_and_merges() {
    let t = Tiny::new();
    let model = ["--model", "weights.bin", "--arch", "test-net", "--batch-size", "2"];
    let o = t.cli(&[&["embed", "lfw", "-q", "-o", "whole.aifrstore"][..], &model].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bin_dir = Path::new(crate::support::EXE).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new("bash")
        .arg(crate::support::repo().join("deploy/local/shards.sh"))
        .args(["lfw", "3", "parts", "merged.aifrstore", "--data-dir", "data", "--cache-dir", "cache"])
        .args(model)
        .env("PATH", path)
        .current_dir(t.root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: &str| std::fs::read(t.root().join(p)).unwrap();
    assert!(read("merged.aifrstore") == read("whole.aifrstore"));
}

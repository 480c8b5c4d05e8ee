//! HTML/PNG/summary reports: content, escaping, determinism, and (when Chromium is installed) that
//! the page actually renders.

use aifr_eval::protocol::curves::{Curves, MarkedThreshold, RocCurve, ScoreHistogram};
use aifr_eval::report::html::escape_html;
use aifr_eval::report::write_report;
use aifr_eval::run::dir::RunData;
use aifr_eval::run::results::Results;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::json;
use std::path::{Path, PathBuf};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Exact ROC vertices (ascending FAR, first vertex FAR 0 at threshold +inf) of labelled scores.
fn roc(genuine: &[f64], impostor: &[f64]) -> RocCurve {
    let mut all: Vec<(f64, bool)> =
        genuine.iter().map(|&s| (s, true)).chain(impostor.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (ng, ni) = (genuine.len() as f64, impostor.len() as f64);
    let mut c = RocCurve { far: vec![0.0], tar: vec![0.0], threshold: vec![None] };
    let (mut tp, mut fp) = (0.0, 0.0);
    for (i, &(s, g)) in all.iter().enumerate() {
        if g {
            tp += 1.0
        } else {
            fp += 1.0
        }
        if all.get(i + 1).is_none_or(|n| n.0 != s) {
            c.far.push(fp / ni);
            c.tar.push(tp / ng);
            c.threshold.push(Some(s));
        }
    }
    c
}

fn histogram(genuine: &[f64], impostor: &[f64], bins: usize) -> ScoreHistogram {
    let lo = genuine.iter().chain(impostor).copied().fold(f64::INFINITY, f64::min);
    let hi = genuine.iter().chain(impostor).copied().fold(f64::NEG_INFINITY, f64::max);
    let count = |xs: &[f64]| {
        let mut h = vec![0u64; bins];
        for &x in xs {
            h[(((x - lo) / (hi - lo) * bins as f64) as usize).min(bins - 1)] += 1;
        }
        h
    };
    ScoreHistogram { lo, hi, genuine: count(genuine), impostor: count(impostor) }
}

/// A demo-like run: 3000 genuine N(0.35 + shift, 0.1) and 3000 impostor N(0, 0.1) scores, the
/// numbers of the demo's results.json, and curves computed from the scores.
fn synthetic(dir: &str, title: &str, shift: f64, seed: u64) -> RunData {
    synthetic_with(dir, title, shift, seed, |_| {})
}

/// `synthetic` with its results.json edited before it is read through the typed model.
fn synthetic_with(dir: &str, title: &str, shift: f64, seed: u64, edit: impl FnOnce(&mut serde_json::Value)) -> RunData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (g, i) = (Normal::new(0.35 + shift, 0.1).unwrap(), Normal::new(0.0, 0.1).unwrap());
    let genuine: Vec<f64> = (0..3000).map(|_| g.sample(&mut rng)).collect();
    let impostor: Vec<f64> = (0..3000).map(|_| i.sample(&mut rng)).collect();
    let curves = Curves {
        schema: "aifr-eval/curves".into(),
        schema_version: 1,
        roc: roc(&genuine, &impostor),
        score_histogram: histogram(&genuine, &impostor, 80),
        marked_thresholds: vec![
            MarkedThreshold { label: "EER".into(), threshold: 0.1755 },
            MarkedThreshold { label: "FAR=1e-3 (strict)".into(), threshold: 0.2526 },
        ],
        open_set: None,
    };
    let tar = |far: f64, rule: &str, tar: Option<f64>| {
        json!({"far_target": far, "rule": rule, "available": tar.is_some(), "tar": tar,
               "far": tar.map(|_| far), "threshold": tar.map(|_| 0.2526), "false_accepts": tar.map(|_| 3),
               "note": if tar.is_some() { None } else { Some("FAR is below 1/N_impostor = 1/3000 and cannot be measured") }})
    };
    let mut results = json!({
        "schema": "aifr-eval/results", "schema_version": 1, "kind": "pair_verification",
        "software": {"name": "aifr-eval", "version": "0.1.0", "commit": null},
        "benchmark": {"name": "lfw", "title": title, "format": "lfw_pairs",
                      "files": [{"role": "pairs", "path": "lfw/pairs.txt", "bytes": 222007, "blake3": "8df18603"}]},
        "protocol": {"name": "pair_verification", "mode": "strict", "fold_mode": "strict", "flip_fusion": "sum",
                     "folds": 10, "far_targets": [1e-4, 1e-3], "score": "cosine similarity of L2-normalised (fused) embeddings",
                     "accept_rule": "same iff score >= threshold"},
        "embeddings": {"fingerprint": format!("{seed:064x}"), "count": 6060, "dim": 128, "dtype": "f32", "has_flip": true},
        "counts": {"pairs": 6000, "genuine": 3000, "impostor": 3000, "images": 5310, "folds": 10},
        "metrics": {
            "accuracy": {"mode": "strict", "fold_accuracies": [0.9816666666666667, 0.97, 0.975, 0.98, 0.98, 0.975, 0.98, 0.98, 0.98, 0.9816666666666667],
                         "thresholds": vec![0.17; 10], "mean": 0.9785 + shift, "std": 0.0056, "se": 0.0018666997351568263, "reported_spread": "se"},
            "roc": {"auc": 0.9981722222222209, "eer": {"eer": 0.02033333333333333, "threshold": 0.1754949355964039, "far": 0.0203, "frr": 0.0203}, "vertices": 6000},
            "tar_at_far": [tar(1e-4, "strict", None), tar(1e-3, "strict", Some(0.8816666666666667)),
                           tar(1e-4, "insightface_nearest", None), tar(1e-3, "insightface_nearest", Some(0.8866666666666667))],
            "xnorm": 43.981334639696925,
            "bootstrap": {"unit": "identity", "clusters": 1196, "resamples": 1000, "seed": 1, "confidence": 0.95,
                          "accuracy": {"estimate": 0.9785, "lo": 0.9752438525766742, "hi": 0.9819429294515049},
                          "tar_at_far": [{"far_target": 1e-3, "rule": "strict", "estimate": 0.88, "lo": 0.83282964128028, "hi": 0.9016725113818137}],
                          "auc": {"estimate": 0.9981722222222209, "lo": 0.9973, "hi": 0.9989},
                          "eer": {"estimate": 0.02033333333333333, "lo": 0.0161, "hi": 0.0249},
                          "note": null}
        }
    });
    edit(&mut results);
    let results = Results::from_value(results).unwrap();
    let dir = PathBuf::from(dir);
    RunData {
        results_path: dir.join("results.json"),
        dir,
        results,
        curves: Some(curves),
        pairs: None,
        outcomes: None,
        cmc: None,
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn escape_html_covers_markup_ampersands_and_quotes() {
    assert_eq!(escape_html("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
    assert_eq!(escape_html("Tom & Jerry"), "Tom &amp; Jerry");
    assert_eq!(escape_html(r#"say "hi" & 'bye'"#), "say &quot;hi&quot; &amp; &#39;bye&#39;");
}

#[test]
fn single_run_page_has_the_numbers_and_the_charts() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic("runs/demo", "LFW, View 2", 0.0, 7);
    let written = write_report(&[run], tmp.path(), "report.html").unwrap();
    for name in ["report.html", "roc.png", "det.png", "scores.png", "summary.md", "summary.tex"] {
        assert!(written.contains(&tmp.path().join(name)), "{name} not reported as written: {written:?}");
    }
    let page = String::from_utf8(read(&tmp.path().join("report.html"))).unwrap();
    for needle in [
        "<img src=\"roc.png\"",
        "<img src=\"det.png\"",
        "<img src=\"scores.png\"",
        "97.850% ± 0.187 (SE)",
        "95% CI [97.524%, 98.194%]",
        "0.998172",
        "2.033% at threshold 0.1755",
        "88.167%",
        "95% CI [83.283%, 90.167%]",
        "88.667%",
        "cannot be measured",
        "98.167%",
        "43.9813",
    ] {
        assert!(page.contains(needle), "page lacks {needle:?}");
    }
    assert!(!page.contains("<script"), "the page must not need JavaScript");
    for png in ["roc.png", "det.png", "scores.png"] {
        let bytes = read(&tmp.path().join(png));
        assert!(bytes.starts_with(PNG_MAGIC) && bytes.len() > 5000, "{png} is not a real PNG");
    }
    let md = String::from_utf8(read(&tmp.path().join("summary.md"))).unwrap();
    assert!(md.contains("| demo | 97.85 | – |"), "{md}");
}

#[test]
fn output_is_deterministic() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let runs = [synthetic("r/one", "LFW", 0.0, 1), synthetic("r/two", "LFW", -0.05, 2)];
    let fa = write_report(&runs, a.path(), "index.html").unwrap();
    let fb = write_report(&runs, b.path(), "index.html").unwrap();
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(x.file_name(), y.file_name());
        assert!(read(x) == read(y), "{} differs between two identical runs", x.display());
    }
}

#[test]
fn user_strings_are_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_with("runs/<b>&\"x'", "<script>alert(\"t\")</script> & co", 0.0, 3, |v| {
        v["benchmark"]["files"][0]["path"] = json!("a<img src=x onerror=alert(1)>.txt")
    });
    write_report(&[run], tmp.path(), "report.html").unwrap();
    let page = String::from_utf8(read(&tmp.path().join("report.html"))).unwrap();
    assert!(!page.contains("<script") && !page.contains("<img src=x") && !page.contains("<b>&"));
    assert!(page.contains("&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt; &amp; co"));
    assert!(page.contains("&lt;b&gt;&amp;&quot;x&#39;"));
}

#[test]
fn multi_run_page_compares_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = [synthetic("r/model-alpha", "LFW", 0.0, 4), synthetic("r/model-beta", "LFW", -0.1, 5)];
    let written = write_report(&runs, tmp.path(), "index.html").unwrap();
    for name in ["index.html", "roc.png", "det.png", "scores-1.png", "scores-2.png"] {
        assert!(written.contains(&tmp.path().join(name)), "{name} missing from {written:?}");
    }
    let page = String::from_utf8(read(&tmp.path().join("index.html"))).unwrap();
    assert!(page.contains("model-alpha") && page.contains("model-beta"));
    assert!(page.contains("Metrics side by side") && page.contains("Δ -10.000 pp"), "accuracy difference vs run 1");
    // Without pair_scores.npy the paired intervals are explained, not silently dropped.
    assert!(page.contains("Not available:"));
}

#[test]
fn a_run_without_curves_still_gets_its_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let mut run = synthetic("r/old", "LFW", 0.0, 6);
    run.curves = None;
    let written = write_report(&[run], tmp.path(), "report.html").unwrap();
    assert!(!written.iter().any(|p| p.extension().is_some_and(|e| e == "png")));
    let page = String::from_utf8(read(&tmp.path().join("report.html"))).unwrap();
    assert!(page.contains("97.850% ± 0.187 (SE)") && page.contains("not drawn") && !page.contains("<img"));
}

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// (share of pixels that are not near-white, number of pixels in the charts' first-series blue).
/// A blank or failed render is almost all white; the blue only appears when the PNGs loaded.
fn inspect(png_bytes: &[u8]) -> (f64, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let ink = px.chunks_exact(ch).filter(|p| p.iter().take(3).any(|&c| c < 245)).count();
    let near = |a: u8, b: u8| a.abs_diff(b) <= 12;
    let blue = px.chunks_exact(ch).filter(|p| near(p[0], 0) && near(p[1], 114) && near(p[2], 178)).count();
    (ink as f64 / (px.len() / ch) as f64, blue)
}

#[test]
fn page_renders_in_headless_chromium() {
    let Some(chromium) = find_chromium() else {
        crate::support::skip_unless_ci("page_renders_in_headless_chromium: chromium is not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let runs = [synthetic("r/model-alpha", "LFW", 0.0, 4), synthetic("r/model-beta", "LFW", -0.1, 5)];
    write_report(&runs[..1], &out, "report.html").unwrap();
    write_report(&runs, &out.join("compare"), "index.html").unwrap();
    for page in [out.join("report.html"), out.join("compare/index.html")] {
        let shot = tmp.path().join("shot.png");
        let _ = std::fs::remove_file(&shot);
        let mut child = std::process::Command::new(&chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            .args(["--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,3000"])
            .arg(format!("--user-data-dir={}", tmp.path().join("profile").display()))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}", page.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not finish rendering {} within 90 s", page.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let bytes = read(&shot);
        assert!(bytes.starts_with(PNG_MAGIC), "screenshot of {} is not a PNG", page.display());
        let (ink, blue) = inspect(&bytes);
        eprintln!(
            "chromium rendered {}: {:.1}% non-white pixels, {blue} chart-blue pixels",
            page.display(),
            100.0 * ink
        );
        // Tables and charts cover a good part of the first 3000 px; a blank page is ~0.
        assert!(ink > 0.05, "screenshot of {} looks blank ({:.1}% non-white pixels)", page.display(), 100.0 * ink);
        assert!(blue > 2000, "the charts of {} did not load (only {blue} chart-blue pixels)", page.display());
    }
}

/// Each kind's own protocol parameters make two runs incomparable, read from the typed model:
/// the demo's run of the kind against a copy with one parameter edited.
#[test]
fn runs_differing_in_a_kind_specific_parameter_are_not_comparable() {
    use aifr_eval::report::compare::check_comparable;
    let demo = crate::support::demo();
    let cases: [(&str, &str, serde_json::Value, &str); 12] = [
        ("", "/protocol/folds", json!(5), "differ in folds (10 vs 5)"),
        ("", "/protocol/far_targets", json!([0.5]), "differ in FAR targets"),
        ("ijbc", "/protocol/pooling/flip", json!(false), "differ in pooling"),
        ("ijbc", "/protocol/fpir_targets", json!([0.5]), "differ in FPIR targets"),
        ("fgnet", "/protocol/age_groups", json!([{"lo": 0, "hi": null}]), "differ in age groups"),
        (
            "megaface_fgnet",
            "/protocol/probe_set",
            json!("facescrub"),
            "differ in probe set (\"fgnet\" vs \"facescrub\")",
        ),
        ("megaface_fgnet", "/protocol/cleaning", json!("facexzoo"), "differ in cleaning"),
        ("megaface_fgnet", "/protocol/devkit_probes", json!(7), "differ in devkit probes"),
        ("megaface_fgnet", "/protocol/age_groups", json!([]), "differ in age groups"),
        // Differentials by an attribute both runs have must be defined alike.
        ("rfw", "/metrics/differentials/0/fdr_alpha", json!(0.25), "define their differentials by subset differently"),
        (
            "",
            "/metrics/differentials/0/reference",
            json!("teens"),
            "define their differentials by age_band differently",
        ),
        (
            "fgnet",
            "/metrics/verification/differentials/groups/0",
            json!("infants"),
            "define their differentials by age_band differently",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (i, (run, ptr, value, expected)) in cases.into_iter().enumerate() {
        let base = RunData::load(&demo.join(run)).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&read(&demo.join(run).join("results.json"))).unwrap();
        *v.pointer_mut(ptr).unwrap() = value;
        let dir = tmp.path().join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("results.json"), serde_json::to_vec(&v).unwrap()).unwrap();
        let edited = RunData::load(&dir).unwrap();
        check_comparable(&base, &base).unwrap();
        let err = check_comparable(&base, &edited).unwrap_err().to_string();
        assert!(err.contains(expected), "{run}{ptr}: {err}");
    }
    // A run written before the differentials existed stays comparable with one that has them.
    let base = RunData::load(demo).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&read(&demo.join("results.json"))).unwrap();
    v["metrics"].as_object_mut().unwrap().remove("differentials");
    let dir = tmp.path().join("older");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("results.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    check_comparable(&base, &RunData::load(&dir).unwrap()).unwrap();
}

//! IJB-C-size benchmark (not a test): generates a synthetic release in the real layout
//! (469,375 crops, 23,124 templates, 15.65 M pairs, 512-D embeddings and mirrors) once under
//! `target/ijb-bench/`, then times
//!
//! * parsing the meta files (polars), separately;
//! * per-image embeddings (a memory-mapped store) → template pooling → 15.65 M pair scores →
//!   exact ROC, AUC and the TAR@FAR table under both rules; peak resident memory of that part;
//! * the 1:N protocol (G1/G2 × 19,593 probes), separately;
//!
//! and runs the NumPy/scikit-learn reference (tests/reference/ijb_ref.py bench) on the same data in
//! the same run, printing both times and the ratio (skipped with a message when python3 with
//! numpy and scikit-learn is absent).
//!
//! `AIFR_BENCH_IJB=small` runs a 1/20-scale release instead (a quick check of the bench itself).

#[path = "common/mod.rs"]
mod common;

use aifr_eval::dataset::ijb::{read_release, IjbFiles};
use aifr_eval::metrics::TarRule;
use aifr_eval::protocol::ijb::{identify, image_rows, pool, score_pairs, verification_metrics, Pooling};
use aifr_eval::store::EmbeddingStore;
use aifr_eval::synth::ijb::{generate, SynthSpec};
use std::path::{Path, PathBuf};
use std::time::Instant;

const FARS: [f64; 6] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

fn spec() -> SynthSpec {
    let full = SynthSpec::ijbc_size(2024);
    if std::env::var("AIFR_BENCH_IJB").as_deref() == Ok("small") {
        SynthSpec {
            subjects: full.subjects / 4,
            probe_templates: full.probe_templates / 20,
            images: full.images / 20,
            impostors_per_probe: 200,
            ..full
        }
    } else {
        full
    }
}

/// CPU seconds (user + system, all threads) of this process so far: on a shared machine the
/// wall time depends on the other load, the CPU time much less.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux ≥ 4.0); harmless elsewhere.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn npy(path: &Path, descr: &str, len: usize, bytes: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({len},), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytes);
    std::fs::write(path, out).expect("write npy");
}

fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn main() {
    let spec = spec();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/ijb-bench")
        .join(format!("{}-{}-{}", spec.images, spec.probe_templates, spec.seed));
    let root = dir.join("IJBC");
    let marker = dir.join("complete");
    if !marker.exists() {
        let t = Instant::now();
        let synth = generate(&spec, &root).expect("generate");
        synth.write_store(&dir.join("embeddings.aifrstore")).expect("store");
        let rows = synth.names.len();
        aifr_eval::store::import::write_npy_f32(&dir.join("embeddings.npy"), rows, synth.dim, &synth.embeddings)
            .expect("npy");
        aifr_eval::store::import::write_npy_f32(&dir.join("embeddings_flip.npy"), rows, synth.dim, &synth.flip)
            .expect("npy");
        std::fs::write(&marker, "ok").expect("marker");
        println!("generated {} in {:.1} s (cached for later runs)", dir.display(), t.elapsed().as_secs_f64());
    }
    let threads = rayon::current_num_threads();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before timing (other processes share the CPUs): {}", load.trim());
    println!(
        "IJB-C-size synthetic release: {} images, {} + {} templates, {} pairs per probe, 512-D; {threads} threads",
        spec.images,
        spec.subjects,
        spec.probe_templates,
        spec.impostors_per_probe + 1
    );

    let t = Instant::now();
    let release = read_release(&IjbFiles::in_release(&root, "ijbc", ["G1", "G2"]), ["G1", "G2"]).expect("read release");
    let parse_s = t.elapsed().as_secs_f64();
    println!(
        "parse meta (polars): {parse_s:.2} s for {} faces, {} landmark rows, {} pairs, 1:N lists",
        release.images.len(),
        release.images.len(),
        release.pairs.len()
    );

    // Arrays for the NumPy reference: the same data, already parsed.
    let media: Vec<u32> = release.images.iter().map(|i| i.media).collect();
    let scores_img: Vec<u8> = release.images.iter().flat_map(|i| i.score.to_le_bytes()).collect();
    npy(&dir.join("image_template.npy"), "<u4", media.len(), &u32_bytes(&release.image_template));
    npy(&dir.join("image_media.npy"), "<u4", media.len(), &u32_bytes(&media));
    npy(&dir.join("scores.npy"), "<f4", media.len(), &scores_img);
    npy(&dir.join("t1.npy"), "<u4", release.pairs.len(), &u32_bytes(&release.pairs.t1));
    npy(&dir.join("t2.npy"), "<u4", release.pairs.len(), &u32_bytes(&release.pairs.t2));
    let labels: Vec<u8> = release.pairs.genuine.iter().map(|&g| g as u8).collect();
    npy(&dir.join("label.npy"), "|u1", labels.len(), &labels);

    let store = EmbeddingStore::open(&dir.join("embeddings.aifrstore")).expect("store");
    // Page cache warm for both implementations: read the store once before timing.
    let mut sink = 0f32;
    let mut row = vec![0f32; store.dim()];
    for i in (0..store.len()).step_by(97) {
        store.read_row(i, aifr_eval::store::View::Flipped, &mut row);
        sink += row[0];
    }
    std::hint::black_box(sink);
    reset_peak_rss();
    let rss_before = common::peak_rss_mib();
    let cpu0 = cpu_s();
    let t0 = Instant::now();
    let rows = image_rows(&release, &store).expect("rows");
    let m = pool(&release, &store, &rows, Pooling::default()).expect("pool");
    let pool_s = t0.elapsed().as_secs_f64();
    let t = Instant::now();
    let scores = score_pairs(&m, &release.pairs.t1, &release.pairs.t2);
    let score_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (roc, tars, _curves) = verification_metrics(&scores, &release.pairs.genuine, &FARS).expect("metrics");
    let roc_s = t.elapsed().as_secs_f64();
    let total = t0.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu0;
    let rss = common::peak_rss_mib();
    println!(
        "aifr-eval  embeddings → TAR table: {total:.2} s wall, {cpu:.2} s CPU on {threads} threads (pool {pool_s:.2}, score {score_s:.2}, ROC+TAR+AUC+curves {roc_s:.2}); peak RSS {rss:.0} MiB (store mapping included; {rss_before:.0} MiB before)"
    );
    println!("  AUC {:.6}", roc.auc);
    for far in FARS {
        let get = |rule| tars.iter().find(|t| t.rule == rule && t.far_target == far).and_then(|t| t.tar);
        let fmt = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{:.4}%", 100.0 * v));
        println!(
            "  FAR {far:e}: TAR strict {}  nearest {}",
            fmt(get(TarRule::Strict)),
            fmt(get(TarRule::InsightfaceNearest))
        );
    }
    let t = Instant::now();
    let one_n = release.one_n.as_ref().expect("1:N lists");
    let (id, _) = identify(&m, one_n, &[1e-4, 1e-3, 1e-2, 1e-1], &[1, 5, 10], &[0.01, 0.1]);
    println!(
        "1:N (2 galleries × {} probes, TPIR@FPIR both rules, CMC, legacy): {:.2} s; rank-1 {:.4}",
        one_n.probes.templates.len(),
        t.elapsed().as_secs_f64(),
        id.cmc[0].rate
    );
    // The reference also evaluates these exact scores, so the TAR rules are compared bit for bit.
    let score_bytes: Vec<u8> = scores.iter().flat_map(|x| x.to_le_bytes()).collect();
    npy(&dir.join("aifr_scores.npy"), "<f4", scores.len(), &score_bytes);
    drop(score_bytes);
    drop(scores);
    drop(m);

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/ijb_ref.py");
    let check = std::process::Command::new("python3").args(["-c", "import numpy, sklearn"]).status();
    if !check.is_ok_and(|s| s.success()) {
        println!("SKIP reference: python3 with numpy and scikit-learn not found (pip install numpy scikit-learn)");
        return;
    }
    let out = std::process::Command::new("python3").arg(&script).arg("bench").arg(&dir).output().expect("python3");
    if !out.status.success() {
        println!("reference failed: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("reference JSON");
    let ref_total = v["total_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "NumPy/sklearn reference: {ref_total:.2} s (pool {:.2}, score {:.2}, roc_curve+TAR+AUC {:.2}); peak RSS {:.0} MiB; AUC {:.6}",
        v["pool_s"].as_f64().unwrap_or(f64::NAN),
        v["score_s"].as_f64().unwrap_or(f64::NAN),
        v["roc_s"].as_f64().unwrap_or(f64::NAN),
        v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
        v["auc"].as_f64().unwrap_or(f64::NAN)
    );
    for e in v["tar"].as_array().into_iter().flatten() {
        let fmt = |x: &serde_json::Value| x.as_f64().map_or("n/a".to_string(), |v| format!("{:.4}%", 100.0 * v));
        println!(
            "  FAR {:e}: TAR strict {}  nearest {}",
            e["far"].as_f64().unwrap_or(0.0),
            fmt(&e["strict"]),
            fmt(&e["nearest"])
        );
    }
    // Both rules on aifr-eval's own scores, computed by the reference: must equal ours exactly.
    let mut mismatches = 0;
    for (far, e) in FARS.iter().zip(v["tar_on_aifr_scores"].as_array().into_iter().flatten()) {
        for (rule, key) in [(TarRule::Strict, "strict"), (TarRule::InsightfaceNearest, "nearest")] {
            let ours = tars.iter().find(|t| t.rule == rule && t.far_target == *far).and_then(|t| t.tar);
            if ours != e[key].as_f64() {
                mismatches += 1;
                println!("  MISMATCH at FAR {far:e} {key}: aifr-eval {ours:?}, reference {:?}", e[key].as_f64());
            }
        }
    }
    println!(
        "reference on aifr-eval's scores: {} (AUC {:.9} vs {:.9})",
        if mismatches == 0 { "every TAR identical under both rules" } else { "TAR MISMATCH" },
        v["auc_on_aifr_scores"].as_f64().unwrap_or(f64::NAN),
        roc.auc
    );
    println!("speed-up: {:.1}× (reference {ref_total:.2} s / aifr-eval {total:.2} s)", ref_total / total);
}

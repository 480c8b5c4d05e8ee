//! MegaFace at full scale: an FG-NET-like probe set (82 identities, ~1,000 images, ages 0–69)
//! against 1,000,000 synthetic 512-D distractors in the devkit layout.
//!
//! Prints, in one run on the same data:
//! * the whole `aifr-eval megaface` evaluation (every distractor size 10 … 1m, exact CMC to the
//!   end, rank-1 by age gap, TAR@FAR strict and compat=devkit), run as a child process so its
//!   peak resident memory is its own;
//! * the floor: one float32 GEMM of the same shape (probes × 1M × 512, blocked, nothing kept);
//! * the NumPy reference (tests/reference/bench_megaface.py: dense score matrix, ranks by
//!   comparison, strict TAR@1e-6) on the 1M set, when python3 + numpy are present;
//! * converting devkit feature files into a store (100,000 files; file-system bound).
//!
//! `cargo bench --bench megaface -- --shards` instead splits the same run into 1, 2 and 4 slices
//! (`--distractor-shard`), merges them, and prints the total work, the merge time and the part
//! sizes (docs/sharding.md).
//!
//! Environment: `AIFR_BENCH_MEGAFACE_MAX=100k` runs a smaller instance; `AIFR_BENCH_SCORE_DEVICE=cuda`
//! also times the GPU scoring path on the same data (an aifr-eval built with `--features cuda`, on
//! a GPU machine); `AIFR_BENCH_DIR` and `AIFR_EVAL_BIN` point a copied bench binary at a data
//! directory and an aifr-eval binary (.ci/gpu-check). Data is generated once under
//! target/bench-data/megaface (or `AIFR_BENCH_DIR`) and reused.

#[path = "common/mod.rs"]
mod common;

use aifr_eval::dataset::megaface::{parse_size, read_distractor_list, read_probe_list};
use aifr_eval::demo::{generate_fgnet, DemoSpec};
use aifr_eval::score::{gemm_scores, normalize};
use aifr_eval::store::{EmbeddingStore, View};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What one child process took.
struct Usage {
    ok: bool,
    wall: f64,
    /// Its own peak resident set, MB.
    rss_mb: f64,
    /// Bytes it sent to storage (rusage block output, 512-byte units on Linux).
    written: u64,
}

/// Runs `cmd` to completion.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives this child's own rusage
fn run_child(cmd: &mut Command) -> Usage {
    let t = Instant::now();
    let child = cmd.spawn().expect("run aifr-eval");
    let (mut status, pid) = (0, child.id() as libc::pid_t);
    // SAFETY: wait4 reaps our own child and fills the status and rusage we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut u) };
    Usage {
        ok: r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        wall: t.elapsed().as_secs_f64(),
        rss_mb: u.ru_maxrss as f64 / 1024.0,
        written: u.ru_oublock as u64 * 512,
    }
}

/// The summary of one whole run: (scan seconds, metrics seconds, threads, results.json).
fn read_run(out: &Path) -> (f64, f64, serde_json::Value, serde_json::Value) {
    let timings: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("timings.json")).unwrap()).unwrap();
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let stages = timings["stages"].as_array().cloned().unwrap_or_default();
    let stage = |name: &str| {
        stages
            .iter()
            .filter(|s| s[0].as_str().is_some_and(|n| n.starts_with(name)))
            .map(|s| s[1].as_f64().unwrap_or(0.0))
            .sum::<f64>()
    };
    (stage("scan"), stage("metrics"), timings["threads"].clone(), results)
}

fn main() {
    let max = std::env::var("AIFR_BENCH_MEGAFACE_MAX").ok().map_or(1_000_000, |s| parse_size(&s).expect("size"));
    let base = std::env::var_os("AIFR_BENCH_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/megaface"), PathBuf::from);
    let data = base.join(format!("data-{max}"));
    let root = aifr_eval::synth::megaface::megaface_root(&data);
    let spec = DemoSpec { dim: 512, seed: 11, ..Default::default() };
    let t = Instant::now();
    let fg = generate_fgnet(&spec, &data).expect("probes");
    let keys = aifr_eval::store::import::read_keys(&fg.keys).expect("keys");
    let probe_list = aifr_eval::synth::megaface::write_fgnet_probe_list(&root, &keys).expect("probe list");
    let store_path = root.join("embeddings/distractors.aifrstore");
    let d =
        if store_path.exists() && EmbeddingStore::open(&store_path).map(|s| s.len() == max as usize).unwrap_or(false) {
            aifr_eval::synth::megaface::Distractors {
                store: store_path,
                lists: root.join("devkit/templatelists"),
                features: None,
            }
        } else {
            aifr_eval::synth::megaface::generate_distractors(&root, max, 512, 5, None).expect("distractors")
        };
    println!(
        "data ready in {:.1} s: {} probes, {} distractors × 512 in {}",
        t.elapsed().as_secs_f64(),
        keys.len(),
        max,
        data.display()
    );

    // The whole evaluation, as a user runs it.
    let out = base.join("run");
    let sizes: Vec<String> =
        aifr_eval::dataset::megaface::SIZES.iter().filter(|&&s| s <= max).map(|s| s.to_string()).collect();
    let exe =
        std::env::var_os("AIFR_EVAL_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_aifr-eval")), PathBuf::from);
    // The user's command, to which each use adds its device, output or slice options.
    let megaface = || {
        let mut c = Command::new(&exe);
        c.args(["--data-dir", data.to_str().unwrap_or_default(), "--cache-dir"])
            .arg(base.join("cache"))
            .args(["megaface", "--probe", "fgnet", "--flip", "none", "--quiet", "--distractors", &sizes.join(",")])
            .arg("--embeddings")
            .arg(&fg.embeddings)
            .arg("--keys")
            .arg(&fg.keys)
            .arg("--distractor-embeddings")
            .arg(&d.store);
        c
    };
    let eval = |out: &Path, device: &str| run_child(megaface().args(["--score-device", device]).arg("--out").arg(out));
    let cpu = eval(&out, "cpu");
    assert!(cpu.ok, "aifr-eval megaface failed");
    let (wall, rss) = (cpu.wall, cpu.rss_mb);
    let out_bytes: u64 = std::fs::read_dir(&out)
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    let (scan, metrics, threads, results) = read_run(&out);
    let largest = results["metrics"]["sizes"].as_array().and_then(|s| s.last()).cloned().unwrap_or_default();
    println!(
        "aifr-eval megaface, sizes {}: {wall:.2} s wall (process), {scan:.2} s scans, {metrics:.2} s metrics, peak RSS {rss:.0} MB, disk written {:.1} MB (run directory {:.1} MB), threads {threads}",
        sizes.join(","),
        cpu.written as f64 / 1e6,
        out_bytes as f64 / 1e6,
    );
    println!(
        "  at {max}: rank-1 {:.4}, CMC@10 {}, strict TAR@1e-6 {}",
        largest["rank1"].as_f64().unwrap_or(f64::NAN),
        largest["cmc"]
            .as_array()
            .and_then(|c| c.iter().find(|p| p["rank"] == 10))
            .map_or("n/a".into(), |p| p["identification_rate"].to_string()),
        largest["tar_at_far"][0]["tar"]
    );
    // `-- --shards`: the same run split into 1, 2 and 4 slices run one after another (the total
    // work a cluster would do), the merge, and the parts' sizes; the merged files must equal the
    // whole run's byte for byte.
    if std::env::args().any(|a| a == "--shards") {
        for n in [1usize, 2, 4] {
            let dir = base.join(format!("shards-{n}"));
            let _ = std::fs::remove_dir_all(&dir);
            let mut work = 0.0;
            let mut peak: f64 = 0.0;
            let mut bytes = Vec::new();
            let mut parts = Vec::new();
            for k in 0..n {
                let part = dir.join(format!("part-{k}-of-{n}.safetensors"));
                let u =
                    run_child(megaface().arg("--distractor-shard").arg(format!("{k}/{n}")).arg("--part").arg(&part));
                assert!(u.ok, "shard {k}/{n} failed");
                work += u.wall;
                peak = peak.max(u.rss_mb);
                bytes.push(std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0));
                parts.push(part);
            }
            let merged = dir.join("run");
            let m = run_child(megaface().arg("--out").arg(&merged).arg("--merge").args(&parts));
            assert!(m.ok, "merge of {n} parts failed");
            let same = ["results.json", "cmc_curves.json", "search_outcomes.json", "report.html"]
                .iter()
                .all(|f| std::fs::read(out.join(f)).ok() == std::fs::read(merged.join(f)).ok());
            let mb: Vec<String> = bytes.iter().map(|b| format!("{:.1}", *b as f64 / 1e6)).collect();
            println!(
                "{n} shard(s): total work {work:.2} s ({:.2}× the single run), largest shard peak RSS {peak:.0} MB; merge {:.2} s (peak RSS {:.0} MB); parts {} MB; merged = single run byte for byte: {same}",
                work / wall,
                m.wall,
                m.rss_mb,
                mb.join(" + ")
            );
            assert!(same, "the merged run differs from the single run");
        }
        return;
    }
    // The GPU path on the same data (AIFR_BENCH_SCORE_DEVICE=cuda, a `--features cuda` build):
    // time, and how far its numbers are from the CPU run's (kernels may differ in the last bits,
    // which can move a near-tie).
    if let Ok(device) = std::env::var("AIFR_BENCH_SCORE_DEVICE") {
        let gout = base.join(format!("run-{}", device.replace(':', "-")));
        let gpu = eval(&gout, &device);
        let (gwall, grss) = (gpu.wall, gpu.rss_mb);
        if gpu.ok {
            let (gscan, gmetrics, _, gresults) = read_run(&gout);
            let nums = |r: &serde_json::Value| -> Vec<f64> {
                let mut v = Vec::new();
                for s in r["metrics"]["sizes"].as_array().into_iter().flatten() {
                    v.push(s["rank1"].as_f64().unwrap_or(f64::NAN));
                    v.extend(
                        s["cmc"].as_array().into_iter().flatten().filter_map(|p| p["identification_rate"].as_f64()),
                    );
                    v.extend(s["tar_at_far"].as_array().into_iter().flatten().filter_map(|t| t["tar"].as_f64()));
                }
                v
            };
            let (a, b) = (nums(&results), nums(&gresults));
            let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            println!(
                "--score-device {device} ({}): {gwall:.2} s wall (process), {gscan:.2} s scans, {gmetrics:.2} s metrics, peak RSS {grss:.0} MB → {:.2}× faster than cpu; {differ} of {} numbers differ from the cpu run (largest difference {worst:.2e})",
                gresults["protocol"]["score_kernel"],
                wall / gwall,
                a.len()
            );
        } else {
            println!("--score-device {device}: the run failed (see its error above)");
        }
    }

    // The floor: the same GEMMs with nothing done to the scores.
    let probes = read_probe_list(&probe_list).expect("probes");
    let pstore = aifr_eval::store::import::import_cached(
        &aifr_eval::store::import::EmbeddingSource {
            embeddings: fg.embeddings.clone(),
            keys: fg.keys.clone(),
            flip: None,
        },
        &base.join("cache"),
    )
    .expect("probe store")
    .store;
    let mut pm = vec![0f32; probes.len() * 512];
    for (i, k) in probes.paths.iter().enumerate() {
        let row = pstore.row_of(k).expect("probe row");
        pstore.read_row(row, View::Original, &mut pm[i * 512..(i + 1) * 512]);
        normalize(&mut pm[i * 512..(i + 1) * 512]);
    }
    let dstore = EmbeddingStore::open(&d.store).expect("store");
    let n = dstore.len();
    let p = probes.len();
    let t = Instant::now();
    (0..n.div_ceil(2048)).into_par_iter().for_each(|b| {
        let (s, e) = (b * 2048, ((b + 1) * 2048).min(n));
        let mut g = vec![0f32; (e - s) * 512];
        for (i, r) in (s..e).enumerate() {
            dstore.read_row(r, View::Original, &mut g[i * 512..(i + 1) * 512]);
        }
        let mut out = vec![0f32; p * (e - s)];
        gemm_scores(&pm, p, &g, e - s, 512, &mut out);
        std::hint::black_box(&out);
    });
    let gemm = t.elapsed().as_secs_f64();
    let flops = 2.0 * p as f64 * n as f64 * 512.0;
    println!(
        "floor: one float32 GEMM {p}×512 · 512×{n}: {gemm:.2} s ({:.1} GFLOP/s) → whole evaluation / GEMM = {:.2}×",
        flops / gemm / 1e9,
        wall / gemm
    );

    // The NumPy reference on the largest set.
    let list = d.lists.join(aifr_eval::dataset::megaface::distractor_list_name(max));
    let _ = read_distractor_list(&list, max).expect("list");
    let script = common::repo_file("tests/reference/bench_megaface.py");
    let t = Instant::now();
    match Command::new("python3").arg(&script).arg(pstore.path()).arg(&d.store).arg(&probe_list).arg(&list).output() {
        Ok(o) if o.status.success() => {
            let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            println!(
                "NumPy reference at {max} (dense {p}×{max} matrix): gemm {:.2} s + ranks {:.2} s + TAR {:.2} s = {:.2} s (process {:.1} s), peak RSS {:.0} MB; rank-1 {:.4}, CMC@10 {}, TAR@1e-6 {}",
                r["gemm"].as_f64().unwrap_or(f64::NAN),
                r["ranks"].as_f64().unwrap_or(f64::NAN),
                r["tar"].as_f64().unwrap_or(f64::NAN),
                r["total"].as_f64().unwrap_or(f64::NAN),
                t.elapsed().as_secs_f64(),
                r["rss_mb"].as_f64().unwrap_or(f64::NAN),
                r["rank1"].as_f64().unwrap_or(f64::NAN),
                r["cmc10"],
                r["tar_1e6"]
            );
            println!(
                "ratio NumPy compute / aifr-eval whole run (all sizes, from the store): {:.1}×",
                r["total"].as_f64().unwrap_or(f64::NAN) / wall
            );
        }
        Ok(o) => println!(
            "NumPy reference skipped: {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("failed")
        ),
        Err(e) => println!("NumPy reference skipped: python3 not runnable ({e})"),
    }

    // Devkit feature files → store (file-system bound; parallel).
    let nfiles = 100_000.min(n);
    let fdir = base.join("features");
    let fkeys: Vec<String> = (0..nfiles).map(|i| dstore.key(i).to_string()).collect();
    if !fdir.join(format!("{}_bench.bin", fkeys[nfiles - 1])).exists() {
        let mut rows = vec![0f32; nfiles * 512];
        for i in 0..nfiles {
            dstore.read_row(i, View::Original, &mut rows[i * 512..(i + 1) * 512]);
        }
        aifr_eval::synth::megaface::write_feature_files(&fdir, &fkeys, &rows, 512, "_bench.bin")
            .expect("feature files");
    }
    let cache = base.join("feature-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let t = Instant::now();
    let s =
        aifr_eval::store::import::import_devkit_features(&fkeys, &fdir, "_bench.bin", &cache).expect("import").store;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "devkit feature files → store: {nfiles} files in {secs:.2} s ({:.0} files/s, {} threads) → {}",
        nfiles as f64 / secs,
        rayon::current_num_threads(),
        PathBuf::from(s.path()).display()
    );
}

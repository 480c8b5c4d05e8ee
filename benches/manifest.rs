//! Protocols for a big collection: a manifest of N rows (default 1,000,000; set
//! AIFR_BENCH_ROWS) with ~10 images per identity, ages and a group column, as CSV and Parquet.
//! Times reading + validation (polars), the check summary, and building the plain pairs, two
//! age-gap-controlled lists and both identification splits, with the peak resident memory of
//! each stage (VmHWM, reset between stages). The reference in the same run is a plain
//! sequential read of the CSV bytes (the disk-speed floor of any reader).
//!
//! Run: `cargo bench --bench manifest`

#[path = "common/mod.rs"]
mod common;

use aifr_eval::app::manifest::build_all;
use aifr_eval::dataset::manifest::{summarise, Manifest};
use aifr_eval::protocol::manifest::build::BuildSpec;
use aifr_eval::protocol::manifest::lists::write_protocol;
use polars::prelude::{CsvReadOptions, ParquetWriter, SerReader};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::time::Instant;

/// Resets the peak-RSS counter to the current RSS (Linux), so each stage reports its own peak.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn stage<T>(name: &str, f: impl FnOnce() -> T) -> T {
    reset_peak();
    let t = Instant::now();
    let out = f();
    println!("  {name:<44} {:>8.2} s   peak RSS {:>7.0} MB", t.elapsed().as_secs_f64(), common::peak_rss_mib());
    out
}

fn main() {
    let rows: usize = std::env::var("AIFR_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(std::env::var("AIFR_BENCH_DIR").unwrap_or_else(|_| ".".into())).expect("tempdir");
    let csv = dir.path().join("faces.csv");
    let pq = dir.path().join("faces.parquet");
    {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&csv).expect("create"));
        writeln!(f, "path,identity,age,group,camera").expect("w");
        let (mut id, mut left, mut first) = (0usize, 0usize, 0u32);
        for r in 0..rows {
            if left == 0 {
                id += 1;
                left = rng.gen_range(1..20);
                first = rng.gen_range(0..70);
            }
            left -= 1;
            let age = (first + rng.gen_range(0..40)).min(110);
            writeln!(f, "id{id:07}/{r:08}.jpg,person_{id},{age},site{},cam{}", id % 7, r % 3).expect("w");
        }
        f.flush().expect("flush");
    }
    let mut df = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(csv.clone()))
        .and_then(|r| r.finish())
        .expect("read csv");
    ParquetWriter::new(std::fs::File::create(&pq).expect("create")).finish(&mut df).expect("write parquet");
    drop(df);
    let mb = |p: &std::path::Path| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6);
    println!(
        "manifest benchmark: {rows} rows ({:.1} MB CSV, {:.1} MB Parquet), {} threads",
        mb(&csv),
        mb(&pq),
        rayon::current_num_threads()
    );
    let t = Instant::now();
    let floor = stage("reference: read the CSV bytes", || std::fs::read(&csv).map(|b| b.len()).unwrap_or(0));
    let floor_s = t.elapsed().as_secs_f64();
    assert!(floor > 0);
    let t = Instant::now();
    let m = stage("read + validate CSV (polars)", || Manifest::read(&csv).expect("manifest"));
    let csv_s = t.elapsed().as_secs_f64();
    let mp = stage("read + validate Parquet (polars)", || Manifest::read(&pq).expect("manifest"));
    assert_eq!(mp.paths, m.paths);
    drop(mp);
    let s = stage("check summary (no file lookups)", || summarise(&m, None));
    println!("    {} images of {} identities, {} singletons", s.rows, s.identities, s.singletons);
    let spec =
        BuildSpec { seed: 0, folds: 10, pairs_per_fold: Some(3000), min_age_gaps: vec![10, 30], age_tolerance: 2 };
    let t = Instant::now();
    let (lists, splits) =
        stage("build pairs (plain, gap 10, gap 30) + splits", || build_all(&m, &spec).expect("build"));
    let out = dir.path().join("protocol");
    stage("write protocol files", || write_protocol(&out, &m, &spec, &lists, &splits).expect("write"));
    let build_s = t.elapsed().as_secs_f64();
    println!(
        "  check + build: {:.2} s (CSV read {:.2} s = {:.1}× the plain byte read); {} pair lists × 10 folds × 2×3000 pairs, {} gallery + {} probes",
        csv_s + build_s,
        csv_s,
        csv_s / floor_s.max(1e-9),
        lists.len(),
        splits[0].gallery.len(),
        splits[0].probes.len()
    );
}

//! Importing an N×512 float32 `.npy` (default N = 1,000,000, 2 GB; set AIFR_BENCH_ROWS) into the
//! embedding store: throughput next to a plain sequential read and a plain copy (read + write +
//! fsync) of the same file in the same run (the disk-speed references), and the process's peak
//! resident memory.
//!
//! Run: `cargo bench --bench store_import`

#[path = "common/mod.rs"]
mod common;

use aifr_eval::store::import::{import, EmbeddingSource};
use std::io::{Read, Write};
use std::time::Instant;

fn main() {
    let rows: usize = std::env::var("AIFR_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let dim = 512;
    let dir = tempfile::tempdir_in(std::env::var("AIFR_BENCH_DIR").unwrap_or_else(|_| ".".into())).expect("tempdir");
    let npy = dir.path().join("emb.npy");
    let keys = dir.path().join("keys.txt");
    {
        // Streamed generation so the benchmark's own peak memory stays small.
        let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
        let mut header = dict.into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&npy).expect("create"));
        f.write_all(b"\x93NUMPY\x01\x00").expect("w");
        f.write_all(&(header.len() as u16).to_le_bytes()).expect("w");
        f.write_all(&header).expect("w");
        let mut row = vec![0u8; dim * 4];
        for r in 0..rows {
            for (c, chunk) in row.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&(((r * 31 + c * 7) % 1000) as f32 * 0.001 + 0.01).to_le_bytes());
            }
            f.write_all(&row).expect("w");
        }
        f.flush().expect("flush");
        let mut k = std::io::BufWriter::new(std::fs::File::create(&keys).expect("create"));
        for r in 0..rows {
            writeln!(k, "megaface/{:07}.jpg", r).expect("w");
        }
    }
    let bytes = std::fs::metadata(&npy).expect("meta").len() as f64;
    let rss_before = common::peak_rss_mib();

    // Disk-speed reference: read the whole file sequentially (8 MB buffer), same run.
    let t = Instant::now();
    let mut f = std::fs::File::open(&npy).expect("open");
    let mut buf = vec![0u8; 8 << 20];
    while f.read(&mut buf).expect("read") > 0 {}
    let read_s = t.elapsed().as_secs_f64();

    // Copy reference: read + write + fsync of the same bytes, what "disk speed" means for a
    // conversion that must write its output.
    let t = Instant::now();
    {
        let mut src = std::fs::File::open(&npy).expect("open");
        let mut dst = std::fs::File::create(dir.path().join("copy.bin")).expect("create");
        loop {
            let k = src.read(&mut buf).expect("read");
            if k == 0 {
                break;
            }
            dst.write_all(&buf[..k]).expect("write");
        }
        dst.sync_all().expect("sync");
    }
    let copy_s = t.elapsed().as_secs_f64();
    std::fs::remove_file(dir.path().join("copy.bin")).expect("rm");

    let t = Instant::now();
    let src = EmbeddingSource { embeddings: npy.clone(), keys: keys.clone(), flip: None };
    let store = import(&src, &dir.path().join("emb.aifrstore")).expect("import");
    let import_s = t.elapsed().as_secs_f64();
    let mb = bytes / 1e6;
    println!("rows={rows} dim={dim} file={mb:.0} MB threads={}", rayon::current_num_threads());
    println!("sequential read  {read_s:.2} s  {:.0} MB/s", mb / read_s);
    println!("plain copy+fsync {copy_s:.2} s  {:.0} MB/s", mb / copy_s);
    println!(
        "import to store  {import_s:.2} s  {:.0} MB/s  ({:.2}x the copy time; includes validation, content hash, fsync)",
        mb / import_s,
        import_s / copy_s
    );
    println!(
        "peak RSS before import {rss_before:.0} MB, after {:.0} MB (store rows: {})",
        common::peak_rss_mib(),
        store.len()
    );
}

//! Decode + preprocess throughput of the image pipeline alone (no network): N 112×112 JPEG faces
//! (default 4,000; AIFR_BENCH_IMAGES) decoded, normalised per the ArcFace input spec and mirrored,
//! serially and in parallel with rayon; next to PIL + NumPy doing the same work on the same files
//! in the same run (tests/reference/bench_decode.py; skipped with a message when absent).
//!
//! Run: `cargo bench --bench embed`

use aifr_eval::image::prepare;
use aifr_eval::model::InputSpec;
use rayon::prelude::*;
use std::time::Instant;

fn jpeg(seed: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(112, 112, |x, y| {
        let v = ((x as usize * 3 + y as usize * 5 + seed * 7) % 256) as u8;
        image::Rgb([v, v.wrapping_mul(3), ((x ^ y) as u8).wrapping_add(seed as u8)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).expect("encode");
    out.into_inner()
}

fn main() {
    let n: usize = std::env::var("AIFR_BENCH_IMAGES").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);
    let images: Vec<Vec<u8>> = (0..n).into_par_iter().map(jpeg).collect();
    let spec = InputSpec::arcface();
    let run = |parallel: bool| {
        let t = Instant::now();
        let ok = if parallel {
            images.par_iter().filter(|b| prepare(b, None, &spec, true).is_ok()).count()
        } else {
            images.iter().filter(|b| prepare(b, None, &spec, true).is_ok()).count()
        };
        assert_eq!(ok, n);
        n as f64 / t.elapsed().as_secs_f64()
    };
    let _ = run(true); // warm up
    let serial = run(false);
    let parallel = run(true);
    let threads = rayon::current_num_threads();
    println!("decode+preprocess+flip, {n} JPEG 112x112: serial {serial:.0} images/s, rayon ({threads} threads) {parallel:.0} images/s");

    let dir = tempfile::tempdir().expect("tempdir");
    for (i, b) in images.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.jpg")), b).expect("write");
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/bench_decode.py");
    match std::process::Command::new("python3").arg(script).arg(dir.path()).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            match text.trim().parse::<f64>() {
                Ok(py) => println!(
                    "PIL + NumPy (1 thread, files from page cache) {py:.0} images/s; ratio serial {:.2}x, rayon {:.2}x",
                    serial / py,
                    parallel / py
                ),
                Err(_) => println!("reference printed something unexpected: {text}"),
            }
        }
        Ok(o) => println!("SKIP reference: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => println!("SKIP reference: python3 not runnable ({e})"),
    }
}

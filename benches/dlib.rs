//! Throughput of dlib's face-recognition ResNet forward pass (150×150 RGB → 128-D) on the CPU:
//! images/s at a few batch sizes, after one warm-up batch.
//!
//! Needs the weights (`.ci/fetch-models`, or $AIFR_DLIB_MODEL). No reference implementation runs
//! beside it: dlib itself has no prebuilt wheel to install here, so the figure stands alone.
//! Run: `cargo bench --bench dlib` (AIFR_BENCH_BATCHES="1 8 32" to choose the batch sizes).

use std::path::PathBuf;
use std::time::Instant;

use aifr_eval::model;
use candle_core::{DType, Device, Tensor};

fn main() {
    let path = std::env::var_os("AIFR_DLIB_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".models/dlib_face_recognition_resnet_model_v1.dat")
    });
    if !path.is_file() {
        println!("SKIP: {} absent (run .ci/fetch-models or set AIFR_DLIB_MODEL)", path.display());
        return;
    }
    let t = Instant::now();
    let net = match model::load(&path, None, &Device::Cpu, DType::F32) {
        Ok(n) => n,
        Err(e) => {
            println!("cannot load {}: {e}", path.display());
            return;
        }
    };
    println!("load + check + fold: {:.3} s", t.elapsed().as_secs_f64());
    let batches: Vec<usize> = std::env::var("AIFR_BENCH_BATCHES")
        .unwrap_or_else(|_| "1 8 32".into())
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for n in batches {
        let x = match Tensor::randn(0f32, 0.25, (n, 3, 150, 150), &Device::Cpu) {
            Ok(x) => x,
            Err(e) => {
                println!("cannot make a batch: {e}");
                return;
            }
        };
        if let Err(e) = net.forward(&x) {
            println!("forward failed: {e}");
            return;
        }
        let reps = (64 / n).max(2);
        let t = Instant::now();
        for _ in 0..reps {
            let _ = net.forward(&x);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "dlib-resnet CPU f32, batch {n:>3}: {:>7.1} images/s ({:.1} ms/batch, {threads} threads)",
            (reps * n) as f64 / s,
            1e3 * s / reps as f64
        );
    }
}

//! Throughput of the arcface_torch networks (112×112): MobileFaceNet and IResNet-50 with
//! deterministic synthetic weights, next to PyTorch running the same architectures on the same
//! machine and device in the same run (`tests/reference/arcface_torch_nets.py bench`; skipped
//! with a message when python3/torch are absent).
//!
//! Run: `cargo bench --bench networks`. Environment: AIFR_BENCH_BATCH (default 32),
//! AIFR_BENCH_SECONDS per measurement (default 10), AIFR_BENCH_DEVICE (`cpu`, or `cuda` with a
//! `--features cuda` build: then the GPU's embeddings are also compared with the CPU's on the same
//! input), AIFR_BENCH_DTYPE (f32, f16, bf16; PyTorch runs the same dtype).

use aifr_eval::model::iresnet::{IResNet, IResNetConfig};
use aifr_eval::model::mobilefacenet::{MobileFaceNet, MobileFaceNetConfig};
use aifr_eval::model::weights::synthetic;
use aifr_eval::model::FaceEmbedder;
use candle_core::{DType, Device, Tensor};
use std::process::Command;
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;

/// Images/s of `net` on an input already on its device (embeddings come back to the host).
fn images_per_s(net: &dyn FaceEmbedder, batch: usize, seconds: f64) -> f64 {
    let x = Tensor::randn(0f32, 1f32, (batch, 3, 112, 112), net.device()).expect("input");
    net.forward(&x).expect("warm-up");
    let (mut done, t0) = (0usize, Instant::now());
    loop {
        net.forward(&x).expect("forward");
        done += batch;
        if t0.elapsed().as_secs_f64() >= seconds {
            return done as f64 / t0.elapsed().as_secs_f64();
        }
    }
}

fn pytorch(arch: &str, batch: usize, seconds: f64, device: &str, dtype: &str) -> Option<f64> {
    let script = common::repo_file("tests/reference/arcface_torch_nets.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["bench", "--arch", arch, "--batch", &batch.to_string(), "--seconds", &seconds.to_string()])
        .args(["--device", device, "--dtype", dtype])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let line = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
            eprintln!("  (torch {}, {} threads)", v["torch"], v["threads"]);
            v["images_per_s"].as_f64()
        }
        Ok(o) => {
            eprintln!("SKIP PyTorch: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""));
            None
        }
        Err(e) => {
            eprintln!("SKIP PyTorch: cannot run python3: {e}");
            None
        }
    }
}

/// The smallest cosine between the rows of two (N, D) embedding batches.
fn min_cosine(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec2::<f32>().expect("a"), b.to_vec2::<f32>().expect("b"));
    a.iter()
        .zip(&b)
        .map(|(x, y)| {
            let dot: f64 = x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum();
            let n = |v: &[f32]| v.iter().map(|&p| p as f64 * p as f64).sum::<f64>().sqrt();
            dot / (n(x) * n(y))
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let batch: usize = std::env::var("AIFR_BENCH_BATCH").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
    let seconds: f64 = std::env::var("AIFR_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let device_name = std::env::var("AIFR_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let dtype_name = std::env::var("AIFR_BENCH_DTYPE").unwrap_or_else(|_| "f32".into());
    let dev = aifr_eval::embed::parse_device(&device_name).expect("AIFR_BENCH_DEVICE");
    let dtype = aifr_eval::embed::parse_dtype(&dtype_name).expect("AIFR_BENCH_DTYPE");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{device_name} {dtype_name}, 112x112, batch {batch}, {seconds} s per measurement, {cpus} CPUs visible, {} rayon threads",
        rayon::current_num_threads()
    );
    let mbf_cfg = MobileFaceNetConfig::MBF;
    let mbf_sd = synthetic(&mbf_cfg.state_dict_layout()).expect("weights");
    let r50_cfg = IResNetConfig::by_name("iresnet50").expect("cfg");
    let r50_sd = synthetic(&r50_cfg.state_dict_layout()).expect("weights");
    let build = |dev: &Device, dtype: DType| -> [(&str, Box<dyn FaceEmbedder>); 2] {
        [
            (
                "mobilefacenet",
                Box::new(MobileFaceNet::from_state_dict(&mbf_sd, None, "bench".into(), dev, dtype).expect("mbf")),
            ),
            ("iresnet50", Box::new(IResNet::from_state_dict(&r50_sd, None, "bench".into(), dev, dtype).expect("r50"))),
        ]
    };
    let nets = build(&dev, dtype);
    if !dev.is_cpu() {
        // The device's embeddings against the CPU's (f32) on the same input.
        let x = Tensor::randn(0f32, 1f32, (8, 3, 112, 112), &Device::Cpu).expect("input");
        for ((arch, net), (_, cpu)) in nets.iter().zip(build(&Device::Cpu, DType::F32)) {
            let on_dev = net.forward(&x.to_device(&dev).expect("upload")).expect("device forward");
            let on_cpu = cpu.forward(&x).expect("cpu forward");
            println!(
                "{arch}: {device_name} {dtype_name} vs cpu f32 embeddings, min cosine over 8 images {:.6}",
                min_cosine(&on_dev, &on_cpu)
            );
        }
    }
    println!("{:<14} {:>14} {:>16} {:>8}", "network", "aifr images/s", "PyTorch images/s", "ratio");
    for (arch, net) in &nets {
        let ours = images_per_s(net.as_ref(), batch, seconds);
        let theirs = pytorch(arch, batch, seconds, &device_name, &dtype_name);
        match theirs {
            Some(t) => println!("{arch:<14} {ours:>14.1} {t:>16.1} {:>8.2}", ours / t),
            None => println!("{arch:<14} {ours:>14.1} {:>16} {:>8}", "-", "-"),
        }
    }
}

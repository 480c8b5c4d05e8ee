//! Throughput of the arcface_torch networks on the CPU (f32, 112×112): MobileFaceNet and
//! IResNet-50 with deterministic synthetic weights, next to PyTorch-CPU running the same
//! architectures on the same machine in the same run (`tests/reference/arcface_torch_nets.py
//! bench`; skipped with a message when python3/torch are absent).
//!
//! Run: `cargo bench --bench networks` (AIFR_BENCH_BATCH, default 32; AIFR_BENCH_SECONDS per
//! measurement, default 10).

use aifr_eval::model::iresnet::{IResNet, IResNetConfig};
use aifr_eval::model::mobilefacenet::{MobileFaceNet, MobileFaceNetConfig};
use aifr_eval::model::weights::synthetic;
use aifr_eval::model::FaceEmbedder;
use candle_core::{DType, Device, Tensor};
use std::process::Command;
use std::time::Instant;

fn images_per_s(net: &dyn FaceEmbedder, batch: usize, seconds: f64) -> f64 {
    let x = Tensor::randn(0f32, 1f32, (batch, 3, 112, 112), &Device::Cpu).expect("input");
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

fn pytorch(arch: &str, batch: usize, seconds: f64) -> Option<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/arcface_torch_nets.py");
    let out = Command::new("python3")
        .args([script, "bench", "--arch", arch, "--batch", &batch.to_string(), "--seconds", &seconds.to_string()])
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

fn main() {
    let batch: usize = std::env::var("AIFR_BENCH_BATCH").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
    let seconds: f64 = std::env::var("AIFR_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "CPU f32, 112x112, batch {batch}, {seconds} s per measurement, {cpus} CPUs visible, {} rayon threads",
        rayon::current_num_threads()
    );
    let dev = Device::Cpu;
    let mbf_cfg = MobileFaceNetConfig::MBF;
    let mbf_sd = synthetic(&mbf_cfg.state_dict_layout()).expect("weights");
    let mbf = MobileFaceNet::from_state_dict(&mbf_sd, None, "bench".into(), &dev, DType::F32).expect("mbf");
    let r50_cfg = IResNetConfig::by_name("iresnet50").expect("cfg");
    let r50_sd = synthetic(&r50_cfg.state_dict_layout()).expect("weights");
    let r50 = IResNet::from_state_dict(&r50_sd, None, "bench".into(), &dev, DType::F32).expect("r50");
    let nets: [(&str, &dyn FaceEmbedder); 2] = [("mobilefacenet", &mbf), ("iresnet50", &r50)];
    println!("{:<14} {:>14} {:>16} {:>8}", "network", "aifr images/s", "PyTorch images/s", "ratio");
    for (arch, net) in nets {
        let ours = images_per_s(net, batch, seconds);
        let theirs = pytorch(arch, batch, seconds);
        match theirs {
            Some(t) => println!("{arch:<14} {ours:>14.1} {t:>16.1} {:>8.2}", ours / t),
            None => println!("{arch:<14} {ours:>14.1} {:>16} {:>8}", "-", "-"),
        }
    }
}

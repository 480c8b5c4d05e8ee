//! The probe × gallery scorer of `--score-device` on one device, without the rest of MegaFace:
//! is it exact where the reduction needs it, and how fast does it move scores?
//!
//! * position independence on the device (`score::check_position_independence`): probe vectors
//!   planted at block edges score as the probes themselves, and calls of several widths give the
//!   bits of one whole call — what makes a mate/distractor tie a tie;
//! * agreement with the faer kernel (largest absolute difference);
//! * throughput: 942 probes × AIFR_BENCH_ROWS gallery rows (default 200,000) × 512 in blocks of
//!   `score::stream::BLOCK` rows, on one thread and on all (as the scan calls it), next to faer.
//!
//! Run: `cargo bench --bench scoring` (CPU: candle's CPU matmul against faer), or with
//! AIFR_BENCH_DEVICE=cuda in a `--features cuda` build on a GPU machine (.ci/gpu-check).

use aifr_eval::score::stream::BLOCK;
use aifr_eval::score::{check_position_independence, normalize, BlockScorer, CpuScorer, ScoreDevice};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::time::Instant;

fn random(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<f32> = (0..rows * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    v.chunks_exact_mut(dim).for_each(|r| {
        normalize(r);
    });
    v
}

/// Seconds to score `gallery` in BLOCK-row calls, serially or from all threads.
fn time_blocks(s: &dyn BlockScorer, gallery: &[f32], parallel: bool) -> f64 {
    let (p, dim) = (s.probes(), s.dim());
    let t = Instant::now();
    let one = |rows: &[f32]| {
        let mut out = vec![0f32; p * (rows.len() / dim)];
        s.score(rows, rows.len() / dim, &mut out).expect("score");
        std::hint::black_box(&out);
    };
    if parallel {
        gallery.par_chunks(BLOCK * dim).for_each(one);
    } else {
        gallery.chunks(BLOCK * dim).for_each(one);
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    let device = std::env::var("AIFR_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let n: usize = std::env::var("AIFR_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let (p, dim) = (942, 512);
    // `cpu` here means candle's CPU device: the GPU's code path on the CPU.
    let dev = match device.as_str() {
        "cpu" => candle_core::Device::Cpu,
        d => aifr_eval::embed::parse_device(d).expect("AIFR_BENCH_DEVICE"),
    };
    let probes = random(p, dim, 1);
    let gallery = random(n, dim, 2);
    let candle = ScoreDevice::Candle(dev).scorer(&probes, dim).expect("scorer");
    let faer = CpuScorer::new(&probes, dim);
    println!("{p} probes × {n} rows × {dim}, blocks of {BLOCK}; {} vs {}", candle.kernel(), faer.kernel());

    // The exactness checks on the first (at most) 20,480 rows.
    let m = n.min(20_480);
    let copies: Vec<(usize, usize)> = [(0, 3), (BLOCK - 1, 5), (BLOCK, 5), (5 * BLOCK + 17, 941), (20_000, 0)]
        .into_iter()
        .filter(|c| c.0 < m)
        .collect();
    let widths = [1, 2, 7, 100, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5].into_iter();
    let sample = gallery[..m * dim].to_vec();
    match check_position_independence(candle.as_ref(), &probes, sample.clone(), &copies, widths, &[0, 999, usize::MAX])
    {
        Ok(scores) => {
            let mut want = vec![0f32; scores.len()];
            let mut planted = sample;
            for &(g, a) in &copies {
                planted[g * dim..(g + 1) * dim].copy_from_slice(&probes[a * dim..(a + 1) * dim]);
            }
            faer.score(&planted, m, &mut want).expect("faer");
            let worst = scores.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let same = scores.iter().zip(&want).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
            println!(
                "exactness: position independent ({} planted copies, 8 call widths); against faer on {} scores: {:.1}% bit-identical, largest difference {worst:.2e}",
                copies.len(),
                scores.len(),
                100.0 * same as f64 / scores.len() as f64
            );
        }
        Err(e) => println!("exactness: FAILED — {e}"),
    }

    let gb = (p * n * 4) as f64 / 1e9;
    for (name, s) in [("candle", candle.as_ref()), ("faer", &faer as &dyn BlockScorer)] {
        for parallel in [false, true] {
            time_blocks(s, &gallery[..BLOCK * dim], parallel); // warm-up
            let secs = time_blocks(s, &gallery, parallel);
            println!(
                "{name:<6} {:<8} {secs:>7.2} s  {:>9.0} rows/s  {:>6.1} GB/s of scores  {:>7.1} GFLOP/s",
                if parallel { "threads" } else { "1 thread" },
                n as f64 / secs,
                gb / secs,
                2.0 * (p * n * dim) as f64 / secs / 1e9
            );
        }
    }
}

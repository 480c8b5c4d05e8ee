//! Pair-verification metrics on 6,000 LFW-like pairs: every k-fold mode, exact ROC, AUC, EER and
//! TAR@FAR under both rules, timed here and, in the same run, by the NumPy/scikit-learn reference
//! (tests/reference/bench_verification.py) on the same data. Prints both and the ratio.
//!
//! Run: `cargo bench --bench verification` (needs python3 with numpy and scikit-learn for the ratio).

use aifr_eval::metrics::{kfold_sorted, FoldMode, Roc, SortedPairs, TarRule};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let input = root.join("tests/fixtures/verification/lfw_like.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&input).expect("fixture")).expect("json");
    let f64s = |k: &str| -> Vec<f64> { v[k].as_array().expect(k).iter().map(|x| x.as_f64().expect(k)).collect() };
    let (scores, dist) = (f64s("scores"), f64s("distances"));
    let labels: Vec<bool> = v["labels"].as_array().expect("labels").iter().map(|x| x.as_bool().expect("bool")).collect();
    let folds: Vec<usize> = v["folds"].as_array().expect("folds").iter().map(|x| x.as_u64().expect("fold") as usize).collect();
    let targets = f64s("far_targets");

    // One sort of the scores serves strict, facexzoo and the ROC; the distances get their own.
    let eval = || {
        let mut sink = 0.0;
        let by_score = SortedPairs::new(&scores, &labels, &folds, 10).expect("pairs");
        let by_dist = SortedPairs::new(&dist, &labels, &folds, 10).expect("pairs");
        for (mode, pairs) in [(FoldMode::Strict, &by_score), (FoldMode::Insightface, &by_dist), (FoldMode::Facexzoo, &by_score)] {
            sink += kfold_sorted(mode, pairs).spread.mean;
        }
        let roc = Roc::from_sorted(&by_score);
        sink += roc.len() as f64 + roc.auc() + roc.eer().map_or(0.0, |e| e.eer);
        for rule in [TarRule::Strict, TarRule::InsightfaceNearest] {
            for &t in &targets {
                sink += roc.tar_at_far(t, rule).tar.unwrap_or(0.0);
            }
        }
        sink
    };
    for _ in 0..5 {
        std::hint::black_box(eval());
    }
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        std::hint::black_box(eval());
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let rust = times[times.len() / 2];
    println!("aifr-eval  pairs={} seconds_per_eval={:.6} (median of {}; threads={})", scores.len(), rust, times.len(), rayon::current_num_threads());

    let script = root.join("tests/reference/bench_verification.py");
    match std::process::Command::new("python3").arg(&script).arg(&input).args(["--repeat", "30"]).output() {
        Ok(o) if o.status.success() => {
            let line = String::from_utf8_lossy(&o.stdout);
            let r: serde_json::Value = serde_json::from_str(line.trim()).expect("reference output");
            let numpy = r["seconds_per_eval"].as_f64().expect("seconds");
            println!("numpy ref  pairs={} seconds_per_eval={numpy:.6} (numpy {}, sklearn {})", r["pairs"], r["numpy"], r["sklearn"]);
            println!("speed-up   {:.1}x (target >= 50x)", numpy / rust);
        }
        Ok(o) => println!("reference not run: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")),
        Err(e) => println!("reference not run (python3: {e})"),
    }
}

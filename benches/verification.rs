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
    let labels: Vec<bool> =
        v["labels"].as_array().expect("labels").iter().map(|x| x.as_bool().expect("bool")).collect();
    let folds: Vec<usize> =
        v["folds"].as_array().expect("folds").iter().map(|x| x.as_u64().expect("fold") as usize).collect();
    let targets = f64s("far_targets");

    // One sort of the scores serves strict, facexzoo and the ROC; the distances get their own.
    let roc_metrics = |pairs: &SortedPairs| {
        let roc = Roc::from_sorted(pairs);
        let mut sink = roc.len() as f64 + roc.auc() + roc.eer().map_or(0.0, |e| e.eer);
        for rule in [TarRule::Strict, TarRule::InsightfaceNearest] {
            for &t in &targets {
                sink += roc.tar_at_far(t, rule).tar.unwrap_or(0.0);
            }
        }
        sink
    };
    let sequential = || {
        let by_score = SortedPairs::new(&scores, &labels, &folds, 10).expect("pairs");
        let by_dist =
            SortedPairs::new_from_order(&dist, &labels, &folds, 10, by_score.descending_order()).expect("pairs");
        kfold_sorted(FoldMode::Strict, &by_score).spread.mean
            + kfold_sorted(FoldMode::Insightface, &by_dist).spread.mean
            + kfold_sorted(FoldMode::Facexzoo, &by_score).spread.mean
            + roc_metrics(&by_score)
    };
    // The same work on the rayon pool: the two sorts, then the three modes and the ROC, in parallel.
    let parallel = || {
        let (by_score, by_dist) = rayon::join(
            || SortedPairs::new(&scores, &labels, &folds, 10).expect("pairs"),
            || SortedPairs::new(&dist, &labels, &folds, 10).expect("pairs"),
        );
        let ((a, b), (c, d)) = rayon::join(
            || {
                rayon::join(
                    || kfold_sorted(FoldMode::Strict, &by_score),
                    || kfold_sorted(FoldMode::Facexzoo, &by_score),
                )
            },
            || rayon::join(|| kfold_sorted(FoldMode::Insightface, &by_dist), || roc_metrics(&by_score)),
        );
        a.spread.mean + b.spread.mean + c.spread.mean + d
    };
    let median = |f: &dyn Fn() -> f64| {
        for _ in 0..5 {
            std::hint::black_box(f());
        }
        let mut times: Vec<f64> = (0..200)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let seq = median(&sequential);
    let par = median(&parallel);
    let threads = rayon::current_num_threads();
    println!("aifr-eval  pairs={} seconds_per_eval={seq:.6} (one thread, median of 200)", scores.len());
    println!("aifr-eval  pairs={} seconds_per_eval={par:.6} ({threads} threads, median of 200)", scores.len());
    let script = root.join("tests/reference/bench_verification.py");
    match std::process::Command::new("python3").arg(&script).arg(&input).args(["--repeat", "30"]).output() {
        Ok(o) if o.status.success() => {
            let line = String::from_utf8_lossy(&o.stdout);
            let r: serde_json::Value = serde_json::from_str(line.trim()).expect("reference output");
            let numpy = r["seconds_per_eval"].as_f64().expect("seconds");
            println!(
                "numpy ref  pairs={} seconds_per_eval={numpy:.6} (numpy {}, sklearn {})",
                r["pairs"], r["numpy"], r["sklearn"]
            );
            println!(
                "speed-up   {:.1}x one thread, {:.1}x {threads} threads (target >= 50x)",
                numpy / seq,
                numpy / par
            );
        }
        Ok(o) => println!("reference not run: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")),
        Err(e) => println!("reference not run (python3: {e})"),
    }
}

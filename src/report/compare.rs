//! Paired comparison of two runs on the same pairs: each metric's difference (b − a) with a
//! cluster-bootstrap interval, both runs resampled with the same identities in every resample.

use crate::error::{Error, Result};
use crate::metrics::bootstrap::{interval, over_resamples, resample_stats, BootstrapSpec};
use crate::metrics::SortedPairs;
use crate::run::dir::{PairScores, RunData};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDiff {
    /// `accuracy`, `auc`, `eer`, or `tar@far=<target>` (strict rule).
    pub metric: String,
    pub a: f64,
    pub b: f64,
    /// b − a on the full data.
    pub diff: f64,
    /// Bootstrap interval of the difference.
    pub lo: f64,
    pub hi: f64,
}

fn pairs_of(run: &RunData) -> Result<&PairScores> {
    run.pairs.as_ref().ok_or_else(|| {
        Error::Missing(format!(
            "{} has no pair_scores.npy (written by aifr-eval ≥ 0.1 runs); re-run the evaluation to compare",
            run.dir.display()
        ))
    })
}

/// Checks that two runs can be compared at all: same benchmark, protocol, mode and flip fusion.
pub fn check_comparable(a: &RunData, b: &RunData) -> Result<()> {
    let fields = [
        ("benchmark", "/benchmark/name"),
        ("protocol", "/protocol/name"),
        ("mode", "/protocol/mode"),
        ("flip fusion", "/protocol/flip_fusion"),
        ("folds", "/protocol/folds"),
        ("FAR targets", "/protocol/far_targets"),
        ("kind", "/kind"),
        // MegaFace: numbers with different probe sets or cleaning are not comparable.
        ("probe set", "/protocol/probe_set"),
        ("cleaning", "/protocol/cleaning"),
        ("devkit probes", "/protocol/devkit_probes"),
        // IJB: other pooling or other FPIR targets; FG-NET: other age groups; manifests: another
        // pairs file or gallery rule.
        ("pooling", "/protocol/pooling"),
        ("FPIR targets", "/protocol/fpir_targets"),
        ("age groups", "/protocol/age_groups"),
        ("manifest protocol", "/manifest/protocol"),
    ];
    for (what, ptr) in fields {
        let (x, y) = (a.results.pointer(ptr), b.results.pointer(ptr));
        if x != y {
            let show = |v: Option<&serde_json::Value>| v.map_or("(absent)".to_string(), |v| v.to_string());
            return Err(Error::Invalid(format!(
                "{} and {} differ in {what} ({} vs {}): their numbers are not comparable",
                a.dir.display(),
                b.dir.display(),
                show(x),
                show(y)
            )));
        }
    }
    Ok(())
}

fn seed_of(run: &RunData) -> BootstrapSpec {
    let b = &run.results["metrics"]["bootstrap"];
    let d = BootstrapSpec::default();
    BootstrapSpec {
        resamples: b["resamples"].as_u64().map_or(d.resamples, |x| x as usize),
        seed: b["seed"].as_u64().unwrap_or(d.seed),
        confidence: b["confidence"].as_f64().unwrap_or(d.confidence),
    }
}

/// Differences b − a of accuracy, AUC, EER and strict TAR@FAR, with paired bootstrap intervals.
pub fn paired_differences(a: &RunData, b: &RunData) -> Result<Vec<MetricDiff>> {
    check_comparable(a, b)?;
    let (pa, pb) = (pairs_of(a)?, pairs_of(b)?);
    if pa.genuine != pb.genuine || pa.fold != pb.fold || pa.cluster != pb.cluster {
        return Err(Error::Invalid(format!(
            "{} and {} were not evaluated on the same pairs (labels, folds or identities differ)",
            a.dir.display(),
            b.dir.display()
        )));
    }
    let far_targets: Vec<f64> = a.results["protocol"]["far_targets"]
        .as_array()
        .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    let folds = a.results["protocol"]["folds"].as_u64().unwrap_or(10) as usize;
    let sorted = |p: &PairScores| -> Result<SortedPairs> {
        let f: Vec<usize> = p.fold.iter().map(|&x| x as usize).collect();
        SortedPairs::new(&p.score, &p.genuine, &f, folds).map_err(|e| Error::Invalid(format!("pair scores: {e}")))
    };
    let (sa, sb) = (sorted(pa)?, sorted(pb)?);
    let n_clusters = pa.cluster.iter().max().map_or(0, |&m| m as usize + 1);
    let spec = seed_of(a);
    let full_a = resample_stats(&sa, &pa.correct, &far_targets, None);
    let full_b = resample_stats(&sb, &pb.correct, &far_targets, None);
    let samples = over_resamples(&pa.cluster, n_clusters, &spec, |w| {
        (
            resample_stats(&sa, &pa.correct, &far_targets, Some(w)),
            resample_stats(&sb, &pb.correct, &far_targets, Some(w)),
        )
    });
    let mut out = Vec::new();
    let mut push = |metric: String, x: f64, y: f64, diffs: Vec<f64>| {
        let iv = interval(y - x, diffs, spec.confidence);
        out.push(MetricDiff { metric, a: x, b: y, diff: y - x, lo: iv.lo, hi: iv.hi });
    };
    push(
        "accuracy".into(),
        full_a.accuracy,
        full_b.accuracy,
        samples.iter().map(|(x, y)| y.accuracy - x.accuracy).collect(),
    );
    push("auc".into(), full_a.auc, full_b.auc, samples.iter().map(|(x, y)| y.auc - x.auc).collect());
    push("eer".into(), full_a.eer, full_b.eer, samples.iter().map(|(x, y)| y.eer - x.eer).collect());
    for (i, far) in far_targets.iter().enumerate() {
        if full_a.tar[i].is_finite() && full_b.tar[i].is_finite() {
            let diffs = samples.iter().map(|(x, y)| y.tar[i] - x.tar[i]).collect();
            push(format!("tar@far={far:e}"), full_a.tar[i], full_b.tar[i], diffs);
        }
    }
    Ok(out)
}

//! Paired comparison of two runs on the same pairs: each metric's difference (b − a) with a
//! cluster-bootstrap interval, both runs resampled with the same identities in every resample.

use crate::error::{Error, Result};
use crate::metrics::bootstrap::{interval, over_resamples, resample_stats, weighted_rate, BootstrapSpec};
use crate::metrics::differentials::Differentials;
use crate::metrics::SortedPairs;
use crate::run::dir::{PairScores, RunData};
use crate::run::results::{ProtocolInfo, Results, VerificationResults};
use serde::Serialize;
use serde_json::Value;

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

/// The facts two runs must share for their numbers to be comparable, in the order they are
/// checked and named as the refusal names them.
const FACTS: [&str; 14] = [
    "benchmark",
    "protocol",
    "mode",
    "flip fusion",
    "folds",
    "FAR targets",
    "kind",
    "probe set",
    "cleaning",
    "devkit probes",
    "pooling",
    "FPIR targets",
    "age groups",
    "manifest protocol",
];

/// A field as results.json writes it, for comparing and showing.
fn json<T: Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The facts of `FACTS` that the run's kind has. MegaFace adds probe set, cleaning and devkit
/// probes; IJB pooling and FPIR targets; FG-NET and MegaFace age groups; manifests their pairs
/// file and gallery rule.
fn facts(r: &Results) -> Vec<(&'static str, Value)> {
    let mut f = vec![("benchmark", json(&r.benchmark().name)), ("kind", json(r.kind()))];
    let pairs = |p: &ProtocolInfo| {
        [
            ("protocol", json(&p.name)),
            ("mode", json(&p.mode)),
            ("flip fusion", json(&p.flip_fusion)),
            ("folds", json(&p.folds)),
            ("FAR targets", json(&p.far_targets)),
        ]
    };
    match r {
        Results::Pairs(v) => f.extend(pairs(&v.protocol)),
        Results::Manifest(m) => {
            f.extend(pairs(&m.verification.protocol));
            f.push(("manifest protocol", json(&m.manifest.protocol)));
        }
        Results::Fgnet(x) => {
            let p = &x.protocol;
            f.extend([
                ("protocol", json(&p.name)),
                ("mode", json(&p.mode)),
                ("flip fusion", json(&p.flip_fusion)),
                ("FAR targets", json(&p.far_targets)),
                ("age groups", json(&p.age_groups)),
            ]);
        }
        Results::Ijb(x) => {
            let p = &x.protocol;
            f.extend([
                ("protocol", json(&p.name)),
                ("mode", json(&p.mode)),
                ("flip fusion", json(&p.flip_fusion)),
                ("FAR targets", json(&p.far_targets)),
                ("pooling", json(&p.pooling)),
                ("FPIR targets", json(&p.fpir_targets)),
            ]);
        }
        Results::Megaface(x) => {
            let p = &x.protocol;
            f.extend([
                ("protocol", json(&p.name)),
                ("flip fusion", json(&p.flip_fusion)),
                ("FAR targets", json(&p.far_targets)),
                ("probe set", json(&p.probe_set)),
                ("cleaning", json(&p.cleaning)),
                ("devkit probes", json(&p.devkit_probes)),
                ("age groups", json(&p.age_groups)),
            ]);
        }
    }
    f
}

/// Checks that two runs can be compared at all: same benchmark, kind and protocol (mode, flip
/// fusion, folds, targets and each kind's own parameters).
pub fn check_comparable(a: &RunData, b: &RunData) -> Result<()> {
    let (fa, fb) = (facts(&a.results), facts(&b.results));
    let get = |f: &[(&str, Value)], what: &str| f.iter().find(|(w, _)| *w == what).map(|(_, v)| v.clone());
    for what in FACTS {
        let (x, y) = (get(&fa, what), get(&fb, what));
        if x != y {
            let show = |v: Option<Value>| v.map_or("(absent)".to_string(), |v| v.to_string());
            return Err(Error::Invalid(format!(
                "{} and {} differ in {what} ({} vs {}): their numbers are not comparable",
                a.dir.display(),
                b.dir.display(),
                show(x),
                show(y)
            )));
        }
    }
    // Differentials by an attribute both runs have must be defined alike (groups, reference,
    // α weights, targets), or their FDR and GARBE measure different things. An attribute only
    // one run has (an older run has none) is not compared; the gate skips its metrics.
    for d in a.results.differentials() {
        if let Some(e) = b.results.differentials().iter().find(|e| e.attribute == d.attribute) {
            let targets = |x: &Differentials| x.at.iter().map(|t| t.far_target).collect::<Vec<f64>>();
            let def = |x: &Differentials| json(&(&x.groups, &x.reference, x.fdr_alpha, x.garbe_alpha, targets(x)));
            if def(d) != def(e) {
                return Err(Error::Invalid(format!(
                    "{} and {} define their differentials by {} differently (groups, reference, FDR/GARBE α or FMR targets: {} vs {}): their numbers are not comparable",
                    a.dir.display(),
                    b.dir.display(),
                    d.attribute,
                    def(d),
                    def(e)
                )));
            }
        }
    }
    Ok(())
}

/// The pair-verification part of a run that has pair scores.
fn verification_of(run: &RunData) -> Result<&VerificationResults> {
    run.results.verification().ok_or_else(|| {
        Error::Invalid(format!(
            "{} is a {} run: paired differences need a pair-verification run",
            run.dir.display(),
            run.results.kind_label()
        ))
    })
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
    let va = verification_of(a)?;
    verification_of(b)?;
    let far_targets = &va.protocol.far_targets;
    let folds = va.protocol.folds;
    let sorted = |p: &PairScores| -> Result<SortedPairs> {
        let f: Vec<usize> = p.fold.iter().map(|&x| x as usize).collect();
        SortedPairs::new(&p.score, &p.genuine, &f, folds).map_err(|e| Error::Invalid(format!("pair scores: {e}")))
    };
    let (sa, sb) = (sorted(pa)?, sorted(pb)?);
    let n_clusters = pa.cluster.iter().max().map_or(0, |&m| m as usize + 1);
    let spec = va.metrics.bootstrap.spec;
    let full_a = resample_stats(&sa, &pa.correct, far_targets, None);
    let full_b = resample_stats(&sb, &pb.correct, far_targets, None);
    let samples = over_resamples(&pa.cluster, n_clusters, &spec, |w| {
        (resample_stats(&sa, &pa.correct, far_targets, Some(w)), resample_stats(&sb, &pb.correct, far_targets, Some(w)))
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

/// Differences b − a of every rank-1 both identification runs record per search (FG-NET overall
/// and by age group, IJB per gallery and combined, MegaFace per distractor size), with paired
/// bootstrap intervals over the runs' units (subjects or identities): each resample weighs both
/// runs' searches by the same draw.
pub fn paired_rank1_differences(a: &RunData, b: &RunData) -> Result<Vec<MetricDiff>> {
    check_comparable(a, b)?;
    let (oa, ob) = (outcomes_of(a)?, outcomes_of(b)?);
    if (&oa.unit, oa.clusters, &oa.cluster) != (&ob.unit, ob.clusters, &ob.cluster) {
        return Err(Error::Invalid(format!(
            "{} and {} were not evaluated on the same searches (their units differ)",
            a.dir.display(),
            b.dir.display()
        )));
    }
    let spec = a.results.bootstrap_spec().copied().unwrap_or_default();
    let mut out = Vec::new();
    for key in oa.rank1.keys().filter(|k| ob.rank1.contains_key(*k)) {
        let (Some(xa), Some(xb)) = (oa.outcomes(key), ob.outcomes(key)) else { continue };
        // The same searches must take part in both runs, or the rates are not paired.
        if xa.iter().zip(&xb).any(|(p, q)| p.is_some() != q.is_some()) {
            return Err(Error::Invalid(format!("{key}: the two runs count different searches")));
        }
        let members: Vec<usize> = (0..xa.len()).filter(|&i| xa[i].is_some()).collect();
        if members.is_empty() {
            continue;
        }
        let clusters: Vec<u32> = members.iter().map(|&i| oa.cluster[i]).collect();
        let hits = |x: &[Option<bool>]| -> Vec<bool> { members.iter().map(|&i| x[i] == Some(true)).collect() };
        let (ha, hb) = (hits(&xa), hits(&xb));
        out.push(rank1_difference(key, &ha, &hb, &clusters, oa.clusters, &spec));
    }
    Ok(out)
}

fn outcomes_of(r: &RunData) -> Result<&crate::run::dir::SearchOutcomes> {
    r.outcomes
        .as_ref()
        .ok_or_else(|| Error::Invalid(format!("{} has no {}", r.dir.display(), crate::run::dir::SEARCH_OUTCOMES_FILE)))
}

fn rank1_difference(
    key: &str,
    ha: &[bool],
    hb: &[bool],
    clusters: &[u32],
    n_clusters: usize,
    spec: &BootstrapSpec,
) -> MetricDiff {
    let rate = |h: &[bool]| h.iter().filter(|&&x| x).count() as f64 / h.len() as f64;
    let (ra, rb) = (rate(ha), rate(hb));
    let samples = over_resamples(clusters, n_clusters, spec, |w| weighted_rate(hb, w) - weighted_rate(ha, w));
    let iv = interval(rb - ra, samples, spec.confidence);
    MetricDiff { metric: key.to_string(), a: ra, b: rb, diff: rb - ra, lo: iv.lo, hi: iv.hi }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank1_difference_is_paired_over_clusters() {
        let spec = BootstrapSpec { resamples: 200, ..Default::default() };
        let clusters: Vec<u32> = (0..40).map(|i| i / 4).collect();
        let base: Vec<bool> = (0..40).map(|i| i % 4 != 0).collect();
        // The same outcomes: the difference and its interval are exactly 0.
        let same = rank1_difference("rank1", &base, &base, &clusters, 10, &spec);
        assert_eq!((same.diff, same.lo, same.hi), (0.0, 0.0, 0.0));
        // Every subject loses one hit: −0.25 with an interval that cannot reach 0.
        let worse: Vec<bool> = (0..40).map(|i| i % 4 > 1).collect();
        let d = rank1_difference("rank1", &base, &worse, &clusters, 10, &spec);
        assert_eq!((d.a, d.b), (0.75, 0.5));
        assert!((d.diff + 0.25).abs() < 1e-12 && d.hi < 0.0 && d.lo <= d.diff, "{d:?}");
        // One subject of ten changes: the interval includes 0 (not significant).
        let mut one = base.clone();
        one[1] = false;
        let d = rank1_difference("rank1", &base, &one, &clusters, 10, &spec);
        assert!(d.lo < 0.0 && d.hi >= 0.0, "{d:?}");
    }
}

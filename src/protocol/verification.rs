//! Pair verification (LFW family): flip fusion → pair scores → k-fold accuracy, ROC, AUC, EER and
//! TAR@FAR under both rules (docs/protocols.md §1, §3).

use crate::config::{AgeGapConfig, DifferentialsConfig, FlipChoice};
use crate::dataset::{PairBenchmark, PairCounts};
use crate::error::{Error, Result};
use crate::metrics::age_gap::{age_gap_breakdown, AgeGapBreakdown};
use crate::metrics::bootstrap::{interval, over_resamples, resample_stats, BootstrapSpec, Interval, ResampleStats};
use crate::metrics::differentials::{band_of, differentials, Differentials, GroupedPairs};
use crate::metrics::stats::{spread, Spread};
use crate::metrics::{fold_correct, kfold_sorted, Eer, FoldMode, KFoldAccuracy, Roc, SortedPairs, TarAtFar, TarRule};
use crate::protocol::curves::{Curves, MarkedThreshold, PairScores};
use crate::score::fusion::{unit_row_f64, Fusion};
use crate::score::kernels::{dot_f64, sq_dist_f64};
use crate::store::EmbeddingStore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerificationParams {
    pub mode: FoldMode,
    pub fusion: Fusion,
    pub far_targets: Vec<f64>,
    pub age_gap: AgeGapConfig,
    pub differentials: DifferentialsConfig,
}

/// Resolves the requested flip choice against what the store holds.
pub fn resolve_fusion(choice: FlipChoice, mode: FoldMode, store: &EmbeddingStore) -> Result<Fusion> {
    let fusion = match choice {
        FlipChoice::Auto if store.has_flip() => Fusion::Sum,
        FlipChoice::Auto | FlipChoice::None => Fusion::None,
        FlipChoice::Sum => Fusion::Sum,
        FlipChoice::Concat => Fusion::Concat,
    };
    if fusion != Fusion::None && !store.has_flip() {
        let hint = if mode == FoldMode::Insightface {
            " (compat=insightface fuses flips by default; pass --flip none to evaluate the images alone, which the results then record)"
        } else {
            ""
        };
        return Err(Error::Invalid(format!(
            "flip fusion '{}' needs embeddings of the mirrored images, but {} has none; provide --flip-embeddings{hint}",
            fusion.name(),
            store.display_path().display()
        )));
    }
    Ok(fusion)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RocSummary {
    pub auc: f64,
    pub eer: Option<Eer>,
    /// Number of distinct-threshold vertices of the exact ROC.
    pub vertices: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerificationMetrics {
    pub accuracy: KFoldAccuracy,
    pub roc: RocSummary,
    pub tar_at_far: Vec<TarAtFar>,
    /// Mean L2 norm of the raw embeddings of every pair entry (both flips when present), as
    /// insightface prints it.
    pub xnorm: f64,
    pub bootstrap: BootstrapSummary,
    /// Present when the images' ages are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_gap: Option<AgeGapBreakdown>,
    /// Why there is no `age_gap`, when the layout is known to carry no ages (CACD-VS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_gap_unavailable: Option<String>,
    /// k-fold accuracy of each group that is a benchmark of its own (RFW's subsets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_accuracy: Option<GroupAccuracy>,
    /// Error rates by group of people at global thresholds, with the summary measures
    /// (docs/protocols.md §11): one entry per attribute (layout groups such as RFW's subsets,
    /// age bands, manifest columns). Absent from runs without groups and from older runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differentials: Vec<Differentials>,
}

/// One group's own k-fold accuracy (its pairs, its folds, its thresholds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupKFold {
    pub group: String,
    pub pairs: usize,
    pub fold_accuracies: Vec<f64>,
    #[serde(flatten)]
    pub spread: Spread,
}

/// Per-group k-fold accuracy as the RFW papers print it: each subset's mean over its folds, then
/// the mean and the (population) std of those means over the subsets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupAccuracy {
    pub attribute: String,
    pub groups: Vec<GroupKFold>,
    /// Mean, std (ddof = 0) and standard error of the groups' mean accuracies.
    pub over_groups: Spread,
}

/// Strict-rule TAR@FAR interval at one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TarInterval {
    pub far_target: f64,
    pub rule: TarRule,
    #[serde(flatten)]
    pub interval: Interval,
}

/// 95% cluster-bootstrap intervals (docs/results-schema.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapSummary {
    /// "identity" (identities resampled, each pair belonging to its first image's identity) or
    /// "pair" when the benchmark names no identities.
    pub unit: String,
    pub clusters: usize,
    #[serde(flatten)]
    pub spec: BootstrapSpec,
    /// Pooled accuracy with each fold's threshold held at its k-fold value.
    pub accuracy: Interval,
    pub tar_at_far: Vec<TarInterval>,
    pub auc: Interval,
    pub eer: Interval,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VerificationOutcome {
    pub counts: PairCounts,
    pub metrics: VerificationMetrics,
    pub curves: Curves,
    /// Per-pair data for reports and paired comparisons between runs.
    pub pairs: PairScores,
}

/// Rows in the store for every benchmark key; all missing keys are reported together.
pub(crate) fn resolve_rows(keys: &[String], store: &EmbeddingStore) -> Result<Vec<usize>> {
    let mut rows = Vec::with_capacity(keys.len());
    let mut missing = Vec::new();
    for key in keys {
        match store.row_of(key) {
            Some(r) => rows.push(r),
            None => missing.push(key.as_str()),
        }
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(5).map(|k| format!("'{}'", crate::io::excerpt(k))).collect();
        return Err(Error::Invalid(format!(
            "{} of the {} images the benchmark references are not in the embeddings {} ({} keys); first: {}{}",
            missing.len(),
            keys.len(),
            store.display_path().display(),
            store.len(),
            shown.join(", "),
            if missing.len() > shown.len() { ", …" } else { "" }
        )));
    }
    Ok(rows)
}

/// Unit-norm fused embeddings (f64), one per key, and the raw norms of both views of each.
pub type UnitEmbeddings = (Vec<Vec<f64>>, Vec<[f64; 2]>);

/// L2-normalised fused embedding (f64) of every key, plus the raw norms of both views. Every key
/// must be in the store; a fused vector with zero or non-finite norm is refused by key.
pub fn unit_embeddings(keys: &[String], store: &EmbeddingStore, fusion: Fusion) -> Result<UnitEmbeddings> {
    let rows = resolve_rows(keys, store)?;
    let (emb, norms): (Vec<Option<Vec<f64>>>, Vec<[f64; 2]>) =
        rows.par_iter().map(|&row| unit_row_f64(store, row, fusion)).unzip();
    if let Some(i) = emb.iter().position(Option::is_none) {
        return Err(Error::Invalid(format!(
            "the fused embedding of '{}' has zero or non-finite norm; cannot compute a cosine score",
            keys[i]
        )));
    }
    Ok((emb.into_iter().flatten().collect(), norms))
}

pub fn evaluate(
    bench: &PairBenchmark,
    store: &EmbeddingStore,
    params: &VerificationParams,
) -> Result<VerificationOutcome> {
    let (emb, norms) = unit_embeddings(&bench.keys, store, params.fusion)?;
    let (scores, dist): (Vec<f64>, Vec<f64>) = bench
        .pairs
        .par_iter()
        .map(|p| {
            let (a, b) = (&emb[p.a as usize], &emb[p.b as usize]);
            (dot_f64(a, b), sq_dist_f64(a, b))
        })
        .unzip();
    let labels: Vec<bool> = bench.pairs.iter().map(|p| p.genuine).collect();
    let folds: Vec<usize> = bench.pairs.iter().map(|p| p.fold as usize).collect();
    let invalid = |e: crate::metrics::MetricError| Error::Invalid(format!("cannot evaluate the benchmark: {e}"));

    let by_score = SortedPairs::new(&scores, &labels, &folds, bench.folds).map_err(invalid)?;
    let accuracy = kfold_in_mode(params.mode, &by_score, &dist, &labels, &folds, bench.folds).map_err(invalid)?;
    let roc = Roc::from_sorted(&by_score);
    let values = if params.mode == FoldMode::Insightface { &dist } else { &scores };
    let correct: Vec<bool> = (0..labels.len())
        .map(|i| fold_correct(params.mode, values[i], labels[i], accuracy.thresholds[folds[i]]))
        .collect();
    let (clusters, n_clusters, unit) = match &bench.identities {
        Some(ids) => {
            let c: Vec<u32> = bench.pairs.iter().map(|p| ids[p.a as usize]).collect();
            let n = ids.iter().max().map_or(0, |&m| m as usize + 1);
            (c, n, "identity")
        }
        None => ((0..bench.pairs.len() as u32).collect(), bench.pairs.len(), "pair"),
    };
    let spec = BootstrapSpec::default();
    let bootstrap = bootstrap_summary(&by_score, &correct, &clusters, n_clusters, unit, &params.far_targets, &spec);
    let tar_at_far = roc.tar_at_fars(&params.far_targets);
    let views = if store.has_flip() { 2 } else { 1 };
    let xnorm = bench
        .pairs
        .iter()
        .flat_map(|p| [p.a, p.b])
        .map(|i| norms[i as usize][..views].iter().sum::<f64>())
        .sum::<f64>()
        / (bench.pairs.len() * 2 * views) as f64;
    let age_gap = match &bench.ages {
        Some(ages) => {
            let gaps: Vec<u32> = bench.pairs.iter().map(|p| ages[p.a as usize].abs_diff(ages[p.b as usize])).collect();
            Some(age_gap_at_operating_far(
                &roc,
                &scores,
                &labels,
                &gaps,
                &params.age_gap,
                &clusters,
                n_clusters,
                &spec,
            )?)
        }
        None => None,
    };
    let group_accuracy = match &bench.groups {
        Some(g) if g.per_group_accuracy => Some(group_accuracy(bench, g, params.mode, &scores, &dist)?),
        _ => None,
    };
    let pair_images: Vec<(usize, usize)> = bench.pairs.iter().map(|p| (p.a as usize, p.b as usize)).collect();
    let pair_scores = PairScoresView { score: &scores, genuine: &labels, cluster: &clusters, n_clusters };
    let mut diffs = Vec::new();
    if let Some(g) = &bench.groups {
        let of_image: Vec<Option<u32>> = g.of_key.iter().map(|&x| Some(x)).collect();
        let cfg = &params.differentials;
        diffs.push(group_differentials(
            &g.attribute,
            &g.names,
            &of_image,
            &pair_images,
            &pair_scores,
            &roc,
            cfg,
            &spec,
        )?);
    }
    if let Some(ages) = &bench.ages {
        let bands = &params.differentials.age_bands;
        let names: Vec<String> = bands.iter().map(|b| b.name.clone()).collect();
        let of_image = band_of(ages, bands);
        let cfg = &params.differentials;
        diffs.push(group_differentials(AGE_BAND, &names, &of_image, &pair_images, &pair_scores, &roc, cfg, &spec)?);
    }
    let eer = roc.eer();
    let mut marked: Vec<MarkedThreshold> =
        eer.iter().map(|e| MarkedThreshold { label: "EER".into(), threshold: e.threshold }).collect();
    marked.extend(tar_at_far.iter().filter(|t| t.rule == TarRule::Strict).filter_map(|t| {
        t.threshold.map(|threshold| MarkedThreshold { label: format!("FAR={:e} (strict)", t.far_target), threshold })
    }));
    if params.mode != FoldMode::Insightface {
        let mean = accuracy.thresholds.iter().sum::<f64>() / accuracy.thresholds.len() as f64;
        marked.push(MarkedThreshold { label: "k-fold mean threshold".into(), threshold: mean });
    }
    let curves = Curves::build(&roc, &scores, &labels, marked);
    let pairs = PairScores {
        score: scores,
        genuine: labels,
        fold: folds.iter().map(|&f| f as u32).collect(),
        cluster: clusters,
        correct,
    };
    Ok(VerificationOutcome {
        counts: bench.counts(),
        metrics: VerificationMetrics {
            accuracy,
            roc: RocSummary { auc: roc.auc(), eer, vertices: roc.len() },
            tar_at_far,
            xnorm,
            bootstrap,
            age_gap,
            age_gap_unavailable: None,
            group_accuracy,
            differentials: diffs,
        },
        curves,
        pairs,
    })
}

/// The attribute name of age-band differentials.
pub const AGE_BAND: &str = "age_band";

/// k-fold accuracy in `mode`: on the scores, or on the distances in the insightface order.
fn kfold_in_mode(
    mode: FoldMode,
    by_score: &SortedPairs,
    dist: &[f64],
    labels: &[bool],
    folds: &[usize],
    k: usize,
) -> std::result::Result<KFoldAccuracy, crate::metrics::MetricError> {
    Ok(if mode == FoldMode::Insightface {
        kfold_sorted(mode, &SortedPairs::new_from_order(dist, labels, folds, k, by_score.descending_order())?)
    } else {
        kfold_sorted(mode, by_score)
    })
}

/// Each group's own k-fold accuracy (its pairs, its folds), then mean and std over the groups.
fn group_accuracy(
    bench: &PairBenchmark,
    groups: &crate::dataset::KeyGroups,
    mode: FoldMode,
    scores: &[f64],
    dist: &[f64],
) -> Result<GroupAccuracy> {
    let mut out = Vec::with_capacity(groups.names.len());
    for (g, name) in groups.names.iter().enumerate() {
        // A pair of a group has both images in it; RFW's lists never mix subsets.
        let idx: Vec<usize> = (0..bench.pairs.len())
            .filter(|&i| {
                let p = bench.pairs[i];
                groups.of_key[p.a as usize] == g as u32 && groups.of_key[p.b as usize] == g as u32
            })
            .collect();
        let pick = |v: &[f64]| -> Vec<f64> { idx.iter().map(|&i| v[i]).collect() };
        let (s, d) = (pick(scores), pick(dist));
        let labels: Vec<bool> = idx.iter().map(|&i| bench.pairs[i].genuine).collect();
        let folds: Vec<usize> = idx.iter().map(|&i| bench.pairs[i].fold as usize).collect();
        let invalid = |e: crate::metrics::MetricError| Error::Invalid(format!("{} '{name}': {e}", groups.attribute));
        let by_score = SortedPairs::new(&s, &labels, &folds, bench.folds).map_err(invalid)?;
        let acc = kfold_in_mode(mode, &by_score, &d, &labels, &folds, bench.folds).map_err(invalid)?;
        out.push(GroupKFold {
            group: name.clone(),
            pairs: idx.len(),
            fold_accuracies: acc.fold_accuracies,
            spread: acc.spread,
        });
    }
    let means: Vec<f64> = out.iter().map(|g| g.spread.mean).collect();
    Ok(GroupAccuracy { attribute: groups.attribute.clone(), groups: out, over_groups: spread(&means) })
}

/// What the differentials need of the scored pairs.
pub struct PairScoresView<'a> {
    pub score: &'a [f64],
    pub genuine: &'a [bool],
    pub cluster: &'a [u32],
    pub n_clusters: usize,
}

/// The differentials by one attribute of the images: `of_image[i]` is image i's group (index
/// into `names`), `pair_images` the two images of each pair, `roc` the ROC of all the pairs.
#[allow(clippy::too_many_arguments)]
pub fn group_differentials(
    attribute: &str,
    names: &[String],
    of_image: &[Option<u32>],
    pair_images: &[(usize, usize)],
    pairs: &PairScoresView,
    roc: &Roc,
    cfg: &DifferentialsConfig,
    spec: &BootstrapSpec,
) -> Result<Differentials> {
    let groups: Vec<[Option<u32>; 2]> = pair_images.iter().map(|&(a, b)| [of_image[a], of_image[b]]).collect();
    let grouped = GroupedPairs {
        scores: pairs.score,
        genuine: pairs.genuine,
        groups: &groups,
        names,
        clusters: pairs.cluster,
        n_clusters: pairs.n_clusters,
    };
    differentials(attribute, &grouped, roc, &cfg.params_for(attribute), spec)
        .map_err(|e| Error::Invalid(format!("differentials by {attribute}: {e}")))
}

/// The age-gap breakdown at the threshold the strict rule gives for `cfg.operating_far` on all pairs.
#[allow(clippy::too_many_arguments)]
pub fn age_gap_at_operating_far(
    roc: &Roc,
    scores: &[f64],
    labels: &[bool],
    gaps: &[u32],
    cfg: &AgeGapConfig,
    clusters: &[u32],
    n_clusters: usize,
    spec: &BootstrapSpec,
) -> Result<AgeGapBreakdown> {
    let threshold = roc.tar_at_far(cfg.operating_far, TarRule::Strict).threshold.ok_or_else(|| {
        Error::Invalid(format!(
            "the age-gap analysis operates at FAR {:e}, which {} impostor pairs cannot measure; lower [age_gap] operating_far",
            cfg.operating_far,
            roc.n_impostor()
        ))
    })?;
    Ok(age_gap_breakdown(scores, labels, gaps, &cfg.bins, threshold, cfg.operating_far, clusters, n_clusters, spec))
}

/// Intervals for accuracy, strict TAR@FAR, AUC and EER from `spec.resamples` cluster resamples.
fn bootstrap_summary(
    by_score: &SortedPairs,
    correct: &[bool],
    clusters: &[u32],
    n_clusters: usize,
    unit: &'static str,
    far_targets: &[f64],
    spec: &BootstrapSpec,
) -> BootstrapSummary {
    let full = resample_stats(by_score, correct, far_targets, None);
    let samples =
        over_resamples(clusters, n_clusters, spec, |w| resample_stats(by_score, correct, far_targets, Some(w)));
    let column = |f: &dyn Fn(&ResampleStats) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
    let tar_at_far = far_targets
        .iter()
        .enumerate()
        .filter(|(i, _)| full.tar[*i].is_finite())
        .map(|(i, &far_target)| TarInterval {
            far_target,
            rule: TarRule::Strict,
            interval: interval(full.tar[i], column(&|s| s.tar[i]), spec.confidence),
        })
        .collect();
    let note = (unit == "pair").then(|| {
        "the benchmark names no identities (insightface .bin pack, CACD-VS): pairs are resampled, which understates the spread"
            .to_string()
    });
    BootstrapSummary {
        unit: unit.into(),
        clusters: n_clusters,
        spec: *spec,
        accuracy: interval(full.accuracy, column(&|s| s.accuracy), spec.confidence),
        tar_at_far,
        auc: interval(full.auc, column(&|s| s.auc), spec.confidence),
        eer: interval(full.eer, column(&|s| s.eer), spec.confidence),
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Pair;
    use crate::store::{DType, StoreWriter, View};

    /// a = [3,4] (mirror [4,3]), b = [1,0] (mirror [0,1]), c = [0,2] (mirror [0,2]), d = [1,1] (mirror [2,2]).
    fn setup(dir: &std::path::Path) -> (PairBenchmark, EmbeddingStore) {
        let mut w = StoreWriter::create(&dir.join("s"), DType::F32, 2, 2, 4, [0; 32]).unwrap();
        w.write_rows(View::Original, 0, &DType::F32.encode(&[3., 4., 1., 0., 0., 2., 1., 1.])).unwrap();
        w.write_rows(View::Flipped, 0, &DType::F32.encode(&[4., 3., 0., 1., 0., 2., 2., 2.])).unwrap();
        let keys: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let store = EmbeddingStore::open(&w.finish(&keys).unwrap()).unwrap();
        let pairs = (0..2)
            .flat_map(|fold| [Pair { a: 0, b: 1, genuine: true, fold }, Pair { a: 2, b: 3, genuine: false, fold }])
            .collect();
        (
            PairBenchmark {
                groups: None,
                keys,
                identities: None,
                ages: None,
                pairs,
                folds: 2,
                keys_are_row_order: false,
                sources: vec![],
            },
            store,
        )
    }

    fn params(fusion: Fusion) -> VerificationParams {
        VerificationParams {
            mode: FoldMode::Strict,
            fusion,
            far_targets: vec![0.5],
            age_gap: AgeGapConfig::default(),
            differentials: DifferentialsConfig::default(),
        }
    }

    #[test]
    fn flip_fusion_scores_are_hand_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (bench, store) = setup(dir.path());
        let s = |f| evaluate(&bench, &store, &params(f)).unwrap();
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        // none: cos([3,4],[1,0]) = 0.6; cos([0,2],[1,1]) = 1/sqrt2.
        let none = s(Fusion::None);
        close(none.pairs.score[0], 0.6);
        close(none.pairs.score[1], 0.5f64.sqrt());
        // sum: [7,7]·[1,1] -> 1; [0,4]·[3,3] -> 1/sqrt2.
        let sum = s(Fusion::Sum);
        close(sum.pairs.score[0], 1.0);
        close(sum.pairs.score[1], 0.5f64.sqrt());
        // concat: [3,4,4,3]/sqrt50 · [1,0,0,1]/sqrt2 = 6/10.
        close(s(Fusion::Concat).pairs.score[0], 0.6);
        // XNorm over both views of every pair entry: (5+5 + 1+1 + 2+2 + sqrt2+sqrt8)/8 per pair.
        close(sum.metrics.xnorm, (5. + 5. + 1. + 1. + 2. + 2. + 2f64.sqrt() + 8f64.sqrt()) / 8.0);
    }

    #[test]
    fn fused_zero_vector_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StoreWriter::create(&dir.path().join("s"), DType::F32, 1, 2, 4, [0; 32]).unwrap();
        w.write_rows(View::Original, 0, &DType::F32.encode(&[1., 1., -1., 1.])).unwrap();
        w.write_rows(View::Flipped, 0, &DType::F32.encode(&[1., 1., 1., 1.])).unwrap();
        let keys: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let store = EmbeddingStore::open(&w.finish(&keys).unwrap()).unwrap();
        let sub = dir.path().join("x");
        std::fs::create_dir_all(&sub).unwrap();
        let (bench, _) = setup(&sub);
        let e = evaluate(&bench, &store, &params(Fusion::Sum)).unwrap_err().to_string();
        assert!(e.contains("'c'") && e.contains("zero or non-finite norm"), "{e}");
    }
}

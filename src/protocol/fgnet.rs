//! FG-NET with a pre-trained model: leave-one-image-out rank-1 (overall, by probe age group, by
//! the age gap to the nearest mate) and verification over every pair of images with its age-gap
//! breakdown (PROTOCOLS.md §5). The bootstrap resamples subjects.

use super::verification::{age_gap_at_operating_far, unit_embeddings, Fusion};
use crate::config::FgnetProtocol;
use crate::dataset::fgnet::FgnetBenchmark;
use crate::error::{Error, Result};
use crate::metrics::age_gap::AgeGapBreakdown;
use crate::metrics::bootstrap::{interval, over_resamples, weighted_rate, BootstrapSpec, Interval};
use crate::metrics::identification::{leave_one_out, rank1_by, GroupRank1};
use crate::metrics::{Eer, Roc, TarAtFar};
use crate::report::run::{Curves, MarkedThreshold};
use crate::store::EmbeddingStore;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct FgnetCounts {
    pub images: usize,
    pub subjects: usize,
    /// Probes with at least one mate (others are excluded from rank-1).
    pub probes: usize,
    pub excluded: usize,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Identification {
    pub rank1: Option<f64>,
    /// Bootstrap interval over subjects.
    pub rank1_interval: Option<Interval>,
    pub hits: usize,
    pub by_age_group: Vec<GroupRank1>,
    /// By the age gap between the probe and its nearest-in-age mate.
    pub by_gap: Vec<GroupRank1>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AllPairsVerification {
    pub auc: f64,
    pub eer: Option<Eer>,
    pub tar_at_far: Vec<TarAtFar>,
    pub age_gap: AgeGapBreakdown,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubjectBootstrap {
    pub unit: &'static str,
    pub clusters: usize,
    #[serde(flatten)]
    pub spec: BootstrapSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct FgnetMetrics {
    pub identification: Identification,
    pub verification: AllPairsVerification,
    pub bootstrap: SubjectBootstrap,
}

#[derive(Debug, Clone)]
pub struct FgnetOutcome {
    pub counts: FgnetCounts,
    pub metrics: FgnetMetrics,
    pub curves: Curves,
}

pub fn evaluate(
    bench: &FgnetBenchmark,
    store: &EmbeddingStore,
    protocol: &FgnetProtocol,
    fusion: Fusion,
) -> Result<FgnetOutcome> {
    let keys: Vec<String> = bench.images.iter().map(|i| i.key.clone()).collect();
    let (emb, _) = unit_embeddings(&keys, store, fusion)?;
    let n = emb.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    // Upper triangle, row by row in parallel; each entry is computed once, so the result does
    // not depend on the thread count.
    let sim: Vec<f64> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let emb = &emb;
            (0..n).map(move |j| if i == j { f64::NAN } else { dot(&emb[i.min(j)], &emb[i.max(j)]) })
        })
        .collect();
    // Dense subject indices for the bootstrap.
    let mut dense = BTreeMap::new();
    for im in &bench.images {
        let next = dense.len() as u32;
        dense.entry(im.subject).or_insert(next);
    }
    let subject: Vec<u32> = bench.images.iter().map(|i| dense[&i.subject]).collect();
    let age: Vec<u32> = bench.images.iter().map(|i| i.age).collect();
    let spec = BootstrapSpec::default();

    // Identification.
    let loo = leave_one_out(n, |i, j| sim[i * n + j], &subject, &age);
    let evaluated: Vec<usize> = (0..n).filter(|&i| loo.hit[i].is_some()).collect();
    let hits_vec: Vec<bool> = evaluated.iter().map(|&i| loo.hit[i] == Some(true)).collect();
    let clusters: Vec<u32> = evaluated.iter().map(|&i| subject[i]).collect();
    let hits = hits_vec.iter().filter(|h| **h).count();
    let rank1 = (!evaluated.is_empty()).then(|| hits as f64 / evaluated.len() as f64);
    let rank1_interval = rank1.map(|r| {
        let samples = over_resamples(&clusters, dense.len(), &spec, |w| weighted_rate(&hits_vec, w));
        interval(r, samples, spec.confidence)
    });
    let ages: Vec<Option<u32>> = age.iter().map(|&a| Some(a)).collect();
    let identification = Identification {
        rank1,
        rank1_interval,
        hits,
        by_age_group: rank1_by(&loo.hit, &ages, &protocol.age_groups),
        by_gap: rank1_by(&loo.hit, &loo.nearest_gap, &protocol.age_gap.bins),
    };

    // All-pairs verification.
    let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
    let scores: Vec<f64> = pairs.iter().map(|&(i, j)| sim[i * n + j]).collect();
    let labels: Vec<bool> = pairs.iter().map(|&(i, j)| subject[i] == subject[j]).collect();
    let gaps: Vec<u32> = pairs.iter().map(|&(i, j)| age[i].abs_diff(age[j])).collect();
    let pair_clusters: Vec<u32> = pairs.iter().map(|&(i, _)| subject[i]).collect();
    let roc = Roc::new(&scores, &labels).map_err(|e| Error::Invalid(format!("FG-NET verification: {e}")))?;
    let tar_at_far = roc.tar_at_fars(&protocol.far_targets);
    let cfg = &protocol.age_gap;
    let age_gap = age_gap_at_operating_far(&roc, &scores, &labels, &gaps, cfg, &pair_clusters, dense.len(), &spec)?;
    let threshold = age_gap.threshold;
    let eer = roc.eer();
    let mut marked: Vec<MarkedThreshold> =
        eer.iter().map(|e| MarkedThreshold { label: "EER".into(), threshold: e.threshold }).collect();
    marked.push(MarkedThreshold { label: format!("FAR={:e} (age-gap threshold)", cfg.operating_far), threshold });
    let curves = Curves::build(&roc, &scores, &labels, marked);
    let genuine_pairs = labels.iter().filter(|g| **g).count();
    Ok(FgnetOutcome {
        counts: FgnetCounts {
            images: n,
            subjects: dense.len(),
            probes: evaluated.len(),
            excluded: n - evaluated.len(),
            genuine_pairs,
            impostor_pairs: labels.len() - genuine_pairs,
        },
        metrics: FgnetMetrics {
            identification,
            verification: AllPairsVerification { auc: roc.auc(), eer, tar_at_far, age_gap },
            bootstrap: SubjectBootstrap { unit: "subject", clusters: dense.len(), spec },
        },
        curves,
    })
}

//! FG-NET with a pre-trained model: leave-one-image-out rank-1 (overall, by probe age group, by
//! the age gap to the nearest mate) and verification over every pair of images with its age-gap
//! breakdown (docs/protocols.md §5.3–§5.5). The bootstrap resamples subjects.

use super::verification::{age_gap_at_operating_far, group_differentials, unit_embeddings, PairScoresView, AGE_BAND};
use crate::config::FgnetProtocol;
use crate::dataset::fgnet::FgnetBenchmark;
use crate::error::{Error, Result};
use crate::metrics::age_gap::{AgeGapBreakdown, GapBin};
use crate::metrics::bootstrap::{interval, over_resamples, weighted_rate, BootstrapSpec, Interval};
use crate::metrics::differentials::band_of;
use crate::metrics::identification::{leave_one_out, probe_outcome, rank1_by, GroupRank1};
use crate::metrics::{Eer, Roc, TarAtFar};
use crate::protocol::curves::{Curves, MarkedThreshold};
use crate::protocol::outcomes::{group_label, SearchOutcomes};
use crate::score::fusion::Fusion;
use crate::score::kernels::dot_f64;
use crate::store::EmbeddingStore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FgnetCounts {
    pub images: usize,
    pub subjects: usize,
    /// Probes with at least one mate (others are excluded from rank-1).
    pub probes: usize,
    pub excluded: usize,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identification {
    pub rank1: Option<f64>,
    /// Bootstrap interval over subjects.
    pub rank1_interval: Option<Interval>,
    pub hits: usize,
    pub by_age_group: Vec<GroupRank1>,
    /// By the age gap between the probe and its nearest-in-age mate.
    pub by_gap: Vec<GroupRank1>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllPairsVerification {
    pub auc: f64,
    pub eer: Option<Eer>,
    pub tar_at_far: Vec<TarAtFar>,
    pub age_gap: AgeGapBreakdown,
    /// Error rates by age band at global thresholds (docs/protocols.md §11); absent from
    /// older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differentials: Option<crate::metrics::differentials::Differentials>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectBootstrap {
    pub unit: String,
    pub clusters: usize,
    #[serde(flatten)]
    pub spec: BootstrapSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FgnetMetrics {
    pub identification: Identification,
    /// Absent with one model per held-out subject: a pair of two subjects has no single model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<AllPairsVerification>,
    pub bootstrap: SubjectBootstrap,
    /// "one model" or "one model per held-out subject".
    pub models: String,
}

#[derive(Debug, Clone)]
pub struct FgnetOutcome {
    pub counts: FgnetCounts,
    pub metrics: FgnetMetrics,
    pub curves: Option<Curves>,
    /// Per image (one search each): rank-1 hit overall and by probe age group, for the gate.
    pub searches: SearchOutcomes,
}

/// Subject indices 0.. in order of first appearance, their count, and each image's age.
fn subjects_and_ages(bench: &FgnetBenchmark) -> (Vec<u32>, usize, Vec<u32>) {
    let mut dense = BTreeMap::new();
    for im in &bench.images {
        let next = dense.len() as u32;
        dense.entry(im.subject).or_insert(next);
    }
    let subject = bench.images.iter().map(|i| dense[&i.subject]).collect();
    (subject, dense.len(), bench.images.iter().map(|i| i.age).collect())
}

/// Rank-1 overall (with a bootstrap interval over subjects), by probe age group and by gap.
fn identification(
    hit: &[Option<bool>],
    nearest_gap: &[Option<u32>],
    subject: &[u32],
    age: &[u32],
    n_subjects: usize,
    protocol: &FgnetProtocol,
    spec: &BootstrapSpec,
) -> Identification {
    let evaluated: Vec<usize> = (0..hit.len()).filter(|&i| hit[i].is_some()).collect();
    let hits_vec: Vec<bool> = evaluated.iter().map(|&i| hit[i] == Some(true)).collect();
    let clusters: Vec<u32> = evaluated.iter().map(|&i| subject[i]).collect();
    let hits = hits_vec.iter().filter(|h| **h).count();
    let rank1 = (!evaluated.is_empty()).then(|| hits as f64 / evaluated.len() as f64);
    let rank1_interval = rank1.map(|r| {
        let samples = over_resamples(&clusters, n_subjects, spec, |w| weighted_rate(&hits_vec, w));
        interval(r, samples, spec.confidence)
    });
    let ages: Vec<Option<u32>> = age.iter().map(|&a| Some(a)).collect();
    Identification {
        rank1,
        rank1_interval,
        hits,
        by_age_group: rank1_by(hit, &ages, &protocol.age_groups),
        by_gap: rank1_by(hit, nearest_gap, &protocol.age_gap.bins),
    }
}

/// The searches behind the rank-1 numbers, keyed as the gate names them.
fn search_outcomes(
    hit: &[Option<bool>],
    subject: &[u32],
    n_subjects: usize,
    age: &[u32],
    groups: &[GapBin],
) -> SearchOutcomes {
    let mut o = SearchOutcomes::new("subject", n_subjects, subject.to_vec());
    o.add("rank1".into(), hit.iter().copied());
    for g in groups {
        let member = hit.iter().zip(age).map(|(h, &a)| h.filter(|_| g.contains(a)));
        o.add(format!("rank1@age={}", group_label(g)), member);
    }
    o
}

fn counts(n: usize, subject: &[u32], n_subjects: usize, hit: &[Option<bool>]) -> FgnetCounts {
    let mut per_subject = vec![0usize; n_subjects];
    subject.iter().for_each(|&s| per_subject[s as usize] += 1);
    let genuine_pairs: usize = per_subject.iter().map(|&c| c * c.saturating_sub(1) / 2).sum();
    let probes = hit.iter().filter(|h| h.is_some()).count();
    FgnetCounts {
        images: n,
        subjects: n_subjects,
        probes,
        excluded: n - probes,
        genuine_pairs,
        impostor_pairs: n * n.saturating_sub(1) / 2 - genuine_pairs,
    }
}

/// FG-NET with one model per held-out subject (true leave-one-person-out): the probes of subject
/// s are identified with model s's embeddings (`store_for(subject id)`) against all other
/// images embedded by the same model. Only identification is defined.
pub fn evaluate_per_subject(
    bench: &FgnetBenchmark,
    store_for: impl Fn(u32) -> Result<EmbeddingStore>,
    protocol: &FgnetProtocol,
    fusion: Fusion,
) -> Result<FgnetOutcome> {
    let keys: Vec<String> = bench.images.iter().map(|i| i.key.clone()).collect();
    let (subject, n_subjects, age) = subjects_and_ages(bench);
    let n = keys.len();
    let (mut hit, mut nearest_gap) = (vec![None; n], vec![None; n]);
    let mut ids: Vec<u32> = bench.images.iter().map(|i| i.subject).collect();
    ids.dedup();
    for id in ids {
        let store = store_for(id)?;
        let (emb, _) = unit_embeddings(&keys, &store, fusion)?;
        let probes: Vec<usize> = (0..n).filter(|&i| bench.images[i].subject == id).collect();
        let outcomes: Vec<(Option<bool>, Option<u32>)> =
            probes.par_iter().map(|&i| probe_outcome(i, n, |a, b| dot_f64(&emb[a], &emb[b]), &subject, &age)).collect();
        for (&i, (h, g)) in probes.iter().zip(outcomes) {
            (hit[i], nearest_gap[i]) = (h, g);
        }
    }
    let spec = BootstrapSpec::default();
    Ok(FgnetOutcome {
        counts: counts(n, &subject, n_subjects, &hit),
        metrics: FgnetMetrics {
            identification: identification(&hit, &nearest_gap, &subject, &age, n_subjects, protocol, &spec),
            verification: None,
            bootstrap: SubjectBootstrap { unit: "subject".into(), clusters: n_subjects, spec },
            models: "one model per held-out subject".into(),
        },
        curves: None,
        searches: search_outcomes(&hit, &subject, n_subjects, &age, &protocol.age_groups),
    })
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
    // Upper triangle, row by row in parallel; each entry is computed once, so the result does
    // not depend on the thread count.
    let sim: Vec<f64> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let emb = &emb;
            (0..n).map(move |j| if i == j { f64::NAN } else { dot_f64(&emb[i.min(j)], &emb[i.max(j)]) })
        })
        .collect();
    let (subject, n_subjects, age) = subjects_and_ages(bench);
    let spec = BootstrapSpec::default();
    let loo = leave_one_out(n, |i, j| sim[i * n + j], &subject, &age);
    let identification = identification(&loo.hit, &loo.nearest_gap, &subject, &age, n_subjects, protocol, &spec);

    // All-pairs verification.
    let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
    let scores: Vec<f64> = pairs.iter().map(|&(i, j)| sim[i * n + j]).collect();
    let labels: Vec<bool> = pairs.iter().map(|&(i, j)| subject[i] == subject[j]).collect();
    let gaps: Vec<u32> = pairs.iter().map(|&(i, j)| age[i].abs_diff(age[j])).collect();
    let pair_clusters: Vec<u32> = pairs.iter().map(|&(i, _)| subject[i]).collect();
    let roc = Roc::new(&scores, &labels).map_err(|e| Error::Invalid(format!("FG-NET verification: {e}")))?;
    let tar_at_far = roc.tar_at_fars(&protocol.far_targets);
    let cfg = &protocol.age_gap;
    let age_gap = age_gap_at_operating_far(&roc, &scores, &labels, &gaps, cfg, &pair_clusters, n_subjects, &spec)?;
    let threshold = age_gap.threshold;
    let bands = &protocol.differentials.age_bands;
    let band_names: Vec<String> = bands.iter().map(|b| b.name.clone()).collect();
    let view = PairScoresView { score: &scores, genuine: &labels, cluster: &pair_clusters, n_clusters: n_subjects };
    let differentials = group_differentials(
        AGE_BAND,
        &band_names,
        &band_of(&age, bands),
        &pairs,
        &view,
        &roc,
        &protocol.differentials,
        &spec,
    )?;
    let eer = roc.eer();
    let mut marked: Vec<MarkedThreshold> =
        eer.iter().map(|e| MarkedThreshold { label: "EER".into(), threshold: e.threshold }).collect();
    marked.push(MarkedThreshold { label: format!("FAR={:e} (age-gap threshold)", cfg.operating_far), threshold });
    let curves = Curves::build(&roc, &scores, &labels, marked);
    Ok(FgnetOutcome {
        counts: counts(n, &subject, n_subjects, &loo.hit),
        metrics: FgnetMetrics {
            identification,
            verification: Some(AllPairsVerification {
                auc: roc.auc(),
                eer,
                tar_at_far,
                age_gap,
                differentials: Some(differentials),
            }),
            bootstrap: SubjectBootstrap { unit: "subject".into(), clusters: n_subjects, spec },
            models: "one model".into(),
        },
        curves: Some(curves),
        searches: search_outcomes(&loo.hit, &subject, n_subjects, &age, &protocol.age_groups),
    })
}

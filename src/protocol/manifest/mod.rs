//! Bring-your-own collection: protocols built from a manifest (`build`), their files (`lists`),
//! and the parts of a manifest run that the pair-verification protocol does not cover:
//! closed-set identification (gallery split and leave-one-image-out rank-1) and the breakdown
//! of every result by `group` and any other requested column.

pub mod build;
pub mod lists;

use super::verification::{
    age_gap_at_operating_far, group_differentials, unit_embeddings, PairScoresView, VerificationOutcome,
};
use crate::config::{AgeGapConfig, DifferentialsConfig};
use crate::dataset::manifest::Manifest;
use crate::error::{Error, Result};
use crate::metrics::age_gap::GapBin;
use crate::metrics::bootstrap::{interval, over_resamples, weighted_rate, BootstrapSpec, Interval};
use crate::metrics::differentials::{Differentials, RateSpread};
use crate::metrics::identification::{outcome_against, rank1_by, GroupRank1};
use crate::metrics::Roc;
use crate::score::fusion::Fusion;
use crate::score::kernels::dot_f64;
use crate::store::EmbeddingStore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Most distinct values a stratification column may have (a breakdown is a table, not a dump).
pub const MAX_STRATA: usize = 100;

/// Label of pairs whose two images fall in different strata.
pub const MIXED: &str = "(mixed)";
/// Label of images with an empty cell.
pub const EMPTY: &str = "(empty)";

/// Rank-1 of one set of probes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rank1 {
    pub probes: usize,
    pub hits: usize,
    pub rank1: Option<f64>,
    /// Bootstrap interval over identities.
    pub rank1_interval: Option<Interval>,
    /// By the age gap between the probe and its nearest-in-age mate in the gallery (ages known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_gap: Option<Vec<GroupRank1>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitInfo {
    /// "youngest", "oldest" or "first".
    pub gallery: String,
    pub gallery_images: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestIdentification {
    pub split: SplitInfo,
    /// Closed set: each probe against the gallery (one image per identity).
    pub gallery_rank1: Rank1,
    /// Each image against all other images of the manifest (images without a mate excluded).
    pub leave_one_out: Option<Rank1>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Rank-1 within one stratum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankCell {
    pub probes: usize,
    pub hits: usize,
    pub rank1: Option<f64>,
}

impl From<&GroupRank1> for RankCell {
    fn from(g: &GroupRank1) -> Self {
        RankCell { probes: g.probes, hits: g.hits, rank1: g.rank1 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stratum {
    pub value: String,
    pub images: usize,
    pub n_genuine: usize,
    pub n_impostor: usize,
    /// At the operating threshold (strict rule at `operating_far` on all pairs).
    pub tar: Option<f64>,
    pub far: Option<f64>,
    pub accuracy: Option<f64>,
    /// Pairs classified right at their fold's k-fold threshold.
    pub kfold_accuracy: Option<f64>,
    pub mean_genuine_score: Option<f64>,
    pub tar_interval: Option<Interval>,
    pub gallery_rank1: RankCell,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leave_one_out_rank1: Option<RankCell>,
}

/// The breakdown by one column: a pair belongs to a stratum when both its images do (else to
/// "(mixed)"), a probe to its own image's stratum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stratification {
    pub column: String,
    pub threshold: f64,
    pub operating_far: f64,
    pub strata: Vec<Stratum>,
    /// The spread over the strata ("(mixed)" excluded) of the gallery rank-1 miss rate
    /// (1 − rank-1, the rank-1 FNIR of a closed set): max/min ratio, max difference, Gini
    /// (docs/protocols.md §11.6). Absent from older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank1_miss_spread: Option<RateSpread>,
    /// The same for leave-one-image-out rank-1, when it was evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_one_out_miss_spread: Option<RateSpread>,
}

/// Per-probe outcomes of the identification: (hit, nearest gap) for every manifest row (None
/// for rows that are not probes or have no mate).
pub struct IdentificationOutcome {
    pub result: ManifestIdentification,
    pub split_hit: Vec<Option<bool>>,
    pub loo_hit: Option<Vec<Option<bool>>>,
}

fn rank1_of(
    hit: &[Option<bool>],
    gap: &[Option<u32>],
    identity: &[u32],
    n_identities: usize,
    ages: bool,
    bins: &[GapBin],
    spec: &BootstrapSpec,
) -> Rank1 {
    let evaluated: Vec<usize> = (0..hit.len()).filter(|&i| hit[i].is_some()).collect();
    let hits_vec: Vec<bool> = evaluated.iter().map(|&i| hit[i] == Some(true)).collect();
    let clusters: Vec<u32> = evaluated.iter().map(|&i| identity[i]).collect();
    let hits = hits_vec.iter().filter(|h| **h).count();
    let rank1 = (!evaluated.is_empty()).then(|| hits as f64 / evaluated.len() as f64);
    let rank1_interval = rank1.map(|r| {
        let samples = over_resamples(&clusters, n_identities, spec, |w| weighted_rate(&hits_vec, w));
        interval(r, samples, spec.confidence)
    });
    Rank1 { probes: evaluated.len(), hits, rank1, rank1_interval, by_gap: ages.then(|| rank1_by(hit, gap, bins)) }
}

/// Gallery rank-1 over the split and, for collections of at most `loo_max_images` images,
/// leave-one-image-out rank-1 over the whole manifest.
#[allow(clippy::too_many_arguments)]
pub fn identification(
    m: &Manifest,
    store: &EmbeddingStore,
    fusion: Fusion,
    gallery_choice: &str,
    gallery: &[u32],
    probes: &[u32],
    gap_bins: &[GapBin],
    loo_max_images: usize,
) -> Result<IdentificationOutcome> {
    let n = m.len();
    let (emb, _) = unit_embeddings(&m.paths, store, fusion)?;
    let zero = vec![0u32; n];
    let age: &[u32] = m.ages.as_deref().unwrap_or(&zero);
    let subject: Vec<u32> = m.identity.clone();
    let sim = |i: usize, j: usize| dot_f64(&emb[i], &emb[j]);
    let spec = BootstrapSpec::default();
    let gallery_rows: Vec<usize> = gallery.iter().map(|&r| r as usize).collect();
    let outcomes: Vec<(Option<bool>, Option<u32>)> = probes
        .par_iter()
        .map(|&p| outcome_against(p as usize, gallery_rows.iter().copied(), sim, &subject, age))
        .collect();
    let (mut split_hit, mut split_gap) = (vec![None; n], vec![None; n]);
    for (&p, (h, g)) in probes.iter().zip(outcomes) {
        (split_hit[p as usize], split_gap[p as usize]) = (h, g);
    }
    let ages = m.ages.is_some();
    let gallery_rank1 = rank1_of(&split_hit, &split_gap, &subject, m.identities(), ages, gap_bins, &spec);
    let (leave_one_out, loo_hit, note) = if n <= loo_max_images {
        let outcomes: Vec<(Option<bool>, Option<u32>)> = (0..n)
            .into_par_iter()
            .map(|i| outcome_against(i, (0..n).filter(|&j| j != i), sim, &subject, age))
            .collect();
        let (hit, gap): (Vec<Option<bool>>, Vec<Option<u32>>) = outcomes.into_iter().unzip();
        let r = rank1_of(&hit, &gap, &subject, m.identities(), ages, gap_bins, &spec);
        (Some(r), Some(hit), None)
    } else {
        let note = format!(
            "leave-one-image-out rank-1 skipped: {n} images exceed --loo-max-images {loo_max_images} (it compares every image with every other)"
        );
        (None, None, Some(note))
    };
    Ok(IdentificationOutcome {
        result: ManifestIdentification {
            split: SplitInfo { gallery: gallery_choice.to_string(), gallery_images: gallery.len() },
            gallery_rank1,
            leave_one_out,
            note,
        },
        split_hit,
        loo_hit,
    })
}

/// Stratum index of every manifest row for `column`, and the stratum names (sorted, "(empty)"
/// last among them; "(mixed)" is appended for pairs).
fn strata_of(m: &Manifest, column: &str) -> Result<(Vec<u32>, Vec<String>)> {
    let col = m.text_column(column).ok_or_else(|| {
        let names: Vec<&str> = m.text_columns.iter().map(|c| c.name.as_str()).collect();
        Error::Config(format!(
            "--stratify {column}: {} has no such column (text columns: {})",
            m.source.display(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        ))
    })?;
    let mut values: Vec<&str> = col.values.iter().map(|v| v.as_deref().unwrap_or(EMPTY)).collect();
    values.sort_unstable();
    values.dedup();
    if values.len() > MAX_STRATA {
        return Err(Error::Config(format!(
            "--stratify {column}: the column has {} distinct values; stratify by a column with at most {MAX_STRATA}",
            values.len()
        )));
    }
    let names: Vec<String> = values.iter().map(|s| s.to_string()).collect();
    let idx: std::collections::HashMap<&str, u32> = values.iter().enumerate().map(|(i, v)| (*v, i as u32)).collect();
    let of_row = col.values.iter().map(|v| idx[v.as_deref().unwrap_or(EMPTY)]).collect();
    Ok((of_row, names))
}

/// The breakdown of verification (at the operating threshold and at the k-fold thresholds) and
/// identification by `column`. `pair_rows` gives the manifest rows of each pair.
#[allow(clippy::too_many_arguments)]
pub fn stratify(
    m: &Manifest,
    column: &str,
    outcome: &VerificationOutcome,
    pair_rows: &[(u32, u32)],
    age_gap: &AgeGapConfig,
    ident: &IdentificationOutcome,
) -> Result<Stratification> {
    let (of_row, mut names) = strata_of(m, column)?;
    let mixed = names.len() as u32;
    names.push(MIXED.to_string());
    let pairs = &outcome.pairs;
    let stratum: Vec<u32> = pair_rows
        .iter()
        .map(|&(a, b)| {
            let (x, y) = (of_row[a as usize], of_row[b as usize]);
            if x == y {
                x
            } else {
                mixed
            }
        })
        .collect();
    // One bin per stratum: the age-gap breakdown with the stratum index standing for the gap.
    let bins: Vec<GapBin> = (0..names.len() as u32).map(|i| GapBin { lo: i, hi: Some(i) }).collect();
    let cfg = AgeGapConfig { operating_far: age_gap.operating_far, bins: bins.clone() };
    let roc = Roc::new(&pairs.score, &pairs.genuine).map_err(|e| Error::Invalid(format!("stratification: {e}")))?;
    let n_clusters = pairs.cluster.iter().max().map_or(0, |&c| c as usize + 1);
    let spec = BootstrapSpec::default();
    let breakdown = age_gap_at_operating_far(
        &roc,
        &pairs.score,
        &pairs.genuine,
        &stratum,
        &cfg,
        &pairs.cluster,
        n_clusters,
        &spec,
    )?;
    let row_value: Vec<Option<u32>> = of_row.iter().map(|&s| Some(s)).collect();
    let split = rank1_by(&ident.split_hit, &row_value, &bins);
    let loo = ident.loo_hit.as_ref().map(|h| rank1_by(h, &row_value, &bins));
    let mut images = vec![0usize; names.len()];
    of_row.iter().for_each(|&s| images[s as usize] += 1);
    let strata = breakdown
        .bins
        .iter()
        .enumerate()
        .filter(|(s, b)| *s as u32 != mixed || b.n_genuine + b.n_impostor > 0)
        .map(|(s, b)| {
            let (mut right, mut total) = (0usize, 0usize);
            for (k, &st) in stratum.iter().enumerate() {
                if st as usize == s {
                    total += 1;
                    right += pairs.correct[k] as usize;
                }
            }
            Stratum {
                value: names[s].clone(),
                images: images[s],
                n_genuine: b.n_genuine,
                n_impostor: b.n_impostor,
                tar: b.tar,
                far: b.far,
                accuracy: b.accuracy,
                kfold_accuracy: (total > 0).then(|| right as f64 / total as f64),
                mean_genuine_score: b.mean_genuine_score,
                tar_interval: b.tar_interval,
                gallery_rank1: (&split[s]).into(),
                leave_one_out_rank1: loo.as_ref().map(|l| (&l[s]).into()),
            }
        })
        .collect::<Vec<Stratum>>();
    let own: Vec<&Stratum> = strata.iter().filter(|s| s.value != MIXED).collect();
    let own_names: Vec<String> = own.iter().map(|s| s.value.clone()).collect();
    let miss = |cell: &dyn Fn(&Stratum) -> Option<f64>| -> RateSpread {
        let rates: Vec<Option<f64>> = own.iter().map(|s| cell(s).map(|r| 1.0 - r)).collect();
        RateSpread::of(&rates, &own_names)
    };
    let rank1_miss_spread = Some(miss(&|s| s.gallery_rank1.rank1));
    let leave_one_out_miss_spread =
        loo.is_some().then(|| miss(&|s| s.leave_one_out_rank1.as_ref().and_then(|c| c.rank1)));
    Ok(Stratification {
        column: column.to_string(),
        threshold: breakdown.threshold,
        operating_far: breakdown.operating_far,
        strata,
        rank1_miss_spread,
        leave_one_out_miss_spread,
    })
}

/// The differentials by `column` (docs/protocols.md §11): every value of the column is a group
/// ("(empty)" included); a pair belongs to a group when both its images do.
pub fn column_differentials(
    m: &Manifest,
    column: &str,
    outcome: &VerificationOutcome,
    pair_rows: &[(u32, u32)],
    cfg: &DifferentialsConfig,
) -> Result<Differentials> {
    let (of_row, names) = strata_of(m, column)?;
    let of_image: Vec<Option<u32>> = of_row.iter().map(|&s| Some(s)).collect();
    let pair_images: Vec<(usize, usize)> = pair_rows.iter().map(|&(a, b)| (a as usize, b as usize)).collect();
    let pairs = &outcome.pairs;
    let roc = Roc::new(&pairs.score, &pairs.genuine).map_err(|e| Error::Invalid(format!("differentials: {e}")))?;
    let view = PairScoresView {
        score: &pairs.score,
        genuine: &pairs.genuine,
        cluster: &pairs.cluster,
        n_clusters: pairs.cluster.iter().max().map_or(0, |&c| c as usize + 1),
    };
    group_differentials(column, &names, &of_image, &pair_images, &view, &roc, cfg, &BootstrapSpec::default())
}

//! IJB-B / IJB-C (docs/protocols.md §2): per-image embeddings → template features (media mean, then
//! template sum, then L2) → 1:1 pair scores → exact ROC, TAR@FAR under both rules, AUC; and 1:N
//! open-set identification per gallery (TPIR@FPIR strict and compat=ijb_evals, CMC) plus the
//! labelled legacy merged-gallery numbers.
//!
//! Speed (15.7 M pairs): templates are one contiguous L2-normalised f32 matrix, scored by
//! `score::pairs` (tiles of template blocks, a fixed 16-lane summation order: identical results
//! with SSE2 or AVX2, any thread count); the ROC is built from the f32 scores with a radix sort.

use crate::dataset::ijb::{IjbRelease, OneN};
use crate::error::{Error, Result};
use crate::metrics::open_set::{
    cmc, legacy_points, mate_rank, CmcPoint, FpirRule, LegacyPoint, MatedProbe, OpenSet, TpirAtFpir,
};
use crate::metrics::{Roc, TarAtFar, TarRule};
use crate::protocol::curves::{Curves, MarkedThreshold, OpenSetCurve};
use crate::protocol::outcomes::SearchOutcomes;
use crate::protocol::verification::RocSummary;
use crate::score::fusion::Fusion;
use crate::score::kernels::{l2_norm, unit_f64};
pub use crate::score::pairs::score_pairs;
use crate::score::pairs::{score_block, RowMatrix};
use crate::store::{EmbeddingStore, View};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Instant;

/// How per-image embeddings become a template feature. insightface's published setting is
/// `flip = true, normalize_images = false, detector_weight = true` (its `use_norm_score` flag
/// means "do not normalise" in ijb_11.py and "normalise" in ijb_evals.py, hence explicit names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pooling {
    /// Add the mirrored image's raw embedding to the image's: `e + e_flip`.
    pub flip: bool,
    /// L2-normalise each image's (flip-fused) embedding before weighting and pooling.
    pub normalize_images: bool,
    /// Multiply each image's feature by its detector score.
    pub detector_weight: bool,
}

impl Default for Pooling {
    fn default() -> Self {
        Pooling { flip: true, normalize_images: false, detector_weight: true }
    }
}

/// L2-normalised template features, one row per template of [`IjbRelease::template_ids`].
pub type TemplateMatrix = RowMatrix;

/// Why a template cannot be pooled.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolError {
    /// An image's fused embedding has zero norm with `normalize_images`.
    ZeroImage { image: usize },
    /// The pooled template feature is zero or not finite.
    ZeroTemplate { template: usize },
}

/// Pools per-image features into templates: within a template, images are grouped by media
/// (ascending media ID), each media contributes the mean of its images, the template is the sum
/// over its medias, then L2-normalised. Accumulation in f64, result in f32.
///
/// `read(i, view, out)` fills image i's raw embedding; `scores[i]` is its detector score.
pub fn pool_templates(
    n_templates: usize,
    image_template: &[u32],
    image_media: &[u32],
    scores: &[f32],
    dim: usize,
    read: &(dyn Fn(usize, View, &mut [f32]) + Sync),
    pooling: Pooling,
) -> std::result::Result<TemplateMatrix, PoolError> {
    // Counting sort of the images by template, then by (media, file order) within each.
    let mut start = vec![0usize; n_templates + 1];
    for &t in image_template {
        start[t as usize + 1] += 1;
    }
    for t in 0..n_templates {
        start[t + 1] += start[t];
    }
    let mut order = vec![0u32; image_template.len()];
    let mut next = start.clone();
    for (i, &t) in image_template.iter().enumerate() {
        order[next[t as usize]] = i as u32;
        next[t as usize] += 1;
    }
    let mut data = vec![0f32; n_templates * dim];
    // Every template is pooled; the first failure in template order is reported (deterministic).
    let failures: Vec<Option<PoolError>> = data
        .par_chunks_mut(dim.max(1))
        .enumerate()
        .map(|(t, out)| {
            let mut imgs: Vec<u32> = order[start[t]..start[t + 1]].to_vec();
            imgs.sort_by_key(|&i| (image_media[i as usize], i));
            let (mut e, mut f, mut x) = (vec![0f32; dim], vec![0f32; dim], vec![0f32; dim]);
            let (mut media_sum, mut template) = (vec![0f64; dim], vec![0f64; dim]);
            let fusion = if pooling.flip { Fusion::Sum } else { Fusion::None };
            let mut k = 0;
            while k < imgs.len() {
                let media = image_media[imgs[k] as usize];
                media_sum.iter_mut().for_each(|x| *x = 0.0);
                let mut count = 0usize;
                while k < imgs.len() && image_media[imgs[k] as usize] == media {
                    let i = imgs[k] as usize;
                    read(i, View::Original, &mut e);
                    if pooling.flip {
                        read(i, View::Flipped, &mut f);
                    }
                    // Raw embeddings summed in f32, as insightface's pooling does.
                    fusion.fuse(&e, &f, &mut x);
                    let mut w = if pooling.detector_weight { scores[i] as f64 } else { 1.0 };
                    if pooling.normalize_images {
                        let n = l2_norm(&x);
                        if !(n > 0.0 && n.is_finite()) {
                            return Err(PoolError::ZeroImage { image: i });
                        }
                        w /= n;
                    }
                    for (m, &v) in media_sum.iter_mut().zip(&x) {
                        *m += v as f64 * w;
                    }
                    count += 1;
                    k += 1;
                }
                for (tv, &m) in template.iter_mut().zip(&media_sum) {
                    *tv += m / count as f64;
                }
            }
            if !unit_f64(&mut template) {
                return Err(PoolError::ZeroTemplate { template: t });
            }
            for (o, &v) in out.iter_mut().zip(&template) {
                *o = v as f32;
            }
            Ok(())
        })
        .map(|r: std::result::Result<(), PoolError>| r.err())
        .collect();
    match failures.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(TemplateMatrix { dim, data }),
    }
}

// ---------------------------------------------------------------------------------------------
// 1:N

/// One gallery's open-set results (strict and compat=ijb_evals).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GalleryResults {
    pub name: String,
    pub templates: usize,
    pub mated_probes: usize,
    pub nonmated_probes: usize,
    pub tpir_at_fpir: Vec<TpirAtFpir>,
    /// Fraction of this gallery's mated probes whose mate ranks ≤ k (ties count against the mate).
    pub cmc: Vec<CmcPoint>,
}

/// The mean of the galleries' TPIR at one target, as ijb_evals reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeanTpir {
    pub fpir_target: f64,
    pub rule: FpirRule,
    pub tpir: Option<f64>,
}

/// compat=ijb_1n_legacy: kept only as a labelled legacy number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegacyResults {
    pub label: String,
    pub available: bool,
    pub note: Option<String>,
    pub gallery_templates: usize,
    pub probes: usize,
    pub cmc: Vec<CmcPoint>,
    pub points: Vec<LegacyPoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identification {
    pub galleries: Vec<GalleryResults>,
    pub mean_tpir_at_fpir: Vec<MeanTpir>,
    /// (hits in every gallery) / #probes, as ijb_evals combines G1 and G2.
    pub cmc: Vec<CmcPoint>,
    pub legacy: LegacyResults,
}

pub const LEGACY_LABEL: &str = "compat=ijb_1n_legacy (insightface ijb_1n.py): G1 and G2 merged into one closed-set gallery; the threshold is the k-th highest non-mate score with k = ceil(#probes x FAR), so this 'FAR' divides by the number of probes, not of non-mate comparisons; TPR = #(mate score > threshold) / #probes. Not comparable with TPIR@FPIR.";

/// Per-probe summary against one gallery.
#[derive(Debug, Clone, Copy)]
enum ProbeStat {
    Mated { mate: f32, best_nonmate: f32, rank: u32 },
    NonMated { max: f32 },
}

struct ProbeChunk {
    stats: Vec<Vec<ProbeStat>>,
    /// Merged-gallery (mate score, rank) per probe, `None` when the probe has no mate anywhere.
    legacy: Vec<Option<(f32, u32)>>,
    /// The chunk's highest non-mate scores over the merged gallery (at most `k`).
    top: Vec<f32>,
}

fn top_k(mut v: Vec<f32>, k: usize) -> Vec<f32> {
    if v.len() > k && k > 0 {
        v.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        v.truncate(k);
    } else if k == 0 {
        v.clear();
    }
    v
}

/// Open-set identification of the probe templates against each gallery, plus the legacy merge.
pub fn identify(
    m: &TemplateMatrix,
    one_n: &OneN,
    fpir_targets: &[f64],
    cmc_ranks: &[u32],
    legacy_fars: &[f64],
) -> (Identification, Vec<OpenSetCurve>) {
    let (id, curves, _) = identify_searches(m, one_n, fpir_targets, cmc_ranks, legacy_fars);
    (id, curves)
}

/// [`identify`], plus each probe template's rank-1 outcome per gallery (and over both galleries
/// when every probe has its mate in at most one), for the gate's significance test.
pub fn identify_searches(
    m: &TemplateMatrix,
    one_n: &OneN,
    fpir_targets: &[f64],
    cmc_ranks: &[u32],
    legacy_fars: &[f64],
) -> (Identification, Vec<OpenSetCurve>, SearchOutcomes) {
    let probes = &one_n.probes;
    let lookups: Vec<HashMap<u32, usize>> =
        one_n.galleries.iter().map(|g| g.subjects.iter().enumerate().map(|(i, &s)| (s, i)).collect()).collect();
    let k_max = legacy_fars.iter().map(|f| (probes.templates.len() as f64 * f).ceil() as usize).max().unwrap_or(0);
    const CHUNK: usize = 32;
    let chunks: Vec<ProbeChunk> = (0..probes.templates.len())
        .step_by(CHUNK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|s| {
            let e = (s + CHUNK).min(probes.templates.len());
            let ids = &probes.templates[s..e];
            let rows: Vec<Vec<f32>> = one_n.galleries.iter().map(|g| score_block(m, ids, &g.templates)).collect();
            let mut stats = vec![Vec::with_capacity(ids.len()); one_n.galleries.len()];
            let mut legacy = Vec::with_capacity(ids.len());
            let mut candidates = Vec::new();
            for pi in 0..ids.len() {
                let subject = probes.subjects[s + pi];
                let mut merged: Option<(f32, u32)> = None;
                let mut mates_found = 0;
                for (gi, g) in one_n.galleries.iter().enumerate() {
                    let row = &rows[gi][pi * g.templates.len()..(pi + 1) * g.templates.len()];
                    let stat = match lookups[gi].get(&subject) {
                        Some(&mi) => {
                            let mate = row[mi];
                            let others = row.iter().enumerate().filter(|(j, _)| *j != mi).map(|(_, &x)| x);
                            let best = others.clone().fold(f32::NEG_INFINITY, f32::max);
                            let rank = mate_rank(mate as f64, others.map(|x| x as f64));
                            merged = Some((mate, 0));
                            mates_found += 1;
                            ProbeStat::Mated { mate, best_nonmate: best, rank }
                        }
                        None => ProbeStat::NonMated { max: row.iter().copied().fold(f32::NEG_INFINITY, f32::max) },
                    };
                    stats[gi].push(stat);
                }
                // Merged gallery: the rank counts non-mates of every gallery. A subject with a
                // template in two galleries has no unique mate there (ijb_1n.py refuses it).
                if mates_found > 1 {
                    merged = None;
                }
                if let Some((mate, _)) = merged {
                    let mut rank = 1u32;
                    for (gi, g) in one_n.galleries.iter().enumerate() {
                        let row = &rows[gi][pi * g.templates.len()..(pi + 1) * g.templates.len()];
                        let mi = lookups[gi].get(&subject).copied();
                        for (j, &x) in row.iter().enumerate() {
                            if Some(j) != mi {
                                rank += u32::from(x >= mate);
                                candidates.push(x);
                            }
                        }
                    }
                    merged = Some((mate, rank));
                }
                legacy.push(merged);
            }
            ProbeChunk { stats, legacy, top: top_k(candidates, k_max) }
        })
        .collect();

    let mut galleries = Vec::new();
    let mut all_hits: Vec<Vec<u32>> = Vec::new();
    let mut curves = Vec::new();
    let mut dense: HashMap<u32, u32> = HashMap::new();
    let cluster: Vec<u32> = probes
        .subjects
        .iter()
        .map(|s| {
            let next = dense.len() as u32;
            *dense.entry(*s).or_insert(next)
        })
        .collect();
    let mut searches = SearchOutcomes::new("subject", dense.len(), cluster);
    // Per gallery, each probe's mate rank (None: its mate is not in this gallery).
    let mut probe_ranks: Vec<Vec<Option<u32>>> = Vec::new();
    for (gi, g) in one_n.galleries.iter().enumerate() {
        let (mut mated, mut ranks, mut nonmated) = (Vec::new(), Vec::new(), Vec::new());
        let mut per_probe = Vec::with_capacity(probes.templates.len());
        for c in &chunks {
            for st in &c.stats[gi] {
                match *st {
                    ProbeStat::Mated { mate, best_nonmate, rank } => {
                        mated.push(MatedProbe { mate: mate as f64, best_nonmate: best_nonmate as f64 });
                        ranks.push(rank);
                        per_probe.push(Some(rank));
                    }
                    ProbeStat::NonMated { max } => {
                        nonmated.push(max as f64);
                        per_probe.push(None);
                    }
                }
            }
        }
        searches.add(format!("rank1@{}", g.name), per_probe.iter().map(|r| r.map(|r| r <= 1)));
        probe_ranks.push(per_probe);
        let open = OpenSet::new(&mated, &nonmated);
        curves.push(OpenSetCurve::thinned(&g.name, &open.curve()));
        galleries.push(GalleryResults {
            name: g.name.clone(),
            templates: g.templates.len(),
            mated_probes: mated.len(),
            nonmated_probes: nonmated.len(),
            tpir_at_fpir: open.tpir_at_fpirs(fpir_targets),
            cmc: cmc(&ranks, cmc_ranks, mated.len()),
        });
        all_hits.push(ranks);
    }
    let mean_tpir_at_fpir = [FpirRule::Strict, FpirRule::IjbEvals]
        .into_iter()
        .flat_map(|rule| fpir_targets.iter().map(move |&t| (rule, t)))
        .map(|(rule, t)| {
            let vals: Vec<Option<f64>> = galleries
                .iter()
                .map(|g| g.tpir_at_fpir.iter().find(|x| x.rule == rule && x.fpir_target == t).and_then(|x| x.tpir))
                .collect();
            let tpir =
                vals.iter().copied().collect::<Option<Vec<f64>>>().map(|v| v.iter().sum::<f64>() / v.len() as f64);
            MeanTpir { fpir_target: t, rule, tpir }
        })
        .collect();
    let ranks_all: Vec<u32> = all_hits.concat();
    let combined = cmc(&ranks_all, cmc_ranks, probes.templates.len());
    // The combined rank-1 divides by every probe; per probe it is one outcome only when no
    // probe has mates in two galleries.
    let mates_per_probe = |p: usize| probe_ranks.iter().filter(|g| g[p].is_some()).count();
    if (0..probes.templates.len()).all(|p| mates_per_probe(p) <= 1) {
        let hit = |p: usize| probe_ranks.iter().any(|g| g[p].is_some_and(|r| r <= 1));
        searches.add("rank1".into(), (0..probes.templates.len()).map(|p| Some(hit(p))));
    }

    let legacy_all: Vec<Option<(f32, u32)>> = chunks.iter().flat_map(|c| c.legacy.iter().copied()).collect();
    let gallery_templates: usize = one_n.galleries.iter().map(|g| g.templates.len()).sum();
    let legacy = match legacy_all.iter().position(Option::is_none) {
        Some(i) => LegacyResults {
            label: LEGACY_LABEL.into(),
            available: false,
            note: Some(format!(
                "probe template {} (subject {}) has no unique mate in the merged gallery; ijb_1n.py refuses such a probe set",
                probes.templates[i], probes.subjects[i]
            )),
            gallery_templates,
            probes: probes.templates.len(),
            cmc: Vec::new(),
            points: Vec::new(),
        },
        None => {
            let mates: Vec<f64> = legacy_all.iter().flatten().map(|&(s, _)| s as f64).collect();
            let ranks: Vec<u32> = legacy_all.iter().flatten().map(|&(_, r)| r).collect();
            let mut top: Vec<f32> = top_k(chunks.iter().flat_map(|c| c.top.iter().copied()).collect(), k_max);
            top.sort_unstable_by(|a, b| b.total_cmp(a));
            let top: Vec<f64> = top.into_iter().map(f64::from).collect();
            LegacyResults {
                label: LEGACY_LABEL.into(),
                available: true,
                note: None,
                gallery_templates,
                probes: probes.templates.len(),
                cmc: cmc(&ranks, cmc_ranks, probes.templates.len()),
                points: legacy_points(&mates, &top, legacy_fars),
            }
        }
    };
    (Identification { galleries, mean_tpir_at_fpir, cmc: combined, legacy }, curves, searches)
}

// ---------------------------------------------------------------------------------------------
// The protocol

/// Protocol parameters (protocols/ijb.toml).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IjbParams {
    pub pooling: Pooling,
    pub far_targets: Vec<f64>,
    pub fpir_targets: Vec<f64>,
    pub cmc_ranks: Vec<u32>,
    pub legacy_fars: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IjbCounts {
    pub images: usize,
    pub templates: usize,
    /// Distinct (template, media) groups.
    pub medias: usize,
    pub pairs: usize,
    pub genuine: usize,
    pub impostor: usize,
    /// Probe templates of the 1:N protocol, when its lists were read.
    pub probes: Option<usize>,
}

impl IjbCounts {
    pub fn of(r: &IjbRelease) -> Self {
        let genuine = r.pairs.genuine.iter().filter(|&&g| g).count();
        IjbCounts {
            images: r.images.len(),
            templates: r.template_ids.len(),
            medias: r.media_count(),
            pairs: r.pairs.len(),
            genuine,
            impostor: r.pairs.len() - genuine,
            probes: r.one_n.as_ref().map(|o| o.probes.templates.len()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IjbMetrics {
    pub roc: RocSummary,
    /// Both rules at every FAR target (strict first), as for pair benchmarks.
    pub tar_at_far: Vec<TarAtFar>,
    /// 1:N results; `null` when the 1:N lists are absent (see `identification_note`).
    pub identification: Option<Identification>,
    pub identification_note: Option<String>,
}

/// Store rows of the release's images (keys = image names); all missing names are reported together.
pub fn image_rows(release: &IjbRelease, store: &EmbeddingStore) -> Result<Vec<usize>> {
    let names: Vec<String> = release.images.iter().map(|i| i.name.clone()).collect();
    crate::protocol::verification::resolve_rows(&names, store)
}

/// Template features of the release from the store.
pub fn pool(release: &IjbRelease, store: &EmbeddingStore, rows: &[usize], pooling: Pooling) -> Result<TemplateMatrix> {
    if pooling.flip && !store.has_flip() {
        return Err(Error::Invalid(format!(
            "pooling with flip needs embeddings of the mirrored images, but {} has none; provide --flip-embeddings or pass --flip none",
            store.display_path().display()
        )));
    }
    let media: Vec<u32> = release.images.iter().map(|i| i.media).collect();
    let scores: Vec<f32> = release.images.iter().map(|i| i.score).collect();
    let read = |i: usize, view: View, out: &mut [f32]| store.read_row(rows[i], view, out);
    pool_templates(release.template_ids.len(), &release.image_template, &media, &scores, store.dim(), &read, pooling)
        .map_err(|e| match e {
            PoolError::ZeroImage { image } => Error::Invalid(format!(
                "the embedding of '{}' has zero or non-finite norm; cannot normalise it (normalize_images)",
                release.images[image].name
            )),
            PoolError::ZeroTemplate { template } => Error::Invalid(format!(
                "template {} pools to a zero or non-finite feature (zero detector scores or embeddings?); cannot compute a cosine score",
                release.template_ids[template]
            )),
        })
}

/// 1:1 metrics from the pair scores: exact ROC (AUC, EER), TAR@FAR under both rules, chart data.
pub fn verification_metrics(
    scores: &[f32],
    genuine: &[bool],
    far_targets: &[f64],
) -> Result<(RocSummary, Vec<TarAtFar>, Curves)> {
    let roc =
        Roc::from_f32(scores, genuine).map_err(|e| Error::Invalid(format!("cannot evaluate the 1:1 pairs: {e}")))?;
    let tar_at_far = roc.tar_at_fars(far_targets);
    let eer = roc.eer();
    let mut marked: Vec<MarkedThreshold> =
        eer.iter().map(|e| MarkedThreshold { label: "EER".into(), threshold: e.threshold }).collect();
    marked.extend(tar_at_far.iter().filter(|t| t.rule == TarRule::Strict).filter_map(|t| {
        t.threshold.map(|threshold| MarkedThreshold { label: format!("FAR={:e} (strict)", t.far_target), threshold })
    }));
    let curves = Curves::build(&roc, scores, genuine, marked);
    Ok((RocSummary { auc: roc.auc(), eer, vertices: roc.len() }, tar_at_far, curves))
}

/// Timings of the stages of [`evaluate`], for timings.json and benchmarks.
pub type Stages = Vec<(String, f64)>;

pub struct IjbOutcome {
    pub counts: IjbCounts,
    pub metrics: IjbMetrics,
    pub curves: Curves,
    pub stages: Stages,
    /// Per probe template, rank-1 outcomes (with 1:N lists only), for the gate.
    pub search_outcomes: Option<SearchOutcomes>,
}

/// The whole protocol on an opened release and store.
pub fn evaluate(release: &IjbRelease, store: &EmbeddingStore, params: &IjbParams) -> Result<IjbOutcome> {
    let mut stages = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &str, stages: &mut Stages| {
        stages.push((name.to_string(), t.elapsed().as_secs_f64()));
        t = Instant::now();
    };
    let rows = image_rows(release, store)?;
    let m = pool(release, store, &rows, params.pooling)?;
    lap("pool templates", &mut stages);
    let scores = score_pairs(&m, &release.pairs.t1, &release.pairs.t2);
    lap("score pairs", &mut stages);
    let (roc, tar_at_far, mut curves) = verification_metrics(&scores, &release.pairs.genuine, &params.far_targets)?;
    lap("1:1 metrics", &mut stages);
    let (identification, identification_note, search_outcomes) = match &release.one_n {
        Some(one_n) => {
            let (id, open, searches) =
                identify_searches(&m, one_n, &params.fpir_targets, &params.cmc_ranks, &params.legacy_fars);
            curves.open_set = Some(open);
            lap("1:N identification", &mut stages);
            (Some(id), None, Some(searches))
        }
        None => (None, Some("the 1:N gallery/probe lists are not in the data directory".to_string()), None),
    };
    Ok(IjbOutcome {
        counts: IjbCounts::of(release),
        metrics: IjbMetrics { roc, tar_at_far, identification, identification_note },
        curves,
        stages,
        search_outcomes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_hand_checked() {
        // Template 0: media 7 has images 0 ([1,0] score 1) and 1 ([3,0] score 0.5) -> mean [1.25,0];
        // media 3 has image 2 ([0,2] score 1) -> [0,2]; sum [1.25,2] -> normalised.
        let e = [[1f32, 0.], [3., 0.], [0., 2.], [0., 5.]];
        let read = |i: usize, _v: View, out: &mut [f32]| out.copy_from_slice(&e[i]);
        let p = Pooling { flip: false, normalize_images: false, detector_weight: true };
        let m = pool_templates(2, &[0, 0, 0, 1], &[7, 7, 3, 1], &[1.0, 0.5, 1.0, 0.0], 2, &read, p);
        assert_eq!(m, Err(PoolError::ZeroTemplate { template: 1 }));
        let m = pool_templates(2, &[0, 0, 0, 1], &[7, 7, 3, 1], &[1.0, 0.5, 1.0, 1.0], 2, &read, p).unwrap();
        let n = (1.25f64 * 1.25 + 4.0).sqrt();
        assert_eq!(m.row(0), &[(1.25 / n) as f32, (2.0 / n) as f32]);
        assert_eq!(m.row(1), &[0.0, 1.0]);
        // Normalised images: media 7 -> mean([1,0],[1,0]*0.5) = [0.75,0]; media 3 -> [0,1].
        let p = Pooling { flip: false, normalize_images: true, detector_weight: true };
        let m = pool_templates(2, &[0, 0, 0, 1], &[7, 7, 3, 1], &[1.0, 0.5, 1.0, 1.0], 2, &read, p).unwrap();
        let n = (0.75f64 * 0.75 + 1.0).sqrt();
        assert_eq!(m.row(0), &[(0.75 / n) as f32, (1.0 / n) as f32]);
    }
}

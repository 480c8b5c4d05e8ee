//! MegaFace Challenge 1 (docs/protocols.md §4): probe identities searched among 10 … 1,000,000
//! distractors.
//!
//! Identification: for every ordered pair (a, b) of images of one probe identity, a is the query
//! and the gallery is the distractors plus b; rank = #distractors scoring strictly above b (a tie
//! goes to the mate). Exact CMC from those ranks, computed in one streaming pass per distractor
//! set (`score::stream`): no probe × distractor matrix is stored, in RAM or on disk.
//!
//! Verification: positives are the unordered same-identity probe pairs; negatives are all probe ×
//! distractor scores (strict rule) or those of the first 100 probes (compat=devkit, positives
//! first among ties). Only the highest ⌊far·N⌋ + 1 impostor scores are kept.
//!
//! Scores are cosine similarities of L2-normalised (fused) embeddings in float32; the devkit's
//! `−‖x − y‖²` ranks identically for normalised features.
//!
//! The distractor scan can be split over machines: [`scan_shard`] scans one slice of the
//! distractors into a [`part::ScanPart`], and [`evaluate_merged`] joins the parts of every slice
//! into the outcome [`evaluate`] gives (docs/sharding.md).

pub mod part;

use super::curves::thin_cmc;
use super::verification::{resolve_fusion, resolve_rows};
use crate::config::{FlipChoice, MegafaceProtocol};
use crate::dataset::megaface::{fgnet_age, is_noisy, size_label, ProbeSet};
use crate::error::{Error, Result};
use crate::metrics::bootstrap::{interval, over_resamples, weighted_rate, BootstrapSpec, Interval};
use crate::metrics::cmc::{Cmc, CmcPoint};
use crate::metrics::identification::{rank1_by, GroupRank1};
use crate::metrics::{FoldMode, Roc, TarAtFar, TarRule};
use crate::protocol::outcomes::SearchOutcomes;
use crate::score::fusion::{unit_row_f32, Fusion};
use crate::score::stream::{merge_slices, scan, GallerySource, RowKind, ScanSpec, SetSpec, Slice};
use crate::score::{normalize, score_all, ScoreDevice};
use crate::store::EmbeddingStore;
use part::ScanPart;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

/// Noise cleaning with insightface's lists (docs/protocols.md §4.4). Always recorded in the results:
/// numbers with different cleaning are not comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cleaning {
    /// The official devkit: no cleaning.
    None,
    /// Noisy distractors can never outrank a mate; a noisy probe becomes its identity centre plus
    /// a tiny seeded jitter.
    Insightface,
    /// Noisy distractors become zero vectors (score 0); a noisy probe becomes its identity centre.
    Facexzoo,
}

impl Cleaning {
    pub fn name(self) -> &'static str {
        match self {
            Cleaning::None => "none",
            Cleaning::Insightface => "insightface",
            Cleaning::Facexzoo => "facexzoo",
        }
    }
}

/// One distractor list: its size and image keys.
#[derive(Debug, Clone)]
pub struct DistractorSet {
    pub size: u32,
    pub keys: Vec<String>,
}

pub struct MegafaceInput<'a> {
    pub probes: &'a ProbeSet,
    pub probe_store: &'a EmbeddingStore,
    pub distractor_store: &'a EmbeddingStore,
    pub sets: &'a [DistractorSet],
    pub cleaning: Cleaning,
    /// Noise lists; required unless `cleaning` is `None`.
    pub probe_noise: Option<&'a HashSet<String>>,
    pub distractor_noise: Option<&'a HashSet<String>>,
    pub flip: Option<FlipChoice>,
    /// Where the probe × distractor (and probe × probe) scores are computed.
    pub scoring: &'a ScoreDevice,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeCounts {
    pub images: usize,
    pub identities: usize,
    /// Ordered same-identity pairs: the searches of the identification protocol.
    pub searches: u64,
    /// Unordered same-identity pairs: the positives of the verification protocol.
    pub genuine_pairs: u64,
    /// Images without a second image of their identity (no search starts from them).
    pub without_mate: usize,
    /// Probe images replaced by cleaning.
    pub cleaned: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgeBreakdown {
    /// Rank-1 of the searches by |age(query) − age(mate)|.
    pub by_gap: Vec<GroupRank1>,
    /// Rank-1 of the searches by the query's age.
    pub by_query_age: Vec<GroupRank1>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SizeResult {
    pub distractors: u32,
    pub label: String,
    pub rank1: Option<f64>,
    /// Bootstrap interval of rank-1 over probe identities.
    pub rank1_interval: Option<Interval>,
    pub cmc: Vec<CmcPoint>,
    /// Searches whose mate ranked last-but-all (rank = number of distractors).
    pub worst_rank: Option<u64>,
    /// Distractors on the noise list (handled per `cleaning`).
    pub noisy_distractors: usize,
    /// Impostor comparisons: all probes × distractors (strict), first probes × distractors (devkit).
    pub impostors_strict: u64,
    pub impostors_devkit: u64,
    /// Strict rule over all negatives, then compat=devkit.
    pub tar_at_far: Vec<TarAtFar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<AgeBreakdown>,
}

#[derive(Debug, Clone)]
pub struct MegafaceOutcome {
    pub fusion: Fusion,
    pub counts: ProbeCounts,
    pub sizes: Vec<SizeResult>,
    /// Per distractor size, the CMC curve thinned for charts (exact values at the kept ranks).
    pub curves: Vec<(u32, Vec<CmcPoint>)>,
    pub bootstrap: BootstrapSpec,
    /// Whether ages were found in every probe name (FGNet).
    pub ages: bool,
    /// Seconds per stage, for timings.json.
    pub stages: Vec<(String, f64)>,
    /// The scoring kernel (results from different kernels may differ in the last bits).
    pub score_kernel: String,
    /// Per search, the rank-1 hit at each distractor size, for the gate.
    pub search_outcomes: SearchOutcomes,
}

/// Distractor rows of the store, in ascending row order (sequential reads of the mapping).
struct StoreGallery<'a> {
    store: &'a EmbeddingStore,
    /// Store rows, ascending; per row the sets it belongs to (bits) and whether it is noisy.
    rows: Vec<u32>,
    masks: Vec<u32>,
    noisy: Vec<bool>,
    cleaning: Cleaning,
    fusion: Fusion,
    dim: usize,
}

impl GallerySource for StoreGallery<'_> {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn fill(&self, i: usize, out: &mut [f32]) -> Result<RowKind> {
        if self.noisy[i] {
            out.fill(0.0);
            return Ok(match self.cleaning {
                Cleaning::Insightface => RowKind::Unrankable,
                _ => RowKind::Scored,
            });
        }
        let row = self.rows[i] as usize;
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let ok = SCRATCH.with_borrow_mut(|scratch| {
            scratch.resize(2 * self.store.dim(), 0.0);
            unit_row_f32(self.store, row, self.fusion, scratch, out)
        });
        if !ok {
            return Err(Error::Invalid(format!(
                "distractor '{}' in {} has a zero or non-finite embedding; cannot compute a cosine score",
                self.store.key(row),
                self.store.display_path().display()
            )));
        }
        Ok(RowKind::Scored)
    }
    fn sets(&self, i: usize) -> u32 {
        self.masks[i]
    }
    fn release(&self, range: std::ops::Range<usize>) {
        if let (Some(&lo), Some(&hi)) = (self.rows.get(range.start), self.rows.get(range.end.wrapping_sub(1))) {
            self.store.release_rows(lo as usize, hi as usize + 1);
        }
    }
}

/// Probe vectors (P × dim, normalised), after cleaning; returns the number of cleaned images.
fn probe_matrix(input: &MegafaceInput<'_>, fusion: Fusion, protocol: &MegafaceProtocol) -> Result<(Vec<f32>, usize)> {
    let store = input.probe_store;
    let dim = fusion.dim(store.dim());
    let rows = resolve_rows(&input.probes.paths, store)?;
    let mut m = vec![0f32; rows.len() * dim];
    let mut scratch = vec![0f32; 2 * store.dim()];
    for (i, (&row, out)) in rows.iter().zip(m.chunks_exact_mut(dim)).enumerate() {
        if !unit_row_f32(store, row, fusion, &mut scratch, out) {
            return Err(Error::Invalid(format!(
                "probe '{}' has a zero or non-finite embedding in {}; cannot compute a cosine score",
                input.probes.paths[i],
                store.display_path().display()
            )));
        }
    }
    let noise = match (input.cleaning, input.probe_noise) {
        (Cleaning::None, _) => return Ok((m, 0)),
        (_, Some(n)) => n,
        (c, None) => return Err(Error::Config(format!("cleaning '{}' needs the probe noise list", c.name()))),
    };
    // Every entry must name a probe image: a list made for another naming of the same images
    // (insightface's facescrub_noises.txt names its own FaceScrub copy, `Aaron_Eckhart_136.png`,
    // not the devkit's `Michael_Landes/Michael_Landes_43667.png`) would otherwise clean a few
    // coincidental matches and silently leave the noisy images in.
    let names: HashSet<&str> =
        input.probes.paths.iter().flat_map(|p| [p.as_str(), p.rsplit('/').next().unwrap_or(p)]).collect();
    let mut unmatched: Vec<&String> = noise.iter().filter(|n| !names.contains(n.as_str())).collect();
    if !unmatched.is_empty() {
        unmatched.sort();
        let shown: Vec<String> = unmatched.iter().take(5).map(|k| format!("'{}'", crate::io::excerpt(k))).collect();
        return Err(Error::Invalid(format!(
            "{} of the {} entries of the probe noise list name no image of the probe list {} (first: {}): the list was made for another naming of the probe images",
            unmatched.len(),
            noise.len(),
            input.probes.source.display(),
            shown.join(", ")
        )));
    }
    let noisy: Vec<bool> = input.probes.paths.iter().map(|p| is_noisy(noise, p)).collect();
    // Identity centres from the clean images (mean of normalised vectors, f64).
    let n_ids = input.probes.identities.len();
    let mut centre = vec![0f64; n_ids * dim];
    let mut clean = vec![0usize; n_ids];
    for (i, v) in m.chunks_exact(dim).enumerate() {
        if !noisy[i] {
            let id = input.probes.identity[i] as usize;
            clean[id] += 1;
            centre[id * dim..(id + 1) * dim].iter_mut().zip(v).for_each(|(c, &x)| *c += x as f64);
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(protocol.jitter_seed);
    for (i, v) in m.chunks_exact_mut(dim).enumerate() {
        if !noisy[i] {
            continue;
        }
        let id = input.probes.identity[i] as usize;
        if clean[id] == 0 {
            return Err(Error::Invalid(format!(
                "every image of probe identity '{}' is on the noise list: no clean centre to replace them with",
                input.probes.identities[id]
            )));
        }
        // One stream per image: the jitter of an image does not depend on which others are noisy.
        rng.set_stream(i as u64);
        rng.set_word_pos(0);
        for (k, x) in v.iter_mut().enumerate() {
            let c = centre[id * dim + k] / clean[id] as f64;
            let jitter = match input.cleaning {
                Cleaning::Insightface => rng.gen_range(-protocol.jitter..=protocol.jitter),
                _ => 0.0,
            };
            *x = (c + jitter) as f32;
        }
        if !normalize(v) {
            return Err(Error::Invalid(format!(
                "the centre of probe identity '{}' has zero norm",
                input.probes.identities[id]
            )));
        }
    }
    Ok((m, noisy.iter().filter(|&&n| n).count()))
}

/// MegaFace on one machine: probes against every distractor of every set.
pub fn evaluate(input: &MegafaceInput<'_>, protocol: &MegafaceProtocol) -> Result<MegafaceOutcome> {
    match run(input, protocol, Mode::Whole)? {
        Done::Outcome(o) => Ok(*o),
        Done::Part(_) => Err(Error::Invalid("internal: a whole scan produced a part".into())),
    }
}

/// Scans the `index`-th of `count` equal slices of the distractors (rows of all sets together,
/// in store order) and returns what the merge needs of it.
pub fn scan_shard(
    input: &MegafaceInput<'_>,
    protocol: &MegafaceProtocol,
    index: usize,
    count: usize,
) -> Result<ScanPart> {
    if index >= count {
        return Err(Error::Config(format!("distractor slice {index} of {count} does not exist")));
    }
    match run(input, protocol, Mode::Shard { index, count })? {
        Done::Part(p) => Ok(*p),
        Done::Outcome(_) => Err(Error::Invalid("internal: a shard produced an outcome".into())),
    }
}

/// The outcome of [`evaluate`] from the parts of every slice, read from the named files: the
/// probe side is recomputed (it is small), the distractor scan is the join of the parts. Parts
/// of another run (other inputs, sets, protocol or scoring kernel), duplicated and missing
/// slices are errors naming the files.
pub fn evaluate_merged(
    input: &MegafaceInput<'_>,
    protocol: &MegafaceProtocol,
    parts: Vec<(PathBuf, ScanPart)>,
) -> Result<MegafaceOutcome> {
    match run(input, protocol, Mode::Merge(parts))? {
        Done::Outcome(o) => Ok(*o),
        Done::Part(_) => Err(Error::Invalid("internal: a merge produced a part".into())),
    }
}

enum Mode {
    Whole,
    Shard { index: usize, count: usize },
    Merge(Vec<(PathBuf, ScanPart)>),
}

enum Done {
    Outcome(Box<MegafaceOutcome>),
    Part(Box<ScanPart>),
}

fn run(input: &MegafaceInput<'_>, protocol: &MegafaceProtocol, mode: Mode) -> Result<Done> {
    let mut stages = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |stages: &mut Vec<(String, f64)>, name: String| {
        stages.push((name, clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    let choice = input.flip.unwrap_or(protocol.flip);
    let fusion = resolve_fusion(choice, FoldMode::Strict, input.probe_store)?;
    if fusion != resolve_fusion(choice, FoldMode::Strict, input.distractor_store)? {
        return Err(Error::Invalid("probe and distractor embeddings must both have mirrored views or both not".into()));
    }
    if input.probe_store.dim() != input.distractor_store.dim() {
        return Err(Error::Invalid(format!(
            "probe embeddings are {}-D ({}) but distractor embeddings are {}-D ({})",
            input.probe_store.dim(),
            input.probe_store.display_path().display(),
            input.distractor_store.dim(),
            input.distractor_store.display_path().display()
        )));
    }
    let probes = input.probes;
    let p = probes.len();
    let dim = fusion.dim(input.probe_store.dim());
    let (pm, cleaned) = probe_matrix(input, fusion, protocol)?;

    // Mates and genuine scores through the same scorer as the distractor scores.
    // The whole probe matrix stays the left operand (see `score`): blocks of gallery columns.
    let scorer = input.scoring.scorer(&pm, dim)?;
    let pp = score_all(&*scorer, &pm, p)?;
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); probes.identities.len()];
    for (i, &id) in probes.identity.iter().enumerate() {
        members[id as usize].push(i);
    }
    // Per query a: its mates b sorted by score ascending (the order scan's ranks come in).
    let mates_of: Vec<Vec<(f32, usize)>> = (0..p)
        .map(|a| {
            let mut v: Vec<(f32, usize)> =
                members[probes.identity[a] as usize].iter().filter(|&&b| b != a).map(|&b| (pp[a * p + b], b)).collect();
            v.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            v
        })
        .collect();
    let mate_scores: Vec<Vec<f32>> = mates_of.iter().map(|v| v.iter().map(|m| m.0).collect()).collect();
    let mut genuine: Vec<f64> = Vec::new();
    for m in &members {
        for (x, &a) in m.iter().enumerate() {
            genuine.extend(m[x + 1..].iter().map(|&b| pp[a * p + b] as f64));
        }
    }
    genuine.sort_by(|a, b| b.total_cmp(a));
    let searches: u64 = mates_of.iter().map(|m| m.len() as u64).sum();
    if searches == 0 {
        return Err(Error::Invalid(format!(
            "no probe identity in {} has two images: there is nothing to search for",
            probes.source.display()
        )));
    }
    drop(pp);
    lap(&mut stages, "probe scores".into());

    // Ordered pairs in (query, mate ascending score) order, with their bootstrap cluster and ages.
    let pair_cluster: Vec<u32> =
        mates_of.iter().enumerate().flat_map(|(a, m)| std::iter::repeat_n(probes.identity[a], m.len())).collect();
    let ages: Option<Vec<u32>> = probes.paths.iter().map(|x| fgnet_age(x)).collect();
    let age_values = ages.as_ref().map(|ages| {
        let gap: Vec<Option<u32>> = mates_of
            .iter()
            .enumerate()
            .flat_map(|(a, m)| m.iter().map(move |&(_, b)| Some(ages[a].abs_diff(ages[b]))))
            .collect();
        let query: Vec<Option<u32>> =
            mates_of.iter().enumerate().flat_map(|(a, m)| std::iter::repeat_n(Some(ages[a]), m.len())).collect();
        (gap, query)
    });

    let devkit_probes = protocol.devkit_probes.min(p);
    let spec = BootstrapSpec::default();
    let mut sizes = Vec::new();
    let mut search_outcomes = SearchOutcomes::new("identity", probes.identities.len(), pair_cluster.clone());
    let mut curves = Vec::new();
    // The sets overlap (the devkit's lists are independent random draws from one pool): each
    // distractor row is read and scored once, in store order, and reduced into every set it
    // belongs to.
    let noise = input.distractor_noise;
    let cleaning_on = input.cleaning != Cleaning::None;
    // (store row, set bit) for every list entry, looked up in parallel, then sorted by row: a
    // row repeated within one set is a key listed twice; rows shared by sets merge their bits.
    let mut entries: Vec<(u32, u32)> = Vec::with_capacity(input.sets.iter().map(|s| s.keys.len()).sum());
    let mut noisy_per_set = Vec::with_capacity(input.sets.len());
    for (j, set) in input.sets.iter().enumerate() {
        let rows: Vec<Option<usize>> = set.keys.par_iter().map(|k| input.distractor_store.row_of(k)).collect();
        let missing: Vec<&str> =
            set.keys.iter().zip(&rows).filter(|(_, r)| r.is_none()).map(|(k, _)| k.as_str()).collect();
        if !missing.is_empty() {
            let shown: Vec<String> = missing.iter().take(5).map(|k| format!("'{}'", crate::io::excerpt(k))).collect();
            return Err(Error::Invalid(format!(
                "{} of the {} distractors of the {} list are not in the embeddings {}; first: {}",
                missing.len(),
                set.keys.len(),
                size_label(set.size),
                input.distractor_store.display_path().display(),
                shown.join(", ")
            )));
        }
        let noisy = match noise.filter(|_| cleaning_on) {
            Some(nz) => set.keys.par_iter().filter(|k| is_noisy(nz, k)).count(),
            None => 0,
        };
        noisy_per_set.push(noisy);
        entries.extend(rows.into_iter().flatten().map(|r| (r as u32, j as u32)));
    }
    entries.par_sort_unstable();
    if let Some(w) = entries.windows(2).find(|w| w[0] == w[1]) {
        let (row, j) = w[0];
        return Err(Error::Invalid(format!(
            "the {} distractor list names '{}' twice; each distractor counts once",
            size_label(input.sets[j as usize].size),
            input.distractor_store.key(row as usize)
        )));
    }
    let (mut rows, mut masks) = (Vec::new(), Vec::<u32>::new());
    for (row, j) in entries {
        if rows.last() == Some(&row) {
            if let Some(m) = masks.last_mut() {
                *m |= 1 << j;
            }
        } else {
            rows.push(row);
            masks.push(1 << j);
        }
    }
    let noisy: Vec<bool> = match noise.filter(|_| cleaning_on) {
        Some(nz) => rows.par_iter().map(|&r| is_noisy(nz, input.distractor_store.key(r as usize))).collect(),
        None => vec![false; rows.len()],
    };
    let gallery =
        StoreGallery { store: input.distractor_store, rows, masks, noisy, cleaning: input.cleaning, fusion, dim };
    lap(&mut stages, format!("index {} distractor rows of {} sets", gallery.rows.len(), input.sets.len()));
    let keep = |negatives: u64| {
        let most = protocol.far_targets.iter().fold(0f64, |m, &f| m.max(f));
        ((most * negatives as f64).floor() as u64 + 1).min(negatives) as usize
    };
    let set_specs: Vec<SetSpec> = input
        .sets
        .iter()
        .map(|set| {
            let n = set.keys.len() as u64;
            SetSpec { keep_top: keep(p as u64 * n), keep_top_first: keep(devkit_probes as u64 * n) }
        })
        .collect();
    let spec_scan = ScanSpec { scorer: &*scorer, mates: &mate_scores, first_probes: devkit_probes, sets: &set_specs };
    let n_rows = gallery.rows.len();
    let facts = || part::Facts::of(input, &set_specs, devkit_probes, scorer.kernel(), n_rows);
    let fingerprint = |facts: &part::Facts| {
        part::fingerprint(facts, &pm, &mate_scores, &gallery.rows, &gallery.masks, &gallery.noisy)
    };
    let (outs, stage) = match mode {
        Mode::Whole => (scan(&spec_scan, &gallery)?, format!("scan {n_rows} distractor rows")),
        Mode::Shard { index, count } => {
            let rows = index * n_rows / count..(index + 1) * n_rows / count;
            let results = scan(&spec_scan, &Slice { inner: &gallery, range: rows.clone() })?;
            let facts = facts();
            let fingerprint = fingerprint(&facts);
            let sets = results.into_iter().map(part::SetPart::from).collect();
            return Ok(Done::Part(Box::new(ScanPart {
                facts,
                fingerprint,
                index,
                count,
                rows,
                sets,
                invocation: None,
            })));
        }
        Mode::Merge(parts) => {
            let facts = facts();
            let count = parts.len();
            let slices = part::check_complete(parts, &facts, &fingerprint(&facts), &mate_scores)?;
            let joined =
                merge_slices(slices, &set_specs).map_err(|e| Error::Invalid(format!("merging the parts: {e}")))?;
            (joined, format!("merge {count} parts of {n_rows} distractor rows"))
        }
    };
    lap(&mut stages, stage);

    for ((set, out), noisy_distractors) in input.sets.iter().zip(&outs).zip(noisy_per_set) {
        let n = set.keys.len() as u64;
        let ranks: Vec<u64> = (0..p).flat_map(|a| out.mate_ranks(a)).collect();
        let hits: Vec<bool> = ranks.iter().map(|&r| r == 0).collect();
        search_outcomes.add(format!("rank1@{}", size_label(set.size)), hits.iter().map(|&h| Some(h)));
        let cmc = Cmc::new(ranks.clone());
        let rank1 = cmc.at(1);
        let rank1_interval = rank1.map(|r| {
            let samples = over_resamples(&pair_cluster, probes.identities.len(), &spec, |w| weighted_rate(&hits, w));
            interval(r, samples, spec.confidence)
        });
        let age = age_values.as_ref().map(|(gap, query)| {
            let hit: Vec<Option<bool>> = hits.iter().map(|&h| Some(h)).collect();
            AgeBreakdown {
                by_gap: rank1_by(&hit, gap, &protocol.age_gap.bins),
                by_query_age: rank1_by(&hit, query, &protocol.age_groups),
            }
        });
        let top: Vec<f64> = out.top.iter().map(|&s| s as f64).collect();
        let top_first: Vec<f64> = out.top_first.iter().map(|&s| s as f64).collect();
        let verification_error = |e| Error::Invalid(format!("MegaFace verification: {e}"));
        let strict = Roc::from_top_impostors(&genuine, &top, out.n_scores).map_err(verification_error)?;
        let mut tar_at_far: Vec<TarAtFar> =
            protocol.far_targets.iter().map(|&f| strict.tar_at_far(f, TarRule::Strict)).collect();
        if out.n_first_scores > 0 {
            let devkit =
                Roc::from_top_impostors(&genuine, &top_first, out.n_first_scores).map_err(verification_error)?;
            tar_at_far
                .extend(protocol.far_targets.iter().map(|&f| devkit.tar_at_far(f, TarRule::DevkitPositivesFirst)));
        }
        let mut points = cmc.points(&protocol.cmc_ranks);
        points.retain(|pt| pt.rank <= n + 1);
        let curve = cmc.curve();
        sizes.push(SizeResult {
            distractors: set.size,
            label: size_label(set.size),
            rank1,
            rank1_interval,
            cmc: points,
            worst_rank: curve.last().map(|c| c.rank - 1),
            noisy_distractors,
            impostors_strict: out.n_scores,
            impostors_devkit: out.n_first_scores,
            tar_at_far,
            age,
        });
        curves.push((set.size, thin_cmc(curve)));
        lap(&mut stages, format!("metrics {}", size_label(set.size)));
    }
    let without_mate = mates_of.iter().filter(|m| m.is_empty()).count();
    Ok(Done::Outcome(Box::new(MegafaceOutcome {
        fusion,
        counts: ProbeCounts {
            images: p,
            identities: probes.identities.len(),
            searches,
            genuine_pairs: genuine.len() as u64,
            without_mate,
            cleaned,
        },
        sizes,
        curves,
        bootstrap: spec,
        ages: ages.is_some(),
        stages,
        score_kernel: scorer.kernel(),
        search_outcomes,
    })))
}

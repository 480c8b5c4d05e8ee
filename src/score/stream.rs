//! One streaming pass of every probe against a large gallery (MegaFace's distractors), reducing
//! the scores as they are produced:
//!
//! * rank counts: for each probe, how many gallery rows beat exactly `j` of its mates (a row beats
//!   a mate when its score is strictly greater: ties go to the mate). The rank of every
//!   (probe, mate) pair follows exactly, with no per-pair N-wide storage.
//! * the highest impostor scores (all probes, and the first few probes separately), which is all
//!   the strict and devkit TAR@FAR rules need at small FARs.
//!
//! Gallery rows are processed in fixed blocks (independent of the thread count), each block one
//! GEMM on one thread; partial results are integers and multisets, so the reduction order does
//! not matter and the result is identical for any number of threads.

use super::BlockScorer;
use crate::error::Result;
use rayon::prelude::*;

/// Gallery rows per block: one GEMM of P × dim × BLOCK.
pub const BLOCK: usize = 2048;

/// How a gallery row takes part (MegaFace noise cleaning, docs/protocols.md §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// Scored like any row.
    Scored,
    /// Never outranks anything and is never accepted (insightface's cleaning: the row gets a
    /// coordinate no probe shares). Still counted as a negative comparison.
    Unrankable,
}

/// Where gallery rows come from (the embedding store, usually).
pub trait GallerySource: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn dim(&self) -> usize;
    /// Writes row `i` (already L2-normalised, or all zeros) into `out`.
    fn fill(&self, i: usize, out: &mut [f32]) -> Result<RowKind>;
    /// The gallery sets row `i` belongs to, as bits (bit `j` = `ScanSpec::sets[j]`). Several
    /// distractor sets (MegaFace's 10 … 1M lists overlap) are scanned in one pass this way.
    fn sets(&self, _i: usize) -> u32 {
        1
    }
    /// Rows `range` are not needed for now (lets a memory-mapped source drop their pages from
    /// this process; reading them again maps them back in).
    fn release(&self, _range: std::ops::Range<usize>) {}
}

/// What to keep for one gallery set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSpec {
    /// How many of the highest impostor scores to keep over all probes.
    pub keep_top: usize,
    /// The same over the first `ScanSpec::first_probes` probes.
    pub keep_top_first: usize,
}

#[derive(Clone)]
pub struct ScanSpec<'a> {
    /// Scores blocks of gallery rows against the P probes (L2-normalised).
    pub scorer: &'a dyn BlockScorer,
    /// Per probe, the scores of its mates sorted ascending (computed by the same `scorer`).
    pub mates: &'a [Vec<f32>],
    /// Probes `0..first_probes` also feed a second list of impostor scores per set.
    pub first_probes: usize,
    /// The gallery sets (at most 32), each reduced on its own.
    pub sets: &'a [SetSpec],
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScanResult {
    /// `counts[offsets[a] + j]`: gallery rows beating exactly `j` mates of probe `a` (j = 1..=m).
    counts: Vec<u64>,
    offsets: Vec<usize>,
    /// Highest impostor scores over all probes, descending (at most `keep_top`).
    pub top: Vec<f32>,
    /// Highest impostor scores of the first probes, descending.
    pub top_first: Vec<f32>,
    /// Number of probe × gallery comparisons (all probes, and the first probes).
    pub n_scores: u64,
    pub n_first_scores: u64,
}

impl ScanResult {
    /// For probe `a`, the rank of each mate in ascending-score order: the number of gallery rows
    /// scoring strictly higher than that mate.
    pub fn mate_ranks(&self, a: usize) -> Vec<u64> {
        let c = &self.counts[self.offsets[a]..self.offsets[a + 1]];
        // c[j] counts rows beating exactly j mates (the j lowest); mate i (0-based) is beaten by
        // every row that beats more than i mates.
        let mut ranks = vec![0u64; c.len().saturating_sub(1)];
        let mut above = 0u64;
        for i in (0..ranks.len()).rev() {
            above += c[i + 1];
            ranks[i] = above;
        }
        ranks
    }
}

impl ScanResult {
    /// `counts`, laid out per probe (see [`ScanResult::mate_ranks`]): what a shard's part file
    /// stores, with `top`, `top_first` and the comparison counts.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// A result read back from its stored parts; `mates` (the scan's `ScanSpec::mates`) gives the
    /// layout, and `counts` must fit it.
    pub fn from_parts(
        mates: &[Vec<f32>],
        counts: Vec<u64>,
        top: Vec<f32>,
        top_first: Vec<f32>,
        n_scores: u64,
        n_first_scores: u64,
    ) -> std::result::Result<ScanResult, String> {
        let offsets = layout(mates);
        let want = offsets.last().copied().unwrap_or(0);
        if counts.len() != want {
            return Err(format!("{} rank counts where the probes' mates need {want}", counts.len()));
        }
        let descending = |v: &[f32]| v.windows(2).all(|w| w[0].total_cmp(&w[1]).is_ge());
        if !descending(&top) || !descending(&top_first) {
            return Err("kept impostor scores are not in descending order".into());
        }
        Ok(ScanResult { counts, offsets, top, top_first, n_scores, n_first_scores })
    }
}

/// Joins the results of disjoint slices of one gallery, each scanned with the same `ScanSpec`
/// (`sets` is its `sets`), into the result a scan of the whole gallery gives, exactly: rank
/// counts and comparisons are sums over rows; each slice kept its own `keep` highest impostor
/// scores, so their union holds the `keep` highest of the whole, and a multiset of equal values
/// does not depend on which of the tied rows they came from.
pub fn merge_slices(slices: Vec<Vec<ScanResult>>, sets: &[SetSpec]) -> std::result::Result<Vec<ScanResult>, String> {
    let mut merged: Option<Vec<ScanResult>> = None;
    for (k, slice) in slices.into_iter().enumerate() {
        if slice.len() != sets.len() {
            return Err(format!("slice {k} has results for {} gallery sets, not {}", slice.len(), sets.len()));
        }
        merged = Some(match merged {
            None => slice,
            Some(acc) => acc
                .into_iter()
                .zip(slice)
                .map(|(mut a, b)| {
                    if a.offsets != b.offsets {
                        return Err(format!("slice {k} was scanned with other probes' mates"));
                    }
                    a.counts.iter_mut().zip(&b.counts).for_each(|(x, y)| *x += y);
                    a.top.extend(b.top);
                    a.top_first.extend(b.top_first);
                    a.n_scores += b.n_scores;
                    a.n_first_scores += b.n_first_scores;
                    Ok(a)
                })
                .collect::<std::result::Result<_, String>>()?,
        });
    }
    let mut merged = merged.ok_or("no slices to merge")?;
    for (r, s) in merged.iter_mut().zip(sets) {
        for (top, keep) in [(&mut r.top, s.keep_top), (&mut r.top_first, s.keep_top_first)] {
            top.sort_unstable_by(|a, b| b.total_cmp(a));
            top.truncate(keep);
        }
    }
    Ok(merged)
}

/// Rows `range` of another gallery: one shard's slice of the distractors.
pub struct Slice<'a> {
    pub inner: &'a dyn GallerySource,
    pub range: std::ops::Range<usize>,
}

impl GallerySource for Slice<'_> {
    fn len(&self) -> usize {
        self.range.len()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn fill(&self, i: usize, out: &mut [f32]) -> Result<RowKind> {
        self.inner.fill(self.range.start + i, out)
    }
    fn sets(&self, i: usize) -> u32 {
        self.inner.sets(self.range.start + i)
    }
    fn release(&self, range: std::ops::Range<usize>) {
        self.inner.release(self.range.start + range.start..self.range.start + range.end)
    }
}

/// Where each probe's rank counts start in `ScanResult::counts` (`m + 1` slots for `m` mates).
fn layout(mates: &[Vec<f32>]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(mates.len() + 1);
    offsets.push(0usize);
    for m in mates {
        offsets.push(offsets.last().copied().unwrap_or(0) + m.len() + 1);
    }
    offsets
}

/// A bounded multiset of the largest scores seen.
#[derive(Debug, Clone)]
struct TopK {
    keep: usize,
    buf: Vec<f32>,
    /// Scores at or below this can no longer enter the kept set.
    floor: f32,
}

impl TopK {
    fn new(keep: usize) -> Self {
        TopK { keep, buf: Vec::new(), floor: if keep == 0 { f32::INFINITY } else { f32::NEG_INFINITY } }
    }
    /// Keeps only scores above `floor` (a pilot guess) from the start.
    fn with_floor(keep: usize, floor: f32) -> Self {
        let base = TopK::new(keep);
        TopK { floor: base.floor.max(floor), ..base }
    }
    /// Adds a score (callers pass only scores above `floor`).
    #[inline]
    fn push(&mut self, s: f32) {
        self.buf.push(s);
        if self.buf.len() >= 2 * self.keep.max(1024) {
            self.prune();
        }
    }
    fn prune(&mut self) {
        if self.buf.len() > self.keep {
            let k = self.keep;
            self.buf.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            self.buf.truncate(k);
            self.floor = self.buf[k - 1];
        } else if self.keep > 0 && self.buf.len() == self.keep {
            self.floor = self.buf.iter().copied().fold(f32::INFINITY, f32::min);
        }
    }
    fn merge(mut self, other: TopK) -> TopK {
        self.buf.extend(other.buf);
        self.prune();
        self.floor = self.floor.max(other.floor);
        self
    }
    fn into_sorted(mut self) -> Vec<f32> {
        self.prune();
        self.buf.sort_unstable_by(|a, b| b.total_cmp(a));
        self.buf
    }
}

/// Partial result of one set.
struct SetAcc {
    counts: Vec<u64>,
    top: TopK,
    top_first: TopK,
    n_scores: u64,
    n_first: u64,
}

impl SetAcc {
    fn merge(mut self, o: SetAcc) -> SetAcc {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        SetAcc {
            counts: self.counts,
            top: self.top.merge(o.top),
            top_first: self.top_first.merge(o.top_first),
            n_scores: self.n_scores + o.n_scores,
            n_first: self.n_first + o.n_first,
        }
    }
}

/// Per-worker scratch reused across blocks.
#[derive(Default)]
struct Scratch {
    rows: Vec<f32>,
    scores: Vec<f32>,
    kinds: Vec<RowKind>,
    masks: Vec<u32>,
    cut_all: Vec<f32>,
    cut_first: Vec<f32>,
}

/// Indices of the set bits of `m`.
fn bits(mut m: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (m != 0).then(|| {
            let j = m.trailing_zeros() as usize;
            m &= m - 1;
            j
        })
    })
}

/// The pass itself, with kept-impostor lists starting at the given floors (`(all, first)` per set).
fn scan_with(spec: &ScanSpec<'_>, gallery: &dyn GallerySource, floors: &[(f32, f32)]) -> Result<Vec<ScanResult>> {
    let dim = gallery.dim();
    let p = spec.mates.len();
    let offsets = layout(spec.mates);
    let total = offsets[p];
    let new_acc = || -> Vec<SetAcc> {
        spec.sets
            .iter()
            .zip(floors)
            .map(|(s, &(all, first))| SetAcc {
                counts: vec![0; total],
                top: TopK::with_floor(s.keep_top, all),
                top_first: TopK::with_floor(s.keep_top_first, first),
                n_scores: 0,
                n_first: 0,
            })
            .collect()
    };
    let n = gallery.len();
    let blocks = n.div_ceil(BLOCK);
    let first = spec.first_probes.min(p) as u64;
    let acc = (0..blocks)
        .into_par_iter()
        .try_fold(
            || (new_acc(), Scratch::default()),
            |(mut acc, mut w), b| -> Result<_> {
                let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
                let width = end - start;
                w.rows.resize(width * dim, 0.0);
                w.kinds.clear();
                w.masks.clear();
                for (i, out) in w.rows.chunks_exact_mut(dim).enumerate() {
                    w.kinds.push(gallery.fill(start + i, out)?);
                    let m = gallery.sets(start + i);
                    for j in bits(m) {
                        acc[j].n_scores += p as u64;
                        acc[j].n_first += first;
                    }
                    w.masks.push(m);
                }
                gallery.release(start..end);
                w.scores.resize(p * width, 0.0);
                spec.scorer.score(&w.rows, width, &mut w.scores)?;
                for (k, kind) in w.kinds.iter().enumerate() {
                    if *kind == RowKind::Unrankable {
                        for a in 0..p {
                            w.scores[a * width + k] = f32::NEG_INFINITY;
                        }
                    }
                }
                reduce_block(spec, &offsets, width, &mut w, &mut acc);
                Ok((acc, w))
            },
        )
        .map(|r| r.map(|(acc, _)| acc))
        .try_reduce(new_acc, |a, b| Ok(a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect()))?;
    Ok(acc
        .into_iter()
        .map(|a| ScanResult {
            counts: a.counts,
            offsets: offsets.clone(),
            top: a.top.into_sorted(),
            top_first: a.top_first.into_sorted(),
            n_scores: a.n_scores,
            n_first_scores: a.n_first,
        })
        .collect())
}

/// Runs the pass; one result per entry of `spec.sets`. Errors from the gallery source (a bad
/// row) stop it and are returned.
///
/// The kept-impostor lists start from pilot floors (see [`pilot_floors`]), so that scores far
/// below the final cut are skipped from the first block on instead of after a long warm-up. A
/// pilot floor is only a guess: when fewer than `keep` scores beat it, that run is discarded and
/// the pass repeated without pilots, so the result is exact either way.
pub fn scan(spec: &ScanSpec<'_>, gallery: &dyn GallerySource) -> Result<Vec<ScanResult>> {
    if spec.scorer.probes() != spec.mates.len() || spec.scorer.dim() != gallery.dim() {
        return Err(crate::Error::Invalid(format!(
            "scan: {} probes of {} values against mate lists for {} probes and {}-D gallery rows",
            spec.scorer.probes(),
            spec.scorer.dim(),
            spec.mates.len(),
            gallery.dim()
        )));
    }
    if spec.sets.len() > 32 {
        return Err(crate::Error::Invalid(format!("at most 32 gallery sets per scan, got {}", spec.sets.len())));
    }
    let none: Vec<(f32, f32)> =
        spec.sets.iter().map(|s| (TopK::new(s.keep_top).floor, TopK::new(s.keep_top_first).floor)).collect();
    let pilots = pilot_floors(spec, gallery)?;
    if pilots == none {
        return scan_with(spec, gallery, &none);
    }
    let out = scan_with(spec, gallery, &pilots)?;
    let exact = out.iter().zip(spec.sets).zip(&pilots).zip(&none).all(|(((r, s), pilot), base)| {
        (pilot.0 == base.0 || r.top.len() == s.keep_top) && (pilot.1 == base.1 || r.top_first.len() == s.keep_top_first)
    });
    if exact {
        Ok(out)
    } else {
        #[cfg(test)]
        FALLBACKS.with(|f| f.set(f.get() + 1));
        scan_with(spec, gallery, &none)
    }
}

#[cfg(test)]
thread_local! {
    /// Scans repeated because a pilot floor was too high (tests check the pilot is usually right).
    static FALLBACKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Rows sampled for the pilot: evenly spread over the gallery (stores are often ordered).
const PILOT_ROWS: usize = 2048;
/// A pilot floor is used only when the sample should hold at least this many scores above the
/// final cut; the floor is then put at twice that expected count.
const PILOT_MIN_EXPECTED: f64 = 64.0;

/// Guesses of each set's final kept-impostor floors (all probes, first probes) from the scores
/// of an evenly spread sample of gallery rows; `-inf` (no guess) where the sample is too small.
fn pilot_floors(spec: &ScanSpec<'_>, gallery: &dyn GallerySource) -> Result<Vec<(f32, f32)>> {
    let (n, dim, p) = (gallery.len(), gallery.dim(), spec.mates.len());
    let mut floors: Vec<(f32, f32)> =
        spec.sets.iter().map(|s| (TopK::new(s.keep_top).floor, TopK::new(s.keep_top_first).floor)).collect();
    if n < 4 * PILOT_ROWS || p == 0 {
        return Ok(floors);
    }
    let stride = n / PILOT_ROWS;
    let rows: Vec<usize> = (0..PILOT_ROWS).map(|i| i * stride).collect();
    let mut g = vec![0f32; rows.len() * dim];
    let mut masks = Vec::with_capacity(rows.len());
    let mut set_rows = vec![0u64; spec.sets.len()];
    for (i, &r) in rows.iter().enumerate() {
        let kind = gallery.fill(r, &mut g[i * dim..(i + 1) * dim])?;
        let m = if kind == RowKind::Unrankable { 0 } else { gallery.sets(r) };
        masks.push(m);
        // A fault on a memory-mapped file can map a whole large folio (a megabyte or more) around
        // the row: 2,048 rows spread over the gallery would map all of it. Drop them as we go.
        if i % 64 == 63 || i + 1 == rows.len() {
            gallery.release(0..n);
        }
    }
    // Every row's membership, to size each set (only counts: cheap next to the GEMM).
    for i in 0..n {
        for j in bits(gallery.sets(i)) {
            set_rows[j] += 1;
        }
    }
    let mut scores = vec![0f32; p * rows.len()];
    spec.scorer.score(&g, rows.len(), &mut scores)?;
    let first = spec.first_probes.min(p);
    for (j, set) in spec.sets.iter().enumerate() {
        let guess = |probes: usize, keep: usize| -> f32 {
            let total = probes as f64 * set_rows[j] as f64;
            let mut sample: Vec<f32> = (0..probes)
                .flat_map(|a| {
                    let row = &scores[a * rows.len()..(a + 1) * rows.len()];
                    row.iter().zip(&masks).filter(move |(_, &m)| m >> j & 1 == 1).map(|(&s, _)| s)
                })
                .collect();
            let expected = keep as f64 * sample.len() as f64 / total.max(1.0);
            if keep == 0 || keep as f64 > total / 4.0 || expected < PILOT_MIN_EXPECTED {
                return TopK::new(keep).floor;
            }
            // Twice the expected count: the floor sits below the final cut with a wide margin.
            let at = ((expected * 2.0) as usize).clamp(1, sample.len()) - 1;
            sample.select_nth_unstable_by(at, |a, b| b.total_cmp(a));
            sample[at]
        };
        floors[j] = (guess(p, set.keep_top), guess(first, set.keep_top_first));
    }
    Ok(floors)
}

/// Width of the chunks tested at once: a vectorised "does any score here need a look?".
const CHUNK: usize = 32;

/// Bit `i` set when score `i` beats `lowest_mate` or its column's cut. Full chunks go through a
/// fixed-length loop of comparisons with no early exit, which compiles to SIMD compares.
#[inline]
fn look_bits(chunk: &[f32], cut: &[f32], lowest_mate: f32) -> u32 {
    let mut bits = 0u32;
    match (<&[f32; CHUNK]>::try_from(chunk), <&[f32; CHUNK]>::try_from(cut)) {
        (Ok(s), Ok(t)) => {
            for i in 0..CHUNK {
                bits |= (((s[i] > lowest_mate) | (s[i] > t[i])) as u32) << i;
            }
        }
        _ => {
            for (i, (&s, &t)) in chunk.iter().zip(cut).enumerate() {
                bits |= (((s > lowest_mate) | (s > t)) as u32) << i;
            }
        }
    }
    bits
}

/// Probe rows between refreshes of the per-column cuts from the live floors.
const REFRESH_ROWS: usize = 32;

/// Per column, the lowest kept-impostor floor among the sets it belongs to (`all`), and the
/// same including the first-probes lists (`first`).
fn refresh_cuts(masks: &[u32], cut_all: &mut Vec<f32>, cut_first: &mut Vec<f32>, acc: &[SetAcc]) {
    cut_all.clear();
    cut_first.clear();
    for &m in masks {
        let (mut all, mut first) = (f32::INFINITY, f32::INFINITY);
        for j in bits(m) {
            all = all.min(acc[j].top.floor);
            first = first.min(acc[j].top_first.floor);
        }
        cut_all.push(all);
        cut_first.push(all.min(first));
    }
}

fn reduce_block(spec: &ScanSpec<'_>, offsets: &[usize], width: usize, w: &mut Scratch, acc: &mut [SetAcc]) {
    let Scratch { scores, masks: col_sets, cut_all, cut_first, .. } = w;
    for (a, row) in scores.chunks_exact(width).enumerate() {
        // Floors only rise, so cuts from a few rows back let through a superset of what counts;
        // every score let through is checked again against the live floors.
        if a % REFRESH_ROWS == 0 {
            refresh_cuts(col_sets, cut_all, cut_first, acc);
        }
        let mates = spec.mates[a].as_slice();
        let first = a < spec.first_probes;
        let cuts = if first { &*cut_first } else { &*cut_all };
        let lowest_mate = mates.first().copied().unwrap_or(f32::INFINITY);
        for (c, (chunk, cut)) in row.chunks(CHUNK).zip(cuts.chunks(CHUNK)).enumerate() {
            // Almost every score is below every mate and every kept impostor: skip the chunk when
            // none needs a look.
            let look = look_bits(chunk, cut, lowest_mate);
            for i in bits(look) {
                let s = chunk[i];
                let col = c * CHUNK + i;
                let beaten = (s > lowest_mate).then(|| {
                    // Branch-free count for the usual handful of mates, binary search beyond.
                    if mates.len() <= 32 {
                        mates.iter().map(|&x| (x < s) as usize).sum()
                    } else {
                        mates.partition_point(|&x| x < s)
                    }
                });
                for j in bits(col_sets[col]) {
                    let set = &mut acc[j];
                    if let Some(b) = beaten {
                        set.counts[offsets[a] + b] += 1;
                    }
                    if s > set.top.floor {
                        set.top.push(s);
                    }
                    if first && s > set.top_first.floor {
                        set.top_first.push(s);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::device::CandleScorer;
    use crate::score::{gemm_scores, CpuScorer};

    /// Gallery rows, their kinds, and optionally their set bits (one set when absent).
    struct Rows(Vec<Vec<f32>>, Vec<RowKind>, Option<Vec<u32>>);
    impl GallerySource for Rows {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn dim(&self) -> usize {
            self.0[0].len()
        }
        fn fill(&self, i: usize, out: &mut [f32]) -> Result<RowKind> {
            out.copy_from_slice(&self.0[i]);
            Ok(self.1[i])
        }
        fn sets(&self, i: usize) -> u32 {
            self.2.as_ref().map_or(1, |m| m[i])
        }
    }

    /// A scorer over `probes` (P × dim): the faer one, or candle's on the CPU device (the code
    /// path the GPU takes, with a block width that does not divide the scan's blocks).
    type MakeScorer = fn(&[f32], usize) -> Box<dyn BlockScorer + '_>;
    const SCORERS: [(&str, MakeScorer); 2] = [
        ("faer", |p, dim| Box::new(CpuScorer::new(p, dim))),
        ("candle", |p, dim| Box::new(CandleScorer::new(p, dim, 1000, &candle_core::Device::Cpu).unwrap())),
    ];

    /// Brute force over the same scores, with either scorer.
    #[test]
    fn matches_brute_force_with_ties() {
        for (name, make) in SCORERS {
            brute_force_with_ties(name, make);
        }
    }

    fn brute_force_with_ties(name: &str, make: MakeScorer) {
        // 2-D unit vectors at angles on a coarse grid: many exact ties.
        let unit = |deg: f64| vec![deg.to_radians().cos() as f32, deg.to_radians().sin() as f32];
        let probes: Vec<Vec<f32>> = [0.0, 30.0, 90.0].iter().map(|&d| unit(d)).collect();
        let n = 5000;
        let gallery: Vec<Vec<f32>> = (0..n).map(|i| unit(((i * 7) % 360) as f64)).collect();
        let kinds: Vec<RowKind> =
            (0..n).map(|i| if i % 97 == 0 { RowKind::Unrankable } else { RowKind::Scored }).collect();
        let flat: Vec<f32> = probes.concat();
        let scorer = make(&flat, 2);
        // Scores with the whole probe matrix on the left, as the scan computes them.
        let dot = |a: usize, b: &[f32]| {
            let mut s = vec![0f32; probes.len()];
            scorer.score(b, 1, &mut s).unwrap();
            s[a]
        };
        // Mates: gallery-like vectors at chosen angles (some equal to gallery angles → ties).
        let mate_vecs: Vec<Vec<Vec<f32>>> = vec![vec![unit(14.0), unit(21.0), unit(180.0)], vec![unit(30.0)], vec![]];
        let mates: Vec<Vec<f32>> = mate_vecs
            .iter()
            .enumerate()
            .map(|(a, ms)| {
                let mut v: Vec<f32> = ms.iter().map(|m| dot(a, m)).collect();
                v.sort_by(f32::total_cmp);
                v
            })
            .collect();
        let sets = [SetSpec { keep_top: 50, keep_top_first: 7 }];
        let spec = ScanSpec { scorer: &*scorer, mates: &mates, first_probes: 2, sets: &sets };
        let got = scan(&spec, &Rows(gallery.clone(), kinds.clone(), None)).unwrap().remove(0);
        let mut all = Vec::new();
        let mut first = Vec::new();
        for (a, mates_a) in mates.iter().enumerate() {
            let scores: Vec<f32> = gallery
                .iter()
                .zip(&kinds)
                .map(|(g, k)| if *k == RowKind::Unrankable { f32::NEG_INFINITY } else { dot(a, g) })
                .collect();
            let want: Vec<u64> = mates_a.iter().map(|&m| scores.iter().filter(|&&s| s > m).count() as u64).collect();
            assert_eq!(got.mate_ranks(a), want, "{name}: probe {a}");
            let finite = scores.iter().copied().filter(|s| s.is_finite());
            all.extend(finite.clone());
            if a < 2 {
                first.extend(finite);
            }
        }
        all.sort_by(|a, b| b.total_cmp(a));
        first.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(got.top, all[..50].to_vec(), "{name}");
        assert_eq!(got.top_first, first[..7].to_vec(), "{name}");
        assert_eq!(got.n_scores, 3 * n as u64);
        assert_eq!(got.n_first_scores, 2 * n as u64);
        // Same result on one thread.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let one = pool.install(|| scan(&spec, &Rows(gallery, kinds, None)).unwrap());
        assert_eq!(one, vec![got], "{name}");
    }

    /// Both scorers give the same scan where every score is exact (small integer vectors, with
    /// ties between mates and distractors), over several overlapping sets and pilot floors.
    #[test]
    fn faer_and_candle_scans_agree_exactly_on_exact_scores() {
        let dim = 16;
        let int = |seed: usize| -> Vec<f32> { (0..dim).map(|k| ((seed * 31 + k * 17) % 7) as f32 - 3.0).collect() };
        let probes: Vec<f32> = (0..6).flat_map(int).collect();
        let n = 12000;
        let gallery: Vec<Vec<f32>> = (0..n).map(|i| int(1000 + i % 997)).collect();
        let masks: Vec<u32> = (0..n).map(|i| 1 | (((i % 3 == 0) as u32) << 1)).collect();
        let sets = [SetSpec { keep_top: 500, keep_top_first: 100 }, SetSpec { keep_top: 30, keep_top_first: 0 }];
        let results: Vec<Vec<ScanResult>> = SCORERS
            .iter()
            .map(|(_, make)| {
                let scorer = make(&probes, dim);
                let mut mates = Vec::new();
                for a in 0..6 {
                    let mut s = vec![0f32; 6 * 4];
                    scorer.score(&[int(1003), int(1500), int(7), int(1999)].concat(), 4, &mut s).unwrap();
                    let mut m = s[a * 4..a * 4 + 4].to_vec();
                    m.sort_by(f32::total_cmp);
                    mates.push(m);
                }
                let spec = ScanSpec { scorer: &*scorer, mates: &mates, first_probes: 4, sets: &sets };
                scan(&spec, &Rows(gallery.clone(), vec![RowKind::Scored; n], Some(masks.clone()))).unwrap()
            })
            .collect();
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0][0].top.len(), 500);
        // Mates tie with distractors (int(1003) and int(1500) are in the gallery): ranks are not all 0.
        assert!((0..6).any(|a| results[0][0].mate_ranks(a).iter().any(|&r| r > 0)));
    }

    /// Overlapping sets scanned together give exactly what each set scanned alone gives.
    #[test]
    fn overlapping_sets_in_one_pass_equal_separate_passes() {
        let unit = |deg: f64| vec![deg.to_radians().cos() as f32, deg.to_radians().sin() as f32];
        let probes: Vec<Vec<f32>> = [0.0, 45.0, 200.0, 300.0].iter().map(|&d| unit(d)).collect();
        let flat = probes.concat();
        let mates: Vec<Vec<f32>> = vec![vec![0.5, 0.9], vec![0.99], vec![], vec![-0.2, 0.1, 0.7]];
        let n = 9000;
        let gallery: Vec<Vec<f32>> = (0..n).map(|i| unit(((i * 13) % 720) as f64 / 2.0)).collect();
        // Set 0: every row; set 1: every third row; set 2: a run in the middle (crosses blocks).
        let member = |i: usize| [true, i % 3 == 0, (3000..5100).contains(&i)];
        let masks: Vec<u32> =
            (0..n).map(|i| member(i).iter().enumerate().map(|(j, &m)| (m as u32) << j).sum()).collect();
        let sets = [
            SetSpec { keep_top: 40, keep_top_first: 9 },
            SetSpec { keep_top: 3000, keep_top_first: 0 },
            SetSpec { keep_top: 1, keep_top_first: 5000 },
        ];
        let scorer = CpuScorer::new(&flat, 2);
        let spec = ScanSpec { scorer: &scorer, mates: &mates, first_probes: 3, sets: &sets };
        let together = scan(&spec, &Rows(gallery.clone(), vec![RowKind::Scored; n], Some(masks))).unwrap();
        for (j, set) in sets.iter().enumerate() {
            let rows: Vec<Vec<f32>> = (0..n).filter(|&i| member(i)[j]).map(|i| gallery[i].clone()).collect();
            let m = rows.len();
            let one = ScanSpec { scorer: &scorer, mates: &mates, first_probes: 3, sets: std::slice::from_ref(set) };
            let alone = scan(&one, &Rows(rows, vec![RowKind::Scored; m], None)).unwrap().remove(0);
            assert_eq!(together[j], alone, "set {j}");
            assert_eq!(alone.n_scores, 4 * m as u64);
        }
    }

    /// Scans of N slices, merged, equal the scan of the whole gallery for any N, including slice
    /// boundaries inside runs of identical rows (tied scores) and slices smaller than a block.
    #[test]
    fn merged_slices_equal_the_whole_scan() {
        let unit = |deg: f64| vec![deg.to_radians().cos() as f32, deg.to_radians().sin() as f32];
        let probes: Vec<Vec<f32>> = [0.0, 45.0, 200.0].iter().map(|&d| unit(d)).collect();
        let flat = probes.concat();
        let mates: Vec<Vec<f32>> = vec![vec![0.5, 0.9], vec![0.99], vec![-0.2, 0.1, 0.7]];
        // Runs of 50 identical rows: every boundary below falls inside one.
        let n = 6001;
        let gallery: Vec<Vec<f32>> = (0..n).map(|i| unit(((i / 50) * 7 % 360) as f64)).collect();
        let kinds: Vec<RowKind> =
            (0..n).map(|i| if i % 211 == 0 { RowKind::Unrankable } else { RowKind::Scored }).collect();
        let masks: Vec<u32> = (0..n).map(|i| 1 | ((i % 3 == 0) as u32) << 1).collect();
        let sets = [SetSpec { keep_top: 700, keep_top_first: 90 }, SetSpec { keep_top: 5, keep_top_first: 3000 }];
        let scorer = CpuScorer::new(&flat, 2);
        let spec = ScanSpec { scorer: &scorer, mates: &mates, first_probes: 2, sets: &sets };
        let all = Rows(gallery, kinds, Some(masks));
        let whole = scan(&spec, &all).unwrap();
        for parts in [1usize, 2, 3, 7, 4000] {
            let slices: Vec<Vec<ScanResult>> = (0..parts)
                .map(|k| scan(&spec, &Slice { inner: &all, range: k * n / parts..(k + 1) * n / parts }).unwrap())
                .collect();
            assert_eq!(merge_slices(slices, &sets).unwrap(), whole, "{parts} slices");
        }
        // A result survives the trip through its parts; a wrong layout is refused.
        let r = &whole[0];
        let back = ScanResult::from_parts(
            &mates,
            r.counts().to_vec(),
            r.top.clone(),
            r.top_first.clone(),
            r.n_scores,
            r.n_first_scores,
        );
        assert_eq!(back.as_ref(), Ok(r));
        let short = ScanResult::from_parts(&mates[1..], r.counts().to_vec(), vec![], vec![], 0, 0).unwrap_err();
        assert!(short.contains("rank counts"), "{short}");
        let unsorted = ScanResult::from_parts(&mates, r.counts().to_vec(), vec![0.1, 0.2], vec![], 0, 0).unwrap_err();
        assert!(unsorted.contains("descending"), "{unsorted}");
    }

    /// The top impostor scores by brute force (descending), and the scan's, for a gallery large
    /// enough to use pilot floors.
    fn top_by_both(
        gallery: Vec<Vec<f32>>,
        probes: &[Vec<f32>],
        keep: usize,
        keep_first: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let flat = probes.concat();
        let mates = vec![Vec::new(); probes.len()];
        let sets = [SetSpec { keep_top: keep, keep_top_first: keep_first }];
        let scorer = CpuScorer::new(&flat, 2);
        let spec = ScanSpec { scorer: &scorer, mates: &mates, first_probes: 1, sets: &sets };
        let n = gallery.len();
        let got = scan(&spec, &Rows(gallery.clone(), vec![RowKind::Scored; n], None)).unwrap().remove(0);
        let mut scores = vec![0f32; probes.len() * n];
        gemm_scores(&flat, probes.len(), &gallery.concat(), n, 2, &mut scores);
        let mut all = scores.clone();
        all.sort_by(|a, b| b.total_cmp(a));
        let mut first = scores[..n].to_vec();
        first.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(got.top_first, first[..keep_first].to_vec());
        (got.top, all[..keep].to_vec())
    }

    #[test]
    fn pilot_floors_keep_the_result_exact() {
        let unit = |deg: f64| vec![deg.to_radians().cos() as f32, deg.to_radians().sin() as f32];
        let probes: Vec<Vec<f32>> = [0.0, 100.0].iter().map(|&d| unit(d)).collect();
        let n = 16384;
        // Spread scores: the pilot's guess holds.
        let spread: Vec<Vec<f32>> = (0..n).map(|i| unit(((i * 7919) % 3600) as f64 / 10.0)).collect();
        let before = FALLBACKS.with(|f| f.get());
        let (got, want) = top_by_both(spread, &probes, 1000, 700);
        assert_eq!(got, want);
        assert_eq!(FALLBACKS.with(|f| f.get()), before, "the pilot guess should hold on spread scores");
        // The sampled rows (every 8th) are the best-scoring ones: the pilot guesses a floor far too
        // high, and the scan must notice and fall back.
        let skewed: Vec<Vec<f32>> = (0..n)
            .map(|i| if i % 8 == 0 { unit((i % 5) as f64 * 0.01) } else { unit(20.0 + (i % 300) as f64) })
            .collect();
        let (got, want) = top_by_both(skewed, &probes, 8000, 4000);
        assert_eq!(got, want);
        assert_eq!(FALLBACKS.with(|f| f.get()), before + 1, "the skewed gallery must fall back");
    }

    /// Rows a memory-mapped source holds (filled and not yet released) stay bounded by the blocks
    /// in flight: the pilot's rows, spread over the whole gallery, are released as it goes.
    #[test]
    fn rows_held_stay_bounded_by_the_blocks_in_flight() {
        use std::collections::BTreeSet;
        use std::sync::Mutex;
        struct Held {
            rows: Rows,
            held: Mutex<(BTreeSet<usize>, usize)>,
        }
        impl GallerySource for Held {
            fn len(&self) -> usize {
                self.rows.len()
            }
            fn dim(&self) -> usize {
                self.rows.dim()
            }
            fn fill(&self, i: usize, out: &mut [f32]) -> Result<RowKind> {
                let mut h = self.held.lock().unwrap();
                h.0.insert(i);
                h.1 = h.1.max(h.0.len());
                self.rows.fill(i, out)
            }
            fn release(&self, range: std::ops::Range<usize>) {
                self.held.lock().unwrap().0.retain(|r| !range.contains(r));
            }
        }
        let unit = |deg: f64| vec![deg.to_radians().cos() as f32, deg.to_radians().sin() as f32];
        let n = 40_000;
        let gallery: Vec<Vec<f32>> = (0..n).map(|i| unit(((i * 7919) % 3600) as f64 / 10.0)).collect();
        let probes = [unit(0.0), unit(100.0)].concat();
        let scorer = CpuScorer::new(&probes, 2);
        let sets = [SetSpec { keep_top: 2000, keep_top_first: 1000 }];
        let spec = ScanSpec { scorer: &scorer, mates: &[vec![0.5], vec![]], first_probes: 1, sets: &sets };
        let src = Held { rows: Rows(gallery, vec![RowKind::Scored; n], None), held: Mutex::new((BTreeSet::new(), 0)) };
        scan(&spec, &src).unwrap();
        let (left, peak) = src.held.into_inner().unwrap();
        assert!(left.is_empty(), "{} rows never released", left.len());
        let bound = rayon::current_num_threads() * BLOCK + 64;
        assert!(peak <= bound, "{peak} rows held at once (bound {bound})");
    }
}

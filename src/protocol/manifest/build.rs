//! Protocol builders for a manifest: identity-disjoint folds, verification pairs (plain and
//! age-gap controlled with age-matched negatives) and the closed-set identification split.
//!
//! Deterministic given the seed: identities are ordered by name and images by (age, path)
//! before anything is drawn, so the protocol does not depend on the manifest's row order, and
//! each fold draws from its own generator, so folds can be built in parallel.

use crate::dataset::manifest::Manifest;
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// (genuine pairs, impostor pairs) as indices into the manifest's rows.
type PairLists = (Vec<(u32, u32)>, Vec<(u32, u32)>);

/// Pairs per fold when the user gives none (LFW's and AgeDB-30's 300).
pub const DEFAULT_PAIRS_PER_FOLD: usize = 300;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildSpec {
    pub seed: u64,
    pub folds: usize,
    /// Matched (= mismatched) pairs per fold; None = as many as every fold allows, at most 300.
    pub pairs_per_fold: Option<usize>,
    /// One age-gap-controlled pair list per gap (AgeDB-style), in years.
    pub min_age_gaps: Vec<u32>,
    /// A negative pair matched to a positive has each image's age within this many years.
    pub age_tolerance: u32,
}

impl Default for BuildSpec {
    fn default() -> Self {
        BuildSpec { seed: 0, folds: 10, pairs_per_fold: None, min_age_gaps: Vec::new(), age_tolerance: 2 }
    }
}

/// Verification pairs as manifest rows, fold by fold: `matched[f]` and `mismatched[f]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PairList {
    /// 0 for the plain list.
    pub min_age_gap: u32,
    pub matched: Vec<Vec<(u32, u32)>>,
    pub mismatched: Vec<Vec<(u32, u32)>>,
}

impl PairList {
    pub fn pairs_per_fold(&self) -> usize {
        self.matched.first().map_or(0, Vec::len)
    }
}

/// Where each gallery image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GalleryChoice {
    /// The youngest image of each identity (ties: smallest path); probes are older.
    Youngest,
    /// The oldest image of each identity (ties: largest path); probes are younger.
    Oldest,
    /// Without ages: the identity's first image by path.
    First,
}

impl GalleryChoice {
    pub fn name(self) -> &'static str {
        match self {
            GalleryChoice::Youngest => "youngest",
            GalleryChoice::Oldest => "oldest",
            GalleryChoice::First => "first",
        }
    }
}

/// Closed-set identification: one gallery image per identity, every other image a probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub gallery_choice: GalleryChoice,
    pub gallery: Vec<u32>,
    pub probes: Vec<u32>,
}

/// Identity images ordered by (age, path) (by path without ages), identities by name.
pub struct Cohort<'a> {
    pub manifest: &'a Manifest,
    /// Identity indices sorted by name.
    pub identities: Vec<u32>,
    /// Rows of each identity (indexed by identity index), sorted by (age, path).
    pub images: Vec<Vec<u32>>,
    /// Rank of each row's path among all paths: orders pairs independently of the row order.
    rank: Vec<u32>,
}

impl<'a> Cohort<'a> {
    pub fn new(m: &'a Manifest) -> Self {
        let mut identities: Vec<u32> = (0..m.identities() as u32).collect();
        identities.sort_by(|&a, &b| m.identity_names[a as usize].cmp(&m.identity_names[b as usize]));
        let mut images = m.images_by_identity();
        let age = |r: u32| m.ages.as_ref().map_or(0, |a| a[r as usize]);
        images.par_iter_mut().for_each(|v| {
            v.sort_by(|&a, &b| age(a).cmp(&age(b)).then_with(|| m.paths[a as usize].cmp(&m.paths[b as usize])))
        });
        let mut by_path: Vec<u32> = (0..m.len() as u32).collect();
        by_path.par_sort_unstable_by(|&a, &b| m.paths[a as usize].cmp(&m.paths[b as usize]));
        let mut rank = vec![0u32; m.len()];
        for (k, &r) in by_path.iter().enumerate() {
            rank[r as usize] = k as u32;
        }
        Cohort { manifest: m, identities, images, rank }
    }

    /// The pair with the smaller path first.
    fn ordered(&self, a: u32, b: u32) -> (u32, u32) {
        if self.rank[a as usize] < self.rank[b as usize] {
            (a, b)
        } else {
            (b, a)
        }
    }

    fn age(&self, row: u32) -> u32 {
        self.manifest.ages.as_ref().map_or(0, |a| a[row as usize])
    }

    /// Identities of each fold: names shuffled with the seed, dealt round-robin.
    pub fn folds(&self, folds: usize, seed: u64) -> Vec<Vec<u32>> {
        let mut order = self.identities.clone();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0xF01D_5EED));
        let mut out = vec![Vec::new(); folds];
        for (i, id) in order.into_iter().enumerate() {
            out[i % folds].push(id);
        }
        out
    }

    /// The identification split (gallery one image per identity).
    pub fn split(&self, choice: GalleryChoice) -> Result<Split> {
        if choice != GalleryChoice::First && self.manifest.ages.is_none() {
            return Err(Error::Config(format!(
                "gallery '{}' needs ages, but {} has no 'age' column; use --gallery first",
                choice.name(),
                self.manifest.source.display()
            )));
        }
        let (mut gallery, mut probes) = (Vec::new(), Vec::new());
        for &id in &self.identities {
            let imgs = &self.images[id as usize];
            let g = match choice {
                GalleryChoice::Youngest => 0,
                GalleryChoice::Oldest => imgs.len() - 1,
                // Sorted by path alone when the manifest has no ages; else pick the smallest path.
                GalleryChoice::First => {
                    (0..imgs.len()).min_by_key(|&k| &self.manifest.paths[imgs[k] as usize]).unwrap_or(0)
                }
            };
            gallery.push(imgs[g]);
            probes.extend(imgs.iter().enumerate().filter(|(k, _)| *k != g).map(|(_, &r)| r));
        }
        Ok(Split { gallery_choice: choice, gallery, probes })
    }
}

/// Per identity: the number of pairs (i < j, positions in age order) with age gap >= `gap`, and
/// where each i's partners start.
struct GapPairs {
    /// `start[i]`: first j with age[j] >= age[i] + gap (and j > i).
    start: Vec<usize>,
    /// Prefix sums of `len - start[i]`.
    prefix: Vec<u64>,
}

impl GapPairs {
    fn new(ages: &[u32], gap: u32) -> Self {
        let n = ages.len();
        let start: Vec<usize> = (0..n).map(|i| ages.partition_point(|&a| a < ages[i] + gap).max(i + 1)).collect();
        let mut prefix = Vec::with_capacity(n + 1);
        prefix.push(0u64);
        for i in 0..n {
            prefix.push(prefix[i] + (n - start[i].min(n)) as u64);
        }
        GapPairs { start, prefix }
    }

    fn total(&self) -> u64 {
        *self.prefix.last().unwrap_or(&0)
    }

    /// The k-th pair (positions i < j) in (i, j) order.
    fn nth(&self, k: u64) -> (usize, usize) {
        let i = self.prefix.partition_point(|&p| p <= k) - 1;
        (i, self.start[i] + (k - self.prefix[i]) as usize)
    }
}

/// Draws `n` distinct positive pairs with age gap >= `gap` from the fold's identities:
/// identity uniformly among those with a pair left, then one of its pairs uniformly. `accept`
/// may refuse a drawn pair (it then stays used). Returns fewer than `n` when the pool runs dry.
fn draw_positives(
    c: &Cohort,
    ids: &[u32],
    gap: u32,
    n: usize,
    rng: &mut ChaCha8Rng,
    mut accept: impl FnMut(&mut ChaCha8Rng, (u32, u32)) -> bool,
) -> Vec<(u32, u32)> {
    let mut pool: Vec<(u32, GapPairs, u64)> = ids
        .iter()
        .filter_map(|&id| {
            let ages: Vec<u32> = c.images[id as usize].iter().map(|&r| c.age(r)).collect();
            let g = GapPairs::new(&ages, gap);
            (g.total() > 0).then_some((id, g, 0))
        })
        .collect();
    let mut used = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !pool.is_empty() {
        let slot = rng.gen_range(0..pool.len());
        let (id, g, drawn) = &mut pool[slot];
        let (i, j) = g.nth(rng.gen_range(0..g.total()));
        let imgs = &c.images[*id as usize];
        let pair = (imgs[i], imgs[j]);
        if used.insert(pair) {
            *drawn += 1;
            if *drawn == g.total() {
                pool.swap_remove(slot);
            }
            if accept(rng, pair) {
                out.push(pair);
            }
        }
    }
    out
}

/// Images of a fold sorted by age, for drawing an image of a given age range.
struct AgeIndex {
    /// (age, row, identity)
    entries: Vec<(u32, u32, u32)>,
}

impl AgeIndex {
    fn new(c: &Cohort, ids: &[u32]) -> Self {
        let mut entries: Vec<(u32, u32, u32)> =
            ids.iter().flat_map(|&id| c.images[id as usize].iter().map(move |&r| (c.age(r), r, id))).collect();
        // (age, path) order: draws do not depend on the manifest's row order.
        entries.sort_unstable_by_key(|e| (e.0, c.rank[e.1 as usize]));
        AgeIndex { entries }
    }

    fn range(&self, lo: u32, hi: u32) -> std::ops::Range<usize> {
        self.entries.partition_point(|e| e.0 < lo)..self.entries.partition_point(|e| e.0 <= hi)
    }
}

/// Attempts to find an age-matched negative for one positive before giving up on that positive.
const NEGATIVE_TRIES: usize = 64;

/// Matched and mismatched pairs of one fold.
fn build_fold(c: &Cohort, ids: &[u32], gap: u32, tolerance: u32, n: usize, rng: &mut ChaCha8Rng) -> PairLists {
    if gap == 0 {
        let matched = draw_positives(c, ids, 0, n, rng, |_, _| true);
        // Mismatched: two identities of the fold uniformly, one image of each uniformly.
        let mut used = HashSet::new();
        let mut mismatched = Vec::with_capacity(n);
        while mismatched.len() < n && ids.len() >= 2 {
            let x = ids[rng.gen_range(0..ids.len())];
            let y = ids[rng.gen_range(0..ids.len())];
            if x == y {
                continue;
            }
            let (ix, iy) = (&c.images[x as usize], &c.images[y as usize]);
            let pair = c.ordered(ix[rng.gen_range(0..ix.len())], iy[rng.gen_range(0..iy.len())]);
            if used.insert(pair) {
                mismatched.push(pair);
            }
        }
        return (matched, mismatched);
    }
    // Age-gap controlled: each positive gets a negative whose images have the positive's ages
    // (within the tolerance), so the two classes have the same age and gap distribution.
    let index = AgeIndex::new(c, ids);
    let mut used_neg = HashSet::new();
    let mut negatives = Vec::with_capacity(n);
    let matched = draw_positives(c, ids, gap, n, rng, |rng, (a, b)| {
        let (young, old) = (c.age(a), c.age(b));
        let rx = index.range(young.saturating_sub(tolerance), young + tolerance);
        let ry = index.range(old.saturating_sub(tolerance), old + tolerance);
        if rx.is_empty() || ry.is_empty() {
            return false;
        }
        for _ in 0..NEGATIVE_TRIES {
            let x = index.entries[rng.gen_range(rx.clone())];
            let y = index.entries[rng.gen_range(ry.clone())];
            if x.2 == y.2 || x.0.abs_diff(y.0) < gap {
                continue;
            }
            if used_neg.insert(c.ordered(x.1, y.1)) {
                negatives.push((x.1, y.1));
                return true;
            }
        }
        false
    });
    (matched, negatives)
}

/// Counts that bound how many pairs a fold can give: (positive pairs with the gap, impostor pairs).
fn fold_capacity(c: &Cohort, ids: &[u32], gap: u32) -> (u64, u64) {
    let mut positives = 0u64;
    let (mut total, mut squares) = (0u64, 0u64);
    for &id in ids {
        let imgs = &c.images[id as usize];
        let ages: Vec<u32> = imgs.iter().map(|&r| c.age(r)).collect();
        positives += GapPairs::new(&ages, gap).total();
        total += imgs.len() as u64;
        squares += (imgs.len() as u64).pow(2);
    }
    (positives, (total * total - squares) / 2)
}

/// Builds one pair list (gap 0 = plain) over the given folds.
pub fn build_pairs(c: &Cohort, folds: &[Vec<u32>], spec: &BuildSpec, gap: u32) -> Result<PairList> {
    if gap > 0 && c.manifest.ages.is_none() {
        return Err(Error::Config(format!(
            "--min-age-gap needs ages, but {} has no 'age' column",
            c.manifest.source.display()
        )));
    }
    let caps: Vec<(u64, u64)> = folds.par_iter().map(|ids| fold_capacity(c, ids, gap)).collect();
    let feasible = caps.iter().map(|&(p, i)| p.min(i)).min().unwrap_or(0) as usize;
    let what = if gap == 0 { "genuine pairs".to_string() } else { format!("genuine pairs {gap}+ years apart") };
    let n = match spec.pairs_per_fold {
        Some(n) if n > feasible => {
            let f = (0..caps.len()).min_by_key(|&f| caps[f].0.min(caps[f].1)).unwrap_or(0);
            return Err(Error::Invalid(format!(
                "fold {} has only {feasible} {what} (or impostor pairs) for {n} per fold; lower --pairs-per-fold, use fewer --folds, or add images",
                f + 1
            )));
        }
        Some(n) => n,
        None => feasible.min(DEFAULT_PAIRS_PER_FOLD),
    };
    if n == 0 {
        return Err(Error::Invalid(format!(
            "some fold of {} has no {what}: every identity of a fold needs ≥2 images{}; use fewer --folds",
            c.manifest.source.display(),
            if gap > 0 { " that far apart in age" } else { "" }
        )));
    }
    let built: Vec<PairLists> = folds
        .par_iter()
        .enumerate()
        .map(|(f, ids)| {
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
            rng.set_stream(((gap as u64) << 32) | f as u64);
            build_fold(c, ids, gap, spec.age_tolerance, n, &mut rng)
        })
        .collect();
    let mut list = PairList { min_age_gap: gap, matched: Vec::new(), mismatched: Vec::new() };
    for (f, (matched, mismatched)) in built.into_iter().enumerate() {
        if matched.len() < n || mismatched.len() < n {
            return Err(Error::Invalid(format!(
                "fold {}: only {} {what} found an age-matched impostor pair (each age within ±{} years); lower --pairs-per-fold (now {n}) or raise --age-tolerance",
                f + 1,
                matched.len().min(mismatched.len()),
                spec.age_tolerance
            )));
        }
        list.matched.push(matched);
        list.mismatched.push(mismatched);
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_pairs_enumerate_exactly_the_pairs_with_the_gap() {
        let ages = [3, 5, 5, 9, 20];
        for gap in [0, 1, 2, 4, 6, 17, 40] {
            let g = GapPairs::new(&ages, gap);
            let mut brute = Vec::new();
            for i in 0..ages.len() {
                for j in i + 1..ages.len() {
                    if ages[j] - ages[i] >= gap {
                        brute.push((i, j));
                    }
                }
            }
            let got: Vec<(usize, usize)> = (0..g.total()).map(|k| g.nth(k)).collect();
            assert_eq!(got, brute, "gap {gap}");
        }
    }
}

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

use super::gemm_scores;
use crate::error::Result;
use rayon::prelude::*;

/// Gallery rows per block: one GEMM of P × dim × BLOCK.
pub const BLOCK: usize = 2048;

/// How a gallery row takes part (MegaFace noise cleaning, PROTOCOLS.md §4).
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
    /// Rows `range` will not be read again (lets a memory-mapped source drop their pages).
    fn release(&self, _range: std::ops::Range<usize>) {}
}

#[derive(Debug, Clone)]
pub struct ScanSpec<'a> {
    /// P × dim, row-major, L2-normalised.
    pub probes: &'a [f32],
    /// Per probe, the scores of its mates sorted ascending (computed with [`gemm_scores`]).
    pub mates: &'a [Vec<f32>],
    /// How many of the highest impostor scores to keep over all probes.
    pub keep_top: usize,
    /// Probes `0..first_probes` also feed a second list of `keep_top_first` scores.
    pub first_probes: usize,
    pub keep_top_first: usize,
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

struct Acc {
    counts: Vec<u64>,
    top: TopK,
    top_first: TopK,
    n_scores: u64,
    n_first: u64,
}

impl Acc {
    fn merge(mut self, o: Acc) -> Acc {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        Acc {
            counts: self.counts,
            top: self.top.merge(o.top),
            top_first: self.top_first.merge(o.top_first),
            n_scores: self.n_scores + o.n_scores,
            n_first: self.n_first + o.n_first,
        }
    }
}

/// Runs the pass. Errors from the gallery source (a bad row) stop it and are returned.
pub fn scan(spec: &ScanSpec<'_>, gallery: &dyn GallerySource) -> Result<ScanResult> {
    let dim = gallery.dim();
    let p = spec.mates.len();
    debug_assert_eq!(spec.probes.len(), p * dim);
    let mut offsets = Vec::with_capacity(p + 1);
    offsets.push(0usize);
    for m in spec.mates {
        offsets.push(offsets.last().copied().unwrap_or(0) + m.len() + 1);
    }
    let total = offsets[p];
    let new_acc = || Acc {
        counts: vec![0; total],
        top: TopK::new(spec.keep_top),
        top_first: TopK::new(spec.keep_top_first),
        n_scores: 0,
        n_first: 0,
    };
    let n = gallery.len();
    let blocks = n.div_ceil(BLOCK);
    let acc = (0..blocks)
        .into_par_iter()
        .try_fold(
            || (new_acc(), Vec::<f32>::new(), Vec::<f32>::new(), Vec::<RowKind>::new()),
            |(mut acc, mut rows, mut scores, mut kinds), b| -> Result<_> {
                let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
                let width = end - start;
                rows.resize(width * dim, 0.0);
                kinds.clear();
                for (i, out) in rows.chunks_exact_mut(dim).enumerate() {
                    kinds.push(gallery.fill(start + i, out)?);
                }
                gallery.release(start..end);
                scores.resize(p * width, 0.0);
                gemm_scores(spec.probes, p, &rows, width, dim, &mut scores);
                for (k, kind) in kinds.iter().enumerate() {
                    if *kind == RowKind::Unrankable {
                        for a in 0..p {
                            scores[a * width + k] = f32::NEG_INFINITY;
                        }
                    }
                }
                reduce_block(spec, &offsets, &scores, width, &mut acc);
                acc.n_scores += (p * width) as u64;
                acc.n_first += (spec.first_probes.min(p) * width) as u64;
                Ok((acc, rows, scores, kinds))
            },
        )
        .map(|r| r.map(|(acc, ..)| acc))
        .try_reduce(new_acc, |a, b| Ok(a.merge(b)))?;
    Ok(ScanResult {
        counts: acc.counts,
        offsets,
        top: acc.top.into_sorted(),
        top_first: acc.top_first.into_sorted(),
        n_scores: acc.n_scores,
        n_first_scores: acc.n_first,
    })
}

fn reduce_block(spec: &ScanSpec<'_>, offsets: &[usize], scores: &[f32], width: usize, acc: &mut Acc) {
    for (a, row) in scores.chunks_exact(width).enumerate() {
        let mates = spec.mates[a].as_slice();
        let counts = &mut acc.counts[offsets[a]..offsets[a + 1]];
        let first = a < spec.first_probes;
        let lowest_mate = mates.first().copied().unwrap_or(f32::INFINITY);
        for chunk in row.chunks(16) {
            // Most scores are below every mate and every kept impostor: one max decides.
            let cut = lowest_mate.min(acc.top.floor).min(if first { acc.top_first.floor } else { f32::INFINITY });
            let max = chunk.iter().fold(f32::NEG_INFINITY, |m, &s| if s > m { s } else { m });
            if max <= cut {
                continue;
            }
            for &s in chunk {
                if s > lowest_mate {
                    // Branch-free count for the usual handful of mates, binary search beyond.
                    let beaten = if mates.len() <= 32 {
                        mates.iter().map(|&m| (m < s) as usize).sum()
                    } else {
                        mates.partition_point(|&m| m < s)
                    };
                    counts[beaten] += 1;
                }
                if s > acc.top.floor && s > f32::NEG_INFINITY {
                    acc.top.push(s);
                }
                if first && s > acc.top_first.floor && s > f32::NEG_INFINITY {
                    acc.top_first.push(s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rows(Vec<Vec<f32>>, Vec<RowKind>);
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
    }

    /// Brute force over the same scores.
    #[test]
    fn matches_brute_force_with_ties() {
        // 2-D unit vectors at angles on a coarse grid: many exact ties.
        let unit = |deg: f64| vec![deg.to_radians().cos() as f32, deg.to_radians().sin() as f32];
        let probes: Vec<Vec<f32>> = [0.0, 30.0, 90.0].iter().map(|&d| unit(d)).collect();
        let n = 5000;
        let gallery: Vec<Vec<f32>> = (0..n).map(|i| unit(((i * 7) % 360) as f64)).collect();
        let kinds: Vec<RowKind> =
            (0..n).map(|i| if i % 97 == 0 { RowKind::Unrankable } else { RowKind::Scored }).collect();
        let flat: Vec<f32> = probes.concat();
        // Scores with the whole probe matrix on the left, as the scan computes them.
        let dot = |a: &[f32], b: &[f32]| {
            let i = probes.iter().position(|p| p.as_slice() == a).unwrap();
            let mut s = vec![0f32; probes.len()];
            gemm_scores(&probes.concat(), probes.len(), b, 1, 2, &mut s);
            s[i]
        };
        // Mates: gallery-like vectors at chosen angles (some equal to gallery angles → ties).
        let mate_vecs: Vec<Vec<Vec<f32>>> = vec![vec![unit(14.0), unit(21.0), unit(180.0)], vec![unit(30.0)], vec![]];
        let mates: Vec<Vec<f32>> = probes
            .iter()
            .zip(&mate_vecs)
            .map(|(p, ms)| {
                let mut v: Vec<f32> = ms.iter().map(|m| dot(p, m)).collect();
                v.sort_by(f32::total_cmp);
                v
            })
            .collect();
        let spec = ScanSpec { probes: &flat, mates: &mates, keep_top: 50, first_probes: 2, keep_top_first: 7 };
        let got = scan(&spec, &Rows(gallery.clone(), kinds.clone())).unwrap();
        let mut all = Vec::new();
        let mut first = Vec::new();
        for (a, p) in probes.iter().enumerate() {
            let scores: Vec<f32> = gallery
                .iter()
                .zip(&kinds)
                .map(|(g, k)| if *k == RowKind::Unrankable { f32::NEG_INFINITY } else { dot(p, g) })
                .collect();
            let want: Vec<u64> = mates[a].iter().map(|&m| scores.iter().filter(|&&s| s > m).count() as u64).collect();
            assert_eq!(got.mate_ranks(a), want, "probe {a}");
            let finite = scores.iter().copied().filter(|s| s.is_finite());
            all.extend(finite.clone());
            if a < 2 {
                first.extend(finite);
            }
        }
        all.sort_by(|a, b| b.total_cmp(a));
        first.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(got.top, all[..50].to_vec());
        assert_eq!(got.top_first, first[..7].to_vec());
        assert_eq!(got.n_scores, 3 * n as u64);
        assert_eq!(got.n_first_scores, 2 * n as u64);
        // Same result on one thread.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let one = pool.install(|| scan(&spec, &Rows(gallery, kinds)).unwrap());
        assert_eq!(one, got);
    }
}

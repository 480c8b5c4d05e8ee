//! Scores of listed row pairs of one matrix (IJB's 15.7 M template pairs, its probe × gallery
//! blocks): pairs are bucketed into tiles of (row block × row block) so both rows come from
//! cache, and each score is [`dot_f32x16`] (four at a time with AVX2, same bits), so the result
//! depends neither on the CPU's vector width nor on the thread count.

use super::kernels::{dot_f32x16, has_avx2};
use rayon::prelude::*;

/// Row-major f32 rows of one length (IJB: the L2-normalised template features).
#[derive(Debug, Clone, PartialEq)]
pub struct RowMatrix {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl RowMatrix {
    pub fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn row(&self, t: usize) -> &[f32] {
        &self.data[t * self.dim..(t + 1) * self.dim]
    }
}

#[inline(always)]
fn score_list_body(m: &RowMatrix, t1: &[u32], t2: &[u32], idx: &[u32], out: &mut [f32]) {
    for (o, &p) in out.iter_mut().zip(idx) {
        *o = dot_f32x16(m.row(t1[p as usize] as usize), m.row(t2[p as usize] as usize));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn score_list_avx2(m: &RowMatrix, t1: &[u32], t2: &[u32], idx: &[u32], out: &mut [f32]) {
    use super::kernels::dot4_avx2;
    let rows = |p: u32| (m.row(t1[p as usize] as usize), m.row(t2[p as usize] as usize));
    let mut quads = idx.chunks_exact(4);
    let mut outs = out.chunks_exact_mut(4);
    for (q, o) in (&mut quads).zip(&mut outs) {
        let r = [rows(q[0]), rows(q[1]), rows(q[2]), rows(q[3])];
        // SAFETY: AVX2 is enabled here; every row of the matrix has the same length.
        o.copy_from_slice(&dot4_avx2([r[0].0, r[1].0, r[2].0, r[3].0], [r[0].1, r[1].1, r[2].1, r[3].1]));
    }
    score_list_body(m, t1, t2, quads.remainder(), outs.into_remainder())
}

/// Scores pairs `idx` (indices into t1/t2) into `out`.
fn score_list(m: &RowMatrix, t1: &[u32], t2: &[u32], idx: &[u32], out: &mut [f32], avx2: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 support was detected at run time.
        unsafe { score_list_avx2(m, t1, t2, idx, out) };
        return;
    }
    let _ = avx2;
    score_list_body(m, t1, t2, idx, out)
}

/// Rows per tile side: two blocks of 256 rows × 512 floats fit in a 1 MB L2.
const BLOCK: usize = 256;

/// Cosine score of every pair (`m.row(t1[p]) · m.row(t2[p])`), in input order.
pub fn score_pairs(m: &RowMatrix, t1: &[u32], t2: &[u32]) -> Vec<f32> {
    let n = t1.len();
    let blocks = m.len().div_ceil(BLOCK).max(1);
    let tile = |p: usize| (t1[p] as usize / BLOCK) * blocks + t2[p] as usize / BLOCK;
    // Counting sort of pair indices by tile.
    let mut start = vec![0usize; blocks * blocks + 1];
    for p in 0..n {
        start[tile(p) + 1] += 1;
    }
    for i in 0..blocks * blocks {
        start[i + 1] += start[i];
    }
    let mut perm = vec![0u32; n];
    let mut next = start.clone();
    for p in 0..n {
        let t = tile(p);
        perm[next[t]] = p as u32;
        next[t] += 1;
    }
    // Chunks of consecutive tiles of ~64k pairs keep rayon's overhead small.
    let mut bounds = vec![0usize];
    for &s in &start[1..] {
        if s - bounds[bounds.len() - 1] >= 1 << 16 {
            bounds.push(s);
        }
    }
    if bounds[bounds.len() - 1] != n {
        bounds.push(n);
    }
    let mut sorted = vec![0f32; n];
    let mut slices = Vec::with_capacity(bounds.len());
    let mut rest = sorted.as_mut_slice();
    for w in bounds.windows(2) {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(w[1] - w[0]);
        slices.push((w[0], head));
        rest = tail;
    }
    let avx2 = has_avx2();
    slices.into_par_iter().for_each(|(s, out)| {
        let len = out.len();
        score_list(m, t1, t2, &perm[s..s + len], out, avx2)
    });
    let mut scores = vec![0f32; n];
    for (k, &p) in perm.iter().enumerate() {
        scores[p as usize] = sorted[k];
    }
    scores
}

/// Probes × gallery scores for a block of probe rows (row-major, one row per probe), tiled so a
/// block of gallery rows stays in cache; the same bits as [`score_pairs`] gives each pair.
pub fn score_block(m: &RowMatrix, probes: &[u32], gallery: &[u32]) -> Vec<f32> {
    let avx2 = has_avx2();
    let g = gallery.len();
    let mut out = vec![0f32; probes.len() * g];
    let (mut t1, mut t2, mut idx) = (Vec::new(), Vec::new(), Vec::new());
    for gb in (0..g).step_by(BLOCK) {
        let ge = (gb + BLOCK).min(g);
        for (pi, &p) in probes.iter().enumerate() {
            t1.clear();
            t2.clear();
            idx.clear();
            for (k, &gt) in gallery[gb..ge].iter().enumerate() {
                t1.push(p);
                t2.push(gt);
                idx.push(k as u32);
            }
            score_list(m, &t1, &t2, &idx, &mut out[pi * g + gb..pi * g + ge], avx2);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(n: usize, dim: usize) -> RowMatrix {
        RowMatrix { dim, data: (0..n * dim).map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5).collect() }
    }

    #[test]
    fn tiled_scores_equal_direct_scores() {
        let m = matrix(600, 20);
        let n = m.len();
        let t1: Vec<u32> = (0..5000).map(|i| (i * 37 % n) as u32).collect();
        let t2: Vec<u32> = (0..5000).map(|i| (i * 101 % n) as u32).collect();
        let s = score_pairs(&m, &t1, &t2);
        for i in 0..t1.len() {
            assert_eq!(s[i].to_bits(), dot_f32x16(m.row(t1[i] as usize), m.row(t2[i] as usize)).to_bits());
        }
        let avx = has_avx2();
        let idx: Vec<u32> = (0..t1.len() as u32).collect();
        let mut plain = vec![0f32; t1.len()];
        score_list(&m, &t1, &t2, &idx, &mut plain, false);
        let mut fast = vec![0f32; t1.len()];
        score_list(&m, &t1, &t2, &idx, &mut fast, avx);
        assert_eq!(plain, fast);
        assert_eq!(plain, s);
    }

    /// A probe × gallery block scores each pair as the pair list does.
    #[test]
    fn block_scores_equal_pair_scores() {
        let m = matrix(700, 37);
        let probes: Vec<u32> = vec![3, 650, 0];
        let gallery: Vec<u32> = (0..700).rev().step_by(2).collect();
        let block = score_block(&m, &probes, &gallery);
        let (t1, t2): (Vec<u32>, Vec<u32>) = probes.iter().flat_map(|&p| gallery.iter().map(move |&g| (p, g))).unzip();
        let pairs = score_pairs(&m, &t1, &t2);
        assert_eq!(
            block.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            pairs.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}

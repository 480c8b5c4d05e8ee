//! Similarity kernels: probe × gallery cosine scores as blocked float32 GEMMs, reduced while
//! they stream so that no probe × gallery matrix is ever held.
//!
//! Every probe score of a protocol goes through one [`BlockScorer`] with the *whole* probe matrix
//! as the left operand (only the gallery block changes), so a pair of identical vectors scores the
//! same bits wherever it appears (mate or distractor, any block width or position): ties between
//! a mate and a distractor are real ties, not rounding accidents. (faer picks other kernels for
//! other left shapes — a single probe row is a GEMV — so the left operand must not be split; the
//! candle scorer pads every block to one width so cuBLAS sees one shape.)
//!
//! Two scorers: [`CpuScorer`] (faer, the default) and [`device::CandleScorer`] (candle on any
//! device; the GPU path). Their scores may differ in the last bits, never within one run.
//!
//! Beside the GEMMs: [`kernels`] (dot products and normalisation, one function per summation
//! order), [`fusion`] (flip fusion) and [`pairs`] (listed row pairs, IJB's 1:1 and 1:N scores).
//! Protocols score only through this module.

pub mod device;
pub mod fusion;
pub mod kernels;
pub mod pairs;
pub mod stream;

pub use kernels::normalize;

use crate::error::Result;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// Scores gallery blocks against one fixed probe matrix (P × dim, row-major).
pub trait BlockScorer: Sync {
    /// Number of probes (rows of every output block).
    fn probes(&self) -> usize;
    fn dim(&self) -> usize;
    /// `out[a * n + j] = probe_a · gallery_j` for a row-major `gallery` of n × dim.
    fn score(&self, gallery: &[f32], n: usize, out: &mut [f32]) -> Result<()>;
    /// The kernel, as recorded in results (e.g. `faer f32 GEMM (cpu)`).
    fn kernel(&self) -> String;
}

/// The CPU scorer: [`gemm_scores`] on the calling thread (callers parallelise over blocks).
pub struct CpuScorer<'a> {
    probes: &'a [f32],
    p: usize,
    dim: usize,
}

impl<'a> CpuScorer<'a> {
    pub fn new(probes: &'a [f32], dim: usize) -> Self {
        debug_assert!(dim > 0 && probes.len() % dim == 0);
        CpuScorer { probes, p: probes.len() / dim.max(1), dim }
    }
}

impl BlockScorer for CpuScorer<'_> {
    fn probes(&self) -> usize {
        self.p
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn score(&self, gallery: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        gemm_scores(self.probes, self.p, gallery, n, self.dim, out);
        Ok(())
    }
    fn kernel(&self) -> String {
        "faer f32 GEMM (cpu)".into()
    }
}

/// Where probe × gallery scores are computed (`--score-device`).
#[derive(Debug, Clone)]
pub enum ScoreDevice {
    /// faer on the CPU threads.
    Cpu,
    /// candle on a device (CUDA in practice; the CPU device runs the same code path in tests).
    Candle(candle_core::Device),
}

impl ScoreDevice {
    /// `cpu`, `cuda` or `cuda:N` (cuda needs a binary built with `--features cuda`).
    pub fn parse(spec: &str) -> Result<Self> {
        if spec == "cpu" {
            return Ok(ScoreDevice::Cpu);
        }
        crate::model::device::parse_device_flag("--score-device", spec).map(ScoreDevice::Candle)
    }

    /// A scorer over `probes` (P × dim, row-major); candle scores gallery blocks of
    /// [`stream::BLOCK`] rows.
    pub fn scorer<'a>(&self, probes: &'a [f32], dim: usize) -> Result<Box<dyn BlockScorer + 'a>> {
        Ok(match self {
            ScoreDevice::Cpu => Box::new(CpuScorer::new(probes, dim)),
            ScoreDevice::Candle(d) => Box::new(device::CandleScorer::new(probes, dim, stream::BLOCK, d)?),
        })
    }
}

/// Scores `out[i * n + j] = probes[i] · gallery[j]` for row-major `probes` (m×dim) and
/// `gallery` (n×dim), on the calling thread.
pub fn gemm_scores(probes: &[f32], m: usize, gallery: &[f32], n: usize, dim: usize, out: &mut [f32]) {
    debug_assert_eq!(probes.len(), m * dim);
    debug_assert_eq!(gallery.len(), n * dim);
    debug_assert_eq!(out.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    // A single row or column would take faer's matrix-vector path, whose summation order differs
    // from the GEMM kernel's: pad to two so every score comes from the same kernel.
    if n == 1 || m == 1 {
        let pad = |x: &[f32], rows: usize| if rows == 1 { [x, &vec![0f32; dim][..]].concat() } else { x.to_vec() };
        let (mm, nn) = (m.max(2), n.max(2));
        let mut wide = vec![0f32; mm * nn];
        gemm_scores(&pad(probes, m), mm, &pad(gallery, n), nn, dim, &mut wide);
        for i in 0..m {
            out[i * n..(i + 1) * n].copy_from_slice(&wide[i * nn..i * nn + n]);
        }
        return;
    }
    let lhs = MatRef::from_row_major_slice(probes, m, dim);
    let rhs = MatRef::from_row_major_slice(gallery, n, dim).transpose();
    let dst = MatMut::from_row_major_slice_mut(out, m, n);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
}

/// Scores of the scorer's probes against every row of `gallery` (n × dim), P × n row-major:
/// gallery blocks of [`stream::BLOCK`] rows scored in parallel, so each score is the bits the
/// streaming scan gives the same vector pair.
pub fn score_all(scorer: &dyn BlockScorer, gallery: &[f32], n: usize) -> Result<Vec<f32>> {
    use rayon::prelude::*;
    let (p, dim) = (scorer.probes(), scorer.dim());
    let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(stream::BLOCK))
        .into_par_iter()
        .map(|b| {
            let (lo, hi) = (b * stream::BLOCK, ((b + 1) * stream::BLOCK).min(n));
            let mut out = vec![0f32; p * (hi - lo)];
            scorer.score(&gallery[lo * dim..hi * dim], hi - lo, &mut out)?;
            Ok((lo, out))
        })
        .collect::<Result<_>>()?;
    let mut all = vec![0f32; p * n];
    for (lo, out) in blocks {
        let width = out.len() / p.max(1);
        for a in 0..p {
            all[a * n + lo..a * n + lo + width].copy_from_slice(&out[a * width..(a + 1) * width]);
        }
    }
    Ok(all)
}

/// Checks the property this module promises on a scorer (tests; the device bench runs it on a
/// GPU): with probe vectors planted in `gallery` at `copies` (gallery row, probe), each copy
/// scores exactly as the probe itself scored as a gallery row, and calls of every width in
/// `widths` at each of `starts` (clamped to the end) give the bits of one whole-gallery call.
/// Returns the whole-gallery scores (P × n), or the first mismatch.
pub fn check_position_independence(
    s: &dyn BlockScorer,
    probes: &[f32],
    mut gallery: Vec<f32>,
    copies: &[(usize, usize)],
    widths: impl Iterator<Item = usize>,
    starts: &[usize],
) -> std::result::Result<Vec<f32>, String> {
    let (p, dim) = (s.probes(), s.dim());
    let n = gallery.len() / dim;
    for &(g, a) in copies {
        gallery[g * dim..(g + 1) * dim].copy_from_slice(&probes[a * dim..(a + 1) * dim]);
    }
    let err = |e: crate::Error| e.to_string();
    let mut pp = vec![0f32; p * p];
    s.score(probes, p, &mut pp).map_err(err)?;
    let mut pg = vec![0f32; p * n];
    s.score(&gallery, n, &mut pg).map_err(err)?;
    for &(g, b) in copies {
        if let Some(a) = (0..p).find(|&a| pg[a * n + g].to_bits() != pp[a * p + b].to_bits()) {
            return Err(format!(
                "probe {a} scores {} against the copy of probe {b} at gallery row {g} but {} against probe {b}",
                pg[a * n + g],
                pp[a * p + b]
            ));
        }
    }
    for width in widths.filter(|&w| w <= n) {
        for start in starts.iter().map(|&x| x.min(n - width)) {
            let mut sub = vec![0f32; p * width];
            s.score(&gallery[start * dim..(start + width) * dim], width, &mut sub).map_err(err)?;
            let differs = |a: usize, j: usize| sub[a * width + j].to_bits() != pg[a * n + start + j].to_bits();
            if let Some((a, j)) = (0..p).flat_map(|a| (0..width).map(move |j| (a, j))).find(|&(a, j)| differs(a, j)) {
                return Err(format!(
                    "a call of {width} rows from row {start} scores probe {a} × row {} as {}, the whole gallery as {}",
                    start + j,
                    sub[a * width + j],
                    pg[a * n + start + j]
                ));
            }
        }
    }
    Ok(pg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Random L2-normalised rows (shared with the device scorer's tests).
    pub(super) fn random(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..rows * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        for r in v.chunks_exact_mut(dim) {
            normalize(r);
        }
        v
    }

    /// Copies of probe rows hidden at a block edge and in the middle of the gallery; sub-blocks of
    /// every width 1..=40 at several offsets (faer picks other kernels for other shapes).
    #[test]
    fn scores_do_not_depend_on_position_or_shape() {
        let dim = 512;
        let probes = random(37, dim, 1);
        let copies = [(0usize, 3usize), (1000, 36), (2050, 0), (2049, 17)];
        let s = CpuScorer::new(&probes, dim);
        check_position_independence(&s, &probes, random(2051, dim, 2), &copies, 1..=40, &[0, 5, 1000, usize::MAX])
            .unwrap();
    }

    /// The check finds a scorer whose bits depend on the call: one that rounds the first score
    /// of odd-width calls differently, and one that scores planted copies differently.
    #[test]
    fn position_check_catches_shape_dependent_scorers() {
        struct Odd<'a>(CpuScorer<'a>, bool);
        impl BlockScorer for Odd<'_> {
            fn probes(&self) -> usize {
                self.0.probes()
            }
            fn dim(&self) -> usize {
                self.0.dim()
            }
            fn score(&self, g: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
                self.0.score(g, n, out)?;
                if (self.1 && n % 2 == 1) || (!self.1 && n > 40) {
                    out[n - 1] = f32::from_bits(out[n - 1].to_bits() + 1);
                }
                Ok(())
            }
            fn kernel(&self) -> String {
                "odd".into()
            }
        }
        let dim = 16;
        let probes = random(5, dim, 3);
        let e = check_position_independence(
            &Odd(CpuScorer::new(&probes, dim), true),
            &probes,
            random(60, dim, 4),
            &[],
            1..=3,
            &[0],
        )
        .unwrap_err();
        assert!(e.contains("a call of 1 rows from row 0"), "{e}");
        let e = check_position_independence(
            &Odd(CpuScorer::new(&probes, dim), false),
            &probes,
            random(60, dim, 4),
            &[(59, 2)],
            1..=3,
            &[0],
        )
        .unwrap_err();
        assert!(e.contains("copy of probe 2 at gallery row 59"), "{e}");
    }
}

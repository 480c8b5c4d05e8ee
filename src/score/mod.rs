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

pub mod device;
pub mod stream;

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
        crate::embed::parse_device_flag("--score-device", spec).map(ScoreDevice::Candle)
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

/// L2-normalises `row` in place (f64 accumulation); returns false for a zero or non-finite norm.
pub fn normalize(row: &mut [f32]) -> bool {
    let norm = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return false;
    }
    let inv = 1.0 / norm;
    for v in row.iter_mut() {
        *v = (*v as f64 * inv) as f32;
    }
    true
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

    /// The property the module promises, for any scorer: the score of two given vectors does not
    /// depend on where they sit in the gallery, nor on how many rows a call passes. `copies`:
    /// (gallery row, probe) pairs where a probe's vector is planted. Returns the full P × n scores.
    pub(super) fn assert_position_independent(
        s: &dyn BlockScorer,
        probes: &[f32],
        mut gallery: Vec<f32>,
        copies: &[(usize, usize)],
        widths: impl Iterator<Item = usize>,
        starts: &[usize],
    ) -> Vec<f32> {
        let (p, dim) = (s.probes(), s.dim());
        let n = gallery.len() / dim;
        for &(g, a) in copies {
            gallery[g * dim..(g + 1) * dim].copy_from_slice(&probes[a * dim..(a + 1) * dim]);
        }
        let mut pp = vec![0f32; p * p];
        s.score(probes, p, &mut pp).unwrap();
        let mut pg = vec![0f32; p * n];
        s.score(&gallery, n, &mut pg).unwrap();
        for &(g, b) in copies {
            for a in 0..p {
                assert_eq!(pg[a * n + g].to_bits(), pp[a * p + b].to_bits(), "probe {a} vs copy of {b} at {g}");
            }
        }
        for width in widths {
            for start in starts.iter().map(|&x| x.min(n - width)) {
                let mut sub = vec![0f32; p * width];
                s.score(&gallery[start * dim..(start + width) * dim], width, &mut sub).unwrap();
                for a in 0..p {
                    for j in 0..width {
                        assert_eq!(sub[a * width + j].to_bits(), pg[a * n + start + j].to_bits(), "width {width}");
                    }
                }
            }
        }
        pg
    }

    /// Copies of probe rows hidden at a block edge and in the middle of the gallery; sub-blocks of
    /// every width 1..=40 at several offsets (faer picks other kernels for other shapes).
    #[test]
    fn scores_do_not_depend_on_position_or_shape() {
        let dim = 512;
        let probes = random(37, dim, 1);
        let copies = [(0usize, 3usize), (1000, 36), (2050, 0), (2049, 17)];
        let s = CpuScorer::new(&probes, dim);
        assert_position_independent(&s, &probes, random(2051, dim, 2), &copies, 1..=40, &[0, 5, 1000, usize::MAX]);
    }
}

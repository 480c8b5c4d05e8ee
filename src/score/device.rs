//! Probe × gallery blocks scored by candle on any device: the GPU path of MegaFace
//! (`--score-device cuda`).
//!
//! The probe matrix is uploaded once. Each gallery block is padded to one fixed width, uploaded,
//! multiplied (cuBLAS on CUDA with full f32 accumulation: candle's TF32 switch is kept off) and
//! copied back; the exact reduction (ranks, kept impostors) stays on the CPU, where it is shared
//! with the faer path and tested. One GEMM shape means one kernel choice, so a vector scores the
//! same bits in every block and in the mate matrix (the property `score` promises).
//!
//! Blocks are submitted one at a time (a lock): the device multiplies block b while the CPU
//! threads read and reduce the others, and device memory stays at one block.

use super::BlockScorer;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::sync::Mutex;

pub struct CandleScorer {
    /// P × dim on the device.
    probes: Tensor,
    p: usize,
    dim: usize,
    /// Gallery rows per device GEMM (every block is padded to it).
    width: usize,
    lock: Mutex<()>,
}

fn device_err(what: &'static str) -> impl FnOnce(candle_core::Error) -> Error {
    move |e| Error::Invalid(format!("scoring on the device: {what}: {e}"))
}

impl CandleScorer {
    /// `probes`: P × dim, row-major. `width`: gallery rows per GEMM.
    pub fn new(probes: &[f32], dim: usize, width: usize, device: &Device) -> Result<Self> {
        if dim == 0 || probes.len() % dim != 0 || width == 0 {
            return Err(Error::Invalid(format!(
                "scoring on the device: {} probe values are not a whole number of {dim}-D rows",
                probes.len()
            )));
        }
        #[cfg(feature = "cuda")]
        if device.is_cuda() {
            // Exact f32 products: TF32 would change scores in the 4th digit.
            candle_core::cuda::set_gemm_reduced_precision_f32(false);
        }
        let p = probes.len() / dim;
        let t = Tensor::from_slice(probes, (p, dim), device).map_err(device_err("uploading the probes"))?;
        Ok(CandleScorer { probes: t, p, dim, width, lock: Mutex::new(()) })
    }

    /// One padded block (`rows` holds at most `width` rows) → P × width scores on the host.
    fn block(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let full: std::borrow::Cow<[f32]> = if rows.len() < self.width * self.dim {
            let mut v = rows.to_vec();
            v.resize(self.width * self.dim, 0.0);
            v.into()
        } else {
            rows.into()
        };
        // A poisoned lock only means another block failed; that error is already on its way.
        let _turn = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let g = Tensor::from_slice(&full, (self.width, self.dim), self.probes.device())
            .map_err(device_err("uploading a gallery block"))?;
        let s = self
            .probes
            .matmul(&g.t().map_err(device_err("transposing a gallery block"))?)
            .map_err(device_err("multiplying"))?;
        s.flatten_all().and_then(|s| s.to_vec1::<f32>()).map_err(device_err("copying the scores back"))
    }
}

impl BlockScorer for CandleScorer {
    fn probes(&self) -> usize {
        self.p
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn score(&self, gallery: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        debug_assert_eq!(gallery.len(), n * self.dim);
        debug_assert_eq!(out.len(), self.p * n);
        if n == self.width {
            // The usual call (one scan block): the block's scores are the output as they are.
            out.copy_from_slice(&self.block(gallery)?);
            return Ok(());
        }
        for lo in (0..n).step_by(self.width) {
            let hi = (lo + self.width).min(n);
            let s = self.block(&gallery[lo * self.dim..hi * self.dim])?;
            for a in 0..self.p {
                out[a * n + lo..a * n + hi].copy_from_slice(&s[a * self.width..a * self.width + hi - lo]);
            }
        }
        Ok(())
    }
    fn kernel(&self) -> String {
        match self.probes.device().location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuBLAS f32 GEMM via candle (cuda:{gpu_id})"),
            other => format!("candle f32 matmul ({other:?})").to_lowercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::tests::random;
    use crate::score::{check_position_independence, gemm_scores, CpuScorer};
    use rand::{Rng, SeedableRng};

    /// Small integers: every product and partial sum is exact, so any kernel gives the same bits.
    fn integers(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..rows * dim).map(|_| rng.gen_range(-3i32..=3) as f32).collect()
    }

    #[test]
    fn agrees_with_faer_and_is_exact_on_integers() {
        let dim = 64;
        let cpu = Device::Cpu;
        for (probes, gallery, tol) in
            [(random(9, dim, 1), random(300, dim, 2), 1e-6f32), (integers(9, dim, 3), integers(300, dim, 4), 0.0)]
        {
            let s = CandleScorer::new(&probes, dim, 128, &cpu).unwrap();
            assert_eq!((s.probes(), s.dim()), (9, dim));
            let mut got = vec![f32::NAN; 9 * 300];
            s.score(&gallery, 300, &mut got).unwrap();
            let mut want = vec![0f32; 9 * 300];
            CpuScorer::new(&probes, dim).score(&gallery, 300, &mut want).unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= tol, "{g} vs {w}");
            }
        }
    }

    /// The property the module promises (see `score`), with blocks padded to 256 rows.
    #[test]
    fn scores_do_not_depend_on_position_or_call_width() {
        let dim = 512;
        let probes = random(13, dim, 5);
        let gallery = random(700, dim, 6);
        let s = CandleScorer::new(&probes, dim, 256, &Device::Cpu).unwrap();
        let copies = [(0usize, 3usize), (255, 12), (256, 0), (699, 7)];
        let widths = [1usize, 2, 31, 256, 300].into_iter();
        let pg = check_position_independence(&s, &probes, gallery, &copies, widths, &[0, 5, usize::MAX]).unwrap();
        // And close to the faer kernel's (on the gallery with the copies planted).
        let mut want = vec![0f32; 13 * 700];
        let mut planted = random(700, dim, 6);
        for (g, p) in copies {
            planted[g * dim..(g + 1) * dim].copy_from_slice(&probes[p * dim..(p + 1) * dim]);
        }
        gemm_scores(&probes, 13, &planted, 700, dim, &mut want);
        assert!(pg.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-6));
        assert_eq!(s.kernel(), "candle f32 matmul (cpu)");
    }

    #[test]
    fn ragged_probes_are_refused() {
        let e = CandleScorer::new(&[0.0; 10], 4, 8, &Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("10 probe values") && e.contains("4-D"), "{e}");
    }
}

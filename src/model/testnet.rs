//! `test-net`: a tiny deterministic network for tests and demos of the extraction pipeline.
//! Not a face model: 8×8 average pooling of the 112×112 input, then a linear map to 16 values
//! followed by `tanh`. The weights follow a fixed formula seeded by the blake3 of the "weights"
//! file, so any file works as weights and a different file is a different model.

use super::meta::{impl_face_embedder, Meta};
use super::{candle_err, InputSpec};
use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use std::path::Path;

pub const ARCH: &str = "test-net";
const DIM: usize = 16;
const POOL: usize = 8;

pub struct TestNet {
    meta: Meta,
    /// `(features, DIM)` in the network dtype, on the device.
    weight: Tensor,
}

impl TestNet {
    pub fn load(weights: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let bytes = crate::io::read_input(weights, crate::io::Role::MODEL)?;
        let mut h = blake3::Hasher::new();
        h.update(ARCH.as_bytes()).update(b"\0").update(&bytes);
        let hash = h.finalize();
        let seed = u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap_or_default());
        let phase = (seed % 10_000) as f64 / 10_000.0 * std::f64::consts::TAU;
        let input = InputSpec::arcface();
        let features = 3 * (input.height / POOL) * (input.width / POOL);
        // Left-right asymmetric by construction (depends on j, the flattened position), so a
        // mirrored image embeds differently.
        let w: Vec<f32> = (0..features * DIM)
            .map(|k| {
                let (j, i) = ((k / DIM) as f64, (k % DIM) as f64);
                ((j * 0.37 + i * 1.13 + phase).sin() * 0.05) as f32
            })
            .collect();
        let weight = Tensor::from_vec(w, (features, DIM), device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(candle_err(format!("{ARCH}: building the weights")))?;
        let fingerprint = hash.to_hex().to_string();
        let meta = Meta { arch: ARCH.into(), input, dim: DIM, fingerprint, device: device.clone(), dtype };
        Ok(TestNet { meta, weight })
    }

    fn run(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.to_dtype(DType::F32)?.avg_pool2d(POOL)?.flatten_from(1)?;
        x.to_dtype(self.meta.dtype)?.matmul(&self.weight)?.tanh()
    }
}

impl_face_embedder!(TestNet);

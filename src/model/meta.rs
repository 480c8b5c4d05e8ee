//! What every loaded network carries besides its layers, and the input/output handling around
//! `forward` that they share.

use super::InputSpec;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};

pub struct Meta {
    pub arch: String,
    pub input: InputSpec,
    pub dim: usize,
    pub fingerprint: String,
    pub device: Device,
    pub dtype: DType,
}

impl Meta {
    /// Checks `(N, 3, H, W)` against the input spec and moves the batch to the network's device/dtype.
    pub fn prepare(&self, batch: &Tensor) -> Result<Tensor> {
        let dims = batch.dims();
        if dims.len() != 4 || dims[1] != 3 || dims[2] != self.input.height || dims[3] != self.input.width {
            return Err(Error::Invalid(format!(
                "{}: input batch has shape {dims:?}, expected (N, 3, {}, {})",
                self.arch, self.input.height, self.input.width
            )));
        }
        batch
            .to_device(&self.device)
            .and_then(|t| t.to_dtype(self.dtype))
            .map_err(super::candle_err(format!("{}: moving the batch to {:?}", self.arch, self.device)))
    }

    /// `(N, D)` f32 on the CPU.
    pub fn finish(&self, out: Tensor) -> Result<Tensor> {
        out.to_dtype(DType::F32)
            .and_then(|t| t.to_device(&Device::Cpu))
            .map_err(super::candle_err(format!("{}: reading embeddings back", self.arch)))
    }
}

/// Implements [`super::FaceEmbedder`] for a network struct with a `meta: Meta` field and a
/// `run(&self, &Tensor) -> candle_core::Result<Tensor>` method.
macro_rules! impl_face_embedder {
    ($t:ty) => {
        impl $crate::model::FaceEmbedder for $t {
            fn arch(&self) -> &str {
                &self.meta.arch
            }
            fn input(&self) -> &$crate::model::InputSpec {
                &self.meta.input
            }
            fn embedding_dim(&self) -> usize {
                self.meta.dim
            }
            fn fingerprint(&self) -> &str {
                &self.meta.fingerprint
            }
            fn device(&self) -> &candle_core::Device {
                &self.meta.device
            }
            fn dtype(&self) -> candle_core::DType {
                self.meta.dtype
            }
            fn forward(&self, batch: &candle_core::Tensor) -> $crate::Result<candle_core::Tensor> {
                let x = self.meta.prepare(batch)?;
                let y = self.run(&x).map_err($crate::model::candle_err(format!("{} forward", self.meta.arch)))?;
                self.meta.finish(y)
            }
        }
    };
}
pub(crate) use impl_face_embedder;

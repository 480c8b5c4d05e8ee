//! Face-embedding networks (the "student" side): one file per architecture, weights addressed by
//! their original names (PyTorch state-dict keys, dlib's serialisation order).
//!
//! Every network implements [`FaceEmbedder`]; the image pipeline (`crate::image`) produces
//! `(N, 3, H, W)` float tensors already normalised by the network's own [`InputSpec`], and the
//! extractor (`crate::embed`) batches them through `forward` into the embedding store.

use candle_core::{DType, Device, Tensor};

pub mod testnet;

/// Colour order of the input planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// What a network expects: pixel size and per-channel normalisation `(x - mean[c]) / std[c]`
/// applied to 0..255 pixel values, in the network's channel order. Part of the model definition,
/// not of the dataset: insightface models use mean=std=127.5, dlib subtracts its own means and
/// divides by 256, old MXNet exports take raw 0..255 (mean 0, std 1).
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub height: usize,
    pub width: usize,
    pub channels: ChannelOrder,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl InputSpec {
    /// The ArcFace convention: 112×112 RGB, `(x/255 − 0.5)/0.5`.
    pub fn arcface() -> Self {
        InputSpec { height: 112, width: 112, channels: ChannelOrder::Rgb, mean: [127.5; 3], std: [127.5; 3] }
    }
}

/// A loaded network, ready to embed batches on its device.
pub trait FaceEmbedder: Send + Sync {
    /// Architecture name as the user types it (`mobilefacenet`, `iresnet50`, `dlib-resnet`, …).
    fn arch(&self) -> &str;
    /// Input geometry and normalisation.
    fn input(&self) -> &InputSpec;
    /// Length of one embedding.
    fn embedding_dim(&self) -> usize;
    /// blake3 of the weight file(s) plus the architecture name: identifies the model in store
    /// fingerprints and results.json.
    fn fingerprint(&self) -> &str;
    fn device(&self) -> &Device;
    fn dtype(&self) -> DType;
    /// `batch`: `(N, 3, H, W)` f32 on any device, normalised per [`InputSpec`].
    /// Returns `(N, D)` f32 raw (not L2-normalised) embeddings on the CPU.
    fn forward(&self, batch: &Tensor) -> crate::Result<Tensor>;
}

/// Map a candle error to ours, saying which model and what it was doing.
pub fn candle_err(context: impl std::fmt::Display) -> impl FnOnce(candle_core::Error) -> crate::Error {
    move |e| crate::Error::Invalid(format!("{context}: {e}"))
}

/// Architectures `load` knows, for `--help` and error messages.
pub const ARCHITECTURES: &[&str] = &[];

/// Loads a network from `weights` (`.pth` state dict, `.safetensors`, dlib `.dat`, …). `arch` names the
/// architecture when the file does not identify it. Each network file adds its arm here.
pub fn load(
    weights: &std::path::Path,
    arch: Option<&str>,
    device: &Device,
    dtype: DType,
) -> crate::Result<Box<dyn FaceEmbedder>> {
    // The fixed-formula network the extraction tests run end to end (not a face model).
    if arch == Some(testnet::ARCH) {
        return Ok(Box::new(testnet::TestNet::load(weights, device, dtype)?));
    }
    Err(crate::Error::Config(format!(
        "cannot load {}: architecture {:?} is not one of {:?}",
        weights.display(),
        arch,
        ARCHITECTURES
    )))
}

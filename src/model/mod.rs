//! Face-embedding networks (the "student" side): one file per architecture, weights addressed by
//! their original names (PyTorch state-dict keys, dlib's serialisation order).
//!
//! Every network implements [`FaceEmbedder`]; the image pipeline (`crate::image`) produces
//! `(N, 3, H, W)` float tensors already normalised by the network's own [`InputSpec`], and the
//! extractor (`crate::embed`) batches them through `forward` into the embedding store.

use candle_core::{DType, Device, Tensor};

pub mod arcface_torch;
pub mod device;
pub mod dlib_resnet;
pub mod dlib_serialize;
pub mod iresnet;
mod meta;
pub mod mobilefacenet;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod ops;
pub mod testnet;
pub mod weights;

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

/// Architectures `load` knows, for error messages.
pub fn architectures() -> Vec<&'static str> {
    let mut names = arcface_torch::NAMES.to_vec();
    // dlib's face-recognition ResNet, then the fixed-formula network of the extraction tests.
    names.extend([dlib_resnet::ARCH, testnet::ARCH]);
    #[cfg(feature = "onnx")]
    names.push(onnx::ARCH);
    names
}

/// An `.onnx` file (ONNX export): the graph defines the network, whatever `--arch` says.
pub fn is_onnx_path(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// ONNX files and `--arch onnx`: candle-onnx behind the `onnx` feature.
fn load_onnx(
    weights: &std::path::Path,
    arch: Option<&str>,
    device: &Device,
    dtype: DType,
) -> crate::Result<Box<dyn FaceEmbedder>> {
    if let Some(a) = arch.filter(|a| !a.eq_ignore_ascii_case("onnx")) {
        return Err(crate::Error::Config(format!(
            "{} is an ONNX graph, which defines its own architecture: drop --arch {a} or pass --arch onnx",
            weights.display()
        )));
    }
    #[cfg(feature = "onnx")]
    return Ok(Box::new(onnx::OnnxNet::load(weights, device, dtype)?));
    #[cfg(not(feature = "onnx"))]
    {
        let _ = (device, dtype);
        Err(crate::Error::Config(format!(
            "cannot load {}: this build has no ONNX support; rebuild with `cargo build --release --features onnx` \
             (needs protoc: Debian package protobuf-compiler)",
            weights.display()
        )))
    }
}

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
    if is_onnx_path(weights) || arch.is_some_and(|a| a.eq_ignore_ascii_case("onnx")) {
        return load_onnx(weights, arch, device, dtype);
    }
    if arcface_torch::handles(weights, arch) {
        return arcface_torch::load(weights, arch, device, dtype);
    }
    if dlib_resnet::claims(weights, arch)? {
        return Ok(Box::new(dlib_resnet::DlibResnet::load(weights, device, dtype)?));
    }
    Err(crate::Error::Config(format!(
        "cannot load {}: {}; architectures: {}",
        weights.display(),
        match arch {
            Some(a) => format!("unknown architecture '{a}'"),
            None => "the file type does not say which network it holds (give --arch)".to_string(),
        },
        architectures().join(", ")
    )))
}

#[cfg(all(test, not(feature = "onnx")))]
mod tests {
    #[test]
    fn onnx_files_ask_for_the_onnx_feature() {
        let e = super::load(std::path::Path::new("w600k_r50.onnx"), None, &super::Device::Cpu, super::DType::F32)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("w600k_r50.onnx") && e.contains("--features onnx") && e.contains("protoc"), "{e}");
    }
}

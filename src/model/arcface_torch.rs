//! Loading insightface `arcface_torch` backbones (IResNet, MobileFaceNet) from `backbone.pth` or
//! `.safetensors` state dicts: the architecture is read off the key names and shapes; `arch`, when
//! given, must agree with it.

use super::iresnet::{IResNet, IResNetConfig};
use super::mobilefacenet::{MobileFaceNet, MobileFaceNetConfig};
use super::weights::{fingerprint, StateDict};
use super::FaceEmbedder;
use crate::{Error, Result};
use candle_core::{DType, Device};
use std::path::Path;

/// Architecture names (and insightface's short aliases) this module loads.
pub const NAMES: &[&str] = &[
    "iresnet18",
    "iresnet34",
    "iresnet50",
    "iresnet100",
    "iresnet200",
    "mobilefacenet",
    "mobilefacenet-large",
    "liaad-student",
];

fn canonical(arch: &str) -> Option<&'static str> {
    let a = arch.to_ascii_lowercase();
    let alias = match a.as_str() {
        "r18" => "iresnet18",
        "r34" => "iresnet34",
        "r50" => "iresnet50",
        "r100" => "iresnet100",
        "r200" => "iresnet200",
        "mbf" => "mobilefacenet",
        "mbf_large" | "mbf-large" => "mobilefacenet-large",
        other => other,
    };
    NAMES.iter().copied().find(|n| *n == alias)
}

/// Whether this module handles `arch` (or, without one, the file type).
pub fn handles(weights: &Path, arch: Option<&str>) -> bool {
    match arch {
        Some(a) => canonical(a).is_some(),
        None => weights
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["pth", "pt", "safetensors"].contains(&e.to_ascii_lowercase().as_str())),
    }
}

pub fn load(weights: &Path, arch: Option<&str>, device: &Device, dtype: DType) -> Result<Box<dyn FaceEmbedder>> {
    let sd = StateDict::load(weights)?;
    let wanted =
        match arch {
            Some(a) => Some(canonical(a).ok_or_else(|| {
                Error::Config(format!("unknown architecture {a:?}; arcface_torch networks: {NAMES:?}"))
            })?),
            None => None,
        };
    let is_iresnet = sd.contains("fc.weight") && sd.contains("conv1.weight");
    let is_mbf = sd.contains("features.layers.2.weight") && sd.contains("layers.0.layers.0.weight");
    let want_iresnet = wanted.map(|w| w.starts_with("iresnet"));
    if is_iresnet && want_iresnet != Some(false) {
        let cfg = IResNetConfig::detect(&sd)?;
        let fp = fingerprint(&cfg.name(), weights)?;
        let expect = wanted.and_then(IResNetConfig::by_name);
        return Ok(Box::new(IResNet::from_state_dict(&sd, expect, fp, device, dtype)?));
    }
    if is_mbf && want_iresnet != Some(true) {
        let cfg = MobileFaceNetConfig::detect(&sd)?;
        let fp = fingerprint(&cfg.name(), weights)?;
        let expect = wanted.and_then(MobileFaceNetConfig::by_name);
        return Ok(Box::new(MobileFaceNet::from_state_dict(&sd, expect, fp, device, dtype)?));
    }
    let found = if is_iresnet {
        "an IResNet"
    } else if is_mbf {
        "a MobileFaceNet"
    } else {
        "neither an arcface_torch IResNet (conv1/layerN/fc) nor a MobileFaceNet (layers.N/conv_sep/features)"
    };
    Err(Error::data(
        weights,
        format!("state dict holds {found}{}", wanted.map(|w| format!(", but {w} was asked for")).unwrap_or_default()),
    ))
}

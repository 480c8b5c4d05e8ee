//! IResNet-18/34/50/100/200 in insightface `arcface_torch`'s layout (`backbones/iresnet.py`),
//! weights addressed by its PyTorch state-dict keys.
//!
//! Stem: 3×3 conv (64) → BN → PReLU. Four stages of IBasicBlocks (64/128/256/512 wide, the first
//! block of each with stride 2 and a 1×1 conv + BN downsample): BN → 3×3 conv → BN → PReLU →
//! 3×3 conv (stride) → BN, plus the identity. Head: BN2d → flatten (512·7·7) → dropout (identity
//! at eval) → Linear → BatchNorm1d. BatchNorms after a conv are folded; the block's leading BN is
//! applied while gathering conv1's patches; the head's two BatchNorms are folded into the Linear.

use super::meta::{impl_face_embedder, Meta};
use super::ops::{fold_output_affine, Conv, ConvParams, Linear};
use super::weights::{bn_keys, Affine, StateDict};
use super::InputSpec;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;

const WIDTHS: [usize; 4] = [64, 128, 256, 512];
/// Spatial size of the last stage for 112×112 inputs.
const FC_SCALE: usize = 7 * 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IResNetConfig {
    /// IBasicBlocks per stage.
    pub layers: [usize; 4],
    pub embedding_dim: usize,
}

impl IResNetConfig {
    pub const NAMED: [(&'static str, [usize; 4]); 5] = [
        ("iresnet18", [2, 2, 2, 2]),
        ("iresnet34", [3, 4, 6, 3]),
        ("iresnet50", [3, 4, 14, 3]),
        ("iresnet100", [3, 13, 30, 3]),
        ("iresnet200", [6, 26, 60, 6]),
    ];

    pub fn by_name(name: &str) -> Option<Self> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, layers)| IResNetConfig { layers: *layers, embedding_dim: 512 })
    }

    pub fn name(&self) -> String {
        match Self::NAMED.iter().find(|(_, l)| *l == self.layers) {
            Some((n, _)) => n.to_string(),
            None => format!("iresnet(layers {:?})", self.layers),
        }
    }

    /// Reads the configuration off a state dict: blocks per stage and the embedding size.
    pub fn detect(sd: &StateDict) -> Result<Self> {
        let fc =
            sd.dims("fc.weight").ok_or_else(|| Error::data(sd.path(), "missing weight fc.weight (IResNet head)"))?;
        let layers = [1, 2, 3, 4].map(|i| sd.indices(&format!("layer{i}.")).len());
        if fc.len() != 2 || layers.contains(&0) {
            return Err(Error::data(sd.path(), format!("not an IResNet: fc {fc:?}, blocks per stage {layers:?}")));
        }
        Ok(IResNetConfig { layers, embedding_dim: fc[0] })
    }

    /// Every state-dict key with its shape, as arcface_torch names them.
    pub fn state_dict_layout(&self) -> BTreeMap<String, Vec<usize>> {
        let mut m = BTreeMap::new();
        m.insert("conv1.weight".into(), vec![64, 3, 3, 3]);
        bn_keys(&mut m, "bn1", 64);
        m.insert("prelu.weight".into(), vec![64]);
        let mut inplanes = 64;
        for (i, (&n, &planes)) in self.layers.iter().zip(&WIDTHS).enumerate() {
            for j in 0..n {
                let p = format!("layer{}.{j}", i + 1);
                bn_keys(&mut m, &format!("{p}.bn1"), inplanes);
                m.insert(format!("{p}.conv1.weight"), vec![planes, inplanes, 3, 3]);
                bn_keys(&mut m, &format!("{p}.bn2"), planes);
                m.insert(format!("{p}.prelu.weight"), vec![planes]);
                m.insert(format!("{p}.conv2.weight"), vec![planes, planes, 3, 3]);
                bn_keys(&mut m, &format!("{p}.bn3"), planes);
                if j == 0 {
                    m.insert(format!("{p}.downsample.0.weight"), vec![planes, inplanes, 1, 1]);
                    bn_keys(&mut m, &format!("{p}.downsample.1"), planes);
                }
                inplanes = planes;
            }
        }
        bn_keys(&mut m, "bn2", 512);
        m.insert("fc.weight".into(), vec![self.embedding_dim, 512 * FC_SCALE]);
        m.insert("fc.bias".into(), vec![self.embedding_dim]);
        bn_keys(&mut m, "features", self.embedding_dim);
        m
    }
}

struct Block {
    conv1: Conv,
    conv2: Conv,
    downsample: Option<Conv>,
}

pub struct IResNet {
    meta: Meta,
    pub config: IResNetConfig,
    stem: Conv,
    blocks: Vec<Block>,
    head: Linear,
}

impl IResNet {
    pub fn from_state_dict(
        sd: &StateDict,
        expect: Option<IResNetConfig>,
        fingerprint: String,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let config = IResNetConfig::detect(sd)?;
        if let Some(e) = expect {
            if e.layers != config.layers {
                return Err(Error::data(
                    sd.path(),
                    format!("holds an {} but {} was asked for", config.name(), e.name()),
                ));
            }
        }
        let layout = config.state_dict_layout();
        sd.check_no_extra(&layout, &config.name())?;
        for (k, dims) in &layout {
            if !k.ends_with("num_batches_tracked") {
                sd.get(k, dims)?;
            }
        }
        let stem = Conv::new(ConvParams::load(sd, "conv1.weight", 3, 1, Some("bn1"), Some("prelu"))?, device, dtype)?;
        let mut blocks = Vec::new();
        let mut inplanes = 64;
        for (i, (&n, &planes)) in config.layers.iter().zip(&WIDTHS).enumerate() {
            for j in 0..n {
                let p = format!("layer{}.{j}", i + 1);
                let stride = if j == 0 { 2 } else { 1 };
                let mut c1 = ConvParams::load(
                    sd,
                    &format!("{p}.conv1.weight"),
                    inplanes,
                    1,
                    Some(&format!("{p}.bn2")),
                    Some(&format!("{p}.prelu")),
                )?;
                c1.pre = Some(Affine::batch_norm(sd, &format!("{p}.bn1"), inplanes)?);
                let c2 = ConvParams::load(
                    sd,
                    &format!("{p}.conv2.weight"),
                    planes,
                    stride,
                    Some(&format!("{p}.bn3")),
                    None,
                )?;
                let downsample = if j == 0 {
                    let d = ConvParams::load(
                        sd,
                        &format!("{p}.downsample.0.weight"),
                        inplanes,
                        stride,
                        Some(&format!("{p}.downsample.1")),
                        None,
                    )?;
                    Some(Conv::new(d, device, dtype)?)
                } else {
                    None
                };
                blocks.push(Block {
                    conv1: Conv::new(c1, device, dtype)?,
                    conv2: Conv::new(c2, device, dtype)?,
                    downsample,
                });
                inplanes = planes;
            }
        }
        let head = Linear::new_folded_head(sd, config.embedding_dim, device, dtype)?;
        let meta = Meta {
            arch: config.name(),
            input: InputSpec::arcface(),
            dim: config.embedding_dim,
            fingerprint,
            device: device.clone(),
            dtype,
        };
        Ok(IResNet { meta, config, stem, blocks, head })
    }

    fn run(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.stem.forward(x, None)?;
        for b in &self.blocks {
            let identity = match &b.downsample {
                Some(d) => d.forward(&x, None)?,
                None => x.clone(),
            };
            let y = b.conv1.forward(&x, None)?;
            x = b.conv2.forward(&y, Some(&identity))?;
        }
        self.head.forward(&x.flatten_from(1)?)
    }
}

impl Linear {
    /// `features(fc(flatten(bn2(x))))` as one Linear: `bn2` scales/shifts the fc inputs of each of
    /// the 512 channels (49 positions each), `features` the outputs (sums in f64).
    fn new_folded_head(sd: &StateDict, d: usize, device: &Device, dtype: DType) -> Result<Self> {
        let n_in = 512 * FC_SCALE;
        let bn2 = Affine::batch_norm(sd, "bn2", 512)?;
        let mut w = sd.vec("fc.weight", &[d, n_in])?;
        let mut b = sd.vec("fc.bias", &[d])?;
        for (row, bo) in w.chunks_mut(n_in).zip(b.iter_mut()) {
            let mut acc = *bo as f64;
            for (i, v) in row.iter_mut().enumerate() {
                let c = i / FC_SCALE;
                acc += *v as f64 * bn2.shift[c];
                *v = (*v as f64 * bn2.scale[c]) as f32;
            }
            *bo = acc as f32;
        }
        fold_output_affine(&mut w, &mut b, &Affine::batch_norm(sd, "features", d)?);
        Linear::new(w, b, device, dtype)
    }
}

impl_face_embedder!(IResNet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (n, _) in IResNetConfig::NAMED {
            assert_eq!(IResNetConfig::by_name(n).map(|c| c.name()), Some(n.to_string()));
        }
        assert_eq!(IResNetConfig { layers: [1, 1, 1, 1], embedding_dim: 512 }.name(), "iresnet(layers [1, 1, 1, 1])");
    }
}

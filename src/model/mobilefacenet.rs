//! MobileFaceNet in insightface `arcface_torch`'s layout (`backbones/mobilefacenet.py`), weights
//! addressed by its PyTorch state-dict keys.
//!
//! `layers.0` 3×3/2 ConvBlock → `layers.1` grouped 3×3 ConvBlock (64 groups) or a Residual stack →
//! DepthWise/2 → Residual → DepthWise/2 (widening) → Residual → DepthWise/2 → Residual →
//! `conv_sep` 1×1 → GDC (7×7 depthwise, Linear without bias, BatchNorm1d). A DepthWise unit is
//! 1×1 expand (ConvBlock) → 3×3 depthwise (ConvBlock) → 1×1 project (LinearBlock: no PReLU), plus
//! the input when residual. Every BatchNorm follows a convolution or the linear layer and is folded.

use super::meta::{impl_face_embedder, Meta};
use super::ops::{fold_output_affine, Conv, ConvParams, Linear};
use super::weights::{bn_keys, Affine, StateDict};
use super::InputSpec;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;

/// Width and depth of an arcface_torch MobileFaceNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MobileFaceNetConfig {
    /// Residual units in the four stages (`blocks[0] == 1`: a grouped ConvBlock instead).
    pub blocks: [usize; 4],
    /// Channel multiplier: stages are `64·scale` and `128·scale` wide.
    pub scale: usize,
    pub embedding_dim: usize,
}

impl MobileFaceNetConfig {
    /// `get_mbf`: the standard arcface_torch MobileFaceNet.
    pub const MBF: Self = MobileFaceNetConfig { blocks: [1, 4, 6, 2], scale: 2, embedding_dim: 512 };
    /// `get_mbf_large`.
    pub const LARGE: Self = MobileFaceNetConfig { blocks: [2, 8, 12, 4], scale: 4, embedding_dim: 512 };
    /// Lightweight student for LIAAD-style distillation: the MobileFaceNet layout at the original
    /// paper's width (64/128 channels, true depthwise second layer), 512-D like its teachers.
    pub const LIAAD_STUDENT: Self = MobileFaceNetConfig { blocks: [1, 4, 6, 2], scale: 1, embedding_dim: 512 };

    /// Named configurations: `(name, config)`.
    pub const NAMED: [(&'static str, Self); 3] =
        [("mobilefacenet", Self::MBF), ("mobilefacenet-large", Self::LARGE), ("liaad-student", Self::LIAAD_STUDENT)];

    pub fn by_name(name: &str) -> Option<Self> {
        Self::NAMED.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    /// The configuration's name, or a description when it has none.
    pub fn name(&self) -> String {
        match Self::NAMED.iter().find(|(_, c)| c == self) {
            Some((n, _)) => n.to_string(),
            None => format!("mobilefacenet(blocks {:?}, scale {}, {}-D)", self.blocks, self.scale, self.embedding_dim),
        }
    }

    /// Reads the configuration off a state dict's key names and shapes.
    pub fn detect(sd: &StateDict) -> Result<Self> {
        let stem = sd.conv_dims("layers.0.layers.0.weight")?;
        let head = sd.dims("features.layers.2.weight").ok_or_else(|| {
            Error::data(sd.path(), "missing weight features.layers.2.weight (MobileFaceNet GDC linear)")
        })?;
        if stem[0] % 64 != 0 || stem[0] == 0 || head.len() != 2 {
            return Err(Error::data(sd.path(), format!("stem {stem:?} / head {head:?} is not a MobileFaceNet")));
        }
        let count = |i: usize| sd.indices(&format!("layers.{i}.layers.")).len();
        let first = if sd.contains("layers.1.layers.0.weight") { 1 } else { count(1) };
        Ok(MobileFaceNetConfig {
            blocks: [first, count(3), count(5), count(7)],
            scale: stem[0] / 64,
            embedding_dim: head[0],
        })
    }

    /// The units in order, as PyTorch builds them.
    fn units(&self) -> Vec<Unit> {
        let (c1, c2) = (64 * self.scale, 128 * self.scale);
        let mut u = vec![Unit::Plain(ConvDesc::block("layers.0", 3, c1, 3, 2, 1, true))];
        if self.blocks[0] == 1 {
            u.push(Unit::Plain(ConvDesc::block("layers.1", c1, c1, 3, 1, 64, true)));
        } else {
            residual(&mut u, "layers.1", c1, self.blocks[0], 128);
        }
        u.push(depthwise("layers.2", c1, c1, 128, 2, false));
        residual(&mut u, "layers.3", c1, self.blocks[1], 128);
        u.push(depthwise("layers.4", c1, c2, 256, 2, false));
        residual(&mut u, "layers.5", c2, self.blocks[2], 256);
        u.push(depthwise("layers.6", c2, c2, 512, 2, false));
        residual(&mut u, "layers.7", c2, self.blocks[3], 256);
        u.push(Unit::Plain(ConvDesc::block("conv_sep", c2, 512, 1, 1, 1, true)));
        u
    }

    /// Every state-dict key with its shape, as arcface_torch names them.
    pub fn state_dict_layout(&self) -> BTreeMap<String, Vec<usize>> {
        let mut m = BTreeMap::new();
        for unit in self.units() {
            for c in unit.convs() {
                c.keys(&mut m);
            }
        }
        gdc().keys(&mut m);
        m.insert("features.layers.2.weight".into(), vec![self.embedding_dim, 512]);
        bn_keys(&mut m, "features.layers.3", self.embedding_dim);
        m
    }
}

/// One ConvBlock/LinearBlock: conv at `{prefix}.layers.0`, BatchNorm at `.layers.1`, PReLU at `.layers.2`.
struct ConvDesc {
    prefix: String,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    prelu: bool,
}

impl ConvDesc {
    fn block(prefix: &str, cin: usize, cout: usize, k: usize, stride: usize, groups: usize, prelu: bool) -> Self {
        ConvDesc { prefix: prefix.to_string(), cin, cout, k, stride, groups, prelu }
    }

    fn keys(&self, m: &mut BTreeMap<String, Vec<usize>>) {
        let p = &self.prefix;
        m.insert(format!("{p}.layers.0.weight"), vec![self.cout, self.cin / self.groups, self.k, self.k]);
        bn_keys(m, &format!("{p}.layers.1"), self.cout);
        if self.prelu {
            m.insert(format!("{p}.layers.2.weight"), vec![self.cout]);
        }
    }

    fn load(&self, sd: &StateDict, device: &Device, dtype: DType) -> Result<Conv> {
        let p = &self.prefix;
        let prelu = format!("{p}.layers.2");
        let mut params = ConvParams::load(
            sd,
            &format!("{p}.layers.0.weight"),
            self.cin,
            self.stride,
            Some(&format!("{p}.layers.1")),
            self.prelu.then_some(prelu.as_str()),
        )?;
        let [cout, cing, k, _] = sd.conv_dims(&format!("{p}.layers.0.weight"))?;
        if (cout, cing, k) != (self.cout, self.cin / self.groups, self.k) {
            return Err(Error::data(sd.path(), format!("{p}.layers.0.weight does not fit the detected MobileFaceNet")));
        }
        if self.k == 7 {
            params.geom.pad = 0; // GDC: 7×7 over the 7×7 map, no padding
        }
        Conv::new(params, device, dtype)
    }
}

fn gdc() -> ConvDesc {
    ConvDesc::block("features.layers.0", 512, 512, 7, 1, 512, false)
}

enum Unit {
    Plain(ConvDesc),
    DepthWise { expand: ConvDesc, dw: ConvDesc, project: ConvDesc, residual: bool },
}

impl Unit {
    fn convs(&self) -> Vec<&ConvDesc> {
        match self {
            Unit::Plain(c) => vec![c],
            Unit::DepthWise { expand, dw, project, .. } => vec![expand, dw, project],
        }
    }
}

fn depthwise(prefix: &str, cin: usize, cout: usize, groups: usize, stride: usize, residual: bool) -> Unit {
    Unit::DepthWise {
        expand: ConvDesc::block(&format!("{prefix}.layers.0"), cin, groups, 1, 1, 1, true),
        dw: ConvDesc::block(&format!("{prefix}.layers.1"), groups, groups, 3, stride, groups, true),
        project: ConvDesc::block(&format!("{prefix}.layers.2"), groups, cout, 1, 1, 1, false),
        residual,
    }
}

fn residual(u: &mut Vec<Unit>, prefix: &str, c: usize, n: usize, groups: usize) {
    for j in 0..n {
        u.push(depthwise(&format!("{prefix}.layers.{j}"), c, c, groups, 1, true));
    }
}

// A few dozen layers per network: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Layer {
    Plain(Conv),
    DepthWise { expand: Conv, dw: Conv, project: Conv, residual: bool },
}

pub struct MobileFaceNet {
    meta: Meta,
    pub config: MobileFaceNetConfig,
    layers: Vec<Layer>,
    gdc: Conv,
    head: Linear,
}

impl MobileFaceNet {
    /// Builds the network from a state dict whose layout gives the configuration; `expect`, when
    /// given, must equal it.
    pub fn from_state_dict(
        sd: &StateDict,
        expect: Option<MobileFaceNetConfig>,
        fingerprint: String,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let config = MobileFaceNetConfig::detect(sd)?;
        if let Some(e) = expect {
            if e != config {
                return Err(Error::data(
                    sd.path(),
                    format!("holds a {} but {} was asked for", config.name(), e.name()),
                ));
            }
        }
        let layout = config.state_dict_layout();
        sd.check_no_extra(&layout, &config.name())?;
        let layers = config
            .units()
            .into_iter()
            .map(|u| {
                Ok(match u {
                    Unit::Plain(c) => Layer::Plain(c.load(sd, device, dtype)?),
                    Unit::DepthWise { expand, dw, project, residual } => Layer::DepthWise {
                        expand: expand.load(sd, device, dtype)?,
                        dw: dw.load(sd, device, dtype)?,
                        project: project.load(sd, device, dtype)?,
                        residual,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let gdc = gdc().load(sd, device, dtype)?;
        let d = config.embedding_dim;
        let mut w = sd.vec("features.layers.2.weight", &[d, 512])?;
        let mut b = vec![0f32; d];
        fold_output_affine(&mut w, &mut b, &Affine::batch_norm(sd, "features.layers.3", d)?);
        let head = Linear::new(w, b, device, dtype)?;
        let meta = Meta {
            arch: config.name(),
            input: InputSpec::arcface(),
            dim: d,
            fingerprint,
            device: device.clone(),
            dtype,
        };
        Ok(MobileFaceNet { meta, config, layers, gdc, head })
    }

    fn run(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for l in &self.layers {
            x = match l {
                Layer::Plain(c) => c.forward(&x, None)?,
                Layer::DepthWise { expand, dw, project, residual } => {
                    let y = dw.forward(&expand.forward(&x, None)?, None)?;
                    project.forward(&y, residual.then_some(&x))?
                }
            };
        }
        let y = self.gdc.forward(&x, None)?;
        self.head.forward(&y.flatten_from(1)?)
    }
}

impl_face_embedder!(MobileFaceNet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_configs_round_trip() {
        for (n, c) in MobileFaceNetConfig::NAMED {
            assert_eq!(MobileFaceNetConfig::by_name(n), Some(c));
            assert_eq!(c.name(), n);
        }
        let odd = MobileFaceNetConfig { blocks: [1, 2, 3, 4], scale: 1, embedding_dim: 128 };
        assert!(odd.name().starts_with("mobilefacenet("));
    }

    #[test]
    fn layout_counts() {
        let l = MobileFaceNetConfig::MBF.state_dict_layout();
        // Real arcface_torch get_mbf state dict: 333 entries.
        assert_eq!(l.len(), 333);
        assert_eq!(l["layers.1.layers.0.weight"], vec![128, 2, 3, 3]);
        assert_eq!(l["features.layers.0.layers.0.weight"], vec![512, 1, 7, 7]);
        let s = MobileFaceNetConfig::LIAAD_STUDENT.state_dict_layout();
        assert_eq!(s["layers.1.layers.0.weight"], vec![64, 1, 3, 3]);
        assert_eq!(s["conv_sep.layers.0.weight"], vec![512, 128, 1, 1]);
        let g = MobileFaceNetConfig::LARGE.state_dict_layout();
        assert_eq!(g["layers.1.layers.1.layers.0.layers.0.weight"], vec![128, 256, 1, 1]);
    }
}

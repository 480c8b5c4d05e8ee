//! State dicts: PyTorch `.pth` (zip pickle, read by candle) and `.safetensors`, held on the CPU in
//! f32 and addressed by their original key names; every lookup checks the shape and names the file.

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// BatchNorm epsilon of every arcface_torch layer.
pub const BN_EPS: f64 = 1e-5;

pub struct StateDict {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl StateDict {
    /// Reads `.safetensors` by extension, anything else as a PyTorch zip checkpoint (a plain state
    /// dict, or one under a `state_dict`/`model` key; a DataParallel `module.` prefix is dropped).
    pub fn load(path: &Path) -> Result<Self> {
        std::fs::metadata(path).map_err(|e| Error::read(path, e))?;
        let is_safetensors = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let raw: Vec<(String, Tensor)> = if is_safetensors {
            candle_core::safetensors::load(path, &Device::Cpu)
                .map_err(|e| Error::data(path, format!("not a readable safetensors file: {e}")))?
                .into_iter()
                .collect()
        } else {
            let mut found = Vec::new();
            for key in [None, Some("state_dict"), Some("model")] {
                match candle_core::pickle::read_all_with_key(path, key) {
                    Ok(t) if !t.is_empty() => {
                        found = t;
                        break;
                    }
                    Ok(_) => {}
                    // Not a zip/pickle at all; a missing key is just the next guess.
                    Err(e) if key.is_none() => {
                        return Err(Error::data(
                            path,
                            format!(
                                "not a PyTorch zip checkpoint (torch.save, PyTorch >= 1.6) or safetensors file: {e}"
                            ),
                        ))
                    }
                    Err(_) => {}
                }
            }
            found
        };
        if raw.is_empty() {
            return Err(Error::data(path, "no tensors found (expected a state dict of the network's weights)"));
        }
        let strip = raw.iter().all(|(k, _)| k.starts_with("module."));
        let mut tensors = HashMap::with_capacity(raw.len());
        for (k, t) in raw {
            let k = if strip { k["module.".len()..].to_string() } else { k };
            let t = if t.dtype().is_float() {
                t.to_dtype(DType::F32).map_err(|e| Error::data(path, format!("tensor {k}: {e}")))?
            } else {
                t
            };
            tensors.insert(k, t);
        }
        Ok(StateDict { path: path.to_path_buf(), tensors })
    }

    /// A state dict built in memory (tests, generated weights); `path` only labels messages.
    pub fn from_tensors(path: &Path, tensors: HashMap<String, Tensor>) -> Self {
        StateDict { path: path.to_path_buf(), tensors }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Sorted key names.
    pub fn keys(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    /// Dimensions of `name`, if present.
    pub fn dims(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.dims())
    }

    /// Tensor `name` as f32 with exactly the dimensions `dims`.
    pub fn get(&self, name: &str, dims: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::data(&self.path, format!("missing weight {name} (expected shape {dims:?})")))?;
        if t.dims() != dims {
            return Err(Error::data(&self.path, format!("weight {name} has shape {:?}, expected {dims:?}", t.dims())));
        }
        if t.dtype() != DType::F32 {
            return Err(Error::data(&self.path, format!("weight {name} has dtype {:?}, expected a float", t.dtype())));
        }
        Ok(t.clone())
    }

    /// Tensor `name` flattened to a Vec<f32>, checked against `dims`.
    pub fn vec(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>> {
        self.get(name, dims)?.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(self.err(name))
    }

    /// A 4-D convolution weight of any shape; returns its dims.
    pub fn conv_dims(&self, name: &str) -> Result<[usize; 4]> {
        match self.dims(name) {
            Some(&[a, b, c, d]) => Ok([a, b, c, d]),
            Some(d) => Err(Error::data(&self.path, format!("weight {name} has shape {d:?}, expected 4 dimensions"))),
            None => Err(Error::data(&self.path, format!("missing convolution weight {name}"))),
        }
    }

    /// Distinct integer indices `i` among keys starting with `{prefix}{i}.`, sorted.
    pub fn indices(&self, prefix: &str) -> Vec<usize> {
        let mut set: Vec<usize> = self
            .tensors
            .keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .filter_map(|rest| rest.split('.').next())
            .filter_map(|i| i.parse().ok())
            .collect();
        set.sort_unstable();
        set.dedup();
        set
    }

    /// Every key must belong to the architecture: a stray key means a different network.
    pub fn check_no_extra(&self, expected: &BTreeMap<String, Vec<usize>>, arch: &str) -> Result<()> {
        let extra: Vec<&str> = self.keys().into_iter().filter(|k| !expected.contains_key(*k)).collect();
        if let Some(first) = extra.first() {
            return Err(Error::data(
                &self.path,
                format!("{} weight(s) do not belong to {arch}, first: {first}", extra.len()),
            ));
        }
        Ok(())
    }

    pub fn err(&self, name: &str) -> impl FnOnce(candle_core::Error) -> Error + '_ {
        let name = name.to_string();
        move |e| Error::data(&self.path, format!("weight {name}: {e}"))
    }
}

/// Eval-mode BatchNorm as a per-channel affine map `y = x·scale + shift` (computed in f64).
#[derive(Debug, Clone)]
pub struct Affine {
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
}

impl Affine {
    pub fn batch_norm(sd: &StateDict, prefix: &str, channels: usize) -> Result<Self> {
        let g = sd.vec(&format!("{prefix}.weight"), &[channels])?;
        let b = sd.vec(&format!("{prefix}.bias"), &[channels])?;
        let m = sd.vec(&format!("{prefix}.running_mean"), &[channels])?;
        let v = sd.vec(&format!("{prefix}.running_var"), &[channels])?;
        let mut scale = Vec::with_capacity(channels);
        let mut shift = Vec::with_capacity(channels);
        for c in 0..channels {
            if v[c].is_nan() || v[c] < 0.0 {
                return Err(Error::data(sd.path(), format!("{prefix}.running_var[{c}] = {} is not >= 0", v[c])));
            }
            let s = g[c] as f64 / (v[c] as f64 + BN_EPS).sqrt();
            scale.push(s);
            shift.push(b[c] as f64 - m[c] as f64 * s);
        }
        Ok(Affine { scale, shift })
    }

    pub fn len(&self) -> usize {
        self.scale.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scale.is_empty()
    }
}

/// Keys (and shapes) of one eval-mode BatchNorm in a PyTorch state dict.
pub fn bn_keys(out: &mut BTreeMap<String, Vec<usize>>, prefix: &str, c: usize) {
    for k in ["weight", "bias", "running_mean", "running_var"] {
        out.insert(format!("{prefix}.{k}"), vec![c]);
    }
    out.insert(format!("{prefix}.num_batches_tracked"), vec![]);
}

/// blake3 of the weight file, tagged with the architecture: identifies the model in stores and reports.
pub fn fingerprint(arch: &str, path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path).map_err(|e| Error::read(path, e))?;
    Ok(format!("{arch}:blake3:{}", h.finalize().to_hex()))
}

/// FNV-1a (32-bit) of a key name: the seed of its synthetic weights.
fn fnv1a32(s: &str) -> u32 {
    s.bytes().fold(0x811C_9DC5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

/// u in [0, 1) from a 32-bit integer mix of (seed, index); the same arithmetic as
/// `hash_u01` in tests/reference/iresnet_numpy.py (exact in u64 for indices below 2^32).
fn hash_u01(seed: u32, i: u64) -> f64 {
    const M: u64 = 0xFFFF_FFFF;
    let mut h = (i.wrapping_mul(2_654_435_761).wrapping_add(seed as u64)) & M;
    h ^= h >> 15;
    h = (h * 2_246_822_519) & M;
    h ^= h >> 13;
    h = (h * 3_266_489_917) & M;
    h ^= h >> 16;
    h as f64 / 4_294_967_296.0
}

/// Deterministic weights for a state-dict layout (tests and benchmarks, no weight file needed):
/// convolution/linear weights uniform with variance 1/fan_in, BatchNorm parameters near identity,
/// PReLU slopes 0.1..0.3. Bit-identical to `weight()` in tests/reference/iresnet_numpy.py.
pub fn synthetic(layout: &BTreeMap<String, Vec<usize>>) -> Result<StateDict> {
    let mut tensors = HashMap::with_capacity(layout.len());
    for (name, shape) in layout {
        let leaf = name.rsplit('.').next().unwrap_or("");
        let t = if leaf == "num_batches_tracked" {
            Tensor::new(0i64, &Device::Cpu)
        } else {
            let n: usize = shape.iter().product();
            let seed = fnv1a32(name);
            let fan_in: usize = shape.iter().skip(1).product();
            let is_prelu = format!(".{name}").contains(".prelu");
            let v: Vec<f32> = (0..n as u64)
                .map(|i| {
                    let u = hash_u01(seed, i);
                    let v = match leaf {
                        "weight" if shape.len() >= 2 => (2.0 * u - 1.0) * (3.0 / fan_in as f64).sqrt(),
                        "weight" if is_prelu => 0.1 + 0.2 * u,
                        "weight" => 0.8 + 0.4 * u,
                        "running_var" => 0.5 + u,
                        _ => 0.2 * (2.0 * u - 1.0), // bias, running_mean
                    };
                    v as f32
                })
                .collect();
            Tensor::from_vec(v, shape.as_slice(), &Device::Cpu)
        };
        tensors.insert(name.clone(), t.map_err(super::candle_err(format!("synthetic weight {name}")))?);
    }
    Ok(StateDict::from_tensors(Path::new("<synthetic weights>"), tensors))
}

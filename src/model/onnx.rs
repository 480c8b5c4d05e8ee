//! ONNX exports (`--features onnx`): how many users hold insightface models (`w600k_r50.onnx`,
//! `w600k_mbf.onnx`, old MXNet conversions). The graph is evaluated by candle-onnx on the CPU.
//!
//! What the file does not say explicitly is read off the graph the way insightface's
//! `model_zoo/arcface_onnx.py` does: the input size from the image input's shape, and the pixel
//! normalisation from the first nodes — a subtraction and a multiplication among the first 8 nodes
//! mean the graph normalises by itself (MXNet exports: raw 0..255 pixels in, mean 0, std 1),
//! otherwise the input is `(x − 127.5) / 127.5`. Channels are RGB in both cases.

use super::meta::{impl_face_embedder, Meta};
use super::weights::fingerprint;
use super::{candle_err, ChannelOrder, InputSpec};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_onnx::onnx::{
    tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, ModelProto, ValueInfoProto,
};
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub const ARCH: &str = "onnx";
/// Input size when the graph leaves height/width symbolic (insightface's recognition models are 112×112).
const DEFAULT_SIZE: usize = 112;
/// Images per graph evaluation for a dynamic-batch graph: candle-onnx keeps every intermediate
/// tensor of an evaluation alive until it ends, so memory grows with this (about 30 MB per image for
/// an IResNet-50), while throughput does not.
const CHUNK: usize = 8;
/// insightface looks at this many leading nodes for the in-graph normalisation.
pub const NORM_NODES: usize = 8;

/// Whether the graph normalises its input itself (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocessing {
    /// `(x − 127.5) / 127.5` applied before the graph (PyTorch exports).
    Centred,
    /// Raw 0..255 pixels in: the graph starts with its own Sub/Mul (MXNet exports).
    InGraph,
}

impl Preprocessing {
    /// insightface's rule over the leading nodes: a node named `Sub…`/`_minus…` and one named
    /// `Mul…`/`_mul…`. Op types count too, since newer exporters name nodes by path (`/Sub`).
    pub fn detect<'a>(nodes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let (mut sub, mut mul) = (false, false);
        for (op_type, name) in nodes.into_iter().take(NORM_NODES) {
            sub |= op_type == "Sub" || name.starts_with("Sub") || name.starts_with("_minus");
            mul |= op_type == "Mul" || name.starts_with("Mul") || name.starts_with("_mul");
        }
        if sub && mul {
            Preprocessing::InGraph
        } else {
            Preprocessing::Centred
        }
    }

    /// The per-channel `(mean, std)` this gives the image pipeline.
    pub fn mean_std(self) -> (f32, f32) {
        match self {
            Preprocessing::Centred => (127.5, 127.5),
            Preprocessing::InGraph => (0.0, 1.0),
        }
    }
}

pub struct OnnxNet {
    meta: Meta,
    /// The graph without its initializers (those are in `weights`, converted once).
    model: ModelProto,
    weights: HashMap<String, Tensor>,
    input: String,
    output: String,
    /// Batch size the graph is fixed to, if it is (MXNet exports: 1).
    fixed_batch: Option<usize>,
    preprocessing: Preprocessing,
}

impl OnnxNet {
    /// Reads and checks the graph, converts its weights, and runs one blank image through it so an
    /// operator candle-onnx lacks is reported now rather than in the middle of a benchmark.
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        std::fs::metadata(path).map_err(|e| Error::read(path, e))?;
        let mut model = candle_onnx::read_file(path)
            .map_err(|e| Error::data(path, format!("not an ONNX model (a protobuf ModelProto was expected): {e}")))?;
        let graph = match model.graph.as_mut() {
            Some(g) if !g.node.is_empty() => g,
            _ => {
                return Err(Error::data(path, "not an ONNX model: no graph nodes (a protobuf ModelProto was expected)"))
            }
        };
        if !device.is_cpu() {
            return Err(Error::Config(format!(
                "{}: ONNX models run on the CPU (candle-onnx evaluates graphs there); use --device cpu",
                path.display()
            )));
        }

        let initializers = std::mem::take(&mut graph.initializer);
        let init_names: HashSet<&str> = initializers.iter().map(|t| t.name.as_str()).collect();
        let images: Vec<&ValueInfoProto> =
            graph.input.iter().filter(|i| !init_names.contains(i.name.as_str())).collect();
        let [image] = images.as_slice() else {
            let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::data(path, format!("expected one image input (N, 3, H, W), found inputs {names:?}")));
        };
        let input = ImageInput::read(image).map_err(|m| Error::data(path, m))?;
        let input_name = image.name.clone();
        if dtype != DType::F32 {
            return Err(Error::Config(format!(
                "{}: ONNX graphs run in f32 (the precision of the export); use --dtype f32",
                path.display()
            )));
        }
        let output = embedding_output(&graph.output).map_err(|m| Error::data(path, m))?;
        let preprocessing = Preprocessing::detect(graph.node.iter().map(|n| (n.op_type.as_str(), n.name.as_str())));

        let mut weights = HashMap::with_capacity(initializers.len());
        for t in &initializers {
            if t.data_location == candle_onnx::onnx::tensor_proto::DataLocation::External as i32 {
                return Err(Error::data(
                    path,
                    format!("initializer {} is stored in an external data file, which is not supported", t.name),
                ));
            }
            let v = candle_onnx::eval::get_tensor(t, &t.name)
                .map_err(|e| Error::data(path, format!("initializer {}: {e}", t.name)))?;
            weights.insert(t.name.clone(), v);
        }
        drop(initializers);

        let (mean, std) = preprocessing.mean_std();
        let spec = InputSpec {
            height: input.height,
            width: input.width,
            channels: ChannelOrder::Rgb,
            mean: [mean; 3],
            std: [std; 3],
        };
        let meta = Meta {
            arch: ARCH.into(),
            input: spec,
            dim: 0,
            fingerprint: fingerprint(ARCH, path)?,
            device: Device::Cpu,
            dtype: DType::F32,
        };
        let mut net =
            OnnxNet { meta, model, weights, input: input_name, output, fixed_batch: input.batch, preprocessing };
        net.meta.dim = net.probe(path)?;
        Ok(net)
    }

    pub fn preprocessing(&self) -> Preprocessing {
        self.preprocessing
    }

    /// The batch size the graph is fixed to, if any.
    pub fn fixed_batch(&self) -> Option<usize> {
        self.fixed_batch
    }

    /// Embedding length, from one blank image; unsupported operators surface here.
    fn probe(&self, path: &Path) -> Result<usize> {
        let s = &self.meta.input;
        let x = Tensor::zeros((1, 3, s.height, s.width), self.meta.dtype, &Device::Cpu)
            .map_err(candle_err(format!("{}: building a probe image", path.display())))?;
        let y = self.run(&x).map_err(|e| self.eval_error(path, e))?;
        match y.dims() {
            [1, d] if *d > 0 => Ok(*d),
            dims => Err(Error::data(
                path,
                format!("output {} has shape {dims:?} for one image, expected (1, D) embeddings", self.output),
            )),
        }
    }

    /// A graph evaluation error, naming the operator when candle-onnx does not implement it.
    fn eval_error(&self, path: &Path, e: candle_core::Error) -> Error {
        let msg = e.to_string();
        if let Some(rest) = msg.split("unsupported op_type ").nth(1) {
            let op = rest.split_whitespace().next().unwrap_or("?");
            let node = self.graph_nodes().find(|(t, _)| *t == op).map(|(_, n)| n).unwrap_or("?");
            return Error::data(
                path,
                format!("operator {op} (node {node:?}) is not supported by candle-onnx; this graph cannot be run"),
            );
        }
        let short: String = msg.chars().take(400).collect();
        Error::data(path, format!("evaluating the ONNX graph failed: {short}"))
    }

    fn graph_nodes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.model.graph.iter().flat_map(|g| g.node.iter()).map(|n| (n.op_type.as_str(), n.name.as_str()))
    }

    /// `x`: `(N, 3, H, W)` f32 on the CPU; runs it in graph-sized pieces.
    fn run(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(0)?;
        let step = self.fixed_batch.unwrap_or(CHUNK);
        let mut parts = Vec::with_capacity(n.div_ceil(step));
        for start in (0..n).step_by(step) {
            let len = step.min(n - start);
            let mut chunk = x.narrow(0, start, len)?;
            if let Some(b) = self.fixed_batch.filter(|b| *b > len) {
                // A fixed batch is filled up with blank images whose outputs are dropped.
                let pad = Tensor::zeros((b - len, x.dim(1)?, x.dim(2)?, x.dim(3)?), x.dtype(), x.device())?;
                chunk = Tensor::cat(&[&chunk, &pad], 0)?;
            }
            let rows = chunk.dim(0)?;
            let mut inputs = self.weights.clone();
            inputs.insert(self.input.clone(), chunk);
            let mut out = candle_onnx::simple_eval(&self.model, inputs)?;
            let y = out
                .remove(&self.output)
                .ok_or_else(|| candle_core::Error::Msg(format!("the graph produced no output {}", self.output)))?;
            if y.rank() < 2 || y.dim(0)? != rows {
                candle_core::bail!("output {} has shape {:?} for {rows} images", self.output, y.dims());
            }
            parts.push(y.flatten_from(1)?.narrow(0, 0, len)?);
        }
        Tensor::cat(&parts, 0)
    }
}

impl_face_embedder!(OnnxNet);

/// What the image input declares.
struct ImageInput {
    height: usize,
    width: usize,
    batch: Option<usize>,
}

impl ImageInput {
    fn read(v: &ValueInfoProto) -> std::result::Result<Self, String> {
        let what = format!("image input {:?}", v.name);
        let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return Err(format!("{what} is not a tensor, expected (N, 3, H, W) floats"));
        };
        // Half-precision graphs are not verified against a reference: refused rather than guessed at.
        if DataType::try_from(t.elem_type) != Ok(DataType::Float) {
            let found = DataType::try_from(t.elem_type).map_or("unknown", |d| d.as_str_name());
            return Err(format!("{what} has element type {found}, expected FLOAT (float32)"));
        }
        // Fixed sizes as numbers, symbolic ones (batch "None", "N", …) as None.
        let dims: Vec<Option<i64>> = match &t.shape {
            Some(s) => s
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(dimension::Value::DimValue(v)) => Some(v),
                    _ => None,
                })
                .collect(),
            None => vec![None; 4],
        };
        let size = |d: Option<i64>| -> std::result::Result<Option<usize>, String> {
            match d {
                Some(v) if v >= 1 => Ok(Some(v as usize)),
                Some(v) => Err(format!("{what} has a dimension of {v}")),
                None => Ok(None),
            }
        };
        match dims.as_slice() {
            [n, c, h, w] if c.is_none_or(|c| c == 3) => Ok(ImageInput {
                height: size(*h)?.unwrap_or(DEFAULT_SIZE),
                width: size(*w)?.unwrap_or(DEFAULT_SIZE),
                // Some converters write -1 or 0 for a dynamic batch.
                batch: n.filter(|v| *v >= 1).map(|v| v as usize),
            }),
            _ => Err(format!("{what} has shape {}, expected (N, 3, H, W)", show_dims(&dims))),
        }
    }
}

fn show_dims(dims: &[Option<i64>]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |v| v.to_string())).collect();
    format!("({})", d.join(", "))
}

/// The embedding output: the only one, or else the only one declared 2-D.
fn embedding_output(outputs: &[ValueInfoProto]) -> std::result::Result<String, String> {
    if let [only] = outputs {
        return Ok(only.name.clone());
    }
    let rank = |v: &ValueInfoProto| match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| s.dim.len()),
        _ => None,
    };
    let two_d: Vec<&ValueInfoProto> = outputs.iter().filter(|o| rank(o) == Some(2)).collect();
    match two_d.as_slice() {
        [one] => Ok(one.name.clone()),
        _ => {
            let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
            Err(format!("expected one (N, D) embedding output, found outputs {names:?}"))
        }
    }
}

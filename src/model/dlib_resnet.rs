//! dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`, the `anet_type`
//! of dlib's `examples/dnn_face_recognition_ex.cpp`): 150×150 RGB in, 128-D descriptor out.
//!
//! The file (read by [`super::dlib_serialize`]) stores the layers but not the graph: which
//! outputs are tagged, skipped to and added back is part of the C++ type. So the graph is
//! written down here, and the file must match it wrapper by wrapper and layer by layer:
//!
//! ```text
//! con 7×7/2 (32) → affine → relu → max_pool 3×3/2
//! → 3× ares(32) → ares_down(64) + 3× ares(64) → ares_down(128) + 2× ares(128)
//! → ares_down(256) + 2× ares(256) → ares_down(256) → global avg_pool → fc_no_bias 256→128
//! ares(x)      = relu(x + affine(con3×3(relu(affine(con3×3(x))))))
//! ares_down(x) = relu(avg_pool2×2/2(x) ⊕ affine(con3×3(relu(affine(con3×3/2(x))))))
//! ```
//!
//! dlib rules reproduced here: a con/pool with stride 1 pads `size/2`, with stride > 1 it pads
//! 0; output size is `1 + (in + 2·pad − size) / stride`. `add_prev` of tensors with different
//! shapes (⊕ above: 32→64 channels, and 3×3 vs 4×4 maps at 256) zero-pads both to the larger
//! size, aligned at channel 0 and the top-left corner. The deploy-time `affine` layers (dlib's
//! frozen batch norm) are folded into the preceding convolution's weights and bias.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};

use super::dlib_serialize::{read_metric_net, Layer, MetricNet};
use super::meta::{impl_face_embedder, Meta};
use super::{candle_err, ChannelOrder, InputSpec};

/// Architecture name as users type it.
pub const ARCH: &str = "dlib-resnet";

/// dlib's face chips are 150×150.
const CHIP: usize = 150;
const EMBEDDING_DIM: usize = 128;

/// What the architecture expects at one position of the file, top-down (outermost first).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Node {
    Con {
        inputs: usize,
        filters: usize,
        size: usize,
        stride: usize,
    },
    Affine(usize),
    Relu,
    MaxPool {
        size: usize,
        stride: usize,
    },
    /// `size == 0`: dlib's `avg_pool_everything`.
    AvgPool {
        size: usize,
        stride: usize,
    },
    AddPrev,
    Fc {
        inputs: usize,
        outputs: usize,
    },
    /// `tag1`, `tag2` or `skip1`: a wrapper with no record of its own.
    Wrapper,
}

impl Node {
    fn describe(&self) -> String {
        match *self {
            Node::Con { inputs, filters, size, stride } => {
                format!(
                    "con {size}×{size}/{stride} {inputs}→{filters} channels, padding {}",
                    dlib_padding(size, stride)
                )
            }
            Node::Affine(c) => format!("affine over {c} channels"),
            Node::Relu => "relu".into(),
            Node::MaxPool { size, stride } => format!("max_pool {size}×{size}/{stride}"),
            Node::AvgPool { size: 0, .. } => "avg_pool_everything".into(),
            Node::AvgPool { size, stride } => format!("avg_pool {size}×{size}/{stride}"),
            Node::AddPrev => "add_prev".into(),
            Node::Fc { inputs, outputs } => format!("fc_no_bias {inputs}→{outputs}"),
            Node::Wrapper => "tag/skip".into(),
        }
    }

    /// Whether a layer read from the file is this node.
    fn matches(&self, layer: &Layer) -> bool {
        match (*self, layer) {
            (Node::Con { inputs, filters: f, size, stride }, Layer::Con { filters, stride: s, padding, .. }) => {
                let p = dlib_padding(size, stride);
                *filters == [f, inputs, size, size] && *s == [stride, stride] && *padding == [p, p]
            }
            (Node::Affine(c), Layer::Affine { per_channel: true, shape, .. }) => *shape == [1, c, 1, 1],
            (Node::Relu, Layer::Relu) | (Node::AddPrev, Layer::AddPrev) => true,
            (Node::MaxPool { size, stride }, Layer::Pool { max: true, window, stride: s, padding })
            | (Node::AvgPool { size, stride }, Layer::Pool { max: false, window, stride: s, padding }) => {
                let p = if size == 0 { 0 } else { dlib_padding(size, stride) };
                *window == [size, size] && *s == [stride, stride] && *padding == [p, p]
            }
            (Node::Fc { inputs, outputs }, Layer::Fc { inputs: i, outputs: o, bias: None, .. }) => {
                (*i, *o) == (inputs, outputs)
            }
            _ => false,
        }
    }
}

/// dlib's default padding for con/pool layers.
fn dlib_padding(size: usize, stride: usize) -> usize {
    if stride == 1 {
        size / 2
    } else {
        0
    }
}

fn describe_layer(layer: &Layer) -> String {
    match layer {
        Layer::Con { filters, stride, padding, .. } => {
            format!("con {filters:?} (filters, channels, rows, cols), stride {stride:?}, padding {padding:?}")
        }
        Layer::Affine { per_channel, shape, .. } => format!("affine {shape:?} (per channel: {per_channel})"),
        Layer::Pool { window, stride, padding, .. } => {
            format!("{} {window:?}, stride {stride:?}, padding {padding:?}", layer.name())
        }
        Layer::Fc { inputs, outputs, bias, .. } => format!("fc {inputs}→{outputs} (bias: {})", bias.is_some()),
        Layer::Relu | Layer::AddPrev => layer.name().into(),
    }
}

/// The graph in forward order (input side first), including tag/skip wrappers.
fn forward_nodes() -> Vec<Node> {
    let con = |inputs, filters, size, stride| Node::Con { inputs, filters, size, stride };
    let mut nodes = vec![con(3, 32, 7, 2), Node::Affine(32), Node::Relu, Node::MaxPool { size: 3, stride: 2 }];
    let mut channels = 32;
    // (filters, downsampling) per residual unit, input side first.
    let units = [(32, false), (32, false), (32, false), (64, true), (64, false), (64, false), (64, false)]
        .into_iter()
        .chain([(128, true), (128, false), (128, false), (256, true), (256, false), (256, false), (256, true)]);
    for (n, down) in units {
        nodes.push(Node::Wrapper); // tag1
        nodes.extend([con(channels, n, 3, if down { 2 } else { 1 }), Node::Affine(n), Node::Relu]);
        nodes.extend([con(n, n, 3, 1), Node::Affine(n)]);
        if down {
            // tag2, skip1 (back to tag1), then the shortcut's pooling.
            nodes.extend([Node::Wrapper, Node::Wrapper, Node::AvgPool { size: 2, stride: 2 }]);
        }
        nodes.extend([Node::AddPrev, Node::Relu]);
        channels = n;
    }
    nodes.extend([Node::AvgPool { size: 0, stride: 1 }, Node::Fc { inputs: channels, outputs: EMBEDDING_DIM }]);
    nodes
}

/// Checks that the file holds exactly the `anet_type` graph; errors point at the first
/// wrapper or layer record that differs.
fn check_structure(path: &Path, net: &MetricNet) -> crate::Result<()> {
    let forward = forward_nodes();
    let not_anet = "not dlib's face-recognition ResNet (anet_type of dnn_face_recognition_ex.cpp)";
    // Wrapper versions, outermost first: 2 per layer, 1 per tag/skip, 3 for the input's layer.
    let expected: Vec<i64> = forward
        .iter()
        .rev()
        .enumerate()
        .map(|(i, n)| match n {
            Node::Wrapper => 1,
            _ if i + 1 == forward.len() => 3,
            _ => 2,
        })
        .collect();
    for (i, (want, &(got, at))) in expected.iter().zip(&net.wrappers).enumerate() {
        if *want != got {
            return Err(crate::Error::data(
                path,
                format!("byte {at}: expected wrapper version {want} at nesting level {i}, found {got}: {not_anet}"),
            ));
        }
    }
    if expected.len() != net.wrappers.len() {
        let at = net.wrappers.last().map_or(0, |w| w.1);
        return Err(crate::Error::data(
            path,
            format!("byte {at}: expected {} nested layers, found {}: {not_anet}", expected.len(), net.wrappers.len()),
        ));
    }
    let layers: Vec<&Node> = forward.iter().filter(|n| **n != Node::Wrapper).collect();
    for (i, (node, (at, layer))) in layers.iter().zip(&net.layers).enumerate() {
        if !node.matches(layer) {
            return Err(crate::Error::data(
                path,
                format!(
                    "byte {at}: layer {} of {}: expected {}, found {}: {not_anet}",
                    i + 1,
                    layers.len(),
                    node.describe(),
                    describe_layer(layer)
                ),
            ));
        }
    }
    Ok(())
}

/// A convolution with dlib's affine layer folded in: `y = conv(x, w·γ) + (b·γ + β)`.
struct ConvAffine {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl ConvAffine {
    fn new(con: &Layer, affine: &Layer, device: &Device, dtype: DType) -> crate::Result<Self> {
        let (Layer::Con { filters, stride, padding, weights, bias }, Layer::Affine { gamma, beta, .. }) = (con, affine)
        else {
            return Err(crate::Error::Invalid(format!(
                "dlib-resnet: expected con + affine, got {} + {}",
                con.name(),
                affine.name()
            )));
        };
        let per_filter = weights.len() / filters[0].max(1);
        let mut w = weights.clone();
        for (f, chunk) in w.chunks_mut(per_filter.max(1)).enumerate() {
            chunk.iter_mut().for_each(|v| *v *= gamma[f]);
        }
        let b: Vec<f32> = bias.iter().zip(gamma).zip(beta).map(|((b, g), be)| b * g + be).collect();
        let ctx = "dlib-resnet: loading a convolution";
        let weight = Tensor::from_vec(w, filters, device).and_then(|t| t.to_dtype(dtype)).map_err(candle_err(ctx))?;
        let bias = Tensor::from_vec(b, (1, filters[0], 1, 1), device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(candle_err(ctx))?;
        Ok(ConvAffine { weight, bias, stride: stride[0], padding: padding[0] })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?.broadcast_add(&self.bias)
    }
}

/// One residual unit (`ares` or `ares_down`).
struct Unit {
    first: ConvAffine,
    second: ConvAffine,
    /// `ares_down`: the shortcut is 2×2/2 average-pooled.
    down: bool,
}

/// dlib's `add_prev` of differently shaped tensors: zero-pad both to the larger shape.
fn add_zero_padded(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (da, db) = (a.dims(), b.dims());
    if da == db {
        return a + b;
    }
    let mut a = a.clone();
    let mut b = b.clone();
    for d in 0..da.len().min(db.len()) {
        let size = da[d].max(db[d]);
        a = a.pad_with_zeros(d, 0, size - da[d])?;
        b = b.pad_with_zeros(d, 0, size - db[d])?;
    }
    a + b
}

pub struct DlibResnet {
    meta: Meta,
    stem: ConvAffine,
    units: Vec<Unit>,
    /// `(256, 128)`: `descriptor = pooled · fc`.
    fc: Tensor,
}

impl DlibResnet {
    /// Reads and checks a `.dat` file and puts the folded weights on `device` in `dtype`.
    pub fn load(path: &Path, device: &Device, dtype: DType) -> crate::Result<Self> {
        let data = crate::io::read_input(path, crate::io::Role::MODEL)?;
        Self::from_bytes(path, &data, device, dtype)
    }

    /// Like [`DlibResnet::load`] for a file already in memory (`path` is for messages).
    pub fn from_bytes(path: &Path, data: &[u8], device: &Device, dtype: DType) -> crate::Result<Self> {
        let net = read_metric_net(path, data)?;
        check_structure(path, &net)?;
        let (height, width) = net.input.size.unwrap_or((CHIP, CHIP));
        if (height, width) != (CHIP, CHIP) {
            return Err(crate::Error::data(
                path,
                format!("expected a {CHIP}×{CHIP} input layer, found {height}×{width}"),
            ));
        }
        let input = InputSpec { height, width, channels: ChannelOrder::Rgb, mean: net.input.avg, std: [256.0; 3] };

        // The structure is checked, so the forward-order records follow the known pattern:
        // stem (con, affine, relu, max_pool), units (con, affine, relu, con, affine,
        // [avg_pool,] add_prev, relu), then avg_pool_everything and fc.
        let layers: Vec<&Layer> = net.layers.iter().map(|(_, l)| l).collect();
        let stem = ConvAffine::new(layers[0], layers[1], device, dtype)?;
        let mut units = Vec::new();
        let mut i = 4;
        while i + 2 < layers.len() {
            let first = ConvAffine::new(layers[i], layers[i + 1], device, dtype)?;
            let second = ConvAffine::new(layers[i + 3], layers[i + 4], device, dtype)?;
            let down = matches!(layers[i + 5], Layer::Pool { .. });
            units.push(Unit { first, second, down });
            i += if down { 8 } else { 7 };
        }
        let fc = match layers.last() {
            Some(Layer::Fc { inputs, outputs, weights, .. }) => {
                Tensor::from_vec(weights.clone(), (*inputs, *outputs), device)
                    .and_then(|t| t.to_dtype(dtype))
                    .map_err(candle_err("dlib-resnet: loading the fc layer"))?
            }
            _ => return Err(crate::Error::data(path, "expected the network to end with an fc layer")),
        };
        let mut hasher = blake3::Hasher::new();
        hasher.update(data);
        let fingerprint = format!("{ARCH}:blake3:{}", hasher.finalize().to_hex());
        let meta = Meta { arch: ARCH.into(), input, dim: EMBEDDING_DIM, fingerprint, device: device.clone(), dtype };
        Ok(DlibResnet { meta, stem, units, fc })
    }

    fn run(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.stem.forward(x)?.relu()?.max_pool2d_with_stride(3, 2)?;
        for u in &self.units {
            let y = u.second.forward(&u.first.forward(&x)?.relu()?)?;
            let shortcut = if u.down { x.avg_pool2d_with_stride(2, 2)? } else { x };
            x = add_zero_padded(&y, &shortcut)?.relu()?;
        }
        let pooled = x.mean(D::Minus1)?.mean(D::Minus1)?;
        pooled.matmul(&self.fc)
    }
}

impl_face_embedder!(DlibResnet);

/// Whether `load` should hand `path` to this network: `--arch dlib-resnet`, or no architecture
/// given and the file is a `.dat` or starts like a serialised dlib metric network.
pub fn claims(path: &Path, arch: Option<&str>) -> crate::Result<bool> {
    match arch {
        Some(a) => Ok(a == ARCH),
        None if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("dat")) => Ok(true),
        None => {
            use std::io::Read;
            let mut head = Vec::with_capacity(32);
            std::fs::File::open(path)
                .and_then(|f| f.take(32).read_to_end(&mut head))
                .map_err(|e| crate::Error::read(path, e))?;
            Ok(super::dlib_serialize::looks_like_metric_net(&head))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_has_dlibs_layer_and_wrapper_counts() {
        let nodes = forward_nodes();
        // 14 residual units (10 plain, 4 downsampling) → 22 tag/skip wrappers, 107 + 1 layers.
        assert_eq!(nodes.iter().filter(|n| **n == Node::Wrapper).count(), 22);
        assert_eq!(nodes.len() - 22, 108);
        assert_eq!(nodes.iter().filter(|n| matches!(n, Node::Con { .. })).count(), 29);
    }

    #[test]
    fn spatial_sizes_follow_dlibs_rules() {
        // 150 → con7/2: 72 → pool3/2: 35 → 17 → 8 → 3 (shortcut 4) → 1 (shortcut 2).
        let out = |n: usize, size: usize, stride: usize| 1 + (n + 2 * dlib_padding(size, stride) - size) / stride;
        assert_eq!(out(150, 7, 2), 72);
        assert_eq!(out(72, 3, 2), 35);
        assert_eq!((out(35, 3, 2), out(35, 2, 2)), (17, 17));
        assert_eq!((out(8, 3, 2), out(8, 2, 2)), (3, 4));
        assert_eq!((out(4, 3, 2), out(4, 2, 2)), (1, 2));
    }

    #[test]
    fn add_prev_zero_pads_to_the_larger_shape() {
        let dev = Device::Cpu;
        let a = Tensor::from_vec(vec![1f32, 2., 3., 4.], (1, 1, 2, 2), &dev).unwrap();
        let b = Tensor::from_vec(vec![10f32; 9 * 2], (1, 2, 3, 3), &dev).unwrap();
        let s = add_zero_padded(&a, &b).unwrap();
        assert_eq!(s.dims(), [1, 2, 3, 3]);
        let v: Vec<f32> = s.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&v[..9], &[11., 12., 10., 13., 14., 10., 10., 10., 10.]);
        assert_eq!(&v[9..], &[10.; 9]);
    }

    #[test]
    fn claims_by_arch_extension_or_header() {
        let dir = tempfile::tempdir().unwrap();
        let weird = dir.path().join("model.bin");
        std::fs::write(&weird, b"\x01\x01\x01\x0dloss_metric_2...").unwrap();
        assert!(claims(&weird, None).unwrap());
        assert!(!claims(&weird, Some("iresnet50")).unwrap());
        let other = dir.path().join("x.pth");
        std::fs::write(&other, b"PK\x03\x04").unwrap();
        assert!(!claims(&other, None).unwrap());
        assert!(claims(&other, Some(ARCH)).unwrap());
        assert!(claims(&dir.path().join("missing.dat"), None).unwrap());
        assert!(claims(&dir.path().join("missing.bin"), None).is_err());
    }
}

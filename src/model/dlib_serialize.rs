//! Reader for dlib's binary serialisation (`dlib/serialize.h`) and for the layer records of a
//! serialised `dlib::dnn` network (`.dat` files written by `dlib::serialize(path) << net`).
//!
//! Encoding, as dlib writes it:
//! * integers: one control byte (low nibble = number of little-endian magnitude bytes, 1..=8;
//!   bit 7 = negative) followed by that many bytes;
//! * floats: two integers, mantissa and exponent, value = mantissa · 2^exponent (exponents
//!   32000/32001/32002 mean +inf/−inf/NaN);
//! * strings: length as an integer, then the bytes; bools: the ASCII byte `'0'` or `'1'`;
//! * tensors: version 2, then num_samples, k, nr, nc, then the values as raw little-endian f32;
//!   alias tensors (views into a layer's parameter tensor): version 1 and the four sizes.
//!
//! A network is written outermost layer first, each layer writing its subnetwork *before* its
//! own details: the file starts with the loss layer and one version number per layer wrapper
//! (2 = `add_layer`, 1 = tag or skip, 3 = the layer sitting on the input layer), then the input
//! layer, then every computational layer's details in forward order. Tags and skips leave no
//! other trace, so the graph itself comes from the architecture's definition (see
//! `dlib_resnet.rs`); this module only reads what is there and says where it is malformed.
//!
//! Every error names the file, the byte offset and what was expected; nothing here panics.

use std::path::Path;

/// A dense tensor as dlib stores it: shape `(num_samples, k, nr, nc)`, row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct DlibTensor {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

/// Byte-level reader over a whole file held in memory.
pub struct Reader<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
}

/// Special exponents of dlib's `float_details`.
const EXP_INF: i64 = 32000;
const EXP_NINF: i64 = 32001;
const EXP_NAN: i64 = 32002;

impl<'a> Reader<'a> {
    pub fn new(path: &'a Path, data: &'a [u8]) -> Self {
        Reader { path, data, pos: 0 }
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// An error about the byte at `offset`.
    pub fn error_at(&self, offset: usize, msg: impl std::fmt::Display) -> crate::Error {
        crate::Error::data(self.path, format!("byte {offset}: {msg}"))
    }

    fn take(&mut self, n: usize, what: &str) -> crate::Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error_at(
                self.pos,
                format!(
                    "truncated: expected {what} ({n} bytes), {} remain (file is {} bytes)",
                    self.remaining(),
                    self.data.len()
                ),
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A dlib compact integer.
    pub fn int(&mut self, what: &str) -> crate::Result<i64> {
        let at = self.pos;
        let ctl = self.take(1, what)?[0];
        let size = (ctl & 0x0f) as usize;
        if ctl & 0x70 != 0 || size == 0 || size > 8 {
            return Err(self.error_at(at, format!("expected {what} (an integer), found control byte {ctl:#04x}")));
        }
        let bytes = self.take(size, what)?;
        let magnitude = bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64);
        let value = i64::try_from(magnitude)
            .map_err(|_| self.error_at(at, format!("{what}: integer {magnitude} does not fit in 63 bits")))?;
        Ok(if ctl & 0x80 != 0 { -value } else { value })
    }

    /// A non-negative integer used as a size or count.
    pub fn size(&mut self, what: &str) -> crate::Result<usize> {
        let at = self.pos;
        let v = self.int(what)?;
        usize::try_from(v).map_err(|_| self.error_at(at, format!("expected {what} (a size ≥ 0), found {v}")))
    }

    /// An integer that must equal `expected` (versions, fixed hyper-parameters).
    pub fn expect_int(&mut self, expected: i64, what: &str) -> crate::Result<()> {
        let at = self.pos;
        let v = self.int(what)?;
        if v != expected {
            return Err(self.error_at(at, format!("expected {what} = {expected}, found {v}")));
        }
        Ok(())
    }

    pub fn float(&mut self, what: &str) -> crate::Result<f64> {
        let at = self.pos;
        let mantissa = self.int(what)?;
        let exponent = self.int(what)?;
        Ok(match exponent {
            EXP_INF => f64::INFINITY,
            EXP_NINF => f64::NEG_INFINITY,
            EXP_NAN => f64::NAN,
            e if (-1100..=1100).contains(&e) => mantissa as f64 * 2f64.powi(e as i32),
            e => return Err(self.error_at(at, format!("{what}: float exponent {e} is out of range"))),
        })
    }

    pub fn boolean(&mut self, what: &str) -> crate::Result<bool> {
        let at = self.pos;
        match self.take(1, what)?[0] {
            b'0' => Ok(false),
            b'1' => Ok(true),
            b => Err(self.error_at(at, format!("expected {what} (the byte '0' or '1'), found {b:#04x}"))),
        }
    }

    /// A string of at most `max_len` bytes (longer ones are not what any caller expects).
    pub fn string(&mut self, max_len: usize, what: &str) -> crate::Result<String> {
        let at = self.pos;
        let len = self.size(what)?;
        if len > max_len {
            return Err(
                self.error_at(at, format!("expected {what} (a string of ≤ {max_len} bytes), found length {len}"))
            );
        }
        let bytes = self.take(len, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// A string that must be exactly `expected` (dlib's layer type tags).
    pub fn expect_str(&mut self, expected: &str, what: &str) -> crate::Result<()> {
        let at = self.pos;
        let s = self.string(64, what)?;
        if s != expected {
            return Err(self.error_at(at, format!("expected {what} {expected:?}, found {s:?}")));
        }
        Ok(())
    }

    fn dims(&mut self, what: &str) -> crate::Result<[usize; 4]> {
        let mut shape = [0usize; 4];
        for (d, name) in shape.iter_mut().zip(["num_samples", "k", "nr", "nc"]) {
            *d = self.size(&format!("{what}.{name}"))?;
        }
        Ok(shape)
    }

    /// A dense tensor (version 2 layout).
    pub fn tensor(&mut self, what: &str) -> crate::Result<DlibTensor> {
        self.expect_int(2, &format!("{what} tensor version"))?;
        let at = self.pos;
        let shape = self.dims(what)?;
        let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let bytes = count.and_then(|c| c.checked_mul(4));
        let Some(bytes) = bytes else {
            return Err(self.error_at(at, format!("{what}: tensor shape {shape:?} is too large")));
        };
        let raw = self.take(bytes, &format!("{what} tensor data ({shape:?} f32)"))?;
        let data: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        // A NaN or infinite weight gives finite-looking but meaningless embeddings downstream.
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            let at = self.pos - raw.len() + 4 * i;
            return Err(self.error_at(at, format!("{what}: weight {i} is {}; weights must be finite", data[i])));
        }
        Ok(DlibTensor { shape, data })
    }

    /// A tensor that must be empty (training state dlib saves alongside the weights).
    pub fn empty_tensor(&mut self, what: &str) -> crate::Result<()> {
        let at = self.pos;
        let t = self.tensor(what)?;
        if !t.data.is_empty() {
            return Err(self.error_at(at, format!("expected an empty {what} tensor, found shape {:?}", t.shape)));
        }
        Ok(())
    }

    /// An alias tensor's shape (version 1 layout).
    pub fn alias(&mut self, what: &str) -> crate::Result<[usize; 4]> {
        self.expect_int(1, &format!("{what} alias version"))?;
        self.dims(what)
    }
}

/// One computational layer's details, as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// `con_`: `filters` is `(num_filters, k, nr, nc)`, cross-correlation, bias per filter.
    Con {
        filters: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 2],
        weights: Vec<f32>,
        bias: Vec<f32>,
    },
    /// `affine_`: `y = gamma·x + beta`, per channel (`per_channel`) or per element.
    Affine {
        per_channel: bool,
        shape: [usize; 4],
        gamma: Vec<f32>,
        beta: Vec<f32>,
    },
    Relu,
    /// `max_pool_`/`avg_pool_`; a zero window size means "the whole input".
    Pool {
        max: bool,
        window: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    /// `add_prev_`: sum with a tagged earlier output (the tag is in the type, not the file).
    AddPrev,
    /// `fc_`: `weights` is `inputs × outputs`, row-major (`y = x·W + b`).
    Fc {
        inputs: usize,
        outputs: usize,
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
}

impl Layer {
    pub fn name(&self) -> &'static str {
        match self {
            Layer::Con { .. } => "con",
            Layer::Affine { .. } => "affine",
            Layer::Relu => "relu",
            Layer::Pool { max: true, .. } => "max_pool",
            Layer::Pool { max: false, .. } => "avg_pool",
            Layer::AddPrev => "add_prev",
            Layer::Fc { .. } => "fc",
        }
    }
}

/// dlib's `input_rgb_image(_sized)`: `(pixel − avg) / 256` per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbInput {
    pub avg: [f32; 3],
    /// `Some((nr, nc))` for `input_rgb_image_sized`.
    pub size: Option<(usize, usize)>,
}

/// A parsed `loss_metric` network file.
#[derive(Debug, Clone)]
pub struct MetricNet {
    pub margin: f64,
    pub dist_thresh: f64,
    /// One wrapper version per layer, outermost first, each with its byte offset.
    pub wrappers: Vec<(i64, usize)>,
    pub input: RgbInput,
    /// Computational layers in forward order, each with the byte offset of its record.
    pub layers: Vec<(usize, Layer)>,
}

/// Upper bound on layer wrappers, so a corrupt header cannot make us loop for long.
const MAX_WRAPPERS: usize = 100_000;

/// Whether `data` starts like a serialised dlib network with a metric loss (cheap sniff).
pub fn looks_like_metric_net(data: &[u8]) -> bool {
    let path = Path::new("");
    let mut r = Reader::new(path, data);
    matches!(r.int("version"), Ok(1)) && r.string(64, "loss").is_ok_and(|s| s.starts_with("loss_metric_"))
}

/// Reads a whole `loss_metric<…<input_rgb_image…>>` network.
pub fn read_metric_net(path: &Path, data: &[u8]) -> crate::Result<MetricNet> {
    let mut r = Reader::new(path, data);
    r.expect_int(1, "add_loss_layer version")?;
    r.expect_str("loss_metric_2", "loss layer type")?;
    let margin = r.float("loss_metric margin")?;
    let dist_thresh = r.float("loss_metric distance threshold")?;

    let mut wrappers = Vec::new();
    loop {
        let at = r.offset();
        let v = r.int("layer wrapper version")?;
        match v {
            1..=3 => wrappers.push((v, at)),
            _ => {
                return Err(r.error_at(at, format!("expected a layer wrapper version (1, 2 or 3), found {v}")));
            }
        }
        if v == 3 {
            break;
        }
        if wrappers.len() >= MAX_WRAPPERS {
            return Err(r.error_at(at, format!("more than {MAX_WRAPPERS} layer wrappers without reaching the input")));
        }
    }

    let input = read_input(&mut r)?;
    let mut layers = Vec::new();
    let n_layers = wrappers.iter().filter(|(v, _)| *v != 1).count();
    for i in 0..n_layers {
        let at = r.offset();
        let layer = read_layer(&mut r)?;
        r.boolean("this_layer_setup_called")?;
        r.boolean("gradient_input_is_stale")?;
        r.boolean("get_output_and_gradient_input_disabled")?;
        r.empty_tensor("x_grad")?;
        r.empty_tensor("cached_output")?;
        if i == 0 {
            // The layer on the input layer (wrapper version 3) keeps grad_final and the
            // sample expansion factor instead of params_grad.
            r.empty_tensor("grad_final")?;
            r.expect_int(1, "sample expansion factor")?;
        } else {
            r.empty_tensor("params_grad")?;
        }
        layers.push((at, layer));
    }
    if r.remaining() != 0 {
        return Err(r.error_at(
            r.offset(),
            format!("expected the end of the network after {n_layers} layers, found {} more bytes", r.remaining()),
        ));
    }
    Ok(MetricNet { margin, dist_thresh, wrappers, input, layers })
}

fn read_input(r: &mut Reader) -> crate::Result<RgbInput> {
    let at = r.offset();
    let name = r.string(64, "input layer type")?;
    let sized = match name.as_str() {
        "input_rgb_image_sized" => true,
        "input_rgb_image" => false,
        _ => {
            return Err(r.error_at(
                at,
                format!("expected input layer \"input_rgb_image_sized\" or \"input_rgb_image\", found {name:?}"),
            ))
        }
    };
    let mut avg = [0f32; 3];
    for (a, c) in avg.iter_mut().zip(["red", "green", "blue"]) {
        let at = r.offset();
        let v = r.float(&format!("input average {c}"))?;
        if !(0.0..=255.0).contains(&v) {
            return Err(r.error_at(at, format!("expected input average {c} in 0..=255, found {v}")));
        }
        *a = v as f32;
    }
    let size = if sized { Some((r.size("input rows")?, r.size("input columns")?)) } else { None };
    Ok(RgbInput { avg, size })
}

fn read_pair(r: &mut Reader, a: &str, b: &str) -> crate::Result<[usize; 2]> {
    Ok([r.size(a)?, r.size(b)?])
}

fn skip_multipliers(r: &mut Reader) -> crate::Result<()> {
    for what in ["learning rate multiplier", "weight decay multiplier", "bias learning rate", "bias weight decay"] {
        r.float(what)?;
    }
    Ok(())
}

fn size_of(shape: &[usize; 4]) -> usize {
    shape.iter().product()
}

/// Splits a parameter tensor into consecutive views of the given shapes (dlib's alias offsets).
fn split_params(
    r: &Reader,
    at: usize,
    what: &str,
    params: DlibTensor,
    views: &[[usize; 4]],
) -> crate::Result<Vec<Vec<f32>>> {
    let need: usize = views.iter().map(size_of).sum();
    if params.data.len() != need {
        return Err(r.error_at(
            at,
            format!("{what}: parameter tensor has {} values, its views {views:?} need {need}", params.data.len()),
        ));
    }
    let mut out = Vec::with_capacity(views.len());
    let mut start = 0;
    for v in views {
        out.push(params.data[start..start + size_of(v)].to_vec());
        start += size_of(v);
    }
    Ok(out)
}

fn read_layer(r: &mut Reader) -> crate::Result<Layer> {
    let at = r.offset();
    let name = r.string(64, "layer type")?;
    match name.as_str() {
        "con_4" => {
            let params = r.tensor("con params")?;
            let num_filters = r.size("con num_filters")?;
            let window = read_pair(r, "con nr", "con nc")?;
            let stride = read_pair(r, "con stride_y", "con stride_x")?;
            let padding = read_pair(r, "con padding_y", "con padding_x")?;
            let filters = r.alias("con filters")?;
            let bias_shape = r.alias("con biases")?;
            skip_multipliers(r)?;
            if filters[0] != num_filters
                || filters[2..] != window
                || bias_shape != [1, num_filters, 1, 1]
                || stride.contains(&0)
                || padding[0] >= window[0]
                || padding[1] >= window[1]
            {
                return Err(r.error_at(
                    at,
                    format!(
                        "con layer is inconsistent: {num_filters} filters of {window:?}, stride {stride:?}, \
                         padding {padding:?}, filter view {filters:?}, bias view {bias_shape:?}"
                    ),
                ));
            }
            let mut v = split_params(r, at, "con", params, &[filters, bias_shape])?;
            let bias = v.pop().unwrap_or_default();
            let weights = v.pop().unwrap_or_default();
            Ok(Layer::Con { filters, stride, padding, weights, bias })
        }
        "affine_" => {
            let params = r.tensor("affine params")?;
            let gamma_shape = r.alias("affine gamma")?;
            let beta_shape = r.alias("affine beta")?;
            let mode_at = r.offset();
            let per_channel = match r.int("affine mode")? {
                0 => true,
                1 => false,
                m => return Err(r.error_at(mode_at, format!("expected affine mode 0 (conv) or 1 (fc), found {m}"))),
            };
            if gamma_shape != beta_shape || gamma_shape[0] != 1 {
                return Err(r.error_at(at, format!("affine gamma {gamma_shape:?} and beta {beta_shape:?} differ")));
            }
            let mut v = split_params(r, at, "affine", params, &[gamma_shape, beta_shape])?;
            let beta = v.pop().unwrap_or_default();
            let gamma = v.pop().unwrap_or_default();
            Ok(Layer::Affine { per_channel, shape: gamma_shape, gamma, beta })
        }
        "relu_" => Ok(Layer::Relu),
        "add_prev_" => Ok(Layer::AddPrev),
        "max_pool_2" | "avg_pool_2" => {
            let window = read_pair(r, "pool nr", "pool nc")?;
            let stride = read_pair(r, "pool stride_y", "pool stride_x")?;
            let padding = read_pair(r, "pool padding_y", "pool padding_x")?;
            if stride.contains(&0) {
                return Err(r.error_at(at, format!("pool stride {stride:?} must be positive")));
            }
            Ok(Layer::Pool { max: name == "max_pool_2", window, stride, padding })
        }
        "fc_2" => {
            let outputs = r.size("fc num_outputs")?;
            let inputs = r.size("fc num_inputs")?;
            let params = r.tensor("fc params")?;
            let w_shape = r.alias("fc weights")?;
            let b_shape = r.alias("fc biases")?;
            let mode_at = r.offset();
            let has_bias = match r.int("fc bias mode")? {
                0 => true,
                1 => false,
                m => return Err(r.error_at(mode_at, format!("expected fc bias mode 0 or 1, found {m}"))),
            };
            skip_multipliers(r)?;
            let want_b = if has_bias { [1, outputs, 1, 1] } else { [0; 4] };
            if w_shape != [inputs, outputs, 1, 1] || b_shape != want_b {
                return Err(r.error_at(
                    at,
                    format!("fc {inputs}→{outputs}: weight view {w_shape:?} / bias view {b_shape:?} do not match"),
                ));
            }
            let mut v = split_params(r, at, "fc", params, &[w_shape, b_shape])?;
            let bias = v.pop().filter(|_| has_bias);
            let weights = v.pop().unwrap_or_default();
            Ok(Layer::Fc { inputs, outputs, weights, bias })
        }
        _ => Err(r.error_at(
            at,
            format!(
                "expected a layer record (con_4, affine_, relu_, max_pool_2, avg_pool_2, add_prev_, fc_2), \
                 found {name:?}"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal writer of dlib's encodings, for building inputs by hand.
    #[derive(Default)]
    struct W(Vec<u8>);
    impl W {
        fn int(mut self, v: i64) -> Self {
            let mut m = v.unsigned_abs();
            let mut bytes = vec![];
            loop {
                bytes.push((m & 0xff) as u8);
                m >>= 8;
                if m == 0 {
                    break;
                }
            }
            self.0.push(bytes.len() as u8 | if v < 0 { 0x80 } else { 0 });
            self.0.extend(bytes);
            self
        }
        fn str(self, s: &str) -> Self {
            let mut w = self.int(s.len() as i64);
            w.0.extend(s.as_bytes());
            w
        }
        fn float(self, m: i64, e: i64) -> Self {
            self.int(m).int(e)
        }
        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend(b);
            self
        }
        fn tensor(self, shape: [i64; 4], vals: &[f32]) -> Self {
            let mut w = self.int(2).int(shape[0]).int(shape[1]).int(shape[2]).int(shape[3]);
            for v in vals {
                w.0.extend(v.to_le_bytes());
            }
            w
        }
    }

    fn reader(b: &[u8]) -> Reader<'_> {
        Reader::new(Path::new("t.dat"), b)
    }

    #[test]
    fn integers_follow_dlibs_compact_encoding() {
        // Bytes seen in the real model: 1, 150, 4736, −28, 0.
        let b = [0x01, 0x01, 0x01, 0x96, 0x02, 0x80, 0x12, 0x81, 0x1c, 0x01, 0x00];
        let mut r = reader(&b);
        let got: Vec<i64> = (0..5).map(|_| r.int("x").unwrap()).collect();
        assert_eq!(got, [1, 150, 4736, -28, 0]);
        assert_eq!(r.remaining(), 0);
        let big = W::default().int(i64::MAX).int(-(1 << 40));
        let mut r = reader(&big.0);
        assert_eq!(r.int("x").unwrap(), i64::MAX);
        assert_eq!(r.int("x").unwrap(), -(1 << 40));
    }

    #[test]
    fn floats_are_mantissa_times_power_of_two() {
        // margin 0.04 and dist_thresh 0.6 exactly as stored in the model file.
        let b = [0x03, 0x0a, 0xd7, 0xa3, 0x81, 0x1c, 0x03, 0x9a, 0x99, 0x99, 0x81, 0x18];
        let mut r = reader(&b);
        assert_eq!(r.float("m").unwrap() as f32, 0.04f32);
        assert_eq!(r.float("d").unwrap() as f32, 0.6f32);
        let w = W::default().float(1, EXP_INF).float(-3, 0).float(5, 4000);
        let mut r = reader(&w.0);
        assert_eq!(r.float("x").unwrap(), f64::INFINITY);
        assert_eq!(r.float("x").unwrap(), -3.0);
        let e = r.float("weird").unwrap_err().to_string();
        assert!(e.contains("byte 9") && e.contains("out of range"), "{e}");
    }

    #[test]
    fn malformed_primitives_name_offset_and_expectation() {
        let e = reader(&[0x71, 0x01]).int("x").unwrap_err().to_string();
        assert!(e.contains("t.dat") && e.contains("byte 0"), "{e}");
        let mut r = reader(&[0x01, 0x01, 0x09, 0, 0]);
        r.int("a").unwrap();
        let e = r.int("b").unwrap_err().to_string();
        assert!(e.contains("byte 2") && e.contains("control byte 0x09"), "{e}");
        let e = reader(&[0x04, 0x01]).int("count").unwrap_err().to_string();
        assert!(e.contains("truncated: expected count (4 bytes), 1 remain"), "{e}");
        let e = reader(&[0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).int("x").unwrap_err().to_string();
        assert!(e.contains("63 bits"), "{e}");
        let e = reader(&[0x81, 0x05]).size("rows").unwrap_err().to_string();
        assert!(e.contains("expected rows (a size ≥ 0), found -5"), "{e}");
        let e = reader(b"x").boolean("flag").unwrap_err().to_string();
        assert!(e.contains("'0' or '1'"), "{e}");
        let w = W::default().str("con_5");
        let e = reader(&w.0).expect_str("con_4", "layer type").unwrap_err().to_string();
        assert!(e.contains("expected layer type \"con_4\", found \"con_5\""), "{e}");
        let e = reader(&W::default().int(1 << 30).0).string(64, "name").unwrap_err().to_string();
        assert!(e.contains("found length 1073741824"), "{e}");
    }

    #[test]
    fn tensors_are_checked_against_the_remaining_bytes() {
        let w = W::default().tensor([1, 2, 1, 1], &[1.5, -2.0]);
        let t = reader(&w.0).tensor("p").unwrap();
        assert_eq!((t.shape, t.data), ([1, 2, 1, 1], vec![1.5, -2.0]));
        // Cut inside the data.
        let cut = &w.0[..w.0.len() - 1];
        let e = reader(cut).tensor("p").unwrap_err().to_string();
        assert!(e.contains("truncated: expected p tensor data ([1, 2, 1, 1] f32) (8 bytes), 7 remain"), "{e}");
        // A shape whose byte count overflows must not allocate.
        let w = W::default().int(2).int(1 << 40).int(1 << 40).int(1).int(1);
        let e = reader(&w.0).tensor("p").unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
        let w = W::default().int(3);
        let e = reader(&w.0).tensor("p").unwrap_err().to_string();
        assert!(e.contains("expected p tensor version = 2, found 3"), "{e}");
    }

    /// The smallest well-formed metric net: input → con 1×1 → fc, built with the writer.
    fn tiny_net() -> Vec<u8> {
        let empty = |w: W| w.tensor([0; 4], &[]);
        let tail = |w: W, first: bool| {
            let w = empty(empty(w.raw(b"110")));
            if first {
                empty(w).int(1)
            } else {
                empty(w)
            }
        };
        let mut w = W::default().int(1).str("loss_metric_2").float(1, -1).float(3, -2);
        w = w.int(2).int(3); // fc wrapper, then the con sitting on the input
        w = w.str("input_rgb_image_sized").float(122, 0).float(117, 0).float(104, 0).int(2).int(2);
        // con_4: 1 filter over 3 channels, 1×1, stride 1, no padding.
        w = w.str("con_4").tensor([4, 1, 1, 1], &[0.5, 0.25, 0.125, 1.0]).int(1).int(1).int(1).int(1).int(1);
        w = w.int(0).int(0).int(1).int(1).int(3).int(1).int(1).int(1).int(1).int(1).int(1).int(1);
        w = w.float(1, 0).float(1, 0).float(1, 0).float(0, 0);
        w = tail(w, true);
        w = w.str("fc_2").int(2).int(4).tensor([4, 2, 1, 1], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        w = w.int(1).int(4).int(2).int(1).int(1).int(1).int(0).int(0).int(0).int(0).int(1);
        w = w.float(1, 0).float(1, 0).float(1, 0).float(0, 0);
        tail(w, false).0
    }

    #[test]
    fn the_fuzzing_seed_is_the_hand_built_network() {
        let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions/dlib/seed-tiny-net.dat");
        assert_eq!(std::fs::read(seed).unwrap(), tiny_net());
    }

    #[test]
    fn non_finite_weights_are_refused_at_their_offset() {
        let b = tiny_net();
        // The con_4 filter's first weight, 0.5f32, is the first such 4-byte run in the file.
        let at = b.windows(4).position(|w| w == 0.5f32.to_le_bytes()).unwrap();
        for bad in [f32::NAN, f32::INFINITY] {
            let mut m = b.clone();
            m[at..at + 4].copy_from_slice(&bad.to_le_bytes());
            let e = read_metric_net(Path::new("t.dat"), &m).unwrap_err().to_string();
            assert!(e.starts_with(&format!("t.dat: byte {at}:")) && e.contains("weights must be finite"), "{e}");
        }
    }

    #[test]
    fn reads_a_hand_built_network_and_rejects_every_truncation() {
        let b = tiny_net();
        assert!(looks_like_metric_net(&b));
        let net = read_metric_net(Path::new("t.dat"), &b).unwrap();
        assert_eq!((net.margin, net.dist_thresh), (0.5, 0.75));
        assert_eq!(net.wrappers.iter().map(|w| w.0).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(net.input, RgbInput { avg: [122.0, 117.0, 104.0], size: Some((2, 2)) });
        assert_eq!(net.layers.len(), 2);
        match &net.layers[0].1 {
            Layer::Con { filters, weights, bias, .. } => {
                assert_eq!(
                    (*filters, weights.as_slice(), bias.as_slice()),
                    ([1, 3, 1, 1], &[0.5, 0.25, 0.125][..], &[1.0][..])
                )
            }
            l => panic!("{l:?}"),
        }
        match &net.layers[1].1 {
            Layer::Fc { inputs: 4, outputs: 2, weights, bias: None } => assert_eq!(weights.len(), 8),
            l => panic!("{l:?}"),
        }
        for cut in 0..b.len() {
            let e = read_metric_net(Path::new("t.dat"), &b[..cut]).unwrap_err().to_string();
            assert!(e.starts_with("t.dat: byte ") && e.contains("expected"), "cut {cut}: {e}");
        }
        let mut longer = b.clone();
        longer.push(0);
        let e = read_metric_net(Path::new("t.dat"), &longer).unwrap_err().to_string();
        assert!(e.contains(&format!("byte {}: expected the end of the network", b.len())), "{e}");
        assert!(!looks_like_metric_net(b"\x01\x01\x01\x0bloss_mmod_x"));
    }
}

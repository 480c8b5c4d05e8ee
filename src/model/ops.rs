//! Fused convolution and linear layers shared by the networks.
//!
//! Eval-mode BatchNorm after a convolution is folded into its weights and bias at load time; a
//! BatchNorm *before* a convolution (IResNet's `bn1`) cannot be folded exactly because of the zero
//! padding, so it is applied to the input while the patches are gathered (padding stays zero, as in
//! PyTorch). Bias, PReLU and a residual addition are applied in the same pass over the output.
//!
//! On the CPU in f32 our own kernels run (candle CustomOps): dense convolutions as im2col + faer
//! GEMM, grouped/depthwise convolutions as shift-and-add over the k×k taps with per-channel weights
//! (candle splits `groups` into one convolution per group, which is very slow). Every image is
//! computed by one thread in a fixed order, so results do not depend on the thread count or on the
//! batch an image comes in. On other devices (CUDA) or dtypes the same layer runs as plain candle
//! ops (dense: `conv2d`; grouped: shift-and-add over shifted views, global depthwise as one
//! broadcast multiply + sum); that path is also tested on the CPU against the kernels.

use super::weights::{Affine, StateDict};
use crate::{Error, Result};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// im2col tile size (floats): a tile of output rows whose patches fit in ~2 MB.
const COL_TILE: usize = 1 << 19;

/// Geometry of a 2-D convolution (square kernel, symmetric padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
}

impl ConvGeom {
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.pad, w + 2 * self.pad);
        if hp < self.k || wp < self.k || self.stride == 0 {
            return None;
        }
        Some(((hp - self.k) / self.stride + 1, (wp - self.k) / self.stride + 1))
    }
}

/// Host copy of a fused convolution's parameters, run by the CPU kernels.
struct CpuConv {
    g: ConvGeom,
    /// `(cout, cin/groups, k, k)` row-major, BatchNorm folded in.
    w: Vec<f32>,
    b: Vec<f32>,
    alpha: Option<Vec<f32>>,
    /// Per-input-channel affine applied before the convolution (an unfolded BatchNorm).
    pre: Option<(Vec<f32>, Vec<f32>)>,
}

/// A convolution with folded BatchNorm, optional input affine, bias, optional PReLU; an optional
/// residual is added last.
pub struct Conv {
    pub geom: ConvGeom,
    cpu: Option<CpuConv>,
    w: Tensor,
    b: Tensor,
    alpha: Option<Tensor>,
    pre: Option<(Tensor, Tensor)>,
}

/// Parameters of a [`Conv`] before placement on a device.
pub struct ConvParams {
    pub geom: ConvGeom,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub alpha: Option<Vec<f32>>,
    pub pre: Option<Affine>,
}

impl ConvParams {
    /// Reads `{conv}` (no bias) from a state dict, folds the BatchNorm at `bn` into it, and takes
    /// PReLU slopes from `prelu`. `cin` is the input width (the weight only holds `cin/groups`).
    pub fn load(
        sd: &StateDict,
        conv: &str,
        cin: usize,
        stride: usize,
        bn: Option<&str>,
        prelu: Option<&str>,
    ) -> Result<Self> {
        let [cout, cing, kh, kw] = sd.conv_dims(conv)?;
        if kh != kw || cing == 0 || cin % cing != 0 || cout % (cin / cing) != 0 {
            return Err(Error::data(
                sd.path(),
                format!("weight {conv} has shape {:?}, which does not fit {cin} input channels", [cout, cing, kh, kw]),
            ));
        }
        let geom = ConvGeom { cin, cout, k: kh, stride, pad: kh / 2, groups: cin / cing };
        let mut w = sd.vec(conv, &[cout, cing, kh, kw])?;
        let mut b = vec![0f32; cout];
        if let Some(bn) = bn {
            let a = Affine::batch_norm(sd, bn, cout)?;
            fold_output_affine(&mut w, &mut b, &a);
        }
        let alpha = prelu.map(|p| sd.vec(&format!("{p}.weight"), &[cout])).transpose()?;
        Ok(ConvParams { geom, w, b, alpha, pre: None })
    }
}

/// `y = a(conv(x) + b)` with `a` per output channel: scale the weights and bias, add the shift (f64).
pub fn fold_output_affine(w: &mut [f32], b: &mut [f32], a: &Affine) {
    let per = w.len() / b.len().max(1);
    for (o, (wo, bo)) in w.chunks_mut(per).zip(b.iter_mut()).enumerate() {
        for v in wo.iter_mut() {
            *v = (*v as f64 * a.scale[o]) as f32;
        }
        *bo = (*bo as f64 * a.scale[o] + a.shift[o]) as f32;
    }
}

fn channel_tensor(v: &[f32], device: &Device, dtype: DType) -> candle_core::Result<Tensor> {
    Tensor::from_slice(v, (1, v.len(), 1, 1), device)?.to_dtype(dtype)
}

impl Conv {
    pub fn new(p: ConvParams, device: &Device, dtype: DType) -> Result<Self> {
        let g = p.geom;
        let cing = g.cin / g.groups.max(1);
        if g.groups == 0 || p.w.len() != g.cout * cing * g.k * g.k || p.b.len() != g.cout {
            return Err(Error::Invalid(format!("convolution parameters do not match {g:?}")));
        }
        if p.pre.is_some() && g.groups != 1 {
            return Err(Error::Invalid("an input affine is only supported for dense convolutions".into()));
        }
        let e = super::candle_err("placing convolution weights");
        let w = Tensor::from_slice(&p.w, (g.cout, cing, g.k, g.k), device).and_then(|t| t.to_dtype(dtype));
        let w = w.map_err(super::candle_err("placing convolution weights"))?;
        let b = channel_tensor(&p.b, device, dtype).map_err(e)?;
        let alpha = match &p.alpha {
            Some(a) => Some(channel_tensor(a, device, dtype).map_err(super::candle_err("placing PReLU"))?),
            None => None,
        };
        let pre_f32 = p.pre.as_ref().map(|a| {
            let scale: Vec<f32> = a.scale.iter().map(|&v| v as f32).collect();
            let shift: Vec<f32> = a.shift.iter().map(|&v| v as f32).collect();
            (scale, shift)
        });
        let pre = match &pre_f32 {
            Some((s, t)) => {
                let st = channel_tensor(s, device, dtype).and_then(|s| Ok((s, channel_tensor(t, device, dtype)?)));
                Some(st.map_err(super::candle_err("placing BatchNorm"))?)
            }
            None => None,
        };
        let cpu = (device.is_cpu() && dtype == DType::F32).then_some(CpuConv {
            g,
            w: p.w,
            b: p.b,
            alpha: p.alpha,
            pre: pre_f32,
        });
        Ok(Conv { geom: g, cpu, w, b, alpha, pre })
    }

    /// `x`: `(N, cin, H, W)`; `residual`, when given, has the output's shape.
    pub fn forward(&self, x: &Tensor, residual: Option<&Tensor>) -> candle_core::Result<Tensor> {
        match &self.cpu {
            Some(op) if x.device().is_cpu() && x.dtype() == DType::F32 => {
                let x = x.contiguous()?;
                match residual {
                    None => x.apply_op1_no_bwd(op),
                    Some(r) => x.apply_op2_no_bwd(&r.contiguous()?, op),
                }
            }
            _ => self.forward_candle(x, residual),
        }
    }

    /// The same layer as plain candle ops (any device and dtype).
    pub fn forward_candle(&self, x: &Tensor, residual: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let g = self.geom;
        let mut x = x.to_dtype(self.w.dtype())?;
        if let Some((s, t)) = &self.pre {
            x = x.broadcast_mul(s)?.broadcast_add(t)?;
        }
        let mut y = if g.groups == 1 {
            x.conv2d(&self.w, g.pad, g.stride, 1, 1)?
        } else {
            grouped_shift_add(&x, &self.w, g.stride, g.pad, g.groups)?
        };
        y = y.broadcast_add(&self.b)?;
        if let Some(a) = &self.alpha {
            y = prelu(&y, a)?;
        }
        match residual {
            Some(r) => {
                let r = r.to_dtype(y.dtype())?;
                y + r
            }
            None => Ok(y),
        }
    }
}

/// PReLU with per-channel slopes `a` of shape `(1, C, 1, 1)`: `max(y,0) − a·max(−y,0)`.
pub fn prelu(y: &Tensor, a: &Tensor) -> candle_core::Result<Tensor> {
    y.relu()? - y.neg()?.relu()?.broadcast_mul(a)?
}

/// Grouped convolution without candle's per-group split: for each of the `cin/groups` inputs of a
/// group and each kernel tap, one multiply-add of a shifted (strided) view by a per-channel weight.
pub fn grouped_shift_add(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: usize,
    groups: usize,
) -> candle_core::Result<Tensor> {
    let (n, _cin, h, wd) = x.dims4()?;
    let (cout, ipg, kh, kw) = w.dims4()?;
    let opg = cout / groups;
    if h + 2 * pad < kh || wd + 2 * pad < kw {
        candle_core::bail!("input {h}x{wd} smaller than the {kh}x{kw} kernel");
    }
    let (ho, wo) = ((h + 2 * pad - kh) / stride + 1, (wd + 2 * pad - kw) / stride + 1);
    if ipg == 1 && opg == 1 && pad == 0 && (kh, kw) == (h, wd) {
        // Global depthwise (GDC): one broadcast multiply and a sum.
        return x.broadcast_mul(&w.reshape((1, cout, kh, kw))?)?.sum_keepdim(3)?.sum_keepdim(2);
    }
    // Extra zeros at the bottom/right let strided taps be taken by a reshape.
    let xp = x.pad_with_zeros(2, pad, pad + stride)?.pad_with_zeros(3, pad, pad + stride)?;
    let mut acc: Option<Tensor> = None;
    for j in 0..ipg {
        let xj = if ipg == 1 && opg == 1 {
            xp.clone()
        } else {
            let idx: Vec<u32> = (0..cout).map(|co| ((co / opg) * ipg + j) as u32).collect();
            xp.index_select(&Tensor::new(idx, x.device())?, 1)?
        };
        for a in 0..kh {
            for b in 0..kw {
                let v = xj.narrow(2, a, ho * stride)?.narrow(3, b, wo * stride)?;
                let v = if stride > 1 {
                    let v = v.contiguous()?.reshape((n, cout, ho, stride, wo, stride))?;
                    v.narrow(3, 0, 1)?.narrow(5, 0, 1)?.reshape((n, cout, ho, wo))?
                } else {
                    v
                };
                let wv = w.narrow(1, j, 1)?.narrow(2, a, 1)?.narrow(3, b, 1)?.reshape((1, cout, 1, 1))?;
                let t = v.broadcast_mul(&wv)?;
                acc = Some(match acc {
                    None => t,
                    Some(s) => (s + t)?,
                });
            }
        }
    }
    acc.ok_or_else(|| candle_core::Error::Msg("empty convolution kernel".into()))
}

/// Range of output columns whose tap `b` falls inside an input row of width `w`.
fn valid_cols(w: usize, wo: usize, b: usize, stride: usize, pad: usize) -> (usize, usize) {
    let lo = if pad > b { (pad - b).div_ceil(stride) } else { 0 };
    let hi = if w + pad > b { ((w - 1 + pad - b) / stride + 1).min(wo) } else { 0 };
    (lo.min(hi), hi)
}

impl CpuConv {
    fn run(&self, x: &[f32], dims: &[usize], res: Option<&[f32]>) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.g;
        let &[n, c, h, w] = dims else { candle_core::bail!("convolution input must be 4-D, got {dims:?}") };
        if c != g.cin {
            candle_core::bail!("convolution expects {} input channels, got {c}", g.cin);
        }
        let Some((ho, wo)) = g.out_hw(h, w) else { candle_core::bail!("input {h}x{w} too small for {g:?}") };
        let plane = g.cout * ho * wo;
        if let Some(r) = res {
            if r.len() != n * plane {
                candle_core::bail!("residual has {} values, expected {}", r.len(), n * plane);
            }
        }
        let mut out = vec![0f32; n * plane];
        out.par_chunks_mut(plane).enumerate().for_each(|(i, o)| {
            let xi = &x[i * c * h * w..(i + 1) * c * h * w];
            if g.groups == 1 {
                self.dense_image(xi, h, w, ho, wo, o);
            } else {
                self.grouped_image(xi, h, w, ho, wo, o);
            }
            self.epilogue(o, ho * wo, res.map(|r| &r[i * plane..(i + 1) * plane]));
        });
        Ok((CpuStorage::F32(out), Shape::from((n, g.cout, ho, wo))))
    }

    /// One image, dense: bias, then W·im2col(x) tile by tile of output rows.
    fn dense_image(&self, xi: &[f32], h: usize, w: usize, ho: usize, wo: usize, o: &mut [f32]) {
        let g = self.g;
        let hwo = ho * wo;
        for (row, &b) in o.chunks_mut(hwo).zip(&self.b) {
            row.fill(b);
        }
        let kk = g.cin * g.k * g.k;
        let lhs = MatRef::from_row_major_slice(&self.w, g.cout, kk);
        if g.k == 1 && g.stride == 1 && g.pad == 0 && self.pre.is_none() {
            let rhs = MatRef::from_row_major_slice(xi, g.cin, h * w);
            matmul(MatMut::from_row_major_slice_mut(o, g.cout, hwo), Accum::Add, lhs, rhs, 1.0f32, Par::Seq);
            return;
        }
        let rows_per_tile = (COL_TILE / (kk * wo).max(1)).clamp(1, ho);
        let mut col = vec![0f32; kk * rows_per_tile * wo];
        let mut oy0 = 0;
        while oy0 < ho {
            let rows = rows_per_tile.min(ho - oy0);
            let cols = rows * wo;
            let col = &mut col[..kk * cols];
            self.im2col(xi, h, w, oy0, rows, wo, col);
            let rhs = MatRef::from_row_major_slice(col, kk, cols);
            // faer 0.24.4's `from_row_major_slice_with_stride_mut` swaps the two strides and writes out of
            // bounds (sarah-quinones/faer-rs PR #267, open); the transposed column-major view is correct.
            let dst =
                MatMut::from_column_major_slice_with_stride_mut(&mut o[oy0 * wo..], cols, g.cout, hwo).transpose_mut();
            matmul(dst, Accum::Add, lhs, rhs, 1.0f32, Par::Seq);
            oy0 += rows;
        }
    }

    /// Patches of output rows `oy0..oy0+rows` as a `(cin·k·k, rows·wo)` row-major matrix; the input
    /// affine (if any) is applied to real pixels only, padding stays zero.
    #[allow(clippy::too_many_arguments)]
    fn im2col(&self, xi: &[f32], h: usize, w: usize, oy0: usize, rows: usize, wo: usize, col: &mut [f32]) {
        let g = self.g;
        let cols = rows * wo;
        for ci in 0..g.cin {
            let plane = &xi[ci * h * w..(ci + 1) * h * w];
            let (sc, sh) = self.pre.as_ref().map_or((1.0, 0.0), |(s, t)| (s[ci], t[ci]));
            for a in 0..g.k {
                for b in 0..g.k {
                    let r = (ci * g.k + a) * g.k + b;
                    let dst = &mut col[r * cols..(r + 1) * cols];
                    let (lo, hi) = valid_cols(w, wo, b, g.stride, g.pad);
                    for (t, drow) in dst.chunks_mut(wo).enumerate() {
                        let iy = ((oy0 + t) * g.stride + a) as isize - g.pad as isize;
                        if iy < 0 || iy >= h as isize {
                            drow.fill(0.0);
                            continue;
                        }
                        let srow = &plane[iy as usize * w..(iy as usize + 1) * w];
                        drow[..lo].fill(0.0);
                        drow[hi..].fill(0.0);
                        if g.stride == 1 {
                            let s0 = lo + b - g.pad;
                            let src = &srow[s0..s0 + (hi - lo)];
                            if self.pre.is_some() {
                                drow[lo..hi].iter_mut().zip(src).for_each(|(d, &v)| *d = v * sc + sh);
                            } else {
                                drow[lo..hi].copy_from_slice(src);
                            }
                        } else {
                            for (ox, d) in drow.iter_mut().enumerate().take(hi).skip(lo) {
                                *d = srow[ox * g.stride + b - g.pad] * sc + sh;
                            }
                        }
                    }
                }
            }
        }
    }

    /// One image, grouped (depthwise when `cin/groups == 1`): every output plane starts at its bias
    /// and accumulates `w·(shifted input plane)` for each tap.
    fn grouped_image(&self, xi: &[f32], h: usize, w: usize, ho: usize, wo: usize, o: &mut [f32]) {
        let g = self.g;
        let (ipg, opg) = (g.cin / g.groups, g.cout / g.groups);
        let kk = g.k * g.k;
        for (co, op) in o.chunks_mut(ho * wo).enumerate() {
            op.fill(self.b[co]);
            for j in 0..ipg {
                let ci = (co / opg) * ipg + j;
                let xp = &xi[ci * h * w..(ci + 1) * h * w];
                let wts = &self.w[(co * ipg + j) * kk..(co * ipg + j + 1) * kk];
                for a in 0..g.k {
                    for b in 0..g.k {
                        let wv = wts[a * g.k + b];
                        let (lo, hi) = valid_cols(w, wo, b, g.stride, g.pad);
                        if lo >= hi {
                            continue;
                        }
                        for (oy, orow) in op.chunks_mut(wo).enumerate() {
                            let iy = (oy * g.stride + a) as isize - g.pad as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let srow = &xp[iy as usize * w..(iy as usize + 1) * w];
                            if g.stride == 1 {
                                let s0 = lo + b - g.pad;
                                let src = &srow[s0..s0 + (hi - lo)];
                                orow[lo..hi].iter_mut().zip(src).for_each(|(d, &v)| *d += wv * v);
                            } else {
                                for (ox, d) in orow.iter_mut().enumerate().take(hi).skip(lo) {
                                    *d += wv * srow[ox * g.stride + b - g.pad];
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// PReLU, then the residual.
    fn epilogue(&self, o: &mut [f32], hw: usize, res: Option<&[f32]>) {
        if let Some(alpha) = &self.alpha {
            for (row, &a) in o.chunks_mut(hw).zip(alpha) {
                row.iter_mut().for_each(|v| {
                    if *v < 0.0 {
                        *v *= a
                    }
                });
            }
        }
        if let Some(r) = res {
            o.iter_mut().zip(r).for_each(|(v, &r)| *v += r);
        }
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    if !l.is_contiguous() {
        candle_core::bail!("convolution input must be contiguous");
    }
    let s = s.as_slice::<f32>()?;
    Ok(&s[l.start_offset()..l.start_offset() + l.shape().elem_count()])
}

impl CustomOp1 for CpuConv {
    fn name(&self) -> &'static str {
        "aifr-conv"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run(f32_slice(s, l)?, l.dims(), None)
    }
}

impl CustomOp2 for CpuConv {
    fn name(&self) -> &'static str {
        "aifr-conv-residual"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run(f32_slice(s1, l1)?, l1.dims(), Some(f32_slice(s2, l2)?))
    }
}

/// `y = x·Wᵀ + b`; on the CPU in f32 one image (row) per task, so rows do not depend on the batch.
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
    cpu: Option<(Vec<f32>, Vec<f32>)>,
    w: Tensor,
    b: Tensor,
}

impl Linear {
    /// `w`: `(outputs, inputs)` row-major.
    pub fn new(w: Vec<f32>, b: Vec<f32>, device: &Device, dtype: DType) -> Result<Self> {
        let outputs = b.len();
        if outputs == 0 || w.len() % outputs != 0 {
            return Err(Error::Invalid(format!("linear layer: {} weights for {outputs} outputs", w.len())));
        }
        let inputs = w.len() / outputs;
        let e = super::candle_err("placing linear weights");
        let wt = Tensor::from_slice(&w, (outputs, inputs), device).and_then(|t| t.to_dtype(dtype));
        let wt = wt.map_err(e)?;
        let bt = Tensor::from_slice(&b, outputs, device).and_then(|t| t.to_dtype(dtype));
        let bt = bt.map_err(super::candle_err("placing linear bias"))?;
        let cpu = (device.is_cpu() && dtype == DType::F32).then_some((w, b));
        Ok(Linear { inputs, outputs, cpu, w: wt, b: bt })
    }

    /// `x`: `(N, inputs)`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, d) = x.dims2()?;
        if d != self.inputs {
            candle_core::bail!("linear layer expects {} inputs, got {d}", self.inputs);
        }
        match &self.cpu {
            Some((w, b)) if x.device().is_cpu() && x.dtype() == DType::F32 => {
                let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
                let wt = MatRef::from_row_major_slice(w, self.outputs, self.inputs).transpose();
                let mut out = vec![0f32; n * self.outputs];
                out.par_chunks_mut(self.outputs).zip(xs.par_chunks(self.inputs)).for_each(|(o, xr)| {
                    o.copy_from_slice(b);
                    let lhs = MatRef::from_row_major_slice(xr, 1, self.inputs);
                    matmul(MatMut::from_row_major_slice_mut(o, 1, self.outputs), Accum::Add, lhs, wt, 1.0f32, Par::Seq);
                });
                Tensor::from_vec(out, (n, self.outputs), x.device())
            }
            _ => x.to_dtype(self.w.dtype())?.matmul(&self.w.t()?)?.broadcast_add(&self.b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn rand_vec(rng: &mut rand_chacha::ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0f32..1.0) * scale).collect()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Our layer (CPU kernel and the candle-op path) against candle's own `conv2d(groups)` followed
    /// by bias, PReLU and residual written out by hand.
    fn check(geom: ConvGeom, h: usize, w: usize, with_prelu: bool, with_res: bool, with_pre: bool) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((geom.cin * 131 + geom.k * 7 + geom.stride) as u64);
        let dev = Device::Cpu;
        let n = 3;
        let cing = geom.cin / geom.groups;
        let wv = rand_vec(&mut rng, geom.cout * cing * geom.k * geom.k, 0.5);
        let bv = rand_vec(&mut rng, geom.cout, 0.5);
        let av: Vec<f32> = (0..geom.cout).map(|_| rng.gen_range(0.0f32..0.5)).collect();
        let pre = Affine {
            scale: (0..geom.cin).map(|_| rng.gen_range(0.5..1.5)).collect(),
            shift: (0..geom.cin).map(|_| rng.gen_range(-0.5..0.5)).collect(),
        };
        let x = Tensor::from_vec(rand_vec(&mut rng, n * geom.cin * h * w, 1.0), (n, geom.cin, h, w), &dev).unwrap();
        let (ho, wo) = geom.out_hw(h, w).unwrap();
        let r =
            Tensor::from_vec(rand_vec(&mut rng, n * geom.cout * ho * wo, 1.0), (n, geom.cout, ho, wo), &dev).unwrap();

        let wt = Tensor::from_vec(wv.clone(), (geom.cout, cing, geom.k, geom.k), &dev).unwrap();
        let ct = |v: &[f32]| Tensor::from_vec(v.to_vec(), (1, v.len(), 1, 1), &dev).unwrap();
        let pre32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let xin = if with_pre {
            x.broadcast_mul(&ct(&pre32(&pre.scale))).unwrap().broadcast_add(&ct(&pre32(&pre.shift))).unwrap()
        } else {
            x.clone()
        };
        let mut want = xin.conv2d(&wt, geom.pad, geom.stride, 1, geom.groups).unwrap().broadcast_add(&ct(&bv)).unwrap();
        if with_prelu {
            let a = ct(&av);
            let neg = want.minimum(&want.zeros_like().unwrap()).unwrap();
            want = (want.relu().unwrap() + neg.broadcast_mul(&a).unwrap()).unwrap();
        }
        if with_res {
            want = (want + &r).unwrap();
        }
        let conv = Conv::new(
            ConvParams { geom, w: wv, b: bv, alpha: with_prelu.then_some(av), pre: with_pre.then_some(pre) },
            &dev,
            DType::F32,
        )
        .unwrap();
        let res = with_res.then_some(&r);
        let got = conv.forward(&x, res).unwrap();
        let got_candle = conv.forward_candle(&x, res).unwrap();
        let (d1, d2) = (max_diff(&got, &want), max_diff(&got_candle, &want));
        // f32 rounding grows with the output magnitude (sums of up to cin·k·k products).
        let scale = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
        assert!(d1 < 4e-6 * scale && d2 < 4e-6 * scale, "{geom:?} {h}x{w}: kernel {d1}, candle ops {d2}, |y| {scale}");
    }

    fn geom(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, groups: usize) -> ConvGeom {
        ConvGeom { cin, cout, k, stride, pad, groups }
    }

    #[test]
    fn depthwise_matches_grouped_conv2d() {
        for (s, p) in [(1, 1), (2, 1), (1, 0), (2, 0)] {
            check(geom(5, 5, 3, s, p, 5), 9, 8, true, false, false);
            check(geom(5, 5, 3, s, p, 5), 8, 9, false, true, false);
        }
        // Global depthwise 7x7 (GDC) and a 5x5 kernel with odd sizes.
        check(geom(6, 6, 7, 1, 0, 6), 7, 7, false, false, false);
        check(geom(4, 4, 5, 2, 2, 4), 11, 10, true, true, false);
    }

    #[test]
    fn grouped_with_several_channels_per_group_matches_conv2d() {
        // MobileFaceNet's second layer: 64 groups of 2 channels (scaled down here).
        check(geom(8, 8, 3, 1, 1, 4), 9, 9, true, false, false);
        check(geom(6, 12, 3, 2, 1, 3), 9, 8, false, true, false);
    }

    #[test]
    fn dense_matches_conv2d() {
        check(geom(4, 6, 1, 1, 0, 1), 7, 5, true, false, false);
        check(geom(4, 6, 1, 2, 0, 1), 7, 5, false, true, false);
        check(geom(3, 5, 3, 1, 1, 1), 9, 7, true, false, false);
        check(geom(3, 5, 3, 2, 1, 1), 9, 7, false, true, false);
        // Input affine (IResNet's bn1 before conv1): padding must stay zero after the affine.
        check(geom(3, 5, 3, 1, 1, 1), 6, 6, true, false, true);
        check(geom(3, 5, 3, 2, 1, 1), 7, 6, false, true, true);
        check(geom(4, 3, 1, 1, 0, 1), 5, 5, false, false, true);
    }

    #[test]
    fn dense_tiles_rows_of_large_inputs() {
        // cin·k·k·wo large enough that im2col runs in several row tiles.
        let g = geom(64, 8, 3, 1, 1, 1);
        const { assert!(COL_TILE / (64 * 9 * 100) < 100) };
        check(g, 100, 100, true, true, false);
    }

    #[test]
    fn folded_batch_norm_matches_conv_then_batch_norm() {
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (cin, cout, k) = (3, 4, 3);
        let w = rand_vec(&mut rng, cout * cin * k * k, 0.5);
        let gamma = rand_vec(&mut rng, cout, 1.0);
        let beta = rand_vec(&mut rng, cout, 1.0);
        let mean = rand_vec(&mut rng, cout, 1.0);
        let var: Vec<f32> = (0..cout).map(|_| rng.gen_range(0.1f32..2.0)).collect();
        let mut m = std::collections::HashMap::new();
        let t = |v: &Vec<f32>, s: &[usize]| Tensor::from_vec(v.clone(), s, &dev).unwrap();
        m.insert("c.weight".to_string(), t(&w, &[cout, cin, k, k]));
        m.insert("bn.weight".to_string(), t(&gamma, &[cout]));
        m.insert("bn.bias".to_string(), t(&beta, &[cout]));
        m.insert("bn.running_mean".to_string(), t(&mean, &[cout]));
        m.insert("bn.running_var".to_string(), t(&var, &[cout]));
        let sd = StateDict::from_tensors(std::path::Path::new("mem"), m);
        let conv =
            Conv::new(ConvParams::load(&sd, "c.weight", cin, 2, Some("bn"), None).unwrap(), &dev, DType::F32).unwrap();
        let x = Tensor::from_vec(rand_vec(&mut rng, 2 * cin * 9 * 9, 1.0), (2, cin, 9, 9), &dev).unwrap();
        let ch = |v: &Vec<f32>| Tensor::from_vec(v.clone(), (1, cout, 1, 1), &dev).unwrap();
        let y = x.conv2d(&t(&w, &[cout, cin, k, k]), 1, 2, 1, 1).unwrap();
        let denom = (ch(&var) + 1e-5).unwrap().sqrt().unwrap();
        let want = y
            .broadcast_sub(&ch(&mean))
            .unwrap()
            .broadcast_div(&denom)
            .unwrap()
            .broadcast_mul(&ch(&gamma))
            .unwrap()
            .broadcast_add(&ch(&beta))
            .unwrap();
        let got = conv.forward(&x, None).unwrap();
        assert!(max_diff(&got, &want) < 1e-5, "{}", max_diff(&got, &want));
        // A wrong BatchNorm changes the result (the comparison can fail).
        let no_bn =
            Conv::new(ConvParams::load(&sd, "c.weight", cin, 2, None, None).unwrap(), &dev, DType::F32).unwrap();
        assert!(max_diff(&no_bn.forward(&x, None).unwrap(), &want) > 1e-2);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Device::Cpu;
        let p = ConvParams { geom: geom(4, 4, 3, 1, 1, 4), w: vec![0.0; 5], b: vec![0.0; 4], alpha: None, pre: None };
        assert!(Conv::new(p, &dev, DType::F32).is_err());
        let p = ConvParams { geom: geom(4, 4, 3, 1, 1, 1), w: vec![0.0; 144], b: vec![0.0; 4], alpha: None, pre: None };
        let c = Conv::new(p, &dev, DType::F32).unwrap();
        let x = Tensor::zeros((1, 3, 5, 5), DType::F32, &dev).unwrap();
        assert!(c.forward(&x, None).is_err());
        let x = Tensor::zeros((1, 4, 1, 1), DType::F32, &dev).unwrap();
        assert!(c.forward(&x, None).is_ok());
        let p = ConvParams { geom: geom(4, 4, 3, 1, 0, 1), w: vec![0.0; 144], b: vec![0.0; 4], alpha: None, pre: None };
        let c = Conv::new(p, &dev, DType::F32).unwrap();
        assert!(c.forward(&x, None).is_err());
    }

    #[test]
    fn linear_matches_matmul() {
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let w = rand_vec(&mut rng, 6 * 10, 1.0);
        let b = rand_vec(&mut rng, 6, 1.0);
        let l = Linear::new(w.clone(), b.clone(), &dev, DType::F32).unwrap();
        let x = Tensor::from_vec(rand_vec(&mut rng, 3 * 10, 1.0), (3, 10), &dev).unwrap();
        let want = x
            .matmul(&Tensor::from_vec(w, (6, 10), &dev).unwrap().t().unwrap())
            .unwrap()
            .broadcast_add(&Tensor::from_vec(b, 6, &dev).unwrap())
            .unwrap();
        assert!(max_diff(&l.forward(&x).unwrap(), &want) < 1e-5);
    }
}

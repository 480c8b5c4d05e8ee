//! Inputs and comparisons shared by the network tests (the `support::nets` module).

use aifr_eval::model::InputSpec;
use candle_core::{Device, Tensor};

/// The reference scripts' formula batch: x[n,h,w,c] = (n*131 + h*31 + w*17 + c*7) % 256 (RGB),
/// NCHW, then `(x − mean[c]) / std[c]` in f32 as the network's input spec says.
pub fn formula_input(n: usize, spec: &InputSpec) -> Tensor {
    let mut v = vec![0f32; n * 3 * 112 * 112];
    for i in 0..n {
        for c in 0..3 {
            for h in 0..112 {
                for w in 0..112 {
                    let raw = ((i * 131 + h * 31 + w * 17 + c * 7) % 256) as f32;
                    v[((i * 3 + c) * 112 + h) * 112 + w] = (raw - spec.mean[c]) / spec.std[c];
                }
            }
        }
    }
    Tensor::from_vec(v, (n, 3, 112, 112), &Device::Cpu).unwrap()
}

/// `{"shape": [...], "data": [...]}` from a reference JSON.
pub fn tensor_json(e: &serde_json::Value) -> (Vec<usize>, Vec<f32>) {
    let shape = e["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let data = e["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    (shape, data)
}

pub fn max_abs_diff(got: &Tensor, want: &[f32]) -> f32 {
    let g = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(g.len(), want.len());
    g.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

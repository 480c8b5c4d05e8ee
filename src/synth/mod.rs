//! Synthetic benchmarks in the real on-disk layouts, for the demo, the tests and the benches:
//! nothing here is needed to evaluate real data. (The pair-benchmark and ageing-cohort
//! generators live in `demo` and `cohort`.)

pub mod ijb;
pub mod megaface;
pub mod rfw;

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// `n` independent normal draws with standard deviation `sd` (identity centres, noise).
pub(crate) fn gaussian(rng: &mut ChaCha8Rng, n: usize, sd: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            sd * z
        })
        .collect()
}

/// `v` scaled to unit length.
pub(crate) fn unit(mut v: Vec<f64>) -> Vec<f64> {
    let n = crate::score::kernels::l2_norm(&v);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

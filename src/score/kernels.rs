//! The vector kernels every protocol scores with: dot products, squared distances, L2 norms and
//! normalisation. Each function is one summation order; callers that need the same bits must
//! call the same function, and two orders are two functions, named by what they do.
//!
//! * f64, sequential (`dot_f64`, `sq_dist_f64`, `l2_norm`): pair benchmarks, FG-NET, manifests
//!   and every normalisation (docs/protocols.md §1.2).
//! * f32, 16 lanes with a fixed reduction tree (`dot_f32x16`, and `dot4_avx2` which gives its
//!   bits four at a time): IJB pair and 1:N scores, identical with SSE2 or AVX2.
//!
//! Probe × gallery GEMMs are in the parent module (`gemm_scores`, the `BlockScorer`s).

/// `Σ a_i·b_i` in f64, left to right.
#[inline]
pub fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>()
}

/// `Σ (a_i − b_i)²` in f64, left to right (insightface's distance, docs/protocols.md §1.3.2).
#[inline]
pub fn sq_dist_f64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>()
}

/// L2 norm accumulated in f64, left to right, whatever the element type.
#[inline]
pub fn l2_norm<T: Copy + Into<f64>>(v: &[T]) -> f64 {
    v.iter()
        .map(|&x| {
            let x: f64 = x.into();
            x * x
        })
        .sum::<f64>()
        .sqrt()
}

/// Divides `v` by its [`l2_norm`]; false, leaving `v` unchanged, when the norm is zero or not
/// finite (no cosine score can be computed from it).
pub fn unit_f64(v: &mut [f64]) -> bool {
    let n = l2_norm(v);
    if !(n > 0.0 && n.is_finite()) {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= n);
    true
}

/// L2-normalises an f32 row in place: [`l2_norm`] in f64, then each value times its inverse;
/// false for a zero or non-finite norm.
pub fn normalize(row: &mut [f32]) -> bool {
    let norm = l2_norm(row);
    if !(norm.is_finite() && norm > 0.0) {
        return false;
    }
    let inv = 1.0 / norm;
    for v in row.iter_mut() {
        *v = (*v as f64 * inv) as f32;
    }
    true
}

/// Dot product with 16 independent f32 lanes and a fixed reduction tree: the same bits whether
/// the compiler uses 4-wide or 8-wide vectors.
#[inline(always)]
pub fn dot_f32x16(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    reduce16(acc) + tail
}

/// The fixed pairwise reduction of 16 lanes: 8 + 8, then 4 + 4, 2 + 2, 1 + 1.
#[inline(always)]
fn reduce16(mut acc: [f32; 16]) -> f32 {
    let mut w = 8;
    while w > 0 {
        for l in 0..w {
            acc[l] += acc[l + w];
        }
        w /= 2;
    }
    acc[0]
}

/// Four dot products at once with AVX2, each with exactly [`dot_f32x16`]'s operations in its
/// order (16 lanes, multiply then add, the same pairwise lane reduction), so the same bits: four
/// independent accumulator chains hide the add latency that bounds a single dot.
///
/// # Safety
/// The CPU must support AVX2, and all eight rows must have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn dot4_avx2(a: [&[f32]; 4], b: [&[f32]; 4]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let n = a[0].len();
    let full = n - n % 16;
    let mut lo = [_mm256_setzero_ps(); 4];
    let mut hi = [_mm256_setzero_ps(); 4];
    let mut c = 0;
    while c < full {
        for k in 0..4 {
            // SAFETY: c + 16 <= full <= len of every row.
            let (pa, pb) = (a[k].as_ptr().add(c), b[k].as_ptr().add(c));
            lo[k] = _mm256_add_ps(lo[k], _mm256_mul_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb)));
            hi[k] = _mm256_add_ps(hi[k], _mm256_mul_ps(_mm256_loadu_ps(pa.add(8)), _mm256_loadu_ps(pb.add(8))));
        }
        c += 16;
    }
    let mut out = [0f32; 4];
    for k in 0..4 {
        let mut acc = [0f32; 16];
        _mm256_storeu_ps(acc.as_mut_ptr(), lo[k]);
        _mm256_storeu_ps(acc.as_mut_ptr().add(8), hi[k]);
        let tail: f32 = a[k][full..].iter().zip(&b[k][full..]).map(|(x, y)| x * y).sum();
        out[k] = reduce16(acc) + tail;
    }
    out
}

/// Whether [`dot4_avx2`] may be called on this CPU.
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_is_exact_on_small_integers_and_handles_tails() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..37).map(|i| (i % 3) as f32).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot_f32x16(&a, &b), want);
    }

    #[test]
    fn dot4_gives_dots_bits() {
        for dim in [1, 15, 16, 37, 512] {
            let v: Vec<Vec<f32>> = (0..8)
                .map(|r| (0..dim).map(|i| (((r * 131 + i) * 7919) % 1009) as f32 / 97.0 - 5.1).collect())
                .collect();
            if !has_avx2() {
                return;
            }
            // SAFETY: AVX2 detected; equal lengths.
            let four = unsafe { dot4_avx2([&v[0], &v[1], &v[2], &v[3]], [&v[4], &v[5], &v[6], &v[7]]) };
            for k in 0..4 {
                assert_eq!(four[k].to_bits(), dot_f32x16(&v[k], &v[k + 4]).to_bits(), "dim {dim} lane {k}");
            }
        }
    }

    /// The f64 kernels sum left to right: a value that a pairwise or reordered sum would round
    /// away (1 + 2⁻⁵³ + 2⁻⁵³ − 1) shows the order.
    #[test]
    fn f64_kernels_sum_left_to_right() {
        let e = f64::EPSILON / 2.0;
        let a = [1.0, e, e, -1.0];
        let ones = [1.0; 4];
        assert_eq!(dot_f64(&a, &ones), 0.0);
        assert_eq!(dot_f64(&[e, e, 1.0, -1.0], &ones), 2.0 * e);
        assert_eq!(sq_dist_f64(&[3.0, 1.0], &[0.0, 1.0]), 9.0);
        assert_eq!(l2_norm(&[3f32, 4.0]), 5.0);
        assert_eq!(l2_norm(&[3f64, 4.0]), 5.0);
    }

    #[test]
    fn normalisation_refuses_zero_and_non_finite_norms() {
        let mut v = vec![0.0f64, 0.0];
        assert!(!unit_f64(&mut v));
        let mut v = vec![3.0f64, 4.0];
        assert!(unit_f64(&mut v));
        assert_eq!(v, [0.6, 0.8]);
        let mut v = vec![f64::INFINITY, 1.0];
        assert!(!unit_f64(&mut v) && v[1] == 1.0);
        let mut r = vec![3f32, 4.0];
        assert!(normalize(&mut r));
        assert_eq!(r, [0.6, 0.8]);
        assert!(!normalize(&mut [0f32, 0.0]) && !normalize(&mut [f32::NAN, 1.0]));
    }
}

//! 5-point similarity alignment (least squares, the Umeyama solution) and the bilinear sampler
//! shared by alignment and resizing.
//!
//! Pixel coordinates are those of OpenCV's `warpAffine`: pixel (x, y) is sampled at integer
//! coordinates, `src = M⁻¹ · (x, y, 1)`.

/// The ArcFace 112×112 template: left eye, right eye, nose, left and right mouth corners.
pub const ARCFACE_TEMPLATE: [[f64; 2]; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

/// A 2×3 affine map `p' = [a b c; d e f] · (x, y, 1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [[f64; 3]; 2]);

impl Affine {
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let m = &self.0;
        (m[0][0] * x + m[0][1] * y + m[0][2], m[1][0] * x + m[1][1] * y + m[1][2])
    }

    /// The inverse map; `None` when the linear part is singular.
    pub fn inverse(&self) -> Option<Affine> {
        let [[a, b, c], [d, e, f]] = self.0;
        let det = a * e - b * d;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine([[ia, ib, -(ia * c + ib * f)], [id, ie, -(id * c + ie * f)]]))
    }

    /// Resizing `(sw, sh)` to `(dw, dh)` with pixel centres aligned (OpenCV's `resize` rule):
    /// `src = (dst + 0.5) · s − 0.5`. This is the destination → source map.
    pub fn resize_inverse(sw: usize, sh: usize, dw: usize, dh: usize) -> Affine {
        let (sx, sy) = (sw as f64 / dw as f64, sh as f64 / dh as f64);
        Affine([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
    }
}

/// The similarity transform (rotation, uniform scale, translation; no reflection) mapping `src`
/// onto `dst` with least squared error. In 2-D this closed form equals Umeyama's SVD solution:
/// with centred points, `s·R = [[a, −b], [b, a]]`, `a = Σ(x·u + y·v) / Σ|p|²`,
/// `b = Σ(x·v − y·u) / Σ|p|²`. Fails when the source points all coincide.
pub fn similarity_lstsq(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Result<Affine, String> {
    if src.len() != dst.len() || src.len() < 2 {
        return Err(format!(
            "alignment needs matching point lists of at least 2 (got {} and {})",
            src.len(),
            dst.len()
        ));
    }
    if src.iter().chain(dst).any(|p| !p[0].is_finite() || !p[1].is_finite()) {
        return Err("landmarks must be finite numbers".into());
    }
    let n = src.len() as f64;
    let mean = |pts: &[[f64; 2]]| {
        let (sx, sy) = pts.iter().fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
        (sx / n, sy / n)
    };
    let (mx, my) = mean(src);
    let (mu, mv) = mean(dst);
    let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
    for (p, q) in src.iter().zip(dst) {
        let (x, y, u, v) = (p[0] - mx, p[1] - my, q[0] - mu, q[1] - mv);
        num_a += x * u + y * v;
        num_b += x * v - y * u;
        den += x * x + y * y;
    }
    if den < 1e-12 {
        return Err("the landmarks all coincide: no alignment is defined".into());
    }
    let (a, b) = (num_a / den, num_b / den);
    Ok(Affine([[a, -b, mu - (a * mx - b * my)], [b, a, mv - (b * mx + a * my)]]))
}

/// What a sample outside the source image reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// 0 (alignment: `warpAffine` with a constant border of 0).
    Zero,
    /// The nearest edge pixel (resizing).
    Replicate,
}

/// Samples an interleaved RGB u8 image (`sw`×`sh`) at `out_w`×`out_h` positions
/// `inv · (x, y, 1)`, bilinearly; returns interleaved RGB f32 in 0..255 (not rounded).
pub fn warp_bilinear(
    rgb: &[u8],
    sw: usize,
    sh: usize,
    inv: &Affine,
    out_w: usize,
    out_h: usize,
    border: Border,
) -> Vec<f32> {
    let mut out = vec![0f32; out_w * out_h * 3];
    let (w, h) = (sw as i64, sh as i64);
    let px = |x: i64, y: i64, c: usize| -> f64 {
        let (x, y) = match border {
            Border::Zero if x < 0 || y < 0 || x >= w || y >= h => return 0.0,
            Border::Zero => (x, y),
            Border::Replicate => (x.clamp(0, w - 1), y.clamp(0, h - 1)),
        };
        rgb[(y * w + x) as usize * 3 + c] as f64
    };
    for oy in 0..out_h {
        for ox in 0..out_w {
            let (sx, sy) = inv.apply(ox as f64, oy as f64);
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            // Far outside (or NaN): every neighbour is border.
            if !(x0 > -2.0 && y0 > -2.0 && x0 < w as f64 + 1.0 && y0 < h as f64 + 1.0) && border == Border::Zero {
                continue;
            }
            let (x0, y0) = (x0.clamp(-2.0, w as f64 + 1.0) as i64, y0.clamp(-2.0, h as f64 + 1.0) as i64);
            let o = (oy * out_w + ox) * 3;
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
                let bottom = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
                out[o + c] = (top * (1.0 - fy) + bottom * fy) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_similarity_is_recovered() {
        // dst = 2·R(30°)·src + (5, −3)
        let (c, s) = (30f64.to_radians().cos() * 2.0, 30f64.to_radians().sin() * 2.0);
        let src = [[1.0, 2.0], [4.0, -1.0], [0.5, 0.5], [3.0, 3.0], [-2.0, 1.0]];
        let dst: Vec<[f64; 2]> = src.iter().map(|p| [c * p[0] - s * p[1] + 5.0, s * p[0] + c * p[1] - 3.0]).collect();
        let m = similarity_lstsq(&src, &dst).unwrap();
        let want = [[c, -s, 5.0], [s, c, -3.0]];
        for (got, want) in m.0.iter().zip(&want) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{m:?}");
            }
        }
        let inv = m.inverse().unwrap();
        let (x, y) = inv.apply(dst[1][0], dst[1][1]);
        assert!((x - 4.0).abs() < 1e-12 && (y + 1.0).abs() < 1e-12);
    }

    #[test]
    fn degenerate_landmarks_are_refused() {
        let p = [[3.0, 3.0]; 5];
        assert!(similarity_lstsq(&p, &ARCFACE_TEMPLATE).unwrap_err().contains("coincide"));
        let mut q = ARCFACE_TEMPLATE;
        q[2][0] = f64::NAN;
        assert!(similarity_lstsq(&q, &ARCFACE_TEMPLATE).is_err());
    }

    #[test]
    fn identity_warp_and_zero_border() {
        let rgb: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 10) as u8).collect();
        let id = Affine([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        let out = warp_bilinear(&rgb, 2, 2, &id, 2, 2, Border::Zero);
        assert_eq!(out, rgb.iter().map(|&v| v as f32).collect::<Vec<_>>());
        // Half a pixel to the right of the last column: half the pixel, half the zero border.
        let shift = Affine([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]);
        let out = warp_bilinear(&rgb, 2, 2, &shift, 2, 2, Border::Zero);
        assert_eq!(out[3], rgb[3] as f32 * 0.5);
        let out = warp_bilinear(&rgb, 2, 2, &shift, 2, 2, Border::Replicate);
        assert_eq!(out[3], rgb[3] as f32);
        // Entirely outside: zeros, not garbage.
        let far = Affine([[1.0, 0.0, 1e9], [0.0, 1.0, f64::NAN]]);
        assert!(warp_bilinear(&rgb, 2, 2, &far, 2, 2, Border::Zero).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn resize_maps_pixel_centres() {
        let inv = Affine::resize_inverse(4, 4, 2, 2);
        assert_eq!(inv.apply(0.0, 0.0), (0.5, 0.5));
        assert_eq!(inv.apply(1.0, 1.0), (2.5, 2.5));
    }
}

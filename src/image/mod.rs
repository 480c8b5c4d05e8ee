//! The image pipeline: decode (JPEG/PNG), optional 5-point alignment onto the network's template,
//! resize, per-channel normalisation per the network's [`InputSpec`], and the horizontal mirror.
//!
//! Everything here is a pure function of the image bytes (no I/O), so it parallelises freely
//! and gives the same floats on every machine and thread count.

pub mod align;

use crate::model::{ChannelOrder, InputSpec};
use align::{similarity_lstsq, warp_bilinear, Affine, Border, ARCFACE_TEMPLATE};

/// Five landmarks (left eye, right eye, nose, left and right mouth corners) in image pixels.
pub type Landmarks = [[f32; 2]; 5];

/// A decoded image: interleaved RGB, 8 bits per channel.
#[derive(Debug, Clone)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Decodes JPEG or PNG bytes (format from the magic bytes) to RGB. Grey, grey+alpha, RGBA,
/// 16-bit and CMYK inputs are converted; the error says what is wrong with the bytes.
pub fn decode(bytes: &[u8]) -> Result<Rgb, String> {
    if bytes.is_empty() {
        return Err("empty file, expected a JPEG or PNG image".into());
    }
    let format = ::image::guess_format(bytes).map_err(|_| {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("not a JPEG or PNG image (first bytes {})", head.join(" "))
    })?;
    if !matches!(format, ::image::ImageFormat::Jpeg | ::image::ImageFormat::Png) {
        return Err(format!("{format:?} images are not supported (JPEG or PNG expected)"));
    }
    let img = ::image::load_from_memory_with_format(bytes, format)
        .map_err(|e| format!("cannot decode {format:?} image: {e}"))?
        .into_rgb8();
    let (width, height) = (img.width() as usize, img.height() as usize);
    if width == 0 || height == 0 {
        return Err("image has no pixels".into());
    }
    Ok(Rgb { width, height, data: img.into_raw() })
}

/// The network input of one image, `(3, H, W)` planes normalised per the [`InputSpec`]; with
/// `flipped` the same for the horizontally mirrored image.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub original: Vec<f32>,
    pub flipped: Option<Vec<f32>>,
}

/// The alignment template for an input of `spec`'s size: the ArcFace 112×112 template scaled to
/// the input's width and height.
pub fn template_for(spec: &InputSpec) -> [[f64; 2]; 5] {
    let (sx, sy) = (spec.width as f64 / 112.0, spec.height as f64 / 112.0);
    ARCFACE_TEMPLATE.map(|[x, y]| [x * sx, y * sy])
}

/// The destination → source map that aligns `landmarks` onto the template of `spec`.
pub fn alignment_inverse(landmarks: &Landmarks, spec: &InputSpec) -> Result<Affine, String> {
    let src = landmarks.map(|[x, y]| [x as f64, y as f64]);
    let m = similarity_lstsq(&src, &template_for(spec)).map_err(|e| format!("cannot align the face: {e}"))?;
    m.inverse().ok_or_else(|| "cannot align the face: the landmark transform is singular".to_string())
}

/// Geometry step: aligned (landmarks given), resized (size differs) or as is; interleaved RGB f32.
pub fn to_network_size(img: &Rgb, landmarks: Option<&Landmarks>, spec: &InputSpec) -> Result<Vec<f32>, String> {
    let (w, h) = (spec.width, spec.height);
    if let Some(lm) = landmarks {
        let inv = alignment_inverse(lm, spec)?;
        return Ok(warp_bilinear(&img.data, img.width, img.height, &inv, w, h, Border::Zero));
    }
    if (img.width, img.height) == (w, h) {
        return Ok(img.data.iter().map(|&v| v as f32).collect());
    }
    let inv = Affine::resize_inverse(img.width, img.height, w, h);
    Ok(warp_bilinear(&img.data, img.width, img.height, &inv, w, h, Border::Replicate))
}

/// Interleaved RGB (0..255) → planar, in the network's channel order, `(x − mean[c]) / std[c]`.
pub fn normalise(hwc: &[f32], spec: &InputSpec) -> Vec<f32> {
    let plane = spec.width * spec.height;
    let mut out = vec![0f32; 3 * plane];
    for c in 0..3 {
        // Plane c takes source channel c (RGB) or 2 − c (BGR); mean/std are in the network's order.
        let src_c = match spec.channels {
            ChannelOrder::Rgb => c,
            ChannelOrder::Bgr => 2 - c,
        };
        let (mean, std) = (spec.mean[c], spec.std[c]);
        for (i, o) in out[c * plane..(c + 1) * plane].iter_mut().enumerate() {
            *o = (hwc[i * 3 + src_c] - mean) / std;
        }
    }
    out
}

/// Mirrors planar `(3, H, W)` data left-right.
pub fn mirror(chw: &[f32], width: usize) -> Vec<f32> {
    let mut out = chw.to_vec();
    for row in out.chunks_exact_mut(width) {
        row.reverse();
    }
    out
}

/// Decode → geometry → normalise (→ mirror): the whole per-image preprocessing.
pub fn prepare(bytes: &[u8], landmarks: Option<&Landmarks>, spec: &InputSpec, flip: bool) -> Result<Prepared, String> {
    let img = decode(bytes)?;
    let original = normalise(&to_network_size(&img, landmarks, spec)?, spec);
    let flipped = flip.then(|| mirror(&original, spec.width));
    Ok(Prepared { original, flipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let img = ::image::RgbImage::from_fn(w, h, |x, y| ::image::Rgb(f(x, y)));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ::image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn spec(w: usize, h: usize) -> InputSpec {
        InputSpec { width: w, height: h, ..InputSpec::arcface() }
    }

    #[test]
    fn png_round_trip_and_normalisation() {
        let bytes = png(4, 2, |x, y| [(x * 60) as u8, (y * 100) as u8, 255]);
        let img = decode(&bytes).unwrap();
        assert_eq!((img.width, img.height), (4, 2));
        let p = prepare(&bytes, None, &spec(4, 2), true).unwrap();
        // Plane R, pixel (3, 0) = 180 → (180 − 127.5) / 127.5.
        assert_eq!(p.original[3], (180.0 - 127.5) / 127.5);
        assert_eq!(p.original[2 * 8], 1.0); // B plane
        let f = p.flipped.unwrap();
        assert_eq!(f[0], p.original[3]);
        assert_eq!(f[4 + 3], p.original[4]);
    }

    #[test]
    fn bgr_order_and_per_channel_stats() {
        let bytes = png(1, 1, |_, _| [10, 20, 30]);
        let s = InputSpec { channels: ChannelOrder::Bgr, mean: [1.0, 2.0, 3.0], std: [1.0, 2.0, 4.0], ..spec(1, 1) };
        let p = prepare(&bytes, None, &s, false).unwrap();
        // Planes B, G, R: (30 − 1)/1, (20 − 2)/2, (10 − 3)/4.
        assert_eq!(p.original, vec![29.0, 9.0, 1.75]);
        assert!(p.flipped.is_none());
    }

    #[test]
    fn resize_of_constant_image_is_constant() {
        let bytes = png(250, 250, |_, _| [7, 8, 9]);
        let hwc = to_network_size(&decode(&bytes).unwrap(), None, &spec(112, 112)).unwrap();
        assert_eq!(hwc.len(), 112 * 112 * 3);
        assert!(hwc.chunks(3).all(|p| p == [7.0, 8.0, 9.0]));
    }

    #[test]
    fn template_landmarks_align_to_identity() {
        let bytes = png(112, 112, |x, y| [x as u8, y as u8, 0]);
        let lm: Landmarks = ARCFACE_TEMPLATE.map(|[x, y]| [x as f32, y as f32]);
        let hwc = to_network_size(&decode(&bytes).unwrap(), Some(&lm), &spec(112, 112)).unwrap();
        // f32 landmarks: within a thousandth of a pixel of the identity.
        assert!((hwc[(50 * 112 + 60) * 3] - 60.0).abs() < 1e-2, "{}", hwc[(50 * 112 + 60) * 3]);
        assert!((hwc[(50 * 112 + 60) * 3 + 1] - 50.0).abs() < 1e-2);
    }

    #[test]
    fn bad_bytes_say_why() {
        assert!(decode(b"").unwrap_err().contains("empty"));
        assert!(decode(b"GIF89a....").unwrap_err().contains("not supported (JPEG or PNG expected)"));
        assert!(decode(b"\x00\x01junk").unwrap_err().contains("not a JPEG or PNG"));
        let mut bytes = png(8, 8, |_, _| [1, 2, 3]);
        bytes.truncate(bytes.len() / 2);
        assert!(decode(&bytes).unwrap_err().contains("cannot decode"), "{}", decode(&bytes).unwrap_err());
    }
}

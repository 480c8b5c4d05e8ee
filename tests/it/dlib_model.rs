//! dlib's face-recognition ResNet against the real dlib library (descriptors in
//! `tests/data/models/dlib_pattern.json`) and on real LFW faces.
//!
//! Needs the weights (`.ci/fetch-models` puts them into `.models/`, or set $AIFR_DLIB_MODEL);
//! without them every test prints SKIP (a download from PyPI is the one thing a fresh clone lacks),
//! except under CI=true, where `.ci/run` has fetched them and their absence is a failure.

use std::path::{Path, PathBuf};

use aifr_eval::dataset::insightface_bin::parse_bin;
use aifr_eval::metrics::roc::Roc;
use aifr_eval::model::dlib_resnet::DlibResnet;
use aifr_eval::model::dlib_serialize::read_metric_net;
use aifr_eval::model::{self, FaceEmbedder, InputSpec};
use candle_core::{DType, Device, Tensor};

const MODEL_FILE: &str = "dlib_face_recognition_resnet_model_v1.dat";

fn weights() -> Option<PathBuf> {
    let p = match std::env::var_os("AIFR_DLIB_MODEL") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".models").join(MODEL_FILE),
    };
    if p.is_file() {
        Some(p)
    } else {
        crate::support::skip_unless_ci(&format!(
            "{} absent (run .ci/fetch-models or set AIFR_DLIB_MODEL)",
            p.display()
        ));
        None
    }
}

/// `(N, 3, H, W)` normalised per `spec` from interleaved RGB bytes of N images.
fn to_batch(rgb: &[u8], n: usize, spec: &InputSpec) -> Tensor {
    let (h, w) = (spec.height, spec.width);
    let mut planes = vec![0f32; n * 3 * h * w];
    for i in 0..n {
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let v = rgb[((i * h + y) * w + x) * 3 + c] as f32;
                    planes[((i * 3 + c) * h + y) * w + x] = (v - spec.mean[c]) / spec.std[c];
                }
            }
        }
    }
    Tensor::from_vec(planes, (n, 3, h, w), &Device::Cpu).unwrap()
}

fn load(path: &Path) -> Box<dyn FaceEmbedder> {
    model::load(path, None, &Device::Cpu, DType::F32).unwrap()
}

#[test]
fn reproduces_dlib_descriptors_on_the_formula_input() {
    let Some(w) = weights() else { return };
    let reference = crate::support::data("models/dlib_pattern.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(reference).unwrap()).unwrap();
    assert_eq!(json["input"]["formula"], "x[n,h,w,c] = (n*131 + h*31 + w*17 + c*7) % 256");
    assert_eq!(json["input"]["shape"], serde_json::json!([2, 150, 150, 3]));
    let expected: Vec<f32> =
        json["outputs"]["descriptor"]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(expected.len(), 2 * 128);

    let net = load(&w);
    assert_eq!((net.arch(), net.embedding_dim()), ("dlib-resnet", 128));
    let spec = net.input().clone();
    assert_eq!((spec.height, spec.width, spec.std), (150, 150, [256.0; 3]));
    // dlib's input layer means, as stored in the file (dlib's defaults).
    assert_eq!(spec.mean, [122.782, 117.001, 104.298]);

    let mut rgb = vec![0u8; 2 * 150 * 150 * 3];
    for n in 0..2 {
        for h in 0..150 {
            for w in 0..150 {
                for c in 0..3 {
                    rgb[((n * 150 + h) * 150 + w) * 3 + c] = ((n * 131 + h * 31 + w * 17 + c * 7) % 256) as u8;
                }
            }
        }
    }
    let out = net.forward(&to_batch(&rgb, 2, &spec)).unwrap();
    assert_eq!(out.dims(), [2, 128]);
    let got: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
    let max_diff = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("dlib-resnet vs dlib 20.0.1 on the formula input: max |diff| = {max_diff:.3e} over 256 values");
    assert!(max_diff <= 1e-5, "max abs diff {max_diff} > 1e-5");
    // Each image alone gives the same descriptor as in the batch.
    let one = net.forward(&to_batch(&rgb[150 * 150 * 3..], 1, &spec)).unwrap();
    let one: Vec<f32> = one.flatten_all().unwrap().to_vec1().unwrap();
    assert!(one.iter().zip(&got[128..]).all(|(a, b)| (a - b).abs() <= 1e-6));
}

/// Person of each of the 10 pairs of small_lfw.bin (see tests/data/PROVENANCE.md).
const PERSON_OF_PAIR: [usize; 10] = [0, 1, 1, 2, 3, 3, 4, 4, 4, 5];

#[test]
fn separates_real_lfw_faces() {
    let Some(w) = weights() else { return };
    let bin = crate::support::data("small_lfw.bin");
    let data = std::fs::read(&bin).unwrap();
    let pack = parse_bin(&data).unwrap();
    assert_eq!(pack.num_pairs(), 10);
    let net = load(&w);
    let spec = net.input().clone();
    let mut rgb = Vec::new();
    for i in 0..20 {
        let img = image::load_from_memory(pack.image(&data, i)).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (112, 112));
        let img = image::imageops::resize(&img, 150, 150, image::imageops::FilterType::Triangle);
        rgb.extend_from_slice(img.as_raw());
    }
    let emb: Vec<f32> = net.forward(&to_batch(&rgb, 20, &spec)).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    // dlib's own metric: Euclidean distance between raw descriptors, "same person" below 0.6.
    let dist = |a: usize, b: usize| {
        let (x, y) = (&emb[a * 128..(a + 1) * 128], &emb[b * 128..(b + 1) * 128]);
        x.iter().zip(y).map(|(p, q)| ((p - q) as f64).powi(2)).sum::<f64>().sqrt()
    };
    let (mut genuine, mut impostor) = (vec![], vec![]);
    for a in 0..20 {
        for b in a + 1..20 {
            if a % 2 == 0 && b == a + 1 {
                genuine.push(dist(a, b));
            } else if PERSON_OF_PAIR[a / 2] != PERSON_OF_PAIR[b / 2] {
                // Impostors: images of two different people (never two pairs of one person).
                impostor.push(dist(a, b));
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max_gen = genuine.iter().cloned().fold(0.0, f64::max);
    let min_imp = impostor.iter().cloned().fold(f64::INFINITY, f64::min);
    let below = impostor.iter().filter(|&&d| d < 0.6).count();
    // Similarity = −distance for the ROC.
    let scores: Vec<f64> = genuine.iter().chain(&impostor).map(|d| -d).collect();
    let labels: Vec<bool> = (0..scores.len()).map(|i| i < genuine.len()).collect();
    let auc = Roc::new(&scores, &labels).unwrap().auc();
    println!(
        "dlib-resnet on small_lfw.bin (112→150 bilinear resize of the ArcFace crops): {} genuine pairs, {} impostor \
         pairs; Euclidean distance: genuine mean {:.4} (max {max_gen:.4}), impostor mean {:.4} (min {min_imp:.4}), \
         {below} impostors below dlib's 0.6 threshold, AUC {auc:.4}",
        genuine.len(),
        impostor.len(),
        mean(&genuine),
        mean(&impostor)
    );
    assert!(max_gen < 0.6, "a genuine pair is above dlib's threshold: {max_gen}");
    assert!(auc >= 0.95, "AUC {auc}");
    assert!(mean(&impostor) - mean(&genuine) > 0.15, "genuine/impostor distances too close");
}

#[test]
fn malformed_model_files_fail_with_offsets() {
    let Some(w) = weights() else { return };
    let data = std::fs::read(&w).unwrap();
    let path = Path::new("m.dat");
    let net = read_metric_net(path, &data).unwrap();
    assert_eq!((net.wrappers.len(), net.layers.len()), (130, 108));
    let dev = Device::Cpu;
    let err = |bytes: &[u8]| match DlibResnet::from_bytes(path, bytes, &dev, DType::F32) {
        Ok(_) => panic!("malformed input accepted"),
        Err(e) => (e.exit_code(), e.to_string()),
    };
    // Truncations: in the header, the wrapper list, a tensor's data, the last byte.
    let stem = net.layers[0].0;
    for cut in [0, 3, 40, 200, stem + 30, stem + 9000, data.len() / 2, data.len() - 1] {
        let (code, e) = err(&data[..cut]);
        assert_eq!(code, 3);
        assert!(e.starts_with("m.dat: byte ") && e.contains("truncated: expected"), "cut {cut}: {e}");
    }
    // The stem's stride 2 → 1: read fine, rejected by the structure check at that layer.
    let mut bad = data.clone();
    let stride_at = stem + 7 + 11 + 4736 * 4 + 6;
    assert_eq!(bad[stride_at..stride_at + 4], [1, 2, 1, 2]);
    bad[stride_at + 1] = 1;
    bad[stride_at + 3] = 1;
    let (_, e) = err(&bad);
    assert!(e.contains(&format!("byte {stem}: layer 1 of 108: expected con 7×7/2 3→32")), "{e}");
    // A layer type renamed.
    let relu = net.layers[2].0;
    let mut bad = data.clone();
    bad[relu + 2] = b'x';
    let (_, e) = err(&bad);
    assert!(e.contains(&format!("byte {relu}: expected a layer record")) && e.contains("\"xelu_\""), "{e}");
    // A tag where a layer should be (wrapper version 2 → 1).
    let (_, at) = net.wrappers[0];
    let mut bad = data.clone();
    bad[at + 1] = 1;
    let (_, e) = err(&bad);
    assert!(e.starts_with("m.dat: byte "), "{e}");
}

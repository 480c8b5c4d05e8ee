//! ONNX exports through candle-onnx (`--features onnx`) against onnxruntime and PyTorch
//! (`tests/reference/make_onnx_fixtures.py`): a tiny arcface_torch MobileFaceNet exported the
//! PyTorch way (dynamic batch, normalised outside the graph) and the MXNet way (fixed batch of 1,
//! Sub/Mul normalisation inside the graph), the same weights through the native MobileFaceNet,
//! `aifr-eval embed`/`run` on image files, input sizes read off the graph, and graphs that must be
//! refused.

use crate::support::nets::{formula_input, max_abs_diff, tensor_json};

use aifr_eval::model::mobilefacenet::MobileFaceNetConfig;
use aifr_eval::model::onnx::{OnnxNet, Preprocessing, NORM_NODES};
use aifr_eval::model::weights::synthetic;
use aifr_eval::model::{load, ChannelOrder, FaceEmbedder, InputSpec};
use aifr_eval::store::{EmbeddingStore, View};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const DYNAMIC: &str = "mbf_tiny_dynamic.onnx";
const MXNET: &str = "mbf_tiny_mxnet_style.onnx";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model").join(name)
}

fn doc() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("onnx_outputs.json")).unwrap()).unwrap()
}

fn reference(m: &Value, which: &str) -> (Vec<usize>, Vec<f32>) {
    tensor_json(&m[which])
}

/// Loads `name` through `model::load`, checks what was read off the graph against the reference,
/// and returns the embeddings of the formula batch.
fn check_against_references(name: &str) -> Tensor {
    let d = doc();
    let m = &d["models"][name];
    let net = load(&fixture(name), None, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(net.arch(), "onnx");
    assert!(net.fingerprint().starts_with("onnx:blake3:"), "{}", net.fingerprint());
    assert_eq!(net.embedding_dim(), 64);
    // insightface's preprocessing rule, as computed by the reference script.
    let want = &m["insightface_preprocessing"];
    let spec = net.input();
    assert_eq!((spec.height, spec.width, spec.channels), (112, 112, ChannelOrder::Rgb));
    assert_eq!(spec.mean, [want["mean"].as_f64().unwrap() as f32; 3], "{name}");
    assert_eq!(spec.std, [want["std"].as_f64().unwrap() as f32; 3], "{name}");

    let (shape, ort) = reference(m, "onnxruntime");
    let got = net.forward(&formula_input(shape[0], spec)).unwrap();
    assert_eq!(got.dims(), shape.as_slice());
    let d_ort = max_abs_diff(&got, &ort);
    let (_, torch) = reference(m, "torch");
    let d_torch = max_abs_diff(&got, &torch);
    eprintln!("{name}: max |diff| vs onnxruntime {d_ort:.2e}, vs PyTorch {d_torch:.2e}");
    assert!(d_ort <= 1e-4 && d_torch <= 1e-4, "{name}: {d_ort} / {d_torch}");
    got
}

#[test]
fn pytorch_style_export_matches_onnxruntime_and_pytorch() {
    check_against_references(DYNAMIC);
    let net = OnnxNet::load(&fixture(DYNAMIC), &Device::Cpu, DType::F32).unwrap();
    assert_eq!(net.preprocessing(), Preprocessing::Centred);
    assert_eq!(net.fixed_batch(), None);
    // Batches larger than one graph evaluation (8 images) and of one image give the same rows.
    let x = formula_input(11, net.input());
    let all = net.forward(&x).unwrap();
    let one = net.forward(&x.narrow(0, 10, 1).unwrap()).unwrap();
    assert_eq!(all.dims(), &[11, 64]);
    assert!(max_abs_diff(&all.narrow(0, 10, 1).unwrap(), &one.flatten_all().unwrap().to_vec1().unwrap()) < 1e-5);
}

#[test]
fn mxnet_style_export_takes_raw_pixels_and_batches_over_its_fixed_batch_of_one() {
    // The reference batch has 3 images: they go through the batch-1 graph one by one.
    check_against_references(MXNET);
    let net = OnnxNet::load(&fixture(MXNET), &Device::Cpu, DType::F32).unwrap();
    assert_eq!(net.preprocessing(), Preprocessing::InGraph);
    assert_eq!(net.fixed_batch(), Some(1));
}

#[test]
fn both_exports_and_the_native_network_agree() {
    let a = check_against_references(DYNAMIC);
    let b = check_against_references(MXNET);
    let d = max_abs_diff(&a, &b.flatten_all().unwrap().to_vec1().unwrap());
    assert!(d <= 1e-4, "dynamic vs mxnet-style {d}");

    // The same weights as an arcface_torch state dict, through the native MobileFaceNet.
    let cfg = MobileFaceNetConfig { blocks: [1, 1, 1, 1], scale: 1, embedding_dim: 64 };
    let layout = cfg.state_dict_layout();
    let sd = synthetic(&layout).unwrap();
    let tensors: std::collections::HashMap<String, Tensor> = layout
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, s)| (k.clone(), sd.get(k, s).unwrap()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("mbf_tiny.safetensors");
    candle_core::safetensors::save(&tensors, &st).unwrap();
    let native = load(&st, None, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(native.input(), &InputSpec::arcface());
    let y = native.forward(&formula_input(a.dim(0).unwrap(), native.input())).unwrap();
    let d = max_abs_diff(&y, &a.flatten_all().unwrap().to_vec1().unwrap());
    eprintln!("native MobileFaceNet vs ONNX: max |diff| {d:.2e}");
    assert!(d <= 1e-4, "native vs ONNX {d}");
}

/// Flatten-only graphs: the input size comes from the graph (112×112 when symbolic), and the
/// pixels come out as given.
#[test]
fn input_size_is_read_off_the_graph() {
    for (name, h, w) in [("size_64x48.onnx", 64, 48), ("size_symbolic.onnx", 112, 112)] {
        let net = load(&fixture(name), None, &Device::Cpu, DType::F32).unwrap();
        let spec = net.input();
        assert_eq!((spec.height, spec.width, spec.mean, spec.std), (h, w, [127.5; 3], [127.5; 3]), "{name}");
        assert_eq!(net.embedding_dim(), 3 * h * w, "{name}");
        let x = Tensor::arange(0f32, (2 * 3 * h * w) as f32, &Device::Cpu).unwrap().reshape((2, 3, h, w)).unwrap();
        let y = net.forward(&x).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), x.reshape((2, 3 * h * w)).unwrap().to_vec2::<f32>().unwrap());
        // A batch of the wrong size is refused, not reshaped.
        assert!(net.forward(&Tensor::zeros((1, 3, h + 1, w), DType::F32, &Device::Cpu).unwrap()).is_err());
    }
    // A graph fixed to batches of 2 gets 5 images as 2 + 2 + (1 + a blank one, dropped).
    let net = OnnxNet::load(&fixture("batch2_64x48.onnx"), &Device::Cpu, DType::F32).unwrap();
    assert_eq!((net.fixed_batch(), net.embedding_dim()), (Some(2), 3 * 64 * 48));
    for n in [1, 2, 5] {
        let x = Tensor::arange(0f32, (n * 3 * 64 * 48) as f32, &Device::Cpu).unwrap().reshape((n, 3, 64, 48)).unwrap();
        let y = net.forward(&x).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), x.reshape((n, 3 * 64 * 48)).unwrap().to_vec2::<f32>().unwrap(), "{n}");
    }
}

fn load_err(path: &Path, arch: Option<&str>, dtype: DType) -> String {
    match load(path, arch, &Device::Cpu, dtype) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn damaged_and_unsuitable_graphs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture(DYNAMIC)).unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        ("truncated.onnx", &bytes[..bytes.len() / 2], "not an ONNX model"),
        ("garbage.onnx", b"\xff\xfe\x00 this is not a protobuf message \x07\x07", "not an ONNX model"),
        ("empty.onnx", b"", "no graph nodes"),
    ];
    for (name, content, want) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, content).unwrap();
        let e = load_err(&p, None, DType::F32);
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    // `--arch onnx` on something else is the ONNX loader's error too.
    let e = load_err(&fixture("onnx_outputs.json"), Some("onnx"), DType::F32);
    assert!(e.contains("onnx_outputs.json") && e.contains("not an ONNX model"), "{e}");
    let e = load_err(&tmp.path().join("missing.onnx"), None, DType::F32);
    assert!(e.contains("missing.onnx"), "{e}");

    let e = load_err(&fixture("bad_unsupported_op.onnx"), None, DType::F32);
    assert!(e.contains("Hardmax") && e.contains("hardmax0") && e.contains("not supported"), "{e}");
    let e = load_err(&fixture("bad_two_inputs.onnx"), None, DType::F32);
    assert!(e.contains("expected one image input") && e.contains("other"), "{e}");
    let e = load_err(&fixture("bad_float16_input.onnx"), None, DType::F32);
    assert!(e.contains("FLOAT16") && e.contains("expected FLOAT"), "{e}");
    let e = load_err(&fixture("bad_nhwc_input.onnx"), None, DType::F32);
    assert!(e.contains("(?, 112, 112, 3)") && e.contains("expected (N, 3, H, W)"), "{e}");

    // The graph defines the network and its precision.
    let e = load_err(&fixture(DYNAMIC), Some("iresnet50"), DType::F32);
    assert!(e.contains("--arch iresnet50") && e.contains("ONNX"), "{e}");
    let e = load_err(&fixture(DYNAMIC), None, DType::F16);
    assert!(e.contains("--dtype f32"), "{e}");
    assert!(load(&fixture(DYNAMIC), Some("onnx"), &Device::Cpu, DType::F32).is_ok());
}

/// A tiny LFW layout (2 folds × 2 matched + 2 mismatched pairs of 4 people, PNG files named `.jpg`).
fn tiny_lfw(root: &Path) {
    let lfw = root.join("data/lfw");
    let pairs = "2\t2\nAnn_Lee\t1\t2\nBo_Chen\t1\t2\nAnn_Lee\t1\tBo_Chen\t1\nAnn_Lee\t2\tBo_Chen\t2\n\
                 Cy_Diaz\t1\t2\nDi_Evans\t1\t2\nCy_Diaz\t1\tDi_Evans\t1\nCy_Diaz\t2\tDi_Evans\t2\n";
    std::fs::create_dir_all(&lfw).unwrap();
    std::fs::write(lfw.join("pairs.txt"), pairs).unwrap();
    for (p, name) in ["Ann_Lee", "Bo_Chen", "Cy_Diaz", "Di_Evans"].iter().enumerate() {
        let d = lfw.join("lfw").join(name);
        std::fs::create_dir_all(&d).unwrap();
        for shot in 1..=2u32 {
            let img = ::image::RgbImage::from_fn(112, 112, |x, y| {
                let v = |k: u32| ((x * (3 + p as u32) + y * (5 + shot) + k * 40) % 256) as u8;
                ::image::Rgb([v(0), v(1), v(2)])
            });
            img.save_with_format(d.join(format!("{name}_{shot:04}.jpg")), ::image::ImageFormat::Png).unwrap();
        }
    }
}

/// `aifr-eval embed` end to end: both exports embed real image files to the same vectors, which
/// only holds when each gets its own preprocessing.
#[test]
fn cli_embeds_with_onnx_models() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_lfw(tmp.path());
    let cli = |args: &[&str]| {
        let o = Command::new(crate::support::EXE)
            .args(["--data-dir", "data", "--cache-dir", "cache"])
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // A benchmark run straight from the PyTorch-style file (embeds into the cache) ...
    let model = fixture(DYNAMIC);
    let stdout = cli(&["run", "lfw", "--model", model.to_str().unwrap(), "--out", "r"]);
    assert!(stdout.contains("embedded 8 images"), "{stdout}");
    let v: Value = serde_json::from_slice(&std::fs::read(tmp.path().join("r/results.json")).unwrap()).unwrap();
    assert_eq!(v["embeddings"]["model"]["arch"], "onnx");
    assert_eq!(v["counts"]["pairs"], 8);
    let cached: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("cache/embeddings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "aifrstore"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // ... and `embed` with the MXNet-style one.
    let model = fixture(MXNET);
    let stdout = cli(&["embed", "lfw", "--model", model.to_str().unwrap(), "-o", "mx.aifrstore"]);
    assert!(stdout.contains("embedded 8 images"), "{stdout}");
    let (a, b) =
        (EmbeddingStore::open(&cached[0]).unwrap(), EmbeddingStore::open(&tmp.path().join("mx.aifrstore")).unwrap());
    assert_eq!((a.dim(), a.len(), b.len()), (64, 8, 8));
    let mut worst = 0f32;
    for row in 0..a.len() {
        for view in [View::Original, View::Flipped] {
            let (mut x, mut y) = (vec![0f32; 64], vec![0f32; 64]);
            a.read_row(row, view, &mut x);
            b.read_row(b.row_of(a.key(row)).unwrap(), view, &mut y);
            worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(worst, f32::max);
        }
    }
    eprintln!("PyTorch-style vs MXNet-style stores: max |diff| {worst:.2e}");
    assert!(worst <= 1e-4, "stores differ by {worst}");
}

/// The in-graph normalisation rule (kept here rather than in the library's unit tests, so that
/// CI builds the ONNX feature's test code once, in this binary).
#[test]
fn preprocessing_follows_insightface_rule() {
    let d = |nodes: &[(&'static str, &'static str)]| Preprocessing::detect(nodes.iter().copied());
    // MXNet conversions: node names only.
    assert_eq!(d(&[("Sub", "_minusscalar0"), ("Mul", "_mulscalar0"), ("Conv", "conv0")]), Preprocessing::InGraph);
    assert_eq!(d(&[("Custom", "Sub_0"), ("Custom", "Mul_1")]), Preprocessing::InGraph);
    // Path-named exporters: op types.
    assert_eq!(d(&[("Sub", "/Sub"), ("Mul", "/Mul")]), Preprocessing::InGraph);
    // Only one of the two, or too late in the graph: normalised outside.
    assert_eq!(d(&[("Sub", "_minusscalar0"), ("Conv", "c")]), Preprocessing::Centred);
    let mut late = vec![("Conv", "c"); NORM_NODES];
    late.extend([("Sub", "s"), ("Mul", "m")]);
    assert_eq!(d(&late), Preprocessing::Centred);
    assert_eq!(Preprocessing::Centred.mean_std(), (127.5, 127.5));
    assert_eq!(Preprocessing::InGraph.mean_std(), (0.0, 1.0));
}

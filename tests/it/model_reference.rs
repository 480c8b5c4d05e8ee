//! arcface_torch networks against independent implementations:
//! * MobileFaceNet: a real PyTorch state dict (`tests/data/models/mbf_seed0.pth`) and the
//!   outputs PyTorch computed with it;
//! * IResNet-18: an unfolded float64 NumPy forward pass (`tests/reference/iresnet_numpy.py`) with
//!   hash-generated weights that both sides reproduce bit-exactly;
//! * state-dict key names and shapes of IResNet-18/34/50/100 and MobileFaceNet against PyTorch
//!   modules laid out like arcface_torch (`tests/reference/arcface_torch_nets.py`).

use crate::support::nets::{max_abs_diff, tensor_json};

use aifr_eval::model::iresnet::{IResNet, IResNetConfig};
use aifr_eval::model::mobilefacenet::{MobileFaceNet, MobileFaceNetConfig};
use aifr_eval::model::weights::{synthetic, StateDict};
use aifr_eval::model::{load, FaceEmbedder};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real PyTorch state dict and its outputs (`tests/data/models/`).
fn real_models() -> PathBuf {
    crate::support::data("models")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The ArcFace-normalised formula batch of the reference scripts.
fn formula_input(n: usize) -> Tensor {
    crate::support::nets::formula_input(n, &aifr_eval::model::InputSpec::arcface())
}

fn expected(doc: &serde_json::Value) -> (Vec<usize>, Vec<f32>) {
    tensor_json(&doc["outputs"]["embedding"])
}

#[test]
fn mobilefacenet_matches_pytorch_outputs() {
    let dir = real_models();
    let net = load(&dir.join("mbf_seed0.pth"), None, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(net.arch(), "mobilefacenet");
    assert_eq!(net.embedding_dim(), 512);
    assert!(net.fingerprint().starts_with("mobilefacenet:blake3:"));
    let doc = json(&dir.join("mbf_seed0_outputs.json"));
    let (shape, want) = expected(&doc);
    let got = net.forward(&formula_input(shape[0])).unwrap();
    assert_eq!(got.dims(), shape.as_slice());
    let d = max_abs_diff(&got, &want);
    eprintln!("mobilefacenet vs PyTorch: max |diff| {d:.2e}");
    assert!(d <= 1e-4, "max |diff| {d}");

    // Named arch must agree with the file.
    assert!(load(&dir.join("mbf_seed0.pth"), Some("mbf"), &Device::Cpu, DType::F32).is_ok());
    let e = load(&dir.join("mbf_seed0.pth"), Some("iresnet50"), &Device::Cpu, DType::F32).err().unwrap();
    assert!(e.to_string().contains("iresnet50"), "{e}");
    let e = load(&dir.join("mbf_seed0.pth"), Some("liaad-student"), &Device::Cpu, DType::F32).err().unwrap();
    assert!(e.to_string().contains("liaad-student"), "{e}");
}

#[test]
fn mobilefacenet_from_safetensors_matches_pth() {
    let dir = real_models();
    let pth = dir.join("mbf_seed0.pth");
    let tensors: std::collections::HashMap<String, Tensor> =
        candle_core::pickle::read_all(&pth).unwrap().into_iter().collect();
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("backbone.safetensors");
    candle_core::safetensors::save(&tensors, &st).unwrap();
    let a = load(&pth, None, &Device::Cpu, DType::F32).unwrap();
    let b = load(&st, None, &Device::Cpu, DType::F32).unwrap();
    let x = formula_input(1);
    let (ya, yb) = (a.forward(&x).unwrap(), b.forward(&x).unwrap());
    assert_eq!(ya.to_vec2::<f32>().unwrap(), yb.to_vec2::<f32>().unwrap());
    assert_ne!(a.fingerprint(), b.fingerprint());
}

#[test]
fn mobilefacenet_layout_matches_real_state_dict() {
    let dir = real_models();
    let sd = StateDict::load(&dir.join("mbf_seed0.pth")).unwrap();
    let layout = MobileFaceNetConfig::MBF.state_dict_layout();
    let keys: Vec<&str> = layout.keys().map(String::as_str).collect();
    assert_eq!(sd.keys(), keys);
    for (k, shape) in &layout {
        assert_eq!(sd.dims(k).unwrap(), shape.as_slice(), "{k}");
    }
    assert_eq!(MobileFaceNetConfig::detect(&sd).unwrap(), MobileFaceNetConfig::MBF);
}

#[test]
fn iresnet18_matches_numpy_forward() {
    let doc = json(&manifest().join("tests/fixtures/model/iresnet18_numpy.json"));
    let (shape, want) = expected(&doc);
    let cfg = IResNetConfig::by_name("iresnet18").unwrap();
    let sd = synthetic(&cfg.state_dict_layout()).unwrap();
    let net = IResNet::from_state_dict(&sd, Some(cfg), "test".into(), &Device::Cpu, DType::F32).unwrap();
    assert_eq!(net.arch(), "iresnet18");
    let got = net.forward(&formula_input(shape[0])).unwrap();
    assert_eq!(got.dims(), shape.as_slice());
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let d = max_abs_diff(&got, &want);
    eprintln!("iresnet18 vs NumPy: max |diff| {d:.2e} (max |y| {scale:.2})");
    assert!(d <= 1e-4 * scale, "max |diff| {d}, max |y| {scale}");
}

/// arcface_torch's key names and shapes (PyTorch modules), our layouts.
#[test]
fn layouts_match_arcface_torch_keys() {
    let doc = json(&manifest().join("tests/fixtures/model/arcface_torch_keys.json"));
    let to_map = |v: &serde_json::Value| -> BTreeMap<String, Vec<usize>> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, s)| (k.clone(), s.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()))
            .collect()
    };
    for name in ["iresnet18", "iresnet34", "iresnet50", "iresnet100"] {
        let ours = IResNetConfig::by_name(name).unwrap().state_dict_layout();
        assert_eq!(ours, to_map(&doc[name]), "{name}");
        // Detection reads the same configuration back.
        let sd = StateDict::from_tensors(
            Path::new("mem"),
            ours.iter()
                .map(|(k, s)| (k.clone(), Tensor::zeros(s.as_slice(), DType::F32, &Device::Cpu).unwrap()))
                .collect(),
        );
        assert_eq!(IResNetConfig::detect(&sd).unwrap().name(), name);
    }
    assert_eq!(MobileFaceNetConfig::MBF.state_dict_layout(), to_map(&doc["mobilefacenet"]));
}

#[test]
fn liaad_student_builds_and_embeds_deterministically() {
    let cfg = MobileFaceNetConfig::LIAAD_STUDENT;
    let sd = synthetic(&cfg.state_dict_layout()).unwrap();
    assert_eq!(MobileFaceNetConfig::detect(&sd).unwrap(), cfg);
    let net = MobileFaceNet::from_state_dict(&sd, Some(cfg), "test".into(), &Device::Cpu, DType::F32).unwrap();
    assert_eq!(net.arch(), "liaad-student");
    let x = formula_input(3);
    let all = net.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].len(), 512);
    assert!(all.iter().flatten().all(|v| v.is_finite()));
    // One image alone gives bit-identical output to the same image inside a batch.
    let one = net.forward(&x.narrow(0, 1, 1).unwrap()).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(one[0], all[1]);
    assert_ne!(all[0], all[1]);
}

#[test]
fn bad_inputs_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("backbone.pth");
    std::fs::write(&garbage, b"not a zip at all").unwrap();
    let e = load(&garbage, None, &Device::Cpu, DType::F32).err().unwrap();
    assert!(e.to_string().contains("backbone.pth"), "{e}");
    let e = load(&tmp.path().join("missing.pth"), None, &Device::Cpu, DType::F32).err().unwrap();
    assert!(e.to_string().contains("missing.pth"), "{e}");
    let e = load(&garbage, Some("resnet-9000"), &Device::Cpu, DType::F32).err().unwrap();
    assert!(e.to_string().contains("resnet-9000"), "{e}");

    // A wrong shape names the key.
    let cfg = MobileFaceNetConfig::LIAAD_STUDENT;
    let mut layout = cfg.state_dict_layout();
    layout.insert("conv_sep.layers.2.weight".into(), vec![7]);
    let sd = synthetic(&layout).unwrap();
    let e = MobileFaceNet::from_state_dict(&sd, None, "t".into(), &Device::Cpu, DType::F32).err().unwrap();
    assert!(e.to_string().contains("conv_sep.layers.2.weight"), "{e}");
    // A stray key means another network.
    let mut layout = cfg.state_dict_layout();
    layout.insert("extra.weight".into(), vec![3]);
    let sd = synthetic(&layout).unwrap();
    let e = MobileFaceNet::from_state_dict(&sd, None, "t".into(), &Device::Cpu, DType::F32).err().unwrap();
    assert!(e.to_string().contains("extra.weight"), "{e}");
    // Wrong input geometry.
    let sd = synthetic(&cfg.state_dict_layout()).unwrap();
    let net = MobileFaceNet::from_state_dict(&sd, None, "t".into(), &Device::Cpu, DType::F32).unwrap();
    let x = Tensor::zeros((1, 3, 96, 96), DType::F32, &Device::Cpu).unwrap();
    assert!(net.forward(&x).err().unwrap().to_string().contains("112"));
}

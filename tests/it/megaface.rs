//! MegaFace Challenge 1 end to end on small devkit-layout problems, checked against the values of
//! the independent NumPy reference (tests/reference/megaface_ref.py → tests/fixtures/megaface).

use aifr_eval::app::{self, Env, MegafaceEmbeddingsSource, MegafaceRequest};
use aifr_eval::config::{FlipChoice, Registry};
use aifr_eval::protocol::megaface::Cleaning;
use aifr_eval::score::ScoreDevice;
use aifr_eval::store::import::write_npy_f32;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/megaface/{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn matrix(v: &Value) -> (usize, usize, Vec<f32>) {
    let rows = v.as_array().unwrap();
    let dim = rows[0].as_array().unwrap().len();
    let flat: Vec<f32> =
        rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32)).collect();
    (rows.len(), dim, flat)
}

struct Case {
    _dir: tempfile::TempDir,
    env: Env,
    req: MegafaceRequest,
    root: PathBuf,
    fx: Value,
}

/// Writes the fixture in the devkit layout (lists, noise lists, embeddings as .npy + keys).
fn setup(name: &str) -> Case {
    let fx = fixture(name);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = data.join("megaface");
    let cleaning = match fx["cleaning"].as_str().unwrap() {
        "none" => Cleaning::None,
        "insightface" => Cleaning::Insightface,
        _ => Cleaning::Facexzoo,
    };
    // Cleaning needs a probe noise list: FaceScrub's slot has one.
    let (bench, list) = if cleaning == Cleaning::None {
        ("megaface_fgnet", "fgnet_features_list.json")
    } else {
        ("megaface_facescrub", "facescrub_features_list.json")
    };
    let tl = root.join("devkit/templatelists");
    std::fs::create_dir_all(&tl).unwrap();
    let probe_paths = strings(&fx["probes"]["paths"]);
    let doc = serde_json::json!({ "path": probe_paths, "id": fx["probes"]["ids"] });
    std::fs::write(tl.join(list), serde_json::to_vec(&doc).unwrap()).unwrap();
    let pool = strings(&fx["pool"]["paths"]);
    let mut sizes = Vec::new();
    for (n, idx) in fx["lists"].as_object().unwrap() {
        let keys: Vec<&str> =
            idx.as_array().unwrap().iter().map(|i| pool[i.as_u64().unwrap() as usize].as_str()).collect();
        std::fs::write(
            tl.join(format!("megaface_features_list.json_{n}_1")),
            serde_json::to_vec(&serde_json::json!({ "path": keys })).unwrap(),
        )
        .unwrap();
        sizes.push(n.parse::<u32>().unwrap());
    }
    std::fs::create_dir_all(root.join("noise")).unwrap();
    let noise = |v: &Value| format!("#comment line\n{}\n", strings(v).join("\n"));
    std::fs::write(root.join("noise/facescrub_noises.txt"), noise(&fx["noise"]["probes"])).unwrap();
    std::fs::write(root.join("noise/megaface_noises.txt"), noise(&fx["noise"]["distractors"])).unwrap();
    let emb = dir.path().join("emb");
    std::fs::create_dir_all(&emb).unwrap();
    let (p, d, rows) = matrix(&fx["probes"]["features"]);
    write_npy_f32(&emb.join("probes.npy"), p, d, &rows).unwrap();
    std::fs::write(emb.join("probes.txt"), probe_paths.join("\n") + "\n").unwrap();
    let (n, d, rows) = matrix(&fx["pool"]["features"]);
    write_npy_f32(&emb.join("pool.npy"), n, d, &rows).unwrap();
    std::fs::write(emb.join("pool.txt"), pool.join("\n") + "\n").unwrap();
    let pr = &fx["protocol"];
    let bins = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| match b[1].as_u64() {
                Some(hi) => format!("{{ lo = {}, hi = {hi} }}", b[0]),
                None => format!("{{ lo = {} }}", b[0]),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let toml = format!(
        "name = \"megaface_test\"\ndescription = \"fixture\"\nfar_targets = {}\ndevkit_probes = {}\ncmc_ranks = {}\nflip = \"auto\"\njitter = 0.0\njitter_seed = 1\nage_groups = [{}]\n[age_gap]\noperating_far = 1e-3\nbins = [{}]\n",
        pr["far_targets"], pr["devkit_probes"], pr["cmc_ranks"], bins(&pr["age_groups"]), bins(&pr["gap_bins"])
    );
    std::fs::write(dir.path().join("protocol.toml"), toml).unwrap();
    let env = Env {
        data_dir: data,
        registry: Registry::builtin().unwrap(),
        cache_dir: dir.path().join("cache"),
        trust_store: false,
    };
    let req = MegafaceRequest {
        benchmark: bench.into(),
        sizes,
        cleaning,
        embeddings: MegafaceEmbeddingsSource::Files {
            probes: emb.join("probes.npy"),
            keys: Some(emb.join("probes.txt")),
            flip: None,
            distractors: Some(emb.join("pool.npy")),
            distractor_keys: Some(emb.join("pool.txt")),
            distractor_flip: None,
        },
        flip: None,
        probe_noise: None,
        distractor_noise: None,
        protocol_file: Some(dir.path().join("protocol.toml")),
        out_dir: dir.path().join("out"),
        score_device: ScoreDevice::Cpu,
        merge: Vec::new(),
    };
    Case { _dir: dir, env, req, root, fx }
}

fn results(case: &Case) -> Value {
    app::run_megaface(&case.env, &case.req).unwrap();
    serde_json::from_slice(&std::fs::read(case.req.out_dir.join("results.json")).unwrap()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(1.0)
}

/// Every reference number: rank-1, CMC, worst rank, TAR@FAR (both rules), age breakdowns.
fn check(name: &str) {
    check_on(name, ScoreDevice::Cpu);
}

fn check_on(name: &str, device: ScoreDevice) {
    let mut case = setup(name);
    case.req.score_device = device;
    let got = results(&case);
    let want = &case.fx["expected"];
    assert_eq!(got["counts"]["searches"], want["searches"], "{name}: searches");
    assert_eq!(got["counts"]["genuine_pairs"], want["genuine_pairs"], "{name}: genuine pairs");
    let sizes = got["metrics"]["sizes"].as_array().unwrap();
    let wsizes = want["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), wsizes.len());
    for (g, w) in sizes.iter().zip(wsizes) {
        let n = &w["distractors"];
        assert_eq!(&g["distractors"], n);
        assert_eq!(g["rank1"], w["rank1"], "{name} {n}: rank-1");
        assert_eq!(g["worst_rank"], w["worst_rank"], "{name} {n}: worst rank");
        let cmc = g["cmc"].as_array().unwrap();
        let wcmc = w["cmc"].as_array().unwrap();
        assert_eq!(cmc.len(), wcmc.len(), "{name} {n}: CMC points");
        for (c, wc) in cmc.iter().zip(wcmc) {
            assert_eq!(c["rank"], wc["rank"]);
            assert_eq!(c["identification_rate"], wc["rate"], "{name} {n}: CMC({})", wc["rank"]);
        }
        let tars = g["tar_at_far"].as_array().unwrap();
        let wtars = w["tar_at_far"].as_array().unwrap();
        assert_eq!(tars.len(), wtars.len());
        for (t, wt) in tars.iter().zip(wtars) {
            let what = format!("{name} {n}: {} @ {}", wt["rule"], wt["far_target"]);
            assert_eq!(t["rule"], wt["rule"], "{what}");
            assert_eq!(t["available"], wt["available"], "{what}: available");
            if wt["available"] == true {
                assert_eq!(t["tar"], wt["tar"], "{what}: TAR");
                assert_eq!(t["false_accepts"], wt["false_accepts"], "{what}: false accepts");
                assert!(close(t["far"].as_f64().unwrap(), wt["far"].as_f64().unwrap()), "{what}: FAR");
                if let Some(th) = wt["threshold"].as_f64() {
                    assert!(
                        close(t["threshold"].as_f64().unwrap(), th),
                        "{what}: threshold {} vs {th}",
                        t["threshold"]
                    );
                }
            }
        }
        match w.get("age") {
            Some(wa) => {
                for key in ["by_gap", "by_query_age"] {
                    let ga = g["age"][key].as_array().unwrap();
                    for (x, y) in ga.iter().zip(wa[key].as_array().unwrap()) {
                        assert_eq!(x["lo"], y["lo"]);
                        assert_eq!(x["probes"], y["probes"], "{name} {n}: {key} searches");
                        assert_eq!(x["rank1"], y["rank1"], "{name} {n}: {key} rank-1");
                    }
                }
            }
            None => assert!(g.get("age").is_none(), "{name}: no ages in the names, no age breakdown"),
        }
    }
}

#[test]
fn exact_ties_match_the_reference() {
    check("ties");
}

#[test]
fn fgnet_ages_match_the_reference() {
    check("fgnet");
}

#[test]
fn insightface_cleaning_matches_the_reference() {
    check("insightface");
}

#[test]
fn facexzoo_cleaning_matches_the_reference() {
    check("facexzoo");
}

/// The GPU's code path (candle scoring blocks padded to one shape, copied back and reduced on
/// the CPU) run on candle's CPU device: the same reference numbers on every fixture, and
/// results.json names the kernel.
#[test]
fn candle_scoring_path_matches_the_reference() {
    for name in ["ties", "fgnet", "insightface", "facexzoo"] {
        check_on(name, ScoreDevice::Candle(candle_core::Device::Cpu));
    }
    let mut case = setup("ties");
    assert_eq!(results(&case)["protocol"]["score_kernel"], "faer f32 GEMM (cpu)");
    case.req.score_device = ScoreDevice::Candle(candle_core::Device::Cpu);
    assert_eq!(results(&case)["protocol"]["score_kernel"], "candle f32 matmul (cpu)");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let case = setup("fgnet");
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    one.install(|| app::run_megaface(&case.env, &case.req).unwrap());
    let a = std::fs::read(case.req.out_dir.join("results.json")).unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    three.install(|| app::run_megaface(&case.env, &case.req).unwrap());
    let b = std::fs::read(case.req.out_dir.join("results.json")).unwrap();
    assert_eq!(a, b);
    for f in ["report.html", "cmc-1.png", "rank1-distractors.png", "cmc_curves.json", "summary.md"] {
        assert!(case.req.out_dir.join(f).exists(), "{f} written");
    }
}

#[test]
fn devkit_feature_files_give_the_same_numbers() {
    let mut case = setup("fgnet");
    let want = results(&case);
    // Write every probe and distractor as a devkit feature file (D×1 float32).
    let (_, dim, rows) = matrix(&case.fx["probes"]["features"]);
    let probes = strings(&case.fx["probes"]["paths"]);
    aifr_eval::synth::megaface::write_feature_files(&case.root.join("features/fgnet"), &probes, &rows, dim, "_t.bin")
        .unwrap();
    let (_, dim, rows) = matrix(&case.fx["pool"]["features"]);
    let pool = strings(&case.fx["pool"]["paths"]);
    aifr_eval::synth::megaface::write_feature_files(&case.root.join("features/megaface"), &pool, &rows, dim, "_t.bin")
        .unwrap();
    case.req.embeddings =
        MegafaceEmbeddingsSource::DevkitFeatures { suffix: "_t.bin".into(), probe_dir: None, distractor_dir: None };
    let got = results(&case);
    assert_eq!(got["metrics"], want["metrics"]);
    // A missing feature file is listed by path.
    std::fs::remove_file(case.root.join(format!("features/megaface/{}_t.bin", pool[3]))).unwrap_or_else(|_| {
        std::fs::remove_file(case.root.join(format!("features/megaface/{}_t.bin", pool[4]))).unwrap()
    });
    let err = app::run_megaface(&case.env, &case.req).unwrap_err().to_string();
    assert!(err.contains("devkit feature files are missing") && err.contains("_t.bin"), "{err}");
}

#[test]
fn bad_lists_and_missing_embeddings_are_clear_errors() {
    let case = setup("ties");
    let tl = case.root.join("devkit/templatelists");
    // A list with the wrong number of entries.
    let good = std::fs::read(tl.join("megaface_features_list.json_10_1")).unwrap();
    std::fs::write(tl.join("megaface_features_list.json_10_1"), br#"{"path": ["a.jpg", "b.jpg"]}"#).unwrap();
    let err = app::run_megaface(&case.env, &case.req).unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("has 2 entries"), "{err}");
    // A duplicated path.
    std::fs::write(
        tl.join("megaface_features_list.json_10_1"),
        br#"{"path": ["a.jpg","b","c","d","e","f","g","h","i","a.jpg"]}"#,
    )
    .unwrap();
    let err = app::run_megaface(&case.env, &case.req).unwrap_err().to_string();
    assert!(err.contains("listed twice"), "{err}");
    // Paths not in the embeddings.
    std::fs::write(
        tl.join("megaface_features_list.json_10_1"),
        br#"{"path": ["a","b","c","d","e","f","g","h","i","j"]}"#,
    )
    .unwrap();
    let err = app::run_megaface(&case.env, &case.req).unwrap_err().to_string();
    assert!(err.contains("10 of the 10 distractors") && err.contains("'a'"), "{err}");
    std::fs::write(tl.join("megaface_features_list.json_10_1"), good).unwrap();
    // A probe list whose id array is shorter.
    std::fs::write(tl.join("fgnet_features_list.json"), br#"{"path": ["x.jpg", "y.jpg"], "id": ["1"]}"#).unwrap();
    let err = app::run_megaface(&case.env, &case.req).unwrap_err().to_string();
    assert!(err.contains("\"path\" has 2 entries but \"id\" has 1"), "{err}");
    // Not JSON at all: file and line.
    std::fs::write(tl.join("fgnet_features_list.json"), b"{\n\"path\": [oops]}").unwrap();
    let err = app::run_megaface(&case.env, &case.req).unwrap_err().to_string();
    assert!(err.contains("fgnet_features_list.json:2"), "{err}");
}

#[test]
fn flip_fusion_needs_mirrors_on_both_sides() {
    let mut case = setup("ties");
    case.req.flip = Some(FlipChoice::Sum);
    let err = app::run_megaface(&case.env, &case.req).unwrap_err().to_string();
    assert!(err.contains("mirrored"), "{err}");
}

/// The real devkit lists (tests/data/megaface) parse with the counts the challenge defines.
#[test]
fn real_devkit_lists_parse() {
    let dir = crate::support::data("megaface");
    use aifr_eval::dataset::megaface::{read_distractor_list, read_noise_list, read_probe_list};
    for n in [10u32, 100, 1000, 10_000, 100_000] {
        let keys = read_distractor_list(&dir.join(format!("megaface_features_list.json_{n}_1")), n).unwrap();
        assert_eq!(keys.len(), n as usize);
    }
    let fs = read_probe_list(&dir.join("facescrub_features_list.json")).unwrap();
    assert_eq!((fs.len(), fs.identities.len()), (3530, 80));
    let searches: usize = {
        let mut count = vec![0usize; fs.identities.len()];
        fs.identity.iter().for_each(|&i| count[i as usize] += 1);
        count.iter().map(|c| c * (c - 1)).sum()
    };
    assert_eq!(searches, 153_634, "docs/protocols.md §4.2: Σ|c|(|c|−1) for FaceScrub");
    let mn = read_noise_list(&dir.join("megaface_noises.txt")).unwrap();
    let fsn = read_noise_list(&dir.join("facescrub_noises.txt")).unwrap();
    // insightface's MegaFace list has 719 lines naming 707 distinct images (12 repeated).
    assert_eq!((mn.len(), fsn.len()), (707, 605));
    // insightface's FaceScrub noise list names its own copy of FaceScrub (Aaron_Eckhart_136.png),
    // not the devkit list (Michael_Landes/Michael_Landes_43667.png): only 24 names coincide, which
    // is why cleaning refuses a probe noise list with entries that match no probe image.
    let noisy = fs.paths.iter().filter(|p| aifr_eval::dataset::megaface::is_noisy(&fsn, p)).count();
    assert_eq!(noisy, 24);
}

#[test]
fn a_probe_noise_list_for_other_names_is_refused() {
    let mut case = setup("insightface");
    let list = case.root.join("noise/facescrub_noises.txt");
    let mut text = std::fs::read_to_string(&list).unwrap();
    text.push_str("Aaron_Eckhart_136.png\n");
    std::fs::write(&list, text).unwrap();
    let err = app::run_megaface(&case.env, &case.req).unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert!(
        err.to_string().contains("1 of the 5 entries") && err.to_string().contains("Aaron_Eckhart_136.png"),
        "{err}"
    );
    // An explicit list overrides the dataset's.
    let other = case.root.join("my_noise.txt");
    std::fs::write(&other, "# none\n").unwrap();
    case.req.probe_noise = Some(other);
    let r: Value = {
        app::run_megaface(&case.env, &case.req).unwrap();
        serde_json::from_slice(&std::fs::read(case.req.out_dir.join("results.json")).unwrap()).unwrap()
    };
    assert_eq!(r["counts"]["cleaned"], 0);
}

/// The command as a user types it, on the synthetic devkit layout; then the gate on two runs.
#[test]
fn cli_runs_and_gates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let spec = aifr_eval::demo::DemoSpec { dim: 32, ..Default::default() };
    let fg = aifr_eval::demo::generate_fgnet(&spec, &data).unwrap();
    let root = aifr_eval::synth::megaface::megaface_root(&data);
    let keys = aifr_eval::store::import::read_keys(&fg.keys).unwrap();
    aifr_eval::synth::megaface::write_fgnet_probe_list(&root, &keys).unwrap();
    let d = aifr_eval::synth::megaface::generate_distractors(&root, 1000, 32, 9, None).unwrap();
    let exe = crate::support::EXE;
    let run = |out: &Path, extra: &[&str]| {
        std::process::Command::new(exe)
            .arg("--data-dir")
            .arg(&data)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["megaface", "--distractors", "10,100", "--distractors", "1k", "--embeddings"])
            .arg(&fg.embeddings)
            .arg("--keys")
            .arg(&fg.keys)
            .arg("--distractor-embeddings")
            .arg(&d.store)
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let a = dir.path().join("a");
    let o = run(&a, &["--flip", "none"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("rank-1") && table.contains("1k"), "{table}");
    let r: Value = serde_json::from_slice(&std::fs::read(a.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["kind"], "megaface_identification");
    assert_eq!(r["metrics"]["sizes"].as_array().unwrap().len(), 3);
    assert!(r["metrics"]["sizes"][2]["age"]["by_gap"].as_array().is_some_and(|b| b.len() == 5));
    // Flip fusion without mirrored embeddings: refused with a message, exit 3.
    let o = run(&dir.path().join("b"), &["--flip", "sum"]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    // A size that is not a challenge size: usage error.
    let o = std::process::Command::new(exe)
        .args(["megaface", "--distractors", "5k", "--embeddings", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("10, 100, 1k"));
    // A scoring device that is not one, or CUDA in a CPU-only build: usage errors naming the option.
    let mut bad = vec![("gpu", "--score-device must be 'cpu', 'cuda' or 'cuda:N', found 'gpu'")];
    if !cfg!(feature = "cuda") {
        bad.push(("cuda:0", "--score-device cuda:0: this aifr-eval binary was built without CUDA support"));
    }
    for (device, msg) in bad {
        let o = run(&dir.path().join("d"), &["--flip", "none", "--score-device", device]);
        assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains(msg), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(!dir.path().join("d").exists(), "nothing written");
    }
    // The same run again gates clean, exactly and statistically.
    let c = dir.path().join("c");
    assert!(run(&c, &["--flip", "none"]).status.success());
    for extra in [&["--exact"][..], &[][..]] {
        let g =
            std::process::Command::new(exe).arg("gate").arg(&c).arg("--baseline").arg(&a).args(extra).output().unwrap();
        let text = String::from_utf8_lossy(&g.stdout);
        assert_eq!(g.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&g.stderr));
        if extra.is_empty() {
            assert!(text.contains("rank1@1k"), "{text}");
        }
    }
    // A different cleaning is not comparable.
    let mut r2 = r.clone();
    r2["protocol"]["cleaning"] = "facexzoo".into();
    std::fs::write(c.join("results.json"), serde_json::to_vec(&r2).unwrap()).unwrap();
    let g = std::process::Command::new(exe).arg("gate").arg(&c).arg("--baseline").arg(&a).output().unwrap();
    assert_eq!(g.status.code(), Some(3), "{}", String::from_utf8_lossy(&g.stderr));
}

/// A small image, different per `seed` (PNG bytes; the decoder goes by the bytes, not the name).
fn png(seed: usize) -> Vec<u8> {
    let img = ::image::RgbImage::from_fn(48, 48, |x, y| {
        let v = ((x as f32 * (0.1 + seed as f32 * 0.03)).sin() * 90.0 + 128.0) as u8;
        ::image::Rgb([v, ((y as usize * 5 + seed * 37) % 256) as u8, v.wrapping_add(((seed * 11) % 256) as u8)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ::image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn cli_model_embeds_probe_and_distractor_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = data.join("megaface");
    let tl = root.join("devkit/templatelists");
    std::fs::create_dir_all(&tl).unwrap();
    let probes = ["001A02.JPG", "001A10.JPG", "001A33.JPG", "002A05.JPG", "002A20.JPG", "003A01.JPG", "003A30.JPG"];
    let ids = [1, 1, 1, 2, 2, 3, 3];
    let doc = serde_json::json!({ "path": probes, "id": ids });
    std::fs::write(tl.join("fgnet_features_list.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
    std::fs::create_dir_all(root.join("FGNET")).unwrap();
    for (i, p) in probes.iter().enumerate() {
        // Images of one subject look alike, so the test network ranks some mates first.
        std::fs::write(root.join("FGNET").join(p), png(ids[i] * 3 + i % 2)).unwrap();
    }
    let distractors: Vec<String> = (0..10).map(|i| format!("{}/{i}_0.jpg", 100 + i % 3)).collect();
    for (i, d) in distractors.iter().enumerate() {
        let path = root.join("FlickrFinal2").join(d);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png(20 + i)).unwrap();
    }
    let list = serde_json::json!({ "path": distractors });
    std::fs::write(tl.join("megaface_features_list.json_10_1"), serde_json::to_vec(&list).unwrap()).unwrap();
    std::fs::write(dir.path().join("weights.bin"), b"seed").unwrap();
    let exe = crate::support::EXE;
    let cache = dir.path().join("cache");
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(exe)
            .arg("--data-dir")
            .arg(&data)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["megaface", "--distractors", "10", "-q"])
            .args(args)
            .output()
            .unwrap()
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let weights = dir.path().join("weights.bin");
    let model = [os("--model"), weights.clone().into_os_string(), os("--arch"), os("test-net")];
    let a = dir.path().join("a");
    let args: Vec<_> = model.iter().cloned().chain([os("--out"), a.clone().into_os_string()]).collect();
    let o = run(&args.iter().map(|s| s.as_os_str()).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(a.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["embeddings"]["probes"]["count"], 7);
    assert_eq!(r["embeddings"]["distractors"]["count"], 10);
    assert_eq!(r["embeddings"]["probes"]["model"]["arch"], "test-net");
    assert_eq!(r["embeddings"]["probes"]["has_flip"], true);
    assert_eq!(r["counts"]["searches"].as_u64(), Some(3 * 2 + 2 + 2), "{}", r["counts"]);
    // The cached stores, evaluated with --embeddings, give the same metrics.
    let stores: Vec<PathBuf> = std::fs::read_dir(cache.join("embeddings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "aifrstore"))
        .collect();
    let find =
        |prefix: &str| stores.iter().find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix)).unwrap();
    let b = dir.path().join("b");
    let o = run(&[
        os("--embeddings").as_os_str(),
        find("megaface_fgnet-probes").as_os_str(),
        os("--distractor-embeddings").as_os_str(),
        find("megaface-distractors").as_os_str(),
        os("--out").as_os_str(),
        b.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r2: Value = serde_json::from_slice(&std::fs::read(b.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["metrics"], r2["metrics"]);
    // A missing distractor image stops the run, naming the file (exit 4).
    std::fs::remove_file(root.join("FlickrFinal2").join(&distractors[4])).unwrap();
    let c = dir.path().join("c");
    let args: Vec<_> = model.iter().cloned().chain([os("--out"), c.into_os_string()]).collect();
    let o = run(&args.iter().map(|s| s.as_os_str()).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&distractors[4]), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The distractor scan split over N slices (N = 1, 2, 3, 7; N = 3 as three CLI processes at
/// once) and merged gives the single run's files byte for byte, with insightface cleaning
/// (unrankable rows) and slice boundaries inside runs of identical distractors (tied scores).
#[test]
fn split_scans_merge_into_the_single_run_byte_for_byte() {
    let mut case = setup("insightface");
    // Runs of identical vectors: pool rows 0–99 share row 0's, 100–199 row 100's, … (the
    // library's test of the slices, score::stream, covers varied scores).
    let emb = case.req.out_dir.parent().unwrap().join("emb");
    let (n, dim, mut rows) = matrix(&case.fx["pool"]["features"]);
    for i in 0..n {
        let src = i / 100 * 100;
        let v = rows[src * dim..(src + 1) * dim].to_vec();
        rows[i * dim..(i + 1) * dim].copy_from_slice(&v);
    }
    write_npy_f32(&emb.join("pool.npy"), n, dim, &rows).unwrap();
    // The scanned rows: every listed pool row once, in store (= pool) order.
    let mut union: Vec<usize> = case.fx["lists"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|l| l.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize))
        .collect();
    union.sort_unstable();
    union.dedup();
    let same = |a: usize, b: usize| a / 100 == b / 100;
    for parts in [2usize, 3, 7] {
        let inside = (1..parts).map(|k| k * union.len() / parts).any(|b| same(union[b - 1], union[b]));
        assert!(inside, "{parts} slices: some boundary should cut a run of identical distractors");
    }

    let single = case.req.out_dir.clone();
    app::run_megaface(&case.env, &case.req).unwrap();
    let parts_dir = single.parent().unwrap().join("parts");
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap() != "timings.json")
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let want = files(&single);
    // A first run into a new directory has its CMC chart (it is rendered from the run's own
    // curves, not from whatever the directory held before).
    for f in ["cmc_curves.json", "cmc-1.png", "report.html"] {
        assert!(want.iter().any(|(g, _)| g == f), "the single run wrote {f}");
    }
    let part_path = |parts: usize, k: usize| parts_dir.join(format!("{parts}/part-{k}.safetensors"));
    for parts in [1usize, 7] {
        for k in 0..parts {
            let shard = aifr_eval::embed::shard::Shard { index: k, count: parts };
            let r = app::scan_megaface_shard(&case.env, &case.req, shard, &part_path(parts, k), None).unwrap();
            assert_eq!(r.rows, k * union.len() / parts..(k + 1) * union.len() / parts);
        }
    }
    // N = 3: three processes at once, through the command line.
    let exe = crate::support::EXE;
    let MegafaceEmbeddingsSource::Files {
        probes,
        keys: Some(keys),
        distractors: Some(pool),
        distractor_keys: Some(pool_keys),
        ..
    } = case.req.embeddings.clone()
    else {
        unreachable!()
    };
    let sizes: Vec<String> = case.req.sizes.iter().map(|s| s.to_string()).collect();
    let command = || {
        let mut c = std::process::Command::new(exe);
        c.arg("--data-dir").arg(&case.env.data_dir).arg("--cache-dir").arg(&case.env.cache_dir);
        c.args(["megaface", "--probe", "facescrub", "--clean", "insightface", "--quiet", "--distractors"]);
        c.arg(sizes.join(",")).arg("--embeddings").arg(&probes).arg("--keys").arg(&keys);
        c.arg("--distractor-embeddings").arg(&pool).arg("--distractor-keys").arg(&pool_keys);
        c.arg("--protocol-file").arg(case.req.protocol_file.as_ref().unwrap());
        c
    };
    let children: Vec<_> = (0..3)
        .map(|k| {
            let mut c = command();
            c.env("AIFR_SHARD_INDEX", k.to_string()).args(["--distractor-shard", "auto/3", "--part"]);
            c.arg(part_path(3, k)).spawn().unwrap()
        })
        .collect();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    for parts in [1usize, 2, 3, 7] {
        // The same directory name as the single run's: charts label a run by it.
        let out = single.parent().unwrap().join(format!("merged-{parts}/out"));
        let list: Vec<PathBuf> = (0..parts).rev().map(|k| part_path(parts, k)).collect();
        if parts == 3 {
            // `megaface merge` runs the command the parts recorded (in their directory).
            let st = std::process::Command::new(exe)
                .current_dir(std::env::temp_dir())
                .args(["megaface", "merge"])
                .args(&list)
                .arg("--out")
                .arg(&out)
                .status()
                .unwrap();
            assert!(st.success());
        } else if parts == 2 {
            // The shards' command with --merge (comma-separated parts) is the same.
            for k in 0..2 {
                let mut c = command();
                c.args(["--distractor-shard", &format!("{k}/2"), "--part"]).arg(part_path(2, k));
                assert!(c.status().unwrap().success());
            }
            let joined = list.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(",");
            let st = command().arg("--merge").arg(joined).arg("--out").arg(&out).status().unwrap();
            assert!(st.success());
        } else {
            case.req.out_dir = out.clone();
            case.req.merge = list;
            app::run_megaface(&case.env, &case.req).unwrap();
        }
        let got = files(&out);
        assert_eq!(got.len(), want.len(), "{parts} slices: same files");
        for ((f, a), (g, b)) in got.iter().zip(&want) {
            assert_eq!(f, g);
            assert!(a == b, "{parts} slices: {f} differs from the single run's");
        }
    }

    // Missing, duplicated, foreign and unreadable parts: errors naming them.
    let merge_err = |list: Vec<PathBuf>, req: &MegafaceRequest| {
        let mut req = req.clone();
        req.out_dir = single.parent().unwrap().join("refused");
        req.merge = list;
        let e = app::run_megaface(&case.env, &req).unwrap_err();
        assert!(!req.out_dir.join("results.json").exists());
        (e.exit_code(), e.to_string())
    };
    let (code, e) = merge_err(vec![part_path(7, 0), part_path(7, 2), part_path(7, 3), part_path(7, 5)], &case.req);
    assert_eq!(code, 4);
    assert!(e.contains("slices 1, 4, 6 of 7 are missing"), "{e}");
    let (code, e) = merge_err(vec![part_path(2, 0), part_path(2, 1), part_path(2, 1)], &case.req);
    assert_eq!(code, 3);
    assert!(e.contains("both slice 1 of 2") && e.contains(&part_path(2, 1).display().to_string()), "{e}");
    let (_, e) = merge_err(vec![part_path(2, 0), part_path(3, 1)], &case.req);
    assert!(e.contains("parts of different splits") && e.contains(&part_path(3, 1).display().to_string()), "{e}");
    // A part of a run over fewer distractor sets.
    let mut fewer = case.req.clone();
    fewer.sizes.pop();
    fewer.merge = Vec::new();
    let foreign = parts_dir.join("foreign.safetensors");
    app::scan_megaface_shard(&case.env, &fewer, aifr_eval::embed::shard::Shard { index: 1, count: 2 }, &foreign, None)
        .unwrap();
    let (code, e) = merge_err(vec![part_path(2, 0), foreign.clone()], &case.req);
    assert_eq!(code, 3);
    assert!(e.contains("foreign.safetensors belongs to another run: "), "{e}");
    assert!(e.contains("sets [10,100] where this run has [10,100,1000]"), "{e}");
    // Same stores, sets and rules, but a distractor noise list one entry shorter: only the
    // fingerprint tells.
    let pool_paths = strings(&case.fx["pool"]["paths"]);
    let listed: std::collections::HashSet<&str> = union.iter().map(|&i| pool_paths[i].as_str()).collect();
    let noise = std::fs::read_to_string(case.root.join("noise/megaface_noises.txt")).unwrap();
    let drop = noise.lines().position(|l| listed.contains(l)).expect("a listed distractor on the noise list");
    let kept: Vec<&str> = noise.lines().enumerate().filter(|&(i, _)| i != drop).map(|(_, l)| l).collect();
    let shorter = parts_dir.join("shorter_noise.txt");
    std::fs::write(&shorter, kept.join("\n") + "\n").unwrap();
    let mut other = case.req.clone();
    other.distractor_noise = Some(shorter);
    other.merge = Vec::new();
    app::scan_megaface_shard(&case.env, &other, aifr_eval::embed::shard::Shard { index: 1, count: 2 }, &foreign, None)
        .unwrap();
    let (_, e) = merge_err(vec![part_path(2, 0), foreign.clone()], &case.req);
    assert!(e.contains("foreign.safetensors belongs to another run: same stores"), "{e}");
    // Parts written through the library carry no command for `megaface merge` to run.
    let o = std::process::Command::new(exe).args(["megaface", "merge"]).arg(part_path(7, 0)).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not record the command that wrote it"));
    let not_part = single.join("results.json");
    let (code, e) = merge_err(vec![not_part], &case.req);
    assert_eq!(code, 3);
    assert!(e.contains("results.json: not a MegaFace scan part"), "{e}");
}

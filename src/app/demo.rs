//! `aifr-eval demo`: every benchmark family generated in its real on-disk layout and evaluated
//! through the same code a real benchmark uses. In the library, so tests can run it in-process.

use super::ijb::run_ijb;
use super::{
    run_fgnet, run_megaface, run_pairs, Env, MegafaceEmbeddingsSource, MegafaceRequest, RunReport, RunRequest,
};
use crate::config::{FlipChoice, Registry};
use crate::demo::DemoSpec;
use crate::error::{Error, Result};
use crate::metrics::FoldMode;
use std::path::Path;

/// Generates the synthetic benchmarks under `out/data` and evaluates each into its own run
/// directory under `out` (LFW at `out` itself), calling `on_run` after each run.
pub fn run_all(spec: &DemoSpec, out: &Path, mode: Option<FoldMode>, on_run: &mut dyn FnMut(&RunReport)) -> Result<()> {
    // Two demos into one directory would regenerate each other's data mid-run.
    let what = format!("the demo directory {}", out.display());
    let _lock = crate::io::lock::FileLock::acquire(&out.join(".aifr-demo.lock"), &what, crate::io::lock::Wait::Refuse)?;
    // The generated files are new each time, so an older cached store can never match.
    let cache = out.join("cache");
    if cache.exists() {
        std::fs::remove_dir_all(&cache).map_err(|e| Error::write(&cache, e))?;
    }
    let files = crate::demo::generate(spec, &out.join("data"))?;
    let env = Env {
        data_dir: files.data_dir.clone(),
        registry: Registry::builtin()?,
        cache_dir: out.join("cache"),
        trust_store: false,
    };
    let req = RunRequest {
        benchmark: "lfw".into(),
        embeddings: files.embeddings.into(),
        per_subject_models: false,
        keys: Some(files.keys),
        flip_embeddings: Some(files.flip_embeddings),
        mode,
        flip: None,
        protocol_file: None,
        ages: Some(files.ages),
        out_dir: out.to_path_buf(),
    };
    let r = run_pairs(&env, &req)?;
    on_run(&r);
    // The same pairs as an insightface .bin pack (the AgeDB-30 slot), ages by image index.
    let bin = crate::demo::BinFiles::under(&files.data_dir);
    let req = RunRequest {
        benchmark: "agedb30".into(),
        embeddings: bin.embeddings.into(),
        per_subject_models: false,
        keys: None,
        flip_embeddings: Some(bin.flip_embeddings),
        mode: None,
        flip: None,
        protocol_file: None,
        ages: Some(bin.ages),
        out_dir: out.join("agedb30"),
    };
    on_run(&run_pairs(&env, &req)?);
    // The same cohort model in FG-NET's layout: identification across ages.
    let fg = crate::demo::generate_fgnet(spec, &out.join("data"))?;
    let req = RunRequest {
        benchmark: "fgnet".into(),
        embeddings: fg.embeddings.clone().into(),
        per_subject_models: false,
        keys: Some(fg.keys.clone()),
        flip_embeddings: Some(fg.flip_embeddings),
        mode: None,
        flip: None,
        protocol_file: None,
        ages: None,
        out_dir: out.join("fgnet"),
    };
    let r = run_fgnet(&env, &req)?;
    on_run(&r);
    // MegaFace's devkit layout: the FG-NET cohort searched among synthetic distractors.
    let mf = crate::synth::megaface::megaface_root(&files.data_dir);
    let fg_keys = crate::store::import::read_keys(&fg.keys)?;
    crate::synth::megaface::write_fgnet_probe_list(&mf, &fg_keys)?;
    let d = crate::synth::megaface::generate_distractors(&mf, 10_000, spec.dim, spec.seed, None)?;
    let req = MegafaceRequest {
        benchmark: "megaface_fgnet".into(),
        sizes: vec![10, 100, 1_000, 10_000],
        cleaning: crate::protocol::megaface::Cleaning::None,
        embeddings: MegafaceEmbeddingsSource::Files {
            probes: fg.embeddings,
            keys: Some(fg.keys),
            flip: None,
            distractors: Some(d.store),
            distractor_keys: None,
            distractor_flip: None,
        },
        flip: Some(FlipChoice::None),
        probe_noise: None,
        distractor_noise: None,
        protocol_file: None,
        out_dir: out.join("megaface_fgnet"),
        score_device: crate::score::ScoreDevice::Cpu,
        merge: Vec::new(),
    };
    on_run(&run_megaface(&env, &req)?);
    // AgeDB's raw layout with its official .mat protocols (AgeDB-30), and CACD-VS.
    let agedb = crate::cohort::generate_agedb(spec, &files.data_dir)?;
    let cacd = crate::cohort::generate_cacd_vs(spec, &files.data_dir)?;
    for (bench, c) in [("agedb_30", agedb), ("cacd_vs", cacd)] {
        let req = RunRequest {
            benchmark: bench.into(),
            embeddings: c.embeddings.into(),
            per_subject_models: false,
            keys: Some(c.keys),
            flip_embeddings: Some(c.flip_embeddings),
            mode: None,
            flip: None,
            protocol_file: None,
            ages: None,
            out_dir: out.join(bench),
        };
        on_run(&run_pairs(&env, &req)?);
    }
    // RFW's release layout with a planted differential: four subsets, one run, one threshold.
    let rfw = crate::synth::rfw::generate(&crate::synth::rfw::RfwSpec::demo(spec.seed), &files.data_dir)?;
    let req = RunRequest {
        benchmark: "rfw".into(),
        embeddings: rfw.embeddings.into(),
        per_subject_models: false,
        keys: Some(rfw.keys),
        flip_embeddings: None,
        mode: None,
        flip: None,
        protocol_file: None,
        ages: None,
        out_dir: out.join("rfw"),
    };
    on_run(&run_pairs(&env, &req)?);
    // IJB-C's release layout: template pooling, 1:1 and 1:N on a small synthetic release.
    let ijbc = crate::synth::ijb::SynthSpec::demo(spec.seed);
    let release = crate::synth::ijb::generate(&ijbc, &files.data_dir.join("IJB_release/IJBC"))?;
    let store = release.write_store(&files.data_dir.join("embeddings/ijbc.aifrstore"))?;
    let req = RunRequest {
        benchmark: "ijbc".into(),
        embeddings: store.into(),
        per_subject_models: false,
        keys: None,
        flip_embeddings: None,
        mode: None,
        flip: None,
        protocol_file: None,
        ages: None,
        out_dir: out.join("ijbc"),
    };
    on_run(&run_ijb(&env, &req)?);
    Ok(())
}

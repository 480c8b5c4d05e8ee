//! `aifr-eval megaface`: MegaFace Challenge 1 with up to 1,000,000 distractors.

use super::{
    file_fingerprint, finish_run, open_embeddings, open_run_embeddings, Clock, Embeddings, Env, Evaluation, RunReport,
};
use crate::config::FlipChoice;
use crate::config::MegafaceProtocol;
use crate::dataset::adapter::Protocol;
use crate::dataset::megaface::ProbeSet;
use crate::error::{Error, Result};
use crate::protocol::megaface::{Cleaning, DistractorSet, MegafaceInput};
use crate::run::dir::OutDir;
use crate::run::results::Results;
use crate::run::results::{BenchmarkInfo, EmbeddingsInfo, Software, SCHEMA, SCHEMA_VERSION};
use crate::store::EmbeddingStore;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where MegaFace embeddings come from.
#[derive(Debug, Clone)]
pub enum MegafaceEmbeddingsSource {
    /// Stores or `.npy`/safetensors (+ keys): probes, and distractors (the probe store when `None`).
    Files {
        probes: PathBuf,
        keys: Option<PathBuf>,
        flip: Option<PathBuf>,
        distractors: Option<PathBuf>,
        distractor_keys: Option<PathBuf>,
        distractor_flip: Option<PathBuf>,
    },
    /// Devkit per-image feature files `<dir>/<list path><suffix>`; directories default to the
    /// dataset's `probe_features` / `distractor_features` entries.
    DevkitFeatures { suffix: String, probe_dir: Option<PathBuf>, distractor_dir: Option<PathBuf> },
    /// Embeddings in memory (the Python bindings' arrays): probes, and distractors (the probe
    /// store when `None`).
    Arrays { probes: Embeddings, distractors: Option<Embeddings> },
    /// Run a network over the probe images (`images` entry) and the distractor images
    /// (`distractor_images` entry), each image as it is on disk (aligned crops, e.g. insightface's
    /// MegaFace test pack), resized to the network's input; both stores are cached.
    Model(Box<crate::app::embed::ModelRequest>),
}

/// `aifr-eval megaface`.
#[derive(Debug, Clone)]
pub struct MegafaceRequest {
    /// `megaface_fgnet` or `megaface_facescrub` (any datasets.toml entry of format megaface).
    pub benchmark: String,
    pub sizes: Vec<u32>,
    pub cleaning: crate::protocol::megaface::Cleaning,
    pub embeddings: MegafaceEmbeddingsSource,
    pub flip: Option<FlipChoice>,
    pub probe_noise: Option<PathBuf>,
    pub distractor_noise: Option<PathBuf>,
    pub protocol_file: Option<PathBuf>,
    pub out_dir: PathBuf,
    /// Where the probe × distractor scores are computed.
    pub score_device: crate::score::ScoreDevice,
    /// Parts of a split scan (`--merge`, written by [`scan_megaface_shard`]) to join instead of
    /// scanning the distractors; empty for an ordinary run.
    pub merge: Vec<PathBuf>,
}

/// What [`scan_megaface_shard`] wrote.
#[derive(Debug, Clone)]
pub struct ShardReport {
    pub part: PathBuf,
    pub index: usize,
    pub count: usize,
    pub rows: std::ops::Range<usize>,
    pub distractor_rows: usize,
    pub bytes: u64,
    pub seconds: f64,
}

fn megaface_file(env: &Env, bench: &str, role: &str, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let entry = env.registry.get(bench)?;
    let path = entry
        .file(&env.data_dir, role)
        .ok_or_else(|| Error::Config(format!("dataset '{bench}' has no '{role}' entry in datasets.toml")))?;
    if !path.exists() {
        return Err(Error::Missing(format!(
            "benchmark '{bench}' needs {} ({role}) under the data directory {} (set --data-dir or AIFR_DATA_DIR)",
            path.display(),
            env.data_dir.display()
        )));
    }
    Ok(path)
}

/// Every distractor of the requested sets once, in first-seen order.
fn union_keys(sets: &[crate::protocol::megaface::DistractorSet]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    sets.iter().flat_map(|s| s.keys.iter()).filter(|k| seen.insert(k.as_str())).cloned().collect()
}

/// Everything a MegaFace run reads before scoring: the protocol, the lists and the embeddings.
struct Loaded<'e> {
    protocol: MegafaceProtocol,
    entry: &'e crate::config::DatasetEntry,
    probes_path: PathBuf,
    probes: ProbeSet,
    files: Vec<crate::run::results::FileFingerprint>,
    sets: Vec<DistractorSet>,
    probe_noise: Option<HashSet<String>>,
    distractor_noise: Option<HashSet<String>>,
    probe_store: EmbeddingStore,
    distractor_store: Option<EmbeddingStore>,
}

impl Loaded<'_> {
    fn input<'a>(&'a self, req: &'a MegafaceRequest) -> MegafaceInput<'a> {
        MegafaceInput {
            probes: &self.probes,
            probe_store: &self.probe_store,
            distractor_store: self.distractor_store.as_ref().unwrap_or(&self.probe_store),
            sets: &self.sets,
            cleaning: req.cleaning,
            probe_noise: self.probe_noise.as_ref(),
            distractor_noise: self.distractor_noise.as_ref(),
            flip: req.flip,
            scoring: &req.score_device,
        }
    }
}

/// One slice of a split distractor scan (`megaface --distractor-shard K/N --part FILE`): scans
/// the slice and writes its part file (atomically); no run directory. `megaface … --merge
/// PARTS` joins the parts into the run one machine would have written (docs/sharding.md).
pub fn scan_megaface_shard(
    env: &Env,
    req: &MegafaceRequest,
    shard: crate::embed::shard::Shard,
    part: &Path,
    invocation: Option<crate::protocol::megaface::part::Invocation>,
) -> Result<ShardReport> {
    let start = Instant::now();
    if !req.merge.is_empty() {
        return Err(Error::Config("--distractor-shard scans one slice; --merge joins the slices: give one".into()));
    }
    let loaded = load(env, req, &mut Clock::new())?;
    let mut scanned =
        crate::protocol::megaface::scan_shard(&loaded.input(req), &loaded.protocol, shard.index, shard.count)?;
    scanned.invocation = invocation;
    let bytes = scanned.to_bytes()?;
    if let Some(dir) = part.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
    }
    crate::io::write_atomic(part, &bytes)?;
    Ok(ShardReport {
        part: part.to_path_buf(),
        index: scanned.index,
        count: scanned.count,
        rows: scanned.rows.clone(),
        distractor_rows: scanned.facts.distractor_rows,
        bytes: bytes.len() as u64,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// MegaFace Challenge 1: identification and verification per distractor size (docs/protocols.md §4).
pub fn run_megaface(env: &Env, req: &MegafaceRequest) -> Result<RunReport> {
    let out = OutDir::begin(&req.out_dir)?;
    finish_run(out, evaluate_megaface(env, req)?)
}

/// MegaFace's evaluation, written nowhere (`req.out_dir` is not used); with `req.merge`, the
/// distractor scan is the join of a split scan's parts.
pub fn evaluate_megaface(env: &Env, req: &MegafaceRequest) -> Result<Evaluation> {
    use crate::protocol::megaface::{evaluate, evaluate_merged, part::ScanPart};
    use crate::run::results::{MegafaceEmbeddings, MegafaceMetrics, MegafaceProtocolInfo, MegafaceResults};

    let mut clock = Clock::new();
    let loaded = load(env, req, &mut clock)?;
    let input = loaded.input(req);
    let outcome = if req.merge.is_empty() {
        evaluate(&input, &loaded.protocol)?
    } else {
        let parts = req.merge.iter().map(|p| Ok((p.clone(), ScanPart::read(p)?))).collect::<Result<Vec<_>>>()?;
        evaluate_merged(&input, &loaded.protocol, parts)?
    };
    let Loaded { protocol, entry, probes_path, probes, files, probe_store, distractor_store, .. } = loaded;
    for (stage, secs) in &outcome.stages {
        clock.stages.push((stage.clone(), *secs));
    }
    clock.last = Instant::now();
    let probe_set = match probes_path.file_name().and_then(|n| n.to_str()) {
        Some(n) if n.starts_with("fgnet") => "fgnet".to_string(),
        Some(n) if n.starts_with("facescrub") => "facescrub".to_string(),
        Some(n) => n.to_string(),
        None => String::new(),
    };
    let rank1_at_1m = outcome.sizes.iter().find(|s| s.distractors == 1_000_000).and_then(|s| s.rank1);
    let results = MegafaceResults {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        kind: crate::run::results::kind::MEGAFACE.into(),
        software: Software::current(),
        benchmark: BenchmarkInfo { name: req.benchmark.clone(), title: entry.title.clone(), format: entry.format, files },
        protocol: MegafaceProtocolInfo {
            name: protocol.name.clone(),
            probe_set,
            cleaning: req.cleaning,
            flip_fusion: outcome.fusion,
            far_targets: protocol.far_targets.clone(),
            devkit_probes: protocol.devkit_probes,
            score: "cosine similarity of L2-normalised (fused) embeddings, float32".into(),
            score_kernel: outcome.score_kernel.clone(),
            rank_rule: "rank = number of distractors scoring strictly above the mate (a tie goes to the mate); every ordered pair of same-identity probe images is one search".into(),
            age_groups: protocol.age_groups.clone(),
            age_gap_bins: protocol.age_gap.bins.clone(),
        },
        embeddings: {
            // Stores made by a network say which one (`--model`, or stores from `aifr-eval embed`).
            let info = |s: &crate::store::EmbeddingStore| -> Result<EmbeddingsInfo> {
                Ok(EmbeddingsInfo::of(s).with_provenance(crate::embed::meta::EmbedMeta::of_store(s)?.as_ref(), None))
            };
            MegafaceEmbeddings {
                probes: info(&probe_store)?,
                distractors: info(distractor_store.as_ref().unwrap_or(&probe_store))?,
            }
        },
        counts: outcome.counts.clone(),
        metrics: MegafaceMetrics {
            sizes: outcome.sizes.clone(),
            rank1_at_1m,
            bootstrap: crate::protocol::fgnet::SubjectBootstrap {
                unit: "probe identity".into(),
                clusters: probes.identities.len(),
                spec: outcome.bootstrap,
            },
        },
    };
    let cmc = crate::protocol::curves::CmcCurves::new(&outcome.curves);
    let table = crate::report::megaface::terminal_table(&results);
    Ok(Evaluation {
        results: Results::Megaface(results),
        curves: None,
        pair_scores: None,
        cmc_curves: Some(cmc),
        search_outcomes: Some(outcome.search_outcomes),
        table,
        clock,
    })
}

fn load<'e>(env: &'e Env, req: &MegafaceRequest, clock: &mut Clock) -> Result<Loaded<'e>> {
    use crate::dataset::megaface::{distractor_list_name, read_distractor_list, read_noise_list, read_probe_list};
    let protocol = match &req.protocol_file {
        Some(p) => MegafaceProtocol::from_file(p)?,
        None => MegafaceProtocol::builtin()?,
    };
    let entry = env.registry.get(&req.benchmark)?;
    if !matches!(entry.format.adapter().protocol, Protocol::Megaface) {
        return Err(Error::Config(format!(
            "'{}' is not a MegaFace benchmark; use megaface_fgnet or megaface_facescrub (or `aifr-eval run {}`)",
            req.benchmark, req.benchmark
        )));
    }
    if req.sizes.is_empty() {
        return Err(Error::Config("give at least one --distractors size".into()));
    }
    let mut sizes = req.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let probes_path = megaface_file(env, &req.benchmark, "probes", None)?;
    let probes = read_probe_list(&probes_path)?;
    let mut files = vec![file_fingerprint("probes", &probes_path, &env.data_dir)?];
    let lists_dir = megaface_file(env, &req.benchmark, "distractors", None)?;
    let mut sets = Vec::new();
    for &n in &sizes {
        let path = lists_dir.join(distractor_list_name(n));
        if !path.exists() {
            return Err(Error::Missing(format!(
                "the {n}-distractor list {} does not exist (devkit templatelists)",
                path.display()
            )));
        }
        sets.push(DistractorSet { size: n, keys: read_distractor_list(&path, n)? });
        files.push(file_fingerprint(&format!("distractors_{n}"), &path, &env.data_dir)?);
    }
    let (probe_noise, distractor_noise) = if req.cleaning == Cleaning::None {
        if req.probe_noise.is_some() || req.distractor_noise.is_some() {
            return Err(Error::Config("noise lists are only used with --clean insightface|facexzoo".into()));
        }
        (None, None)
    } else {
        // FGNet has no probe noise list; FaceScrub's is required.
        let probe_list_known = req.probe_noise.is_some() || entry.files.contains_key("probe_noise");
        let p = if probe_list_known {
            let p = megaface_file(env, &req.benchmark, "probe_noise", req.probe_noise.as_deref())?;
            files.push(file_fingerprint("probe_noise", &p, &env.data_dir)?);
            read_noise_list(&p)?
        } else {
            Default::default()
        };
        let d = megaface_file(env, &req.benchmark, "distractor_noise", req.distractor_noise.as_deref())?;
        files.push(file_fingerprint("distractor_noise", &d, &env.data_dir)?);
        (Some(p), Some(read_noise_list(&d)?))
    };
    clock.lap("read benchmark");

    let (probe_store, distractor_store) = match &req.embeddings {
        MegafaceEmbeddingsSource::Files { probes: pe, keys, flip, distractors, distractor_keys, distractor_flip } => {
            let p = open_embeddings(env, pe, keys.as_deref(), flip.as_deref(), None)?;
            let d = match distractors {
                Some(d) => Some(open_embeddings(env, d, distractor_keys.as_deref(), distractor_flip.as_deref(), None)?),
                None if distractor_keys.is_some() || distractor_flip.is_some() => {
                    return Err(Error::Config(
                        "--distractor-keys/--distractor-flip-embeddings need --distractor-embeddings".into(),
                    ))
                }
                None => None,
            };
            (p, d)
        }
        MegafaceEmbeddingsSource::Arrays { probes, distractors } => {
            let p = open_run_embeddings(env, probes, None, None, None)?;
            let d = distractors.as_ref().map(|d| open_run_embeddings(env, d, None, None, None)).transpose()?;
            (p, d)
        }
        MegafaceEmbeddingsSource::DevkitFeatures { suffix, probe_dir, distractor_dir } => {
            let pdir = megaface_file(env, &req.benchmark, "probe_features", probe_dir.as_deref())?;
            let ddir = megaface_file(env, &req.benchmark, "distractor_features", distractor_dir.as_deref())?;
            use crate::store::import::import_devkit_features;
            let p = env.checked_cached(import_devkit_features(&probes.paths, &pdir, suffix, &env.cache_dir)?)?;
            let d = env.checked_cached(import_devkit_features(&union_keys(&sets), &ddir, suffix, &env.cache_dir)?)?;
            (p, Some(d))
        }
        MegafaceEmbeddingsSource::Model(model) => {
            use crate::app::embed::embed_list;
            use crate::embed::list::ImageList;
            if model.options.skip_bad_images {
                return Err(Error::Config(
                    "--skip-bad-images is not supported by megaface: every probe and distractor counts; \
                     fix or remove the image from the lists"
                        .into(),
                ));
            }
            let pdir = megaface_file(env, &req.benchmark, "images", None)?;
            let ddir = megaface_file(env, &req.benchmark, "distractor_images", None)?;
            let mut stores = Vec::new();
            for (label, dir, keys) in [
                (format!("{}-probes", req.benchmark), &pdir, probes.paths.clone()),
                ("megaface-distractors".into(), &ddir, union_keys(&sets)),
            ] {
                let e = embed_list(env, &label, &ImageList::from_dir(dir, &keys), model, None)?;
                if !e.extraction.complete {
                    return Err(Error::Config(format!("embedding the {label} stopped early")));
                }
                stores.push(open_embeddings(env, &e.extraction.store, None, None, None)?);
            }
            let d = stores.pop();
            let p = stores.pop().ok_or_else(|| Error::Invalid("no probe store".into()))?;
            (p, d)
        }
    };
    clock.lap("open embeddings");
    Ok(Loaded {
        protocol,
        entry,
        probes_path,
        probes,
        files,
        sets,
        probe_noise,
        distractor_noise,
        probe_store,
        distractor_store,
    })
}

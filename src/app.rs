//! The commands behind the CLI, as library functions (so tests drive exactly what users run).

use crate::config::{FgnetProtocol, FlipChoice, Format, PairProtocol, Registry};
use crate::dataset::{agedb, bin_pairs, cacd_vs, calfw, fgnet, lfw, PairBenchmark};
use crate::error::{Error, Result};
use crate::io::{to_json, write_atomic};
use crate::metrics::FoldMode;
use crate::protocol::fgnet as fgnet_protocol;
use crate::protocol::verification::{self, VerificationParams};
use crate::report::terminal::{fgnet_table, verification_table};
use crate::report::write_report;
use crate::run::dir::{RunData, RunDir};
use crate::run::results::Results;
use crate::run::results::{
    BenchmarkInfo, EmbeddingsInfo, FgnetProtocolInfo, FgnetResults, FileFingerprint, ProtocolInfo, Software, Timings,
    VerificationResults, SCHEMA, SCHEMA_VERSION,
};
use crate::store::import::{import_cached, EmbeddingSource};
use crate::store::EmbeddingStore;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub mod demo;
pub mod embed;
pub mod ijb;
pub mod manifest;

pub use ijb::run_ijb;

/// Where data, configuration and caches live for this invocation.
#[derive(Debug, Clone)]
pub struct Env {
    pub data_dir: PathBuf,
    pub registry: Registry,
    pub cache_dir: PathBuf,
}

/// `aifr-eval run <benchmark>` for pair-verification benchmarks.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub benchmark: String,
    /// `.aifrstore`, `.npy` or `.safetensors`; with `per_subject_models`, a directory holding
    /// `<subject>.npy` (or `.aifrstore`) per held-out FG-NET subject plus `keys.txt`.
    pub embeddings: PathBuf,
    /// FG-NET true leave-one-person-out: one embedding set per held-out subject.
    pub per_subject_models: bool,
    pub keys: Option<PathBuf>,
    pub flip_embeddings: Option<PathBuf>,
    pub mode: Option<FoldMode>,
    pub flip: Option<FlipChoice>,
    pub protocol_file: Option<PathBuf>,
    /// `key age` per line; without it ages come from AgeDB/FG-NET file names when every key has one.
    pub ages: Option<PathBuf>,
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    /// The human-readable summary printed on the terminal.
    pub table: String,
    pub timings: Timings,
    pub results_path: PathBuf,
    /// The HTML report written next to results.json.
    pub report: PathBuf,
}

struct Clock {
    start: Instant,
    last: Instant,
    stages: Vec<(String, f64)>,
}

impl Clock {
    fn new() -> Self {
        let now = Instant::now();
        Clock { start: now, last: now, stages: Vec::new() }
    }
    fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        self.stages.push((stage.to_string(), (now - self.last).as_secs_f64()));
        self.last = now;
    }
    fn finish(self) -> Timings {
        Timings {
            stages: self.stages,
            total_seconds: self.start.elapsed().as_secs_f64(),
            threads: rayon::current_num_threads(),
        }
    }
}

fn file_fingerprint(role: &str, path: &Path, data_dir: &Path) -> Result<FileFingerprint> {
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path).map_err(|e| Error::read(path, e))?;
    let bytes = std::fs::metadata(path).map_err(|e| Error::read(path, e))?.len();
    let rel = path.strip_prefix(data_dir).unwrap_or(path);
    Ok(FileFingerprint {
        role: role.into(),
        path: rel.to_string_lossy().replace('\\', "/"),
        bytes,
        blake3: h.finalize().to_hex().to_string(),
    })
}

fn is_store(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"AIFREMB\0"
}

/// Opens a store directly, or imports `.npy`/safetensors into the cache (reused when unchanged).
pub fn open_embeddings(
    env: &Env,
    embeddings: &Path,
    keys: Option<&Path>,
    flip: Option<&Path>,
    row_order_keys: Option<&[String]>,
) -> Result<EmbeddingStore> {
    if !embeddings.exists() {
        return Err(Error::Missing(format!("embeddings file {} does not exist", embeddings.display())));
    }
    // A .aifrstore that fails the magic check is a damaged store, not a .npy without keys.
    let named_store = embeddings.extension().is_some_and(|e| e.eq_ignore_ascii_case("aifrstore"));
    if is_store(embeddings) || named_store {
        if keys.is_some() || flip.is_some() {
            return Err(Error::Config(
                "--keys/--flip-embeddings apply to .npy/.safetensors input, not to an embedding store".into(),
            ));
        }
        return EmbeddingStore::open(embeddings);
    }
    let keys = match keys {
        Some(k) => k.to_path_buf(),
        None if row_order_keys.is_some() => {
            // Rows in pack order: write the implied key list once, next to the cache.
            let keys = row_order_keys.unwrap_or_default();
            let p = env.cache_dir.join(format!("rowkeys-{}.txt", keys.len()));
            if !p.exists() {
                let mut text = keys.join("\n");
                text.push('\n');
                write_atomic(&p, text.as_bytes())?;
            }
            p
        }
        None => {
            return Err(Error::Config(format!(
                "--keys is required with {}: a text file naming the image of each row (e.g. 'Aaron_Peirsol/Aaron_Peirsol_0001.jpg')",
                embeddings.display()
            )))
        }
    };
    let src = EmbeddingSource { embeddings: embeddings.to_path_buf(), keys, flip: flip.map(Path::to_path_buf) };
    Ok(import_cached(&src, &env.cache_dir)?.with_source(embeddings))
}

/// Reads an ages file: one `key age` per line (whitespace separated; `#` starts a comment).
pub fn read_ages(path: &Path) -> Result<std::collections::HashMap<String, u32>> {
    let text = crate::dataset::read_text(path)?;
    let mut ages = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (key, age) = line.rsplit_once(char::is_whitespace).ok_or_else(|| {
            Error::parse(path, i + 1, format!("expected '<image key> <age in years>', found '{line}'"))
        })?;
        let age: u32 = age.parse().ok().filter(|a| *a <= 130).ok_or_else(|| {
            Error::parse(path, i + 1, format!("age must be a whole number of years 0..130, found '{age}'"))
        })?;
        if ages.insert(key.trim().to_string(), age).is_some() {
            return Err(Error::parse(path, i + 1, format!("duplicate key '{}'", key.trim())));
        }
    }
    Ok(ages)
}

/// Ages of the benchmark's images: from `ages_file`, else from the file names when all have one.
pub fn resolve_ages(bench: &PairBenchmark, ages_file: Option<&Path>) -> Result<Option<Vec<u32>>> {
    use crate::metrics::age_gap::age_from_name;
    let Some(path) = ages_file else {
        // Ages the adapter read (AgeDB protocol files carry them) come before file names.
        if bench.ages.is_some() {
            return Ok(bench.ages.clone());
        }
        return Ok(bench.keys.iter().map(|k| age_from_name(k)).collect());
    };
    let table = read_ages(path)?;
    let mut missing = bench.keys.iter().filter(|k| !table.contains_key(k.as_str())).peekable();
    if missing.peek().is_some() {
        let all: Vec<&String> = missing.collect();
        let shown: Vec<String> = all.iter().take(5).map(|k| format!("'{k}'")).collect();
        return Err(Error::Invalid(format!(
            "{} of the benchmark's {} images have no age in {}; first: {}",
            all.len(),
            bench.keys.len(),
            path.display(),
            shown.join(", ")
        )));
    }
    Ok(Some(bench.keys.iter().map(|k| table[k.as_str()]).collect()))
}

/// Every file the benchmark's format needs for evaluation must exist; all missing ones are named.
pub(crate) fn check_eval_files(env: &Env, name: &str, entry: &crate::config::DatasetEntry) -> Result<()> {
    let mut missing = Vec::new();
    for role in entry.format.eval_roles() {
        if let Some(p) = entry.file(&env.data_dir, role).filter(|p| !p.exists()) {
            missing.push(format!("{} ({role})", p.display()));
        }
    }
    if !missing.is_empty() {
        return Err(Error::Missing(format!(
            "benchmark '{name}' needs {} under the data directory {} (set --data-dir or AIFR_DATA_DIR; `aifr-eval datasets` lists every file)",
            missing.join(", "),
            env.data_dir.display()
        )));
    }
    Ok(())
}

/// Reads a pair benchmark with the adapter its format names.
pub fn load_pair_benchmark(env: &Env, name: &str, folds: usize) -> Result<(PairBenchmark, Vec<FileFingerprint>)> {
    let entry = env.registry.get(name)?;
    if !entry.format.supported() {
        let supported: Vec<&str> =
            env.registry.datasets.iter().filter(|(_, d)| d.format.supported()).map(|(n, _)| n.as_str()).collect();
        return Err(Error::Config(format!(
            "benchmark '{name}' (format {:?}) cannot be evaluated by this version of aifr-eval yet; available now: {}",
            entry.format,
            supported.join(", ")
        )));
    }
    check_eval_files(env, name, entry)?;
    let role = entry.format.eval_roles()[0];
    let path = entry.file(&env.data_dir, role).unwrap_or_default();
    let bench = match entry.format {
        Format::LfwPairs => lfw::read_pairs(&path)?,
        Format::CalfwPairs => calfw::read_pairs(&path)?,
        Format::InsightfaceBin => bin_pairs::read_pairs(&path, folds)?,
        // The images are checked against the protocol when they are there (embeddings alone suffice).
        Format::AgedbMat => {
            agedb::read_protocol(&path, entry.file(&env.data_dir, "images").filter(|d| d.is_dir()).as_deref())?
        }
        Format::CacdVs => cacd_vs::read_dir(&path)?,
        other => return Err(Error::Config(format!("format {other:?} is not a pair-verification format"))),
    };
    let mut prints =
        bench.sources.iter().map(|p| file_fingerprint(role, p, &env.data_dir)).collect::<Result<Vec<_>>>()?;
    if entry.format == Format::CacdVs {
        // The directory listing is the protocol.
        prints.push(listing_fingerprint(role, &path, &bench.keys, &env.data_dir)?);
    }
    Ok((bench, prints))
}

/// Writes the run directory (`RunDir::finish`: companions, then results.json), then the HTML
/// report and the timings.
fn finish_run(out_dir: &Path, run: RunDir, table: String, mut clock: Clock) -> Result<RunReport> {
    let results_path = run.finish(out_dir)?;
    clock.lap("write results");
    let report = out_dir.join("report.html");
    write_report(&[RunData::load(out_dir)?], out_dir, "report.html")?;
    clock.lap("write report");
    let timings = clock.finish();
    write_atomic(&out_dir.join("timings.json"), &to_json(&timings))?;
    Ok(RunReport { table, timings, results_path, report })
}

/// `aifr-eval run <benchmark>`: the protocol follows the benchmark's format.
pub fn run_benchmark(env: &Env, req: &RunRequest) -> Result<RunReport> {
    match env.registry.get(&req.benchmark)?.format {
        Format::Fgnet => run_fgnet(env, req),
        Format::Ijb => run_ijb(env, req),
        Format::Megaface => Err(Error::Config(format!(
            "'{}' is evaluated per distractor set: use `aifr-eval megaface --probe {} --distractors 1m …`",
            req.benchmark,
            if req.benchmark.contains("facescrub") { "facescrub" } else { "fgnet" }
        ))),
        _ => run_pairs(env, req),
    }
}

/// Hash of a directory listing (names and sizes): identifies an image set without reading it.
fn listing_fingerprint(role: &str, dir: &Path, names: &[String], data_dir: &Path) -> Result<FileFingerprint> {
    let mut h = blake3::Hasher::new();
    let mut total = 0u64;
    for name in names {
        let p = dir.join(name);
        let len = std::fs::metadata(&p).map_err(|e| Error::read(&p, e))?.len();
        total += len;
        h.update(name.as_bytes());
        h.update(&len.to_le_bytes());
    }
    let rel = dir.strip_prefix(data_dir).unwrap_or(dir);
    Ok(FileFingerprint {
        role: role.into(),
        path: rel.to_string_lossy().replace('\\', "/"),
        bytes: total,
        blake3: h.finalize().to_hex().to_string(),
    })
}

/// The store of the model trained without FG-NET subject `id`: `<id>.aifrstore`, or `<id>.npy`
/// (+ `<id>_flip.npy`) with the shared `keys.txt`, in `dir`.
fn open_subject_store(env: &Env, dir: &Path, keys: &Path, id: u32) -> Result<EmbeddingStore> {
    let store = dir.join(format!("{id:03}.aifrstore"));
    if store.exists() {
        return EmbeddingStore::open(&store);
    }
    let npy = dir.join(format!("{id:03}.npy"));
    if !npy.exists() {
        return Err(Error::Missing(format!(
            "no embeddings for held-out subject {id:03} in {} (expected {id:03}.npy with keys.txt, or {id:03}.aifrstore)",
            dir.display()
        )));
    }
    let flip = dir.join(format!("{id:03}_flip.npy"));
    open_embeddings(env, &npy, Some(keys), flip.exists().then_some(flip.as_path()), None)
}

/// FG-NET: leave-one-image-out rank-1 and all-pairs verification with age breakdowns.
pub fn run_fgnet(env: &Env, req: &RunRequest) -> Result<RunReport> {
    let mut clock = Clock::new();
    let protocol = match &req.protocol_file {
        Some(p) => FgnetProtocol::from_file(p)?,
        None => FgnetProtocol::builtin()?,
    };
    if req.mode.is_some() || req.ages.is_some() {
        return Err(Error::Config(
            "FG-NET takes ages from its file names and has no k-fold mode: drop --mode/--ages".into(),
        ));
    }
    let entry = env.registry.get(&req.benchmark)?;
    let dir = entry
        .file(&env.data_dir, "images")
        .ok_or_else(|| Error::Config(format!("dataset '{}' has no 'images' entry", req.benchmark)))?;
    if !dir.exists() {
        return Err(Error::Missing(format!(
            "benchmark '{}' needs the FG-NET image directory {} (set --data-dir or AIFR_DATA_DIR)",
            req.benchmark,
            dir.display()
        )));
    }
    let bench = fgnet::read_dir(&dir)?;
    let keys: Vec<String> = bench.images.iter().map(|i| i.key.clone()).collect();
    let files = vec![listing_fingerprint("images", &dir, &keys, &env.data_dir)?];
    clock.lap("read benchmark");
    let (outcome, embeddings, fusion) = if req.per_subject_models {
        let dir = &req.embeddings;
        let keys = dir.join("keys.txt");
        // Every model's store fingerprint, in subject order: together they identify the inputs.
        let prints = std::sync::Mutex::new(Vec::new());
        let store_for = |id: u32| -> Result<EmbeddingStore> {
            let store = open_subject_store(env, dir, &keys, id)?;
            if let Ok(mut p) = prints.lock() {
                p.push(store.fingerprint());
            }
            Ok(store)
        };
        let first = open_subject_store(env, dir, &keys, bench.images[0].subject)?;
        let fusion = verification::resolve_fusion(req.flip.unwrap_or(protocol.flip), FoldMode::Strict, &first)?;
        let outcome = fgnet_protocol::evaluate_per_subject(&bench, store_for, &protocol, fusion)?;
        let mut info = EmbeddingsInfo::of(&first);
        let joined = prints.into_inner().unwrap_or_default().join("\n");
        info.fingerprint = blake3::hash(joined.as_bytes()).to_hex().to_string();
        (outcome, info, fusion)
    } else {
        let store = open_embeddings(env, &req.embeddings, req.keys.as_deref(), req.flip_embeddings.as_deref(), None)?;
        let made_by = crate::embed::meta::EmbedMeta::of_store(&store)?;
        let mut bench = bench.clone();
        let skipped = crate::embed::skipped::exclude_from_fgnet(&mut bench, made_by.as_ref());
        let fusion = verification::resolve_fusion(req.flip.unwrap_or(protocol.flip), FoldMode::Strict, &store)?;
        let info = EmbeddingsInfo::of(&store).with_provenance(made_by.as_ref(), skipped);
        (fgnet_protocol::evaluate(&bench, &store, &protocol, fusion)?, info, fusion)
    };
    clock.lap("score and metrics");
    let results = FgnetResults {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        kind: crate::run::results::kind::FGNET.into(),
        software: Software::current(),
        benchmark: BenchmarkInfo { name: req.benchmark.clone(), title: entry.title.clone(), format: entry.format, files },
        protocol: FgnetProtocolInfo {
            name: protocol.name.clone(),
            mode: "strict".into(),
            flip_fusion: fusion,
            far_targets: protocol.far_targets.clone(),
            age_groups: protocol.age_groups.clone(),
            score: "cosine similarity of L2-normalised (fused) embeddings".into(),
            accept_rule: "rank-1 hit iff the best mate scores strictly above every other subject's image; verification: same iff score >= threshold".into(),
        },
        embeddings,
        counts: outcome.counts,
        metrics: outcome.metrics,
    };
    let table = fgnet_table(&results);
    let results = Results::Fgnet(results);
    let run = RunDir { results: &results, curves: outcome.curves.as_ref(), pair_scores: None, cmc_curves: None };
    finish_run(&req.out_dir, run, table, clock)
}

pub fn run_pairs(env: &Env, req: &RunRequest) -> Result<RunReport> {
    if req.per_subject_models {
        return Err(Error::Config("one model per held-out subject (--loo-embeddings) applies to FG-NET only".into()));
    }
    let mut clock = Clock::new();
    let protocol = match &req.protocol_file {
        Some(p) => PairProtocol::from_file(p)?,
        None => PairProtocol::builtin()?,
    };
    let (mut bench, files) = load_pair_benchmark(env, &req.benchmark, protocol.folds)?;
    bench.ages = resolve_ages(&bench, req.ages.as_deref())?;
    clock.lap("read benchmark");
    let row_order = bench.keys_are_row_order.then_some(bench.keys.as_slice());
    let store = open_embeddings(env, &req.embeddings, req.keys.as_deref(), req.flip_embeddings.as_deref(), row_order)?;
    // A store the network made may lack images skipped as unreadable: their pairs are excluded.
    let made_by = crate::embed::meta::EmbedMeta::of_store(&store)?;
    let skipped = crate::embed::skipped::exclude_from_pairs(&mut bench, made_by.as_ref());
    clock.lap("open embeddings");
    let mode = req.mode.unwrap_or(protocol.default_mode);
    let fusion = verification::resolve_fusion(req.flip.unwrap_or(protocol.flip_for(mode)), mode, &store)?;
    let params = VerificationParams {
        mode,
        fusion,
        far_targets: protocol.far_targets.clone(),
        age_gap: protocol.age_gap.clone(),
    };
    let mut outcome = verification::evaluate(&bench, &store, &params)?;
    clock.lap("score and metrics");
    let entry = env.registry.get(&req.benchmark)?;
    if outcome.metrics.age_gap.is_none() && entry.format == Format::CacdVs {
        outcome.metrics.age_gap_unavailable = Some(
            "CACD-VS names its images by pair number only (0000_0.jpg) and ships no ages: no age-gap breakdown (supply ages with --ages)".into(),
        );
    }
    let results = VerificationResults {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        kind: crate::run::results::kind::PAIR_VERIFICATION.into(),
        software: Software::current(),
        benchmark: BenchmarkInfo {
            name: req.benchmark.clone(),
            title: entry.title.clone(),
            format: entry.format,
            files,
        },
        protocol: ProtocolInfo::pairs(protocol.name.clone(), mode, fusion, bench.folds, protocol.far_targets.clone()),
        embeddings: EmbeddingsInfo::of(&store).with_provenance(made_by.as_ref(), skipped),
        counts: outcome.counts,
        metrics: outcome.metrics,
    };
    let table = verification_table(&results);
    let results = Results::Pairs(results);
    let run = RunDir {
        results: &results,
        curves: Some(&outcome.curves),
        pair_scores: Some(&outcome.pairs),
        cmc_curves: None,
    };
    finish_run(&req.out_dir, run, table, clock)
}

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

/// MegaFace Challenge 1: identification and verification per distractor size (docs/protocols.md §4).
pub fn run_megaface(env: &Env, req: &MegafaceRequest) -> Result<RunReport> {
    use crate::config::MegafaceProtocol;
    use crate::dataset::megaface::{distractor_list_name, read_distractor_list, read_noise_list, read_probe_list};
    use crate::protocol::megaface::{evaluate, Cleaning, DistractorSet, MegafaceInput};
    use crate::run::results::{MegafaceEmbeddings, MegafaceMetrics, MegafaceProtocolInfo, MegafaceResults};

    let mut clock = Clock::new();
    let protocol = match &req.protocol_file {
        Some(p) => MegafaceProtocol::from_file(p)?,
        None => MegafaceProtocol::builtin()?,
    };
    let entry = env.registry.get(&req.benchmark)?;
    if entry.format != Format::Megaface {
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
        MegafaceEmbeddingsSource::DevkitFeatures { suffix, probe_dir, distractor_dir } => {
            let pdir = megaface_file(env, &req.benchmark, "probe_features", probe_dir.as_deref())?;
            let ddir = megaface_file(env, &req.benchmark, "distractor_features", distractor_dir.as_deref())?;
            let p = crate::store::import::import_devkit_features(&probes.paths, &pdir, suffix, &env.cache_dir)?;
            let d = crate::store::import::import_devkit_features(&union_keys(&sets), &ddir, suffix, &env.cache_dir)?;
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
    let input = MegafaceInput {
        probes: &probes,
        probe_store: &probe_store,
        distractor_store: distractor_store.as_ref().unwrap_or(&probe_store),
        sets: &sets,
        cleaning: req.cleaning,
        probe_noise: probe_noise.as_ref(),
        distractor_noise: distractor_noise.as_ref(),
        flip: req.flip,
        scoring: &req.score_device,
    };
    let outcome = evaluate(&input, &protocol)?;
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
    let cmc = to_json(&crate::report::megaface::CmcCurves::new(&outcome.curves));
    let table = crate::report::megaface::terminal_table(&results);
    let results = Results::Megaface(results);
    let run = RunDir { results: &results, curves: None, pair_scores: None, cmc_curves: Some(cmc) };
    finish_run(&req.out_dir, run, table, clock)
}

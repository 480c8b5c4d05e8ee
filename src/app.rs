//! The commands behind the CLI, as library functions (so tests drive exactly what users run).

use crate::config::{FgnetProtocol, FlipChoice, Format, IjbProtocol, PairProtocol, Registry};
use crate::dataset::ijb::IjbFiles;
use crate::dataset::{bin_pairs, calfw, fgnet, lfw, PairBenchmark};
use crate::error::{Error, Result};
use crate::metrics::FoldMode;
use crate::protocol::fgnet as fgnet_protocol;
use crate::protocol::verification::{self, VerificationParams};
use crate::report::html::write_report;
use crate::report::results::{
    mode_label, BenchmarkInfo, EmbeddingsInfo, FgnetProtocolInfo, FgnetResults, FileFingerprint, IjbPoolingInfo,
    IjbProtocolInfo, IjbResults, ProtocolInfo, Software, Timings, VerificationResults, SCHEMA, SCHEMA_VERSION,
};
use crate::report::run::{write_pair_scores, RunData};
use crate::report::terminal::{fgnet_table, ijb_table, verification_table};
use crate::report::{to_json, write_atomic};
use crate::store::import::{import_cached, EmbeddingSource};
use crate::store::EmbeddingStore;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    if is_store(embeddings) {
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
fn check_eval_files(env: &Env, name: &str, entry: &crate::config::DatasetEntry) -> Result<()> {
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
        other => return Err(Error::Config(format!("format {other:?} is not a pair-verification format"))),
    };
    let prints = bench.sources.iter().map(|p| file_fingerprint(role, p, &env.data_dir)).collect::<Result<Vec<_>>>()?;
    Ok((bench, prints))
}

/// Writes results.json (last of the data files: its presence means the run directory is
/// complete), then the HTML report and the timings.
fn finish_run(out_dir: &Path, results_json: &[u8], table: String, mut clock: Clock) -> Result<RunReport> {
    let results_path = out_dir.join("results.json");
    write_atomic(&results_path, results_json)?;
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
        let fusion = verification::resolve_fusion(req.flip.unwrap_or(protocol.flip), FoldMode::Strict, &store)?;
        (fgnet_protocol::evaluate(&bench, &store, &protocol, fusion)?, EmbeddingsInfo::of(&store), fusion)
    };
    clock.lap("score and metrics");
    let results = FgnetResults {
        schema: SCHEMA,
        schema_version: SCHEMA_VERSION,
        kind: "fgnet_identification",
        software: Software::current(),
        benchmark: BenchmarkInfo { name: req.benchmark.clone(), title: entry.title.clone(), format: entry.format, files },
        protocol: FgnetProtocolInfo {
            name: protocol.name.clone(),
            mode: "strict",
            flip_fusion: fusion,
            far_targets: protocol.far_targets.clone(),
            age_groups: protocol.age_groups.clone(),
            score: "cosine similarity of L2-normalised (fused) embeddings",
            accept_rule: "rank-1 hit iff the best mate scores strictly above every other subject's image; verification: same iff score >= threshold",
        },
        embeddings,
        counts: outcome.counts,
        metrics: outcome.metrics,
    };
    let curves_path = req.out_dir.join("curves.json");
    match &outcome.curves {
        Some(c) => write_atomic(&curves_path, &to_json(c))?,
        // A stale curves.json from an earlier run in this directory would be read with these results.
        None if curves_path.exists() => {
            std::fs::remove_file(&curves_path).map_err(|e| Error::write(&curves_path, e))?
        }
        None => {}
    }
    finish_run(&req.out_dir, &to_json(&results), fgnet_table(&results), clock)
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
    clock.lap("open embeddings");
    let mode = req.mode.unwrap_or(protocol.default_mode);
    let fusion = verification::resolve_fusion(req.flip.unwrap_or(protocol.flip_for(mode)), mode, &store)?;
    let params = VerificationParams {
        mode,
        fusion,
        far_targets: protocol.far_targets.clone(),
        age_gap: protocol.age_gap.clone(),
    };
    let outcome = verification::evaluate(&bench, &store, &params)?;
    clock.lap("score and metrics");
    let entry = env.registry.get(&req.benchmark)?;
    let results = VerificationResults {
        schema: SCHEMA,
        schema_version: SCHEMA_VERSION,
        kind: "pair_verification",
        software: Software::current(),
        benchmark: BenchmarkInfo {
            name: req.benchmark.clone(),
            title: entry.title.clone(),
            format: entry.format,
            files,
        },
        protocol: ProtocolInfo {
            name: protocol.name.clone(),
            mode: mode_label(mode),
            fold_mode: mode,
            flip_fusion: fusion,
            folds: bench.folds,
            far_targets: protocol.far_targets.clone(),
            score: if mode == FoldMode::Insightface {
                "squared L2 distance of unit vectors for k-fold; cosine for ROC/TAR"
            } else {
                "cosine similarity of L2-normalised (fused) embeddings"
            },
            accept_rule: match mode {
                FoldMode::Strict => "same iff score >= threshold",
                FoldMode::Insightface => "k-fold: same iff distance < threshold; ROC: score >= threshold",
                FoldMode::Facexzoo => {
                    "k-fold: same iff score > threshold, different iff score < threshold; ROC: score >= threshold"
                }
            },
        },
        embeddings: EmbeddingsInfo::of(&store),
        counts: outcome.counts,
        metrics: outcome.metrics,
    };
    write_atomic(&req.out_dir.join("curves.json"), &to_json(&outcome.curves))?;
    write_pair_scores(&req.out_dir.join("pair_scores.npy"), &outcome.pairs)?;
    finish_run(&req.out_dir, &to_json(&results), verification_table(&results), clock)
}

/// The IJB release files of a registry entry; the 1:N lists are used when all three exist.
fn ijb_files(env: &Env, name: &str, entry: &crate::config::DatasetEntry) -> Result<IjbFiles> {
    check_eval_files(env, name, entry)?;
    let file = |role: &str| entry.file(&env.data_dir, role).unwrap_or_default();
    let one_n: Vec<PathBuf> =
        ["gallery1", "gallery2", "probes"].iter().filter_map(|r| entry.file(&env.data_dir, r)).collect();
    let present = one_n.iter().filter(|p| p.exists()).count();
    let one_n = match (one_n.len(), present) {
        (3, 3) => Some([one_n[0].clone(), one_n[1].clone(), one_n[2].clone()]),
        (_, 0) => None,
        _ => {
            let missing: Vec<String> = one_n.iter().filter(|p| !p.exists()).map(|p| p.display().to_string()).collect();
            return Err(Error::Missing(format!(
                "benchmark '{name}': 1:N needs all three lists (gallery1, gallery2, probes); missing {}",
                missing.join(", ")
            )));
        }
    };
    Ok(IjbFiles { faces: file("faces"), landmarks: file("landmarks"), pairs: file("pairs"), one_n })
}

/// Gallery name from a 1:N list file name: `ijbc_1N_gallery_G1.csv` → `G1`.
fn gallery_name(path: &Path, fallback: &'static str) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit('_').next())
        .filter(|s| !s.is_empty())
        .unwrap_or(fallback)
        .to_string()
}

/// IJB-B/C: template pooling, 1:1 verification and 1:N identification.
pub fn run_ijb(env: &Env, req: &RunRequest) -> Result<RunReport> {
    use crate::protocol::ijb::{self, IjbParams, Pooling};
    let mut clock = Clock::new();
    if req.per_subject_models || req.mode.is_some() || req.ages.is_some() {
        return Err(Error::Config(
            "IJB reports every rule side by side and has no ages or per-subject models: drop --mode/--ages/--loo-embeddings".into(),
        ));
    }
    let protocol = match &req.protocol_file {
        Some(p) => IjbProtocol::from_file(p)?,
        None => IjbProtocol::builtin()?,
    };
    let entry = env.registry.get(&req.benchmark)?;
    let files = ijb_files(env, &req.benchmark, entry)?;
    let names = match &files.one_n {
        Some([g1, g2, _]) => [gallery_name(g1, "G1"), gallery_name(g2, "G2")],
        None => ["G1".to_string(), "G2".to_string()],
    };
    let release = crate::dataset::ijb::read_release(&files, [names[0].as_str(), names[1].as_str()])?;
    clock.lap("read benchmark");
    let prints = release
        .sources
        .iter()
        .map(|(role, p)| file_fingerprint(role, p, &env.data_dir))
        .collect::<Result<Vec<_>>>()?;
    clock.lap("fingerprint files");
    let store = open_embeddings(env, &req.embeddings, req.keys.as_deref(), req.flip_embeddings.as_deref(), None)?;
    clock.lap("open embeddings");
    let flip = match req.flip.unwrap_or(protocol.pooling.flip) {
        FlipChoice::Auto => store.has_flip(),
        FlipChoice::Sum => true,
        FlipChoice::None => false,
        FlipChoice::Concat => {
            return Err(Error::Config("IJB pooling sums the mirrored embedding: use --flip sum or none".into()))
        }
    };
    let pooling =
        Pooling { flip, normalize_images: protocol.pooling.normalize_images, detector_weight: protocol.pooling.detector_weight };
    let params = IjbParams {
        pooling,
        far_targets: protocol.far_targets.clone(),
        fpir_targets: protocol.fpir_targets.clone(),
        cmc_ranks: protocol.cmc_ranks.clone(),
        legacy_fars: protocol.legacy_fars.clone(),
    };
    let outcome = ijb::evaluate(&release, &store, &params)?;
    for (stage, secs) in &outcome.stages {
        clock.stages.push((stage.clone(), *secs));
    }
    clock.last = Instant::now();
    let results = IjbResults {
        schema: SCHEMA,
        schema_version: SCHEMA_VERSION,
        kind: "ijb",
        software: Software::current(),
        benchmark: BenchmarkInfo { name: req.benchmark.clone(), title: entry.title.clone(), format: entry.format, files: prints },
        protocol: IjbProtocolInfo {
            name: protocol.name.clone(),
            mode: "strict",
            flip_fusion: if flip { verification::Fusion::Sum } else { verification::Fusion::None },
            pooling: IjbPoolingInfo {
                switches: pooling,
                rule: "f_i = (e_i + e_i_flip if flip) / ||.|| if normalize_images, times the detector score if detector_weight (raw embeddings); media = mean of its images; template = sum of its medias, L2-normalised",
            },
            far_targets: protocol.far_targets.clone(),
            fpir_targets: protocol.fpir_targets.clone(),
            cmc_ranks: protocol.cmc_ranks.clone(),
            legacy_fars: protocol.legacy_fars.clone(),
            score: "cosine similarity of the L2-normalised template features (f32 dot product)",
            accept_rule: "1:1: same iff score >= threshold (both TAR rules report their threshold)",
            open_set_rule: "strict: FPIR threshold by bob's rule on each non-mated probe's highest gallery score, accept mate score >= threshold; compat=ijb_evals: threshold = sorted non-mated maxima at max(floor(N*FPIR)-1, 0), accept >; both require the mate to score strictly above every non-mate (rank 1); CMC ranks count ties against the mate",
        },
        embeddings: EmbeddingsInfo::of(&store),
        counts: outcome.counts,
        metrics: outcome.metrics,
    };
    write_atomic(&req.out_dir.join("curves.json"), &to_json(&outcome.curves))?;
    // 15.7 M pairs would make a 600 MB pair_scores.npy: IJB runs keep none, so drop a stale one.
    let stale = req.out_dir.join("pair_scores.npy");
    if stale.exists() {
        std::fs::remove_file(&stale).map_err(|e| Error::write(&stale, e))?;
    }
    finish_run(&req.out_dir, &to_json(&results), ijb_table(&results), clock)
}

//! The commands behind the CLI, as library functions (so tests drive exactly what users run).

use crate::config::{FlipChoice, Registry};
use crate::dataset::adapter::{PairInput, Protocol};
use crate::dataset::PairBenchmark;
use crate::error::{Error, Result};
use crate::io::{to_json, write_atomic};
use crate::metrics::FoldMode;
use crate::report::write_report;
use crate::run::dir::{OutDir, RunData, RunDir};
use crate::run::results::{FileFingerprint, Results, Timings};
use crate::store::import::{import_cached, EmbeddingSource};
use crate::store::EmbeddingStore;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub mod datasets;
pub mod demo;
pub mod embed;
pub mod fgnet;
pub mod ijb;
pub mod manifest;
pub mod megaface;
pub mod pairs;

pub use fgnet::{evaluate_fgnet, run_fgnet};
pub use ijb::{evaluate_ijb, run_ijb};
pub use megaface::{
    evaluate_megaface, run_megaface, scan_megaface_shard, MegafaceEmbeddingsSource, MegafaceRequest, ShardReport,
};
pub use pairs::{evaluate_pairs, run_pairs};

/// Where data, configuration and caches live for this invocation.
#[derive(Debug, Clone)]
pub struct Env {
    pub data_dir: PathBuf,
    pub registry: Registry,
    pub cache_dir: PathBuf,
    /// `--trust-store`: use embedding stores without checking their content hash.
    pub trust_store: bool,
}

impl Env {
    /// An embedding store made earlier (given by the user, or found in a cache) is checked
    /// against its content hash before its numbers are trusted, unless `--trust-store`.
    pub fn checked(&self, store: EmbeddingStore) -> Result<EmbeddingStore> {
        if !self.trust_store {
            store.verify()?;
        }
        Ok(store)
    }

    /// A cached store: checked when an earlier run made it, trusted when made just now.
    pub fn checked_cached(&self, cached: crate::store::import::Cached) -> Result<EmbeddingStore> {
        if cached.reused {
            self.checked(cached.store)
        } else {
            Ok(cached.store)
        }
    }
}

/// Embeddings a caller already holds in memory (the Python bindings' arrays): `count × dim`
/// values of `dtype` per view, in row order, read in place by the store made from them.
#[derive(Clone)]
pub struct ArrayEmbeddings {
    /// What messages call this input (the argument's name, e.g. `embeddings`).
    pub label: String,
    pub dtype: crate::store::DType,
    pub count: usize,
    pub dim: usize,
    pub rows: std::sync::Arc<dyn crate::store::RowBytes>,
    pub flip: Option<std::sync::Arc<dyn crate::store::RowBytes>>,
    /// The image key of each row; `None` where the benchmark's rows have an order of their own
    /// (a `.bin` pack), as `--keys` may be left out there.
    pub keys: Option<Vec<String>>,
}

impl std::fmt::Debug for ArrayEmbeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayEmbeddings")
            .field("label", &self.label)
            .field("dtype", &self.dtype)
            .field("shape", &(self.count, self.dim))
            .field("flip", &self.flip.is_some())
            .finish()
    }
}

/// Where a run's embeddings come from: a file the user names (the CLI), or arrays in memory.
#[derive(Debug, Clone)]
pub enum Embeddings {
    File(PathBuf),
    Arrays(std::sync::Arc<ArrayEmbeddings>),
}

impl From<PathBuf> for Embeddings {
    fn from(p: PathBuf) -> Self {
        Embeddings::File(p)
    }
}

impl Embeddings {
    /// The file, for the commands that only take files.
    pub fn file(&self, what: &str) -> Result<&Path> {
        match self {
            Embeddings::File(p) => Ok(p),
            Embeddings::Arrays(_) => Err(Error::Config(format!("{what} takes files, not arrays"))),
        }
    }
}

/// `aifr-eval run <benchmark>` for pair-verification benchmarks.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub benchmark: String,
    /// `.aifrstore`, `.npy` or `.safetensors`; with `per_subject_models`, a directory holding
    /// `<subject>.npy` (or `.aifrstore`) per held-out FG-NET subject plus `keys.txt`.
    pub embeddings: Embeddings,
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
        return env.checked(EmbeddingStore::open(embeddings)?);
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
    Ok(env.checked_cached(import_cached(&src, &env.cache_dir)?)?.with_source(embeddings))
}

/// The store of a run's embeddings: `open_embeddings` for a file; for arrays, a store over them
/// (no copy), keyed by their keys or, where the benchmark has a row order, by that.
pub fn open_run_embeddings(
    env: &Env,
    embeddings: &Embeddings,
    keys: Option<&Path>,
    flip: Option<&Path>,
    row_order_keys: Option<&[String]>,
) -> Result<EmbeddingStore> {
    let a = match embeddings {
        Embeddings::File(p) => return open_embeddings(env, p, keys, flip, row_order_keys),
        Embeddings::Arrays(a) => a,
    };
    if keys.is_some() || flip.is_some() {
        return Err(Error::Config("key and flip files apply to embedding files, not to arrays".into()));
    }
    let keys = match (&a.keys, row_order_keys) {
        (Some(k), _) => k.clone(),
        (None, Some(order)) => order.to_vec(),
        (None, None) => {
            return Err(Error::Config(format!(
                "keys are required with {}: the image key of each row (e.g. 'Aaron_Peirsol/Aaron_Peirsol_0001.jpg')",
                a.label
            )))
        }
    };
    if keys.len() != a.count {
        return Err(Error::Invalid(format!(
            "{} keys but {} has {} rows; they must correspond row by row",
            keys.len(),
            a.label,
            a.count
        )));
    }
    let mut views = vec![a.rows.clone()];
    views.extend(a.flip.clone());
    EmbeddingStore::from_memory(&a.label, a.dtype, a.dim, views, &keys)
}

/// Reads an ages file: one `key age` per line (whitespace separated; `#` starts a comment).
pub fn read_ages(path: &Path) -> Result<std::collections::HashMap<String, u32>> {
    let text = crate::io::read_text(path, crate::io::Role::KEY_LIST)?;
    let mut ages = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (key, age) = line.rsplit_once(char::is_whitespace).ok_or_else(|| {
            Error::parse(
                path,
                i + 1,
                format!("expected '<image key> <age in years>', found '{}'", crate::io::excerpt(line)),
            )
        })?;
        let age: u32 = age.parse().ok().filter(|a| *a <= 130).ok_or_else(|| {
            Error::parse(
                path,
                i + 1,
                format!("age must be a whole number of years 0..130, found '{}'", crate::io::excerpt(age)),
            )
        })?;
        if ages.insert(key.trim().to_string(), age).is_some() {
            return Err(Error::parse(path, i + 1, format!("duplicate key '{}'", crate::io::excerpt(key.trim()))));
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
        let shown: Vec<String> = all.iter().take(5).map(|k| format!("'{}'", crate::io::excerpt(k))).collect();
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
    for role in entry.format.adapter().eval_roles {
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
    let adapter = entry.format.adapter();
    if !adapter.supported() {
        let supported: Vec<&str> = env
            .registry
            .datasets
            .iter()
            .filter(|(_, d)| d.format.adapter().supported())
            .map(|(n, _)| n.as_str())
            .collect();
        return Err(Error::Config(format!(
            "benchmark '{name}' (format {:?}) cannot be evaluated by this version of aifr-eval yet; available now: {}",
            entry.format,
            supported.join(", ")
        )));
    }
    check_eval_files(env, name, entry)?;
    let role = adapter.eval_roles[0];
    let path = entry.file(&env.data_dir, role).unwrap_or_default();
    let Protocol::Pairs { read, listing } = adapter.protocol else {
        return Err(Error::Config(format!("format {:?} is not a pair-verification format", entry.format)));
    };
    let bench = read(&PairInput { path: &path, folds, role: &|r| entry.file(&env.data_dir, r) })?;
    let mut prints =
        bench.sources.iter().map(|p| file_fingerprint(role, p, &env.data_dir)).collect::<Result<Vec<_>>>()?;
    if listing {
        // The directory listing is the protocol.
        prints.push(listing_fingerprint(role, &path, &bench.keys, &env.data_dir)?);
    }
    Ok((bench, prints))
}

/// One evaluated run before anything is written: the typed results, the companions
/// `RunDir::finish` writes beside them, the terminal table and the stage times so far. The CLI
/// writes it (`finish_run`); the Python bindings hand `results` over without a run directory.
pub struct Evaluation {
    pub results: Results,
    pub curves: Option<crate::protocol::curves::Curves>,
    pub pair_scores: Option<crate::protocol::curves::PairScores>,
    pub cmc_curves: Option<crate::protocol::curves::CmcCurves>,
    pub search_outcomes: Option<crate::protocol::outcomes::SearchOutcomes>,
    pub table: String,
    clock: Clock,
}

impl Evaluation {
    fn run_dir(&self) -> RunDir<'_> {
        RunDir {
            results: &self.results,
            curves: self.curves.as_ref(),
            pair_scores: self.pair_scores.as_ref(),
            cmc_curves: self.cmc_curves.as_ref(),
            search_outcomes: self.search_outcomes.as_ref(),
        }
    }
}

/// Writes the run (`RunDir::finish`: companions, then results.json), its HTML report and the
/// timings into the staging directory of `out`, then commits them into the run directory.
fn finish_run(out: OutDir, ev: Evaluation) -> Result<RunReport> {
    let stage = out.staging();
    ev.run_dir().finish(stage)?;
    let (table, mut clock) = (ev.table, ev.clock);
    clock.lap("write results");
    let mut data = RunData::load(stage)?;
    // The report names the run by its directory, not by the staging place.
    data.dir = out.dir().to_path_buf();
    write_report(&[data], stage, "report.html")?;
    clock.lap("write report");
    let timings = clock.finish();
    write_atomic(&stage.join("timings.json"), &to_json(&timings))?;
    let report = out.dir().join("report.html");
    let results_path = out.commit()?;
    Ok(RunReport { table, timings, results_path, report })
}

/// `aifr-eval run <benchmark>`: the protocol follows the benchmark's format.
pub fn run_benchmark(env: &Env, req: &RunRequest) -> Result<RunReport> {
    match env.registry.get(&req.benchmark)?.format.adapter().protocol {
        Protocol::Fgnet => run_fgnet(env, req),
        Protocol::Ijb => run_ijb(env, req),
        Protocol::Megaface => Err(Error::Config(format!(
            "'{}' is evaluated per distractor set: use `aifr-eval megaface --probe {} --distractors 1m …`",
            req.benchmark,
            if req.benchmark.contains("facescrub") { "facescrub" } else { "fgnet" }
        ))),
        // A manifest entry is refused there, naming the benchmarks that can run.
        Protocol::Pairs { .. } | Protocol::Manifest => run_pairs(env, req),
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

/// The protocol file of a pair run (`--protocol-file`, else the built-in one).
fn pair_protocol(file: Option<&Path>) -> Result<crate::config::PairProtocol> {
    match file {
        Some(p) => crate::config::PairProtocol::from_file(p),
        None => crate::config::PairProtocol::builtin(),
    }
}

/// Verification parameters of a pair run: the requested mode and flip fusion, else the protocol's.
fn verification_params(
    protocol: &crate::config::PairProtocol,
    mode: Option<FoldMode>,
    flip: Option<crate::config::FlipChoice>,
    store: &EmbeddingStore,
) -> Result<crate::protocol::verification::VerificationParams> {
    let mode = mode.unwrap_or(protocol.default_mode);
    let fusion = crate::protocol::verification::resolve_fusion(flip.unwrap_or(protocol.flip_for(mode)), mode, store)?;
    Ok(crate::protocol::verification::VerificationParams {
        mode,
        fusion,
        far_targets: protocol.far_targets.clone(),
        age_gap: protocol.age_gap.clone(),
        differentials: protocol.differentials.clone(),
    })
}

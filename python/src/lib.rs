//! `aifr_eval._native`: the Rust side of the Python package. It is deliberately thin: every
//! number comes from the library's own request → results path (`app::evaluate_*`, the functions
//! `aifr-eval run` calls), and results cross into Python as the JSON `results.json` holds, so a
//! result from Python is the CLI's byte for byte. The Python package (`aifr_eval/__init__.py`)
//! checks and converts arrays and hands over their address; this module never allocates a copy of
//! the rows.

use aifr_eval::app::{self, ArrayEmbeddings, Embeddings, Env, Evaluation, RunRequest};
use aifr_eval::config::{FlipChoice, Registry};
use aifr_eval::error::Error;
use aifr_eval::metrics::{FoldMode, TarRule};
use aifr_eval::store::{DType, RowBytes};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

mod images;

/// The library's error as the Python exception its kind calls for, with the CLI's message.
pub(crate) fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match &e {
        Error::Missing(_) => PyFileNotFoundError::new_err(msg),
        Error::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Read { .. } | Error::Write { .. } | Error::Busy(_) => PyOSError::new_err(msg),
        Error::Parse { .. } | Error::Data { .. } | Error::Invalid(_) | Error::Config(_) => PyValueError::new_err(msg),
    }
}

/// Rows of a NumPy array, read in place. `owner` keeps the array alive for as long as a store
/// reads it; `addr`/`len` are its data pointer and byte length, checked by the Python side
/// (C-contiguous, aligned, little-endian float32 or float16).
struct PyRows {
    _owner: Py<PyAny>,
    addr: usize,
    len: usize,
}

impl RowBytes for PyRows {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `addr` is the data pointer of a C-contiguous array of `len` bytes that `_owner`
        // keeps alive; the Python side documents that the array must not be written to while an
        // evaluation reads it (as for any NumPy buffer handed to a thread).
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

/// An array as the Python side describes it: (array, address, rows, dim, dtype "f32"|"f16").
type ArrayDesc = (Py<PyAny>, usize, usize, usize, String);

fn rows_of(desc: ArrayDesc) -> PyResult<(Arc<dyn RowBytes>, usize, usize, DType)> {
    let (owner, addr, rows, dim, dtype) = desc;
    let dtype = match dtype.as_str() {
        "f32" => DType::F32,
        "f16" => DType::F16,
        other => return Err(PyValueError::new_err(format!("internal: unknown row dtype '{other}'"))),
    };
    let len = rows
        .checked_mul(dim)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| PyValueError::new_err("array too large"))?;
    Ok((Arc::new(PyRows { _owner: owner, addr, len }), rows, dim, dtype))
}

fn arrays(
    label: &str,
    desc: ArrayDesc,
    flip: Option<ArrayDesc>,
    keys: Option<Vec<String>>,
) -> PyResult<(Embeddings, Vec<usize>)> {
    let mut addresses = vec![desc.1];
    let (rows, count, dim, dtype) = rows_of(desc)?;
    let flip = match flip {
        Some(f) => {
            addresses.push(f.1);
            let (frows, fcount, fdim, fdtype) = rows_of(f)?;
            if (fcount, fdim, fdtype) != (count, dim, dtype) {
                return Err(PyValueError::new_err(format!(
                    "flip embeddings of {label} are {fcount}×{fdim} {} but {label} is {count}×{dim} {}; they must \
                     correspond row by row",
                    fdtype.name(),
                    dtype.name()
                )));
            }
            Some(frows)
        }
        None => None,
    };
    let a = ArrayEmbeddings { label: label.to_string(), dtype, count, dim, rows, flip, keys };
    Ok((Embeddings::Arrays(Arc::new(a)), addresses))
}

fn parse_mode(s: Option<String>) -> PyResult<Option<FoldMode>> {
    s.map(|s| match s.as_str() {
        "strict" => Ok(FoldMode::Strict),
        "insightface" => Ok(FoldMode::Insightface),
        "facexzoo" => Ok(FoldMode::Facexzoo),
        o => Err(PyValueError::new_err(format!("mode must be 'strict', 'insightface' or 'facexzoo', not '{o}'"))),
    })
    .transpose()
}

fn parse_flip(s: Option<String>) -> PyResult<Option<FlipChoice>> {
    s.map(|s| match s.as_str() {
        "auto" => Ok(FlipChoice::Auto),
        "sum" => Ok(FlipChoice::Sum),
        "concat" => Ok(FlipChoice::Concat),
        "none" => Ok(FlipChoice::None),
        o => Err(PyValueError::new_err(format!("flip must be 'auto', 'sum', 'concat' or 'none', not '{o}'"))),
    })
    .transpose()
}

fn parse_rule(s: &str) -> PyResult<TarRule> {
    match s {
        "strict" => Ok(TarRule::Strict),
        "insightface" | "insightface_nearest" => Ok(TarRule::InsightfaceNearest),
        "devkit" | "devkit_positives_first" => Ok(TarRule::DevkitPositivesFirst),
        o => Err(PyValueError::new_err(format!(
            "rule must be 'strict', 'insightface_nearest' or 'devkit_positives_first', not '{o}'"
        ))),
    }
}

/// The CLI's environment: data directory (argument, else `AIFR_DATA_DIR`, else `data`), registry
/// (`datasets`, else `AIFR_DATASETS`, else built in), cache directory as the CLI chooses it.
pub(crate) fn env(data_dir: Option<PathBuf>, datasets: Option<PathBuf>) -> PyResult<Env> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let data_dir = data_dir.or_else(|| var("AIFR_DATA_DIR")).unwrap_or_else(|| PathBuf::from("data"));
    let registry = match datasets.or_else(|| var("AIFR_DATASETS")) {
        Some(p) => Registry::from_file(&p),
        None => Registry::builtin(),
    }
    .map_err(py_err)?;
    let cache_dir = var("AIFR_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("aifr-eval")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/aifr-eval")))
        .unwrap_or_else(|| PathBuf::from(".aifr-cache"));
    Ok(Env { data_dir, registry, cache_dir, trust_store: false })
}

/// Runs `work` on its own thread with the GIL released, waking every 50 ms to let Python handle
/// signals: Ctrl-C raises `KeyboardInterrupt` at once. The computation cannot be cut short
/// safely, so it runs to its end on its thread and its result is dropped.
pub(crate) fn off_gil<T: Send + 'static>(
    py: Python<'_>,
    work: impl FnOnce() -> aifr_eval::error::Result<T> + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("aifr-eval".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| PyOSError::new_err(format!("cannot start a thread: {e}")))?;
    let mut rx = Some(rx);
    loop {
        match recv_without_gil(py, &mut rx)? {
            Some(result) => return result.map_err(py_err),
            None if rx.is_none() => {
                return Err(PyOSError::new_err("the evaluation thread stopped without a result (a panic)"))
            }
            None => {}
        }
    }
}

/// Waits up to 50 ms for the next message with the GIL released, then lets Python handle
/// signals (`KeyboardInterrupt` is raised here). `None`: nothing yet, or the sender is gone
/// (`rx` is then emptied). A `Receiver` is not `Sync`, so it moves into the wait and back.
pub(crate) fn recv_without_gil<T: Send>(py: Python<'_>, rx: &mut Option<mpsc::Receiver<T>>) -> PyResult<Option<T>> {
    let Some(r) = rx.take() else { return Ok(None) };
    let (r, got) = py.allow_threads(move || {
        let got = r.recv_timeout(Duration::from_millis(50));
        (r, got)
    });
    match got {
        Ok(v) => {
            *rx = Some(r);
            Ok(Some(v))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            *rx = Some(r);
            py.check_signals()?;
            Ok(None)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
    }
}

/// What an evaluation hands back: results.json's text, the terminal table, the addresses of the
/// row buffers the store read (so tests can check no copy was made), and the run directory's
/// results.json when one was written.
type Evaluated = (String, String, Vec<usize>, Option<String>);

/// Without `out`, the evaluation alone (`results.json`'s text as `RunDir::finish` would write it);
/// with it, exactly the CLI's run (`app::run_*`: run directory, report, timings), read back.
fn finish(
    out: bool,
    evaluate: impl FnOnce() -> aifr_eval::error::Result<Evaluation>,
    run: impl FnOnce() -> aifr_eval::error::Result<app::RunReport>,
) -> aifr_eval::error::Result<(String, String, Option<String>)> {
    if !out {
        let ev = evaluate()?;
        return Ok((String::from_utf8_lossy(&aifr_eval::io::to_json(&ev.results)).into_owned(), ev.table, None));
    }
    let report = run()?;
    let text = std::fs::read_to_string(&report.results_path).map_err(|e| Error::read(&report.results_path, e))?;
    Ok((text, report.table, Some(report.results_path.display().to_string())))
}

/// The option `name` of `evaluate`'s `options` dict, converted; absent or `None` → `None`.
fn option<T: for<'py> FromPyObject<'py>>(options: Option<&Bound<'_, PyDict>>, name: &str) -> PyResult<Option<T>> {
    let Some(d) = options else { return Ok(None) };
    match d.get_item(name)? {
        Some(v) if !v.is_none() => {
            v.extract().map(Some).map_err(|e| PyValueError::new_err(format!("option {name}: {e}")))
        }
        _ => Ok(None),
    }
}

/// `aifr_eval.evaluate` (the Python wrapper documents the arguments).
#[pyfunction]
#[pyo3(signature = (benchmark, embeddings, flip_embeddings=None, keys=None, data_dir=None, datasets=None, mode=None, flip=None, out=None, options=None))]
#[allow(clippy::too_many_arguments)]
fn evaluate(
    py: Python<'_>,
    benchmark: String,
    embeddings: ArrayDesc,
    flip_embeddings: Option<ArrayDesc>,
    keys: Option<Vec<String>>,
    data_dir: Option<PathBuf>,
    datasets: Option<PathBuf>,
    mode: Option<String>,
    flip: Option<String>,
    out: Option<PathBuf>,
    options: Option<Bound<'_, PyDict>>,
) -> PyResult<Evaluated> {
    use aifr_eval::dataset::adapter::Protocol;
    let env = env(data_dir, datasets)?;
    let (mode, flip) = (parse_mode(mode)?, parse_flip(flip)?);
    let o = options.as_ref();
    let path_opt = |name: &str| -> PyResult<Option<PathBuf>> { option(o, name) };
    let (emb, mut addresses) = arrays("embeddings", embeddings, flip_embeddings, keys)?;
    let write = out.is_some();
    // Without `out` nothing of the run is written; a manifest protocol built for the run goes
    // into `<out_dir>/protocol`, so the Python side passes a scratch directory for it.
    let out_dir = match out {
        Some(o) => o,
        None => path_opt("scratch_dir")?.unwrap_or_default(),
    };
    let req = RunRequest {
        benchmark: benchmark.clone(),
        embeddings: emb,
        per_subject_models: false,
        keys: None,
        flip_embeddings: None,
        mode,
        flip,
        protocol_file: path_opt("protocol_file")?,
        ages: path_opt("ages")?,
        out_dir: out_dir.clone(),
    };
    if benchmark == "manifest" {
        use aifr_eval::app::manifest::{
            evaluate_manifest, run_manifest, ManifestRunRequest, DEFAULT_LOO_MAX_IMAGES, DEFAULT_SEED,
        };
        use aifr_eval::protocol::manifest::build::GalleryChoice;
        let manifest: PathBuf = path_opt("manifest")?
            .ok_or_else(|| PyValueError::new_err("benchmark 'manifest' needs manifest='path/to/manifest.csv'"))?;
        let gallery = match option::<String>(o, "gallery")? {
            None => None,
            Some(g) => Some(match g.as_str() {
                "youngest" => GalleryChoice::Youngest,
                "oldest" => GalleryChoice::Oldest,
                "first" => GalleryChoice::First,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "gallery must be 'youngest', 'oldest' or 'first', not '{other}'"
                    )))
                }
            }),
        };
        let mreq = ManifestRunRequest {
            manifest,
            protocol_dir: path_opt("protocol_dir")?,
            pairs: path_opt("pairs")?,
            min_age_gap: option(o, "min_age_gap")?,
            gallery,
            stratify: option(o, "stratify")?.unwrap_or_default(),
            seed: option(o, "seed")?.unwrap_or(DEFAULT_SEED),
            pairs_per_fold: option(o, "pairs_per_fold")?,
            age_tolerance: option(o, "age_tolerance")?.unwrap_or(2),
            loo_max_images: option(o, "loo_max_images")?.unwrap_or(DEFAULT_LOO_MAX_IMAGES),
            run: req,
        };
        let (text, table, path) =
            off_gil(py, move || finish(write, || evaluate_manifest(&env, &mreq), || run_manifest(&env, &mreq)))?;
        return Ok((text, table, addresses, path));
    }
    let protocol = env.registry.get(&benchmark).map_err(py_err)?.format.adapter().protocol;
    let (text, table, path) = match protocol {
        Protocol::Megaface => {
            use aifr_eval::app::{evaluate_megaface, run_megaface, MegafaceEmbeddingsSource, MegafaceRequest};
            use aifr_eval::protocol::megaface::Cleaning;
            let distractors = match option::<ArrayDesc>(o, "distractors")? {
                Some(desc) => {
                    let dflip: Option<ArrayDesc> = option(o, "distractor_flip_embeddings")?;
                    let dkeys: Option<Vec<String>> = option(o, "distractor_keys")?;
                    let (e, a) = arrays("distractors", desc, dflip, dkeys)?;
                    addresses.extend(a);
                    Some(e)
                }
                None => None,
            };
            let sizes: Vec<u32> = option(o, "sizes")?.ok_or_else(|| {
                PyValueError::new_err("MegaFace needs sizes=[…] (distractor set sizes, e.g. [10, 100])")
            })?;
            let cleaning = match option::<String>(o, "cleaning")?.as_deref() {
                None | Some("none") => Cleaning::None,
                Some("insightface") => Cleaning::Insightface,
                Some("facexzoo") => Cleaning::Facexzoo,
                Some(other) => {
                    return Err(PyValueError::new_err(format!(
                        "cleaning must be 'none', 'insightface' or 'facexzoo', not '{other}'"
                    )))
                }
            };
            if mode.is_some() {
                return Err(PyValueError::new_err("MegaFace has no k-fold mode: drop mode="));
            }
            let mreq = MegafaceRequest {
                benchmark: benchmark.clone(),
                sizes,
                cleaning,
                embeddings: MegafaceEmbeddingsSource::Arrays { probes: req.embeddings.clone(), distractors },
                flip,
                probe_noise: path_opt("probe_noise")?,
                distractor_noise: path_opt("distractor_noise")?,
                protocol_file: req.protocol_file.clone(),
                out_dir,
                score_device: aifr_eval::score::ScoreDevice::Cpu,
                merge: Vec::new(),
            };
            off_gil(py, move || finish(write, || evaluate_megaface(&env, &mreq), || run_megaface(&env, &mreq)))?
        }
        Protocol::Fgnet => {
            off_gil(py, move || finish(write, || app::evaluate_fgnet(&env, &req), || app::run_fgnet(&env, &req)))?
        }
        Protocol::Ijb => {
            off_gil(py, move || finish(write, || app::evaluate_ijb(&env, &req), || app::run_ijb(&env, &req)))?
        }
        Protocol::Pairs { .. } | Protocol::Manifest => {
            off_gil(py, move || finish(write, || app::evaluate_pairs(&env, &req), || app::run_pairs(&env, &req)))?
        }
    };
    Ok((text, table, addresses, path))
}

/// A key list file (`--keys`): one key per line, unique; the CLI's reader and messages.
#[pyfunction]
fn read_keys(path: PathBuf) -> PyResult<Vec<String>> {
    aifr_eval::store::import::read_keys(&path).map_err(py_err)
}

fn f64s(bytes: &[u8]) -> Vec<f64> {
    bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
}

fn labels(bytes: &[u8]) -> Vec<bool> {
    bytes.iter().map(|&b| b != 0).collect()
}

fn json<T: serde::Serialize>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A metric's error as the library's "inputs do not fit" error (a `ValueError`, same message).
fn metric_err(e: aifr_eval::metrics::MetricError) -> Error {
    Error::Invalid(e.to_string())
}

/// The exact ROC, built off the GIL (interruptible, as every long call).
fn roc_of(py: Python<'_>, scores: &[u8], genuine: &[u8]) -> PyResult<aifr_eval::metrics::Roc> {
    let (s, g) = (f64s(scores), labels(genuine));
    off_gil(py, move || aifr_eval::metrics::Roc::new(&s, &g).map_err(metric_err))
}

/// The exact ROC vertices (`fpr`, `tpr`, `threshold`), JSON.
#[pyfunction]
fn roc(py: Python<'_>, scores: &[u8], genuine: &[u8]) -> PyResult<String> {
    json(&roc_of(py, scores, genuine)?.vertices())
}

#[pyfunction]
fn auc(py: Python<'_>, scores: &[u8], genuine: &[u8]) -> PyResult<f64> {
    Ok(roc_of(py, scores, genuine)?.auc())
}

/// EER as JSON (`null` when every score is equal).
#[pyfunction]
fn eer(py: Python<'_>, scores: &[u8], genuine: &[u8]) -> PyResult<String> {
    json(&roc_of(py, scores, genuine)?.eer())
}

#[pyfunction]
fn tar_at_far(py: Python<'_>, scores: &[u8], genuine: &[u8], far: f64, rule: &str) -> PyResult<String> {
    let rule = parse_rule(rule)?;
    if rule == TarRule::DevkitPositivesFirst {
        return Err(PyValueError::new_err(
            "rule 'devkit_positives_first' needs MegaFace's ranking of ties; use 'strict' or 'insightface_nearest'",
        ));
    }
    if !(far.is_finite() && far > 0.0 && far <= 1.0) {
        return Err(PyValueError::new_err(format!("far must be in (0, 1], not {far}")));
    }
    json(&roc_of(py, scores, genuine)?.tar_at_far(far, rule))
}

#[pyfunction]
fn kfold_accuracy(
    py: Python<'_>,
    values: &[u8],
    genuine: &[u8],
    folds: Vec<usize>,
    k: usize,
    mode: String,
) -> PyResult<String> {
    let mode = parse_mode(Some(mode))?.unwrap_or(FoldMode::Strict);
    let (v, g) = (f64s(values), labels(genuine));
    let r = off_gil(py, move || aifr_eval::metrics::kfold_accuracy(mode, &v, &g, &folds, k).map_err(metric_err))?;
    json(&r)
}

/// CMC from exact ranks (0 = first place): the whole curve, or the points at `ks`.
#[pyfunction]
#[pyo3(signature = (ranks, ks=None))]
fn cmc(ranks: Vec<u64>, ks: Option<Vec<u64>>) -> PyResult<String> {
    let c = aifr_eval::metrics::cmc::Cmc::new(ranks);
    json(&match ks {
        Some(ks) => c.points(&ks),
        None => c.curve(),
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(read_keys, m)?)?;
    m.add_function(wrap_pyfunction!(roc, m)?)?;
    m.add_function(wrap_pyfunction!(auc, m)?)?;
    m.add_function(wrap_pyfunction!(eer, m)?)?;
    m.add_function(wrap_pyfunction!(tar_at_far, m)?)?;
    m.add_function(wrap_pyfunction!(kfold_accuracy, m)?)?;
    m.add_function(wrap_pyfunction!(cmc, m)?)?;
    images::register(m)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

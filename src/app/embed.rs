//! `aifr-eval embed <benchmark> --model W` and `aifr-eval run <benchmark> --model W`: build the
//! benchmark's image list, load the network, fill (or reuse, or resume) the store, and for `run`
//! evaluate it through exactly the path `run --embeddings <store>` takes.

use crate::app::{self, Env, RunReport, RunRequest};
use crate::config::PairProtocol;
use crate::dataset::adapter::Images;
use crate::embed::extract::{extract, source_fingerprint, ExtractOptions, Extraction};
use crate::embed::list::ImageList;
use crate::embed::meta::{EmbedMeta, InputInfo, ModelInfo, ShardRecord, KIND};
use crate::embed::{device_kind, dtype_name, parse_device, parse_dtype};
use crate::error::{Error, Result};
use crate::model::ChannelOrder;
use std::path::{Path, PathBuf};

/// The network and how to run it.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    pub weights: PathBuf,
    pub arch: Option<String>,
    /// `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// `f32`, `f16`, `bf16`.
    pub dtype: String,
    pub options: ExtractOptions,
}

#[derive(Debug, Clone)]
pub struct EmbedReport {
    pub benchmark: String,
    pub arch: String,
    pub model_fingerprint: String,
    pub images: usize,
    pub extraction: Extraction,
}

impl EmbedReport {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let e = &self.extraction;
        let how = if e.reused {
            "reused the finished store".to_string()
        } else if !e.complete {
            format!("stopped after {} images", e.resumed_rows + e.computed)
        } else if e.resumed_rows > 0 {
            format!(
                "resumed at image {}, embedded {} ({:.0} images/s)",
                e.resumed_rows,
                e.computed,
                e.images_per_second()
            )
        } else {
            format!("embedded {} images ({:.0} images/s)", e.computed, e.images_per_second())
        };
        let skipped = if e.skipped.is_empty() { String::new() } else { format!(", {} skipped", e.skipped.len()) };
        format!("{} × {}: {how}{skipped} → {}", self.benchmark, self.arch, e.store.display())
    }
}

fn existing_path(env: &Env, benchmark: &str, role: &str) -> Result<PathBuf> {
    let entry = env.registry.get(benchmark)?;
    let dir = entry.file(&env.data_dir, role).ok_or_else(|| {
        Error::Config(format!("dataset '{benchmark}' has no '{role}' entry in its files: cannot embed its images"))
    })?;
    if !dir.exists() {
        return Err(Error::Missing(format!(
            "benchmark '{benchmark}' needs its {role} at {} to compute embeddings (set --data-dir or AIFR_DATA_DIR)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// The images a benchmark needs embedded, keyed the way its protocol looks them up.
pub fn image_list(env: &Env, benchmark: &str) -> Result<ImageList> {
    let entry = env.registry.get(benchmark)?;
    match entry.format.adapter().images {
        Some(Images::PairKeys) => {
            let folds = PairProtocol::builtin()?.folds;
            let (bench, _) = app::load_pair_benchmark(env, benchmark, folds)?;
            Ok(ImageList::from_dir(&existing_path(env, benchmark, "images")?, &bench.keys))
        }
        Some(Images::Pack) => ImageList::from_bin(&existing_path(env, benchmark, "bin")?),
        Some(Images::FgnetDir) => {
            let dir = existing_path(env, benchmark, "images")?;
            let keys: Vec<String> = crate::dataset::fgnet::read_dir(&dir)?.images.into_iter().map(|i| i.key).collect();
            Ok(ImageList::from_dir(&dir, &keys))
        }
        Some(Images::IjbCrops) => {
            // Every face crop of the release, aligned with its 5 landmarks (the image keys are the
            // crop names the protocol looks up).
            use crate::dataset::ijb::{join_images, read_faces, read_landmarks};
            let (faces, landmarks) = (existing_path(env, benchmark, "faces")?, existing_path(env, benchmark, "landmarks")?);
            let images = join_images(read_faces(&faces)?, read_landmarks(&landmarks)?, &faces, &landmarks)?;
            let dir = existing_path(env, benchmark, "images")?;
            Ok(ImageList::from_dir_aligned(&dir, images.into_iter().map(|i| (i.name, i.landmarks))))
        }
        None => Err(Error::Config(format!(
            "computing embeddings for '{benchmark}' (format {:?}) is not supported yet; export embeddings and use --embeddings",
            entry.format
        ))),
    }
}

/// Embeds a benchmark's images into `output`, or into the cache (named by the inputs'
/// fingerprint, so a finished store for the same model and images is reused).
pub fn embed_benchmark(env: &Env, benchmark: &str, req: &ModelRequest, output: Option<&Path>) -> Result<EmbedReport> {
    let list = image_list(env, benchmark)?;
    embed_list(env, benchmark, &list, req, output)
}

/// Embeds `list` into `output`, or into the cache under `<label>-<arch>-<fingerprint>`.
pub fn embed_list(
    env: &Env,
    label: &str,
    list: &ImageList,
    req: &ModelRequest,
    output: Option<&Path>,
) -> Result<EmbedReport> {
    let device = parse_device(&req.device)?;
    let dtype = parse_dtype(&req.dtype)?;
    let benchmark = label;
    if !req.weights.exists() {
        return Err(Error::Missing(format!("model weights {} do not exist", req.weights.display())));
    }
    let model = crate::model::load(&req.weights, req.arch.as_deref(), &device, dtype)?;
    let (images_fp, bad) = list.fingerprint();
    if let Some(first) = bad.into_iter().next().filter(|_| !req.options.skip_bad_images) {
        return Err(first.into_error());
    }
    let flip = req.options.flip;
    let kind = device_kind(&device);
    let source_fp = source_fingerprint(&images_fp, model.as_ref(), kind, flip);
    let hex = crate::store::hex(&source_fp);
    // A shard embeds whole batches of the list into a piece of its own (crate::embed::shard).
    let batch = req.options.batch_size;
    let (rows, shard, store_fp) = match req.options.shard {
        None => (0..list.len(), None, source_fp),
        Some(sh) => {
            let rows = sh.rows(list.len(), batch)?;
            let record = ShardRecord {
                index: sh.index,
                count: sh.count,
                batch_size: batch,
                first_row: rows.start,
                rows: rows.len(),
                whole_source_fingerprint: hex.clone(),
            };
            (rows, Some(record), sh.piece_fingerprint(&source_fp, batch))
        }
    };
    let out = match output {
        Some(p) => p.to_path_buf(),
        None => {
            let part = shard.as_ref().map_or(String::new(), |s| format!(".shard-{}-of-{}", s.index, s.count));
            env.cache_dir.join("embeddings").join(format!(
                "{benchmark}-{}-{}{part}.aifrstore",
                model.arch(),
                &hex[..16]
            ))
        }
    };
    let spec = model.input();
    let meta = EmbedMeta {
        kind: KIND.into(),
        version: 1,
        source_fingerprint: hex,
        benchmark: benchmark.into(),
        images: list.len(),
        images_fingerprint: crate::store::hex(&images_fp),
        model: ModelInfo {
            arch: model.arch().into(),
            fingerprint: model.fingerprint().into(),
            dtype: dtype_name(model.dtype()).into(),
            device: kind.into(),
        },
        input: InputInfo {
            height: spec.height,
            width: spec.width,
            channels: match spec.channels {
                ChannelOrder::Rgb => "rgb".into(),
                ChannelOrder::Bgr => "bgr".into(),
            },
            mean: spec.mean,
            std: spec.std,
            aligned_images: list.items.iter().filter(|i| i.landmarks.is_some()).count(),
        },
        flip,
        skipped_images: Vec::new(),
        shard,
    };
    let extraction = extract(list, rows, model.as_ref(), &out, meta, store_fp, &req.options)?;
    Ok(EmbedReport {
        benchmark: benchmark.into(),
        arch: model.arch().into(),
        model_fingerprint: model.fingerprint().into(),
        images: list.len(),
        extraction,
    })
}

/// `run <benchmark> --model W`: embed (or reuse), then evaluate the store exactly as
/// `run --embeddings <store>` does.
pub fn run_with_model(env: &Env, req: &RunRequest, model: &ModelRequest) -> Result<(EmbedReport, Option<RunReport>)> {
    if model.options.shard.is_some() {
        return Err(Error::Config(
            "--shard applies to `aifr-eval embed`; merge the pieces, then run on the store".into(),
        ));
    }
    if req.per_subject_models || req.keys.is_some() || req.flip_embeddings.is_some() {
        return Err(Error::Config(
            "--model computes the embeddings: drop --embeddings/--keys/--flip-embeddings".into(),
        ));
    }
    let embedded = embed_benchmark(env, &req.benchmark, model, None)?;
    if !embedded.extraction.complete {
        return Ok((embedded, None));
    }
    let run = RunRequest { embeddings: embedded.extraction.store.clone().into(), ..req.clone() };
    let report = app::run_benchmark(env, &run)?;
    Ok((embedded, Some(report)))
}

//! Runs a network over an [`ImageList`] into a resumable embedding store.
//!
//! Pipeline: a producer thread decodes and preprocesses batch k+1 (rayon, in parallel over the
//! images) while this thread runs the network on batch k; a bounded channel of one batch keeps
//! memory flat. Batches are fixed row ranges `[k·B, (k+1)·B)`, so a resumed run feeds the network
//! exactly the batches an uninterrupted run would and the store comes out byte-identical.

use super::list::{BadImage, ImageList};
use super::meta::{EmbedMeta, SkippedImage};
use crate::error::{Error, Result};
use crate::image::{prepare, Prepared};
use crate::model::FaceEmbedder;
use crate::store::resume::ResumableWriter;
use crate::store::{DType, EmbeddingStore};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Images per network call (the mirrored images travel in the same call).
    pub batch_size: usize,
    /// Also embed the horizontally mirrored images (the store's flip view).
    pub flip: bool,
    /// Record unreadable images and go on, instead of stopping at the first.
    pub skip_bad_images: bool,
    /// Draw a progress line on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Embed only this slice of the images (`embed --shard K/N`) into a store piece.
    pub shard: Option<super::shard::Shard>,
    /// Test hook: stop (as if killed) after this many batches of this invocation.
    #[doc(hidden)]
    pub stop_after_batches: Option<usize>,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            batch_size: 64,
            flip: true,
            skip_bad_images: false,
            progress: true,
            shard: None,
            stop_after_batches: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Extraction {
    pub store: PathBuf,
    /// A finished store for the same inputs was found and reused.
    pub reused: bool,
    /// False only when stopped by the test hook.
    pub complete: bool,
    /// Rows found done in a partial store from an interrupted run.
    pub resumed_rows: usize,
    /// Images run through the network by this invocation.
    pub computed: usize,
    pub skipped: Vec<SkippedImage>,
    pub seconds: f64,
}

impl Extraction {
    pub fn images_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.computed as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The identity of a store the network fills: image set, model, preprocessing and views.
pub fn source_fingerprint(
    images_fingerprint: &[u8; 32],
    model: &dyn FaceEmbedder,
    device: &str,
    flip: bool,
) -> [u8; 32] {
    let spec = model.input();
    let mut h = blake3::Hasher::new();
    h.update(b"aifr-eval embed v1\0");
    h.update(images_fingerprint);
    for s in [model.arch(), model.fingerprint(), &format!("{:?}", model.dtype()), device] {
        h.update(s.as_bytes()).update(b"\0");
    }
    h.update(format!("{spec:?} dim={} flip={flip}", model.embedding_dim()).as_bytes());
    *h.finalize().as_bytes()
}

/// One prepared batch: its first row and, per image, the network input or why it is unusable.
struct Batch {
    first: usize,
    items: Vec<std::result::Result<Prepared, BadImage>>,
}

fn prepare_batch(list: &ImageList, first: usize, end: usize, model: &dyn FaceEmbedder, flip: bool) -> Batch {
    let spec = model.input();
    let items = (first..end)
        .into_par_iter()
        .map(|i| {
            let bytes = list.bytes(i)?;
            prepare(&bytes, list.items[i].landmarks.as_ref(), spec, flip).map_err(|e| list.decode_error(i, e))
        })
        .collect();
    Batch { first, items }
}

/// A progress line on stderr with images/s and ETA, redrawn at most five times a second.
struct ProgressLine {
    enabled: bool,
    total: usize,
    start_done: usize,
    start: Instant,
    last: Option<Instant>,
}

impl ProgressLine {
    fn new(enabled: bool, total: usize, done: usize) -> Self {
        let enabled = enabled && std::io::stderr().is_terminal();
        ProgressLine { enabled, total, start_done: done, start: Instant::now(), last: None }
    }

    fn draw(&mut self, done: usize, force: bool) {
        if !self.enabled || (!force && self.last.is_some_and(|t| t.elapsed().as_millis() < 200)) {
            return;
        }
        self.last = Some(Instant::now());
        let secs = self.start.elapsed().as_secs_f64();
        let rate = (done - self.start_done) as f64 / secs.max(1e-9);
        let eta = if rate > 0.0 { (self.total - done) as f64 / rate } else { 0.0 };
        let eta = format!("{}:{:02}", eta as u64 / 60, eta as u64 % 60);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r  embedding {done}/{} images  {rate:.0} images/s  ETA {eta}   ", self.total);
        let _ = err.flush();
    }

    fn end(&mut self, done: usize) {
        if self.enabled {
            self.draw(done, true);
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// Fills (or reuses, or resumes) the store at `out` with `model`'s embeddings of images `rows`
/// of `list` (all of them, or one shard's slice, which starts on a batch boundary so that every
/// batch is the one an unsharded run feeds the network). `meta` describes the inputs; its
/// `source_fingerprint` keys reuse and resumption and its `skipped_images` is filled in here.
pub fn extract(
    list: &ImageList,
    rows: std::ops::Range<usize>,
    model: &dyn FaceEmbedder,
    out: &Path,
    mut meta: EmbedMeta,
    source_fp: [u8; 32],
    opts: &ExtractOptions,
) -> Result<Extraction> {
    let start = Instant::now();
    let n = rows.len();
    if rows.end > list.len() || rows.start % opts.batch_size.max(1) != 0 {
        return Err(Error::Invalid(format!(
            "internal: rows {rows:?} of {} images do not start on a batch boundary",
            list.len()
        )));
    }
    let done = |reused, complete, resumed_rows, computed, skipped| Extraction {
        store: out.to_path_buf(),
        reused,
        complete,
        resumed_rows,
        computed,
        skipped,
        seconds: start.elapsed().as_secs_f64(),
    };
    // One writer per store: a second process embedding the same inputs waits, then reuses.
    let _lock = crate::store::write_lock(out)?;
    if let Some(m) = reusable(out, source_fp, opts.skip_bad_images) {
        return Ok(done(true, true, 0, 0, m.skipped_images));
    }
    if n == 0 {
        return Err(Error::Invalid("no images to embed".into()));
    }
    if opts.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    let (dim, views) = (model.embedding_dim(), if opts.flip { 2 } else { 1 });
    let mut writer = ResumableWriter::open(out, DType::F32, dim, views, n, source_fp, opts.batch_size)?;
    let resumed_rows = writer.rows_done();
    let mut bar = ProgressLine::new(opts.progress, n, resumed_rows);
    let mut computed = 0;
    let mut batches = 0;
    let stopped = std::thread::scope(|s| -> Result<bool> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(1);
        // The producer works in rows of the whole list, the writer in rows of this store.
        let (base, end_row) = (rows.start, rows.end);
        let first_row = base + writer.rows_done();
        s.spawn(move || {
            let mut first = first_row;
            while first < end_row {
                let end = (first + opts.batch_size).min(end_row);
                if tx.send(prepare_batch(list, first, end, model, opts.flip)).is_err() {
                    break; // the consumer stopped
                }
                first = end;
            }
        });
        while let Ok(batch) = rx.recv() {
            let count = batch.items.len();
            let (encoded, skipped) = run_batch(list, model, batch, dim, opts)?;
            let skipped = skipped.into_iter().map(|(row, why)| (row - base, why)).collect();
            writer.write_batch(writer.rows_done(), &encoded, skipped)?;
            computed += count;
            batches += 1;
            bar.draw(writer.rows_done(), false);
            if opts.stop_after_batches == Some(batches) && writer.rows_done() < n {
                // Dropping the receiver ends the producer; the scope waits for it.
                drop(rx);
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    bar.end(writer.rows_done());
    let skipped: Vec<SkippedImage> = writer
        .skipped()
        .iter()
        .map(|(row, reason)| SkippedImage { key: list.items[rows.start + *row].key.clone(), reason: reason.clone() })
        .collect();
    if stopped {
        return Ok(done(false, false, resumed_rows, computed, skipped));
    }
    meta.skipped_images = skipped.clone();
    meta.source_fingerprint = crate::store::hex(&source_fp);
    // The record first, then the store: a store under its final name always has its record.
    meta.write(out)?;
    writer.finish(&list.keys()[rows])?;
    Ok(done(false, true, resumed_rows, computed, skipped))
}

/// A finished store at `out` for these inputs, with its record; `None` means compute it.
fn reusable(out: &Path, source_fp: [u8; 32], skip_bad_images: bool) -> Option<EmbedMeta> {
    let store = EmbeddingStore::open(out).ok()?;
    if store.header().source_fingerprint != source_fp {
        return None;
    }
    let meta = EmbedMeta::of_store(&store).ok()??;
    // Made with skipped images, asked not to skip: recompute, which reports the bad image.
    (skip_bad_images || meta.skipped_images.is_empty()).then_some(meta)
}

/// Network pass over one batch; returns the encoded rows per view (placeholders for skipped
/// images, which the store drops when sealed) and the skipped rows.
#[allow(clippy::type_complexity)]
fn run_batch(
    list: &ImageList,
    model: &dyn FaceEmbedder,
    batch: Batch,
    dim: usize,
    opts: &ExtractOptions,
) -> Result<(Vec<Vec<u8>>, Vec<(usize, String)>)> {
    let spec = model.input();
    let plane = 3 * spec.height * spec.width;
    let mut skipped = Vec::new();
    let mut good = Vec::new();
    let mut input = Vec::new();
    let mut mirrored = Vec::new();
    for (k, item) in batch.items.into_iter().enumerate() {
        match item {
            Ok(p) => {
                good.push(k);
                input.extend_from_slice(&p.original);
                if let Some(f) = p.flipped {
                    mirrored.extend_from_slice(&f);
                }
            }
            Err(bad) if opts.skip_bad_images => skipped.push((batch.first + k, bad.reason)),
            Err(bad) => return Err(bad.into_error()),
        }
    }
    let rows = good.len() + skipped.len();
    let views = if opts.flip { 2 } else { 1 };
    let mut out = vec![vec![0f32; rows * dim]; views];
    if !good.is_empty() {
        let m = good.len() * views;
        input.extend_from_slice(&mirrored);
        debug_assert_eq!(input.len(), m * plane);
        let t = Tensor::from_vec(input, (m, 3, spec.height, spec.width), &Device::Cpu)
            .map_err(crate::model::candle_err("building the input batch"))?;
        let y = model.forward(&t)?;
        if y.dims() != [m, dim] {
            return Err(Error::Invalid(format!(
                "network {} returned shape {:?} for a batch of {m}, expected [{m}, {dim}]",
                model.arch(),
                y.dims()
            )));
        }
        let y: Vec<f32> =
            y.flatten_all().and_then(|t| t.to_vec1()).map_err(crate::model::candle_err("reading embeddings"))?;
        for (v, view) in out.iter_mut().enumerate() {
            for (j, &k) in good.iter().enumerate() {
                let src = &y[(v * good.len() + j) * dim..][..dim];
                if let Some(bad) = src.iter().position(|x| !x.is_finite()) {
                    let what = if v == 0 { "image" } else { "mirrored image" };
                    return Err(Error::Invalid(format!(
                        "network {} produced a non-finite value (component {bad}) for the {what} '{}' ({})",
                        model.arch(),
                        list.items[batch.first + k].key,
                        list.path_of(batch.first + k).display()
                    )));
                }
                view[k * dim..(k + 1) * dim].copy_from_slice(src);
            }
        }
    }
    Ok((out.iter().map(|v| DType::F32.encode(v)).collect(), skipped))
}

//! Embedding one benchmark on many machines: `embed --shard K/N` embeds the K-th of N slices of
//! the image list into a store piece of its own, and `store merge` joins the pieces into the
//! store an unsharded run writes, byte for byte.
//!
//! Why the merge is exact: the slices are whole batches (`[k·B, (k+1)·B)`, the batches an
//! unsharded run feeds the network), every row is a function of its batch alone, and the merged
//! store is written by the same writer with the same header (the whole run's source fingerprint),
//! rows in list order, view by view, and keys in list order; skipped images are dropped from each
//! piece as from the whole. So the content hash, the fingerprint and the record come out equal.

use super::meta::{meta_path, EmbedMeta, ShardRecord};
use crate::error::{Error, Result};
use crate::store::{EmbeddingStore, StoreWriter, View};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The K-th (from 0) of N slices of an image list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Environment variables that carry a job array's task index, in the order they are tried.
pub const INDEX_VARIABLES: [&str; 3] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AIFR_SHARD_INDEX"];

impl Shard {
    /// `K/N` (0 ≤ K < N), or `auto/N` to take K from the batch system: Slurm's
    /// `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN`, so `--array=1-4` works too),
    /// Kubernetes' `JOB_COMPLETION_INDEX` (Indexed Jobs), or `AIFR_SHARD_INDEX`.
    pub fn parse(text: &str) -> Result<Shard> {
        Self::parse_option("--shard", text)
    }

    /// As [`Shard::parse`], for the command-line option `option` (named in errors).
    pub fn parse_option(option: &str, text: &str) -> Result<Shard> {
        Self::parse_with(option, text, &|name| std::env::var(name).ok())
    }

    fn parse_with(option: &str, text: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<Shard> {
        let bad =
            |why: &str| Error::Config(format!("{option} {text:?}: {why} (expected K/N with 0 ≤ K < N, or auto/N)"));
        let (k, n) = text.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let count: usize =
            n.trim().parse().ok().filter(|&n| n > 0).ok_or_else(|| bad("N must be a whole number ≥ 1"))?;
        let index = if k.trim() == "auto" {
            let (name, value) = INDEX_VARIABLES
                .iter()
                .find_map(|name| var(name).map(|v| (*name, v)))
                .ok_or_else(|| bad(&format!("auto needs one of {} in the environment", INDEX_VARIABLES.join(", "))))?;
            let parse = |v: &str, what: &str| {
                v.trim().parse::<usize>().map_err(|_| bad(&format!("{what} is {v:?}, not a whole number")))
            };
            let mut index = parse(&value, name)?;
            if name == "SLURM_ARRAY_TASK_ID" {
                if let Some(min) = var("SLURM_ARRAY_TASK_MIN") {
                    let min = parse(&min, "SLURM_ARRAY_TASK_MIN")?;
                    index = index
                        .checked_sub(min)
                        .ok_or_else(|| bad("SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN"))?;
                }
            }
            index
        } else {
            k.trim().parse().map_err(|_| bad("K must be a whole number or 'auto'"))?
        };
        if index >= count {
            return Err(bad(&format!("K = {index} is not below N = {count}")));
        }
        Ok(Shard { index, count })
    }

    /// The rows of a list of `images` this shard embeds with batches of `batch`: whole batches,
    /// as evenly spread as whole batches allow.
    pub fn rows(self, images: usize, batch: usize) -> Result<Range<usize>> {
        let batches = images.div_ceil(batch.max(1));
        let (b0, b1) = (self.index * batches / self.count, (self.index + 1) * batches / self.count);
        if b0 == b1 {
            return Err(Error::Config(format!(
                "shard {}/{} would be empty: {images} images make {batches} batches of {batch}; use at most {batches} shards or a smaller --batch-size",
                self.index, self.count
            )));
        }
        Ok(b0 * batch..(b1 * batch).min(images))
    }

    /// The source fingerprint of this shard's piece (pieces of one run differ, so a piece never
    /// resumes or reuses another's file).
    pub fn piece_fingerprint(self, whole: &[u8; 32], batch: usize) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"aifr-eval embed shard v1\0");
        h.update(whole);
        for v in [self.index, self.count, batch] {
            h.update(&(v as u64).to_le_bytes());
        }
        *h.finalize().as_bytes()
    }
}

/// What `merge` wrote.
#[derive(Debug, Clone)]
pub struct Merged {
    pub store: PathBuf,
    pub pieces: usize,
    pub rows: usize,
    pub skipped: usize,
    pub fingerprint: String,
}

struct Piece {
    path: PathBuf,
    store: EmbeddingStore,
    meta: EmbedMeta,
    shard: ShardRecord,
}

fn open_piece(path: &Path) -> Result<Piece> {
    let store = EmbeddingStore::open(path)?;
    store.verify()?;
    let meta = EmbedMeta::of_store(&store)?.ok_or_else(|| {
        Error::data(
            path,
            format!("is not a piece of `aifr-eval embed --shard`: it has no record {}", meta_path(path).display()),
        )
    })?;
    let shard = meta.shard.clone().ok_or_else(|| {
        Error::data(path, "is a whole store, not a piece of `aifr-eval embed --shard` (its record has no shard)")
    })?;
    Ok(Piece { path: path.to_path_buf(), store, meta, shard })
}

/// Joins the pieces of one sharded `embed` run into `out`. Every piece must come from the same
/// model, images and preprocessing, and every shard index must appear exactly once.
pub fn merge(paths: &[PathBuf], out: &Path) -> Result<Merged> {
    if paths.is_empty() {
        return Err(Error::Config("store merge needs the pieces to merge".into()));
    }
    let mut pieces = paths.iter().map(|p| open_piece(p)).collect::<Result<Vec<_>>>()?;
    pieces.sort_by_key(|p| p.shard.index);
    let first = &pieces[0];
    let whole = |m: &EmbedMeta| EmbedMeta {
        shard: None,
        skipped_images: Vec::new(),
        source_fingerprint: String::new(),
        ..m.clone()
    };
    let reference = whole(&first.meta);
    for p in &pieces[1..] {
        let same_run = p.shard.whole_source_fingerprint == first.shard.whole_source_fingerprint
            && p.shard.count == first.shard.count
            && p.shard.batch_size == first.shard.batch_size
            && whole(&p.meta) == reference;
        if !same_run {
            return Err(Error::Invalid(format!(
                "{} and {} are pieces of different runs (model, images, preprocessing, shard count or batch size differ)",
                first.path.display(),
                p.path.display()
            )));
        }
    }
    let count = first.shard.count;
    for w in pieces.windows(2) {
        if w[0].shard.index == w[1].shard.index {
            return Err(Error::Invalid(format!(
                "{} and {} are both shard {}/{count}",
                w[0].path.display(),
                w[1].path.display(),
                w[0].shard.index
            )));
        }
    }
    let missing: Vec<String> =
        (0..count).filter(|i| !pieces.iter().any(|p| p.shard.index == *i)).map(|i| format!("{i}/{count}")).collect();
    if !missing.is_empty() {
        return Err(Error::Missing(format!(
            "{} of {count} shards are missing: {} (run `aifr-eval embed … --shard K/{count}` for each)",
            missing.len(),
            missing.join(", ")
        )));
    }
    let images = first.meta.images;
    for p in &pieces {
        let want = Shard { index: p.shard.index, count }.rows(images, p.shard.batch_size)?;
        let skipped = p.meta.skipped_images.len();
        if (p.shard.first_row, p.shard.rows) != (want.start, want.len()) || p.store.len() + skipped != want.len() {
            return Err(Error::data(
                &p.path,
                format!(
                    "shard {}/{count} should hold rows {want:?} of {images} images; it holds {} rows (+{skipped} skipped) from row {}",
                    p.shard.index,
                    p.store.len(),
                    p.shard.first_row
                ),
            ));
        }
    }
    let whole_fp: [u8; 32] = parse_hex(&first.shard.whole_source_fingerprint)
        .ok_or_else(|| Error::data(&meta_path(&first.path), "whole_source_fingerprint is not 64 hex digits"))?;
    let header = first.store.header();
    let rows: usize = pieces.iter().map(|p| p.store.len()).sum();
    let _lock = crate::store::write_lock(out)?;
    let mut w = StoreWriter::create(out, header.dtype, first.store.dim(), header.views as usize, rows, whole_fp)?;
    for view in [View::Original, View::Flipped].into_iter().take(header.views as usize) {
        let mut at = 0;
        for p in &pieces {
            w.write_rows(view, at, p.store.view_bytes(view))?;
            at += p.store.len();
        }
    }
    let keys: Vec<String> =
        pieces.iter().flat_map(|p| (0..p.store.len()).map(|r| p.store.key(r).to_string())).collect();
    let meta = EmbedMeta {
        source_fingerprint: first.shard.whole_source_fingerprint.clone(),
        skipped_images: pieces.iter().flat_map(|p| p.meta.skipped_images.iter().cloned()).collect(),
        ..reference
    };
    // The record first, then the store, as `embed` does.
    meta.write(out)?;
    let path = w.finish(&keys)?;
    let store = EmbeddingStore::open(&path)?;
    Ok(Merged {
        store: path,
        pieces: pieces.len(),
        rows,
        skipped: meta.skipped_images.len(),
        fingerprint: store.fingerprint(),
    })
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_whole_batches_covering_the_list_once() {
        for images in [1usize, 7, 8, 64, 65, 1000] {
            for batch in [1usize, 3, 64] {
                let batches = images.div_ceil(batch);
                for count in 1..=batches.min(9) {
                    let mut next = 0;
                    for index in 0..count {
                        let r = Shard { index, count }.rows(images, batch).unwrap();
                        assert_eq!(r.start, next, "{images} {batch} {count}");
                        assert_eq!(r.start % batch, 0);
                        next = r.end;
                    }
                    assert_eq!(next, images);
                }
                // More shards than batches: some shard would be empty, which is refused.
                assert!((0..=batches).any(|index| Shard { index, count: batches + 1 }.rows(images, batch).is_err()));
            }
        }
        let e = Shard { index: 0, count: 9 }.rows(8, 1).unwrap_err().to_string();
        assert!(e.contains("would be empty") && e.contains("at most 8 shards"), "{e}");
    }

    #[test]
    fn shard_spec_parses_plain_and_from_batch_systems() {
        let none = |_: &str| None;
        assert_eq!(Shard::parse_with("--shard", "2/7", &none).unwrap(), Shard { index: 2, count: 7 });
        for bad in ["7/7", "1", "a/3", "0/0", "auto/3"] {
            assert!(Shard::parse_with("--shard", bad, &none).is_err(), "{bad}");
        }
        let slurm = |n: &str| match n {
            "SLURM_ARRAY_TASK_ID" => Some("4".to_string()),
            "SLURM_ARRAY_TASK_MIN" => Some("1".to_string()),
            _ => None,
        };
        assert_eq!(Shard::parse_with("--shard", "auto/4", &slurm).unwrap(), Shard { index: 3, count: 4 });
        let k8s = |n: &str| (n == "JOB_COMPLETION_INDEX").then(|| "0".to_string());
        assert_eq!(Shard::parse_with("--shard", "auto/2", &k8s).unwrap(), Shard { index: 0, count: 2 });
        let e = Shard::parse_with("--shard", "auto/2", &|n: &str| (n == "AIFR_SHARD_INDEX").then(|| "2".into()))
            .unwrap_err();
        assert!(e.to_string().contains("not below N = 2"), "{e}");
    }

    #[test]
    fn hex_round_trip() {
        let b: [u8; 32] = std::array::from_fn(|i| (i * 9) as u8);
        assert_eq!(parse_hex(&crate::store::hex(&b)), Some(b));
        assert_eq!(parse_hex("zz"), None);
    }
}

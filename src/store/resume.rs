//! A store filled batch by batch that survives being killed: rows land in `<store>.partial` in
//! row order, and after each batch the rows are fsynced and a small progress record
//! (`<store>.progress`: the inputs' fingerprint, the batch size, rows done, rows skipped) is
//! replaced atomically. Opening again with the same fingerprint continues after the last
//! recorded batch; anything else starts afresh. Sealing gives exactly the bytes an uninterrupted
//! run gives, because every row is a function of its batch alone.
//!
//! Skipped rows (images that could not be read) hold placeholder bytes in the partial file only:
//! sealing then writes a compacted store without them, so a sealed store never contains a row
//! that was not computed.

use super::format::{StoreHeader, HEADER_LEN};
use super::{partial_path, DType, StoreWriter, View};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    source_fingerprint: String,
    batch_size: usize,
    count: usize,
    dim: usize,
    views: usize,
    dtype: String,
    rows_done: usize,
    /// `(row, reason)` of rows that were skipped, in row order.
    skipped: Vec<(usize, String)>,
}

pub struct ResumableWriter {
    writer: StoreWriter,
    progress_path: PathBuf,
    progress: Progress,
}

pub fn progress_path(path: &Path) -> PathBuf {
    super::sibling(path, ".progress")
}

impl ResumableWriter {
    /// Continues `<path>.partial` when its progress record matches these parameters, else
    /// starts a new one.
    pub fn open(
        path: &Path,
        dtype: DType,
        dim: usize,
        views: usize,
        count: usize,
        source_fingerprint: [u8; 32],
        batch_size: usize,
    ) -> Result<Self> {
        let want = Progress {
            source_fingerprint: super::hex(&source_fingerprint),
            batch_size,
            count,
            dim,
            views,
            dtype: dtype.name().into(),
            rows_done: 0,
            skipped: Vec::new(),
        };
        let progress_path = progress_path(path);
        if let Some((writer, progress)) = Self::reopen(path, &progress_path, &want, source_fingerprint) {
            return Ok(ResumableWriter { writer, progress_path, progress });
        }
        let writer = StoreWriter::create(path, dtype, dim, views, count, source_fingerprint)?;
        let mut w = ResumableWriter { writer, progress_path, progress: want };
        w.commit()?;
        Ok(w)
    }

    /// The partial store and its progress, when both exist and belong to these inputs.
    fn reopen(
        path: &Path,
        progress_path: &Path,
        want: &Progress,
        source_fingerprint: [u8; 32],
    ) -> Option<(StoreWriter, Progress)> {
        let text = std::fs::read_to_string(progress_path).ok()?;
        let progress: Progress = serde_json::from_str(&text).ok()?;
        let same = Progress { rows_done: 0, skipped: Vec::new(), ..progress.clone() };
        if same != *want || progress.rows_done > want.count {
            return None;
        }
        let partial = partial_path(path);
        let mut file = OpenOptions::new().read(true).write(true).open(&partial).ok()?;
        let mut head = vec![0u8; HEADER_LEN];
        file.read_exact(&mut head).ok()?;
        let header = StoreHeader::decode(&head).ok()?;
        let len = file.seek(SeekFrom::End(0)).ok()?;
        let fits = header.source_fingerprint == source_fingerprint
            && header.dim as usize == want.dim
            && header.views as usize == want.views
            && header.count as usize == want.count
            && header.dtype.name() == want.dtype
            && len == header.keys_offset;
        if !fits || !rows_are_written(&file, &header, &progress) {
            return None;
        }
        let writer = StoreWriter { final_path: path.to_path_buf(), partial, file, header, hasher: None };
        Some((writer, progress))
    }

    /// Rows already written (the next batch starts here).
    pub fn rows_done(&self) -> usize {
        self.progress.rows_done
    }

    /// `(row, reason)` of the rows skipped so far.
    pub fn skipped(&self) -> &[(usize, String)] {
        &self.progress.skipped
    }

    fn commit(&mut self) -> Result<()> {
        crate::io::write_atomic(&self.progress_path, &crate::io::to_json(&self.progress))
    }

    /// Writes the next rows (`first_row` must equal [`Self::rows_done`]): `views[v]` holds the
    /// encoded rows of view v, placeholders included for the `skipped` rows. Durable on return.
    pub fn write_batch(&mut self, first_row: usize, views: &[Vec<u8>], skipped: Vec<(usize, String)>) -> Result<()> {
        if first_row != self.progress.rows_done || views.len() != self.progress.views {
            return Err(Error::Invalid(format!(
                "internal: batch at row {first_row} with {} views, expected row {} with {}",
                views.len(),
                self.progress.rows_done,
                self.progress.views
            )));
        }
        let row = self.writer.header.dtype.size() * self.progress.dim;
        let rows = views[0].len() / row;
        for (v, bytes) in views.iter().enumerate() {
            let view = if v == 0 { View::Original } else { View::Flipped };
            self.writer.write_rows(view, first_row, bytes)?;
        }
        self.writer.file.sync_data().map_err(|e| Error::write(&self.writer.partial, e))?;
        self.progress.rows_done = first_row + rows;
        self.progress.skipped.extend(skipped);
        self.commit()
    }

    /// Seals the store under its final name (compacted when rows were skipped) and removes the
    /// progress record. `keys` has one key per row, skipped rows included.
    pub fn finish(self, keys: &[String]) -> Result<PathBuf> {
        let ResumableWriter { writer, progress_path, progress } = self;
        if progress.rows_done != progress.count || keys.len() != progress.count {
            return Err(Error::Invalid(format!(
                "internal: sealing a store with {} of {} rows written and {} keys",
                progress.rows_done,
                progress.count,
                keys.len()
            )));
        }
        let path = if progress.skipped.is_empty() { writer.finish(keys)? } else { compact(writer, &progress, keys)? };
        std::fs::remove_file(&progress_path).map_err(|e| Error::write(&progress_path, e))?;
        Ok(path)
    }
}

/// Whether every row the progress record claims (skipped ones aside) holds data. The partial file
/// is created full-size and zero-filled, and a computed embedding is never all zeros, so a record
/// claiming rows that were never written (edited, or from another file) is caught here instead of
/// sealing zeros into a store.
fn rows_are_written(file: &std::fs::File, header: &StoreHeader, progress: &Progress) -> bool {
    if progress.skipped.iter().any(|&(r, _)| r >= progress.rows_done) {
        return false;
    }
    let skip: std::collections::HashSet<usize> = progress.skipped.iter().map(|(r, _)| *r).collect();
    let row = header.dtype.size() * progress.dim;
    let per_read = ((1 << 20) / row.max(1)).max(1);
    let mut buf = vec![0u8; per_read * row];
    for v in 0..progress.views {
        let mut first = 0;
        while first < progress.rows_done {
            let n = per_read.min(progress.rows_done - first);
            let at = header.data_offset + ((v * progress.count + first) * row) as u64;
            if file.read_exact_at(&mut buf[..n * row], at).is_err() {
                return false;
            }
            let empty = buf[..n * row]
                .chunks_exact(row)
                .enumerate()
                .any(|(i, r)| !skip.contains(&(first + i)) && r.iter().all(|&b| b == 0));
            if empty {
                return false;
            }
            first += n;
        }
    }
    true
}

/// Copies the kept rows of the partial file into a new store, then replaces the final path.
fn compact(work: StoreWriter, progress: &Progress, keys: &[String]) -> Result<PathBuf> {
    let skip: std::collections::HashSet<usize> = progress.skipped.iter().map(|(r, _)| *r).collect();
    let kept: Vec<usize> = (0..progress.count).filter(|r| !skip.contains(r)).collect();
    let h = &work.header;
    let row = h.dtype.size() * progress.dim;
    let mut tmp_name = work.final_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".compact");
    let tmp = work.final_path.with_file_name(tmp_name);
    let mut out = StoreWriter::create(&tmp, h.dtype, progress.dim, progress.views, kept.len(), h.source_fingerprint)?;
    let mut buf = vec![0u8; row];
    for v in 0..progress.views {
        let view = if v == 0 { View::Original } else { View::Flipped };
        // Rows go out in file order, so the writer hashes them as they come.
        for (i, &r) in kept.iter().enumerate() {
            let at = h.data_offset + ((v * progress.count + r) * row) as u64;
            work.file.read_exact_at(&mut buf, at).map_err(|e| Error::read(&work.partial, e))?;
            out.write_rows(view, i, &buf)?;
        }
    }
    let kept_keys: Vec<String> = kept.iter().map(|&r| keys[r].clone()).collect();
    let sealed = out.finish(&kept_keys)?;
    std::fs::rename(&sealed, &work.final_path).map_err(|e| Error::write(&work.final_path, e))?;
    std::fs::remove_file(&work.partial).map_err(|e| Error::write(&work.partial, e))?;
    Ok(work.final_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddingStore;

    fn rows(first: usize, n: usize, salt: f32) -> Vec<u8> {
        let v: Vec<f32> = (first..first + n).flat_map(|r| [r as f32 + salt, 1.0]).collect();
        DType::F32.encode(&v)
    }

    fn fill(path: &Path, stop_after: Option<usize>) -> Option<PathBuf> {
        let mut w = ResumableWriter::open(path, DType::F32, 2, 2, 5, [3; 32], 2).unwrap();
        let mut batches = 0;
        while w.rows_done() < 5 {
            if Some(batches) == stop_after {
                return None;
            }
            let first = w.rows_done();
            let n = 2.min(5 - first);
            w.write_batch(first, &[rows(first, n, 0.0), rows(first, n, 0.5)], vec![]).unwrap();
            batches += 1;
        }
        let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
        Some(w.finish(&keys).unwrap())
    }

    #[test]
    fn interrupted_fill_resumes_to_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let whole = fill(&dir.path().join("a.aifrstore"), None).unwrap();
        let p = dir.path().join("b.aifrstore");
        assert!(fill(&p, Some(1)).is_none());
        assert!(progress_path(&p).exists() && partial_path(&p).exists());
        let w = ResumableWriter::open(&p, DType::F32, 2, 2, 5, [3; 32], 2).unwrap();
        assert_eq!(w.rows_done(), 2);
        drop(w);
        let resumed = fill(&p, None).unwrap();
        assert_eq!(std::fs::read(&whole).unwrap(), std::fs::read(&resumed).unwrap());
        assert!(!progress_path(&p).exists() && !partial_path(&p).exists());
        // A different fingerprint or batch size starts afresh.
        let p = dir.path().join("c.aifrstore");
        assert!(fill(&p, Some(2)).is_none());
        assert_eq!(ResumableWriter::open(&p, DType::F32, 2, 2, 5, [4; 32], 2).unwrap().rows_done(), 0);
        assert!(fill(&p, Some(2)).is_none());
        assert_eq!(ResumableWriter::open(&p, DType::F32, 2, 2, 5, [3; 32], 3).unwrap().rows_done(), 0);
    }

    #[test]
    fn a_progress_record_claiming_unwritten_rows_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lie.aifrstore");
        assert!(fill(&p, Some(1)).is_none());
        let text = std::fs::read_to_string(progress_path(&p)).unwrap();
        std::fs::write(progress_path(&p), text.replace("\"rows_done\": 2", "\"rows_done\": 4")).unwrap();
        assert_eq!(ResumableWriter::open(&p, DType::F32, 2, 2, 5, [3; 32], 2).unwrap().rows_done(), 0);
        // A truthful record still resumes.
        assert!(fill(&p, Some(1)).is_none());
        assert_eq!(ResumableWriter::open(&p, DType::F32, 2, 2, 5, [3; 32], 2).unwrap().rows_done(), 2);
    }

    #[test]
    fn skipped_rows_are_compacted_away() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.aifrstore");
        let mut w = ResumableWriter::open(&p, DType::F32, 2, 2, 3, [1; 32], 3).unwrap();
        w.write_batch(0, &[rows(0, 3, 0.0), rows(0, 3, 0.5)], vec![(1, "bad".into())]).unwrap();
        assert_eq!(w.skipped(), &[(1, "bad".to_string())]);
        let keys = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let s = EmbeddingStore::open(&w.finish(&keys).unwrap()).unwrap();
        s.verify().unwrap();
        assert_eq!((s.len(), s.row_of("b"), s.row_of("c")), (2, None, Some(1)));
        let mut out = [0f32; 2];
        s.read_row(1, View::Flipped, &mut out);
        assert_eq!(out, [2.5, 1.0]);
        assert!(!partial_path(&p).exists());
    }
}

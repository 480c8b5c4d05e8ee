//! The memory-mapped embedding store every protocol reads and the network writes into.
//!
//! Layout (little-endian, one file):
//! ```text
//! [0, 4096)        header: magic, version, dtype, dim, views, count, section offsets,
//!                  source fingerprint, content hash, state, and a hash of the header itself
//! [4096, …)        rows, view-major: view 0 (the image) rows 0..count, then view 1 (its mirror)
//! [keys_offset, …) keys, UTF-8, each terminated by '\n'
//! ```
//! A store is written as `<name>.partial`, sealed (content hash, state = complete), fsynced and
//! renamed, so a crashed or killed writer never leaves a file under the final name; a store whose
//! state, size or header hash is wrong is refused on open with a message saying so.

mod format;
pub mod import;
pub mod resume;

pub use format::{DType, StoreHeader};

use crate::error::{Error, Result};
use crate::io::lock::{FileLock, Wait};
use format::{HEADER_LEN, STATE_COMPLETE};
use memmap2::Mmap;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Which image a row embeds: the image itself or its horizontal mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Original = 0,
    Flipped = 1,
}

/// Rows a caller holds in memory (the Python bindings' arrays), encoded as the store's `dtype`
/// in row order; the store reads them in place instead of copying them.
pub trait RowBytes: Send + Sync {
    fn bytes(&self) -> &[u8];
}

impl RowBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Where a store's bytes live: a sealed file, mapped; or rows in memory with their keys.
enum Backing {
    Mapped(Mmap),
    /// One buffer per view, and the key section (`key\n` per row), laid out as in a file.
    Memory {
        views: Vec<std::sync::Arc<dyn RowBytes>>,
        keys: Vec<u8>,
    },
}

pub struct EmbeddingStore {
    path: PathBuf,
    header: StoreHeader,
    data: Backing,
    /// Byte offset of each key inside the keys section (plus one past the end).
    key_starts: Vec<u64>,
    index: OnceLock<HashMap<Box<str>, u32>>,
    /// What the user gave (e.g. the .npy a cached store was made from), for messages.
    source: Option<PathBuf>,
}

impl std::fmt::Debug for EmbeddingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingStore").field("path", &self.path).field("header", &self.header).finish()
    }
}

impl EmbeddingStore {
    /// Opens a sealed store. Refuses partial, truncated or corrupted files with a clear message.
    pub fn open(path: &Path) -> Result<Self> {
        let (file, len) = crate::io::open_input(path, crate::io::Role::MAPPED)?;
        // SAFETY: the file is opened read-only; stores are only ever replaced by rename, never
        // modified in place, so the mapping does not change under us.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::read(path, e))?;
        let header = StoreHeader::decode(&map).map_err(|msg| Error::data(path, msg))?;
        if header.state != STATE_COMPLETE {
            return Err(Error::data(
                path,
                "embedding store is incomplete (its writer did not finish); delete it and run again",
            ));
        }
        let expected = header.keys_offset + header.keys_len;
        if len != expected {
            return Err(Error::data(
                path,
                format!("embedding store is {len} bytes, header says {expected}: truncated or corrupted"),
            ));
        }
        let keys = &map[header.keys_offset as usize..expected as usize];
        let text = std::str::from_utf8(keys).map_err(|e| {
            Error::data(
                path,
                format!("key section is not UTF-8 at byte {}", header.keys_offset + e.valid_up_to() as u64),
            )
        })?;
        let mut key_starts = Vec::with_capacity(header.count as usize + 1);
        key_starts.push(0u64);
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                key_starts.push(i as u64 + 1);
            }
        }
        if key_starts.len() as u64 != header.count + 1 || !text.is_empty() && !text.ends_with('\n') {
            return Err(Error::data(
                path,
                format!("key section holds {} keys, header says {}", key_starts.len() - 1, header.count),
            ));
        }
        let data = Backing::Mapped(map);
        Ok(EmbeddingStore { path: path.to_path_buf(), header, data, key_starts, index: OnceLock::new(), source: None })
    }

    /// A store over rows already in memory, read in place: `views[0]` the images, `views[1]`
    /// (optional) their mirrors, each `count × dim` values of `dtype` in row order. Rows are
    /// checked as an import checks them (finite, not all zero); the content hash is computed
    /// over the same bytes a file store of these rows and keys would hold, so the fingerprint is
    /// the one `aifr-eval import` gives them. `label` names the input in messages.
    pub fn from_memory(
        label: &str,
        dtype: DType,
        dim: usize,
        views: Vec<std::sync::Arc<dyn RowBytes>>,
        keys: &[String],
    ) -> Result<Self> {
        let count = keys.len();
        let path = PathBuf::from(label);
        if !(1..=2).contains(&views.len()) || dim == 0 {
            return Err(Error::Invalid(format!("{label}: expected 1 or 2 views of dimension > 0")));
        }
        if count == 0 {
            return Err(Error::data(&path, "the array has no rows: there are no embeddings to evaluate"));
        }
        let row = dtype.size() * dim;
        for v in &views {
            if v.bytes().len() != row * count {
                return Err(Error::Invalid(format!(
                    "{label}: {} bytes of rows, {count} keys × {dim} values of {} need {}",
                    v.bytes().len(),
                    dtype.name(),
                    row * count
                )));
            }
        }
        for v in &views {
            import::check_rows(&path, dtype, dim, v.bytes(), keys)?;
        }
        let mut blob = Vec::with_capacity(keys.iter().map(|k| k.len() + 1).sum());
        let mut key_starts = Vec::with_capacity(count + 1);
        let mut seen = HashMap::with_capacity(count);
        for (i, k) in keys.iter().enumerate() {
            if k.is_empty() || k.contains('\n') {
                return Err(Error::Invalid(format!("{label}: key {i} is empty or holds a line break")));
            }
            if let Some(first) = seen.insert(k.as_str(), i) {
                return Err(Error::Invalid(format!(
                    "{label}: duplicate key '{}' (rows {first} and {i})",
                    crate::io::excerpt(k)
                )));
            }
            key_starts.push(blob.len() as u64);
            blob.extend_from_slice(k.as_bytes());
            blob.push(b'\n');
        }
        key_starts.push(blob.len() as u64);
        // The hash a sealed file of these rows and keys carries (everything after its header).
        let mut h = blake3::Hasher::new();
        for v in &views {
            h.update_rayon(v.bytes());
        }
        h.update(&blob);
        let data_len = (row * count * views.len()) as u64;
        let header = StoreHeader {
            dtype,
            dim: dim as u32,
            views: views.len() as u32,
            count: count as u64,
            data_offset: HEADER_LEN as u64,
            keys_offset: HEADER_LEN as u64 + data_len,
            keys_len: blob.len() as u64,
            source_fingerprint: [0; 32],
            content_hash: *h.finalize().as_bytes(),
            state: STATE_COMPLETE,
        };
        let data = Backing::Memory { views, keys: blob };
        Ok(EmbeddingStore { path, header, data, key_starts, index: OnceLock::new(), source: None })
    }

    /// Whether the rows are in memory (no file: no embedding record beside it, nothing to map).
    pub fn in_memory(&self) -> bool {
        matches!(self.data, Backing::Memory { .. })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names the file the user supplied when this store is a cached conversion of it.
    pub fn with_source(mut self, source: &Path) -> Self {
        self.source = Some(source.to_path_buf());
        self
    }

    /// The path to show users: their own file, or the store itself.
    pub fn display_path(&self) -> &Path {
        self.source.as_deref().unwrap_or(&self.path)
    }
    pub fn header(&self) -> &StoreHeader {
        &self.header
    }
    pub fn len(&self) -> usize {
        self.header.count as usize
    }
    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }
    pub fn dim(&self) -> usize {
        self.header.dim as usize
    }
    pub fn has_flip(&self) -> bool {
        self.header.views == 2
    }
    /// Hex of the content hash: identifies exactly these embeddings and keys.
    pub fn fingerprint(&self) -> String {
        hex(&self.header.content_hash)
    }

    pub fn key(&self, row: usize) -> &str {
        let (a, b) = (self.key_starts[row] as usize, self.key_starts[row + 1] as usize - 1);
        let keys = match &self.data {
            Backing::Mapped(map) => &map[self.header.keys_offset as usize..],
            Backing::Memory { keys, .. } => keys.as_slice(),
        };
        // Validated as UTF-8 on open and split at '\n' (an ASCII byte), so this cannot fail.
        std::str::from_utf8(&keys[a..b]).unwrap_or_default()
    }

    /// Row of `key`, building the key index on first use.
    pub fn row_of(&self, key: &str) -> Option<usize> {
        let index =
            self.index.get_or_init(|| (0..self.len()).map(|i| (Box::<str>::from(self.key(i)), i as u32)).collect());
        index.get(key).map(|&i| i as usize)
    }

    fn row_bytes(&self, row: usize, view: View) -> &[u8] {
        let size = self.header.dtype.size() * self.dim();
        &self.view_bytes(view)[row * size..(row + 1) * size]
    }

    /// The encoded rows of one view, in row order (`dtype` bytes).
    pub fn view_bytes(&self, view: View) -> &[u8] {
        let size = self.header.dtype.size() * self.dim() * self.len();
        match &self.data {
            Backing::Mapped(map) => {
                let start = self.header.data_offset as usize + view as usize * size;
                &map[start..start + size]
            }
            Backing::Memory { views, .. } => views[view as usize].bytes(),
        }
    }

    /// Copies one row into `out` as f32 (f16 stores are widened exactly).
    pub fn read_row(&self, row: usize, view: View, out: &mut [f32]) {
        self.header.dtype.decode(self.row_bytes(row, view), out);
    }

    /// Tells the kernel rows `lo..hi` (every view) will not be read again soon, so a pass over a
    /// store larger than memory does not keep it resident. Purely advisory: the mapping stays
    /// valid and later reads fault the pages back in from the page cache or the file.
    pub fn release_rows(&self, lo: usize, hi: usize) {
        let row = self.header.dtype.size() * self.dim();
        for view in 0..self.header.views as usize {
            let base = self.header.data_offset as usize + view * self.len() * row;
            self.release_bytes(base + lo * row, base + hi * row);
        }
    }

    /// `release_rows` for a byte range of the file.
    fn release_bytes(&self, lo: usize, hi: usize) {
        // Memory the caller holds is theirs to keep resident.
        let Backing::Mapped(map) = &self.data else { return };
        let page = 4096usize;
        // Whole pages strictly inside the range only: neighbours may still be in use.
        let start = lo.div_ceil(page) * page;
        let end = hi / page * page;
        if end > start && end <= map.len() {
            // SAFETY: [start, end) lies inside our read-only file mapping; MADV_DONTNEED on a
            // shared file mapping only drops our page-table entries.
            unsafe {
                libc::madvise(map.as_ptr().add(start) as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }

    /// Verifies the content hash: hashes everything after the header (rows and keys) through
    /// the mapping, on every core, and compares it with the header's (1M × 512 float32, 2 GB:
    /// 0.8 s of CPU, docs/cli.md). `--trust-store` skips it.
    pub fn verify(&self) -> Result<()> {
        // Rows in memory were hashed when the store was made from them, just now.
        let Backing::Mapped(map) = &self.data else { return Ok(()) };
        // In slices released after hashing, so a store larger than memory is not kept resident.
        const SLICE: usize = 64 << 20;
        let mut h = blake3::Hasher::new();
        for lo in (HEADER_LEN..map.len()).step_by(SLICE) {
            let hi = (lo + SLICE).min(map.len());
            h.update_rayon(&map[lo..hi]);
            self.release_bytes(lo, hi);
        }
        if *h.finalize().as_bytes() != self.header.content_hash {
            return Err(Error::data(
                &self.path,
                "content hash mismatch: the embedding store is corrupted (its rows or keys changed after it \
                 was sealed); delete it and import or embed it again",
            ));
        }
        Ok(())
    }
}

/// The exclusive lock for writing the store at `path` (`<path>.lock`). A second process that
/// wants to write the same store waits, then finds it finished and reuses it.
pub fn write_lock(path: &Path) -> Result<FileLock> {
    FileLock::acquire(&sibling(path, ".lock"), &format!("the embedding store {}", path.display()), Wait::Block)
}

/// blake3 of a file from `offset` to its end, read in chunks (the file is not mapped, so resident
/// memory stays small however large the store is).
fn hash_file_from(path: &Path, offset: u64) -> Result<[u8; 32]> {
    let mut f = File::open(path).map_err(|e| Error::read(path, e))?;
    f.seek(SeekFrom::Start(offset)).map_err(|e| Error::read(path, e))?;
    let mut h = blake3::Hasher::new();
    h.update_reader(&mut f).map_err(|e| Error::read(path, e))?;
    Ok(*h.finalize().as_bytes())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a store under `<path>.partial`, sealing and renaming it on [`StoreWriter::finish`].
pub struct StoreWriter {
    final_path: PathBuf,
    partial: PathBuf,
    file: File,
    header: StoreHeader,
    /// Running content hash while rows arrive in file order (the importer's case); `None` once
    /// a write lands out of order, and `finish` then re-reads the file to hash it.
    hasher: Option<(blake3::Hasher, u64)>,
}

impl StoreWriter {
    pub fn create(
        path: &Path,
        dtype: DType,
        dim: usize,
        views: usize,
        count: usize,
        source_fingerprint: [u8; 32],
    ) -> Result<Self> {
        let partial = partial_path(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(|e| Error::write(&partial, e))?;
        let data_len = (dtype.size() * dim * views * count) as u64;
        let header = StoreHeader {
            dtype,
            dim: dim as u32,
            views: views as u32,
            count: count as u64,
            data_offset: HEADER_LEN as u64,
            keys_offset: HEADER_LEN as u64 + data_len,
            keys_len: 0,
            source_fingerprint,
            content_hash: [0; 32],
            state: 0,
        };
        let hasher = Some((blake3::Hasher::new(), header.data_offset));
        let mut w = StoreWriter { final_path: path.to_path_buf(), partial, file, header, hasher };
        w.write_at(0, &w.header.encode())?;
        w.file.set_len(w.header.keys_offset).map_err(|e| Error::write(&w.partial, e))?;
        Ok(w)
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.file.seek(SeekFrom::Start(offset)).map_err(|e| Error::write(&self.partial, e))?;
        self.file.write_all(bytes).map_err(|e| Error::write(&self.partial, e))
    }

    /// Writes already-encoded rows (`dtype` bytes) starting at `first_row` of `view`.
    pub fn write_rows(&mut self, view: View, first_row: usize, encoded: &[u8]) -> Result<()> {
        let row = self.header.dtype.size() * self.header.dim as usize;
        debug_assert_eq!(encoded.len() % row, 0);
        let offset = self.header.data_offset + ((view as usize * self.header.count as usize + first_row) * row) as u64;
        self.hash_sequential(offset, encoded);
        self.write_at(offset, encoded)
    }

    fn hash_sequential(&mut self, offset: u64, bytes: &[u8]) {
        match &mut self.hasher {
            Some((h, next)) if *next == offset => {
                h.update_rayon(bytes);
                *next += bytes.len() as u64;
            }
            _ => self.hasher = None,
        }
    }

    /// Appends the keys, hashes the content, marks the store complete and renames it into place.
    pub fn finish(mut self, keys: &[String]) -> Result<PathBuf> {
        let mut blob = Vec::with_capacity(keys.iter().map(|k| k.len() + 1).sum());
        for k in keys {
            blob.extend_from_slice(k.as_bytes());
            blob.push(b'\n');
        }
        self.header.keys_len = blob.len() as u64;
        let keys_offset = self.header.keys_offset;
        self.hash_sequential(keys_offset, &blob);
        self.write_at(keys_offset, &blob)?;
        self.file.flush().map_err(|e| Error::write(&self.partial, e))?;
        self.header.content_hash = match self.hasher.take() {
            Some((h, end)) if end == keys_offset + blob.len() as u64 => *h.finalize().as_bytes(),
            _ => hash_file_from(&self.partial, HEADER_LEN as u64)?,
        };
        self.header.state = STATE_COMPLETE;
        self.write_at(0, &self.header.encode())?;
        self.file.sync_all().map_err(|e| Error::write(&self.partial, e))?;
        if let Err(e) = std::fs::rename(&self.partial, &self.final_path) {
            // A sealed store that cannot take its name (a directory there, a read-only folder)
            // is not left behind under the temporary one.
            let _ = std::fs::remove_file(&self.partial);
            return Err(Error::write(&self.final_path, e));
        }
        Ok(self.final_path)
    }
}

fn partial_path(path: &Path) -> PathBuf {
    sibling(path, ".partial")
}

/// `path` with `suffix` appended to its file name (`x.aifrstore` → `x.aifrstore.lock`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_small(path: &Path) -> PathBuf {
        let mut w = StoreWriter::create(path, DType::F32, 2, 1, 3, [7; 32]).unwrap();
        let rows: Vec<f32> = vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        w.write_rows(View::Original, 0, &DType::F32.encode(&rows)).unwrap();
        w.finish(&["a".into(), "b/c.jpg".into(), "d".into()]).unwrap()
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_small(&dir.path().join("s.aifrstore"));
        let s = EmbeddingStore::open(&p).unwrap();
        assert_eq!((s.len(), s.dim(), s.has_flip()), (3, 2, false));
        assert_eq!(s.row_of("b/c.jpg"), Some(1));
        assert_eq!(s.row_of("zz"), None);
        let mut out = [0f32; 2];
        s.read_row(2, View::Original, &mut out);
        assert_eq!(out, [0.6, 0.8]);
        s.verify().unwrap();
        assert!(!partial_path(&p).exists());
    }

    #[test]
    fn rows_in_memory_are_the_file_store_read_in_place() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let file = EmbeddingStore::open(&write_small(&dir.path().join("s.aifrstore"))).unwrap();
        let keys: Vec<String> = vec!["a".into(), "b/c.jpg".into(), "d".into()];
        let of = |rows: &[f32], keys: &[String]| {
            let view: Arc<dyn RowBytes> = Arc::new(DType::F32.encode(rows));
            EmbeddingStore::from_memory("embeddings", DType::F32, 2, vec![view], keys)
        };
        let rows = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        let mem = of(&rows, &keys).unwrap();
        // The content hash a sealed file of the same rows and keys carries.
        assert_eq!(mem.fingerprint(), file.fingerprint());
        assert_eq!(mem.view_bytes(View::Original), file.view_bytes(View::Original));
        assert_eq!(
            (mem.len(), mem.dim(), mem.has_flip(), mem.key(1), mem.row_of("d")),
            (3, 2, false, "b/c.jpg", Some(2))
        );
        let mut out = [0f32; 2];
        mem.read_row(2, View::Original, &mut out);
        assert_eq!(out, [0.6, 0.8]);
        mem.verify().unwrap();
        mem.release_rows(0, 3);
        assert!(mem.in_memory() && !file.in_memory());
        // Rows in place: the store reads the caller's buffer, not a copy of it.
        let buf: Arc<Vec<u8>> = Arc::new(DType::F32.encode(&rows));
        let at = buf.as_ptr();
        let view: Arc<dyn RowBytes> = buf;
        let mem = EmbeddingStore::from_memory("embeddings", DType::F32, 2, vec![view], &keys).unwrap();
        assert_eq!(mem.view_bytes(View::Original).as_ptr(), at);
        // Refused as an import refuses them, naming the row and its key.
        let e = of(&[1.0, 0.0, f32::NAN, 1.0, 0.6, 0.8], &keys).unwrap_err().to_string();
        assert_eq!(e, "embeddings: row 1 (key 'b/c.jpg') has a non-finite value NaN in column 0");
        let e = of(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], &keys).unwrap_err().to_string();
        assert!(e.contains("row 2 (key 'd') is all zeros"), "{e}");
        let dup: Vec<String> = vec!["a".into(), "b".into(), "a".into()];
        assert!(of(&rows, &dup).unwrap_err().to_string().contains("duplicate key 'a' (rows 0 and 2)"));
        assert!(of(&rows[..4], &keys).unwrap_err().to_string().contains("need 24"));
        assert!(of(&[], &[]).unwrap_err().to_string().contains("no rows"));
    }

    #[test]
    fn a_store_that_cannot_take_its_name_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("taken");
        std::fs::create_dir(&p).unwrap();
        let mut w = StoreWriter::create(&p, DType::F32, 2, 1, 1, [0; 32]).unwrap();
        w.write_rows(View::Original, 0, &DType::F32.encode(&[1.0, 0.0])).unwrap();
        assert!(w.finish(&["a".into()]).unwrap_err().to_string().contains("cannot write"));
        assert!(!partial_path(&p).exists());
    }

    #[test]
    fn unfinished_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.aifrstore");
        let w = StoreWriter::create(&p, DType::F32, 2, 1, 3, [0; 32]).unwrap();
        drop(w);
        assert!(!p.exists());
        let e = EmbeddingStore::open(&partial_path(&p)).unwrap_err().to_string();
        assert!(e.contains("incomplete"), "{e}");
    }

    #[test]
    fn truncated_and_corrupted_stores_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_small(&dir.path().join("s.aifrstore"));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(EmbeddingStore::open(&p).unwrap_err().to_string().contains("truncated"));
        let mut bad = bytes.clone();
        bad[20] ^= 1; // count
        std::fs::write(&p, &bad).unwrap();
        assert!(EmbeddingStore::open(&p).unwrap_err().to_string().contains("header"));
        let mut bad = bytes.clone();
        bad[HEADER_LEN + 1] ^= 0x40; // a data byte
        std::fs::write(&p, &bad).unwrap();
        assert!(EmbeddingStore::open(&p).unwrap().verify().is_err());
        std::fs::write(&p, b"short").unwrap();
        assert!(EmbeddingStore::open(&p).is_err());
    }
}

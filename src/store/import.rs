//! Converting users' embedding files (`.npy` N×D, or safetensors) plus a key list into a store.
//!
//! The conversion streams: the source is read in fixed-size chunks (never mapped or loaded
//! whole), each row is checked (finite, non-zero norm) and written, so resident memory stays at
//! a few megabytes whatever N is and the speed is the disk's.

use super::{DType, EmbeddingStore, StoreWriter, View};
use crate::error::{Error, Result};
use memmap2::Mmap;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Element types accepted in source files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SrcType {
    F32,
    F16,
    BF16,
    F64,
}

impl SrcType {
    fn size(self) -> usize {
        match self {
            SrcType::F32 => 4,
            SrcType::F16 | SrcType::BF16 => 2,
            SrcType::F64 => 8,
        }
    }

    fn decode(self, bytes: &[u8], out: &mut Vec<f32>) {
        out.clear();
        match self {
            SrcType::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            SrcType::F16 => out.extend(bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())),
            SrcType::BF16 => {
                out.extend(bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()))
            }
            SrcType::F64 => out.extend(bytes.chunks_exact(8).map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            })),
        }
    }

    /// f16 sources stay f16 in the store (exact, half the size); everything else becomes f32.
    fn store_dtype(self) -> DType {
        match self {
            SrcType::F16 => DType::F16,
            _ => DType::F32,
        }
    }
}

/// A row-major N×D matrix at a byte offset inside a file.
#[derive(Debug, Clone)]
struct MatrixLoc {
    path: PathBuf,
    offset: u64,
    rows: usize,
    cols: usize,
    ty: SrcType,
}

/// Where a user's embeddings come from.
#[derive(Debug, Clone)]
pub struct EmbeddingSource {
    /// `.npy` (N×D float32/float16/float64) or `.safetensors`.
    pub embeddings: PathBuf,
    /// Text file with N image keys, one per line, in row order.
    pub keys: PathBuf,
    /// Optional embeddings of the horizontally flipped images (same shape, same key order).
    /// For safetensors, a tensor named `embeddings_flip` in the same file is used when present.
    pub flip: Option<PathBuf>,
}

fn locate(path: &Path, flip_tensor: bool) -> Result<Option<MatrixLoc>> {
    let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let is_st = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let found = if is_npy {
        if flip_tensor {
            return Ok(None);
        }
        Some(locate_npy(path)?)
    } else if is_st {
        locate_safetensors(path, flip_tensor)?
    } else {
        return Err(Error::data(
            path,
            "unknown embedding file type: expected a .npy or .safetensors file (or an .aifrstore)",
        ));
    };
    if let Some(m) = &found {
        if m.cols == 0 {
            return Err(Error::data(
                path,
                format!("the embeddings are {}×0: each row needs at least one value", m.rows),
            ));
        }
    }
    Ok(found)
}

/// Counts bytes consumed by the header parser, which tells where the data starts.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

fn locate_npy(path: &Path) -> Result<MatrixLoc> {
    let (file, len) = crate::io::open_input(path, crate::io::Role::MAPPED)?;
    // The header parser reads byte-wise from an unbuffered reader, so the count is exact.
    let mut counting = Counting { inner: file, n: 0 };
    let header = npyz::NpyHeader::from_reader(&mut counting)
        .map_err(|e| Error::data(path, format!("not a valid .npy header: {e}")))?;
    let offset = counting.n;
    let npyz::DType::Plain(ts) = header.dtype() else {
        return Err(Error::data(path, "structured .npy arrays are not supported; expected a plain float matrix"));
    };
    let descr = ts.to_string();
    let ty = match descr.as_str() {
        "<f4" => SrcType::F32,
        "<f2" => SrcType::F16,
        "<f8" => SrcType::F64,
        other => {
            return Err(Error::data(
                path,
                format!("dtype '{other}' is not supported; expected little-endian float32 ('<f4'), float16 ('<f2') or float64 ('<f8')"),
            ))
        }
    };
    if header.order() != npyz::Order::C {
        return Err(Error::data(path, "Fortran-ordered array; save it with np.ascontiguousarray(x) first"));
    }
    let shape = header.shape();
    if shape.len() != 2 {
        return Err(Error::data(path, format!("expected a 2-D array (N images × D dims), found shape {shape:?}")));
    }
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    check_len(path, offset, rows, cols, ty, len)?;
    Ok(MatrixLoc { path: path.to_path_buf(), offset, rows, cols, ty })
}

fn check_len(path: &Path, offset: u64, rows: usize, cols: usize, ty: SrcType, len: u64) -> Result<()> {
    let need = (rows as u64).checked_mul(cols as u64).and_then(|x| x.checked_mul(ty.size() as u64));
    if cols == 0 || need.and_then(|n| n.checked_add(offset)) != Some(len) {
        return Err(Error::data(
            path,
            format!(
                "file is {len} bytes but a {rows}×{cols} matrix starting at byte {offset} needs {}: truncated or corrupted",
                need.map(|n| (n + offset).to_string()).unwrap_or_else(|| "more than 2^64".into())
            ),
        ));
    }
    Ok(())
}

fn locate_safetensors(path: &Path, flip: bool) -> Result<Option<MatrixLoc>> {
    let (file, _) = crate::io::open_input(path, crate::io::Role::MAPPED)?;
    // SAFETY: read-only mapping used only to parse the header; dropped before data is read.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::read(path, e))?;
    let (n, meta) = safetensors::SafeTensors::read_metadata(&map)
        .map_err(|e| Error::data(path, format!("not a valid safetensors file: {e:?}")))?;
    let tensors = meta.tensors();
    let name = if flip { "embeddings_flip" } else { "embeddings" };
    let info = match tensors.get(name) {
        Some(i) => *i,
        None if flip => return Ok(None),
        None if tensors.len() == 1 => {
            tensors.values().next().copied().ok_or_else(|| Error::data(path, "no tensors"))?
        }
        None => {
            let mut names: Vec<_> = tensors.keys().cloned().collect();
            names.sort();
            return Err(Error::data(path, format!("no tensor named 'embeddings' (found: {})", names.join(", "))));
        }
    };
    let ty = match info.dtype {
        safetensors::Dtype::F32 => SrcType::F32,
        safetensors::Dtype::F16 => SrcType::F16,
        safetensors::Dtype::BF16 => SrcType::BF16,
        safetensors::Dtype::F64 => SrcType::F64,
        d => return Err(Error::data(path, format!("tensor '{name}' has dtype {d:?}; expected F32, F16, BF16 or F64"))),
    };
    if info.shape.len() != 2 {
        return Err(Error::data(path, format!("tensor '{name}' has shape {:?}; expected N×D", info.shape)));
    }
    Ok(Some(MatrixLoc {
        path: path.to_path_buf(),
        offset: (8 + n + info.data_offsets.0) as u64,
        rows: info.shape[0],
        cols: info.shape[1],
        ty,
    }))
}

/// Reads a key list: one non-empty key per line, unique.
pub fn read_keys(path: &Path) -> Result<Vec<String>> {
    let text = crate::io::read_text(path, crate::io::Role::KEY_LIST)?;
    let mut keys = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let key = line.strip_suffix('\r').unwrap_or(line);
        if key.is_empty() {
            return Err(Error::parse(path, i + 1, "empty key (every line must name one image)"));
        }
        if let Some(first) = seen.insert(key, i + 1) {
            return Err(Error::parse(
                path,
                i + 1,
                format!("duplicate key '{}' (first on line {first})", crate::io::excerpt(key)),
            ));
        }
        keys.push(key.to_string());
    }
    Ok(keys)
}

/// Identity of the sources: a hash of their contents (not their names or modification times,
/// which `cp -p`, `rsync -a` and `tar x` carry over to changed data). Hashing reads each file
/// once, on every core; the import reads them anyway.
fn source_fingerprint(paths: &[&Path]) -> Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    h.update(b"aifr-eval import v2\0");
    for p in paths {
        // A directory or device is refused here, with the readers' own message.
        let (file, len) = crate::io::open_input(p, crate::io::Role::MAPPED)?;
        let mut one = blake3::Hasher::new();
        if len > 0 {
            // SAFETY: read-only mapping of an input file that this run does not modify.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::read(p, e))?;
            one.update_rayon(&map);
        }
        h.update(one.finalize().as_bytes());
    }
    Ok(*h.finalize().as_bytes())
}

fn source_paths(src: &EmbeddingSource) -> Vec<&Path> {
    let mut paths: Vec<&Path> = vec![&src.embeddings, &src.keys];
    if let Some(p) = &src.flip {
        paths.push(p);
    }
    paths
}

/// Imports `src` into a store at `dest` (replacing it).
pub fn import(src: &EmbeddingSource, dest: &Path) -> Result<EmbeddingStore> {
    let _lock = super::write_lock(dest)?;
    import_unlocked(src, dest, source_fingerprint(&source_paths(src))?)
}

fn import_unlocked(src: &EmbeddingSource, dest: &Path, fingerprint: [u8; 32]) -> Result<EmbeddingStore> {
    let main = locate(&src.embeddings, false)?.ok_or_else(|| Error::data(&src.embeddings, "no embeddings"))?;
    let flip = match &src.flip {
        Some(p) => Some(locate(p, false)?.ok_or_else(|| Error::data(p, "no embeddings"))?),
        None => locate(&src.embeddings, true)?,
    };
    if main.rows == 0 {
        return Err(Error::data(&main.path, "the array has no rows: there are no embeddings to evaluate"));
    }
    let keys = read_keys(&src.keys)?;
    if keys.len() != main.rows {
        return Err(Error::Invalid(format!(
            "{} has {} keys but {} has {} rows; they must correspond line by line",
            src.keys.display(),
            keys.len(),
            main.path.display(),
            main.rows
        )));
    }
    if let Some(f) = &flip {
        if (f.rows, f.cols) != (main.rows, main.cols) {
            return Err(Error::Invalid(format!(
                "flip embeddings {} are {}×{} but embeddings {} are {}×{}",
                f.path.display(),
                f.rows,
                f.cols,
                main.path.display(),
                main.rows,
                main.cols
            )));
        }
    }
    let dtype = main.ty.store_dtype();
    let views = if flip.is_some() { 2 } else { 1 };
    let mut w = StoreWriter::create(dest, dtype, main.cols, views, main.rows, fingerprint)?;
    let copied = copy_rows(&main, View::Original, &keys, dtype, &mut w)
        .and_then(|()| flip.as_ref().map_or(Ok(()), |f| copy_rows(f, View::Flipped, &keys, dtype, &mut w)));
    let w = discard_on_error(dest, w, copied)?;
    let path = w.finish(&keys)?;
    EmbeddingStore::open(&path)
}

/// Removes the half-written `<dest>.partial` when filling it failed (a bad row), so a refused
/// import leaves nothing behind; hands the writer back otherwise.
fn discard_on_error(dest: &Path, w: StoreWriter, filled: Result<()>) -> Result<StoreWriter> {
    match filled {
        Ok(()) => Ok(w),
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(super::partial_path(dest));
            Err(e)
        }
    }
}

/// A store in a cache and whether it was there already (`reused`: made by an earlier run, so
/// worth verifying before use) or made just now.
pub struct Cached {
    pub store: EmbeddingStore,
    pub reused: bool,
}

/// Imports into `cache_dir`, reusing a store made from sources with the same contents. Processes
/// sharing the cache take turns on one store (a lock per store), so none fails or reads half a
/// store, and the second one reuses the first one's work.
pub fn import_cached(src: &EmbeddingSource, cache_dir: &Path) -> Result<Cached> {
    let fp = source_fingerprint(&source_paths(src))?;
    let dest = cache_dir.join(format!("{}.aifrstore", &super::hex(&fp)[..24]));
    let _lock = super::write_lock(&dest)?;
    if let Some(store) = cached_store(&dest, fp) {
        return Ok(Cached { store, reused: true });
    }
    Ok(Cached { store: import_unlocked(src, &dest, fp)?, reused: false })
}

/// The sealed store at `dest` when it was made from sources with fingerprint `fp`.
fn cached_store(dest: &Path, fp: [u8; 32]) -> Option<EmbeddingStore> {
    EmbeddingStore::open(dest).ok().filter(|s| s.header().source_fingerprint == fp)
}

const CHUNK_BYTES: usize = 8 << 20;

fn copy_rows(m: &MatrixLoc, view: View, keys: &[String], dtype: DType, w: &mut StoreWriter) -> Result<()> {
    let mut file = File::open(&m.path).map_err(|e| Error::read(&m.path, e))?;
    file.seek(SeekFrom::Start(m.offset)).map_err(|e| Error::read(&m.path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let row_bytes = m.cols * m.ty.size();
    let rows_per_chunk = (CHUNK_BYTES / row_bytes).max(1);
    let mut buf = vec![0u8; rows_per_chunk * row_bytes];
    let mut vals = Vec::with_capacity(rows_per_chunk * m.cols);
    let mut first = 0usize;
    while first < m.rows {
        let n = rows_per_chunk.min(m.rows - first);
        let bytes = &mut buf[..n * row_bytes];
        reader.read_exact(bytes).map_err(|e| {
            Error::data(&m.path, format!("cannot read rows {first}..{} ({e}): file truncated?", first + n))
        })?;
        m.ty.decode(bytes, &mut vals);
        for (r, row) in vals.chunks_exact(m.cols).enumerate() {
            check_row(&m.path, row, first + r, &keys[first + r])?;
        }
        // Same element type: the source bytes are already the store's encoding.
        if m.ty.store_dtype().size() == m.ty.size() {
            w.write_rows(view, first, bytes)?;
        } else {
            w.write_rows(view, first, &dtype.encode(&vals))?;
        }
        first += n;
    }
    Ok(())
}

/// `check_row` over rows already in memory (`count × dim` values of `dtype`), in parallel; the
/// error is the one for the first bad row, as a sequential import reports it.
pub(crate) fn check_rows(path: &Path, dtype: DType, dim: usize, bytes: &[u8], keys: &[String]) -> Result<()> {
    use rayon::prelude::*;
    const ROWS: usize = 4096;
    let row = dtype.size() * dim;
    let first_bad = bytes.par_chunks(ROWS * row).enumerate().find_map_first(|(c, chunk)| {
        let mut vals = vec![0f32; dim];
        chunk.chunks_exact(row).enumerate().find_map(|(r, b)| {
            dtype.decode(b, &mut vals);
            let i = c * ROWS + r;
            check_row(path, &vals, i, &keys[i]).err()
        })
    });
    first_bad.map_or(Ok(()), Err)
}

/// An embedding that is not finite or has zero norm cannot be compared; it usually means a failed
/// image that was written as zeros. Refuse it rather than produce a wrong score.
fn check_row(path: &Path, row: &[f32], index: usize, key: &str) -> Result<()> {
    let key = crate::io::excerpt(key);
    if let Some((col, v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::data(path, format!("row {index} (key '{key}') has a non-finite value {v} in column {col}")));
    }
    if row.iter().all(|&v| v == 0.0) {
        return Err(Error::data(path, format!("row {index} (key '{key}') is all zeros (zero-norm embedding)")));
    }
    Ok(())
}

/// Per-image MegaFace devkit feature files (`<dir>/<key><suffix>`), converted into one store in
/// `cache_dir` and reused while every file is the same file (device, inode) with the same size,
/// modification time and inode change time. Hashing a million small files would cost as much as
/// the conversion itself; the change time cannot be set back by `cp -p`, `rsync -a` or `tar x`
/// (restoring a modification time changes it), so changed contents are never mistaken for old
/// ones. Files are read in parallel (the conversion is file-system bound); a missing file is an
/// error that lists them.
pub fn import_devkit_features(keys: &[String], dir: &Path, suffix: &str, cache_dir: &Path) -> Result<Cached> {
    use rayon::prelude::*;
    use std::os::unix::fs::MetadataExt;
    if keys.is_empty() {
        return Err(Error::Invalid("no images to read feature files for".into()));
    }
    let path_of = |k: &String| dir.join(format!("{k}{suffix}"));
    // Cache identity: directory, suffix, and every file's name and stat (one stat each).
    let stats: Vec<std::io::Result<[i64; 7]>> = keys
        .par_iter()
        .map(|k| {
            let m = std::fs::metadata(path_of(k))?;
            Ok([m.dev() as i64, m.ino() as i64, m.size() as i64, m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()])
        })
        .collect();
    let missing: Vec<String> =
        keys.iter().zip(&stats).filter(|(_, s)| s.is_err()).map(|(k, _)| path_of(k).display().to_string()).collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(10).map(String::as_str).collect();
        return Err(Error::Missing(format!(
            "{} of {} devkit feature files are missing (suffix '{suffix}'):\n  {}{}",
            missing.len(),
            keys.len(),
            shown.join("\n  "),
            if missing.len() > shown.len() { "\n  …" } else { "" }
        )));
    }
    let mut h = blake3::Hasher::new();
    h.update(b"aifr-eval devkit features v2\0");
    let abs = std::fs::canonicalize(dir).map_err(|e| Error::read(dir, e))?;
    h.update(abs.to_string_lossy().as_bytes());
    h.update(b"\0");
    h.update(suffix.as_bytes());
    for (k, s) in keys.iter().zip(&stats) {
        if let Ok(stat) = s {
            h.update(k.as_bytes());
            h.update(b"\0");
            for v in stat {
                h.update(&v.to_le_bytes());
            }
        }
    }
    let fp = *h.finalize().as_bytes();
    let dest = cache_dir.join(format!("devkit-{}.aifrstore", &super::hex(&fp)[..24]));
    let _lock = super::write_lock(&dest)?;
    if let Some(store) = cached_store(&dest, fp) {
        return Ok(Cached { store, reused: true });
    }
    let first = path_of(&keys[0]);
    let dim = crate::dataset::megaface::read_feature_file(&first)?.len();
    let mut w = StoreWriter::create(&dest, DType::F32, dim, 1, keys.len(), fp)?;
    let filled = fill_devkit_rows(keys, &path_of, &first, dim, &mut w);
    let w = discard_on_error(&dest, w, filled)?;
    let path = w.finish(keys)?;
    Ok(Cached { store: EmbeddingStore::open(&path)?, reused: false })
}

fn fill_devkit_rows(
    keys: &[String],
    path_of: &(dyn Fn(&String) -> PathBuf + Sync),
    first: &Path,
    dim: usize,
    w: &mut StoreWriter,
) -> Result<()> {
    use rayon::prelude::*;
    const CHUNK: usize = 4096;
    for (c, chunk) in keys.chunks(CHUNK).enumerate() {
        let rows: Vec<Vec<f32>> = chunk
            .par_iter()
            .map(|k| {
                let p = path_of(k);
                let v = crate::dataset::megaface::read_feature_file(&p)?;
                if v.len() != dim {
                    // Name both files: either one may be the odd one out.
                    return Err(Error::Invalid(format!(
                        "devkit feature files disagree on the dimension: {} is {}-D but {} is {dim}-D",
                        p.display(),
                        v.len(),
                        first.display()
                    )));
                }
                check_row(&p, &v, 0, k)?;
                Ok(v)
            })
            .collect::<Result<_>>()?;
        let flat: Vec<f32> = rows.concat();
        w.write_rows(View::Original, c * CHUNK, &DType::F32.encode(&flat))?;
    }
    Ok(())
}

/// Writes a little-endian `.npy` (format 1.0) atomically; `descr` is the numpy type string.
fn write_npy(path: &Path, descr: &str, rows: usize, cols: usize, data: Vec<u8>) -> Result<()> {
    crate::io::write_atomic(path, &npy_bytes(descr, rows, cols, &data))
}

/// A little-endian `.npy` (format 1.0) in memory; `data` is already encoded as `descr`.
fn npy_bytes(descr: &str, rows: usize, cols: usize, data: &[u8]) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut header = dict.into_bytes();
    // magic(6) + version(2) + length(2) + header, space-padded to a multiple of 64, '\n'-ended.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

/// The bytes of a float32 `.npy` file (for tests and seeds that build inputs in memory).
pub fn npy_f32_bytes(rows: usize, cols: usize, data: &[f32]) -> Vec<u8> {
    let encoded: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_bytes("<f4", rows, cols, &encoded)
}

pub fn write_npy_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    write_npy(path, "<f4", rows, cols, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

pub fn write_npy_f64(path: &Path, rows: usize, cols: usize, data: &[f64]) -> Result<()> {
    write_npy(path, "<f8", rows, cols, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Reads a small 2-D float64 `.npy` whole: (rows, cols, row-major data).
pub fn read_npy_f64(path: &Path) -> Result<(usize, usize, Vec<f64>)> {
    let m = locate_npy(path)?;
    if m.ty != SrcType::F64 {
        return Err(Error::data(path, "expected a float64 ('<f8') array"));
    }
    let bytes = crate::io::read_input(path, crate::io::Role::MAPPED)?;
    let data = bytes[m.offset as usize..]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    Ok((m.rows, m.cols, data))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn write_npy_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) {
        super::write_npy_f32(path, rows, cols, data).unwrap();
    }

    fn setup(data: &[f32], keys: &str) -> (tempfile::TempDir, EmbeddingSource) {
        let dir = tempfile::tempdir().unwrap();
        let e = dir.path().join("e.npy");
        write_npy_f32(&e, data.len() / 2, 2, data);
        let k = dir.path().join("k.txt");
        std::fs::write(&k, keys).unwrap();
        (dir, EmbeddingSource { embeddings: e, keys: k, flip: None })
    }

    #[test]
    fn npy_import_round_trips() {
        let (dir, src) = setup(&[1.0, 2.0, 3.0, 4.0], "a\nb\n");
        let s = import(&src, &dir.path().join("s.aifrstore")).unwrap();
        let mut row = [0f32; 2];
        s.read_row(s.row_of("b").unwrap(), View::Original, &mut row);
        assert_eq!(row, [3.0, 4.0]);
        // Cached import reuses the same file.
        let c1 = import_cached(&src, dir.path()).unwrap();
        let c2 = import_cached(&src, dir.path()).unwrap();
        assert!(!c1.reused && c2.reused);
        assert_eq!(c1.store.path(), c2.store.path());
        assert_eq!(c1.store.fingerprint(), s.fingerprint());
    }

    #[test]
    fn cache_follows_contents_not_modification_times() {
        let (dir, src) = setup(&[1.0, 2.0, 3.0, 4.0], "a\nb\n");
        let first = import_cached(&src, dir.path()).unwrap().store;
        let mtime = std::fs::metadata(&src.embeddings).unwrap().modified().unwrap();
        // Same size, other numbers, the old modification time put back (what `cp -p` does).
        write_npy_f32(&src.embeddings, 2, 2, &[1.0, 2.0, 4.0, 3.0]);
        std::fs::File::options().write(true).open(&src.embeddings).unwrap().set_modified(mtime).unwrap();
        let second = import_cached(&src, dir.path()).unwrap();
        assert!(!second.reused);
        assert_ne!(second.store.fingerprint(), first.fingerprint());
        let mut row = [0f32; 2];
        second.store.read_row(1, View::Original, &mut row);
        assert_eq!(row, [4.0, 3.0]);
    }

    #[test]
    fn concurrent_cached_imports_share_one_store() {
        let (dir, src) = setup(&[1.0, 2.0, 3.0, 4.0], "a\nb\n");
        let cache = dir.path().join("cache");
        let results: Vec<Cached> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|_| s.spawn(|| import_cached(&src, &cache).unwrap())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|c| !c.reused).count(), 1);
        assert!(results.iter().all(|c| c.store.path() == results[0].store.path()));
        results[0].store.verify().unwrap();
    }

    #[test]
    fn bad_rows_are_named() {
        let (dir, src) = setup(&[1.0, 2.0, f32::NAN, 4.0], "a\nb\n");
        let e = import(&src, &dir.path().join("s.aifrstore")).unwrap_err().to_string();
        assert!(e.contains("row 1 (key 'b')") && e.contains("non-finite"), "{e}");
        let (dir, src) = setup(&[0.0, 0.0, 1.0, 4.0], "a\nb\n");
        let e = import(&src, &dir.path().join("s.aifrstore")).unwrap_err().to_string();
        assert!(e.contains("row 0 (key 'a')") && e.contains("zero"), "{e}");
        assert!(!dir.path().join("s.aifrstore").exists());
    }

    #[test]
    fn key_problems_are_reported_with_lines() {
        let (dir, src) = setup(&[1.0, 2.0, 3.0, 4.0], "a\na\n");
        let e = import(&src, &dir.path().join("s")).unwrap_err().to_string();
        assert!(e.contains(":2: duplicate key 'a' (first on line 1)"), "{e}");
        let (dir, src) = setup(&[1.0, 2.0, 3.0, 4.0], "a\nb\nc\n");
        let e = import(&src, &dir.path().join("s")).unwrap_err().to_string();
        assert!(e.contains("has 3 keys but") && e.contains("has 2 rows"), "{e}");
    }

    #[test]
    fn safetensors_with_flip_and_bf16_import() {
        use safetensors::tensor::{serialize, TensorView};
        let dir = tempfile::tempdir().unwrap();
        let f32s: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bf16s: Vec<u8> =
            [0.5f32, 1.5, -2.0, 8.0].iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
        let bytes = serialize(
            [
                ("embeddings", TensorView::new(safetensors::Dtype::F32, vec![2, 2], &f32s).unwrap()),
                ("embeddings_flip", TensorView::new(safetensors::Dtype::BF16, vec![2, 2], &bf16s).unwrap()),
            ],
            &None,
        )
        .unwrap();
        let path = dir.path().join("e.safetensors");
        std::fs::write(&path, bytes).unwrap();
        std::fs::write(dir.path().join("k.txt"), "a\nb\n").unwrap();
        let src = EmbeddingSource { embeddings: path.clone(), keys: dir.path().join("k.txt"), flip: None };
        let s = import(&src, &dir.path().join("s.aifrstore")).unwrap();
        assert!(s.has_flip());
        let mut row = [0f32; 2];
        s.read_row(1, View::Original, &mut row);
        assert_eq!(row, [3.0, 4.0]);
        s.read_row(1, View::Flipped, &mut row);
        assert_eq!(row, [-2.0, 8.0]);
        // Several tensors and none called `embeddings`: a clear error listing them.
        let bytes = serialize(
            [
                ("x", TensorView::new(safetensors::Dtype::F32, vec![2, 2], &f32s).unwrap()),
                ("y", TensorView::new(safetensors::Dtype::F32, vec![2, 2], &f32s).unwrap()),
            ],
            &None,
        )
        .unwrap();
        std::fs::write(&path, bytes).unwrap();
        let e = import(&src, &dir.path().join("s2")).unwrap_err().to_string();
        assert!(e.contains("no tensor named 'embeddings' (found: x, y)"), "{e}");
    }

    #[test]
    fn float16_npy_stays_float16() {
        let dir = tempfile::tempdir().unwrap();
        let dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }";
        let mut header = dict.as_bytes().to_vec();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(&header);
        for v in [0.25f32, -1.0, 3.5, 2.0] {
            out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
        std::fs::write(dir.path().join("e.npy"), out).unwrap();
        std::fs::write(dir.path().join("k.txt"), "a\nb\n").unwrap();
        let src = EmbeddingSource { embeddings: dir.path().join("e.npy"), keys: dir.path().join("k.txt"), flip: None };
        let s = import(&src, &dir.path().join("s")).unwrap();
        assert_eq!(s.header().dtype, DType::F16);
        let mut row = [0f32; 2];
        s.read_row(1, View::Original, &mut row);
        assert_eq!(row, [3.5, 2.0]);
    }

    #[test]
    fn empty_array_is_refused() {
        let (dir, src) = setup(&[], "");
        let e = import(&src, &dir.path().join("s")).unwrap_err().to_string();
        assert!(e.contains("no rows"), "{e}");
    }

    #[test]
    fn truncated_npy_is_refused() {
        let (dir, src) = setup(&[1.0, 2.0, 3.0, 4.0], "a\nb\n");
        let bytes = std::fs::read(&src.embeddings).unwrap();
        std::fs::write(&src.embeddings, &bytes[..bytes.len() - 1]).unwrap();
        let e = import(&src, &dir.path().join("s")).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&src.embeddings, b"garbage").unwrap();
        assert!(import(&src, &dir.path().join("s")).unwrap_err().to_string().contains(".npy"));
    }
}

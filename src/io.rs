//! The bottom layer of file output and input that every other module may use: atomic writes
//! (a reader never sees half a file), JSON as the project writes it, and typed JSON reads with
//! the file named in errors.

pub mod lock;

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writers inside one process.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` via a temporary file in the same directory and a rename, so readers
/// never see a half-written file and a failed run leaves the previous file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::write(path, e)
    })
}

/// Pretty JSON with a trailing newline.
pub fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain data structs to a Vec cannot fail.
    let mut v = serde_json::to_vec_pretty(value).unwrap_or_default();
    v.push(b'\n');
    v
}

/// JSON on one line with a trailing newline, for data files too large to be worth indenting
/// (`search_outcomes.json`: one number per search).
pub fn to_json_compact<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Reads a JSON file into `T`; a parse error names the file and what serde expected.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::read(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::data(path, format!("not valid JSON for this file: {e}")))
}

/// What an input file is for and the largest size that role can sensibly have. Inputs are
/// checked against it before a byte is read, so a wrong path (a directory, `/dev/zero`, a disk
/// image) fails at once with a message instead of filling memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// Named in messages: "a pairs file is at most …".
    pub what: &'static str,
    pub max_bytes: u64,
}

impl Role {
    /// Pair lists, protocol text files, noise lists, IJB 1:N CSVs (the largest real one, IJB-C's
    /// 1:N probes, is a few MB).
    pub const PROTOCOL_TEXT: Role = Role { what: "protocol text file", max_bytes: 256 << 20 };
    /// One key per line; MegaFace's million keys take under 100 MB.
    pub const KEY_LIST: Role = Role { what: "key list", max_bytes: 1 << 30 };
    /// Space-separated IJB meta files (IJB-C's 15.7 M pairs are about 300 MB).
    pub const IJB_META: Role = Role { what: "IJB meta file", max_bytes: 4 << 30 };
    /// AgeDB protocol `.mat` files (a few MB).
    pub const MAT: Role = Role { what: "MATLAB protocol file", max_bytes: 256 << 20 };
    /// MegaFace devkit JSON lists (the 1M list is about 60 MB).
    pub const DEVKIT_LIST: Role = Role { what: "devkit list", max_bytes: 1 << 30 };
    /// One devkit feature file: a 16-byte header and D float32 values.
    pub const FEATURE_FILE: Role = Role { what: "devkit feature file", max_bytes: 1 << 20 };
    /// A manifest table (CSV, TSV or Parquet).
    pub const MANIFEST: Role = Role { what: "manifest", max_bytes: 4 << 30 };
    /// Network weights read whole (dlib `.dat`, test nets).
    pub const MODEL: Role = Role { what: "model file", max_bytes: 4 << 30 };
    /// One shard's part of a split MegaFace scan (its kept impostor scores: tens of MB at 1M).
    pub const SCAN_PART: Role = Role { what: "MegaFace scan part", max_bytes: 16 << 30 };
    /// Small JSON records the tool writes itself (`.meta.json`, `.progress`).
    pub const RECORD: Role = Role { what: "record", max_bytes: 256 << 20 };
    /// Files that are memory-mapped or streamed, never read whole (`.npy`, `.safetensors`,
    /// `.bin` packs, stores): only the file-type check applies.
    pub const MAPPED: Role = Role { what: "data file", max_bytes: u64::MAX };
}

fn not_a_file(path: &Path, why: &str) -> Error {
    Error::read(path, std::io::Error::other(why.to_string()))
}

/// Opens an input after checking that it is a regular file (not a directory, device or pipe) no
/// larger than `role` allows; returns the file and its size.
pub fn open_input(path: &Path, role: Role) -> Result<(std::fs::File, u64)> {
    // Stat the path before opening: opening a FIFO for reading would block.
    let meta = std::fs::metadata(path).map_err(|e| Error::read(path, e))?;
    if meta.is_dir() {
        return Err(not_a_file(path, &format!("is a directory, not a {}", role.what)));
    }
    if !meta.is_file() {
        return Err(not_a_file(
            path,
            &format!("is not a regular file (a device, pipe or socket), not a {}", role.what),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::read(path, e))?;
    let len = file.metadata().map_err(|e| Error::read(path, e))?.len();
    if len > role.max_bytes {
        return Err(Error::data(
            path,
            format!(
                "is {len} bytes; a {} is at most {} bytes, so this is not the file meant",
                role.what, role.max_bytes
            ),
        ));
    }
    Ok((file, len))
}

/// Reads an input whole after [`open_input`]'s checks (and stops at the limit should the file
/// grow while being read).
pub fn read_input(path: &Path, role: Role) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, len) = open_input(path, role)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(role.max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| Error::read(path, e))?;
    if bytes.len() as u64 > role.max_bytes {
        return Err(Error::data(path, format!("grew past {} bytes while being read", role.max_bytes)));
    }
    Ok(bytes)
}

/// The UTF-8 byte-order mark some editors put at the start of text files.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading byte-order mark: every text reader strips it, so a file saved by
/// Notepad reads like any other.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// Text after a byte-order mark is stripped; invalid UTF-8 is an error naming the line.
pub fn text_of(path: &Path, bytes: Vec<u8>) -> Result<String> {
    let start = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
    match std::str::from_utf8(&bytes[start..]) {
        Ok(_) => {
            let mut bytes = bytes;
            bytes.drain(..start);
            // Checked just above.
            Ok(String::from_utf8(bytes).unwrap_or_default())
        }
        Err(e) => {
            let line = 1 + bytes[start..start + e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            Err(Error::parse(path, line, "not UTF-8 text"))
        }
    }
}

/// Reads a whole text file for `role`: the checks of [`read_input`], a byte-order mark
/// stripped, and non-UTF-8 text reported as a data error naming the line.
pub fn read_text(path: &Path, role: Role) -> Result<String> {
    text_of(path, read_input(path, role)?)
}

/// How much of an offending line or value a message quotes.
pub const EXCERPT_CHARS: usize = 200;

/// `s` cut to [`EXCERPT_CHARS`] characters for an error message, saying how much was left out,
/// so a megabyte of junk on one line gives a one-line message.
pub fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT_CHARS) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…({} more bytes)", &s[..at], s.len() - at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_and_say_what_was_cut() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(300);
        let e = excerpt(&long);
        assert!(e.starts_with(&"é".repeat(EXCERPT_CHARS)));
        assert!(e.ends_with("…(200 more bytes)"), "{e}");
    }

    #[test]
    fn inputs_must_be_regular_files_within_the_role_limit() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_text(dir.path(), Role::PROTOCOL_TEXT).unwrap_err();
        assert!(e.to_string().ends_with("is a directory, not a protocol text file"), "{e}");
        assert_eq!(e.exit_code(), crate::error::exit::MISSING_INPUT);
        let e = read_input(Path::new("/dev/zero"), Role::MAT).unwrap_err().to_string();
        assert!(e.contains("is not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2 << 20]).unwrap();
        let e = read_input(&big, Role::FEATURE_FILE).unwrap_err();
        assert!(e.to_string().contains("a devkit feature file is at most 1048576 bytes"), "{e}");
        assert_eq!(e.exit_code(), crate::error::exit::INVALID_INPUT);
    }

    #[test]
    fn text_loses_its_byte_order_mark_and_bad_utf8_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        std::fs::write(&p, b"\xEF\xBB\xBFa\nb\n").unwrap();
        assert_eq!(read_text(&p, Role::KEY_LIST).unwrap(), "a\nb\n");
        std::fs::write(&p, b"a\nb\xff\n").unwrap();
        assert_eq!(
            read_text(&p, Role::KEY_LIST).unwrap_err().to_string(),
            format!("{}:2: not UTF-8 text", p.display())
        );
    }
}

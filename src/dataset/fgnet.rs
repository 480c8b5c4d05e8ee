//! FG-NET: 1,002 images of 82 subjects in one directory, named `001A02.JPG` (subject 001 at age
//! 2; a trailing letter such as `001A02a.JPG` marks another image at the same age). The key of
//! an image is its file name.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FgnetImage {
    pub key: String,
    pub subject: u32,
    pub age: u32,
}

#[derive(Debug, Clone)]
pub struct FgnetBenchmark {
    /// Sorted by key.
    pub images: Vec<FgnetImage>,
    pub dir: PathBuf,
}

/// (subject, age) from an FG-NET file name.
pub fn parse_name(name: &str) -> Option<(u32, u32)> {
    let (stem, ext) = name.rsplit_once('.')?;
    if !matches!(ext.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png") {
        return None;
    }
    let b = stem.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let tail_ok = b.len() == 6 || (b.len() == 7 && b[6].is_ascii_alphabetic());
    if b.len() < 6 || !tail_ok || !digits(&b[..3]) || !(b[3] == b'A' || b[3] == b'a') || !digits(&b[4..6]) {
        return None;
    }
    Some((stem[..3].parse().ok()?, stem[4..6].parse().ok()?))
}

fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
}

/// Lists the images of an FG-NET directory; other files (e.g. `Thumbs.db`) are ignored, an image
/// whose name does not follow the convention is an error.
pub fn read_dir(dir: &Path) -> Result<FgnetBenchmark> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))?;
    let mut images = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::read(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_image(&name) {
            continue;
        }
        let (subject, age) = parse_name(&name).ok_or_else(|| {
            Error::data(dir, format!("image '{name}' is not named like FG-NET's '001A02.JPG' (subject, 'A', age)"))
        })?;
        images.push(FgnetImage { key: name, subject, age });
    }
    if images.is_empty() {
        return Err(Error::data(dir, "no FG-NET images (files like 001A02.JPG) in this directory"));
    }
    images.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(FgnetBenchmark { images, dir: dir.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("001A02.JPG"), Some((1, 2)));
        assert_eq!(parse_name("082A45b.jpg"), Some((82, 45)));
        assert_eq!(parse_name("001A2.JPG"), None);
        assert_eq!(parse_name("001B02.JPG"), None);
        assert_eq!(parse_name("001A02.txt"), None);
        assert_eq!(parse_name("001A02ab.JPG"), None);
    }

    #[test]
    fn directory_listing() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["002A10.JPG", "001A02.JPG", "Thumbs.db"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let b = read_dir(dir.path()).unwrap();
        assert_eq!(b.images.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["001A02.JPG", "002A10.JPG"]);
        std::fs::write(dir.path().join("photo.jpg"), b"").unwrap();
        assert!(read_dir(dir.path()).unwrap_err().to_string().contains("'photo.jpg' is not named like"));
    }
}

//! `ImageList`: the images of a benchmark, each with its key (the store key the protocol looks
//! up), where its bytes come from, and optional 5-point landmarks. Every adapter that needs
//! embeddings computed produces one (LFW-layout directories, insightface `.bin` packs, FG-NET;
//! IJB loose crops and MegaFace later, with landmarks).

use crate::dataset::insightface_bin::{parse_bin, BinPack};
use crate::error::{Error, Result};
use crate::image::Landmarks;
use memmap2::Mmap;
use rayon::prelude::*;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Where the encoded bytes of one image are.
#[derive(Debug, Clone)]
pub enum Location {
    /// A file of its own.
    File(PathBuf),
    /// Image `index` of pack `pack` (an index into the list's packs).
    Pack { pack: usize, index: usize },
}

#[derive(Debug, Clone)]
pub struct ImageItem {
    pub key: String,
    pub location: Location,
    pub landmarks: Option<Landmarks>,
}

struct PackFile {
    path: PathBuf,
    map: Mmap,
    pack: BinPack,
}

/// Why one image could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadImage {
    pub index: usize,
    pub key: String,
    /// The file (or pack) to name in messages.
    pub path: PathBuf,
    /// Missing or unreadable (exit 4) rather than undecodable (exit 3).
    pub missing: bool,
    pub reason: String,
}

impl BadImage {
    pub fn into_error(self) -> Error {
        let hint = "use --skip-bad-images to record it in the results and go on";
        if self.missing {
            Error::Missing(format!("cannot read image {}: {} ({hint})", self.path.display(), self.reason))
        } else {
            Error::data(&self.path, format!("{} ({hint})", self.reason))
        }
    }
}

#[derive(Default)]
pub struct ImageList {
    pub items: Vec<ImageItem>,
    packs: Vec<PackFile>,
}

impl ImageList {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn keys(&self) -> Vec<String> {
        self.items.iter().map(|i| i.key.clone()).collect()
    }

    /// Images `dir/<key>` for each key (LFW, CALFW/CPLFW, FG-NET layouts).
    pub fn from_dir(dir: &Path, keys: &[String]) -> Self {
        let items = keys
            .iter()
            .map(|k| ImageItem { key: k.clone(), location: Location::File(dir.join(k)), landmarks: None })
            .collect();
        ImageList { items, packs: Vec::new() }
    }

    /// Images `dir/<name>`, each aligned with its 5 landmarks (IJB's loose crops).
    pub fn from_dir_aligned(dir: &Path, images: impl IntoIterator<Item = (String, Landmarks)>) -> Self {
        let items = images
            .into_iter()
            .map(|(k, lm)| ImageItem { location: Location::File(dir.join(&k)), key: k, landmarks: Some(lm) })
            .collect();
        ImageList { items, packs: Vec::new() }
    }

    /// Every image of an insightface `.bin` pack, keys `0`, `1`, … in pack order (the keys the
    /// `.bin` pair adapter uses).
    pub fn from_bin(path: &Path) -> Result<Self> {
        let mut list = ImageList::default();
        let p = list.add_pack(path)?;
        let n = list.packs[p].pack.images.len();
        list.items = (0..n)
            .map(|i| ImageItem { key: i.to_string(), location: Location::Pack { pack: p, index: i }, landmarks: None })
            .collect();
        Ok(list)
    }

    /// Maps and parses a pack; returns its index for [`Location::Pack`].
    pub fn add_pack(&mut self, path: &Path) -> Result<usize> {
        let file = std::fs::File::open(path).map_err(|e| Error::read(path, e))?;
        // SAFETY: read-only mapping; packs are not modified while we read them.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::read(path, e))?;
        let pack = parse_bin(&map).map_err(|e| Error::data(path, format!("not a valid insightface .bin pack: {e}")))?;
        self.packs.push(PackFile { path: path.to_path_buf(), map, pack });
        Ok(self.packs.len() - 1)
    }

    /// The file to name for image `i`.
    pub fn path_of(&self, i: usize) -> PathBuf {
        match &self.items[i].location {
            Location::File(p) => p.clone(),
            Location::Pack { pack, .. } => self.packs[*pack].path.clone(),
        }
    }

    /// The encoded bytes of image `i`.
    pub fn bytes(&self, i: usize) -> std::result::Result<Cow<'_, [u8]>, BadImage> {
        let item = &self.items[i];
        let bad = |missing: bool, reason: String| BadImage {
            index: i,
            key: item.key.clone(),
            path: self.path_of(i),
            missing,
            reason,
        };
        match &item.location {
            Location::File(p) => std::fs::read(p).map(Cow::Owned).map_err(|e| bad(true, e.to_string())),
            Location::Pack { pack, index } => {
                let f = &self.packs[*pack];
                match f.pack.images.get(*index).and_then(|b| b.get(&f.map)) {
                    Some(b) => Ok(Cow::Borrowed(b)),
                    None => Err(bad(true, format!("the pack has no image {index}"))),
                }
            }
        }
    }

    /// Prefixes a decoding problem with where the image is inside a pack.
    pub fn decode_error(&self, i: usize, reason: String) -> BadImage {
        let item = &self.items[i];
        let reason = match &item.location {
            Location::File(_) => reason,
            Location::Pack { index, .. } => format!("image {index} of the pack: {reason}"),
        };
        BadImage { index: i, key: item.key.clone(), path: self.path_of(i), missing: false, reason }
    }

    /// blake3 over every image's key, landmarks and content (in parallel), and the images that
    /// could not be read, in list order. Paths are not hashed: moving the data keeps the cache.
    pub fn fingerprint(&self) -> ([u8; 32], Vec<BadImage>) {
        let per_item: Vec<std::result::Result<[u8; 32], BadImage>> =
            (0..self.len()).into_par_iter().map(|i| self.bytes(i).map(|b| *blake3::hash(&b).as_bytes())).collect();
        let mut h = blake3::Hasher::new();
        h.update(b"aifr-eval image list v1\0");
        let mut bad = Vec::new();
        for (item, r) in self.items.iter().zip(per_item) {
            h.update(item.key.as_bytes()).update(b"\0");
            if let Some(lm) = &item.landmarks {
                for v in lm.iter().flatten() {
                    h.update(&v.to_le_bytes());
                }
            }
            match r {
                Ok(d) => h.update(&d),
                Err(b) => {
                    bad.push(b);
                    h.update(b"<unreadable>")
                }
            };
        }
        (*h.finalize().as_bytes(), bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_list_reads_and_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("A")).unwrap();
        std::fs::write(dir.path().join("A/A_0001.jpg"), b"xyz").unwrap();
        let keys = vec!["A/A_0001.jpg".to_string(), "A/A_0002.jpg".to_string()];
        let list = ImageList::from_dir(dir.path(), &keys);
        assert_eq!(&*list.bytes(0).unwrap(), b"xyz");
        let (fp, bad) = list.fingerprint();
        assert_eq!(bad.len(), 1);
        assert_eq!((bad[0].index, bad[0].missing), (1, true));
        let e = bad[0].clone().into_error();
        assert_eq!(e.exit_code(), crate::error::exit::MISSING_INPUT);
        assert!(e.to_string().contains("A/A_0002.jpg"), "{e}");
        // Content changes the fingerprint.
        std::fs::write(dir.path().join("A/A_0001.jpg"), b"xyw").unwrap();
        assert_ne!(ImageList::from_dir(dir.path(), &keys).fingerprint().0, fp);
    }
}

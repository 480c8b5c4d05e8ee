//! CACD-VS, the verification subset of the Cross-Age Celebrity Dataset (CACD, Chen et al.,
//! ECCV 2014; release page bcsiriuschen.github.io/CARC): 2,000 positive and 2,000 negative
//! pairs in 10 folds, shipped as one directory of 8,000 images and nothing else.
//!
//! The release's description (as quoted by public code that loads it): "The images are named as
//! pairId_0.jpg and pairId_1.jpg for each pair. First 400 image pairs [(0000_0.jpg,0000_1.jpg) -
//! (0399_0.jpg,0399_1.jpg)] are first fold, in which first 200 image pairs (0000 - 0199) are
//! positive pairs and second 200 image pairs (0200 - 0399) are negative pairs. The second fold
//! contains image pair (0400 - 0799) and so on. Identities in each fold are mutually exclusive."
//! So the layout is the protocol: pair ids 0..N−1, fold = id / (N/10), positive iff
//! id mod (N/10) < N/20. The names carry neither identity nor age (CACD's ages are in its
//! `celebrity2000.mat`, keyed by CACD file names that CACD-VS does not keep), so a run has no
//! age-gap breakdown unless the user supplies ages (`--ages`).

use super::{Pair, PairBenchmark};
use crate::error::{Error, Result};
use std::path::Path;

pub const FOLDS: usize = 10;

/// `0123_1.jpg`.
pub fn image_key(pair: usize, side: usize) -> String {
    format!("{pair:04}_{side}.jpg")
}

/// (pair id, side) of a CACD-VS file name.
fn parse_name(name: &str) -> Option<(usize, usize)> {
    let stem = name.strip_suffix(".jpg").or_else(|| name.strip_suffix(".JPG"))?;
    let (id, side) = stem.split_once('_')?;
    if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let side = match side {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    Some((id.parse().ok()?, side))
}

/// Reads the image directory of a CACD-VS release.
pub fn read_dir(dir: &Path) -> Result<PairBenchmark> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::read(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    from_names(&names, dir)
}

/// The benchmark from the file names of the directory (other files than images are ignored).
pub fn from_names(names: &[String], dir: &Path) -> Result<PairBenchmark> {
    let mut sides: Vec<[bool; 2]> = Vec::new();
    for name in names {
        let lower = name.to_ascii_lowercase();
        if ![".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e)) {
            continue;
        }
        let (id, side) = parse_name(name).ok_or_else(|| {
            Error::data(
                dir,
                format!("image '{name}' is not named like CACD-VS's '<pair id>_<0|1>.jpg' (e.g. 0123_1.jpg)"),
            )
        })?;
        if id >= 1_000_000 {
            return Err(Error::data(dir, format!("image '{name}': pair id {id} is implausibly large")));
        }
        if sides.len() <= id {
            sides.resize(id + 1, [false; 2]);
        }
        sides[id][side] = true;
    }
    let n = sides.len();
    if n == 0 {
        return Err(Error::data(dir, "no CACD-VS images (0000_0.jpg, 0000_1.jpg, …) in this directory"));
    }
    if let Some((id, s)) = sides.iter().enumerate().find(|(_, s)| !(s[0] && s[1])) {
        let missing: Vec<String> = (0..2).filter(|&k| !s[k]).map(|k| image_key(id, k)).collect();
        return Err(Error::data(
            dir,
            format!(
                "pair ids run 0..{}, but {} is missing (every pair id needs _0 and _1)",
                n - 1,
                missing.join(" and ")
            ),
        ));
    }
    if n % (2 * FOLDS) != 0 {
        return Err(Error::data(
            dir,
            format!(
                "{n} pairs cannot form {FOLDS} folds of equally many positive and negative pairs (the release has 4,000)"
            ),
        ));
    }
    let per_fold = n / FOLDS;
    let pairs = (0..n)
        .map(|id| Pair {
            a: 2 * id as u32,
            b: 2 * id as u32 + 1,
            genuine: id % per_fold < per_fold / 2,
            fold: (id / per_fold) as u32,
        })
        .collect();
    Ok(PairBenchmark {
        groups: None,
        keys: (0..n).flat_map(|id| [image_key(id, 0), image_key(id, 1)]).collect(),
        pairs,
        folds: FOLDS,
        // Pair ids are anonymous: no identity links two pairs.
        identities: None,
        ages: None,
        keys_are_row_order: false,
        sources: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).flat_map(|i| [image_key(i, 0), image_key(i, 1)]).collect()
    }

    #[test]
    fn folds_and_labels_follow_the_release() {
        let mut list = names(4000);
        list.push("Thumbs.db".into());
        let b = from_names(&list, Path::new("CACD_VS")).unwrap();
        assert_eq!(b.counts().genuine, 2000);
        assert_eq!(b.keys[2 * 399 + 1], "0399_1.jpg");
        let p = |id: usize| (b.pairs[id].fold, b.pairs[id].genuine);
        assert_eq!(
            [p(0), p(199), p(200), p(399), p(400), p(3999)],
            [(0, true), (0, true), (0, false), (0, false), (1, true), (9, false)]
        );
    }

    #[test]
    fn bad_listings() {
        let d = Path::new("CACD_VS");
        let mut list = names(40);
        list.retain(|n| n != "0017_1.jpg");
        let e = from_names(&list, d).unwrap_err().to_string();
        assert!(e.contains("0017_1.jpg is missing"), "{e}");
        let e = from_names(&names(30), d).unwrap_err().to_string();
        assert!(e.contains("30 pairs cannot form 10 folds"), "{e}");
        let mut list = names(20);
        list.push("photo.jpg".into());
        assert!(from_names(&list, d).unwrap_err().to_string().contains("'photo.jpg' is not named like"));
        assert!(from_names(&[], d).unwrap_err().to_string().contains("no CACD-VS images"));
    }
}

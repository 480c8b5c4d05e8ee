//! RFW (Racial Faces in the Wild) in its release layout: four subsets, each with its own pairs
//! list in LFW's line format and no header, `test/txts/<Subset>/<Subset>_pairs.txt`, and images
//! `test/data/<Subset>/<person>/<person>_<NNNN>.jpg`; every list is 10 folds × 300 matched + 300
//! mismatched pairs in contiguous blocks of 600 lines.
//!
//! All four subsets are read into one benchmark: keys `<Subset>/<person>/<person>_<NNNN>.jpg`
//! (relative to `test/data`), identities `<Subset>/<person>`, fold i = fold i of every subset, and
//! the subset of each image as the benchmark's groups (attribute `subset`), so that one run gives
//! each subset's own 10-fold accuracy and the differentials at one global threshold.

use super::lfw::pair_line;
use super::{contiguous_fold, KeyGroups, KeyTable, Pair, PairBenchmark};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The subsets, in the order results list them.
pub const SUBSETS: [&str; 4] = ["African", "Asian", "Caucasian", "Indian"];

/// The attribute RFW's groups are reported by.
pub const ATTRIBUTE: &str = "subset";

/// The pairs list of `subset` under the `txts` directory.
pub fn pairs_path(txts: &Path, subset: &str) -> PathBuf {
    txts.join(subset).join(format!("{subset}_pairs.txt"))
}

/// Reads the four subsets' pairs lists under `txts` (`test/txts`), each cut into `folds`
/// contiguous folds.
pub fn read_release(txts: &Path, folds: usize) -> Result<PairBenchmark> {
    let missing: Vec<String> =
        SUBSETS.iter().map(|s| pairs_path(txts, s)).filter(|p| !p.is_file()).map(|p| p.display().to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::Missing(format!(
            "RFW needs the pairs list of each of its four subsets ({}); missing: {}",
            SUBSETS.join(", "),
            missing.join(", ")
        )));
    }
    let mut table = KeyTable::default();
    let mut pairs = Vec::new();
    let mut sources = Vec::new();
    for subset in SUBSETS {
        let path = pairs_path(txts, subset);
        let text = crate::io::read_text(&path, crate::io::Role::PROTOCOL_TEXT)?;
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        if lines.len() < folds {
            return Err(Error::parse(
                &path,
                text.lines().count().max(1),
                format!("{} pairs cannot be cut into {folds} folds (RFW lists hold 10 × 600)", lines.len()),
            ));
        }
        let n = lines.len();
        for (i, &(ln, line)) in lines.iter().enumerate() {
            let fold = contiguous_fold(i, n, folds) as u32;
            let (a, b, genuine) = pair_line(&path, ln, line, None, fold + 1)?;
            let (a, b) = (table.intern(format!("{subset}/{a}")), table.intern(format!("{subset}/{b}")));
            pairs.push(Pair { a, b, genuine, fold });
        }
        sources.push(path);
    }
    // Key `<Subset>/<person>/<person>_<nnnn>.jpg`: the identity is the first two components.
    let (keys, identities) = table.into_keys_and_identities(|k| match k.match_indices('/').nth(1) {
        Some((i, _)) => &k[..i],
        None => k,
    });
    // Every key starts with its subset's name.
    let subset_of_key =
        keys.iter().map(|k| SUBSETS.iter().position(|s| k.split('/').next() == Some(*s)).unwrap_or(0) as u32).collect();
    Ok(PairBenchmark {
        keys,
        pairs,
        folds,
        identities: Some(identities),
        ages: None,
        groups: Some(KeyGroups {
            attribute: ATTRIBUTE.into(),
            names: SUBSETS.iter().map(|s| s.to_string()).collect(),
            of_key: subset_of_key,
            per_group_accuracy: true,
        }),
        keys_are_row_order: false,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(dir: &Path, lines: &[&str]) {
        for s in SUBSETS {
            let p = pairs_path(dir, s);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, lines.join("\n") + "\n").unwrap();
        }
    }

    #[test]
    fn four_subsets_become_one_grouped_benchmark() {
        let dir = tempfile::tempdir().unwrap();
        release(dir.path(), &["m.01\t1\t2", "m.01\t1\tm.02\t3", "m.03\t2\t4", "m.03\t1\tm.02\t1"]);
        let b = read_release(dir.path(), 2).unwrap();
        assert_eq!(b.pairs.len(), 16);
        assert_eq!(b.keys[0], "African/m.01/m.01_0001.jpg");
        assert_eq!(b.pairs[2], Pair { a: 3, b: 4, genuine: true, fold: 1 });
        let g = b.groups.as_ref().unwrap();
        assert_eq!(g.of_key.len(), b.keys.len());
        assert_eq!(g.names[g.of_key[b.keys.len() - 1] as usize], "Indian");
        // The same person id in two subsets is two identities (the subset is part of the key).
        let ids = b.identities.unwrap();
        assert_ne!(ids[0], ids[6]);
        assert_eq!(ids[0], ids[1]);
        assert_eq!(b.sources.len(), 4);
    }

    #[test]
    fn bad_lists_are_refused_with_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        release(dir.path(), &["m.01\t1\t2", "m.01\t1\tm.02"]);
        let two = dir.path().join("two");
        release(&two, &["m.01\t1\t2", "m.01\t1\tm.02\t1\tx"]);
        let e = read_release(&two, 2).unwrap_err().to_string();
        assert!(e.contains("African_pairs.txt:2: expected a matched pair") && e.contains("found 5 fields"), "{e}");
        let e = read_release(dir.path(), 2).unwrap_err().to_string();
        assert!(e.contains("African_pairs.txt:2: image number must be a positive integer, found 'm.02'"), "{e}");
        let e = read_release(dir.path(), 10).unwrap_err().to_string();
        assert!(e.contains("cannot be cut into 10 folds"), "{e}");
        std::fs::remove_file(pairs_path(dir.path(), "Indian")).unwrap();
        let e = read_release(dir.path(), 2).unwrap_err().to_string();
        assert!(e.contains("missing:") && e.contains("Indian_pairs.txt"), "{e}");
    }
}

//! CALFW / CPLFW pair lists: two lines per pair, `<image_name> <label>`; positive pairs (label
//! != 0) first, then negative pairs (label 0). Fold k takes the k-th contiguous block of the
//! positives and of the negatives (300 + 300 for the official 6,000-pair files).

use super::{contiguous_fold, KeyTable, Pair, PairBenchmark};
use crate::error::{Error, Result};
use std::path::Path;

pub const FOLDS: usize = 10;

pub fn read_pairs(path: &Path) -> Result<PairBenchmark> {
    let text = crate::io::read_text(path, crate::io::Role::PROTOCOL_TEXT)?;
    parse_pairs(&text, path)
}

pub fn parse_pairs(text: &str, path: &Path) -> Result<PairBenchmark> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (name, label) = match line.rsplit_once(|c: char| c.is_whitespace()) {
            Some((n, l)) if !n.trim().is_empty() => (n.trim(), l),
            _ => {
                return Err(Error::parse(
                    path,
                    i + 1,
                    format!("expected '<image_name> <label>', found '{}'", crate::io::excerpt(line)),
                ))
            }
        };
        let label: i64 = label.parse().map_err(|_| {
            Error::parse(path, i + 1, format!("label must be an integer, found '{}'", crate::io::excerpt(label)))
        })?;
        entries.push((i + 1, name.to_string(), label != 0));
    }
    if entries.is_empty() || entries.len() % 2 != 0 {
        return Err(Error::data(
            path,
            format!("expected an even, non-zero number of lines (two per pair), found {}", entries.len()),
        ));
    }
    let n_pos = entries.chunks(2).take_while(|p| p[0].2).count();
    let n_pairs = entries.len() / 2;
    let n_neg = n_pairs - n_pos;
    if n_pos < FOLDS || n_neg < FOLDS {
        return Err(Error::data(
            path,
            format!("{n_pos} positive and {n_neg} negative pairs: need at least {FOLDS} of each for {FOLDS} folds"),
        ));
    }
    let mut table = KeyTable::default();
    let mut pairs = Vec::with_capacity(n_pairs);
    for (k, p) in entries.chunks(2).enumerate() {
        let genuine = k < n_pos;
        for (line, _, positive) in p {
            if *positive != genuine {
                let want = if genuine {
                    "a non-zero label (positive pairs come first)"
                } else {
                    "label 0 (negative pairs follow the positives)"
                };
                return Err(Error::parse(path, *line, format!("pair {} expects {want}", k + 1)));
            }
        }
        let fold = if genuine { contiguous_fold(k, n_pos, FOLDS) } else { contiguous_fold(k - n_pos, n_neg, FOLDS) };
        let identity = |k: &str| k.rsplit_once('_').map_or(k, |(identity, _)| identity).to_string();
        if p[0].1 == p[1].1 {
            return Err(Error::parse(
                path,
                p[1].0,
                format!("pair {} is image '{}' with itself", k + 1, crate::io::excerpt(&p[0].1)),
            ));
        }
        if !genuine && identity(&p[0].1) == identity(&p[1].1) {
            return Err(Error::parse(
                path,
                p[1].0,
                format!(
                    "negative pair {} names one person twice ('{}')",
                    k + 1,
                    crate::io::excerpt(&identity(&p[0].1))
                ),
            ));
        }
        let (a, b) = (table.intern(p[0].1.clone()), table.intern(p[1].1.clone()));
        pairs.push(Pair { a, b, genuine, fold: fold as u32 });
    }
    // Image names are `<identity>_<nnnn>.jpg`.
    let (keys, identities) = table.into_keys_and_identities(|k| k.rsplit_once('_').map_or(k, |(identity, _)| identity));
    Ok(PairBenchmark {
        groups: None,
        keys,
        identities: Some(identities),
        ages: None,
        pairs,
        folds: FOLDS,
        keys_are_row_order: false,
        sources: vec![path.to_path_buf()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(pos: usize, neg: usize) -> String {
        let mut s = String::new();
        for i in 0..pos {
            s += &format!("P{i}_0001.jpg {}\nP{i}_0002.jpg {}\n", i + 1, i + 1);
        }
        for i in 0..neg {
            s += &format!("N{i}_0001.jpg 0\nM{i}_0001.jpg 0\n");
        }
        s
    }

    #[test]
    fn folds_take_blocks_of_each_class() {
        let b = parse_pairs(&file(20, 20), Path::new("p.txt")).unwrap();
        assert_eq!(b.pairs.len(), 40);
        assert_eq!((b.pairs[0].fold, b.pairs[19].fold, b.pairs[20].fold, b.pairs[39].fold), (0, 9, 0, 9));
        assert!(b.pairs[..20].iter().all(|p| p.genuine) && b.pairs[20..].iter().all(|p| !p.genuine));
    }

    #[test]
    fn bad_files() {
        let e = parse_pairs("a.jpg 1\n", Path::new("p.txt")).unwrap_err().to_string();
        assert!(e.contains("even"), "{e}");
        let mut s = file(10, 10);
        s += "X.jpg 3\nY.jpg 3\n";
        let e = parse_pairs(&s, Path::new("p.txt")).unwrap_err().to_string();
        assert!(e.starts_with("p.txt:41: pair 21 expects label 0"), "{e}");
        let e = parse_pairs("a.jpg x\nb.jpg 1\n", Path::new("p.txt")).unwrap_err().to_string();
        assert!(e.starts_with("p.txt:1: label must be an integer"), "{e}");
    }
}

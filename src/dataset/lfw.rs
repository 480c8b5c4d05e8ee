//! LFW View 2 `pairs.txt`: header `<folds>\t<n>` (or a single `<n>` for one fold), then per fold
//! n matched lines `name\tn1\tn2` and n mismatched lines `name1\tn1\tname2\tn2`.
//! Image key: `<name>/<name>_<nnnn>.jpg`.

use super::{KeyTable, Pair, PairBenchmark};
use crate::error::{Error, Result};
use std::path::Path;

pub fn image_key(name: &str, n: u32) -> String {
    format!("{name}/{name}_{n:04}.jpg")
}

fn number(path: &Path, line: usize, field: &str, what: &str) -> Result<u32> {
    match field.parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(Error::parse(
            path,
            line,
            format!("{what} must be a positive integer, found '{}'", crate::io::excerpt(field)),
        )),
    }
}

/// Room for the pairs a header promises, but no more than the file has lines for: a corrupt header
/// (`2147483647\t300`) must end in "file ends early", not in an overflow or a huge allocation.
pub(crate) fn pair_capacity(folds: u32, per_fold: u32, text: &str) -> usize {
    let promised = u64::from(folds).saturating_mul(u64::from(per_fold)).saturating_mul(2);
    promised.min(text.lines().count() as u64) as usize
}

/// One line of a pairs list: `name n1 n2` (matched) or `name1 n1 name2 n2` (mismatched), as the
/// two image keys and whether it is matched. `expect` is the kind the position requires (LFW's
/// blocks), None when the field count decides (RFW's lists); `fold` (1-based) is for messages.
pub(crate) fn pair_line(
    path: &Path,
    ln: usize,
    line: &str,
    expect: Option<bool>,
    fold: u32,
) -> Result<(String, String, bool)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match (expect, f.as_slice()) {
        (Some(true) | None, [name, n1, n2]) => {
            let (i1, i2) = (number(path, ln, n1, "image number")?, number(path, ln, n2, "image number")?);
            if i1 == i2 {
                return Err(Error::parse(
                    path,
                    ln,
                    format!("matched pair of image {i1} of '{}' with itself", crate::io::excerpt(name)),
                ));
            }
            Ok((image_key(name, i1), image_key(name, i2), true))
        }
        (Some(false) | None, [n1, i1, n2, i2]) => {
            if n1 == n2 {
                return Err(Error::parse(
                    path,
                    ln,
                    format!("mismatched pair names one person twice ('{}')", crate::io::excerpt(n1)),
                ));
            }
            Ok((
                image_key(n1, number(path, ln, i1, "image number")?),
                image_key(n2, number(path, ln, i2, "image number")?),
                false,
            ))
        }
        _ => {
            let want = match expect {
                Some(true) => "a matched pair 'name n1 n2'",
                Some(false) => "a mismatched pair 'name1 n1 name2 n2'",
                None => "a matched pair 'name n1 n2' or a mismatched pair 'name1 n1 name2 n2'",
            };
            Err(Error::parse(
                path,
                ln,
                format!("expected {want} (fold {fold}), found {} fields: '{}'", f.len(), crate::io::excerpt(line)),
            ))
        }
    }
}

pub fn read_pairs(path: &Path) -> Result<PairBenchmark> {
    let text = crate::io::read_text(path, crate::io::Role::PROTOCOL_TEXT)?;
    parse_pairs(&text, path)
}

pub fn parse_pairs(text: &str, path: &Path) -> Result<PairBenchmark> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let (_, header) =
        lines.next().ok_or_else(|| Error::parse(path, 1, "empty file: expected a header like '10\\t300'"))?;
    let head: Vec<&str> = header.split_whitespace().collect();
    let (folds, per_fold) = match head.as_slice() {
        [f, n] => (number(path, 1, f, "number of folds")?, number(path, 1, n, "pairs per fold")?),
        [n] => (1, number(path, 1, n, "pairs per fold")?),
        _ => {
            return Err(Error::parse(
                path,
                1,
                format!("expected a header '<folds>\\t<pairs per fold>', found '{}'", crate::io::excerpt(header)),
            ))
        }
    };
    let mut table = KeyTable::default();
    let mut pairs = Vec::with_capacity(pair_capacity(folds, per_fold, text));
    for fold in 0..folds {
        for genuine in [true, false] {
            for _ in 0..per_fold {
                let Some((ln, line)) = lines.next() else {
                    return Err(Error::parse(
                        path,
                        text.lines().count() + 1,
                        format!(
                            "file ends early: header promises {folds} folds × {per_fold} matched + {per_fold} mismatched pairs, found {} pairs",
                            pairs.len()
                        ),
                    ));
                };
                let (a, b, _) = pair_line(path, ln, line, Some(genuine), fold + 1)?;
                let (a, b) = (table.intern(a), table.intern(b));
                pairs.push(Pair { a, b, genuine, fold });
            }
        }
    }
    if let Some((ln, line)) = lines.find(|(_, l)| !l.trim().is_empty()) {
        return Err(Error::parse(
            path,
            ln,
            format!("unexpected extra line after {} pairs: '{}'", pairs.len(), crate::io::excerpt(line)),
        ));
    }
    // Key `<name>/<name>_<nnnn>.jpg`: the identity is the directory.
    let (keys, identities) = table.into_keys_and_identities(|k| k.split('/').next().unwrap_or(k));
    Ok(PairBenchmark {
        groups: None,
        keys,
        identities: Some(identities),
        ages: None,
        pairs,
        folds: folds as usize,
        keys_are_row_order: false,
        sources: vec![path.to_path_buf()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PairBenchmark> {
        parse_pairs(text, Path::new("pairs.txt"))
    }

    #[test]
    fn small_file() {
        let b = parse("2\t1\nA\t1\t2\nA\t1\tB\t3\nC\t1\t2\nC\t2\tD\t1\n").unwrap();
        assert_eq!(b.pairs.len(), 4);
        assert_eq!(b.keys[0], "A/A_0001.jpg");
        assert_eq!(b.keys.len(), 6);
        assert_eq!(b.pairs[3], Pair { a: 4, b: 5, genuine: false, fold: 1 });
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse("1\t2\nA\t1\t2\nA\tx\t3\n").unwrap_err().to_string();
        assert_eq!(e, "pairs.txt:3: image number must be a positive integer, found 'x'");
        let e = parse("1\t1\nA\t1\t2\nA\t1\n").unwrap_err().to_string();
        assert!(e.starts_with("pairs.txt:3: expected a mismatched pair"), "{e}");
        let e = parse("1\t2\nA\t1\t2\n").unwrap_err().to_string();
        assert!(e.contains("file ends early"), "{e}");
        let e = parse("").unwrap_err().to_string();
        assert!(e.contains("empty file"), "{e}");
        let e = parse("1\t1\nA\t1\t2\nA\t1\tB\t1\nextra\n").unwrap_err().to_string();
        assert!(e.starts_with("pairs.txt:4: unexpected extra line"), "{e}");
        let e = parse("1\t1\nA\t2\t2\nA\t1\tB\t1\n").unwrap_err().to_string();
        assert_eq!(e, "pairs.txt:2: matched pair of image 2 of 'A' with itself");
        let e = parse("1\t1\nA\t1\t2\nA\t1\tA\t3\n").unwrap_err().to_string();
        assert_eq!(e, "pairs.txt:3: mismatched pair names one person twice ('A')");
        let e = parse(&format!("1\t1\nA\t1\t{}\n", "9".repeat(5000))).unwrap_err().to_string();
        assert!(e.len() < 400 && e.ends_with("…(4800 more bytes)'"), "{e}");
        // A header whose product overflows, found by tests/it/fuzz.rs.
        let e = parse("2\t2147483647\nA\t1\t2\n").unwrap_err().to_string();
        assert!(e.starts_with("pairs.txt:3: file ends early"), "{e}");
        let e = parse("ten\t300\n").unwrap_err().to_string();
        assert!(e.starts_with("pairs.txt:1: number of folds"), "{e}");
    }
}

//! AgeDB with the official protocol files (`01_FINAL_protocol_5_years.mat`,
//! `02_FINAL_protocol_10_years.mat`, `03_FINAL_protocol_20_years.mat`,
//! `04_FINAL_protocol_30_years.mat`): 10 splits × 600 pairs (300 same, 300 different).
//!
//! What the files hold. MathWorks Level-5 MAT-files (read by [`super::mat5`]). The files are not
//! public; their structure is taken from the two public programs that read them with
//! `scipy.io.loadmat` (defaults: `squeeze_me=False`, `struct_as_record=True`):
//! * insightface's `src/data/agedb2pack.py` (deepinsight/insightface, the script that made
//!   `agedb_30.bin`): `split = mat['splits'][i][0][0][0][0]` has shape (2, 600); the image of
//!   row r, column c is `item = split[r][c][0][0]`, its file name (no extension, in
//!   `03_Protocol_Images/`) `item[0][0]` and its age `int(item[1])`;
//! * a public AgeDB→`pairs.txt` converter: `fold = mat['splits'][i][0][0][0]`,
//!   `fold[0][0, m][0][0][0][0]` / `fold[0][1, m]…` are the two names of pair m and
//!   `fold[1][0][m]` its label, 1 (same) or −1 (different).
//!
//! With SciPy's conventions that is: variable `splits`, a 10×1 cell array; cell i a 1×1 struct
//! whose first field is a 2×600 cell array (row 1 and row 2 = the two images of each pair, one
//! pair per column) and whose second field is a 1×600 double array of labels; each image a 1×1
//! struct whose first field is its file name (char, without `.jpg`) and whose second its age
//! (a number). The field names are in neither program (both index by position), so this
//! adapter finds the fields by kind in field order: the first cell-array field holds the pairs,
//! the first numeric field the labels; in an image struct the first char field is the name, the
//! first numeric field the age. Indices in messages are MATLAB's (1-based, `splits{3}`).
//!
//! Keys are the image file names (`<name>.jpg`). Ages come from the file; without them, from
//! the AgeDB file-name convention `<id>_<name>_<age>_<gender>.jpg`. Identities: the `<name>`
//! field when every key follows that convention, otherwise the images linked by same-labelled
//! pairs (connected components), which never joins two people.

use super::mat5::{self, MatFile, Value};
use super::{KeyTable, Pair, PairBenchmark};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// The variable that holds the splits.
pub const VARIABLE: &str = "splits";

/// Where an image is first referenced: split, pair (both 0-based) and side (0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub split: usize,
    pub pair: usize,
    pub side: usize,
}

impl Location {
    fn describe(&self) -> String {
        format!("{VARIABLE}{{{}}}, pair {}, {} image", self.split + 1, self.pair + 1, ["first", "second"][self.side])
    }
}

/// The image key of a protocol name: the name plus `.jpg` unless it already has an image extension.
pub fn image_key(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e)) {
        name.to_string()
    } else {
        format!("{name}.jpg")
    }
}

/// A protocol read from a file: the benchmark and where each key is first used.
#[derive(Debug, Clone)]
pub struct AgedbProtocol {
    pub bench: PairBenchmark,
    pub first_use: Vec<Location>,
}

/// Reads a protocol `.mat`; with `images`, every referenced image must exist there.
pub fn read_protocol(path: &Path, images: Option<&Path>) -> Result<PairBenchmark> {
    let protocol = from_matfile(&mat5::read(path)?, path)?;
    if let Some(dir) = images {
        check_images(&protocol, path, dir)?;
    }
    Ok(protocol.bench)
}

/// Every referenced image must be a file in `dir`; all missing ones are reported together.
pub fn check_images(protocol: &AgedbProtocol, path: &Path, dir: &Path) -> Result<()> {
    let missing: Vec<usize> =
        (0..protocol.bench.keys.len()).filter(|&k| !dir.join(&protocol.bench.keys[k]).is_file()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = missing
        .iter()
        .take(3)
        .map(|&k| format!("{}: '{}'", protocol.first_use[k].describe(), protocol.bench.keys[k]))
        .collect();
    Err(Error::Missing(format!(
        "{}: {} of the {} images its pairs reference are not in {}; first: {}",
        path.display(),
        missing.len(),
        protocol.bench.keys.len(),
        dir.display(),
        shown.join("; ")
    )))
}

struct Image {
    name: String,
    age: Option<u32>,
}

/// The fields of a 1×1 struct, or of element `i` of a cell array holding one.
fn fields_of(v: &Value) -> Option<(&[String], &[Value])> {
    match v {
        Value::Struct { fields, items, .. } if items.len() == 1 => Some((fields, &items[0])),
        Value::Cell { items, .. } if items.len() == 1 => fields_of(&items[0]),
        _ => None,
    }
}

fn first_field<'a>(
    fields: &'a [String],
    values: &'a [Value],
    kind: fn(&Value) -> bool,
) -> Option<(&'a str, &'a Value)> {
    fields.iter().zip(values).find(|(_, v)| kind(v)).map(|(f, v)| (f.as_str(), v))
}

fn field_list(fields: &[String], values: &[Value]) -> String {
    fields.iter().zip(values).map(|(f, v)| format!("{f} ({})", v.describe())).collect::<Vec<_>>().join(", ")
}

fn image(v: &Value, place: &str, path: &Path) -> Result<Image> {
    if let Some(name) = v.as_text() {
        return Ok(Image { name, age: None });
    }
    let Some((fields, values)) = fields_of(v) else {
        return Err(Error::data(
            path,
            format!(
                "{place}: expected a 1×1 struct with the image's name (char) and age (number), found {}",
                v.describe()
            ),
        ));
    };
    let is_char = |v: &Value| matches!(v, Value::Char { .. });
    let is_num = |v: &Value| matches!(v, Value::Numeric { .. });
    let Some((_, name)) = first_field(fields, values, is_char) else {
        return Err(Error::data(
            path,
            format!(
                "{place}: the image struct has no char field for the file name; fields: {}",
                field_list(fields, values)
            ),
        ));
    };
    let name = name.as_text().filter(|n| !n.trim().is_empty()).ok_or_else(|| {
        Error::data(
            path,
            format!("{place}: the image name must be one non-empty line of text, found {}", name.describe()),
        )
    })?;
    let age = match first_field(fields, values, is_num) {
        None => None,
        Some((field, a)) => match a.as_scalar() {
            Some(x) if x.fract() == 0.0 && (0.0..=130.0).contains(&x) => Some(x as u32),
            _ => {
                return Err(Error::data(
                    path,
                    format!(
                        "{place}.{field}: the age of '{name}' must be a whole number of years 0..130, found {}",
                        a.describe()
                    ),
                ))
            }
        },
    };
    Ok(Image { name: name.trim().to_string(), age })
}

/// The pairs and labels of one split.
fn split_pairs<'a>(v: &'a Value, place: &str, path: &Path) -> Result<(&'a str, &'a [Value], usize, &'a [f64])> {
    let expect = "a struct with a 2×N cell array of images (one pair per column) and a 1×N array of labels (1 same, −1 different)";
    let Some((fields, values)) = fields_of(v) else {
        return Err(Error::data(path, format!("{place}: expected {expect}, found {}", v.describe())));
    };
    let pairs = first_field(fields, values, |v| matches!(v, Value::Cell { .. }));
    let labels = first_field(fields, values, |v| matches!(v, Value::Numeric { .. }));
    let (Some((pf, Value::Cell { dims, items })), Some((lf, Value::Numeric { dims: label_dims, data, .. }))) =
        (pairs, labels)
    else {
        return Err(Error::data(
            path,
            format!("{place}: expected {expect}; its fields: {}", field_list(fields, values)),
        ));
    };
    let n = match dims.as_slice() {
        [2, n] => *n,
        _ => {
            return Err(Error::data(
                path,
                format!(
                    "{place}.{pf}: expected a 2×N cell array (two images per pair), found {}",
                    mat5::dims_text(dims)
                ),
            ))
        }
    };
    // Labels are one row (or column): a matrix would be read column-major and misalign with pairs.
    if !matches!(label_dims.as_slice(), [1, _] | [_, 1]) {
        return Err(Error::data(
            path,
            format!("{place}.{lf}: expected a 1×N array of labels, found {}", mat5::dims_text(label_dims)),
        ));
    }
    if data.len() != n {
        return Err(Error::data(path, format!("{place}: {n} pairs but {} labels", data.len())));
    }
    Ok((pf, items, n, data))
}

/// The benchmark a protocol file describes (see the module documentation for the structure).
pub fn from_matfile(file: &MatFile, path: &Path) -> Result<AgedbProtocol> {
    let Some(splits) = file.get(VARIABLE) else {
        return Err(Error::data(
            path,
            format!(
                "no variable '{VARIABLE}' (AgeDB protocol files keep their pairs there); variables in the file: {}",
                if file.variables.is_empty() { "none".to_string() } else { file.names().join(", ") }
            ),
        ));
    };
    let split_values: Vec<Value> = match splits {
        Value::Cell { items, .. } => items.clone(),
        // A struct array with the split fields is read the same way.
        Value::Struct { fields, items, .. } => items
            .iter()
            .map(|row| Value::Struct { dims: vec![1, 1], fields: fields.clone(), items: vec![row.clone()] })
            .collect(),
        other => {
            return Err(Error::data(
                path,
                format!("'{VARIABLE}' must be a cell array with one struct per split, found {}", other.describe()),
            ))
        }
    };
    if split_values.len() < 2 {
        return Err(Error::data(
            path,
            format!("'{VARIABLE}' has {} split(s); k-fold accuracy needs at least 2", split_values.len()),
        ));
    }
    let mut table = KeyTable::default();
    let mut first_use: Vec<Location> = Vec::new();
    let mut ages: HashMap<u32, (u32, Location)> = HashMap::new();
    let mut all_aged = true;
    let mut pairs = Vec::new();
    for (s, split) in split_values.iter().enumerate() {
        let place = format!("{VARIABLE}{{{}}}", s + 1);
        let (pf, items, n, labels) = split_pairs(split, &place, path)?;
        for p in 0..n {
            let x = labels[p];
            if x != 1.0 && x != -1.0 {
                return Err(Error::data(
                    path,
                    format!("{place}: label {x} of pair {} is neither 1 (same) nor -1 (different)", p + 1),
                ));
            }
            let genuine = x == 1.0;
            let mut ends = [0u32; 2];
            for side in 0..2 {
                // Column-major: element (side, p) of the 2×N cell array.
                let img = image(&items[p * 2 + side], &format!("{place}.{pf}{{{},{}}}", side + 1, p + 1), path)?;
                let key = image_key(&img.name);
                let k = table.intern(key.clone());
                let here = Location { split: s, pair: p, side };
                if k as usize == first_use.len() {
                    first_use.push(here);
                }
                match img.age {
                    None => all_aged = false,
                    Some(a) => match ages.get(&k) {
                        Some((b, there)) if *b != a => {
                            return Err(Error::data(
                                path,
                                format!("'{key}' has age {a} at {} but {b} at {}", here.describe(), there.describe()),
                            ))
                        }
                        Some(_) => {}
                        None => {
                            ages.insert(k, (a, here));
                        }
                    },
                }
                ends[side] = k;
            }
            pairs.push(Pair { a: ends[0], b: ends[1], genuine, fold: s as u32 });
        }
    }
    let n_keys = first_use.len();
    let ages =
        if all_aged { Some((0..n_keys as u32).map(|k| ages.get(&k).map_or(0, |(a, _)| *a)).collect()) } else { None };
    let identities = identities(&table.keys, &pairs);
    let keys = table.keys;
    Ok(AgedbProtocol {
        bench: PairBenchmark {
            groups: None,
            keys,
            pairs,
            folds: split_values.len(),
            identities: Some(identities),
            ages,
            keys_are_row_order: false,
            sources: vec![path.to_path_buf()],
        },
        first_use,
    })
}

/// `<name>` of an AgeDB file name `<id>_<name>_<age>_<gender>.<ext>`.
fn convention_name(key: &str) -> Option<&str> {
    let stem = key.rsplit_once('.').map_or(key, |(s, _)| s);
    let f: Vec<&str> = stem.split('_').collect();
    let ok = f.len() >= 4
        && f[0].chars().all(|c| c.is_ascii_digit())
        && f[f.len() - 2].chars().all(|c| c.is_ascii_digit())
        && matches!(f[f.len() - 1], "m" | "f" | "M" | "F");
    ok.then(|| {
        let start = f[0].len() + 1;
        let end = stem.len() - f[f.len() - 1].len() - f[f.len() - 2].len() - 2;
        &stem[start..end]
    })
}

/// Identity index per key: by file-name convention when all keys follow it, else connected
/// components of same-labelled pairs.
fn identities(keys: &[String], pairs: &[Pair]) -> Vec<u32> {
    if let Some(names) = keys.iter().map(|k| convention_name(k)).collect::<Option<Vec<&str>>>() {
        let mut index: HashMap<&str, u32> = HashMap::new();
        return names
            .iter()
            .map(|n| {
                let next = index.len() as u32;
                *index.entry(n).or_insert(next)
            })
            .collect();
    }
    let mut parent: Vec<usize> = (0..keys.len()).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for p in pairs.iter().filter(|p| p.genuine) {
        let (a, b) = (root(&mut parent, p.a as usize), root(&mut parent, p.b as usize));
        if a != b {
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut index: HashMap<usize, u32> = HashMap::new();
    (0..keys.len())
        .map(|k| {
            let r = root(&mut parent, k);
            let next = index.len() as u32;
            *index.entry(r).or_insert(next)
        })
        .collect()
}

/// One image of a synthetic protocol.
#[derive(Debug, Clone)]
pub struct ProtocolImage {
    /// File name without extension, as in the official files.
    pub name: String,
    pub age: u32,
}

/// The `splits` variable in the official structure for `splits[s] = [(first, second, same)]`.
/// The official field names are not public: these name the fields by their content.
pub fn protocol_value(splits: &[Vec<(ProtocolImage, ProtocolImage, bool)>]) -> Value {
    let image = |i: &ProtocolImage| Value::Struct {
        dims: vec![1, 1],
        fields: vec!["name".into(), "age".into()],
        items: vec![vec![Value::text(&i.name), Value::doubles(vec![1, 1], vec![i.age as f64])]],
    };
    let split = |pairs: &Vec<(ProtocolImage, ProtocolImage, bool)>| {
        let cells = pairs.iter().flat_map(|(a, b, _)| [image(a), image(b)]).collect();
        let labels = pairs.iter().map(|(_, _, same)| if *same { 1.0 } else { -1.0 }).collect();
        Value::Struct {
            dims: vec![1, 1],
            fields: vec!["pairs".into(), "labels".into()],
            items: vec![vec![
                Value::Cell { dims: vec![2, pairs.len()], items: cells },
                Value::doubles(vec![1, pairs.len()], labels),
            ]],
        }
    };
    Value::Cell { dims: vec![splits.len(), 1], items: splits.iter().map(split).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(name: &str, age: u32) -> ProtocolImage {
        ProtocolImage { name: name.into(), age }
    }

    fn two_splits() -> Vec<Vec<(ProtocolImage, ProtocolImage, bool)>> {
        vec![
            vec![
                (img("0_MariaCallas_35_f", 35), img("1_MariaCallas_40_f", 40), true),
                (img("0_MariaCallas_35_f", 35), img("7_ElvisPresley_40_m", 40), false),
            ],
            vec![
                (img("7_ElvisPresley_40_m", 40), img("9_ElvisPresley_10_m", 10), true),
                (img("3_SophiaLoren_20_f", 20), img("1_MariaCallas_40_f", 40), false),
            ],
        ]
    }

    fn parse(v: &Value) -> Result<AgedbProtocol> {
        let bytes = mat5::write(&[(VARIABLE, v)]);
        from_matfile(&mat5::parse(&bytes, Path::new("p.mat"))?, Path::new("p.mat"))
    }

    #[test]
    fn official_structure_reads() {
        let p = parse(&protocol_value(&two_splits())).unwrap();
        let b = &p.bench;
        assert_eq!(b.keys[0], "0_MariaCallas_35_f.jpg");
        assert_eq!(b.keys.len(), 5);
        assert_eq!(b.folds, 2);
        assert_eq!(b.pairs[2], Pair { a: 2, b: 3, genuine: true, fold: 1 });
        assert_eq!(b.ages.as_deref(), Some(&[35, 40, 40, 10, 20][..]));
        assert_eq!(b.identities.as_deref(), Some(&[0, 0, 1, 1, 2][..]));
        assert_eq!(p.first_use[4], Location { split: 1, pair: 1, side: 0 });
    }

    #[test]
    fn names_outside_the_convention_take_identities_from_the_pairs() {
        let mut s = two_splits();
        s[0][0].0.name = "a".into();
        let b = parse(&protocol_value(&s)).unwrap().bench;
        // "a" and MariaCallas_40 are linked by a same pair; 0_MariaCallas_35 only by a different one.
        assert_eq!(b.keys[0], "a.jpg");
        let ids = b.identities.unwrap();
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[2], ids[0]);
        assert_eq!(convention_name("12013_Sophia_Loren_71_f.jpg"), Some("Sophia_Loren"));
        assert_eq!(convention_name("Sophia_71_f.jpg"), None);
    }

    #[test]
    fn malformed_protocols_are_named_precisely() {
        let e = |v: &Value| parse(v).unwrap_err().to_string();
        let other = mat5::write(&[("x", &Value::doubles(vec![1, 1], vec![1.0]))]);
        let msg = from_matfile(&mat5::parse(&other, Path::new("p.mat")).unwrap(), Path::new("p.mat"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no variable 'splits'") && msg.contains("variables in the file: x"), "{msg}");
        let mut v = protocol_value(&two_splits());
        if let Value::Cell { items, .. } = &mut v {
            if let Value::Struct { items: row, .. } = &mut items[1] {
                row[0][1] = Value::doubles(vec![1, 2], vec![1.0, 0.0]);
            }
        }
        assert_eq!(e(&v), "p.mat: splits{2}: label 0 of pair 2 is neither 1 (same) nor -1 (different)");
        let mut v = protocol_value(&two_splits());
        if let Value::Cell { items, .. } = &mut v {
            if let Value::Struct { items: row, .. } = &mut items[0] {
                if let Value::Cell { items: cells, .. } = &mut row[0][0] {
                    cells[3] = Value::doubles(vec![1, 1], vec![3.0]);
                }
            }
        }
        let msg = e(&v);
        assert!(msg.starts_with("p.mat: splits{1}.pairs{2,2}: expected a 1×1 struct"), "{msg}");
        let mut s = two_splits();
        s[1][1].1.age = 41;
        assert!(e(&protocol_value(&s)).contains("'1_MariaCallas_40_f.jpg' has age 41 at splits{2}, pair 2"));
        assert!(e(&Value::text("x")).contains("must be a cell array"));
    }

    #[test]
    fn missing_images_are_reported_with_their_pair() {
        let dir = tempfile::tempdir().unwrap();
        let p = parse(&protocol_value(&two_splits())).unwrap();
        for k in &p.bench.keys[..4] {
            std::fs::write(dir.path().join(k), b"").unwrap();
        }
        let e = check_images(&p, Path::new("p.mat"), dir.path()).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::MISSING_INPUT);
        let msg = e.to_string();
        assert!(
            msg.contains("1 of the 5 images")
                && msg.contains("splits{2}, pair 2, first image: '3_SophiaLoren_20_f.jpg'"),
            "{msg}"
        );
        std::fs::write(dir.path().join(&p.bench.keys[4]), b"").unwrap();
        check_images(&p, Path::new("p.mat"), dir.path()).unwrap();
    }
}

//! IJB-B / IJB-C in insightface's release layout (docs/protocols.md §2.1):
//!
//! ```text
//! meta/ijbc_face_tid_mid.txt          image_name template_id media_id        (one line per crop)
//! meta/ijbc_name_5pts_score.txt       image_name x1 y1 … x5 y5 detector_score
//! meta/ijbc_template_pair_label.txt   tid1 tid2 label                        (15.7 M lines)
//! meta/ijbc_1N_gallery_G1.csv, …G2.csv, ijbc_1N_probe_mixed.csv   TEMPLATE_ID,SUBJECT_ID,… (header)
//! loose_crop/<image_name>
//! ```
//!
//! The three space-separated files are parsed with polars (multi-threaded); when polars refuses a
//! file, or its row count differs from the line count, a line-by-line parser reads it instead and
//! names the first bad line. Everything insightface silently tolerates is an error here: pairs or
//! 1:N templates unknown to the face list, duplicated rows, landmark rows that do not match the
//! face list, a template listed with two subjects.

use crate::error::{Error, Result};
use memmap2::Mmap;
use polars::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One face crop of the release, with what the image pipeline needs to align it.
#[derive(Debug, Clone, PartialEq)]
pub struct IjbImage {
    /// File name under `loose_crop/` (also the embedding key), e.g. `1.jpg`.
    pub name: String,
    /// Template ID as written in the files.
    pub template: u32,
    /// Media ID (a photo, or one video's frames).
    pub media: u32,
    /// Left eye, right eye, nose, left and right mouth corner, in loose-crop pixels.
    pub landmarks: [[f32; 2]; 5],
    /// Detector score (insightface's "faceness").
    pub score: f32,
}

/// The release's files (see `datasets.toml`); the 1:N CSVs are optional.
#[derive(Debug, Clone)]
pub struct IjbFiles {
    pub faces: PathBuf,
    pub landmarks: PathBuf,
    pub pairs: PathBuf,
    /// (gallery 1, gallery 2, mixed probes) when all three exist.
    pub one_n: Option<[PathBuf; 3]>,
}

impl IjbFiles {
    /// The files of insightface's layout under a release folder (`IJB_release/IJBC`): `prefix`
    /// `ijbc` or `ijbb`, galleries `["G1", "G2"]` or `["S1", "S2"]`, 1:N lists included.
    pub fn in_release(root: &Path, prefix: &str, galleries: [&str; 2]) -> Self {
        let m = root.join("meta");
        IjbFiles {
            faces: m.join(format!("{prefix}_face_tid_mid.txt")),
            landmarks: m.join(format!("{prefix}_name_5pts_score.txt")),
            pairs: m.join(format!("{prefix}_template_pair_label.txt")),
            one_n: Some([
                m.join(format!("{prefix}_1N_gallery_{}.csv", galleries[0])),
                m.join(format!("{prefix}_1N_gallery_{}.csv", galleries[1])),
                m.join(format!("{prefix}_1N_probe_mixed.csv")),
            ]),
        }
    }
}

/// 1:1 pairs as indices into [`IjbRelease::template_ids`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IjbPairs {
    pub t1: Vec<u32>,
    pub t2: Vec<u32>,
    pub genuine: Vec<bool>,
}

impl IjbPairs {
    pub fn len(&self) -> usize {
        self.t1.len()
    }
    pub fn is_empty(&self) -> bool {
        self.t1.is_empty()
    }
}

/// A 1:N template list (gallery or probes): distinct templates in ascending ID order, each with
/// its subject (as insightface's `np.unique(..., return_index=True)` builds them).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSet {
    /// "G1", "G2", "S1", "S2" or "probes".
    pub name: String,
    /// Indices into [`IjbRelease::template_ids`].
    pub templates: Vec<u32>,
    pub subjects: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OneN {
    pub galleries: Vec<TemplateSet>,
    pub probes: TemplateSet,
}

#[derive(Debug, Clone)]
pub struct IjbRelease {
    /// In face-list order (the order embeddings conventionally follow).
    pub images: Vec<IjbImage>,
    /// Distinct template IDs, ascending.
    pub template_ids: Vec<u32>,
    /// Index into `template_ids` of each image.
    pub image_template: Vec<u32>,
    pub pairs: IjbPairs,
    pub one_n: Option<OneN>,
    /// (role, path) of every file read, for fingerprints.
    pub sources: Vec<(String, PathBuf)>,
}

impl IjbRelease {
    /// Index of a template ID, if the face list has it.
    pub fn template_index(&self, id: u32) -> Option<u32> {
        self.template_ids.binary_search(&id).ok().map(|i| i as u32)
    }

    /// Distinct media IDs among the images.
    pub fn media_count(&self) -> usize {
        let mut m: Vec<(u32, u32)> = self.images.iter().map(|i| (i.template, i.media)).collect();
        m.sort_unstable();
        m.dedup();
        m.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Generic table reading: polars first, an exact line parser when polars cannot say what is wrong.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    /// Non-negative integer that fits u32.
    UInt,
    /// Finite f32.
    Float,
}

#[derive(Debug)]
enum Col {
    Str(Vec<String>),
    UInt(Vec<u32>),
    Float(Vec<f32>),
}

impl Col {
    fn into_str(self) -> Vec<String> {
        match self {
            Col::Str(v) => v,
            _ => Vec::new(),
        }
    }
    fn into_uint(self) -> Vec<u32> {
        match self {
            Col::UInt(v) => v,
            _ => Vec::new(),
        }
    }
    fn into_float(self) -> Vec<f32> {
        match self {
            Col::Float(v) => v,
            _ => Vec::new(),
        }
    }
}

fn map_file(path: &Path) -> Result<Option<Mmap>> {
    let (file, len) = crate::io::open_input(path, crate::io::Role::IJB_META)?;
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: read-only mapping of a protocol file nobody writes while we read it.
    unsafe { Mmap::map(&file) }.map(Some).map_err(|e| Error::read(path, e))
}

fn line_count(bytes: &[u8]) -> usize {
    let n = bytes.iter().filter(|&&b| b == b'\n').count();
    n + usize::from(bytes.last().is_some_and(|&b| b != b'\n'))
}

/// Reads a headerless table of `kinds` columns separated by `sep` (rows after `skip` header lines).
/// Row i of every column is line `skip + i + 1` of the file.
fn read_table(path: &Path, kinds: &[Kind], sep: u8, skip: usize, what: &str) -> Result<Vec<Col>> {
    let Some(map) = map_file(path)? else {
        return Err(Error::data(path, format!("the file is empty; expected {what}")));
    };
    let bytes = crate::io::strip_bom(&map);
    let lines = line_count(bytes).saturating_sub(skip);
    match read_polars(bytes, kinds, sep, skip) {
        Some(cols) if cols_len(&cols) == lines => Ok(cols),
        _ => read_lines(path, bytes, kinds, sep, skip, what),
    }
}

fn cols_len(cols: &[Col]) -> usize {
    match cols.first() {
        Some(Col::Str(v)) => v.len(),
        Some(Col::UInt(v)) => v.len(),
        Some(Col::Float(v)) => v.len(),
        None => 0,
    }
}

/// The polars fast path; `None` when polars fails or any value is missing.
fn read_polars(bytes: &[u8], kinds: &[Kind], sep: u8, skip: usize) -> Option<Vec<Col>> {
    let fields = kinds.iter().enumerate().map(|(i, k)| {
        let dtype = match k {
            Kind::Str => DataType::String,
            Kind::UInt => DataType::UInt32,
            Kind::Float => DataType::Float32,
        };
        (PlSmallStr::from(format!("c{i}")), dtype)
    });
    let schema = Schema::from_iter(fields);
    let df = CsvReadOptions::default()
        .with_has_header(false)
        .with_skip_rows(skip)
        .with_schema(Some(Arc::new(schema)))
        .with_rechunk(true)
        .with_parse_options(CsvParseOptions::default().with_separator(sep).with_quote_char(None))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .ok()?;
    df.columns()
        .iter()
        .zip(kinds)
        .map(|(c, k)| {
            if c.null_count() > 0 {
                return None;
            }
            Some(match k {
                Kind::Str => {
                    let ca = c.str().ok()?;
                    Col::Str((0..ca.len()).map(|i| ca.get(i).map(str::to_string)).collect::<Option<_>>()?)
                }
                Kind::UInt => Col::UInt(c.u32().ok()?.into_no_null_iter().collect()),
                Kind::Float => {
                    let v: Vec<f32> = c.f32().ok()?.into_no_null_iter().collect();
                    if v.iter().any(|x| !x.is_finite()) {
                        return None;
                    }
                    Col::Float(v)
                }
            })
        })
        .collect()
}

/// The exact parser: every line must have exactly `kinds.len()` fields of the right kind.
fn read_lines(path: &Path, bytes: &[u8], kinds: &[Kind], sep: u8, skip: usize, what: &str) -> Result<Vec<Col>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        Error::parse(path, line, "not UTF-8 text")
    })?;
    let mut cols: Vec<Col> = kinds
        .iter()
        .map(|k| match k {
            Kind::Str => Col::Str(Vec::new()),
            Kind::UInt => Col::UInt(Vec::new()),
            Kind::Float => Col::Float(Vec::new()),
        })
        .collect();
    let sep_name = if sep == b' ' { "space" } else { "comma" };
    for (i, line) in text.lines().enumerate().skip(skip) {
        let n = i + 1;
        let fields: Vec<&str> = line.split(sep as char).collect();
        if fields.len() != kinds.len() || line.is_empty() {
            return Err(Error::parse(
                path,
                n,
                format!(
                    "expected {what}: {} {sep_name}-separated fields, found {} in '{}'",
                    kinds.len(),
                    if line.is_empty() { 0 } else { fields.len() },
                    crate::io::excerpt(line)
                ),
            ));
        }
        for (j, (f, col)) in fields.iter().zip(cols.iter_mut()).enumerate() {
            let bad = |expected: &str| {
                Error::parse(
                    path,
                    n,
                    format!("field {} must be {expected}, found '{}' (expected {what})", j + 1, crate::io::excerpt(f)),
                )
            };
            match col {
                Col::Str(v) if !f.is_empty() => v.push(f.to_string()),
                Col::Str(_) => return Err(bad("a non-empty name")),
                Col::UInt(v) => v.push(f.parse().map_err(|_| bad("a non-negative integer below 2^32"))?),
                Col::Float(v) => {
                    v.push(f.parse::<f32>().ok().filter(|x| x.is_finite()).ok_or_else(|| bad("a finite number"))?)
                }
            }
        }
    }
    if cols_len(&cols) == 0 {
        return Err(Error::data(path, format!("no rows; expected {what}")));
    }
    Ok(cols)
}

/// Line number of row `i` of a table read by [`read_table`] with `skip` header lines.
fn line_of(row: usize, skip: usize) -> usize {
    row + skip + 1
}

// ---------------------------------------------------------------------------------------------
// The files

/// Face list: (name, template ID, media ID) per line; names must be unique.
pub fn read_faces(path: &Path) -> Result<Vec<(String, u32, u32)>> {
    let what = "'image_name template_id media_id'";
    let mut cols = read_table(path, &[Kind::Str, Kind::UInt, Kind::UInt], b' ', 0, what)?.into_iter();
    let (names, tids, mids) = (
        cols.next().map(Col::into_str).unwrap_or_default(),
        cols.next().map(Col::into_uint).unwrap_or_default(),
        cols.next().map(Col::into_uint).unwrap_or_default(),
    );
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        if let Some(first) = seen.insert(n.as_str(), i) {
            return Err(Error::parse(
                path,
                line_of(i, 0),
                format!(
                    "image '{n}' is listed again (first on line {}): each crop must appear once",
                    line_of(first, 0)
                ),
            ));
        }
    }
    drop(seen);
    Ok(names.into_iter().zip(tids).zip(mids).map(|((n, t), m)| (n, t, m)).collect())
}

/// One row of `*_name_5pts_score.txt`: image name, 5 landmarks (x, y), detector score.
pub type LandmarkRow = (String, [[f32; 2]; 5], f32);

/// Landmark list: one [`LandmarkRow`] per line.
pub fn read_landmarks(path: &Path) -> Result<Vec<LandmarkRow>> {
    let mut kinds = vec![Kind::Str];
    kinds.extend([Kind::Float; 11]);
    let what = "'image_name x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 score'";
    let mut cols = read_table(path, &kinds, b' ', 0, what)?.into_iter();
    let names = cols.next().map(Col::into_str).unwrap_or_default();
    let vals: Vec<Vec<f32>> = cols.map(Col::into_float).collect();
    // A detector score is a probability; anything else would silently reweight templates.
    if let Some(i) = vals[10].iter().position(|s| !(0.0..=1.0).contains(s)) {
        return Err(Error::parse(
            path,
            line_of(i, 0),
            format!("detector score {} of '{}' is outside [0, 1]", vals[10][i], names[i]),
        ));
    }
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let mut lm = [[0f32; 2]; 5];
            for (k, p) in lm.iter_mut().enumerate() {
                *p = [vals[2 * k][i], vals[2 * k + 1][i]];
            }
            (n, lm, vals[10][i])
        })
        .collect())
}

/// Joins the face list with the landmark list by name; every face needs exactly one landmark row
/// and every landmark row must name a face.
pub fn join_images(
    faces: Vec<(String, u32, u32)>,
    landmarks: Vec<LandmarkRow>,
    faces_path: &Path,
    landmarks_path: &Path,
) -> Result<Vec<IjbImage>> {
    let same_order = faces.len() == landmarks.len() && faces.iter().zip(&landmarks).all(|(f, l)| f.0 == l.0);
    let by_name: Option<HashMap<&str, usize>> = if same_order {
        None
    } else {
        let mut m = HashMap::with_capacity(landmarks.len());
        for (i, l) in landmarks.iter().enumerate() {
            if let Some(first) = m.insert(l.0.as_str(), i) {
                return Err(Error::parse(
                    landmarks_path,
                    line_of(i, 0),
                    format!("landmarks for '{}' are listed again (first on line {})", l.0, line_of(first, 0)),
                ));
            }
        }
        let face_names: std::collections::HashSet<&str> = faces.iter().map(|f| f.0.as_str()).collect();
        if let Some((i, l)) = landmarks.iter().enumerate().find(|(_, l)| !face_names.contains(l.0.as_str())) {
            return Err(Error::parse(
                landmarks_path,
                line_of(i, 0),
                format!("landmarks for '{}', which is not in the face list {}", l.0, faces_path.display()),
            ));
        }
        Some(m)
    };
    let mut out = Vec::with_capacity(faces.len());
    for (i, (name, template, media)) in faces.into_iter().enumerate() {
        let j = match &by_name {
            None => i,
            Some(m) => *m.get(name.as_str()).ok_or_else(|| {
                Error::parse(
                    faces_path,
                    line_of(i, 0),
                    format!("image '{name}' has no landmark row in {}", landmarks_path.display()),
                )
            })?,
        };
        let (_, lm, score) = &landmarks[j];
        out.push(IjbImage { name, template, media, landmarks: *lm, score: *score });
    }
    Ok(out)
}

/// Maps template IDs to indices (dense table when IDs are small, as in IJB; a hash map otherwise).
struct TemplateIndex<'a> {
    ids: &'a [u32],
    dense: Vec<u32>,
}

impl<'a> TemplateIndex<'a> {
    const NONE: u32 = u32::MAX;

    fn new(ids: &'a [u32]) -> Self {
        let max = ids.last().copied().unwrap_or(0) as usize;
        let dense = if max < 1 << 26 {
            let mut d = vec![Self::NONE; max + 1];
            for (i, &t) in ids.iter().enumerate() {
                d[t as usize] = i as u32;
            }
            d
        } else {
            Vec::new()
        };
        TemplateIndex { ids, dense }
    }

    fn get(&self, id: u32) -> Option<u32> {
        if self.dense.is_empty() {
            self.ids.binary_search(&id).ok().map(|i| i as u32)
        } else {
            self.dense.get(id as usize).copied().filter(|&i| i != Self::NONE)
        }
    }
}

/// The 1:1 pair list, resolved against the face list's templates.
pub fn read_pairs(path: &Path, template_ids: &[u32], faces_path: &Path) -> Result<IjbPairs> {
    let what = "'template_id_1 template_id_2 label'";
    let mut cols = read_table(path, &[Kind::UInt, Kind::UInt, Kind::UInt], b' ', 0, what)?.into_iter();
    let (a, b, label) = (
        cols.next().map(Col::into_uint).unwrap_or_default(),
        cols.next().map(Col::into_uint).unwrap_or_default(),
        cols.next().map(Col::into_uint).unwrap_or_default(),
    );
    let index = TemplateIndex::new(template_ids);
    let unknown = |row: usize, id: u32| {
        Error::parse(
            path,
            line_of(row, 0),
            format!(
                "template {id} is not in the face list {} (a template without images cannot be scored)",
                faces_path.display()
            ),
        )
    };
    let resolve = |ids: &[u32]| -> Result<Vec<u32>> {
        use rayon::prelude::*;
        let out: Vec<u32> = ids.par_iter().map(|&t| index.get(t).unwrap_or(TemplateIndex::NONE)).collect();
        match out.iter().position(|&i| i == TemplateIndex::NONE) {
            Some(row) => Err(unknown(row, ids[row])),
            None => Ok(out),
        }
    };
    // Report the first unknown template in file order, whichever column holds it.
    let (t1, t2) = match (resolve(&a), resolve(&b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e1), Err(e2)) => return Err(first_by_line(e1, e2)),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    if let Some(row) = label.iter().position(|&l| l > 1) {
        return Err(Error::parse(
            path,
            line_of(row, 0),
            format!("label must be 1 (same subject) or 0 (different), found {}", label[row]),
        ));
    }
    if let Some(row) = t1.iter().zip(&t2).position(|(x, y)| x == y) {
        return Err(Error::parse(
            path,
            line_of(row, 0),
            format!("template {} is paired with itself: a comparison needs two templates", a[row]),
        ));
    }
    check_duplicate_pairs(path, &t1, &t2, template_ids)?;
    Ok(IjbPairs { t1, t2, genuine: label.iter().map(|&l| l == 1).collect() })
}

fn first_by_line(a: Error, b: Error) -> Error {
    match (&a, &b) {
        (Error::Parse { line: la, .. }, Error::Parse { line: lb, .. }) if lb < la => b,
        _ => a,
    }
}

/// Refuses a (tid1, tid2) row that appears twice: it would be counted twice.
fn check_duplicate_pairs(path: &Path, t1: &[u32], t2: &[u32], ids: &[u32]) -> Result<()> {
    let n = ids.len() as u64;
    let key = |i: usize| t1[i] as u64 * n + t2[i] as u64;
    let found = if n * n <= 1 << 33 {
        // One bit per possible ordered pair (IJB-C: 23k² bits = 67 MB).
        let mut bits = vec![0u64; (n * n).div_ceil(64) as usize];
        (0..t1.len()).find(|&i| {
            let k = key(i);
            let (w, b) = ((k / 64) as usize, 1u64 << (k % 64));
            let dup = bits[w] & b != 0;
            bits[w] |= b;
            dup
        })
    } else {
        let mut seen = std::collections::HashSet::with_capacity(t1.len());
        (0..t1.len()).find(|&i| !seen.insert(key(i)))
    };
    match found {
        None => Ok(()),
        Some(row) => {
            let first = (0..row).find(|&i| key(i) == key(row)).unwrap_or(row);
            Err(Error::parse(
                path,
                line_of(row, 0),
                format!(
                    "pair ({}, {}) is listed again (first on line {}): each pair must appear once",
                    ids[t1[row] as usize],
                    ids[t2[row] as usize],
                    line_of(first, 0)
                ),
            ))
        }
    }
}

/// A 1:N CSV (`TEMPLATE_ID,SUBJECT_ID,…` with a header row, one row per image).
pub fn read_template_csv(path: &Path, name: &str, template_ids: &[u32], faces_path: &Path) -> Result<TemplateSet> {
    let text = crate::io::read_text(path, crate::io::Role::PROTOCOL_TEXT)?;
    let index = TemplateIndex::new(template_ids);
    let mut subject_of: HashMap<u32, (u32, usize)> = HashMap::new();
    let mut columns = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if n == 1 {
            let head = line.split(',').next().unwrap_or("").trim().to_ascii_uppercase();
            if head.parse::<u64>().is_ok() {
                return Err(Error::parse(path, n, "expected a header row (TEMPLATE_ID,SUBJECT_ID,…), found data"));
            }
            columns = line.split(',').count();
            continue;
        }
        // Every row has the header's columns: a row cut short is a file cut off mid-row.
        let found = line.split(',').count();
        if found != columns {
            return Err(Error::parse(
                path,
                n,
                format!(
                    "{found} comma-separated fields where the header has {columns} (file cut off or a malformed row): '{}'",
                    crate::io::excerpt(line)
                ),
            ));
        }
        let mut f = line.split(',');
        let mut field = |what: &str| -> Result<u32> {
            let v = f.next().unwrap_or("").trim();
            v.parse().map_err(|_| {
                Error::parse(
                    path,
                    n,
                    format!("{what} must be a non-negative integer, found '{}'", crate::io::excerpt(v)),
                )
            })
        };
        let (t, s) = (field("TEMPLATE_ID (column 1)")?, field("SUBJECT_ID (column 2)")?);
        let ti = index.get(t).ok_or_else(|| {
            Error::parse(
                path,
                n,
                format!("template {t} is not in the face list {} (a template without images)", faces_path.display()),
            )
        })?;
        match subject_of.get(&ti) {
            Some(&(s0, l0)) if s0 != s => {
                return Err(Error::parse(
                    path,
                    n,
                    format!("template {t} is listed with subject {s}, but with subject {s0} on line {l0}"),
                ))
            }
            Some(_) => {}
            None => {
                subject_of.insert(ti, (s, n));
            }
        }
    }
    if subject_of.is_empty() {
        return Err(Error::data(path, "no templates listed"));
    }
    let mut rows: Vec<(u32, u32)> = subject_of.into_iter().map(|(t, (s, _))| (t, s)).collect();
    rows.sort_unstable();
    Ok(TemplateSet {
        name: name.to_string(),
        templates: rows.iter().map(|r| r.0).collect(),
        subjects: rows.iter().map(|r| r.1).collect(),
    })
}

/// A gallery must hold one template per subject: the mate of a probe is then unique.
fn check_gallery(g: &TemplateSet, path: &Path, ids: &[u32]) -> Result<()> {
    let mut by_subject: HashMap<u32, u32> = HashMap::new();
    for (&t, &s) in g.templates.iter().zip(&g.subjects) {
        if let Some(t0) = by_subject.insert(s, t) {
            return Err(Error::data(
                path,
                format!(
                    "subject {s} has two templates ({} and {}) in gallery {}: open-set identification needs one gallery template per subject",
                    ids[t0 as usize], ids[t as usize], g.name
                ),
            ));
        }
    }
    Ok(())
}

/// Reads the whole release: face list joined with landmarks, pairs, and the 1:N lists if present.
pub fn read_release(files: &IjbFiles, gallery_names: [&str; 2]) -> Result<IjbRelease> {
    let (faces, landmarks) = rayon::join(|| read_faces(&files.faces), || read_landmarks(&files.landmarks));
    let images = join_images(faces?, landmarks?, &files.faces, &files.landmarks)?;
    let mut template_ids: Vec<u32> = images.iter().map(|i| i.template).collect();
    template_ids.sort_unstable();
    template_ids.dedup();
    let index = TemplateIndex::new(&template_ids);
    let image_template: Vec<u32> = images.iter().map(|i| index.get(i.template).unwrap_or(0)).collect();
    let pairs = read_pairs(&files.pairs, &template_ids, &files.faces)?;
    let mut sources = vec![
        ("faces".to_string(), files.faces.clone()),
        ("landmarks".to_string(), files.landmarks.clone()),
        ("pairs".to_string(), files.pairs.clone()),
    ];
    let one_n = match &files.one_n {
        None => None,
        Some([g1, g2, p]) => {
            let g1s = read_template_csv(g1, gallery_names[0], &template_ids, &files.faces)?;
            let g2s = read_template_csv(g2, gallery_names[1], &template_ids, &files.faces)?;
            check_gallery(&g1s, g1, &template_ids)?;
            check_gallery(&g2s, g2, &template_ids)?;
            let probes = read_template_csv(p, "probes", &template_ids, &files.faces)?;
            sources.push(("gallery1".into(), g1.clone()));
            sources.push(("gallery2".into(), g2.clone()));
            sources.push(("probes".into(), p.clone()));
            Some(OneN { galleries: vec![g1s, g2s], probes })
        }
    };
    Ok(IjbRelease { images, template_ids, image_template, pairs, one_n, sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn polars_and_line_parser_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "f.txt", "1.jpg 1 10\n2.jpg 1 11\n3.jpg 5 12\n");
        let fast = read_faces(&p).unwrap();
        let map = map_file(&p).unwrap().unwrap();
        let slow = read_lines(&p, &map, &[Kind::Str, Kind::UInt, Kind::UInt], b' ', 0, "x").unwrap();
        assert_eq!(slow[0].len_for_test(), 3);
        assert_eq!(fast, vec![("1.jpg".into(), 1, 10), ("2.jpg".into(), 1, 11), ("3.jpg".into(), 5, 12)]);
        // A CRLF file is not polars' idea of an integer but is read by the line parser.
        let p = write(dir.path(), "g.txt", "1.jpg 1 10\r\n2.jpg 1 11\r\n");
        assert_eq!(read_faces(&p).unwrap().len(), 2);
    }

    impl Col {
        fn len_for_test(&self) -> usize {
            cols_len(std::slice::from_ref(self))
        }
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "f.txt", "1.jpg 1 10\n2.jpg x 11\n");
        let e = read_faces(&p).unwrap_err().to_string();
        assert!(e.contains("f.txt:2:") && e.contains("non-negative integer"), "{e}");
        let p = write(dir.path(), "f.txt", "1.jpg 1 10\n\n2.jpg 1 11\n");
        let e = read_faces(&p).unwrap_err().to_string();
        assert!(e.contains("f.txt:2:") && e.contains("found 0"), "{e}");
        let p = write(dir.path(), "f.txt", "1.jpg 1 10\n1.jpg 2 11\n");
        let e = read_faces(&p).unwrap_err().to_string();
        assert!(e.contains("f.txt:2:") && e.contains("first on line 1"), "{e}");
    }

    #[test]
    fn pairs_refuse_unknown_templates_duplicates_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let faces = dir.path().join("faces.txt");
        let ids = [1u32, 5, 9];
        let p = write(dir.path(), "p.txt", "1 5 1\n1 9 0\n");
        let pairs = read_pairs(&p, &ids, &faces).unwrap();
        assert_eq!((pairs.t1, pairs.t2, pairs.genuine), (vec![0, 0], vec![1, 2], vec![true, false]));
        let p = write(dir.path(), "p.txt", "1 5 1\n7 9 0\n");
        let e = read_pairs(&p, &ids, &faces).unwrap_err().to_string();
        assert!(e.contains("p.txt:2:") && e.contains("template 7"), "{e}");
        let p = write(dir.path(), "p.txt", "1 5 1\n1 9 0\n1 5 1\n");
        let e = read_pairs(&p, &ids, &faces).unwrap_err().to_string();
        assert!(e.contains("p.txt:3:") && e.contains("first on line 1"), "{e}");
        let p = write(dir.path(), "p.txt", "1 5 2\n");
        assert!(read_pairs(&p, &ids, &faces).unwrap_err().to_string().contains("p.txt:1:"));
    }
}

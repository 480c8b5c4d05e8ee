//! Bring-your-own collection: a manifest table (CSV, TSV or Parquet, read with polars) listing
//! one image per row. Columns: `path` and `identity` (required), `age`, `landmarks` (5 points as
//! 10 numbers), `detector_score`, `group` (optional); any other column is kept as text and can
//! stratify results. Paths are relative to the dataset root and may not leave it.

use crate::error::{Error, Result};
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

/// Largest age accepted, in years.
pub const MAX_AGE: u32 = 130;

const KNOWN: [&str; 6] = ["path", "identity", "age", "landmarks", "detector_score", "group"];

/// A text column kept for stratification (`group` or an unknown extra column).
#[derive(Debug, Clone)]
pub struct TextColumn {
    pub name: String,
    /// One value per row; `None` for an empty cell.
    pub values: Vec<Option<String>>,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub source: PathBuf,
    /// Image path of each row, relative to the dataset root (also the embedding key).
    pub paths: Vec<String>,
    /// Identity index of each row into `identity_names`.
    pub identity: Vec<u32>,
    /// Identity names, in order of first appearance.
    pub identity_names: Vec<String>,
    /// Age in whole years of each row, when the manifest has an `age` column.
    pub ages: Option<Vec<u32>>,
    /// Five (x, y) landmarks per row, when given (the image pipeline aligns with them).
    pub landmarks: Option<Vec<Option<[f32; 10]>>>,
    pub detector_score: Option<Vec<Option<f64>>>,
    /// `group` first (when present), then the unknown extra columns in file order.
    pub text_columns: Vec<TextColumn>,
    /// Row numbers in messages are CSV lines (header = line 1) or Parquet rows (first = 1).
    is_csv: bool,
}

/// How a manifest file is laid out, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Tsv,
    Parquet,
}

impl TableFormat {
    pub fn of(path: &Path) -> Result<Self> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "csv" => Ok(TableFormat::Csv),
            "tsv" | "tab" | "txt" => Ok(TableFormat::Tsv),
            "parquet" | "pq" => Ok(TableFormat::Parquet),
            _ => Err(Error::Config(format!(
                "manifest {}: unknown table format '.{ext}'; use .csv (comma separated), .tsv (tab separated) or .parquet",
                path.display()
            ))),
        }
    }
}

/// An error about row `row` (0-based) of the manifest.
fn row_error(path: &Path, is_csv: bool, row: usize, msg: impl Into<String>) -> Error {
    if is_csv {
        Error::parse(path, row + 2, msg)
    } else {
        Error::data(path, format!("row {}: {}", row + 1, msg.into()))
    }
}

/// Checks that `rel` names a file inside the dataset root: relative, and no `..` leaves the root.
/// Returns a message saying why not.
pub fn check_relative(rel: &str) -> std::result::Result<(), String> {
    if rel.is_empty() {
        return Err("empty path".into());
    }
    if rel.contains(['\t', '\n', '\r']) {
        return Err(format!(
            "path '{}' contains a tab or line break",
            crate::io::excerpt(&rel.escape_debug().to_string())
        ));
    }
    let p = Path::new(rel);
    // `C:\x` or `\\server\x` are absolute on Windows even where Path::is_absolute says no.
    let windows_abs = rel.starts_with('\\') || rel.as_bytes().get(1) == Some(&b':');
    if p.is_absolute() || p.has_root() || windows_abs {
        return Err(format!(
            "path '{}' is absolute; paths must be relative to the dataset root",
            crate::io::excerpt(rel)
        ));
    }
    let mut depth = 0usize;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return Err(format!("path '{}' leaves the dataset root ('..' above it)", crate::io::excerpt(rel))),
        }
    }
    if depth == 0 {
        return Err(format!("path '{}' names the dataset root itself, not a file in it", crate::io::excerpt(rel)));
    }
    Ok(())
}

/// `root/rel` after [`check_relative`]; the error names `file` and `line` (a list file) or the
/// manifest row.
pub fn resolve_in_root(root: &Path, rel: &str) -> std::result::Result<PathBuf, String> {
    check_relative(rel)?;
    Ok(root.join(rel))
}

fn polars_error(path: &Path, what: &str, e: PolarsError) -> Error {
    Error::data(path, format!("cannot read as {what}: {}", crate::io::excerpt(&e.to_string())))
}

/// Checks the record structure of a CSV/TSV before polars sees it, so that every fault is named
/// by line: a quote never closed, a blank line inside the table, a row with more or fewer fields
/// than the header. Quotes follow RFC 4180 (a field that starts with `"` runs to the next lone
/// `"`; `""` inside it is a quote). Returns the text without its trailing blank lines.
fn check_records<'a>(path: &Path, text: &'a str, sep: u8) -> Result<&'a str> {
    let text = text.trim_end_matches(['\r', '\n']);
    if text.is_empty() {
        return Err(Error::data(path, "the file is empty; a manifest starts with a header row"));
    }
    let b = text.as_bytes();
    let (mut i, mut line) = (0usize, 1usize);
    let mut header_fields = None;
    while i < b.len() || header_fields.is_none() {
        let (start, start_line) = (i, line);
        let mut fields = 1;
        loop {
            if b.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    match b.get(i) {
                        None => {
                            return Err(Error::parse(
                                path,
                                start_line,
                                "a quoted field that starts on this line is never closed (a '\"' is missing)",
                            ))
                        }
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            line += usize::from(*c == b'\n');
                            i += 1;
                        }
                    }
                }
            }
            while i < b.len() && b[i] != sep && b[i] != b'\n' {
                i += 1;
            }
            if i < b.len() && b[i] == sep {
                fields += 1;
                i += 1;
            } else {
                break;
            }
        }
        let record = text[start..i].trim_end_matches('\r');
        i += 1;
        line += 1;
        if record.trim().is_empty() {
            return Err(Error::parse(
                path,
                start_line,
                "blank line inside the table (only the end may have blank lines)",
            ));
        }
        match header_fields {
            None => header_fields = Some(fields),
            Some(h) if h != fields => {
                return Err(Error::parse(
                    path,
                    start_line,
                    format!("{fields} fields where the header has {h}: '{}'", crate::io::excerpt(record)),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(text)
}

/// Reads the table with polars; every column of a CSV/TSV is read as text (cells are parsed and
/// checked below, with the line named on error).
fn read_table(path: &Path) -> Result<DataFrame> {
    if !path.exists() {
        return Err(Error::Missing(format!("manifest {} does not exist", path.display())));
    }
    let format = TableFormat::of(path)?;
    match format {
        TableFormat::Csv | TableFormat::Tsv => {
            let sep = if format == TableFormat::Csv { b',' } else { b'\t' };
            let what = if sep == b',' { "CSV" } else { "TSV" };
            let text = crate::io::read_text(path, crate::io::Role::MANIFEST)?;
            let text = check_records(path, &text, sep)?;
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .map_parse_options(|o| o.with_separator(sep))
                .into_reader_with_file_handle(std::io::Cursor::new(text.as_bytes()))
                .finish()
                .map_err(|e| polars_error(path, what, e))
        }
        TableFormat::Parquet => {
            let (file, _) = crate::io::open_input(path, crate::io::Role::MANIFEST)?;
            ParquetReader::new(file).finish().map_err(|e| polars_error(path, "Parquet", e))
        }
    }
}

/// A column as text cells (numbers rendered by polars), `None` for null or blank cells.
fn text_cells(path: &Path, df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let col = df.column(name).map_err(|e| polars_error(path, "a table", e))?;
    let s = col
        .cast(&DataType::String)
        .map_err(|e| Error::data(path, format!("column '{name}' cannot be read as text: {e}")))?;
    let ca = s.str().map_err(|e| polars_error(path, "text", e))?;
    let ca = ca.rechunk();
    Ok((0..ca.len()).map(|i| ca.get(i).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)).collect())
}

/// Parses `landmarks` cells: 10 numbers (x1 y1 … x5 y5) separated by spaces, commas or semicolons,
/// optionally in brackets; a Parquet list column is rendered to that text first.
fn parse_landmarks(cell: &str) -> std::result::Result<[f32; 10], String> {
    let inner = cell.trim().trim_start_matches(['[', '(']).trim_end_matches([']', ')']);
    let nums: Vec<&str> = inner.split([' ', ',', ';', '\t']).filter(|s| !s.is_empty()).collect();
    if nums.len() != 10 {
        return Err(format!(
            "landmarks must be 10 numbers (x1 y1 … x5 y5 of 5 points), found {}: '{}'",
            nums.len(),
            crate::io::excerpt(cell)
        ));
    }
    let mut out = [0f32; 10];
    for (o, n) in out.iter_mut().zip(&nums) {
        *o = n
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("landmark '{}' is not a finite number", crate::io::excerpt(n)))?;
    }
    Ok(out)
}

fn landmark_cells(path: &Path, df: &DataFrame) -> Result<Vec<Option<String>>> {
    let col = df.column("landmarks").map_err(|e| polars_error(path, "a table", e))?;
    if let DataType::List(_) = col.dtype() {
        // Parquet list<float>: render each list as space-separated numbers.
        let s = col.as_materialized_series().cast(&DataType::List(Box::new(DataType::Float64)));
        let s = s.map_err(|e| Error::data(path, format!("column 'landmarks' is not a list of numbers: {e}")))?;
        let ca = s.list().map_err(|e| polars_error(path, "a list", e))?;
        return (0..ca.len())
            .map(|i| ca.get_as_series(i))
            .map(|cell| {
                cell.map(|inner| -> Result<String> {
                    let v = inner.f64().map_err(|e| polars_error(path, "numbers", e))?;
                    Ok((0..v.len())
                        .map(|k| v.get(k).map_or("null".into(), |x| x.to_string()))
                        .collect::<Vec<_>>()
                        .join(" "))
                })
                .transpose()
            })
            .collect();
    }
    text_cells(path, df, "landmarks")
}

impl Manifest {
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn identities(&self) -> usize {
        self.identity_names.len()
    }

    /// An error about row `row` (0-based).
    pub fn row_error(&self, row: usize, msg: impl Into<String>) -> Error {
        row_error(&self.source, self.is_csv, row, msg)
    }

    /// Row of each path.
    pub fn row_index(&self) -> HashMap<&str, u32> {
        self.paths.iter().enumerate().map(|(i, p)| (p.as_str(), i as u32)).collect()
    }

    /// The text column `name` (`group` or an extra column).
    pub fn text_column(&self, name: &str) -> Option<&TextColumn> {
        self.text_columns.iter().find(|c| c.name == name)
    }

    /// Reads and validates a manifest: required columns, non-empty cells, paths inside the root,
    /// no duplicate paths, ages 0..=130 in whole years, landmarks and detector scores well formed.
    pub fn read(path: &Path) -> Result<Self> {
        let df = read_table(path)?;
        let is_csv = TableFormat::of(path)? != TableFormat::Parquet;
        let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
        for required in ["path", "identity"] {
            if !names.iter().any(|n| n == required) {
                return Err(Error::data(
                    path,
                    format!(
                        "no '{required}' column; a manifest needs columns 'path' and 'identity' (optional: age, landmarks, detector_score, group, any other), found: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
        if df.height() == 0 {
            return Err(Error::data(path, "the manifest has no rows"));
        }
        let err = |row: usize, msg: String| row_error(path, is_csv, row, msg);

        let mut paths = Vec::with_capacity(df.height());
        let mut first_row: HashMap<String, usize> = HashMap::with_capacity(df.height());
        for (row, cell) in text_cells(path, &df, "path")?.into_iter().enumerate() {
            let p = cell.ok_or_else(|| err(row, "empty 'path'".into()))?;
            check_relative(&p).map_err(|m| err(row, m))?;
            if let Some(first) = first_row.insert(p.clone(), row) {
                let first = if is_csv { format!("line {}", first + 2) } else { format!("row {}", first + 1) };
                return Err(err(row, format!("duplicate path '{}' (first on {first})", crate::io::excerpt(&p))));
            }
            paths.push(p);
        }
        drop(first_row);

        let mut identity = Vec::with_capacity(df.height());
        let mut identity_names = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        for (row, cell) in text_cells(path, &df, "identity")?.into_iter().enumerate() {
            let name = cell.ok_or_else(|| err(row, "empty 'identity'".into()))?;
            let next = index.len() as u32;
            let id = *index.entry(name).or_insert_with_key(|k| {
                identity_names.push(k.clone());
                next
            });
            identity.push(id);
        }

        let ages = if names.iter().any(|n| n == "age") {
            let mut ages = Vec::with_capacity(df.height());
            for (row, cell) in text_cells(path, &df, "age")?.into_iter().enumerate() {
                let cell = cell.ok_or_else(|| {
                    err(row, "empty 'age': give every image an age, or drop the column to evaluate without ages".into())
                })?;
                let age = cell
                    .parse::<f64>()
                    .ok()
                    .filter(|a| a.fract() == 0.0 && *a >= 0.0 && *a <= MAX_AGE as f64)
                    .ok_or_else(|| {
                        err(
                            row,
                            format!(
                                "age must be a whole number of years 0..{MAX_AGE}, found '{}'",
                                crate::io::excerpt(&cell)
                            ),
                        )
                    })?;
                ages.push(age as u32);
            }
            Some(ages)
        } else {
            None
        };

        let landmarks = if names.iter().any(|n| n == "landmarks") {
            let cells = landmark_cells(path, &df)?;
            let mut out = Vec::with_capacity(cells.len());
            for (row, cell) in cells.into_iter().enumerate() {
                out.push(cell.map(|c| parse_landmarks(&c)).transpose().map_err(|m| err(row, m))?);
            }
            Some(out)
        } else {
            None
        };

        let detector_score = if names.iter().any(|n| n == "detector_score") {
            let mut out = Vec::with_capacity(df.height());
            for (row, cell) in text_cells(path, &df, "detector_score")?.into_iter().enumerate() {
                let v = cell
                    .map(|c| {
                        // A detector's confidence is a probability; other values would reweight.
                        c.parse::<f64>().ok().filter(|v| (0.0..=1.0).contains(v)).ok_or_else(|| {
                            err(
                                row,
                                format!(
                                    "detector_score must be a number in [0, 1], found '{}'",
                                    crate::io::excerpt(&c)
                                ),
                            )
                        })
                    })
                    .transpose()?;
                out.push(v);
            }
            Some(out)
        } else {
            None
        };

        let mut text_columns = Vec::new();
        let extra = names.iter().filter(|n| !KNOWN.contains(&n.as_str()));
        for name in std::iter::once(&"group".to_string()).filter(|_| names.iter().any(|n| n == "group")).chain(extra) {
            text_columns.push(TextColumn { name: name.clone(), values: text_cells(path, &df, name)? });
        }
        Ok(Manifest {
            source: path.to_path_buf(),
            paths,
            identity,
            identity_names,
            ages,
            landmarks,
            detector_score,
            text_columns,
            is_csv,
        })
    }

    /// Row indices of each identity.
    pub fn images_by_identity(&self) -> Vec<Vec<u32>> {
        let mut by = vec![Vec::new(); self.identities()];
        for (row, &id) in self.identity.iter().enumerate() {
            by[id as usize].push(row as u32);
        }
        by
    }
}

/// A text column: its name, distinct values, and the most frequent values with their counts.
pub type ColumnSummary = (String, usize, Vec<(String, usize)>);

/// What `aifr-eval manifest check` prints.
#[derive(Debug, Clone)]
pub struct ManifestSummary {
    pub rows: usize,
    pub identities: usize,
    /// Identities with a single image (no genuine pair, no probe): names of the first few.
    pub singletons: usize,
    pub singleton_examples: Vec<String>,
    pub images_per_identity: (usize, usize, usize),
    /// Images per decade of age (0 = 0–9 years …), when ages are given.
    pub age_histogram: Option<BTreeMap<u32, usize>>,
    pub age_range: Option<(u32, u32)>,
    pub landmarks: Option<usize>,
    pub detector_score: Option<(usize, f64, f64)>,
    /// Per text column: distinct values with their image counts (the first 20 by count).
    pub columns: Vec<ColumnSummary>,
    /// Files that do not exist under the root (None when not checked).
    pub missing_files: Option<Vec<String>>,
}

/// Summarises a valid manifest; with `root`, also looks for every file under it.
pub fn summarise(m: &Manifest, root: Option<&Path>) -> ManifestSummary {
    use rayon::prelude::*;
    let by = m.images_by_identity();
    let mut sizes: Vec<usize> = by.iter().map(Vec::len).collect();
    let singletons: Vec<&String> = (0..by.len()).filter(|&i| by[i].len() == 1).map(|i| &m.identity_names[i]).collect();
    sizes.sort_unstable();
    let images_per_identity = (sizes[0], sizes[sizes.len() / 2], sizes[sizes.len() - 1]);
    let age_histogram = m.ages.as_ref().map(|ages| {
        let mut h = BTreeMap::new();
        ages.iter().for_each(|a| *h.entry(a / 10).or_insert(0) += 1);
        h
    });
    let age_range = m.ages.as_ref().and_then(|a| Some((*a.iter().min()?, *a.iter().max()?)));
    let detector_score = m.detector_score.as_ref().map(|d| {
        let v: Vec<f64> = d.iter().flatten().copied().collect();
        (v.len(), v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max))
    });
    let columns = m
        .text_columns
        .iter()
        .map(|c| {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            c.values.iter().for_each(|v| *counts.entry(v.as_deref().unwrap_or("(empty)")).or_insert(0) += 1);
            let distinct = counts.len();
            let mut top: Vec<(String, usize)> = counts.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top.truncate(20);
            (c.name.clone(), distinct, top)
        })
        .collect();
    let missing_files = root.map(|root| {
        let missing: Vec<bool> = m.paths.par_iter().map(|p| !root.join(p).is_file()).collect();
        m.paths.iter().zip(missing).filter(|(_, miss)| *miss).map(|(p, _)| p.clone()).collect()
    });
    ManifestSummary {
        rows: m.len(),
        identities: m.identities(),
        singletons: singletons.len(),
        singleton_examples: singletons.iter().take(5).map(|s| s.to_string()).collect(),
        images_per_identity,
        age_histogram,
        age_range,
        landmarks: m.landmarks.as_ref().map(|l| l.iter().filter(|x| x.is_some()).count()),
        detector_score,
        columns,
        missing_files,
    }
}

impl ManifestSummary {
    pub fn render(&self, source: &Path) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "{}: {} images of {} identities", source.display(), self.rows, self.identities);
        let (lo, med, hi) = self.images_per_identity;
        let _ = writeln!(s, "  images per identity: min {lo}, median {med}, max {hi}");
        if self.singletons > 0 {
            let _ = writeln!(
                s,
                "  warning: {} identities have a single image (no genuine pair, no probe; gallery/impostors only): {}{}",
                self.singletons,
                self.singleton_examples.join(", "),
                if self.singletons > self.singleton_examples.len() { ", …" } else { "" }
            );
        }
        match (&self.age_histogram, self.age_range) {
            (Some(h), Some((lo, hi))) => {
                let _ = writeln!(s, "  ages {lo}–{hi} years; images per decade:");
                let most = h.values().copied().max().unwrap_or(1).max(1);
                for (decade, n) in h {
                    let bar = "#".repeat((40 * n).div_ceil(most));
                    let _ = writeln!(s, "    {:>3}–{:<3} {n:>9}  {bar}", decade * 10, decade * 10 + 9);
                }
            }
            _ => {
                let _ = writeln!(s, "  no 'age' column: age-gap protocols and breakdowns are unavailable");
            }
        }
        if let Some(n) = self.landmarks {
            let _ = writeln!(s, "  landmarks: {n} of {} images", self.rows);
        }
        if let Some((n, lo, hi)) = self.detector_score {
            let _ = writeln!(s, "  detector_score: {n} of {} images, range {lo}..{hi}", self.rows);
        }
        for (name, distinct, top) in &self.columns {
            let cells: Vec<String> = top.iter().map(|(v, n)| format!("{v} ({n})")).collect();
            let more = if *distinct > top.len() { ", …" } else { "" };
            let _ = writeln!(s, "  column '{name}': {distinct} values: {}{more}", cells.join(", "));
        }
        match &self.missing_files {
            Some(m) if m.is_empty() => {
                let _ = writeln!(s, "  all {} files exist under the root", self.rows);
            }
            Some(m) => {
                let shown: Vec<String> = m.iter().take(5).map(|p| format!("'{p}'")).collect();
                let _ = writeln!(
                    s,
                    "  MISSING: {} of {} files do not exist under the root; first: {}",
                    m.len(),
                    self.rows,
                    shown.join(", ")
                );
            }
            None => {
                let _ = writeln!(s, "  files not checked (--skip-files)");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_the_root() {
        assert!(check_relative("a/b.jpg").is_ok());
        assert!(check_relative("a/../b.jpg").is_ok());
        assert!(check_relative("./a.jpg").is_ok());
        for bad in ["/etc/passwd", "../x.jpg", "a/../../x.jpg", "", ".", "a/..", "C:\\x.jpg", "\\\\srv\\x", "a\tb"] {
            assert!(check_relative(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_relative("../x").unwrap_err().contains("leaves the dataset root"));
        assert!(check_relative("/x").unwrap_err().contains("absolute"));
    }

    #[test]
    fn landmark_cells() {
        let l = parse_landmarks("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]").unwrap();
        assert_eq!(l[9], 10.0);
        assert!(parse_landmarks("1 2 3").unwrap_err().contains("found 3"));
        assert!(parse_landmarks("1 2 3 4 5 6 7 8 9 nan").unwrap_err().contains("not a finite"));
    }
}

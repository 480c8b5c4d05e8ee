//! MegaFace Challenge 1 devkit layout (docs/protocols.md §4.1): probe lists (`{"path": [...], "id": [...]}`),
//! distractor lists `megaface_features_list.json_{N}_1` (`{"path": [...]}`, exactly N entries),
//! insightface's noise lists, and the devkit's per-image feature files.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The distractor-set sizes of the challenge.
pub const SIZES: [u32; 6] = [10, 100, 1_000, 10_000, 100_000, 1_000_000];

/// `10`, `100`, `1k`, `10k`, `100k`, `1m` (or the plain numbers) → the number of distractors.
pub fn parse_size(s: &str) -> Result<u32> {
    let lower = s.trim().to_ascii_lowercase();
    let n = match lower.as_str() {
        "1k" => 1_000,
        "10k" => 10_000,
        "100k" => 100_000,
        "1m" => 1_000_000,
        other => other.parse::<u32>().unwrap_or(0),
    };
    if SIZES.contains(&n) {
        Ok(n)
    } else {
        Err(Error::Config(format!("--distractors '{s}': expected one of 10, 100, 1k, 10k, 100k, 1m")))
    }
}

/// `1m`, `100k`, … for labels.
pub fn size_label(n: u32) -> String {
    match n {
        1_000_000 => "1m".into(),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

/// The devkit's file name of the distractor list of size `n`.
pub fn distractor_list_name(n: u32) -> String {
    format!("megaface_features_list.json_{n}_1")
}

#[derive(Debug, Clone)]
pub struct ProbeSet {
    /// Image paths in list order (list order matters: compat=devkit uses the first 100 probes).
    pub paths: Vec<String>,
    /// Identity index per image, into `identities`.
    pub identity: Vec<u32>,
    pub identities: Vec<String>,
    pub source: PathBuf,
}

impl ProbeSet {
    pub fn len(&self) -> usize {
        self.paths.len()
    }
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

#[derive(Deserialize)]
struct ProbeJson {
    path: Vec<String>,
    id: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct DistractorJson {
    path: Vec<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, expected: &str) -> Result<T> {
    let bytes = crate::io::read_input(path, crate::io::Role::DEVKIT_LIST)?;
    serde_json::from_slice(crate::io::strip_bom(&bytes))
        .map_err(|e| Error::parse(path, e.line(), format!("not a devkit list ({expected}): {e}")))
}

fn check_unique(path: &Path, paths: &[String]) -> Result<()> {
    let mut seen = HashSet::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        if p.is_empty() {
            return Err(Error::data(path, format!("entry {i} of \"path\" is empty")));
        }
        // Paths are read under the feature or image directory; they may not leave it.
        super::manifest::check_relative(p).map_err(|m| Error::data(path, format!("entry {i} of \"path\": {m}")))?;
        if !seen.insert(p.as_str()) {
            return Err(Error::data(
                path,
                format!("image '{}' is listed twice (second time at entry {i})", crate::io::excerpt(p)),
            ));
        }
    }
    Ok(())
}

/// A probe list: `{"path": [...], "id": [...]}` of equal length; ids may be strings or numbers.
pub fn read_probe_list(path: &Path) -> Result<ProbeSet> {
    let raw: ProbeJson = read_json(path, r#"{"path": [...], "id": [...]}"#)?;
    if raw.path.len() != raw.id.len() {
        return Err(Error::data(
            path,
            format!("\"path\" has {} entries but \"id\" has {}; they must correspond", raw.path.len(), raw.id.len()),
        ));
    }
    if raw.path.is_empty() {
        return Err(Error::data(path, "the probe list is empty"));
    }
    check_unique(path, &raw.path)?;
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut identities = Vec::new();
    let mut identity = Vec::with_capacity(raw.id.len());
    for (i, v) in raw.id.iter().enumerate() {
        let name = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(Error::data(path, format!("\"id\" entry {i} is {other}; expected a string or number")))
            }
        };
        let next = identities.len() as u32;
        let id = *index.entry(name.clone()).or_insert_with(|| {
            identities.push(name);
            next
        });
        identity.push(id);
    }
    Ok(ProbeSet { paths: raw.path, identity, identities, source: path.to_path_buf() })
}

/// A distractor list, which must hold exactly `expected` distinct paths.
pub fn read_distractor_list(path: &Path, expected: u32) -> Result<Vec<String>> {
    let raw: DistractorJson = read_json(path, r#"{"path": [...]}"#)?;
    if raw.path.len() != expected as usize {
        return Err(Error::data(
            path,
            format!(
                "the list has {} entries; a MegaFace list for {expected} distractors has exactly {expected}",
                raw.path.len()
            ),
        ));
    }
    check_unique(path, &raw.path)?;
    Ok(raw.path)
}

/// insightface's noise lists: one image per line, `#` lines are comments.
pub fn read_noise_list(path: &Path) -> Result<HashSet<String>> {
    let text = crate::io::read_text(path, crate::io::Role::PROTOCOL_TEXT)?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect())
}

/// Whether `image` (a list path) is on a noise list. FaceScrub's list names files without their
/// identity folder (`Aaron_Eckhart_136.png`), MegaFace's gives the full relative path.
pub fn is_noisy(noise: &HashSet<String>, image: &str) -> bool {
    noise.contains(image) || image.rsplit('/').next().is_some_and(|base| noise.contains(base))
}

/// Devkit feature-file element type for float32 (OpenCV `CV_32F`).
const CV_32F: i32 = 5;

/// Reads one devkit feature file: little-endian int32 `rows, cols, stride_bytes, cv_type` then
/// row-major float32 data. Accepts the D×1 column insightface writes and the 1×D row form.
pub fn read_feature_file(path: &Path) -> Result<Vec<f32>> {
    let bytes = crate::io::read_input(path, crate::io::Role::FEATURE_FILE)?;
    parse_feature_file(path, &bytes)
}

pub fn parse_feature_file(path: &Path, bytes: &[u8]) -> Result<Vec<f32>> {
    if bytes.len() < 16 {
        return Err(Error::data(
            path,
            format!("{} bytes: a devkit feature file starts with a 16-byte header", bytes.len()),
        ));
    }
    let int = |i: usize| i32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    let (rows, cols, stride, ty) = (int(0), int(1), int(2), int(3));
    if ty != CV_32F {
        return Err(Error::data(path, format!("header type {ty} at byte 12: expected 5 (float32)")));
    }
    if rows <= 0 || cols <= 0 || (rows != 1 && cols != 1) {
        return Err(Error::data(path, format!("header shape {rows}×{cols}: expected a D×1 or 1×D vector")));
    }
    if stride != cols * 4 {
        return Err(Error::data(path, format!("header stride {stride} at byte 8: expected cols×4 = {}", cols * 4)));
    }
    let dim = (rows * cols) as usize;
    if bytes.len() != 16 + 4 * dim {
        return Err(Error::data(
            path,
            format!("{} bytes: header says {rows}×{cols} float32, i.e. {} bytes", bytes.len(), 16 + 4 * dim),
        ));
    }
    let data: Vec<f32> = bytes[16..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::data(
            path,
            format!("value {i} (byte {}) is {}: features must be finite", 16 + 4 * i, data[i]),
        ));
    }
    Ok(data)
}

/// Encodes a feature in the devkit's D×1 form (what insightface writes).
pub fn encode_feature_file(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 4 * values.len());
    for v in [values.len() as i32, 1, 4, CV_32F] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Age from an FG-NET probe path (`…/001A02.JPG` → 2), as in the FG-NET adapter.
pub fn fgnet_age(path: &str) -> Option<u32> {
    let base = path.rsplit('/').next()?;
    super::fgnet::parse_name(base).map(|(_, age)| age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m").unwrap(), 1_000_000);
        assert_eq!(parse_size("10K").unwrap(), 10_000);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("5k").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(size_label(100_000), "100k");
        assert_eq!(size_label(10), "10");
    }

    #[test]
    fn feature_files_both_forms() {
        let p = Path::new("f.bin");
        let v = [0.5f32, -1.0, 2.0];
        assert_eq!(parse_feature_file(p, &encode_feature_file(&v)).unwrap(), v);
        let mut row = Vec::new();
        for x in [1i32, 3, 12, 5] {
            row.extend_from_slice(&x.to_le_bytes());
        }
        for x in v {
            row.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(parse_feature_file(p, &row).unwrap(), v);
        let mut bad = encode_feature_file(&v);
        bad[12] = 6;
        assert!(parse_feature_file(p, &bad).unwrap_err().to_string().contains("expected 5"));
        let short = &encode_feature_file(&v)[..20];
        assert!(parse_feature_file(p, short).unwrap_err().to_string().contains("header says 3×1"));
        let mut nan = encode_feature_file(&v);
        nan[20..24].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(parse_feature_file(p, &nan).unwrap_err().to_string().contains("value 1"));
    }

    #[test]
    fn noise_matching() {
        let noise: HashSet<String> = ["Aaron_Eckhart_136.png".to_string(), "375/x/1_0.jpg".into()].into();
        assert!(is_noisy(&noise, "Aaron_Eckhart/Aaron_Eckhart_136.png"));
        assert!(is_noisy(&noise, "375/x/1_0.jpg"));
        assert!(!is_noisy(&noise, "Aaron_Eckhart/Aaron_Eckhart_137.png"));
    }

    #[test]
    fn fgnet_ages() {
        assert_eq!(fgnet_age("FGNET/images/001A02.JPG"), Some(2));
        assert_eq!(fgnet_age("082A18a.JPG"), Some(18));
        assert_eq!(fgnet_age("Aaron/a.png"), None);
    }
}

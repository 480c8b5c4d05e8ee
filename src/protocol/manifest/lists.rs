//! The protocol files of a manifest, written by `aifr-eval manifest build` and read by
//! `aifr-eval run --manifest`:
//!
//! ```text
//! pairs.txt               LFW pairs.txt layout: header `<folds>\t<n>`, then per fold n matched
//! pairs_min_gap_<G>.txt   and n mismatched lines `<path a>\t<path b>` (manifest paths)
//! gallery_<choice>.txt    one manifest path per line
//! probes_<choice>.txt
//! protocol.json           how they were built (seed, folds, gaps, manifest fingerprint)
//! ```
//!
//! The pair reader also takes LFW's own lines (`name\tn1\tn2`, `name1\tn1\tname2\tn2`, keys
//! `name/name_<nnnn>.jpg`), so a manifest of LFW can be run with the original pairs.txt.

use super::build::{BuildSpec, PairList, Split};
use crate::dataset::lfw::image_key;
use crate::dataset::manifest::{check_relative, Manifest};
use crate::dataset::{KeyTable, Pair, PairBenchmark};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const PROTOCOL_SCHEMA: &str = "aifr-eval/manifest-protocol";

pub fn pairs_file_name(gap: u32) -> String {
    if gap == 0 {
        "pairs.txt".into()
    } else {
        format!("pairs_min_gap_{gap}.txt")
    }
}

pub fn split_file_names(choice: &str) -> (String, String) {
    (format!("gallery_{choice}.txt"), format!("probes_{choice}.txt"))
}

/// The text of a pair list in the pairs.txt layout.
pub fn pairs_text(m: &Manifest, list: &PairList) -> String {
    let mut s = format!("{}\t{}\n", list.matched.len(), list.pairs_per_fold());
    for (matched, mismatched) in list.matched.iter().zip(&list.mismatched) {
        for &(a, b) in matched.iter().chain(mismatched) {
            s.push_str(&m.paths[a as usize]);
            s.push('\t');
            s.push_str(&m.paths[b as usize]);
            s.push('\n');
        }
    }
    s
}

fn paths_text(m: &Manifest, rows: &[u32]) -> String {
    let mut s = String::with_capacity(rows.len() * 32);
    for &r in rows {
        s.push_str(&m.paths[r as usize]);
        s.push('\n');
    }
    s
}

/// One written protocol file, for protocol.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtocolFile {
    pub file: String,
    /// "pairs", "gallery" or "probes".
    pub role: String,
    /// Pair lists: minimum age gap of the genuine pairs (0 = none) and pairs per fold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_age_gap: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairs_per_fold: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    pub blake3: String,
}

/// protocol.json: everything needed to rebuild the files (with the manifest) or check them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtocolDescription {
    pub schema: String,
    pub schema_version: u32,
    pub software_version: String,
    /// The manifest the protocol was built from: file name, blake3 of its bytes, rows, identities.
    pub manifest: ManifestFingerprint,
    pub seed: u64,
    pub folds: usize,
    pub age_tolerance: u32,
    /// Identities dealt to folds: names sorted, shuffled with the seed, round-robin; pairs drawn
    /// per fold (identity uniformly, then one of its pairs uniformly).
    pub method: String,
    pub files: Vec<ProtocolFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestFingerprint {
    pub file: String,
    pub bytes: u64,
    pub blake3: String,
    pub rows: usize,
    pub identities: usize,
}

impl ManifestFingerprint {
    pub fn of(m: &Manifest) -> Result<Self> {
        let mut h = blake3::Hasher::new();
        h.update_mmap_rayon(&m.source).map_err(|e| Error::read(&m.source, e))?;
        Ok(ManifestFingerprint {
            file: m.source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            bytes: std::fs::metadata(&m.source).map_err(|e| Error::read(&m.source, e))?.len(),
            blake3: h.finalize().to_hex().to_string(),
            rows: m.len(),
            identities: m.identities(),
        })
    }
}

/// Writes the pair lists, the splits and protocol.json into `dir`.
pub fn write_protocol(
    dir: &Path,
    m: &Manifest,
    spec: &BuildSpec,
    lists: &[PairList],
    splits: &[Split],
) -> Result<ProtocolDescription> {
    let mut files = Vec::new();
    let mut put = |name: String, text: String, mut f: ProtocolFile| -> Result<()> {
        write_atomic(&dir.join(&name), text.as_bytes())?;
        f.file = name;
        f.blake3 = blake3::hash(text.as_bytes()).to_hex().to_string();
        files.push(f);
        Ok(())
    };
    for list in lists {
        let f = ProtocolFile {
            file: String::new(),
            role: "pairs".into(),
            min_age_gap: Some(list.min_age_gap),
            pairs_per_fold: Some(list.pairs_per_fold()),
            lines: None,
            blake3: String::new(),
        };
        put(pairs_file_name(list.min_age_gap), pairs_text(m, list), f)?;
    }
    for split in splits {
        let (g, p) = split_file_names(split.gallery_choice.name());
        for (name, role, rows) in [(g, "gallery", &split.gallery), (p, "probes", &split.probes)] {
            let f = ProtocolFile {
                file: String::new(),
                role: role.into(),
                min_age_gap: None,
                pairs_per_fold: None,
                lines: Some(rows.len()),
                blake3: String::new(),
            };
            put(name, paths_text(m, rows), f)?;
        }
    }
    let desc = ProtocolDescription {
        schema: PROTOCOL_SCHEMA.into(),
        schema_version: 1,
        software_version: env!("CARGO_PKG_VERSION").into(),
        manifest: ManifestFingerprint::of(m)?,
        seed: spec.seed,
        folds: spec.folds,
        age_tolerance: spec.age_tolerance,
        method: "identities sorted by name, shuffled with the seed and dealt round-robin to folds; per fold, matched pairs draw an identity uniformly then one of its pairs (with the minimum age gap) uniformly; mismatched pairs draw two identities then one image of each, or (age-gap lists) two images of different identities each within age_tolerance years of the matched pair's ages, at least the gap apart; images ordered by (age, path)".into(),
        files,
    };
    write_atomic(&dir.join("protocol.json"), &crate::io::to_json(&desc))?;
    Ok(desc)
}

/// Reads protocol.json of a protocol directory and checks it was built from this manifest.
pub fn read_description(dir: &Path, m: &Manifest) -> Result<ProtocolDescription> {
    let path = dir.join("protocol.json");
    let bytes = crate::io::read_input(&path, crate::io::Role::RECORD)?;
    let desc: ProtocolDescription = serde_json::from_slice(&bytes)
        .map_err(|e| Error::data(&path, format!("not a manifest protocol description: {e}")))?;
    if desc.schema != PROTOCOL_SCHEMA {
        return Err(Error::data(&path, format!("schema is '{}', expected '{PROTOCOL_SCHEMA}'", desc.schema)));
    }
    let now = ManifestFingerprint::of(m)?;
    if now.blake3 != desc.manifest.blake3 {
        return Err(Error::Invalid(format!(
            "the protocol in {} was built from a different manifest ({} with blake3 {}…, {} rows) than {} (blake3 {}…, {} rows); rebuild it with `aifr-eval manifest build`",
            dir.display(),
            desc.manifest.file,
            &desc.manifest.blake3[..12.min(desc.manifest.blake3.len())],
            desc.manifest.rows,
            m.source.display(),
            &now.blake3[..12],
            now.rows
        )));
    }
    Ok(desc)
}

/// The manifest row of a list entry, with the line named on error.
fn row_of(index: &HashMap<&str, u32>, m: &Manifest, file: &Path, line: usize, key: &str) -> Result<u32> {
    check_relative(key).map_err(|msg| Error::parse(file, line, msg))?;
    index.get(key).copied().ok_or_else(|| {
        Error::parse(
            file,
            line,
            format!("'{}' is not a path of the manifest {}", crate::io::excerpt(key), m.source.display()),
        )
    })
}

fn positive(file: &Path, line: usize, field: &str) -> Result<u32> {
    field.parse::<u32>().ok().filter(|&v| v > 0).ok_or_else(|| {
        Error::parse(
            file,
            line,
            format!("image number must be a positive integer, found '{}'", crate::io::excerpt(field)),
        )
    })
}

/// Reads a pairs.txt-layout file against the manifest into the benchmark the verification
/// protocol consumes: keys are manifest paths (interned in pair order, like the LFW adapter),
/// identities and ages come from the manifest.
pub fn read_pairs(file: &Path, m: &Manifest) -> Result<PairBenchmark> {
    let text = crate::io::read_text(file, crate::io::Role::PROTOCOL_TEXT)?;
    let index = m.row_index();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let (_, header) =
        lines.next().ok_or_else(|| Error::parse(file, 1, "empty file: expected a header like '10\\t300'"))?;
    let head: Vec<&str> = header.split_whitespace().collect();
    let (folds, per_fold) = match head.as_slice() {
        [f, n] => (positive(file, 1, f)?, positive(file, 1, n)?),
        [n] => (1, positive(file, 1, n)?),
        _ => {
            return Err(Error::parse(
                file,
                1,
                format!("expected a header '<folds>\\t<pairs per fold>', found '{}'", crate::io::excerpt(header)),
            ))
        }
    };
    let mut table = KeyTable::default();
    let mut rows_of_keys: Vec<u32> = Vec::new();
    let mut pairs = Vec::with_capacity(crate::dataset::lfw::pair_capacity(folds, per_fold, &text));
    for fold in 0..folds {
        for genuine in [true, false] {
            for _ in 0..per_fold {
                let (ln, line) = lines.next().ok_or_else(|| {
                    Error::parse(
                        file,
                        text.lines().count() + 1,
                        format!(
                            "file ends early: header promises {folds} folds × {per_fold} matched + {per_fold} mismatched pairs, found {} pairs",
                            pairs.len()
                        ),
                    )
                })?;
                let f: Vec<&str> = line.split('\t').collect();
                let (ka, kb) = match f.as_slice() {
                    [a, b] => (a.to_string(), b.to_string()),
                    [name, n1, n2] => {
                        (image_key(name, positive(file, ln, n1)?), image_key(name, positive(file, ln, n2)?))
                    }
                    [n1, i1, n2, i2] => {
                        (image_key(n1, positive(file, ln, i1)?), image_key(n2, positive(file, ln, i2)?))
                    }
                    _ => {
                        return Err(Error::parse(
                            file,
                            ln,
                            format!(
                                "expected '<path a>\\t<path b>' (or an LFW pair line), found {} tab-separated fields",
                                f.len()
                            ),
                        ))
                    }
                };
                let (ra, rb) = (row_of(&index, m, file, ln, &ka)?, row_of(&index, m, file, ln, &kb)?);
                if ra == rb {
                    return Err(Error::parse(file, ln, format!("a pair of an image with itself ('{ka}')")));
                }
                let same = m.identity[ra as usize] == m.identity[rb as usize];
                if same != genuine {
                    let (ia, ib) = (
                        &m.identity_names[m.identity[ra as usize] as usize],
                        &m.identity_names[m.identity[rb as usize] as usize],
                    );
                    return Err(Error::parse(
                        file,
                        ln,
                        format!(
                            "fold {} {} pair, but the manifest gives identities '{ia}' and '{ib}'",
                            fold + 1,
                            if genuine { "matched" } else { "mismatched" }
                        ),
                    ));
                }
                let (a, b) = (table.intern(ka), table.intern(kb));
                for (k, r) in [(a, ra), (b, rb)] {
                    if k as usize == rows_of_keys.len() {
                        rows_of_keys.push(r);
                    }
                }
                pairs.push(Pair { a, b, genuine, fold });
            }
        }
    }
    if let Some((ln, line)) = lines.find(|(_, l)| !l.trim().is_empty()) {
        return Err(Error::parse(
            file,
            ln,
            format!("unexpected extra line after {} pairs: '{}'", pairs.len(), crate::io::excerpt(line)),
        ));
    }
    // Identities numbered in order of first appearance over the keys, as the LFW adapter does.
    let (keys, _) = table.into_keys_and_identities(|k| k);
    let mut dense: HashMap<u32, u32> = HashMap::new();
    let identities = rows_of_keys
        .iter()
        .map(|&r| {
            let next = dense.len() as u32;
            *dense.entry(m.identity[r as usize]).or_insert(next)
        })
        .collect();
    let ages = m.ages.as_ref().map(|a| rows_of_keys.iter().map(|&r| a[r as usize]).collect());
    Ok(PairBenchmark {
        groups: None,
        keys,
        identities: Some(identities),
        ages,
        pairs,
        folds: folds as usize,
        keys_are_row_order: false,
        sources: vec![file.to_path_buf()],
    })
}

/// Reads a gallery or probe list (one manifest path per line) into manifest rows.
pub fn read_paths(file: &Path, m: &Manifest) -> Result<Vec<u32>> {
    let text = crate::io::read_text(file, crate::io::Role::PROTOCOL_TEXT)?;
    let index = m.row_index();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        rows.push(row_of(&index, m, file, i + 1, line)?);
    }
    if rows.is_empty() {
        return Err(Error::data(file, "no paths in this list"));
    }
    Ok(rows)
}

/// Gallery and probes read back; every probe's identity must have a gallery image (closed set).
pub fn read_split(dir: &Path, choice: &str, m: &Manifest) -> Result<(Vec<u32>, Vec<u32>, PathBuf, PathBuf)> {
    let (g, p) = split_file_names(choice);
    let (gp, pp) = (dir.join(g), dir.join(p));
    let gallery = read_paths(&gp, m)?;
    let probes = read_paths(&pp, m)?;
    let mut in_gallery = vec![false; m.identities()];
    for &r in &gallery {
        in_gallery[m.identity[r as usize] as usize] = true;
    }
    let gallery_set: std::collections::HashSet<u32> = gallery.iter().copied().collect();
    for &r in &probes {
        if gallery_set.contains(&r) {
            return Err(Error::data(&pp, format!("'{}' is in the gallery too", m.paths[r as usize])));
        }
        if !in_gallery[m.identity[r as usize] as usize] {
            return Err(Error::data(
                &pp,
                format!(
                    "probe '{}' belongs to identity '{}', which has no gallery image (closed-set identification)",
                    m.paths[r as usize], m.identity_names[m.identity[r as usize] as usize]
                ),
            ));
        }
    }
    Ok((gallery, probes, gp, pp))
}

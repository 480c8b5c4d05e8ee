//! What one shard of a split MegaFace scan leaves for the merge (`megaface --distractor-shard
//! K/N`), and the checks that join only the complete set of parts of one run.
//!
//! A part is a safetensors file: per distractor set `j`, `set{j}.counts` (u64: per probe, the
//! distractors of the slice that beat exactly 0, 1, … of its mates), `set{j}.top` and
//! `set{j}.top_first` (f32, descending: the slice's highest impostor scores, as many as the whole
//! run keeps) and `set{j}.comparisons` (u64: probe × distractor comparisons, all probes and the
//! devkit's first probes); the metadata key `aifr-eval` holds the [`Header`] as JSON. Sizes:
//! docs/sharding.md.

use super::{Cleaning, MegafaceInput};
use crate::error::{Error, Result};
use crate::score::stream::{ScanResult, SetSpec};
use safetensors::tensor::{serialize, TensorView};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

const FORMAT: &str = "aifr-eval megaface scan part";
const VERSION: u32 = 1;
const META_KEY: &str = "aifr-eval";

/// The facts a part must share with the run that merges it, kept readable so that a mismatch
/// can be named (the fingerprint covers the rest: the probe vectors after cleaning, their
/// mates' scores, and which distractor rows belong to which set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// Distractor set sizes in scan order (bit j of a row's set mask is `sets[j]`).
    pub sets: Vec<u32>,
    /// Impostor scores kept per set: all probes, the devkit's first probes.
    pub keep: Vec<(usize, usize)>,
    pub first_probes: usize,
    pub probes: usize,
    pub cleaning: Cleaning,
    /// Scores of different kernels may differ in the last bits: parts must share one.
    pub kernel: String,
    /// Distractor rows of all sets together (what the slices divide).
    pub distractor_rows: usize,
    /// Content hashes of the probe and distractor stores.
    pub probe_store: String,
    pub distractor_store: String,
    pub software: String,
}

impl Facts {
    pub fn of(
        input: &MegafaceInput<'_>,
        specs: &[SetSpec],
        first_probes: usize,
        kernel: String,
        distractor_rows: usize,
    ) -> Facts {
        Facts {
            sets: input.sets.iter().map(|s| s.size).collect(),
            keep: specs.iter().map(|s| (s.keep_top, s.keep_top_first)).collect(),
            first_probes,
            probes: input.probes.len(),
            cleaning: input.cleaning,
            kernel,
            distractor_rows,
            probe_store: input.probe_store.fingerprint(),
            distractor_store: input.distractor_store.fingerprint(),
            software: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Everything the scan's result depends on, hashed: two parts with equal fingerprints come from
/// the same probes (vectors after fusion and cleaning), mates, distractor rows, sets and rules.
pub fn fingerprint(
    facts: &Facts,
    probes: &[f32],
    mates: &[Vec<f32>],
    rows: &[u32],
    masks: &[u32],
    noisy: &[bool],
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(FORMAT.as_bytes());
    h.update(&VERSION.to_le_bytes());
    h.update(serde_json::to_string(facts).unwrap_or_default().as_bytes());
    let mut words = |label: &[u8], n: usize, bytes: &mut dyn Iterator<Item = [u8; 4]>| {
        h.update(label);
        h.update(&(n as u64).to_le_bytes());
        for b in bytes {
            h.update(&b);
        }
    };
    words(b"probes", probes.len(), &mut probes.iter().map(|x| x.to_le_bytes()));
    for m in mates {
        words(b"mates", m.len(), &mut m.iter().map(|x| x.to_le_bytes()));
    }
    words(b"rows", rows.len(), &mut rows.iter().map(|x| x.to_le_bytes()));
    words(b"masks", masks.len(), &mut masks.iter().map(|x| x.to_le_bytes()));
    words(b"noisy", noisy.len(), &mut noisy.iter().map(|&x| (x as u32).to_le_bytes()));
    h.finalize().to_hex().to_string()
}

/// How a shard was started, kept in its part so that `megaface merge PARTS` can run the same
/// command with `--merge` in place of the slice options: the arguments after the program name,
/// the working directory, and the `AIFR_*` variables the command line reads.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Invocation {
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

/// One distractor set's share of a slice.
#[derive(Debug, Clone, PartialEq)]
pub struct SetPart {
    pub counts: Vec<u64>,
    pub top: Vec<f32>,
    pub top_first: Vec<f32>,
    pub n_scores: u64,
    pub n_first_scores: u64,
}

impl From<ScanResult> for SetPart {
    fn from(r: ScanResult) -> SetPart {
        SetPart {
            counts: r.counts().to_vec(),
            top: r.top,
            top_first: r.top_first,
            n_scores: r.n_scores,
            n_first_scores: r.n_first_scores,
        }
    }
}

/// A shard's result: slice `index` of `count`, distractor rows `rows`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPart {
    pub facts: Facts,
    pub fingerprint: String,
    pub index: usize,
    pub count: usize,
    pub rows: Range<usize>,
    pub sets: Vec<SetPart>,
    /// The shard's command, when the command line wrote the part.
    pub invocation: Option<Invocation>,
}

/// The part file's metadata.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    fingerprint: String,
    index: usize,
    count: usize,
    rows: (usize, usize),
    facts: Facts,
    #[serde(default)]
    invocation: Option<Invocation>,
}

fn le_bytes<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

impl ScanPart {
    /// The part file's bytes (written by the caller, atomically).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            fingerprint: self.fingerprint.clone(),
            index: self.index,
            count: self.count,
            rows: (self.rows.start, self.rows.end),
            facts: self.facts.clone(),
            invocation: self.invocation.clone(),
        };
        let header =
            serde_json::to_string(&header).map_err(|e| Error::Invalid(format!("encoding a scan part: {e}")))?;
        let meta = HashMap::from([(META_KEY.to_string(), header)]);
        let mut data: Vec<(String, Dtype, Vec<u8>)> = Vec::new();
        for (j, s) in self.sets.iter().enumerate() {
            data.push((format!("set{j}.counts"), Dtype::U64, le_bytes(&s.counts, u64::to_le_bytes)));
            data.push((format!("set{j}.top"), Dtype::F32, le_bytes(&s.top, f32::to_le_bytes)));
            data.push((format!("set{j}.top_first"), Dtype::F32, le_bytes(&s.top_first, f32::to_le_bytes)));
            data.push((
                format!("set{j}.comparisons"),
                Dtype::U64,
                le_bytes(&[s.n_scores, s.n_first_scores], u64::to_le_bytes),
            ));
        }
        let views = data
            .iter()
            .map(|(name, dtype, bytes)| {
                let n = bytes.len() / dtype.size();
                TensorView::new(*dtype, vec![n], bytes).map(|v| (name.as_str(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Invalid(format!("encoding a scan part: {e}")))?;
        serialize(views, &Some(meta)).map_err(|e| Error::Invalid(format!("encoding a scan part: {e}")))
    }

    /// Reads a part file; errors name it and say what is wrong.
    pub fn read(path: &Path) -> Result<ScanPart> {
        let bytes = crate::io::read_input(path, crate::io::Role::SCAN_PART)?;
        let bad = |why: String| Error::Invalid(format!("{}: {why}", path.display()));
        let not_part = || bad("not a MegaFace scan part (written by megaface --distractor-shard)".into());
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|_| not_part())?;
        let header = meta.metadata().as_ref().and_then(|m| m.get(META_KEY)).ok_or_else(not_part)?;
        let header: Header = serde_json::from_str(header).map_err(|e| bad(format!("unreadable part header: {e}")))?;
        if header.format != FORMAT {
            return Err(not_part());
        }
        if header.version != VERSION {
            return Err(bad(format!(
                "part format version {} (this aifr-eval reads version {VERSION})",
                header.version
            )));
        }
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("damaged part: {e}")))?;
        let tensor = |name: &str, dtype: Dtype| -> Result<Vec<u8>> {
            let t = tensors.tensor(name).map_err(|_| bad(format!("no tensor '{name}'")))?;
            if t.dtype() != dtype || t.shape().len() != 1 {
                return Err(bad(format!(
                    "tensor '{name}' is {:?} {:?}, expected a vector of {dtype:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data().to_vec())
        };
        let u64s = |b: Vec<u8>| -> Vec<u64> {
            b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())).collect()
        };
        let f32s = |b: Vec<u8>| -> Vec<f32> {
            b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default())).collect()
        };
        let mut sets = Vec::new();
        for j in 0..header.facts.sets.len() {
            let comparisons = u64s(tensor(&format!("set{j}.comparisons"), Dtype::U64)?);
            let [n_scores, n_first_scores] = comparisons[..] else {
                return Err(bad(format!("tensor 'set{j}.comparisons' holds {} values, not 2", comparisons.len())));
            };
            sets.push(SetPart {
                counts: u64s(tensor(&format!("set{j}.counts"), Dtype::U64)?),
                top: f32s(tensor(&format!("set{j}.top"), Dtype::F32)?),
                top_first: f32s(tensor(&format!("set{j}.top_first"), Dtype::F32)?),
                n_scores,
                n_first_scores,
            });
        }
        let (start, end) = header.rows;
        if header.count == 0 || header.index >= header.count || start > end {
            return Err(bad(format!(
                "part {}/{} of rows {start}..{end} is not a slice of a split scan",
                header.index, header.count
            )));
        }
        Ok(ScanPart {
            facts: header.facts,
            fingerprint: header.fingerprint,
            index: header.index,
            count: header.count,
            rows: start..end,
            sets,
            invocation: header.invocation,
        })
    }
}

/// The facts on which a part differs from the run merging it, in words.
fn difference(part: &Facts, run: &Facts) -> Option<String> {
    let (a, b) = (serde_json::to_value(part).ok()?, serde_json::to_value(run).ok()?);
    let (a, b) = (a.as_object()?, b.as_object()?);
    let diffs: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k} {v} where this run has {}", b.get(k).unwrap_or(&serde_json::Value::Null)))
        .collect();
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// Checks that `parts` are every slice, once, of the scan this run would do (`facts`,
/// `fingerprint`), and returns their results in slice order for `merge_slices`.
pub fn check_complete(
    mut parts: Vec<(PathBuf, ScanPart)>,
    facts: &Facts,
    fingerprint: &str,
    mates: &[Vec<f32>],
) -> Result<Vec<Vec<ScanResult>>> {
    let Some((first_path, first)) = parts.first() else {
        return Err(Error::Config("--merge needs at least one part".into()));
    };
    let count = first.count;
    for (path, p) in &parts {
        if p.count != count {
            return Err(Error::Invalid(format!(
                "{} is slice {} of {} but {} is slice {} of {}: parts of different splits",
                path.display(),
                p.index,
                p.count,
                first_path.display(),
                first.index,
                count
            )));
        }
        if let Some(diff) = difference(&p.facts, facts) {
            return Err(Error::Invalid(format!("{} belongs to another run: {diff}", path.display())));
        }
        if p.fingerprint != fingerprint {
            return Err(Error::Invalid(format!(
                "{} belongs to another run: same stores, sets and protocol, but other probe vectors, \
                 mates or distractor rows (noise lists, flip fusion or the distractor lists differ)",
                path.display()
            )));
        }
        let want = p.index * facts.distractor_rows / count..(p.index + 1) * facts.distractor_rows / count;
        if p.rows != want {
            return Err(Error::Invalid(format!(
                "{} holds rows {}..{}, not slice {} of {} (rows {}..{})",
                path.display(),
                p.rows.start,
                p.rows.end,
                p.index,
                count,
                want.start,
                want.end
            )));
        }
    }
    parts.sort_by_key(|(_, p)| p.index);
    if let Some(w) = parts.windows(2).find(|w| w[0].1.index == w[1].1.index) {
        return Err(Error::Invalid(format!(
            "{} and {} are both slice {} of {count}",
            w[0].0.display(),
            w[1].0.display(),
            w[0].1.index
        )));
    }
    if parts.len() != count {
        let have: std::collections::HashSet<usize> = parts.iter().map(|(_, p)| p.index).collect();
        let missing: Vec<String> = (0..count).filter(|k| !have.contains(k)).map(|k| k.to_string()).collect();
        return Err(Error::Missing(format!(
            "slices {} of {count} are missing: give every part of the split scan",
            missing.join(", ")
        )));
    }
    parts
        .into_iter()
        .map(|(path, p)| {
            p.sets
                .into_iter()
                .map(|s| {
                    ScanResult::from_parts(mates, s.counts, s.top, s.top_first, s.n_scores, s.n_first_scores)
                        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
                })
                .collect()
        })
        .collect()
}

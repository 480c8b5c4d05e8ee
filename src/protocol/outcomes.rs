//! Per-search outcomes of identification runs, kept beside results.json as
//! `search_outcomes.json` so that the gate and `compare` can test a rank-1 change for
//! significance with the paired cluster bootstrap the pair benchmarks use (docs/gate.md):
//! resample the units the searches depend on (subjects, identities), apply the same resample to
//! both runs, and look at the interval of the difference.
//!
//! One character per search and metric, written as compact JSON, keeps the file small: FG-NET
//! ≈ 1 k searches (8 kB), the demo's MegaFace run 11 k searches × 4 sizes (78 kB), MegaFace
//! with FaceScrub probes ≈ 150 k searches × 6 sizes (≈ 1.4 MB), IJB-C 1:N ≈ 20 k probe templates
//! (≈ 160 kB).

use crate::metrics::age_gap::GapBin;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SEARCH_OUTCOMES_FILE: &str = "search_outcomes.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchOutcomes {
    /// What one bootstrap draw resamples: "subject" or "identity".
    pub unit: String,
    /// Number of units; `cluster` values lie in `0..clusters`.
    pub clusters: usize,
    /// The unit of each search, in search order.
    pub cluster: Vec<u32>,
    /// Per rank-1 metric, named as the gate names it (`rank1`, `rank1@age=0-12`, `rank1@1M`,
    /// `rank1@G1`): one character per search, `1` a hit, `0` a miss, `.` not part of it.
    pub rank1: BTreeMap<String, String>,
}

impl SearchOutcomes {
    pub fn new(unit: &str, clusters: usize, cluster: Vec<u32>) -> Self {
        SearchOutcomes { unit: unit.into(), clusters, cluster, rank1: BTreeMap::new() }
    }

    /// Records metric `key`: per search, `Some(hit)` or `None` when the search is not part of it.
    pub fn add(&mut self, key: String, hits: impl IntoIterator<Item = Option<bool>>) {
        let s: String = hits
            .into_iter()
            .map(|h| match h {
                Some(true) => '1',
                Some(false) => '0',
                None => '.',
            })
            .collect();
        debug_assert_eq!(s.len(), self.cluster.len());
        self.rank1.insert(key, s);
    }

    /// The outcomes of `key` as (member, hit) per search; `None` when the run has no such metric
    /// or its record is malformed.
    pub fn outcomes(&self, key: &str) -> Option<Vec<Option<bool>>> {
        let s = self.rank1.get(key)?;
        if s.len() != self.cluster.len() {
            return None;
        }
        s.bytes()
            .map(|b| match b {
                b'1' => Some(Some(true)),
                b'0' => Some(Some(false)),
                b'.' => Some(None),
                _ => None,
            })
            .collect()
    }

    /// Checks the record's own consistency (lengths, characters, cluster range).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(c) = self.cluster.iter().find(|&&c| c as usize >= self.clusters) {
            return Err(format!("cluster {c} is not below clusters = {}", self.clusters));
        }
        for key in self.rank1.keys() {
            if self.outcomes(key).is_none() {
                return Err(format!(
                    "metric '{key}' must have one of '1', '0', '.' per search ({} searches)",
                    self.cluster.len()
                ));
            }
        }
        Ok(())
    }
}

/// `0-12`, `40+`: how a group of ages or age gaps is named in metric keys.
pub fn group_label(b: &GapBin) -> String {
    match b.hi {
        Some(hi) => format!("{}-{hi}", b.lo),
        None => format!("{}+", b.lo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let mut o = SearchOutcomes::new("subject", 2, vec![0, 1, 1]);
        o.add("rank1".into(), [Some(true), Some(false), None]);
        let back: SearchOutcomes = serde_json::from_slice(&crate::io::to_json(&o)).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.outcomes("rank1").unwrap(), vec![Some(true), Some(false), None]);
        assert!(back.outcomes("rank1@x").is_none());
        back.validate().unwrap();
        let mut bad = o.clone();
        bad.rank1.insert("rank1".into(), "1x0".into());
        assert!(bad.validate().unwrap_err().contains("'rank1'"));
        bad.rank1.insert("rank1".into(), "10".into());
        assert!(bad.validate().is_err());
        let bad = SearchOutcomes { cluster: vec![0, 2, 1], ..o };
        assert!(bad.validate().unwrap_err().contains("cluster 2"));
    }
}

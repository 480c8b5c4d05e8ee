//! Dataset adapters: each reads one benchmark's real on-disk layout into a plain value that the
//! protocols consume. Adapters never look at embeddings.

pub mod adapter;
pub mod agedb;
pub mod bin_pairs;
pub mod cacd_vs;
pub mod calfw;
pub mod fgnet;
pub mod ijb;
pub mod insightface_bin;
pub mod lfw;
pub mod manifest;
pub mod mat5;
pub mod megaface;
pub mod rfw;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One verification pair: indices into [`PairBenchmark::keys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub a: u32,
    pub b: u32,
    pub genuine: bool,
    pub fold: u32,
}

/// A pair-verification benchmark (LFW family): images by key, pairs, and their folds.
#[derive(Debug, Clone)]
pub struct PairBenchmark {
    /// Distinct image keys (as stored in the embedding store), in first-use order.
    pub keys: Vec<String>,
    pub pairs: Vec<Pair>,
    pub folds: usize,
    /// Identity index of each key, when the layout names identities (LFW, CALFW); the bootstrap
    /// resamples identities. `None` for packs that carry no identity (insightface `.bin`).
    pub identities: Option<Vec<u32>>,
    /// Age in years of each key's image, when known (file names or an ages file).
    pub ages: Option<Vec<u32>>,
    /// Groups of people the layout names for its images (RFW's subsets): the differentials
    /// are reported by them (docs/protocols.md §11).
    pub groups: Option<KeyGroups>,
    /// True when `keys` is the natural row order of the benchmark's images (insightface `.bin`:
    /// row i is image i), so embeddings in that order need no key file.
    pub keys_are_row_order: bool,
    /// The protocol files read, for fingerprints.
    pub sources: Vec<PathBuf>,
}

/// A grouping of a benchmark's images named by its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroups {
    /// What the groups are (`subset`): the attribute the differentials are reported by.
    pub attribute: String,
    pub names: Vec<String>,
    /// Group (index into `names`) of each key.
    pub of_key: Vec<u32>,
    /// Every group is a benchmark of its own with its own folds (RFW's subsets): k-fold accuracy
    /// is reported per group too, with the mean and std over the groups.
    pub per_group_accuracy: bool,
}

/// Per-benchmark counts for results and the terminal.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairCounts {
    pub pairs: usize,
    pub genuine: usize,
    pub impostor: usize,
    pub images: usize,
    pub folds: usize,
}

impl PairBenchmark {
    pub fn counts(&self) -> PairCounts {
        let genuine = self.pairs.iter().filter(|p| p.genuine).count();
        PairCounts {
            pairs: self.pairs.len(),
            genuine,
            impostor: self.pairs.len() - genuine,
            images: self.keys.len(),
            folds: self.folds,
        }
    }
}

/// Fold of item `i` of `n` when a list is cut into `k` contiguous blocks whose sizes are `n/k`,
/// the first `n%k` blocks one larger (sklearn `KFold(shuffle=False)`, insightface's packs).
pub fn contiguous_fold(i: usize, n: usize, k: usize) -> usize {
    let (base, extra) = (n / k, n % k);
    let big = extra * (base + 1);
    if i < big {
        i / (base + 1)
    } else {
        extra + (i - big) / base.max(1)
    }
}

/// Interns keys so each distinct image gets one index.
#[derive(Default)]
pub(crate) struct KeyTable {
    keys: Vec<String>,
    index: std::collections::HashMap<String, u32>,
}

impl KeyTable {
    pub fn intern(&mut self, key: String) -> u32 {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.keys.len() as u32;
        self.index.insert(key.clone(), i);
        self.keys.push(key);
        i
    }

    /// The keys plus an identity index per key, `identity(key)` naming the identity.
    pub fn into_keys_and_identities(self, identity: impl Fn(&str) -> &str) -> (Vec<String>, Vec<u32>) {
        let mut names: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let ids = self
            .keys
            .iter()
            .map(|k| {
                let n = names.len() as u32;
                *names.entry(identity(k)).or_insert(n)
            })
            .collect();
        drop(names);
        (self.keys, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_folds_match_kfold() {
        // 23 items in 10 folds: sizes 3,3,3,2,2,2,2,2,2,2.
        let f: Vec<usize> = (0..23).map(|i| contiguous_fold(i, 23, 10)).collect();
        let sizes: Vec<usize> = (0..10).map(|k| f.iter().filter(|&&x| x == k).count()).collect();
        assert_eq!(sizes, vec![3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
        assert!(f.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(contiguous_fold(5999, 6000, 10), 9);
    }
}

//! How a protocol treats images that have no embedding because `--skip-bad-images` skipped
//! them: they are **excluded**. A pair with a skipped image is left out of every metric (and an
//! FG-NET image is left out as probe and as gallery); the skipped images, the reason for each and
//! the number of excluded pairs go into results.json (`embeddings.skipped_images`), so the
//! exclusion is explicit. Nothing is replaced by a made-up vector or score.

use super::meta::{EmbedMeta, SkippedImage};
use crate::dataset::fgnet::FgnetBenchmark;
use crate::dataset::PairBenchmark;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

pub const POLICY: &str =
    "excluded: pairs (FG-NET: images) involving a skipped image are left out of every metric and counted here";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedInfo {
    pub policy: String,
    /// The benchmark's images that have no embedding, with the reason.
    pub images: Vec<SkippedImage>,
    /// Pairs left out (pair benchmarks; FG-NET counts images only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded_pairs: Option<usize>,
}

/// The benchmark's skipped images (in the record's order), or `None` when there are none.
fn relevant(meta: Option<&EmbedMeta>, keys: &HashSet<&str>) -> Option<Vec<SkippedImage>> {
    let images: Vec<SkippedImage> =
        meta?.skipped_images.iter().filter(|s| keys.contains(s.key.as_str())).cloned().collect();
    (!images.is_empty()).then_some(images)
}

/// Removes the skipped images and every pair that uses one.
pub fn exclude_from_pairs(bench: &mut PairBenchmark, meta: Option<&EmbedMeta>) -> Option<SkippedInfo> {
    let keys: HashSet<&str> = bench.keys.iter().map(String::as_str).collect();
    let images = relevant(meta, &keys)?;
    let gone: HashSet<&str> = images.iter().map(|s| s.key.as_str()).collect();
    let mut new_index: HashMap<u32, u32> = HashMap::new();
    let mut kept = Vec::new();
    for (i, k) in bench.keys.iter().enumerate() {
        if !gone.contains(k.as_str()) {
            new_index.insert(i as u32, kept.len() as u32);
            kept.push(i);
        }
    }
    let before = bench.pairs.len();
    bench.pairs = bench
        .pairs
        .iter()
        .filter_map(|p| Some(crate::dataset::Pair { a: *new_index.get(&p.a)?, b: *new_index.get(&p.b)?, ..*p }))
        .collect();
    let pick = |v: &Vec<u32>| kept.iter().map(|&i| v[i]).collect::<Vec<u32>>();
    bench.identities = bench.identities.as_ref().map(pick);
    bench.ages = bench.ages.as_ref().map(pick);
    if let Some(g) = bench.groups.as_mut() {
        g.of_key = pick(&g.of_key);
    }
    bench.keys = kept.iter().map(|&i| bench.keys[i].clone()).collect();
    // Rows no longer follow the pack order; the store is addressed by key.
    bench.keys_are_row_order = false;
    Some(SkippedInfo { policy: POLICY.into(), images, excluded_pairs: Some(before - bench.pairs.len()) })
}

/// Removes the skipped images from an FG-NET benchmark.
pub fn exclude_from_fgnet(bench: &mut FgnetBenchmark, meta: Option<&EmbedMeta>) -> Option<SkippedInfo> {
    let keys: HashSet<&str> = bench.images.iter().map(|i| i.key.as_str()).collect();
    let images = relevant(meta, &keys)?;
    let gone: HashSet<String> = images.iter().map(|s| s.key.clone()).collect();
    bench.images.retain(|i| !gone.contains(&i.key));
    Some(SkippedInfo { policy: POLICY.into(), images, excluded_pairs: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Pair;

    #[test]
    fn pairs_with_a_skipped_image_are_removed_and_counted() {
        let mut b = PairBenchmark {
            groups: None,
            keys: vec!["a".into(), "b".into(), "c".into()],
            pairs: vec![
                Pair { a: 0, b: 1, genuine: true, fold: 0 },
                Pair { a: 1, b: 2, genuine: false, fold: 0 },
                Pair { a: 0, b: 2, genuine: false, fold: 1 },
            ],
            folds: 2,
            identities: Some(vec![5, 5, 6]),
            ages: Some(vec![10, 20, 30]),
            keys_are_row_order: true,
            sources: vec![],
        };
        assert!(exclude_from_pairs(&mut b.clone(), None).is_none());
        let meta: EmbedMeta = serde_json::from_value(serde_json::json!({
            "kind": "aifr-eval/embed", "version": 1, "source_fingerprint": "", "benchmark": "x", "images": 3,
            "images_fingerprint": "", "flip": false,
            "model": {"arch": "m", "fingerprint": "f", "dtype": "f32", "device": "cpu"},
            "input": {"height": 1, "width": 1, "channels": "rgb", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "aligned_images": 0},
            "skipped_images": [{"key": "b", "reason": "corrupt"}, {"key": "zz", "reason": "not in this benchmark"}]
        }))
        .unwrap();
        let info = exclude_from_pairs(&mut b, Some(&meta)).unwrap();
        assert_eq!(info.excluded_pairs, Some(2));
        assert_eq!(info.images, vec![SkippedImage { key: "b".into(), reason: "corrupt".into() }]);
        assert_eq!(b.keys, vec!["a", "c"]);
        assert_eq!(b.pairs, vec![Pair { a: 0, b: 1, genuine: false, fold: 1 }]);
        assert_eq!((b.identities, b.ages, b.keys_are_row_order), (Some(vec![5, 6]), Some(vec![10, 30]), false));
    }
}

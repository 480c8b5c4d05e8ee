//! Cluster bootstrap: resample the units pairs depend on (identities), not the pairs, which are
//! not independent (one identity appears in many pairs).
//!
//! Resample r draws C clusters with replacement from a ChaCha8 stream seeded by (seed, r), so
//! every resample is reproducible on its own and results do not depend on the thread count.
//! Intervals are percentile intervals (numpy's default "linear" interpolation).

use super::{Roc, SortedPairs, TarRule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapSpec {
    pub resamples: usize,
    pub seed: u64,
    pub confidence: f64,
}

impl Default for BootstrapSpec {
    fn default() -> Self {
        BootstrapSpec { resamples: 1000, seed: 0x00A1_FE7A, confidence: 0.95 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The statistic on the full data.
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
}

/// Multiplicity of each of `n` clusters in resample `r`.
pub fn cluster_counts(n: usize, spec: &BootstrapSpec, r: usize) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    rng.set_stream(r as u64);
    let mut counts = vec![0u32; n];
    for _ in 0..n {
        counts[rng.gen_range(0..n)] += 1;
    }
    counts
}

/// Per-pair weights for resample `r` from the pairs' cluster ids (0..n_clusters).
pub fn pair_weights(clusters: &[u32], n_clusters: usize, spec: &BootstrapSpec, r: usize) -> Vec<u32> {
    let counts = cluster_counts(n_clusters, spec, r);
    clusters.iter().map(|&c| counts[c as usize]).collect()
}

/// Percentile (numpy "linear") of sorted finite samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (sorted[j] - sorted[i]) * frac
}

/// Percentile interval of `samples` (NaN samples, from degenerate resamples, are dropped).
pub fn interval(estimate: f64, mut samples: Vec<f64>, confidence: f64) -> Interval {
    samples.retain(|x| x.is_finite());
    samples.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Interval { estimate, lo: percentile(&samples, tail), hi: percentile(&samples, 1.0 - tail) }
}

/// Weighted mean of 0/1 outcomes.
pub fn weighted_rate(hits: &[bool], w: &[u32]) -> f64 {
    let (mut h, mut n) = (0u64, 0u64);
    for (&x, &k) in hits.iter().zip(w) {
        h += x as u64 * k as u64;
        n += k as u64;
    }
    h as f64 / n as f64
}

/// Counts per (cluster, cell) of `[genuine, genuine accepted, impostor, impostor accepted]`
/// pairs. A resample only reweights clusters, so the totals of every cell in any resample are
/// weighted sums of these, without going back to the pairs. Only the (cluster, cell) combinations
/// that occur are kept: a cluster usually falls in few cells, so a resample costs the number of
/// those, not clusters × cells.
#[derive(Debug, Clone)]
pub struct CellCounts {
    cells: usize,
    /// (cluster, cell, counts), in order of first occurrence.
    entries: Vec<(u32, u32, [u64; 4])>,
    index: std::collections::HashMap<(u32, u32), usize>,
}

impl CellCounts {
    pub fn new(cells: usize) -> Self {
        CellCounts { cells, entries: Vec::new(), index: std::collections::HashMap::new() }
    }

    /// Counts one pair of `cluster` in `cell`.
    pub fn add(&mut self, cluster: u32, cell: usize, genuine: bool, accepted: bool) {
        let key = (cluster, cell as u32);
        let i = *self.index.entry(key).or_insert_with(|| {
            self.entries.push((cluster, cell as u32, [0; 4]));
            self.entries.len() - 1
        });
        let base = if genuine { 0 } else { 2 };
        let c = &mut self.entries[i].2;
        c[base] += 1;
        c[base + 1] += accepted as u64;
    }

    /// Totals per cell, each cluster counted `w[cluster]` times (once without weights). Integer
    /// sums, so the order of the entries cannot change them.
    pub fn totals(&self, w: Option<&[u32]>) -> Vec<[u64; 4]> {
        let mut t = vec![[0u64; 4]; self.cells];
        for &(cluster, cell, ref counts) in &self.entries {
            let weight = w.map_or(1, |w| w[cluster as usize] as u64);
            if weight == 0 {
                continue;
            }
            for (a, v) in t[cell as usize].iter_mut().zip(counts) {
                *a += weight * v;
            }
        }
        t
    }
}

/// Statistics one resample yields for one run; NaN where undefined in that resample.
#[derive(Debug, Clone, PartialEq)]
pub struct ResampleStats {
    pub accuracy: f64,
    /// TAR at each FAR target under the strict rule.
    pub tar: Vec<f64>,
    pub auc: f64,
    pub eer: f64,
}

/// Accuracy (k-fold correctness held fixed), strict TAR@FAR, AUC and EER of one resample.
pub fn resample_stats(pairs: &SortedPairs, correct: &[bool], far_targets: &[f64], w: Option<&[u32]>) -> ResampleStats {
    let roc = Roc::from_sorted_weighted(pairs, w);
    let ones;
    let w = match w {
        Some(w) => w,
        None => {
            ones = vec![1u32; correct.len()];
            &ones
        }
    };
    let defined = roc.n_genuine() > 0 && roc.n_impostor() > 0;
    ResampleStats {
        accuracy: weighted_rate(correct, w),
        tar: far_targets
            .iter()
            .map(|&f| if defined { roc.tar_at_far(f, TarRule::Strict).tar.unwrap_or(f64::NAN) } else { f64::NAN })
            .collect(),
        auc: if defined { roc.auc() } else { f64::NAN },
        eer: if defined { roc.eer().map_or(f64::NAN, |e| e.eer) } else { f64::NAN },
    }
}

/// Runs `f` on every resample in parallel; output order is the resample order.
pub fn over_resamples<T: Send>(
    clusters: &[u32],
    n_clusters: usize,
    spec: &BootstrapSpec,
    f: impl Fn(&[u32]) -> T + Sync,
) -> Vec<T> {
    (0..spec.resamples).into_par_iter().map(|r| f(&pair_weights(clusters, n_clusters, spec, r))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn percentile_matches_numpy_linear() {
        // np.percentile([1,2,3,4], [2.5, 97.5]) = [1.075, 3.925]
        let s = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&s, 0.025) - 1.075).abs() < 1e-12);
        assert!((percentile(&s, 0.975) - 3.925).abs() < 1e-12);
    }

    #[test]
    fn cell_counts_reweight_whole_clusters() {
        let mut c = CellCounts::new(2);
        c.add(0, 0, true, true);
        c.add(0, 0, true, false);
        c.add(1, 1, false, true);
        c.add(2, 0, false, false);
        assert_eq!(c.totals(None), vec![[2, 1, 1, 0], [0, 0, 1, 1]]);
        // Cluster 0 twice, cluster 1 dropped, cluster 2 three times.
        assert_eq!(c.totals(Some(&[2, 0, 3])), vec![[4, 2, 3, 0], [0, 0, 0, 0]]);
    }

    #[test]
    fn resamples_are_reproducible_and_sum_to_n() {
        let spec = BootstrapSpec::default();
        let a = cluster_counts(50, &spec, 3);
        assert_eq!(a, cluster_counts(50, &spec, 3));
        assert_ne!(a, cluster_counts(50, &spec, 4));
        assert_eq!(a.iter().sum::<u32>(), 50);
    }

    /// Coverage on synthetic data with known truth: clusters with a random effect, outcome
    /// rate known exactly; the 95% interval should contain it in about 95% of experiments.
    #[test]
    fn cluster_bootstrap_has_nominal_coverage() {
        let truth = 0.8;
        let spec = BootstrapSpec { resamples: 300, seed: 11, confidence: 0.95 };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let experiments = 200;
        let mut covered = 0;
        for _ in 0..experiments {
            // 60 clusters of 5 pairs; each cluster's hit probability = truth + shared noise.
            let (mut hits, mut clusters) = (Vec::new(), Vec::new());
            for c in 0..60u32 {
                let z: f64 = StandardNormal.sample(&mut rng);
                let p = (truth + 0.1 * z).clamp(0.0, 1.0);
                for _ in 0..5 {
                    hits.push(rng.gen_bool(p));
                    clusters.push(c);
                }
            }
            let est = weighted_rate(&hits, &vec![1; hits.len()]);
            let samples = over_resamples(&clusters, 60, &spec, |w| weighted_rate(&hits, w));
            let iv = interval(est, samples, spec.confidence);
            covered += (iv.lo <= truth && truth <= iv.hi) as usize;
        }
        let rate = covered as f64 / experiments as f64;
        // Binomial(200, 0.95) has sd ≈ 0.015; the percentile bootstrap runs slightly liberal.
        assert!((0.88..=0.99).contains(&rate), "coverage {rate}");
    }
}

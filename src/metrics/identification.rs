//! Closed-set identification metrics over a similarity matrix: leave-one-image-out rank-1 (the
//! classic FG-NET number for pre-trained models) and its breakdowns by age.

use super::age_gap::GapBin;
use serde::{Deserialize, Serialize};

/// Per-probe outcome of leave-one-image-out identification.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaveOneOut {
    /// Rank-1 hit (the best gallery image is a mate, strictly better than every impostor);
    /// `None` when the probe's subject has no other image (no mate to find).
    pub hit: Vec<Option<bool>>,
    /// Age gap between the probe and its nearest-in-age mate.
    pub nearest_gap: Vec<Option<u32>>,
}

/// `similarity(i, j)` for i != j; `subject` and `age` per image. A tie between the best mate and
/// the best impostor is a miss.
pub fn leave_one_out(n: usize, similarity: impl Fn(usize, usize) -> f64, subject: &[u32], age: &[u32]) -> LeaveOneOut {
    let (hit, nearest_gap) = (0..n).map(|i| probe_outcome(i, n, &similarity, subject, age)).unzip();
    LeaveOneOut { hit, nearest_gap }
}

/// (rank-1 hit, age gap to the nearest mate) of probe `i` against the other `n − 1` images;
/// both `None` when the probe has no mate.
pub fn probe_outcome(
    i: usize,
    n: usize,
    similarity: impl Fn(usize, usize) -> f64,
    subject: &[u32],
    age: &[u32],
) -> (Option<bool>, Option<u32>) {
    outcome_against(i, (0..n).filter(|&j| j != i), similarity, subject, age)
}

/// (rank-1 hit, age gap to the nearest-in-age mate) of probe `i` against `gallery`; both `None`
/// when the gallery holds no mate. A tie between the best mate and the best impostor is a miss.
pub fn outcome_against(
    i: usize,
    gallery: impl Iterator<Item = usize>,
    similarity: impl Fn(usize, usize) -> f64,
    subject: &[u32],
    age: &[u32],
) -> (Option<bool>, Option<u32>) {
    let (mut mate, mut impostor, mut gap) = (f64::NEG_INFINITY, f64::NEG_INFINITY, None::<u32>);
    for j in gallery {
        let s = similarity(i, j);
        if subject[j] == subject[i] {
            mate = mate.max(s);
            let g = age[i].abs_diff(age[j]);
            gap = Some(gap.map_or(g, |x| x.min(g)));
        } else {
            impostor = impostor.max(s);
        }
    }
    (gap.map(|_| mate > impostor), gap)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRank1 {
    #[serde(flatten)]
    pub group: GapBin,
    pub probes: usize,
    pub hits: usize,
    pub rank1: Option<f64>,
}

/// Rank-1 of the probes whose `value` (age, or age gap) falls in each group.
pub fn rank1_by(hit: &[Option<bool>], value: &[Option<u32>], groups: &[GapBin]) -> Vec<GroupRank1> {
    groups
        .iter()
        .map(|g| {
            let (mut probes, mut hits) = (0, 0);
            for (h, v) in hit.iter().zip(value) {
                if let (Some(h), Some(v)) = (h, v) {
                    if g.contains(*v) {
                        probes += 1;
                        hits += *h as usize;
                    }
                }
            }
            GroupRank1 { group: *g, probes, hits, rank1: (probes > 0).then(|| hits as f64 / probes as f64) }
        })
        .collect()
}

/// Probe age groups of the FG-NET tables: child, teen, adult, senior.
pub fn default_age_groups() -> Vec<GapBin> {
    [(0, Some(12)), (13, Some(19)), (20, Some(39)), (40, None)].into_iter().map(|(lo, hi)| GapBin { lo, hi }).collect()
}

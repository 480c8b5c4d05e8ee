//! Open-set identification (IJB-B/C 1:N, docs/protocols.md §2.4–§2.6): TPIR at FPIR under the strict
//! (bob.measure) rule and insightface's `ijb_evals.py` rule, CMC, and the legacy merged-gallery
//! numbers of `ijb_1n.py`.
//!
//! Inputs are per-probe summaries of a probe × gallery score matrix, so these functions never
//! see the matrix itself: a mated probe is described by its mate's score, its best non-mate score
//! and its rank; a non-mated probe by its highest gallery score.

use serde::{Deserialize, Serialize};

/// A probe whose subject has a template in the gallery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatedProbe {
    /// Score against the mate (the gallery template of the probe's subject).
    pub mate: f64,
    /// Highest score against any other gallery template (−∞ when the gallery has no other).
    pub best_nonmate: f64,
}

impl MatedProbe {
    /// Rank-1 identification: the mate beats every non-mate; a tie is a miss.
    pub fn identified(&self) -> bool {
        self.mate > self.best_nonmate
    }
}

/// Rank of the mate: 1 + the number of non-mates scoring at least as high (ties count against the mate).
pub fn mate_rank(mate: f64, nonmates: impl IntoIterator<Item = f64>) -> u32 {
    1 + nonmates.into_iter().filter(|&s| s >= mate).count() as u32
}

/// How the FPIR threshold is chosen and applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FpirRule {
    /// bob.measure: the lowest non-mated maximum t with #(max ≥ t)/N ≤ target; accept `score ≥ t`.
    Strict,
    /// insightface `ijb_evals.py`: t = the non-mated maxima sorted descending at index
    /// `max(floor(N·target) − 1, 0)`; accept `score > t`.
    IjbEvals,
}

/// TPIR at one FPIR target. Unavailable targets carry only the target, rule and a note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TpirAtFpir {
    pub fpir_target: f64,
    pub rule: FpirRule,
    pub available: bool,
    /// Mated probes identified at rank 1 with a mate score accepted at `threshold`, over all mated probes.
    pub tpir: Option<f64>,
    /// The FPIR actually achieved at `threshold` (under the rule's accept comparison).
    pub fpir: Option<f64>,
    pub threshold: Option<f64>,
    /// Non-mated probes whose highest gallery score is accepted.
    pub false_alarms: Option<u64>,
    pub note: Option<String>,
}

impl TpirAtFpir {
    fn unavailable(fpir_target: f64, rule: FpirRule, note: String) -> Self {
        TpirAtFpir {
            fpir_target,
            rule,
            available: false,
            tpir: None,
            fpir: None,
            threshold: None,
            false_alarms: None,
            note: Some(note),
        }
    }
}

/// Non-mated maxima sorted descending (−0.0 grouped with 0.0), ready for any number of targets.
#[derive(Debug, Clone)]
pub struct OpenSet<'a> {
    mated: &'a [MatedProbe],
    nonmated_desc: Vec<f64>,
}

impl<'a> OpenSet<'a> {
    /// `nonmated_max`: the highest gallery score of each non-mated probe. Scores must be finite.
    pub fn new(mated: &'a [MatedProbe], nonmated_max: &[f64]) -> Self {
        let mut nonmated_desc: Vec<f64> = nonmated_max.iter().map(|&s| s + 0.0).collect();
        nonmated_desc.sort_unstable_by(|a, b| b.total_cmp(a));
        OpenSet { mated, nonmated_desc }
    }

    pub fn n_mated(&self) -> usize {
        self.mated.len()
    }

    pub fn n_nonmated(&self) -> usize {
        self.nonmated_desc.len()
    }

    /// #(non-mated max ≥ t).
    fn alarms_at_least(&self, t: f64) -> usize {
        self.nonmated_desc.partition_point(|&s| s >= t)
    }

    /// #(non-mated max > t).
    fn alarms_above(&self, t: f64) -> usize {
        self.nonmated_desc.partition_point(|&s| s > t)
    }

    fn tpir(&self, accept: impl Fn(f64) -> bool) -> f64 {
        let hits = self.mated.iter().filter(|p| p.identified() && accept(p.mate)).count();
        hits as f64 / self.mated.len() as f64
    }

    pub fn tpir_at_fpir(&self, target: f64, rule: FpirRule) -> TpirAtFpir {
        let n = self.nonmated_desc.len();
        if self.mated.is_empty() {
            return TpirAtFpir::unavailable(target, rule, "no mated probes: TPIR is undefined".into());
        }
        if n == 0 {
            return TpirAtFpir::unavailable(target, rule, "no non-mated probes: FPIR is undefined".into());
        }
        match rule {
            FpirRule::Strict => self.strict(target),
            FpirRule::IjbEvals => self.ijb_evals(target),
        }
    }

    fn strict(&self, target: f64) -> TpirAtFpir {
        let n = self.nonmated_desc.len();
        if target * (n as f64) < 1.0 {
            return TpirAtFpir::unavailable(
                target,
                FpirRule::Strict,
                format!("FPIR {target:e} is below 1/N_non-mated = 1/{n} and cannot be measured"),
            );
        }
        // Candidate thresholds are the non-mated maxima; the count accepted at a value v is the
        // number of maxima ≥ v (ties included). Walk the distinct values from the top.
        let (mut threshold, mut alarms) = (self.nonmated_desc[0].next_up(), 0usize);
        let mut i = 0;
        while i < n {
            let v = self.nonmated_desc[i];
            let count = self.alarms_at_least(v);
            if count as f64 / n as f64 > target {
                break;
            }
            (threshold, alarms) = (v, count);
            i = count;
        }
        let tpir = self.tpir(|s| s >= threshold);
        let allowed = (target * n as f64).floor() as u64;
        let note = (allowed < super::roc::FRAGILE_FALSE_ACCEPTS).then(|| {
            format!("barely measurable: FPIR {target:e} of {n} non-mated probes allows only {allowed} false alarm(s)")
        });
        TpirAtFpir {
            fpir_target: target,
            rule: FpirRule::Strict,
            available: true,
            tpir: Some(tpir),
            fpir: Some(alarms as f64 / n as f64),
            threshold: Some(threshold),
            false_alarms: Some(alarms as u64),
            note,
        }
    }

    fn ijb_evals(&self, target: f64) -> TpirAtFpir {
        let n = self.nonmated_desc.len();
        let k = (n as f64 * target).floor() as usize;
        let threshold = self.nonmated_desc[k.saturating_sub(1).min(n - 1)];
        let alarms = self.alarms_above(threshold);
        let note = (k == 0).then(|| {
            format!("FPIR {target:e} is below 1/N_non-mated = 1/{n}: ijb_evals then uses the highest non-mated score")
        });
        TpirAtFpir {
            fpir_target: target,
            rule: FpirRule::IjbEvals,
            available: true,
            tpir: Some(self.tpir(|s| s > threshold)),
            fpir: Some(alarms as f64 / n as f64),
            threshold: Some(threshold),
            false_alarms: Some(alarms as u64),
            note,
        }
    }

    /// TPIR at every target under the strict rule, then under the ijb_evals rule.
    pub fn tpir_at_fpirs(&self, targets: &[f64]) -> Vec<TpirAtFpir> {
        [FpirRule::Strict, FpirRule::IjbEvals]
            .into_iter()
            .flat_map(|rule| targets.iter().map(move |&t| self.tpir_at_fpir(t, rule)))
            .collect()
    }

    /// The strict-rule TPIR at every distinct non-mated maximum (FPIR ascending), for charts.
    pub fn curve(&self) -> Vec<(f64, f64)> {
        let n = self.nonmated_desc.len();
        if n == 0 || self.mated.is_empty() {
            return Vec::new();
        }
        // Detected-and-identified mate scores, descending: TPIR at t = #(≥ t) / N_mated.
        let mut hits: Vec<f64> = self.mated.iter().filter(|p| p.identified()).map(|p| p.mate + 0.0).collect();
        hits.sort_unstable_by(|a, b| b.total_cmp(a));
        let m = self.mated.len() as f64;
        let mut out = Vec::new();
        let mut i = 0;
        while i < n {
            let v = self.nonmated_desc[i];
            let count = self.alarms_at_least(v);
            out.push((count as f64 / n as f64, hits.partition_point(|&s| s >= v) as f64 / m));
            i = count;
        }
        out
    }
}

/// One point of a cumulative match characteristic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CmcPoint {
    pub rank: u32,
    pub hits: u64,
    /// The denominator: mated probes, or all probes for the combined IJB figure.
    pub probes: u64,
    pub rate: f64,
}

/// CMC at `ranks`: the fraction of `denominator` probes whose mate rank is ≤ k.
pub fn cmc(mate_ranks: &[u32], ranks: &[u32], denominator: usize) -> Vec<CmcPoint> {
    ranks
        .iter()
        .map(|&k| {
            let hits = mate_ranks.iter().filter(|&&r| r <= k).count() as u64;
            CmcPoint {
                rank: k,
                hits,
                probes: denominator as u64,
                rate: if denominator == 0 { f64::NAN } else { hits as f64 / denominator as f64 },
            }
        })
        .collect()
}

/// One legacy `ijb_1n.py` operating point (merged G1 ∪ G2 closed-set gallery).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyPoint {
    /// The "FAR" as ijb_1n.py names it: the threshold is the k-th highest non-mate score with
    /// k = ceil(#probes · far), so it divides by the number of probes, not of non-mate scores.
    pub legacy_far: f64,
    pub k: u64,
    pub available: bool,
    pub threshold: Option<f64>,
    /// #(mate score > threshold) / #probes (rank is not required).
    pub tpr: Option<f64>,
}

/// Legacy numbers from the mate scores of every probe and the `k_max` highest non-mate scores of
/// the whole probe × gallery matrix (descending; `k_max` ≥ the largest k needed).
pub fn legacy_points(mates: &[f64], top_nonmates_desc: &[f64], fars: &[f64]) -> Vec<LegacyPoint> {
    let q = mates.len();
    fars.iter()
        .map(|&far| {
            let k = (q as f64 * far).ceil() as usize;
            match top_nonmates_desc.get(k.wrapping_sub(1)) {
                Some(&th) if k >= 1 => LegacyPoint {
                    legacy_far: far,
                    k: k as u64,
                    available: true,
                    threshold: Some(th),
                    tpr: Some(mates.iter().filter(|&&s| s > th).count() as f64 / q as f64),
                },
                _ => LegacyPoint { legacy_far: far, k: k as u64, available: false, threshold: None, tpr: None },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(mate: f64, best_nonmate: f64) -> MatedProbe {
        MatedProbe { mate, best_nonmate }
    }

    #[test]
    fn strict_and_ijb_evals_hand_checked() {
        // 10 non-mated maxima; 4 mated probes, one misidentified (tie with a non-mate).
        let mated = [mp(0.95, 0.2), mp(0.85, 0.1), mp(0.7, 0.7), mp(0.6, 0.3)];
        let nm = [0.9, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1];
        let o = OpenSet::new(&mated, &nm);
        // Strict, FPIR 0.1: one alarm allowed -> t = 0.9; hits: 0.95 only -> 1/4.
        let t = o.tpir_at_fpir(0.1, FpirRule::Strict);
        assert_eq!((t.threshold, t.false_alarms, t.tpir), (Some(0.9), Some(1), Some(0.25)));
        // Strict, FPIR 0.2: 0.8 is tied (3 alarms) -> stays at 0.9.
        assert_eq!(o.tpir_at_fpir(0.2, FpirRule::Strict).threshold, Some(0.9));
        // Strict, FPIR 0.3 -> t = 0.8, 3 alarms, hits 0.95, 0.85 -> 0.5.
        let t = o.tpir_at_fpir(0.3, FpirRule::Strict);
        assert_eq!((t.threshold, t.false_alarms, t.tpir), (Some(0.8), Some(3), Some(0.5)));
        // ijb_evals, FPIR 0.2: index max(2-1, 0) = 1 -> t = 0.8, accept > 0.8: 0.95, 0.85; alarms > 0.8: 1.
        let t = o.tpir_at_fpir(0.2, FpirRule::IjbEvals);
        assert_eq!((t.threshold, t.false_alarms, t.tpir), (Some(0.8), Some(1), Some(0.5)));
        // ijb_evals below 1/N: index 0 -> t = 0.9, FPIR 0 under '>'.
        let t = o.tpir_at_fpir(0.01, FpirRule::IjbEvals);
        assert_eq!((t.threshold, t.false_alarms, t.tpir), (Some(0.9), Some(0), Some(0.25)));
        assert!(t.note.is_some());
        // Strict below 1/N: unavailable.
        let t = o.tpir_at_fpir(0.01, FpirRule::Strict);
        assert!(!t.available && t.tpir.is_none());
    }

    #[test]
    fn top_tie_goes_just_above() {
        let mated = [mp(0.95, 0.0)];
        let o = OpenSet::new(&mated, &[0.9, 0.9, 0.1, 0.0]);
        let t = o.tpir_at_fpir(0.25, FpirRule::Strict);
        assert_eq!((t.threshold, t.false_alarms, t.tpir), (Some(0.9f64.next_up()), Some(0), Some(1.0)));
    }

    #[test]
    fn empty_classes_are_unavailable() {
        let o = OpenSet::new(&[], &[0.1]);
        assert!(!o.tpir_at_fpir(0.5, FpirRule::IjbEvals).available);
        let mated = [mp(0.5, 0.1)];
        let o = OpenSet::new(&mated, &[]);
        assert!(!o.tpir_at_fpir(0.5, FpirRule::Strict).available);
        assert!(o.curve().is_empty());
    }

    #[test]
    fn cmc_and_ranks() {
        assert_eq!(mate_rank(0.5, [0.1, 0.5, 0.7]), 3);
        assert_eq!(mate_rank(0.5, []), 1);
        let c = cmc(&[1, 2, 6, 11], &[1, 5, 10], 5);
        assert_eq!(c.iter().map(|p| p.hits).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(c[2].rate, 0.6);
    }

    #[test]
    fn legacy_divides_by_probes() {
        // 4 probes: far 0.25 -> k = 1 -> th = 0.8; far 0.5 -> k = 2 -> th = 0.7.
        let p = legacy_points(&[0.9, 0.75, 0.8, 0.1], &[0.8, 0.7, 0.6], &[0.25, 0.5, 1.0]);
        assert_eq!((p[0].threshold, p[0].tpr), (Some(0.8), Some(0.25)));
        assert_eq!((p[1].threshold, p[1].tpr), (Some(0.7), Some(0.75)));
        assert!(!p[2].available);
    }

    #[test]
    fn curve_is_monotone() {
        let mated = [mp(0.95, 0.2), mp(0.85, 0.1), mp(0.6, 0.3)];
        let c = OpenSet::new(&mated, &[0.9, 0.8, 0.8, 0.5]).curve();
        assert_eq!(c, vec![(0.25, 1.0 / 3.0), (0.75, 2.0 / 3.0), (1.0, 1.0)]);
    }
}

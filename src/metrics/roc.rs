//! The exact ROC of a set of scored pairs and everything derived from it: AUC, EER and TAR@FAR
//! under the strict (bob.measure) and nearest-vertex (insightface/sklearn) rules.
//!
//! Built once in O(n log n) (one parallel sort per class, deterministic because equal values are
//! grouped before anything order-dependent happens); every query afterwards is O(log n) or O(n).

use super::{validated, MetricError, SortedPairs};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Below this many allowed false accepts a TAR@FAR value is flagged as barely measurable.
pub const FRAGILE_FALSE_ACCEPTS: u64 = 10;

/// Cumulative counts at each distinct score value, in descending order of the value.
#[derive(Debug, Clone)]
pub struct Roc {
    /// Distinct score values, descending.
    thresholds: Vec<f64>,
    /// `tp[i]` = #genuine with score >= thresholds[i].
    tp: Vec<u64>,
    /// `fp[i]` = #impostor with score >= thresholds[i].
    fp: Vec<u64>,
    n_gen: u64,
    n_imp: u64,
}

/// One ROC vertex: accept iff `score >= threshold` (the first vertex has threshold +inf).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub fpr: f64,
    pub tpr: f64,
    pub threshold: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Eer {
    pub eer: f64,
    pub threshold: f64,
    pub far: f64,
    pub frr: f64,
}

/// How a threshold is chosen for a FAR target (docs/protocols.md §3.2–§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TarRule {
    /// bob.measure: lowest observed impostor score whose FAR does not exceed the target.
    Strict,
    /// insightface: the sklearn ROC vertex whose FPR is nearest the target (may exceed it).
    InsightfaceNearest,
    /// MegaFace devkit: scores ranked with positives first among ties; the largest TAR of any
    /// cut of that ranking whose FAR does not exceed the target.
    DevkitPositivesFirst,
}

/// TAR at one FAR target. When the target is below 1/N_impostor it is not measurable and only
/// `far_target`, `rule`, `available=false` and `note` are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TarAtFar {
    pub far_target: f64,
    pub rule: TarRule,
    pub available: bool,
    pub tar: Option<f64>,
    /// The FAR actually achieved at `threshold`.
    pub far: Option<f64>,
    /// Accept iff `score >= threshold`; `None` (JSON null) when the chosen vertex is at +inf.
    pub threshold: Option<f64>,
    pub false_accepts: Option<u64>,
    pub note: Option<String>,
}

fn sorted_desc(mut v: Vec<f64>) -> Vec<f64> {
    // Parallel sorting only pays off for large inputs (IJB: millions of pairs).
    if v.len() > 1 << 16 {
        v.par_sort_unstable_by(|a, b| b.total_cmp(a));
    } else {
        v.sort_unstable_by(|a, b| b.total_cmp(a));
    }
    v
}

/// A u32 whose ascending order is the descending order of the f32 (finite values; −0.0 and 0.0
/// share a key, as they are equal).
fn desc_key(s: f32) -> u32 {
    let b = (s + 0.0).to_bits();
    let asc = if b & 0x8000_0000 != 0 { !b } else { b | 0x8000_0000 };
    !asc
}

fn f32_from_desc_key(k: u32) -> f32 {
    let asc = !k;
    f32::from_bits(if asc & 0x8000_0000 != 0 { asc & 0x7FFF_FFFF } else { !asc })
}

/// LSD radix sort, three passes of 11 bits: linear time, no comparisons, deterministic.
fn radix_sort_u32(mut keys: Vec<u32>) -> Vec<u32> {
    let mut buf = vec![0u32; keys.len()];
    for shift in [0u32, 11, 22] {
        let mut counts = vec![0usize; 2048];
        for &k in &keys {
            counts[((k >> shift) & 0x7FF) as usize] += 1;
        }
        let mut sum = 0;
        for c in counts.iter_mut() {
            (*c, sum) = (sum, sum + *c);
        }
        for &k in &keys {
            let d = ((k >> shift) & 0x7FF) as usize;
            buf[counts[d]] = k;
            counts[d] += 1;
        }
        std::mem::swap(&mut keys, &mut buf);
    }
    keys
}

impl Roc {
    pub fn new(scores: &[f64], genuine: &[bool]) -> Result<Self, MetricError> {
        validated(scores, genuine)?;
        // +0.0 turns -0.0 into 0.0 so that total_cmp groups them as the equal values they are.
        let split = |want: bool| -> Vec<f64> {
            scores.iter().zip(genuine).filter(|(_, &g)| g == want).map(|(&s, _)| s + 0.0).collect()
        };
        let (gen, imp) = if scores.len() > 1 << 16 {
            rayon::join(|| sorted_desc(split(true)), || sorted_desc(split(false)))
        } else {
            (sorted_desc(split(true)), sorted_desc(split(false)))
        };
        Ok(Self::from_desc_classes(&gen, &imp))
    }

    /// The same ROC from f32 scores (IJB: 15.7 M pairs), sorted by a radix sort of their bit
    /// patterns; thresholds are the f32 values widened exactly to f64.
    pub fn from_f32(scores: &[f32], genuine: &[bool]) -> Result<Self, MetricError> {
        if scores.len() != genuine.len() {
            return Err(MetricError::LengthMismatch { scores: scores.len(), labels: genuine.len() });
        }
        if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(MetricError::NonFinite { index, value: value as f64 });
        }
        for class in [true, false] {
            if !genuine.contains(&class) {
                return Err(MetricError::EmptyClass { class: super::class_name(class) });
            }
        }
        let split = |want: bool| -> Vec<u32> {
            radix_sort_u32(scores.iter().zip(genuine).filter(|(_, &g)| g == want).map(|(&s, _)| desc_key(s)).collect())
        };
        let (gen, imp) = rayon::join(|| split(true), || split(false));
        // Ascending keys are descending scores: merged on the keys, widened once per vertex.
        let (n_gen, n_imp) = (gen.len() as u64, imp.len() as u64);
        Ok(Self::merge_by(&gen, &imp, n_gen, n_imp, u32::min, |k| f32_from_desc_key(k) as f64))
    }

    /// Merges the two classes' scores, each sorted descending, into cumulative counts.
    fn from_desc_classes(gen: &[f64], imp: &[f64]) -> Self {
        Self::merge_sorted(gen, imp, gen.len() as u64, imp.len() as u64)
    }

    /// The ROC where only the highest impostor scores are known (MegaFace: ~10^9 impostor
    /// comparisons, of which `top_impostors` are the largest, descending) out of `n_impostor`.
    /// Exact for every FAR target allowing fewer false accepts than were kept: query only
    /// `far` with `far * n_impostor < top_impostors.len()` (or all of them kept).
    pub fn from_top_impostors(
        genuine_desc: &[f64],
        top_impostors_desc: &[f64],
        n_impostor: u64,
    ) -> Result<Self, MetricError> {
        let all: Vec<f64> = genuine_desc.iter().chain(top_impostors_desc).copied().collect();
        // Same validation as a full ROC, but the impostor total comes from the caller.
        if genuine_desc.is_empty() {
            return Err(MetricError::EmptyClass { class: "genuine" });
        }
        if n_impostor == 0 || (top_impostors_desc.len() as u64) > n_impostor {
            return Err(MetricError::EmptyClass { class: "impostor" });
        }
        if let Some(index) = all.iter().position(|v| !v.is_finite()) {
            return Err(MetricError::NonFinite { index, value: all[index] });
        }
        let gen = sorted_desc(genuine_desc.iter().map(|s| s + 0.0).collect());
        let imp = sorted_desc(top_impostors_desc.iter().map(|s| s + 0.0).collect());
        Ok(Self::merge_sorted(&gen, &imp, gen.len() as u64, n_impostor))
    }

    /// The ROC of impostor scores alone: its strict-rule threshold for a FAR target is the
    /// operating point a group's own impostors would give (docs/protocols.md §11.3). TAR is
    /// undefined on it (no genuine pairs); only thresholds, FAR and false accepts are meaningful.
    pub fn of_impostors(impostors: &[f64]) -> Result<Self, MetricError> {
        if impostors.is_empty() {
            return Err(MetricError::EmptyClass { class: "impostor" });
        }
        if let Some(index) = impostors.iter().position(|v| !v.is_finite()) {
            return Err(MetricError::NonFinite { index, value: impostors[index] });
        }
        let imp = sorted_desc(impostors.iter().map(|s| s + 0.0).collect());
        Ok(Self::merge_sorted(&[], &imp, 0, imp.len() as u64))
    }

    fn merge_sorted(gen: &[f64], imp: &[f64], n_gen: u64, n_imp: u64) -> Self {
        Self::merge_by(gen, imp, n_gen, n_imp, f64::max, |t| t)
    }

    /// Merges two runs sorted so that `first(a, b)` is the one coming first (the higher score),
    /// one vertex per distinct value; `value` gives its threshold.
    fn merge_by<T: Copy + PartialEq>(
        gen: &[T],
        imp: &[T],
        n_gen: u64,
        n_imp: u64,
        first: impl Fn(T, T) -> T,
        value: impl Fn(T) -> f64,
    ) -> Self {
        let cap = gen.len() + imp.len();
        let (mut thresholds, mut tp, mut fp) =
            (Vec::with_capacity(cap), Vec::with_capacity(cap), Vec::with_capacity(cap));
        let (mut i, mut j) = (0usize, 0usize);
        while i < gen.len() || j < imp.len() {
            let t = match (gen.get(i), imp.get(j)) {
                (Some(&a), Some(&b)) => first(a, b),
                (Some(&a), None) => a,
                (None, Some(&b)) => b,
                (None, None) => break,
            };
            while i < gen.len() && gen[i] == t {
                i += 1;
            }
            while j < imp.len() && imp[j] == t {
                j += 1;
            }
            thresholds.push(value(t));
            tp.push(i as u64);
            fp.push(j as u64);
        }
        Roc { thresholds, tp, fp, n_gen, n_imp }
    }

    /// The same ROC from pairs already sorted for the k-fold protocols (no second sort).
    pub fn from_sorted(pairs: &SortedPairs) -> Self {
        Self::from_sorted_weighted(pairs, None)
    }

    /// The ROC with each pair counted `weights[i]` times (i = the pair's original index): a
    /// bootstrap resample without re-sorting. Weight 0 drops a pair.
    pub fn from_sorted_weighted(pairs: &SortedPairs, weights: Option<&[u32]>) -> Self {
        let (mut thresholds, mut tp, mut fp) = (Vec::new(), Vec::new(), Vec::new());
        let (mut g, mut i) = (0u64, 0u64);
        let mut p = pairs.len();
        while p > 0 {
            let t = pairs.at(p - 1).0;
            let (g0, i0) = (g, i);
            while p > 0 && pairs.at(p - 1).0 == t {
                let (_, genuine) = pairs.at(p - 1);
                let w = weights.map_or(1, |w| w[pairs.original_index(p - 1)] as u64);
                if genuine {
                    g += w;
                } else {
                    i += w;
                }
                p -= 1;
            }
            // A value whose pairs all have weight 0 is absent from this resample.
            if (g, i) != (g0, i0) {
                thresholds.push(t);
                tp.push(g);
                fp.push(i);
            }
        }
        Roc { thresholds, tp, fp, n_gen: g, n_imp: i }
    }

    pub fn n_genuine(&self) -> u64 {
        self.n_gen
    }

    pub fn n_impostor(&self) -> u64 {
        self.n_imp
    }

    /// Number of distinct score values (ROC vertices other than the origin).
    pub fn len(&self) -> usize {
        self.thresholds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }

    fn point(&self, i: usize) -> RocPoint {
        RocPoint {
            fpr: self.fp[i] as f64 / self.n_imp as f64,
            tpr: self.tp[i] as f64 / self.n_gen as f64,
            threshold: self.thresholds[i],
        }
    }

    const ORIGIN: RocPoint = RocPoint { fpr: 0.0, tpr: 0.0, threshold: f64::INFINITY };

    /// Every vertex of the exact ROC (one per distinct score), preceded by (0, 0) at +inf.
    pub fn vertices(&self) -> Vec<RocPoint> {
        self.vertex_iter().collect()
    }

    /// [`Roc::vertices`] without materialising them (IJB: ~14 M vertices).
    pub fn vertex_iter(&self) -> impl Iterator<Item = RocPoint> + '_ {
        std::iter::once(Self::ORIGIN).chain((0..self.thresholds.len()).map(|i| self.point(i)))
    }

    /// The vertices sklearn's `roc_curve(drop_intermediate=True)` keeps: a point is dropped when
    /// both its FP and TP second differences are zero (equal steps on either side).
    pub fn sklearn_vertices(&self) -> Vec<RocPoint> {
        self.sklearn_iter().collect()
    }

    /// Whether sklearn's `drop_intermediate` keeps vertex `i`: it drops a point when both its
    /// FP and TP second differences are zero (equal steps on either side).
    fn sklearn_keeps(&self, i: usize) -> bool {
        let n = self.thresholds.len();
        if n <= 2 || i == 0 || i + 1 == n {
            return true;
        }
        let d2 = |v: &[u64]| (v[i + 1] as i128) - 2 * (v[i] as i128) + (v[i - 1] as i128);
        d2(&self.fp) != 0 || d2(&self.tp) != 0
    }

    fn sklearn_iter(&self) -> impl Iterator<Item = RocPoint> + '_ {
        let n = self.thresholds.len();
        std::iter::once(Self::ORIGIN).chain((0..n).filter(move |&i| self.sklearn_keeps(i)).map(|i| self.point(i)))
    }

    /// Area under the exact ROC by the trapezoid rule (ties give diagonal segments).
    pub fn auc(&self) -> f64 {
        let mut area = 0.0;
        let mut prev = Self::ORIGIN;
        for i in 0..self.thresholds.len() {
            let p = self.point(i);
            area += (p.fpr - prev.fpr) * (p.tpr + prev.tpr) / 2.0;
            prev = p;
        }
        area
    }

    /// bob's sweep over midpoints of consecutive distinct scores minimising |FAR − FRR|; ties go to
    /// the smallest threshold. `None` when all scores are equal (no midpoint exists).
    pub fn eer(&self) -> Option<Eer> {
        let mut best: Option<(f64, Eer)> = None;
        // Ascending thresholds: the midpoint between thresholds[i+1] < thresholds[i] accepts exactly
        // the scores >= thresholds[i].
        for i in (0..self.thresholds.len().saturating_sub(1)).rev() {
            let far = self.fp[i] as f64 / self.n_imp as f64;
            let frr = (self.n_gen - self.tp[i]) as f64 / self.n_gen as f64;
            let gap = (far - frr).abs();
            if best.as_ref().is_none_or(|(g, _)| gap < *g) {
                let threshold = (self.thresholds[i] + self.thresholds[i + 1]) / 2.0;
                best = Some((gap, Eer { eer: (far + frr) / 2.0, threshold, far, frr }));
            }
        }
        best.map(|(_, e)| e)
    }

    /// Whether `far` can be measured at all with this many impostors.
    fn measurable(&self, far: f64) -> bool {
        far * self.n_imp as f64 >= 1.0
    }

    fn unavailable(&self, far: f64, rule: TarRule) -> TarAtFar {
        TarAtFar {
            far_target: far,
            rule,
            available: false,
            tar: None,
            far: None,
            threshold: None,
            false_accepts: None,
            note: Some(format!("FAR {far:e} is below 1/N_impostor = 1/{} and cannot be measured", self.n_imp)),
        }
    }

    pub fn tar_at_far(&self, far: f64, rule: TarRule) -> TarAtFar {
        if !self.measurable(far) {
            return self.unavailable(far, rule);
        }
        let mut t = match rule {
            TarRule::Strict => self.tar_strict(far),
            TarRule::InsightfaceNearest => self.tar_nearest(far),
            TarRule::DevkitPositivesFirst => self.tar_positives_first(far),
        };
        // Few allowed false accepts make the operating point rest on a handful of impostor scores.
        let allowed = (far * self.n_imp as f64).floor() as u64;
        if allowed < FRAGILE_FALSE_ACCEPTS {
            t.note = Some(format!(
                "barely measurable: FAR {far:e} of {} impostor pairs allows only {allowed} false accept(s)",
                self.n_imp
            ));
        }
        t
    }

    /// TAR at every target under the strict rule, then under the nearest rule.
    pub fn tar_at_fars(&self, far_targets: &[f64]) -> Vec<TarAtFar> {
        [TarRule::Strict, TarRule::InsightfaceNearest]
            .into_iter()
            .flat_map(|rule| far_targets.iter().map(move |&f| self.tar_at_far(f, rule)))
            .collect()
    }

    fn tar_strict(&self, far: f64) -> TarAtFar {
        let n_imp = self.n_imp as f64;
        // fp is non-decreasing, so "FAR within target" holds on a prefix.
        let ok = self.fp.partition_point(|&c| c as f64 / n_imp <= far);
        let bound = if ok == 0 { 0 } else { self.fp[ok - 1] };
        let (threshold, false_accepts, accepted_gen) = if bound == 0 {
            // Even the highest impostor score breaks the target: threshold just above it, FAR 0.
            let top = self.fp.partition_point(|&c| c == 0);
            let gen = if top == 0 { 0 } else { self.tp[top - 1] };
            (self.thresholds[top].next_up(), 0, gen)
        } else {
            // The first vertex reaching `bound` false accepts is the lowest impostor score allowed.
            let i = self.fp.partition_point(|&c| c < bound);
            (self.thresholds[i], bound, self.tp[i])
        };
        TarAtFar {
            far_target: far,
            rule: TarRule::Strict,
            available: true,
            tar: Some(accepted_gen as f64 / self.n_gen as f64),
            far: Some(false_accepts as f64 / n_imp),
            threshold: Some(threshold),
            false_accepts: Some(false_accepts),
            note: None,
        }
    }

    /// With positives ranked first among equal scores, the best cut allowing `k = ⌊far·N⌋` false
    /// accepts stops just before the (k+1)-th impostor: every genuine score >= that impostor's
    /// score is accepted, impostors only above it.
    fn tar_positives_first(&self, far: f64) -> TarAtFar {
        let allowed = (far * self.n_imp as f64).floor() as u64;
        // First vertex whose impostor count exceeds the allowance holds the (k+1)-th impostor.
        let i = self.fp.partition_point(|&c| c <= allowed);
        let (tar_count, false_accepts, threshold) = match self.thresholds.get(i) {
            Some(&t) => (self.tp[i], allowed, Some(t)),
            // Fewer impostors than allowed: everything ranked is accepted.
            None => (self.n_gen, self.fp.last().copied().unwrap_or(0), self.thresholds.last().copied()),
        };
        TarAtFar {
            far_target: far,
            rule: TarRule::DevkitPositivesFirst,
            available: true,
            tar: Some(tar_count as f64 / self.n_gen as f64),
            far: Some(false_accepts as f64 / self.n_imp as f64),
            threshold,
            false_accepts: Some(false_accepts),
            note: Some(
                "positives first among ties: genuine accepted at score >= threshold, impostors only above it".into(),
            ),
        }
    }

    fn tar_nearest(&self, far: f64) -> TarAtFar {
        // Index space of the sklearn curve: 0 is the origin, j > 0 is vertex j − 1. FPR is
        // non-decreasing in j, so the nearest kept vertex is the last kept one below the target
        // or the first kept one at or above it (taken at its largest TPR for that FPR).
        let n = self.thresholds.len();
        let kept = |j: usize| j == 0 || self.sklearn_keeps(j - 1);
        let at = |j: usize| if j == 0 { Self::ORIGIN } else { self.point(j - 1) };
        let n_imp = self.n_imp as f64;
        let p = 1 + self.fp.partition_point(|&c| (c as f64 / n_imp) < far);
        let mut left = p - 1;
        while !kept(left) {
            left -= 1;
        }
        let mut best = at(left);
        if let Some(first) = (p..=n).find(|&j| kept(j)) {
            let mut right = at(first);
            for j in first + 1..=n {
                let v = at(j);
                if v.fpr != right.fpr {
                    break;
                }
                if kept(j) {
                    right = v;
                }
            }
            let (gap_l, gap_r) = ((best.fpr - far).abs(), (right.fpr - far).abs());
            if gap_r < gap_l || (gap_r == gap_l && right.tpr > best.tpr) {
                best = right;
            }
        }
        TarAtFar {
            far_target: far,
            rule: TarRule::InsightfaceNearest,
            available: true,
            tar: Some(best.tpr),
            far: Some(best.fpr),
            threshold: best.threshold.is_finite().then_some(best.threshold),
            false_accepts: Some((best.fpr * self.n_imp as f64).round() as u64),
            note: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roc(gen: &[f64], imp: &[f64]) -> Roc {
        let scores: Vec<f64> = gen.iter().chain(imp).copied().collect();
        let labels: Vec<bool> = gen.iter().map(|_| true).chain(imp.iter().map(|_| false)).collect();
        Roc::new(&scores, &labels).unwrap()
    }

    #[test]
    fn hand_checked_strict_tar() {
        // 10 impostors: 0.9, 0.8, 0.8, 0.5, ... ; far 0.1 allows 1 false accept -> t = 0.9.
        let r = roc(&[0.95, 0.85, 0.8, 0.7], &[0.9, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1]);
        let t = r.tar_at_far(0.1, TarRule::Strict);
        assert_eq!(t.threshold, Some(0.9));
        assert_eq!(t.false_accepts, Some(1));
        assert_eq!(t.tar, Some(0.25));
        // far 0.2 allows 2, but 0.8 is tied twice (3 false accepts) -> stays at 0.9.
        let t = r.tar_at_far(0.2, TarRule::Strict);
        assert_eq!(t.threshold, Some(0.9));
        // far 0.3 -> 0.8 with 3 false accepts; genuine 0.95, 0.85, 0.8 accepted.
        let t = r.tar_at_far(0.3, TarRule::Strict);
        assert_eq!((t.threshold, t.false_accepts, t.tar), (Some(0.8), Some(3), Some(0.75)));
    }

    #[test]
    fn top_tie_goes_just_above_the_maximum() {
        let r = roc(&[0.95, 0.9, 0.5], &[0.9, 0.9, 0.1, 0.0]);
        let t = r.tar_at_far(0.25, TarRule::Strict);
        assert_eq!(t.false_accepts, Some(0));
        assert_eq!(t.threshold, Some(0.9f64.next_up()));
        assert_eq!(t.tar, Some(1.0 / 3.0));
    }

    #[test]
    fn top_impostors_give_the_full_rocs_strict_tar() {
        let gen = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6];
        let imp: Vec<f64> = (0..200).map(|i| 0.88 - i as f64 * 0.004).collect();
        let full = roc(&gen, &imp);
        // far 0.02 allows 4 false accepts: keeping 5 impostors is enough.
        let top = Roc::from_top_impostors(&gen, &imp[..5], 200).unwrap();
        for far in [0.005, 0.01, 0.015, 0.02] {
            assert_eq!(top.tar_at_far(far, TarRule::Strict), full.tar_at_far(far, TarRule::Strict), "far {far}");
        }
        assert!(Roc::from_top_impostors(&gen, &imp[..5], 3).is_err());
        assert!(Roc::from_top_impostors(&[], &imp[..5], 200).is_err());
        assert!(Roc::from_top_impostors(&gen, &[f64::NAN], 200).is_err());
    }

    #[test]
    fn devkit_rule_ranks_positives_first_among_ties() {
        // Impostors 0.9, 0.8, 0.8, 0.5; genuine 0.95, 0.8, 0.7.
        let r = roc(&[0.95, 0.8, 0.7], &[0.9, 0.8, 0.8, 0.5]);
        // k = 1 false accept allowed: cut before the 2nd impostor (0.8): genuine 0.95 and the tied
        // 0.8 are ahead of it.
        let t = r.tar_at_far(0.25, TarRule::DevkitPositivesFirst);
        assert_eq!((t.tar, t.false_accepts, t.threshold), (Some(2.0 / 3.0), Some(1), Some(0.8)));
        // The strict rule cannot take the tied genuine score without both tied impostors.
        assert_eq!(r.tar_at_far(0.25, TarRule::Strict).tar, Some(1.0 / 3.0));
        // Below 1/N: not measurable, as for every rule.
        assert!(!r.tar_at_far(0.2499, TarRule::DevkitPositivesFirst).available);
        // k >= all impostors: everything accepted.
        let t = r.tar_at_far(1.0, TarRule::DevkitPositivesFirst);
        assert_eq!((t.tar, t.false_accepts), (Some(1.0), Some(4)));
    }

    #[test]
    fn far_below_one_over_n_is_unavailable() {
        let r = roc(&[0.9], &[0.1, 0.2, 0.3]);
        for rule in [TarRule::Strict, TarRule::InsightfaceNearest] {
            let t = r.tar_at_far(0.3, rule);
            assert!(!t.available && t.tar.is_none() && t.note.is_some());
            assert!(r.tar_at_far(1.0 / 3.0, rule).available);
        }
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // P(gen > imp) + 0.5 P(tie): pairs (0.5 vs 0.5) tie, (0.5 vs 0.2) win, (0.9 vs *) win.
        let r = roc(&[0.9, 0.5], &[0.5, 0.2]);
        assert!((r.auc() - (3.0 + 0.5) / 4.0).abs() < 1e-15);
    }

    #[test]
    fn eer_perfect_separation_is_zero() {
        let e = roc(&[0.9, 0.8], &[0.1, 0.2]).eer().unwrap();
        assert_eq!((e.eer, e.threshold), (0.0, 0.5));
        assert!(roc(&[0.5], &[0.5]).eer().is_none());
    }

    #[test]
    fn rejects_nan_and_empty_classes() {
        assert!(matches!(Roc::new(&[0.1, f64::NAN], &[true, false]), Err(MetricError::NonFinite { index: 1, .. })));
        assert!(matches!(Roc::new(&[0.1, 0.2], &[true, true]), Err(MetricError::EmptyClass { class: "impostor" })));
        assert!(matches!(Roc::new(&[0.1], &[true, false]), Err(MetricError::LengthMismatch { .. })));
    }

    /// The binary-searched nearest rule must equal a brute-force scan of the sklearn vertices.
    #[test]
    fn nearest_rule_matches_brute_force() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..200 {
            let n = 5 + (next() % 300) as usize;
            let levels = 2 + next() % 40; // few levels: many ties and collinear runs
            let scores: Vec<f64> = (0..n).map(|_| (next() % levels) as f64 / levels as f64).collect();
            let mut labels: Vec<bool> = (0..n).map(|_| next() % 3 == 0).collect();
            labels[0] = true;
            labels[1] = false;
            let r = Roc::new(&scores, &labels).unwrap();
            for far in [1e-3, 0.01, 0.05, 0.1, 0.2, 1.0 / 3.0, 0.5, 0.9, 1.0] {
                let fast = r.tar_at_far(far, TarRule::InsightfaceNearest);
                if !fast.available {
                    continue;
                }
                let mut best = Roc::ORIGIN;
                let mut gap = f64::INFINITY;
                for p in r.sklearn_vertices() {
                    let g = (p.fpr - far).abs();
                    if g < gap || (g == gap && p.tpr > best.tpr) {
                        (best, gap) = (p, g);
                    }
                }
                assert_eq!((fast.tar, fast.far), (Some(best.tpr), Some(best.fpr)), "case {case} far {far}");
            }
        }
    }

    #[test]
    fn f32_roc_equals_f64_roc() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let n = 5000;
        let mut scores: Vec<f32> = (0..n).map(|_| ((next() % 2001) as f32 - 1000.0) / 997.0).collect();
        scores[3] = -0.0;
        scores[4] = 0.0;
        scores[5] = f32::MIN_POSITIVE;
        let labels: Vec<bool> = (0..n).map(|i| i % 7 == 0).collect();
        let a = Roc::from_f32(&scores, &labels).unwrap();
        let wide: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
        let b = Roc::new(&wide, &labels).unwrap();
        assert_eq!(a.vertices(), b.vertices());
        assert_eq!(a.tar_at_fars(&[1e-3, 0.01, 0.1]), b.tar_at_fars(&[1e-3, 0.01, 0.1]));
        assert!(matches!(
            Roc::from_f32(&[f32::NAN, 0.0], &[true, false]),
            Err(MetricError::NonFinite { index: 0, .. })
        ));
        assert!(matches!(Roc::from_f32(&[0.1], &[true]), Err(MetricError::EmptyClass { .. })));
    }

    #[test]
    fn negative_zero_equals_zero() {
        let r = roc(&[0.0], &[-0.0]);
        assert_eq!(r.vertices().len(), 2);
        assert!((r.auc() - 0.5).abs() < 1e-15);
    }
}

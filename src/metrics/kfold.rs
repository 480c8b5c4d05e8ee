//! k-fold verification accuracy: pick a threshold on the other k−1 folds, measure on the held-out
//! fold, in the strict mode and the two compat modes of docs/protocols.md §1.3.

use super::stats::{spread, Spread};
use super::{class_name, validated, MetricError};
use serde::{Deserialize, Serialize};

/// Which published procedure to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FoldMode {
    /// Data-driven midpoints, max train accuracy, smallest threshold on ties, accept `score >= t`.
    Strict,
    /// Squared distances on unit vectors, thresholds `i*0.01` (i < 400), same iff `d < t`,
    /// first argmax. Reported ± is the population std.
    Insightface,
    /// 1,000 thresholds between the train min and max, first argmax of TPR−FPR with `>`, a test
    /// score equal to the threshold is wrong for both classes. Reported ± is the SE.
    Facexzoo,
}

impl FoldMode {
    /// Which spread the reference tool prints after "±".
    pub fn reported_spread(self) -> &'static str {
        match self {
            FoldMode::Insightface => "std",
            FoldMode::Strict | FoldMode::Facexzoo => "se",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KFoldAccuracy {
    pub mode: FoldMode,
    pub fold_accuracies: Vec<f64>,
    /// Threshold chosen on each fold's training split (a distance for compat=insightface).
    pub thresholds: Vec<f64>,
    #[serde(flatten)]
    pub spread: Spread,
    pub reported_spread: String,
}

/// Pairs sorted ascending by value (score or distance), with label and fold. All modes (and the
/// ROC) share one sort, and each mode sweeps the sorted pairs once with a small counter per fold
/// instead of filtering or re-sorting per fold.
#[derive(Debug, Clone)]
pub struct SortedPairs {
    values: Vec<f64>,
    genuine: Vec<bool>,
    folds: Vec<u32>,
    /// Original index of each sorted position.
    order: Vec<u32>,
    k: usize,
    /// Per fold (#genuine, #impostor).
    fold_totals: Vec<[usize; 2]>,
}

/// Maps an f64 to a u64 with the same order (finite values; -0.0 is folded into +0.0 first).
fn order_key(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

impl SortedPairs {
    pub fn new(values: &[f64], genuine: &[bool], folds: &[usize], k: usize) -> Result<Self, MetricError> {
        Self::build(values, genuine, folds, k, 0..values.len() as u32, false)
    }

    /// Like [`SortedPairs::new`], but sorting starts from `initial` (a permutation of the pair
    /// indices). Starting close to sorted — distances from the reversed score order, which they
    /// nearly mirror — lets the adaptive merge sort finish in close to linear time.
    pub fn new_from_order(
        values: &[f64],
        genuine: &[bool],
        folds: &[usize],
        k: usize,
        initial: impl Iterator<Item = u32>,
    ) -> Result<Self, MetricError> {
        Self::build(values, genuine, folds, k, initial, true)
    }

    /// `adaptive`: the stable merge sort, fast on nearly sorted input; otherwise the unstable
    /// sort, faster on arbitrary input (equal keys carry equal values, so order among them is moot).
    fn build(
        values: &[f64],
        genuine: &[bool],
        folds: &[usize],
        k: usize,
        initial: impl Iterator<Item = u32>,
        adaptive: bool,
    ) -> Result<Self, MetricError> {
        validated(values, genuine)?;
        if folds.len() != values.len() {
            return Err(MetricError::LengthMismatch { scores: values.len(), labels: folds.len() });
        }
        if let Some((index, &fold)) = folds.iter().enumerate().find(|(_, &f)| f >= k) {
            return Err(MetricError::FoldOutOfRange { index, fold, folds: k });
        }
        let n = values.len();
        let mut order: Vec<(u64, u32)> = initial.map(|i| (order_key(values[i as usize]), i)).collect();
        if order.len() != n || order.iter().any(|&(_, i)| i as usize >= n) {
            return Err(MetricError::LengthMismatch { scores: n, labels: order.len() });
        }
        if adaptive {
            order.sort_by_key(|&(key, _)| key);
        } else {
            order.sort_unstable_by_key(|&(key, _)| key);
        }
        let values: Vec<f64> = order.iter().map(|&(_, i)| values[i as usize] + 0.0).collect();
        let genuine: Vec<bool> = order.iter().map(|&(_, i)| genuine[i as usize]).collect();
        let folds: Vec<u32> = order.iter().map(|&(_, i)| folds[i as usize] as u32).collect();
        let mut fold_totals = vec![[0usize; 2]; k];
        for (f, g) in folds.iter().zip(&genuine) {
            fold_totals[*f as usize][!*g as usize] += 1;
        }
        let order = order.iter().map(|&(_, i)| i).collect();
        let sorted = SortedPairs { values, genuine, folds, order, k, fold_totals };
        let [gen, imp] = sorted.totals();
        for (fold, &[fg, fi]) in sorted.fold_totals.iter().enumerate() {
            for (class, split, count) in
                [(true, "train", gen - fg), (true, "test", fg), (false, "train", imp - fi), (false, "test", fi)]
            {
                if count == 0 {
                    return Err(MetricError::FoldEmptyClass { fold, class: class_name(class), split });
                }
            }
        }
        Ok(sorted)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// (#genuine, #impostor) over all pairs.
    fn totals(&self) -> [usize; 2] {
        self.fold_totals.iter().fold([0, 0], |a, b| [a[0] + b[0], a[1] + b[1]])
    }

    /// (#genuine, #impostor) in the training split of `fold`.
    fn train_totals(&self, fold: usize) -> [usize; 2] {
        let [g, i] = self.totals();
        let [fg, fi] = self.fold_totals[fold];
        [g - fg, i - fi]
    }

    /// Smallest and largest training value of `fold`.
    fn train_range(&self, fold: usize) -> (f64, f64) {
        let f = fold as u32;
        let lo = self.folds.iter().position(|&x| x != f).map_or(f64::NAN, |p| self.values[p]);
        let hi = self.folds.iter().rposition(|&x| x != f).map_or(f64::NAN, |p| self.values[p]);
        (lo, hi)
    }

    /// Test accuracy of every fold in one pass: `right(value, genuine, fold)` says whether a test
    /// pair of that fold is classified correctly.
    fn test_accuracies(&self, right: impl Fn(f64, bool, usize) -> bool) -> Vec<f64> {
        let mut correct = vec![0usize; self.k];
        for p in 0..self.len() {
            let f = self.folds[p] as usize;
            correct[f] += right(self.values[p], self.genuine[p], f) as usize;
        }
        correct.iter().zip(&self.fold_totals).map(|(&c, &[g, i])| ratio(c, g + i)).collect()
    }

    /// Pair indices in descending order of value (a good starting order for distances).
    pub fn descending_order(&self) -> impl Iterator<Item = u32> + '_ {
        self.order.iter().rev().copied()
    }

    /// Index in the caller's arrays of the pair at sorted position `p`.
    pub(crate) fn original_index(&self, p: usize) -> usize {
        self.order[p] as usize
    }

    /// (value, genuine) at sorted position `p`, for the ROC.
    pub(crate) fn at(&self, p: usize) -> (f64, bool) {
        (self.values[p], self.genuine[p])
    }
}

/// `values` is the score (strict, facexzoo) or the squared distance (insightface).
pub fn kfold_accuracy(
    mode: FoldMode,
    values: &[f64],
    genuine: &[bool],
    folds: &[usize],
    k: usize,
) -> Result<KFoldAccuracy, MetricError> {
    Ok(kfold_sorted(mode, &SortedPairs::new(values, genuine, folds, k)?))
}

/// k-fold accuracy on already sorted pairs (sort once, evaluate several modes and the ROC).
pub fn kfold_sorted(mode: FoldMode, pairs: &SortedPairs) -> KFoldAccuracy {
    let (thresholds, fold_accuracies) = match mode {
        FoldMode::Strict => strict(pairs),
        FoldMode::Insightface => insightface(pairs),
        FoldMode::Facexzoo => facexzoo(pairs),
    };
    KFoldAccuracy {
        mode,
        spread: spread(&fold_accuracies),
        fold_accuracies,
        thresholds,
        reported_spread: mode.reported_spread().into(),
    }
}

/// Whether a pair with this value is classified correctly at `threshold` under `mode`'s rule.
pub fn fold_correct(mode: FoldMode, value: f64, genuine: bool, threshold: f64) -> bool {
    match mode {
        FoldMode::Strict => (value >= threshold) == genuine,
        // Same iff distance < t.
        FoldMode::Insightface => (value < threshold) == genuine,
        // A value equal to t is wrong for both classes.
        FoldMode::Facexzoo => {
            if genuine {
                value > threshold
            } else {
                value < threshold
            }
        }
    }
}

fn ratio(correct: usize, total: usize) -> f64 {
    correct as f64 / total as f64
}

/// Running (#genuine, #impostor) per fold over a prefix of the sorted pairs.
struct FoldCounters {
    per_fold: Vec<[usize; 2]>,
    all: [usize; 2],
}

impl FoldCounters {
    fn new(k: usize) -> Self {
        FoldCounters { per_fold: vec![[0; 2]; k], all: [0; 2] }
    }

    fn add(&mut self, fold: u32, genuine: bool) {
        self.per_fold[fold as usize][!genuine as usize] += 1;
        self.all[!genuine as usize] += 1;
    }

    /// (#genuine, #impostor) of `fold`'s training split counted so far.
    fn train(&self, fold: usize) -> [usize; 2] {
        let [g, i] = self.per_fold[fold];
        [self.all[0] - g, self.all[1] - i]
    }
}

fn strict(pairs: &SortedPairs) -> (Vec<f64>, Vec<f64>) {
    let k = pairs.k;
    // Candidates ascending: below everything (accept all), then "just above" each group of equal
    // values. Relative to accepting all, a threshold above sorted[..=p] gains one per training
    // impostor and loses one per training genuine below it: gain_f(p) = S(p) − S_f(p), with S the
    // running (impostors − genuine) over all pairs and S_f over fold f's own pairs. A group
    // without training values of fold f repeats f's previous gain and `>` keeps the first, so each
    // fold's winner ends a group holding one of its training values.
    let n = pairs.len();
    let mut s_all = 0i64;
    let mut s_fold = vec![0i64; k];
    let mut best_gain = vec![0i64; k];
    let mut best_end = vec![usize::MAX; k];
    for p in 0..n {
        let step = if pairs.genuine[p] { -1 } else { 1 };
        s_all += step;
        s_fold[pairs.folds[p] as usize] += step;
        if p + 1 < n && pairs.values[p + 1] == pairs.values[p] {
            continue;
        }
        // Branch-free over folds so the compiler can vectorise it.
        for ((b, e), sf) in best_gain.iter_mut().zip(best_end.iter_mut()).zip(&s_fold) {
            let gain = s_all - sf;
            let better = gain > *b;
            *b = if better { gain } else { *b };
            *e = if better { p } else { *e };
        }
    }
    let best: Vec<Option<usize>> = best_end.iter().map(|&e| (e != usize::MAX).then_some(e)).collect();
    let thresholds: Vec<f64> = (0..k)
        .map(|f| {
            let (lo, hi) = pairs.train_range(f);
            match best[f] {
                None => lo - 1.0,
                Some(p) => match (p + 1..n).find(|&q| pairs.folds[q] as usize != f) {
                    Some(q) => (pairs.values[p] + pairs.values[q]) / 2.0,
                    None => hi + 1.0,
                },
            }
        })
        .collect();
    let acc = pairs.test_accuracies(|v, g, f| fold_correct(FoldMode::Strict, v, g, thresholds[f]));
    (thresholds, acc)
}

fn insightface(pairs: &SortedPairs) -> (Vec<f64>, Vec<f64>) {
    // Same iff d < t: genuine below t are right, impostors at or above t are right. The grid is
    // shared by all folds, so one sweep evaluates every fold at every threshold.
    let k = pairs.k;
    let train: Vec<[usize; 2]> = (0..k).map(|f| pairs.train_totals(f)).collect();
    let mut best = vec![(0.0f64, 0usize); k];
    let mut c = FoldCounters::new(k);
    let mut p = 0;
    for step in 0..400 {
        let t = step as f64 * 0.01;
        while p < pairs.len() && pairs.values[p] < t {
            c.add(pairs.folds[p], pairs.genuine[p]);
            p += 1;
        }
        for (f, b) in best.iter_mut().enumerate() {
            let [g, i] = c.train(f);
            let correct = g + (train[f][1] - i);
            if step == 0 || correct > b.1 {
                *b = (t, correct);
            }
        }
    }
    let thresholds: Vec<f64> = best.iter().map(|b| b.0).collect();
    let acc = pairs.test_accuracies(|d, g, f| fold_correct(FoldMode::Insightface, d, g, thresholds[f]));
    (thresholds, acc)
}

fn facexzoo(pairs: &SortedPairs) -> (Vec<f64>, Vec<f64>) {
    let k = pairs.k;
    // Each fold's grid spans its training min..max, which is the global min..max unless the fold
    // holds an extreme value; folds with the same range share one sweep over the sorted pairs.
    let ranges: Vec<(f64, f64)> = (0..k).map(|f| pairs.train_range(f)).collect();
    let mut thresholds = vec![f64::NAN; k];
    let mut done = vec![false; k];
    for first in 0..k {
        if done[first] {
            continue;
        }
        let (lo, hi) = ranges[first];
        let group: Vec<usize> = (first..k).filter(|&f| !done[f] && ranges[f] == (lo, hi)).collect();
        group.iter().for_each(|&f| done[f] = true);
        let totals: Vec<[usize; 2]> = group.iter().map(|&f| pairs.train_totals(f)).collect();
        // count/n for every count, computed once: the same f64 as dividing each time (numpy's
        // mean), without 2,000 divisions per fold.
        let table = |n: usize| -> Vec<f64> { (0..=n).map(|c| ratio(c, n)).collect() };
        let rates: Vec<[Vec<f64>; 2]> = totals.iter().map(|&[g, i]| [table(g), table(i)]).collect();
        let mut best = vec![(f64::NAN, f64::NEG_INFINITY); group.len()];
        let step = (hi - lo) / 1000.0;
        let mut c = FoldCounters::new(k);
        let mut p = 0usize;
        for j in 1..=1000 {
            let t = lo + step * j as f64;
            // Thresholds ascend, so the position only moves forward.
            while p < pairs.len() && pairs.values[p] <= t {
                c.add(pairs.folds[p], pairs.genuine[p]);
                p += 1;
            }
            for (((&f, &[n_gen, n_imp]), b), [tprs, fprs]) in group.iter().zip(&totals).zip(best.iter_mut()).zip(&rates)
            {
                let [gen_le, imp_le] = c.train(f);
                let tpr = tprs[n_gen - gen_le];
                let fpr = fprs[n_imp - imp_le];
                if tpr - fpr > b.1 {
                    *b = (t, tpr - fpr);
                }
            }
        }
        for (&f, b) in group.iter().zip(&best) {
            thresholds[f] = b.0;
        }
    }
    let acc = pairs.test_accuracies(|s, g, f| fold_correct(FoldMode::Facexzoo, s, g, thresholds[f]));
    (thresholds, acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two folds, hand-checkable.
    fn data() -> (Vec<f64>, Vec<bool>, Vec<usize>) {
        let scores = vec![0.9, 0.7, 0.2, 0.4, 0.8, 0.6, 0.3, 0.5];
        let genuine = vec![true, true, false, false, true, true, false, false];
        let folds = vec![0, 0, 0, 0, 1, 1, 1, 1];
        (scores, genuine, folds)
    }

    #[test]
    fn strict_picks_smallest_best_midpoint() {
        let (s, g, f) = data();
        let r = kfold_accuracy(FoldMode::Strict, &s, &g, &f, 2).unwrap();
        // Fold 0 trains on fold 1: gen {0.6, 0.8}, imp {0.3, 0.5}; best t = (0.5+0.6)/2.
        assert_eq!(r.thresholds[0], (0.5 + 0.6) / 2.0);
        // Fold 1 trains on fold 0: gen {0.7, 0.9}, imp {0.2, 0.4}; best t = (0.4+0.7)/2.
        assert_eq!(r.thresholds[1], (0.4 + 0.7) / 2.0);
        assert_eq!(r.fold_accuracies, vec![1.0, 1.0]);
    }

    #[test]
    fn empty_class_in_a_fold_is_an_error() {
        let (s, mut g, f) = data();
        g[4] = false;
        g[5] = false;
        let e = kfold_accuracy(FoldMode::Strict, &s, &g, &f, 2).unwrap_err();
        assert_eq!(e, MetricError::FoldEmptyClass { fold: 0, class: "genuine", split: "train" });
    }

    #[test]
    fn fold_out_of_range_is_an_error() {
        let (s, g, f) = data();
        assert!(matches!(
            kfold_accuracy(FoldMode::Facexzoo, &s, &g, &f, 1),
            Err(MetricError::FoldOutOfRange { index: 4, fold: 1, folds: 1 })
        ));
    }

    #[test]
    fn insightface_uses_strict_less_than_on_distance() {
        // Genuine distance exactly 0.5 is "same" only for t > 0.5.
        let d = vec![0.5, 1.5, 0.5, 1.5];
        let g = vec![true, false, true, false];
        let f = vec![0, 0, 1, 1];
        let r = kfold_accuracy(FoldMode::Insightface, &d, &g, &f, 2).unwrap();
        assert_eq!(r.thresholds[0], 51.0 * 0.01);
        assert_eq!(r.fold_accuracies, vec![1.0, 1.0]);
    }
}

//! Demographic differentials: who does the model fail? Error rates of groups of people (RFW
//! subsets, age bands, a manifest's `group` or any column) at one global threshold, and the
//! standard summary measures over the groups (docs/protocols.md §11).
//!
//! At each FMR target the threshold is the strict rule's on all pairs ([`Roc::tar_at_far`]); a
//! pair belongs to a group when both its images do, to "cross-group" when its images are in
//! different groups, and to nothing when an image has no group. Per group: FMR (impostor pairs
//! of the group), FNMR (genuine pairs of the group), their counts and cluster-bootstrap
//! intervals, and the threshold the group's own impostors would give for the target. Over the
//! groups: max/min ratio and max difference of each rate, ratios to a reference group, the
//! Fairness Discrepancy Rate (de Freitas Pereira & Marcel) and GARBE (Howard et al.).

use super::bootstrap::{interval, over_resamples, BootstrapSpec, CellCounts, Interval};
use super::{MetricError, Roc, TarRule};
use serde::{Deserialize, Serialize};

/// Label of the pairs whose images are in two different groups.
pub const CROSS_GROUP: &str = "(cross-group)";

/// An age band (inclusive years; `hi = None` is open-ended) with its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeBand {
    pub name: String,
    pub lo: u32,
    pub hi: Option<u32>,
}

impl AgeBand {
    pub fn contains(&self, age: u32) -> bool {
        age >= self.lo && self.hi.is_none_or(|hi| age <= hi)
    }
}

/// Children 0–12, teens 13–19, adults 20–59, elderly 60+.
pub fn default_age_bands() -> Vec<AgeBand> {
    [("children", 0, Some(12)), ("teens", 13, Some(19)), ("adults", 20, Some(59)), ("elderly", 60, None)]
        .into_iter()
        .map(|(name, lo, hi)| AgeBand { name: name.into(), lo, hi })
        .collect()
}

/// The band of each age (None: in no band).
pub fn band_of(ages: &[u32], bands: &[AgeBand]) -> Vec<Option<u32>> {
    ages.iter().map(|&a| bands.iter().position(|b| b.contains(a)).map(|i| i as u32)).collect()
}

/// What the summary measures are computed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifferentialParams {
    /// FMR targets: one global threshold each (strict rule on all pairs).
    pub far_targets: Vec<f64>,
    /// FDR's weight of the FMR discrepancy: FDR = 1 − (α·A + (1 − α)·B).
    pub fdr_alpha: f64,
    /// GARBE's weight of the FMR Gini coefficient: GARBE = α·G_FMR + (1 − α)·G_FNMR.
    pub garbe_alpha: f64,
    /// The group ratios are taken to, when it is one of the groups.
    pub reference: Option<String>,
}

/// Scored pairs with the group of each pair's two images.
pub struct GroupedPairs<'a> {
    pub scores: &'a [f64],
    pub genuine: &'a [bool],
    /// Group (index into `names`) of each pair's first and second image; None: no group.
    pub groups: &'a [[Option<u32>; 2]],
    pub names: &'a [String],
    /// Bootstrap cluster (identity) of each pair, in `0..n_clusters`.
    pub clusters: &'a [u32],
    pub n_clusters: usize,
}

/// One group's error rates at the global threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRates {
    pub group: String,
    pub n_genuine: u64,
    /// Genuine pairs rejected (score < threshold).
    pub false_non_matches: u64,
    /// false_non_matches / n_genuine; null without genuine pairs.
    pub fnmr: Option<f64>,
    pub n_impostor: u64,
    /// Impostor pairs accepted (score >= threshold).
    pub false_matches: u64,
    /// false_matches / n_impostor; null without impostor pairs.
    pub fmr: Option<f64>,
    pub fnmr_interval: Option<Interval>,
    pub fmr_interval: Option<Interval>,
    /// The strict rule's threshold for the target on this group's impostor pairs alone: the
    /// threshold a per-group calibration would use. Null when the group has no impostor pairs or
    /// too few to measure the target.
    pub own_threshold: Option<f64>,
    /// fmr / the reference group's fmr (null without a reference, when either is undefined or
    /// when the reference's is 0).
    pub fmr_ratio_to_reference: Option<f64>,
    pub fnmr_ratio_to_reference: Option<f64>,
}

/// Pairs whose two images are in different groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossGroupRates {
    pub n_impostor: u64,
    pub false_matches: u64,
    pub fmr: Option<f64>,
    pub fmr_interval: Option<Interval>,
    pub n_genuine: u64,
    pub false_non_matches: u64,
    pub fnmr: Option<f64>,
}

/// The spread of one rate over the groups where it is defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateSpread {
    /// Groups where the rate is defined (the others do not take part).
    pub groups: usize,
    pub max: Option<f64>,
    pub max_group: Option<String>,
    pub min: Option<f64>,
    pub min_group: Option<String>,
    /// max / min; null with fewer than two groups or when min is 0 (the ratio is unbounded).
    pub max_min_ratio: Option<f64>,
    /// max − min (FDR's A for FMR, B for FNMR); null with fewer than two groups.
    pub max_difference: Option<f64>,
    /// Gini coefficient with the n/(n−1) correction; 0 when every rate is 0; null with fewer
    /// than two groups.
    pub gini: Option<f64>,
}

impl RateSpread {
    /// The spread of `rates` (None: undefined for that group), first group winning ties.
    pub fn of(rates: &[Option<f64>], names: &[String]) -> RateSpread {
        let defined: Vec<(usize, f64)> = rates.iter().enumerate().filter_map(|(i, r)| r.map(|r| (i, r))).collect();
        let mut hi: Option<(usize, f64)> = None;
        let mut lo: Option<(usize, f64)> = None;
        for &(i, r) in &defined {
            if hi.is_none_or(|(_, h)| r > h) {
                hi = Some((i, r));
            }
            if lo.is_none_or(|(_, l)| r < l) {
                lo = Some((i, r));
            }
        }
        let two = defined.len() >= 2;
        let values: Vec<f64> = defined.iter().map(|&(_, r)| r).collect();
        RateSpread {
            groups: defined.len(),
            max: hi.map(|h| h.1),
            max_group: hi.map(|h| names[h.0].clone()),
            min: lo.map(|l| l.1),
            min_group: lo.map(|l| names[l.0].clone()),
            max_min_ratio: match (hi, lo) {
                (Some((_, h)), Some((_, l))) if two && l > 0.0 => Some(h / l),
                _ => None,
            },
            max_difference: match (hi, lo) {
                (Some((_, h)), Some((_, l))) if two => Some(h - l),
                _ => None,
            },
            gini: gini(&values),
        }
    }
}

/// Gini coefficient of `x` with the small-sample correction n/(n−1) (Howard et al.):
/// G = n/(n−1) · Σ_i Σ_j |x_i − x_j| / (2 n² x̄); 0 when x̄ = 0 (all equal); None for n < 2.
pub fn gini(x: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mean = x.iter().sum::<f64>() / nf;
    if mean == 0.0 {
        return Some(0.0);
    }
    let mut s = 0.0;
    for a in x {
        for b in x {
            s += (a - b).abs();
        }
    }
    Some(nf / (nf - 1.0) * s / (2.0 * nf * nf * mean))
}

/// The summary measures over the groups at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifferentialSummary {
    pub fmr: RateSpread,
    pub fnmr: RateSpread,
    /// Fairness Discrepancy Rate, 1 − (α·A + (1 − α)·B) with A, B the max differences of FMR
    /// and FNMR; 1 = no discrepancy. Null unless both A and B are defined.
    pub fdr: Option<f64>,
    pub fdr_interval: Option<Interval>,
    /// α·Gini(FMR) + (1 − α)·Gini(FNMR); 0 = equal rates. Null unless both Ginis are defined.
    pub garbe: Option<f64>,
    pub garbe_interval: Option<Interval>,
}

/// FDR and GARBE from the two spreads.
fn fdr_garbe(fmr: &RateSpread, fnmr: &RateSpread, p: &DifferentialParams) -> (Option<f64>, Option<f64>) {
    let fdr = match (fmr.max_difference, fnmr.max_difference) {
        (Some(a), Some(b)) => Some(1.0 - (p.fdr_alpha * a + (1.0 - p.fdr_alpha) * b)),
        _ => None,
    };
    let garbe = match (fmr.gini, fnmr.gini) {
        (Some(a), Some(b)) => Some(p.garbe_alpha * a + (1.0 - p.garbe_alpha) * b),
        _ => None,
    };
    (fdr, garbe)
}

/// Everything at one FMR target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifferentialsAt {
    pub far_target: f64,
    /// False when the target is below 1/N_impostor of all pairs (then only `note` is set).
    pub available: bool,
    /// Accept iff score >= threshold (strict rule at `far_target` on all pairs).
    pub threshold: Option<f64>,
    /// The FMR achieved over all impostor pairs at `threshold`.
    pub fmr: Option<f64>,
    pub note: Option<String>,
    pub groups: Vec<GroupRates>,
    pub cross_group: Option<CrossGroupRates>,
    pub summary: Option<DifferentialSummary>,
}

/// FMR levels at which each group's impostor tail is described.
pub const TAIL_FMRS: [f64; 7] = [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4];

/// One point of a group's impostor tail: the strict rule's threshold for `fmr` on the group's own
/// impostor pairs (the score that fraction of them reach).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TailPoint {
    pub fmr: f64,
    pub threshold: f64,
}

/// The upper tail of one group's impostor scores, at the [`TAIL_FMRS`] its pairs can measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpostorTail {
    pub group: String,
    pub n_impostor: u64,
    pub points: Vec<TailPoint>,
}

/// The differentials by one attribute (RFW subset, age band, a manifest column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Differentials {
    /// "subset", "age_band", or the manifest column.
    pub attribute: String,
    /// Every group, in the attribute's order (groups without pairs included, with null rates).
    pub groups: Vec<String>,
    pub reference: Option<String>,
    pub fdr_alpha: f64,
    pub garbe_alpha: f64,
    /// Pairs with an image outside every group (in no group, not cross-group).
    pub ungrouped_pairs: u64,
    pub at: Vec<DifferentialsAt>,
    /// Each group's impostor score tail (groups with impostor pairs).
    pub impostor_tails: Vec<ImpostorTail>,
}

/// What one bootstrap resample gives: every cell's (FMR, FNMR), FDR and GARBE (NaN where
/// undefined).
struct Resample {
    rates: Vec<(Option<f64>, Option<f64>)>,
    fdr: f64,
    garbe: f64,
}

fn rate(hits: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| hits as f64 / n as f64)
}

/// Per group (and the cross-group cell last): (fmr, fnmr) from `[gen, gen accepted, imp, imp accepted]`.
fn rates(totals: &[[u64; 4]]) -> Vec<(Option<f64>, Option<f64>)> {
    totals.iter().map(|&[g, ga, i, ia]| (rate(ia, i), rate(g - ga, g))).collect()
}

/// The cell of a pair: its group when both images share it, `n` (cross-group) when both have
/// different groups, None when an image has no group.
fn cell_of(groups: [Option<u32>; 2], n: usize) -> Option<usize> {
    match groups {
        [Some(a), Some(b)] if a == b => Some(a as usize),
        [Some(_), Some(_)] => Some(n),
        _ => None,
    }
}

/// The differentials of `pairs` by `attribute`; `roc` is the ROC of all the pairs (it picks the
/// global threshold of every target).
pub fn differentials(
    attribute: &str,
    pairs: &GroupedPairs,
    roc: &Roc,
    params: &DifferentialParams,
    spec: &BootstrapSpec,
) -> Result<Differentials, MetricError> {
    let n = pairs.names.len();
    let len = pairs.scores.len();
    if let Some(&l) = [pairs.genuine.len(), pairs.groups.len(), pairs.clusters.len()].iter().find(|&&l| l != len) {
        return Err(MetricError::LengthMismatch { scores: len, labels: l });
    }
    let cells: Vec<Option<usize>> = pairs.groups.iter().map(|&g| cell_of(g, n)).collect();
    let reference = params.reference.as_ref().and_then(|r| pairs.names.iter().position(|x| x == r));
    // Each group's impostor scores, for its own operating threshold.
    let mut own_impostors: Vec<Vec<f64>> = vec![Vec::new(); n];
    for ((&cell, &genuine), &score) in cells.iter().zip(pairs.genuine).zip(pairs.scores) {
        if let (Some(c), false) = (cell, genuine) {
            if c < n {
                own_impostors[c].push(score);
            }
        }
    }
    let own_rocs: Vec<Option<Roc>> = own_impostors.iter().map(|s| Roc::of_impostors(s).ok()).collect();
    let identity: Vec<u32> = (0..pairs.n_clusters as u32).collect();
    let mut at = Vec::with_capacity(params.far_targets.len());
    for &far in &params.far_targets {
        let global = roc.tar_at_far(far, TarRule::Strict);
        let Some(threshold) = global.threshold.filter(|_| global.available) else {
            at.push(DifferentialsAt {
                far_target: far,
                available: false,
                threshold: None,
                fmr: None,
                note: global.note,
                groups: Vec::new(),
                cross_group: None,
                summary: None,
            });
            continue;
        };
        let mut counts = CellCounts::new(n + 1);
        for (k, cell) in cells.iter().enumerate() {
            if let Some(c) = *cell {
                counts.add(pairs.clusters[k], c, pairs.genuine[k], pairs.scores[k] >= threshold);
            }
        }
        let full = counts.totals(None);
        let full_rates = rates(&full);
        let summarise = |r: &[(Option<f64>, Option<f64>)]| {
            let fmr: Vec<Option<f64>> = r[..n].iter().map(|x| x.0).collect();
            let fnmr: Vec<Option<f64>> = r[..n].iter().map(|x| x.1).collect();
            let (f, g) = (RateSpread::of(&fmr, pairs.names), RateSpread::of(&fnmr, pairs.names));
            let (fdr, garbe) = fdr_garbe(&f, &g, params);
            (f, g, fdr, garbe)
        };
        // Per resample: every cell's (fmr, fnmr), then FDR and GARBE; NaN where undefined.
        let samples = over_resamples(&identity, pairs.n_clusters, spec, |w| {
            let rates = rates(&counts.totals(Some(w)));
            let (_, _, fdr, garbe) = summarise(&rates);
            Resample { rates, fdr: fdr.unwrap_or(f64::NAN), garbe: garbe.unwrap_or(f64::NAN) }
        });
        let iv = |est: Option<f64>, f: &dyn Fn(&Resample) -> f64| {
            est.map(|e| interval(e, samples.iter().map(f).collect(), spec.confidence))
        };
        let (ref_fmr, ref_fnmr) = reference.map_or((None, None), |r| full_rates[r]);
        let ratio = |x: Option<f64>, r: Option<f64>| match (x, r) {
            (Some(x), Some(r)) if r > 0.0 => Some(x / r),
            _ => None,
        };
        let groups = (0..n)
            .map(|g| {
                let [gn, ga, im, ia] = full[g];
                let (fmr, fnmr) = full_rates[g];
                GroupRates {
                    group: pairs.names[g].clone(),
                    n_genuine: gn,
                    false_non_matches: gn - ga,
                    fnmr,
                    n_impostor: im,
                    false_matches: ia,
                    fmr,
                    fnmr_interval: iv(fnmr, &|s| s.rates[g].1.unwrap_or(f64::NAN)),
                    fmr_interval: iv(fmr, &|s| s.rates[g].0.unwrap_or(f64::NAN)),
                    own_threshold: own_rocs[g].as_ref().and_then(|r| {
                        let t = r.tar_at_far(far, TarRule::Strict);
                        t.threshold.filter(|_| t.available)
                    }),
                    fmr_ratio_to_reference: ratio(fmr, ref_fmr),
                    fnmr_ratio_to_reference: ratio(fnmr, ref_fnmr),
                }
            })
            .collect();
        let [cg, cga, ci, cia] = full[n];
        let cross = CrossGroupRates {
            n_impostor: ci,
            false_matches: cia,
            fmr: full_rates[n].0,
            fmr_interval: iv(full_rates[n].0, &|s| s.rates[n].0.unwrap_or(f64::NAN)),
            n_genuine: cg,
            false_non_matches: cg - cga,
            fnmr: full_rates[n].1,
        };
        let (fmr, fnmr, fdr, garbe) = summarise(&full_rates);
        at.push(DifferentialsAt {
            far_target: far,
            available: true,
            threshold: Some(threshold),
            fmr: global.far,
            note: global.note,
            groups,
            cross_group: Some(cross),
            summary: Some(DifferentialSummary {
                fmr,
                fnmr,
                fdr,
                fdr_interval: iv(fdr, &|s| s.fdr),
                garbe,
                garbe_interval: iv(garbe, &|s| s.garbe),
            }),
        });
    }
    let impostor_tails = (0..n)
        .filter_map(|g| {
            let roc = own_rocs[g].as_ref()?;
            let points = TAIL_FMRS
                .iter()
                .filter_map(|&fmr| {
                    let t = roc.tar_at_far(fmr, TarRule::Strict);
                    t.threshold.filter(|_| t.available).map(|threshold| TailPoint { fmr, threshold })
                })
                .collect();
            Some(ImpostorTail { group: pairs.names[g].clone(), n_impostor: own_impostors[g].len() as u64, points })
        })
        .collect();
    Ok(Differentials {
        attribute: attribute.to_string(),
        groups: pairs.names.to_vec(),
        reference: reference.map(|r| pairs.names[r].clone()),
        fdr_alpha: params.fdr_alpha,
        garbe_alpha: params.garbe_alpha,
        ungrouped_pairs: cells.iter().filter(|c| c.is_none()).count() as u64,
        at,
        impostor_tails,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gini_of_equal_rates_is_zero_and_of_one_nonzero_rate_is_one() {
        assert_eq!(gini(&[0.1, 0.1, 0.1]), Some(0.0));
        assert_eq!(gini(&[0.0, 0.0]), Some(0.0));
        // n = 2, x = (0, r): Σ|xi − xj| = 2r, x̄ = r/2 → 2/1 · 2r / (2·4·r/2) = 1.
        assert_eq!(gini(&[0.0, 0.3]), Some(1.0));
        assert_eq!(gini(&[0.3]), None);
    }

    #[test]
    fn spread_skips_undefined_groups_and_refuses_unbounded_ratios() {
        let n = names(&["a", "b", "c"]);
        let s = RateSpread::of(&[Some(0.2), None, Some(0.05)], &n);
        assert_eq!((s.groups, s.max_group.as_deref(), s.min_group.as_deref()), (2, Some("a"), Some("c")));
        assert_eq!((s.max_min_ratio, s.max_difference), (Some(4.0), Some(0.2 - 0.05)));
        let z = RateSpread::of(&[Some(0.2), Some(0.0), None], &n);
        assert_eq!(z.max_min_ratio, None);
        let one = RateSpread::of(&[None, Some(0.1), None], &n);
        assert_eq!((one.max_min_ratio, one.max_difference, one.gini), (None, None, None));
    }

    /// Two groups, four pairs each; a cross-group impostor and an ungrouped pair. FAR 0.25 of
    /// 5 impostors allows one false accept: the threshold is the highest impostor score, 0.9.
    #[test]
    fn hand_checked_two_groups() {
        let scores = [0.95, 0.5, 0.9, 0.1, 0.99, 0.97, 0.2, 0.3, 0.92, 0.8];
        let genuine = [true, true, false, false, true, true, false, false, false, true];
        let (a, b) = (Some(0u32), Some(1u32));
        let groups = [[a, a], [a, a], [a, a], [a, a], [b, b], [b, b], [b, b], [b, b], [a, b], [None, b]];
        let clusters: Vec<u32> = (0..10).collect();
        let names = names(&["A", "B"]);
        let pairs = GroupedPairs {
            scores: &scores,
            genuine: &genuine,
            groups: &groups,
            names: &names,
            clusters: &clusters,
            n_clusters: 10,
        };
        let roc = Roc::new(&scores, &genuine).unwrap();
        let params = DifferentialParams {
            far_targets: vec![0.2, 0.1],
            fdr_alpha: 0.5,
            garbe_alpha: 0.5,
            reference: Some("B".into()),
        };
        let spec = BootstrapSpec { resamples: 50, ..Default::default() };
        let d = differentials("x", &pairs, &roc, &params, &spec).unwrap();
        assert_eq!(d.ungrouped_pairs, 1);
        let at = &d.at[0];
        // Impostors 0.92 (cross), 0.9, 0.3, 0.2, 0.1: FAR 0.2 allows one → threshold 0.92.
        assert_eq!(at.threshold, Some(0.92));
        let (ga, gb) = (&at.groups[0], &at.groups[1]);
        assert_eq!((ga.false_non_matches, ga.fnmr, ga.false_matches, ga.fmr), (1, Some(0.5), 0, Some(0.0)));
        assert_eq!((gb.false_non_matches, gb.fnmr, gb.false_matches, gb.fmr), (0, Some(0.0), 0, Some(0.0)));
        let c = at.cross_group.as_ref().unwrap();
        assert_eq!((c.n_impostor, c.false_matches, c.fmr), (1, 1, Some(1.0)));
        let s = at.summary.as_ref().unwrap();
        assert_eq!((s.fnmr.max_difference, s.fmr.max_difference), (Some(0.5), Some(0.0)));
        assert_eq!(s.fdr, Some(1.0 - 0.5 * 0.5));
        assert_eq!(s.garbe, Some(0.5 * 0.0 + 0.5 * 1.0));
        // Reference B has FNMR 0: ratios to it are undefined.
        assert_eq!(ga.fnmr_ratio_to_reference, None);
        // Each group's own two impostors: FAR 0.2 allows none → just above the top one.
        assert_eq!(ga.own_threshold, None, "2 impostors cannot measure 0.2");
        // FAR 0.1 of 5 impostors is below 1/N: not available.
        assert!(!d.at[1].available && d.at[1].groups.is_empty());
    }
}

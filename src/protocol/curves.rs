//! The companion data of a run that protocols produce beside their metrics: chart data
//! (`curves.json`: ROC vertices, score histograms, marked thresholds, open-set curves) and the
//! per-pair outcomes a paired bootstrap needs (`pair_scores.npy`). Plain data: the run model
//! (`crate::run`) writes and reads them, reports draw them.

use serde::{Deserialize, Serialize};

pub const CURVES_SCHEMA: &str = "aifr-eval/curves";

/// Exact ROC vertices in ascending FAR (accept iff score >= threshold; null threshold = +inf).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    pub far: Vec<f64>,
    pub tar: Vec<f64>,
    pub threshold: Vec<Option<f64>>,
}

/// Equal-width histogram of genuine and impostor scores over [lo, hi].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreHistogram {
    pub lo: f64,
    pub hi: f64,
    pub genuine: Vec<u64>,
    pub impostor: Vec<u64>,
}

/// A threshold worth drawing on the histogram (EER, TAR@FAR operating points, k-fold mean).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkedThreshold {
    pub label: String,
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curves {
    pub schema: String,
    pub schema_version: u32,
    pub roc: RocCurve,
    pub score_histogram: ScoreHistogram,
    pub marked_thresholds: Vec<MarkedThreshold>,
    /// IJB 1:N: TPIR against FPIR (strict rule) per gallery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_set: Option<Vec<OpenSetCurve>>,
}

/// TPIR (strict rule) at each distinct non-mated maximum score of one gallery, FPIR ascending
/// (thinned on a log-FPIR grid above 2,000 points).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSetCurve {
    pub gallery: String,
    pub fpir: Vec<f64>,
    pub tpir: Vec<f64>,
}

impl OpenSetCurve {
    pub fn thinned(gallery: &str, points: &[(f64, f64)]) -> Self {
        let keep: Vec<&(f64, f64)> = if points.len() <= MAX_CURVE_POINTS {
            points.iter().collect()
        } else {
            thin_runs(points, |p| rate_cell(p.0, p.1), Keep::Last)
        };
        OpenSetCurve {
            gallery: gallery.to_string(),
            fpir: keep.iter().map(|p| p.0).collect(),
            tpir: keep.iter().map(|p| p.1).collect(),
        }
    }
}

/// Which point of each run of consecutive points in one cell a thinned curve keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    First,
    Last,
}

/// The one thinning rule of every chart curve: the first and the last point, and one point
/// (`keep`) of each run of consecutive points that fall in the same `cell`. Values at the kept
/// points are exact. Streams, so a 15 M-vertex ROC is never collected whole.
pub fn thin_runs<P, K: PartialEq>(points: impl IntoIterator<Item = P>, cell: impl Fn(&P) -> K, keep: Keep) -> Vec<P> {
    let mut out = Vec::new();
    let mut it = points.into_iter().peekable();
    let (mut prev, mut cur): (Option<K>, Option<K>) = (None, None);
    while let Some(p) = it.next() {
        let c = cur.take().unwrap_or_else(|| cell(&p));
        let next = it.peek().map(&cell);
        let ends = prev.is_none() || next.is_none();
        let edge = match keep {
            Keep::First => prev.as_ref() != Some(&c),
            Keep::Last => next.as_ref() != Some(&c),
        };
        if ends || edge {
            out.push(p);
        }
        prev = Some(c);
        cur = next;
    }
    out
}

/// Grid cell of an (error rate, acceptance rate) point: 100 per decade of the error rate (a
/// zero rate is its own cell), 400 of the acceptance rate. ROC (FAR, TAR) and open-set (FPIR,
/// TPIR) curves share it.
fn rate_cell(error: f64, accept: f64) -> (i64, i64) {
    let x = if error > 0.0 { (error.log10() * 100.0).floor() as i64 } else { i64::MIN };
    (x, (accept * 400.0).floor() as i64)
}

/// CMC points kept per decade of rank in `cmc_curves.json`.
const CMC_PER_DECADE: f64 = 50.0;

/// A CMC curve thinned for charts: the first point of each 1/50 decade of rank, and the last.
pub fn thin_cmc(curve: Vec<crate::metrics::cmc::CmcPoint>) -> Vec<crate::metrics::cmc::CmcPoint> {
    thin_runs(curve, |p| ((p.rank as f64).log10() * CMC_PER_DECADE).floor() as i64, Keep::First)
}

/// Per-pair scores with what a paired bootstrap needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PairScores {
    pub score: Vec<f64>,
    pub genuine: Vec<bool>,
    pub fold: Vec<u32>,
    /// Bootstrap unit of each pair (an identity index, or the pair itself when identities are unknown).
    pub cluster: Vec<u32>,
    /// Classified correctly at its fold's k-fold threshold (under the run's mode).
    pub correct: Vec<bool>,
}

/// Most ROC vertices kept in curves.json (charts need shape, not every one of 15 M vertices).
const MAX_CURVE_POINTS: usize = 2000;
const HISTOGRAM_BINS: usize = 100;

impl Curves {
    /// Chart data for one run: the exact ROC (thinned on a log-FAR grid when huge), histograms
    /// of both classes, and the thresholds to mark.
    pub fn build<S: Copy + Into<f64>>(
        roc: &crate::metrics::Roc,
        scores: &[S],
        genuine: &[bool],
        marked_thresholds: Vec<MarkedThreshold>,
    ) -> Self {
        let n = roc.len() + 1;
        let keep: Vec<crate::metrics::RocPoint> = if n <= MAX_CURVE_POINTS {
            roc.vertex_iter().collect()
        } else {
            thin_runs(roc.vertex_iter(), |p| rate_cell(p.fpr, p.tpr), Keep::Last)
        };
        let (lo, hi) = scores
            .iter()
            .map(|&s| s.into())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| (lo.min(s), hi.max(s)));
        let (mut gen, mut imp) = (vec![0u64; HISTOGRAM_BINS], vec![0u64; HISTOGRAM_BINS]);
        let width = (hi - lo) / HISTOGRAM_BINS as f64;
        for (&s, &g) in scores.iter().zip(genuine) {
            let s: f64 = s.into();
            let b = if width > 0.0 { (((s - lo) / width) as usize).min(HISTOGRAM_BINS - 1) } else { 0 };
            if g {
                gen[b] += 1;
            } else {
                imp[b] += 1;
            }
        }
        Curves {
            schema: CURVES_SCHEMA.into(),
            schema_version: 1,
            roc: RocCurve {
                far: keep.iter().map(|p| p.fpr).collect(),
                tar: keep.iter().map(|p| p.tpr).collect(),
                threshold: keep.iter().map(|p| p.threshold.is_finite().then_some(p.threshold)).collect(),
            },
            score_histogram: ScoreHistogram { lo, hi, genuine: gen, impostor: imp },
            marked_thresholds,
            open_set: None,
        }
    }
}

/// MegaFace's chart data beside results.json.
pub const CMC_CURVES_FILE: &str = "cmc_curves.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmcCurve {
    pub distractors: u32,
    /// (1-based rank, identification rate) where the curve steps, thinned to ~50 per decade of
    /// rank (values exact at the kept ranks), always with the first and the last step.
    pub points: Vec<(u64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmcCurves {
    pub schema: String,
    pub schema_version: u32,
    pub curves: Vec<CmcCurve>,
}

impl CmcCurves {
    pub fn new(curves: &[(u32, Vec<crate::metrics::cmc::CmcPoint>)]) -> Self {
        CmcCurves {
            schema: "aifr-eval/cmc-curves".into(),
            schema_version: 1,
            curves: curves
                .iter()
                .map(|(n, pts)| CmcCurve {
                    distractors: *n,
                    points: pts.iter().map(|p| (p.rank, p.identification_rate)).collect(),
                })
                .collect(),
        }
    }

    pub fn load(dir: &std::path::Path) -> crate::error::Result<Option<Self>> {
        let path = dir.join(CMC_CURVES_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(|e| crate::error::Error::read(&path, e))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::error::Error::data(&path, format!("not a valid CMC curves file: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Roc;

    #[test]
    fn thinning_keeps_the_ends_and_one_point_per_run() {
        let cells = [0, 0, 1, 1, 1, 2, 0, 0];
        let idx = |keep| thin_runs(0..cells.len(), |&i| cells[i], keep);
        assert_eq!(idx(Keep::Last), [0, 1, 4, 5, 7]);
        assert_eq!(idx(Keep::First), [0, 2, 5, 6, 7]);
        assert_eq!(thin_runs([9], |_| 0, Keep::Last), [9]);
        assert!(thin_runs(Vec::<u8>::new(), |_| 0, Keep::First).is_empty());
    }

    /// CMC curves keep the first step of each 1/50 decade of rank, and the last step.
    #[test]
    fn cmc_curves_keep_the_first_step_per_fiftieth_of_a_decade() {
        use crate::metrics::cmc::CmcPoint;
        let pts: Vec<CmcPoint> =
            (1..=1000u64).map(|r| CmcPoint { rank: r, identification_rate: r as f64 / 1e3 }).collect();
        let kept: Vec<u64> = thin_cmc(pts).iter().map(|p| p.rank).collect();
        let cell = |r: u64| ((r as f64).log10() * 50.0).floor() as i64;
        let want: Vec<u64> = (1..=1000u64).filter(|&r| r == 1 || r == 1000 || cell(r) != cell(r - 1)).collect();
        assert_eq!(kept, want);
        assert_eq!(kept.len(), 105);
    }

    #[test]
    fn curves_thin_huge_rocs_but_keep_the_ends() {
        let n = 20_000;
        let scores: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
        let genuine: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let roc = Roc::new(&scores, &genuine).unwrap();
        let c = Curves::build(&roc, &scores, &genuine, vec![]);
        assert!(c.roc.far.len() <= 2 * MAX_CURVE_POINTS && c.roc.far.len() > 100, "{}", c.roc.far.len());
        assert_eq!((c.roc.far[0], c.roc.tar[0], c.roc.threshold[0]), (0.0, 0.0, None));
        assert_eq!((*c.roc.far.last().unwrap(), *c.roc.tar.last().unwrap()), (1.0, 1.0));
        assert!(c.roc.far.windows(2).all(|w| w[0] <= w[1]));
        let total: u64 = c.score_histogram.genuine.iter().chain(&c.score_histogram.impostor).sum();
        assert_eq!(total, n as u64);
    }
}

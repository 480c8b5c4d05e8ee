//! A run directory as later stages (reports, gate) read it back:
//!
//! ```text
//! <run>/results.json      metrics (docs/results-schema.md)
//! <run>/curves.json       exact ROC vertices, score histograms, marked thresholds (for charts)
//! <run>/pair_scores.npy   N×5 float64: score, genuine (1/0), fold, cluster (bootstrap unit),
//!                         correct (1/0: classified right at its fold's k-fold threshold)
//! <run>/timings.json      wall-clock stages (not deterministic, never compared)
//! ```

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
        let cell = |p: &(f64, f64)| ((p.0.log10() * 100.0).floor() as i64, (p.1 * 400.0).floor() as i64);
        let keep: Vec<&(f64, f64)> = if points.len() <= MAX_CURVE_POINTS {
            points.iter().collect()
        } else {
            let last = points.len() - 1;
            points
                .iter()
                .enumerate()
                .filter(|(i, p)| *i == 0 || *i == last || cell(p) != cell(&points[i + 1]))
                .map(|(_, p)| p)
                .collect()
        };
        OpenSetCurve {
            gallery: gallery.to_string(),
            fpir: keep.iter().map(|p| p.0).collect(),
            tpir: keep.iter().map(|p| p.1).collect(),
        }
    }
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

/// One run directory, loaded.
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    /// results.json as written (schema in docs/results-schema.md).
    pub results: serde_json::Value,
    /// curves.json, when present.
    pub curves: Option<Curves>,
    /// pair_scores.npy, when present.
    pub pairs: Option<PairScores>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::read(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::data(path, format!("not valid JSON for this file: {e}")))
}

impl RunData {
    /// Loads `dir/results.json` (required) and the optional companions.
    pub fn load(dir: &Path) -> Result<Self> {
        let results_path = if dir.is_file() { dir.to_path_buf() } else { dir.join("results.json") };
        let dir = results_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let results: serde_json::Value = read_json(&results_path)?;
        if results["schema"] != crate::report::results::SCHEMA {
            return Err(Error::data(
                &results_path,
                "not an aifr-eval results.json (schema field missing or different)",
            ));
        }
        let version = results["schema_version"].as_u64().unwrap_or(0);
        if version != crate::report::results::SCHEMA_VERSION as u64 {
            return Err(Error::data(&results_path, format!("results schema version {version} is not supported")));
        }
        let curves_path = dir.join("curves.json");
        let curves = if curves_path.exists() { Some(read_json::<Curves>(&curves_path)?) } else { None };
        let pairs_path = dir.join("pair_scores.npy");
        let pairs = if pairs_path.exists() { Some(read_pair_scores(&pairs_path)?) } else { None };
        Ok(RunData { dir, results, curves, pairs })
    }

    /// Display name of the run: the directory name.
    pub fn name(&self) -> String {
        self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| self.dir.display().to_string())
    }
}

pub fn write_pair_scores(path: &Path, p: &PairScores) -> Result<()> {
    let mut data = Vec::with_capacity(p.score.len() * 5);
    for i in 0..p.score.len() {
        let flag = |b: bool| b as u8 as f64;
        data.extend_from_slice(&[
            p.score[i],
            flag(p.genuine[i]),
            p.fold[i] as f64,
            p.cluster[i] as f64,
            flag(p.correct[i]),
        ]);
    }
    crate::store::import::write_npy_f64(path, p.score.len(), 5, &data)
}

pub fn read_pair_scores(path: &Path) -> Result<PairScores> {
    let (rows, cols, data) = crate::store::import::read_npy_f64(path)?;
    if cols != 5 {
        return Err(Error::data(
            path,
            format!("expected an N×5 array (score, genuine, fold, cluster, correct), found N×{cols}"),
        ));
    }
    let mut p = PairScores::default();
    for r in data.chunks_exact(5).take(rows) {
        let int = |x: f64| x >= 0.0 && x.fract() == 0.0 && x < u32::MAX as f64;
        let flag = |x: f64| x == 0.0 || x == 1.0;
        if !r[0].is_finite() || !flag(r[1]) || !int(r[2]) || !int(r[3]) || !flag(r[4]) {
            return Err(Error::data(
                path,
                format!("row {} is not (finite score, 0/1, fold, cluster, 0/1): {r:?}", p.score.len()),
            ));
        }
        p.score.push(r[0]);
        p.genuine.push(r[1] == 1.0);
        p.fold.push(r[2] as u32);
        p.cluster.push(r[3] as u32);
        p.correct.push(r[4] == 1.0);
    }
    Ok(p)
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
            // Keep the last vertex of each cell of a (log10 FAR, TAR) grid, plus the ends.
            let cell = |p: &crate::metrics::RocPoint| {
                let x = if p.fpr > 0.0 { (p.fpr.log10() * 100.0).floor() as i64 } else { i64::MIN };
                (x, (p.tpr * 400.0).floor() as i64)
            };
            let mut out = Vec::new();
            let mut it = roc.vertex_iter().enumerate().peekable();
            let mut cur_cell = None;
            while let Some((i, p)) = it.next() {
                let c = cur_cell.take().unwrap_or_else(|| cell(&p));
                let next_cell = it.peek().map(|(_, q)| cell(q));
                if i == 0 || i == n - 1 || next_cell != Some(c) {
                    out.push(p);
                }
                cur_cell = next_cell;
            }
            out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Roc;

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

    #[test]
    fn pair_scores_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = PairScores {
            score: vec![0.5, -0.25],
            genuine: vec![true, false],
            fold: vec![0, 9],
            cluster: vec![3, 7],
            correct: vec![true, false],
        };
        let path = dir.path().join("pair_scores.npy");
        write_pair_scores(&path, &p).unwrap();
        assert_eq!(read_pair_scores(&path).unwrap(), p);
        crate::store::import::write_npy_f64(&path, 1, 5, &[0.5, 2.0, 0.0, 0.0, 1.0]).unwrap();
        assert!(read_pair_scores(&path).unwrap_err().to_string().contains("row 0"));
    }
}

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
use crate::io::read_json;
pub use crate::protocol::curves::{Curves, PairScores};
use std::path::{Path, PathBuf};

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

impl RunData {
    /// Loads `dir/results.json` (required) and the optional companions.
    pub fn load(dir: &Path) -> Result<Self> {
        let results_path = if dir.is_file() { dir.to_path_buf() } else { dir.join("results.json") };
        let dir = results_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let results: serde_json::Value = read_json(&results_path)?;
        if results["schema"] != crate::run::results::SCHEMA {
            return Err(Error::data(
                &results_path,
                "not an aifr-eval results.json (schema field missing or different)",
            ));
        }
        let version = results["schema_version"].as_u64().unwrap_or(0);
        if version != crate::run::results::SCHEMA_VERSION as u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

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

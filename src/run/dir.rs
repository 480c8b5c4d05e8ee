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
use crate::io::lock::{FileLock, Wait};
use crate::io::{read_json, to_json, write_atomic};
pub use crate::protocol::curves::{CmcCurves, Curves, PairScores};
pub use crate::protocol::outcomes::{SearchOutcomes, SEARCH_OUTCOMES_FILE};
use crate::run::results::Results;
use std::path::{Path, PathBuf};

/// One run directory, loaded.
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    /// The results file read (normally `dir/results.json`).
    pub results_path: PathBuf,
    /// results.json, typed and checked (schema in docs/results-schema.md).
    pub results: Results,
    /// curves.json, when present.
    pub curves: Option<Curves>,
    /// pair_scores.npy, when present.
    pub pairs: Option<PairScores>,
    /// search_outcomes.json (identification runs), when present.
    pub outcomes: Option<SearchOutcomes>,
    /// cmc_curves.json (MegaFace), when present. Read here with the rest, from where the files
    /// are: a report renders a run from its staging place while `dir` already names the final one.
    pub cmc: Option<crate::protocol::curves::CmcCurves>,
}

impl RunData {
    /// Loads `dir/results.json` (required) and the optional companions.
    pub fn load(dir: &Path) -> Result<Self> {
        let results_path = if dir.is_file() { dir.to_path_buf() } else { dir.join("results.json") };
        let dir = results_path.parent().map(Path::to_path_buf).unwrap_or_default();
        // The whole structure of the kind is checked here, once: every reader gets a valid run.
        let results = Results::from_value(read_json(&results_path)?).map_err(|m| Error::data(&results_path, m))?;
        let curves_path = dir.join("curves.json");
        let curves = if curves_path.exists() { Some(read_json::<Curves>(&curves_path)?) } else { None };
        let pairs_path = dir.join("pair_scores.npy");
        let pairs = if pairs_path.exists() { Some(read_pair_scores(&pairs_path)?) } else { None };
        let outcomes_path = dir.join(SEARCH_OUTCOMES_FILE);
        let outcomes = if outcomes_path.exists() {
            let o: SearchOutcomes = read_json(&outcomes_path)?;
            o.validate().map_err(|m| Error::data(&outcomes_path, m))?;
            Some(o)
        } else {
            None
        };
        let cmc = crate::protocol::curves::CmcCurves::load(&dir)?;
        Ok(RunData { dir, results_path, results, curves, pairs, outcomes, cmc })
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

/// The data files of a run directory besides results.json (reports and timings.json are
/// rendered from them afterwards).
pub const COMPANIONS: [&str; 4] =
    ["curves.json", "pair_scores.npy", crate::protocol::curves::CMC_CURVES_FILE, SEARCH_OUTCOMES_FILE];

/// Everything one evaluation writes into its run directory. Each kind fills what it has:
/// pair benchmarks and manifests curves + pair scores, FG-NET curves (one model only), IJB
/// curves, MegaFace its CMC curves; the identification kinds their per-search outcomes.
pub struct RunDir<'a> {
    pub results: &'a Results,
    pub curves: Option<&'a Curves>,
    pub pair_scores: Option<&'a PairScores>,
    /// cmc_curves.json (MegaFace).
    pub cmc_curves: Option<&'a CmcCurves>,
    /// search_outcomes.json (FG-NET, IJB with 1:N lists, MegaFace).
    pub search_outcomes: Option<&'a SearchOutcomes>,
}

impl RunDir<'_> {
    /// Writes the run into `out_dir`: an old results.json is removed first, every companion this
    /// run has is written and every one it lacks removed (a file of an earlier run of another
    /// kind would otherwise be read with these results), and results.json comes last, so its
    /// presence means the directory holds one complete run. Returns the results.json path.
    pub fn finish(&self, out_dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::write(out_dir, e))?;
        let results_path = out_dir.join("results.json");
        remove_if_present(&results_path)?;
        for name in COMPANIONS {
            let path = out_dir.join(name);
            match name {
                "curves.json" => match self.curves {
                    Some(c) => write_atomic(&path, &to_json(c))?,
                    None => remove_if_present(&path)?,
                },
                "pair_scores.npy" => match self.pair_scores {
                    Some(p) => write_pair_scores(&path, p)?,
                    None => remove_if_present(&path)?,
                },
                SEARCH_OUTCOMES_FILE => match self.search_outcomes {
                    Some(o) => write_atomic(&path, &crate::io::to_json_compact(o))?,
                    None => remove_if_present(&path)?,
                },
                _ => match self.cmc_curves {
                    Some(c) => write_atomic(&path, &to_json(c))?,
                    None => remove_if_present(&path)?,
                },
            }
        }
        write_atomic(&results_path, &to_json(self.results))?;
        Ok(results_path)
    }
}

/// The lock file inside a run directory while a run writes it.
pub const LOCK_FILE: &str = ".aifr-eval.lock";
const STAGING_PREFIX: &str = ".aifr-staging-";

/// Whether `name` is a file a run writes at the top of its run directory (results, companions,
/// timings and the single-run report): the files a new run replaces or removes.
pub fn is_run_output(name: &str) -> bool {
    const FIXED: [&str; 11] = [
        "results.json",
        "timings.json",
        "report.html",
        "summary.md",
        "summary.tex",
        "roc.png",
        "det.png",
        "scores.png",
        "age_gap.png",
        "tpir_fpir.png",
        "rank1-distractors.png",
    ];
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".png"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    FIXED.contains(&name)
        || COMPANIONS.contains(&name)
        || ["scores-", "cmc-", "fnmr-", "fmr-", "tails-"].iter().any(|p| numbered(p))
}

/// A run directory while a run writes it. `begin` locks it (a second run into the same
/// directory is refused, never interleaved) and opens a staging directory inside it where every
/// output is written; `commit` then moves the outputs into place by renames (which need no disk
/// space), results.json last, and removes the previous run's files this run does not have. A run
/// that fails before `commit` (disk full, bad input, a kill) leaves the directory as it was.
#[derive(Debug)]
pub struct OutDir {
    dir: PathBuf,
    staging: PathBuf,
    /// The directory did not exist before: a failed run removes it again.
    created: bool,
    committed: bool,
    lock: Option<FileLock>,
}

impl OutDir {
    pub fn begin(dir: &Path) -> Result<Self> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        let what = format!("the run directory {}", dir.display());
        let lock = FileLock::acquire(&dir.join(LOCK_FILE), &what, Wait::Refuse)?;
        // With the lock held no other run is alive here: staging left by a killed run goes.
        for entry in std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let staging = dir.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        std::fs::create_dir(&staging).map_err(|e| Error::write(&staging, e))?;
        Ok(OutDir { dir: dir.to_path_buf(), staging, created, committed: false, lock: Some(lock) })
    }

    /// Where the run writes its outputs until `commit`.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// The run directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves the staged outputs into the run directory; returns the results.json path.
    pub fn commit(mut self) -> Result<PathBuf> {
        let results = self.dir.join("results.json");
        // From here until the last rename the directory holds no complete run.
        remove_if_present(&results)?;
        let mut staged: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(&self.staging).map_err(|e| Error::read(&self.staging, e))? {
            let entry = entry.map_err(|e| Error::read(&self.staging, e))?;
            staged.push(entry.file_name().to_string_lossy().into_owned());
        }
        staged.sort();
        if !staged.iter().any(|n| n == "results.json") {
            return Err(Error::Invalid(format!("internal: no results.json was staged in {}", self.staging.display())));
        }
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::read(&self.dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_run_output(&name) && !staged.contains(&name) && entry.file_type().is_ok_and(|t| t.is_file()) {
                remove_if_present(&entry.path())?;
            }
        }
        for name in staged.iter().filter(|n| *n != "results.json").chain(std::iter::once(&"results.json".to_string())) {
            let to = self.dir.join(name);
            std::fs::rename(self.staging.join(name), &to).map_err(|e| Error::write(&to, e))?;
        }
        self.committed = true;
        std::fs::remove_dir(&self.staging).map_err(|e| Error::write(&self.staging, e))?;
        Ok(results)
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        // Releasing the lock removes its file.
        drop(self.lock.take());
        if self.created {
            // Nothing of a failed first run stays behind (the directory only if still empty).
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::write(path, e)),
        _ => Ok(()),
    }
}

/// A run for unit tests: the committed demo baseline's results.json (a pair run), edited as JSON
/// and then read through the typed model like any run.
#[cfg(test)]
pub(crate) fn test_run(dir: &str, edit: impl FnOnce(&mut serde_json::Value)) -> RunData {
    let mut v: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/baselines/demo/results.json")).expect("baseline JSON");
    edit(&mut v);
    let dir = PathBuf::from(dir);
    RunData {
        results_path: dir.join("results.json"),
        results: Results::from_value(v).expect("a valid result"),
        dir,
        curves: None,
        pairs: None,
        outcomes: None,
        cmc: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn out_dir_commits_atomically_and_replaces_only_run_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["results.json", "pair_scores.npy", "det.png", "scores-2.png", "notes.txt"] {
            std::fs::write(dir.join(f), b"old").unwrap();
        }
        // A run that fails before commit leaves everything as it was.
        let out = OutDir::begin(&dir).unwrap();
        std::fs::write(out.staging().join("results.json"), b"new").unwrap();
        let e = OutDir::begin(&dir).unwrap_err();
        assert!(e.to_string().contains("another aifr-eval process"), "{e}");
        drop(out);
        assert_eq!(out_files(&dir), ["det.png", "notes.txt", "pair_scores.npy", "results.json", "scores-2.png"]);
        assert_eq!(std::fs::read(dir.join("results.json")).unwrap(), b"old");
        // A committed run replaces the run files, removes the ones it lacks, keeps the user's.
        let out = OutDir::begin(&dir).unwrap();
        std::fs::write(out.staging().join("results.json"), b"new").unwrap();
        std::fs::write(out.staging().join("roc.png"), b"new").unwrap();
        assert_eq!(out.commit().unwrap(), dir.join("results.json"));
        assert_eq!(out_files(&dir), ["notes.txt", "results.json", "roc.png"]);
        assert_eq!(std::fs::read(dir.join("results.json")).unwrap(), b"new");
        // A failed first run into a new directory leaves no directory behind.
        let fresh = root.path().join("fresh");
        drop(OutDir::begin(&fresh).unwrap());
        assert!(!fresh.exists());
    }

    #[test]
    fn run_output_names() {
        for n in ["results.json", "cmc_curves.json", "scores-12.png", "cmc-3.png", "summary.tex"] {
            assert!(is_run_output(n), "{n}");
        }
        for n in ["notes.txt", "scores-.png", "cmc-x.png", "index.html", "protocol"] {
            assert!(!is_run_output(n), "{n}");
        }
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

//! What people read: the terminal tables, HTML pages with PNG charts, Markdown/LaTeX summaries
//! and model comparisons, all rendered from run directories (`crate::run`).

pub mod charts;
pub mod compare;
pub mod html;
pub mod megaface;
pub mod summary;
pub mod terminal;

use crate::error::{Error, Result};
use crate::run::dir::RunData;
use crate::run::results::Results;
use std::path::{Path, PathBuf};

/// Writes the report for one or more runs into `out_dir` and returns the paths written. The page
/// follows the runs' kind: MegaFace runs get the CMC page (`megaface`), every other kind the
/// verification page (`html`); the two cannot be mixed. `index_name` is a plain file name such as
/// `report.html` or `index.html`.
pub fn write_report(runs: &[RunData], out_dir: &Path, index_name: &str) -> Result<Vec<PathBuf>> {
    if runs.is_empty() {
        return Err(Error::Invalid("a report needs at least one run directory".into()));
    }
    let plain = Path::new(index_name).file_name().is_some_and(|n| n == index_name);
    if !plain || index_name.starts_with('.') {
        return Err(Error::Invalid(format!(
            "report file name {index_name:?} must be a plain file name like report.html"
        )));
    }
    let megaface = runs
        .iter()
        .filter(|r| match r.results {
            Results::Megaface(_) => true,
            Results::Pairs(_) | Results::Manifest(_) | Results::Fgnet(_) | Results::Ijb(_) => false,
        })
        .count();
    if megaface == runs.len() {
        return megaface::write_report(runs, out_dir, index_name);
    }
    if megaface > 0 {
        return Err(Error::Invalid(
            "a report cannot mix MegaFace runs with pair-verification runs; report them separately".into(),
        ));
    }
    html::write_report(runs, out_dir, index_name)
}

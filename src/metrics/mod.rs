//! Pure metric functions over scores and labels: no I/O, no configuration, heavily tested against
//! the independent NumPy/scikit-learn reference in `tests/reference/`.
//!
//! Conventions (docs/protocols.md §0): a score is a similarity (higher = more alike); "accept at t" means
//! `score >= t` unless a compat mode says otherwise. Counts are integers, ratios are f64.

pub mod age_gap;
pub mod bootstrap;
pub mod cmc;
pub mod differentials;
pub mod identification;
pub mod kfold;
pub mod open_set;
pub mod roc;
pub mod stats;

pub use kfold::{fold_correct, kfold_accuracy, kfold_sorted, FoldMode, KFoldAccuracy, SortedPairs};
pub use roc::{Eer, Roc, RocPoint, TarAtFar, TarRule};

/// Why a metric cannot be computed from the given scores.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("score {index} is not a finite number ({value})")]
    NonFinite { index: usize, value: f64 },
    #[error("{scores} scores but {labels} labels")]
    LengthMismatch { scores: usize, labels: usize },
    #[error("there are no {class} pairs, so the metric is undefined")]
    EmptyClass { class: &'static str },
    #[error("fold {fold} has no {class} pairs in its {split} split, so its threshold/accuracy is undefined")]
    FoldEmptyClass { fold: usize, class: &'static str, split: &'static str },
    #[error("pair {index} has fold index {fold}, but there are only {folds} folds")]
    FoldOutOfRange { index: usize, fold: usize, folds: usize },
}

pub(crate) fn class_name(genuine: bool) -> &'static str {
    if genuine {
        "genuine"
    } else {
        "impostor"
    }
}

/// Checks lengths and finiteness; maps -0.0 to +0.0 so equal values group together when sorting.
pub(crate) fn validated(scores: &[f64], labels: &[bool]) -> Result<(), MetricError> {
    if scores.len() != labels.len() {
        return Err(MetricError::LengthMismatch { scores: scores.len(), labels: labels.len() });
    }
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(MetricError::NonFinite { index, value });
    }
    for class in [true, false] {
        if !labels.contains(&class) {
            return Err(MetricError::EmptyClass { class: class_name(class) });
        }
    }
    Ok(())
}

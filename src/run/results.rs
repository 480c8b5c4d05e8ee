//! The `results.json` schema (version 1). Documented field by field in docs/results-schema.md.
//!
//! Everything here is a deterministic function of the inputs: no timestamps, no absolute paths,
//! no timings (those go to `timings.json` beside it), so the same inputs give a byte-identical
//! file on any machine and with any thread count.

use crate::dataset::PairCounts;
use crate::metrics::age_gap::GapBin;
use crate::metrics::FoldMode;
use crate::protocol::fgnet::{FgnetCounts, FgnetMetrics};
use crate::protocol::verification::{Fusion, VerificationMetrics};
use serde::Serialize;

pub const SCHEMA: &str = "aifr-eval/results";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Software {
    pub name: &'static str,
    pub version: &'static str,
    /// `git describe`-style commit the binary was built from, when known.
    pub commit: Option<&'static str>,
}

impl Software {
    pub fn current() -> Self {
        Software {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            commit: option_env!("AIFR_GIT_COMMIT"),
        }
    }
}

/// A protocol/data file with its content hash.
#[derive(Debug, Clone, Serialize)]
pub struct FileFingerprint {
    pub role: String,
    /// Path relative to the data directory (portable across machines).
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchmarkInfo {
    pub name: String,
    pub title: String,
    pub format: crate::config::Format,
    pub files: Vec<FileFingerprint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProtocolInfo {
    pub name: String,
    /// "strict", "compat=insightface" or "compat=facexzoo".
    pub mode: String,
    pub fold_mode: FoldMode,
    pub flip_fusion: Fusion,
    pub folds: usize,
    pub far_targets: Vec<f64>,
    /// How the per-pair score is defined.
    pub score: &'static str,
    pub accept_rule: &'static str,
}

impl ProtocolInfo {
    /// A pair-verification protocol in `mode`, with the score and accept rule that mode uses.
    pub fn pairs(name: String, mode: FoldMode, fusion: Fusion, folds: usize, far_targets: Vec<f64>) -> Self {
        ProtocolInfo {
            name,
            mode: mode_label(mode),
            fold_mode: mode,
            flip_fusion: fusion,
            folds,
            far_targets,
            score: if mode == FoldMode::Insightface {
                "squared L2 distance of unit vectors for k-fold; cosine for ROC/TAR"
            } else {
                "cosine similarity of L2-normalised (fused) embeddings"
            },
            accept_rule: match mode {
                FoldMode::Strict => "same iff score >= threshold",
                FoldMode::Insightface => "k-fold: same iff distance < threshold; ROC: score >= threshold",
                FoldMode::Facexzoo => {
                    "k-fold: same iff score > threshold, different iff score < threshold; ROC: score >= threshold"
                }
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingsInfo {
    /// blake3 of the store's rows and keys.
    pub fingerprint: String,
    pub count: usize,
    pub dim: usize,
    pub dtype: &'static str,
    /// Whether embeddings of the mirrored images were present.
    pub has_flip: bool,
    /// The network that computed the embeddings (`aifr-eval embed`/`run --model`); absent for
    /// imported embeddings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<crate::embed::meta::ModelInfo>,
    /// Images without an embedding (`--skip-bad-images`) and how the protocol treated them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_images: Option<crate::embed::skipped::SkippedInfo>,
}

impl EmbeddingsInfo {
    pub fn of(store: &crate::store::EmbeddingStore) -> Self {
        EmbeddingsInfo {
            fingerprint: store.fingerprint(),
            count: store.len(),
            dim: store.dim(),
            dtype: store.header().dtype.name(),
            has_flip: store.has_flip(),
            model: None,
            skipped_images: None,
        }
    }

    /// Adds what the embedding record says about the network and skipped images.
    pub fn with_provenance(
        mut self,
        meta: Option<&crate::embed::meta::EmbedMeta>,
        skipped: Option<crate::embed::skipped::SkippedInfo>,
    ) -> Self {
        self.model = meta.map(|m| m.model.clone());
        self.skipped_images = skipped;
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VerificationResults {
    pub schema: &'static str,
    pub schema_version: u32,
    pub kind: &'static str,
    pub software: Software,
    pub benchmark: BenchmarkInfo,
    pub protocol: ProtocolInfo,
    pub embeddings: EmbeddingsInfo,
    pub counts: PairCounts,
    pub metrics: VerificationMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct FgnetProtocolInfo {
    pub name: String,
    pub mode: &'static str,
    pub flip_fusion: Fusion,
    pub far_targets: Vec<f64>,
    pub age_groups: Vec<GapBin>,
    pub score: &'static str,
    pub accept_rule: &'static str,
}

/// results.json of an FG-NET run (`kind` = "fgnet_identification").
#[derive(Debug, Clone, Serialize)]
pub struct FgnetResults {
    pub schema: &'static str,
    pub schema_version: u32,
    pub kind: &'static str,
    pub software: Software,
    pub benchmark: BenchmarkInfo,
    pub protocol: FgnetProtocolInfo,
    pub embeddings: EmbeddingsInfo,
    pub counts: FgnetCounts,
    pub metrics: FgnetMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct MegafaceProtocolInfo {
    pub name: String,
    /// "fgnet" or "facescrub" (or the probe list's file name for other lists).
    pub probe_set: String,
    pub cleaning: crate::protocol::megaface::Cleaning,
    pub flip_fusion: Fusion,
    pub far_targets: Vec<f64>,
    pub devkit_probes: usize,
    pub score: &'static str,
    /// The GEMM that computed the scores (`--score-device`): kernels may differ in the last bits.
    pub score_kernel: String,
    pub rank_rule: &'static str,
    pub age_groups: Vec<GapBin>,
    pub age_gap_bins: Vec<GapBin>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MegafaceEmbeddings {
    pub probes: EmbeddingsInfo,
    pub distractors: EmbeddingsInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct MegafaceMetrics {
    /// One entry per distractor set, in increasing size.
    pub sizes: Vec<crate::protocol::megaface::SizeResult>,
    /// Rank-1 with 1,000,000 distractors, when evaluated (the paper-table number).
    pub rank1_at_1m: Option<f64>,
    pub bootstrap: crate::protocol::fgnet::SubjectBootstrap,
}

/// results.json of a MegaFace run (`kind` = "megaface_identification").
#[derive(Debug, Clone, Serialize)]
pub struct MegafaceResults {
    pub schema: &'static str,
    pub schema_version: u32,
    pub kind: &'static str,
    pub software: Software,
    pub benchmark: BenchmarkInfo,
    pub protocol: MegafaceProtocolInfo,
    pub embeddings: MegafaceEmbeddings,
    pub counts: crate::protocol::megaface::ProbeCounts,
    pub metrics: MegafaceMetrics,
}

/// The pooling switches as recorded in results.json.
#[derive(Debug, Clone, Serialize)]
pub struct IjbPoolingInfo {
    #[serde(flatten)]
    pub switches: crate::protocol::ijb::Pooling,
    pub rule: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct IjbProtocolInfo {
    pub name: String,
    /// "strict" (1:1 TAR and 1:N TPIR are reported under every rule, each entry names its rule).
    pub mode: &'static str,
    /// `sum` when the mirrored embeddings are pooled, else `none`.
    pub flip_fusion: Fusion,
    pub pooling: IjbPoolingInfo,
    pub far_targets: Vec<f64>,
    pub fpir_targets: Vec<f64>,
    pub cmc_ranks: Vec<u32>,
    pub legacy_fars: Vec<f64>,
    pub score: &'static str,
    pub accept_rule: &'static str,
    pub open_set_rule: &'static str,
}

/// results.json of an IJB-B/C run (`kind` = "ijb").
#[derive(Debug, Clone, Serialize)]
pub struct IjbResults {
    pub schema: &'static str,
    pub schema_version: u32,
    pub kind: &'static str,
    pub software: Software,
    pub benchmark: BenchmarkInfo,
    pub protocol: IjbProtocolInfo,
    pub embeddings: EmbeddingsInfo,
    pub counts: crate::protocol::ijb::IjbCounts,
    pub metrics: crate::protocol::ijb::IjbMetrics,
}

pub fn mode_label(mode: FoldMode) -> String {
    match mode {
        FoldMode::Strict => "strict".into(),
        FoldMode::Insightface => "compat=insightface".into(),
        FoldMode::Facexzoo => "compat=facexzoo".into(),
    }
}

/// Wall-clock timings of one run, kept out of results.json so that file stays reproducible.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub stages: Vec<(String, f64)>,
    pub total_seconds: f64,
    pub threads: usize,
}

/// How the protocol of a manifest run was obtained.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestProtocolInfo {
    /// "protocol directory" (`--protocol-dir`) or "built for this run" (default seed).
    pub source: &'static str,
    pub seed: u64,
    pub age_tolerance: u32,
    /// Pairs file evaluated (file name) and the minimum age gap of its genuine pairs (0 = none).
    pub pairs_file: String,
    pub min_age_gap: u32,
}

/// The `manifest` section of a manifest run's results.json.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestRunInfo {
    pub file: crate::protocol::manifest::lists::ManifestFingerprint,
    pub protocol: ManifestProtocolInfo,
    /// Text columns of the manifest (`group` first, then extra columns).
    pub columns: Vec<String>,
    pub has_ages: bool,
}

/// results.json of `aifr-eval run --manifest`: a pair-verification result (same keys, so reports
/// and the gate read it like any benchmark) plus the manifest, identification and strata.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestResults {
    #[serde(flatten)]
    pub verification: VerificationResults,
    pub manifest: ManifestRunInfo,
    pub identification: crate::protocol::manifest::ManifestIdentification,
    /// One breakdown per column: `group` (when present), then each `--stratify` column.
    pub strata: Vec<crate::protocol::manifest::Stratification>,
}

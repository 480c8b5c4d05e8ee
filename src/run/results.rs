//! The `results.json` schema (version 1). Documented field by field in docs/results-schema.md.
//!
//! Everything here is a deterministic function of the inputs: no timestamps, no absolute paths,
//! no timings (those go to `timings.json` beside it), so the same inputs give a byte-identical
//! file on any machine and with any thread count.

use crate::dataset::PairCounts;
use crate::metrics::age_gap::GapBin;
use crate::metrics::FoldMode;
use crate::protocol::fgnet::{FgnetCounts, FgnetMetrics};
use crate::protocol::verification::VerificationMetrics;
use crate::score::fusion::Fusion;
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "aifr-eval/results";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Software {
    pub name: String,
    pub version: String,
    /// `git describe`-style commit the binary was built from, when known.
    pub commit: Option<String>,
}

impl Software {
    pub fn current() -> Self {
        Software {
            name: (env!("CARGO_PKG_NAME")).into(),
            version: (env!("CARGO_PKG_VERSION")).into(),
            commit: (option_env!("AIFR_GIT_COMMIT")).map(String::from),
        }
    }
}

/// A protocol/data file with its content hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileFingerprint {
    pub role: String,
    /// Path relative to the data directory (portable across machines).
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchmarkInfo {
    pub name: String,
    pub title: String,
    pub format: crate::config::Format,
    pub files: Vec<FileFingerprint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtocolInfo {
    pub name: String,
    /// "strict", "compat=insightface" or "compat=facexzoo".
    pub mode: String,
    pub fold_mode: FoldMode,
    pub flip_fusion: Fusion,
    pub folds: usize,
    pub far_targets: Vec<f64>,
    /// How the per-pair score is defined.
    pub score: String,
    pub accept_rule: String,
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
                "squared L2 distance of unit vectors for k-fold; cosine for ROC/TAR".into()
            } else {
                "cosine similarity of L2-normalised (fused) embeddings".into()
            },
            accept_rule: match mode {
                FoldMode::Strict => "same iff score >= threshold".into(),
                FoldMode::Insightface => "k-fold: same iff distance < threshold; ROC: score >= threshold".into(),
                FoldMode::Facexzoo => {
                    "k-fold: same iff score > threshold, different iff score < threshold; ROC: score >= threshold"
                        .into()
                }
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingsInfo {
    /// blake3 of the store's rows and keys.
    pub fingerprint: String,
    pub count: usize,
    pub dim: usize,
    pub dtype: String,
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
            dtype: (store.header().dtype.name()).into(),
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerificationResults {
    pub schema: String,
    pub schema_version: u32,
    pub kind: String,
    pub software: Software,
    pub benchmark: BenchmarkInfo,
    pub protocol: ProtocolInfo,
    pub embeddings: EmbeddingsInfo,
    pub counts: PairCounts,
    pub metrics: VerificationMetrics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FgnetProtocolInfo {
    pub name: String,
    pub mode: String,
    pub flip_fusion: Fusion,
    pub far_targets: Vec<f64>,
    pub age_groups: Vec<GapBin>,
    pub score: String,
    pub accept_rule: String,
}

/// results.json of an FG-NET run (`kind` = "fgnet_identification").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FgnetResults {
    pub schema: String,
    pub schema_version: u32,
    pub kind: String,
    pub software: Software,
    pub benchmark: BenchmarkInfo,
    pub protocol: FgnetProtocolInfo,
    pub embeddings: EmbeddingsInfo,
    pub counts: FgnetCounts,
    pub metrics: FgnetMetrics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MegafaceProtocolInfo {
    pub name: String,
    /// "fgnet" or "facescrub" (or the probe list's file name for other lists).
    pub probe_set: String,
    pub cleaning: crate::protocol::megaface::Cleaning,
    pub flip_fusion: Fusion,
    pub far_targets: Vec<f64>,
    pub devkit_probes: usize,
    pub score: String,
    /// The GEMM that computed the scores (`--score-device`): kernels may differ in the last bits.
    pub score_kernel: String,
    pub rank_rule: String,
    pub age_groups: Vec<GapBin>,
    pub age_gap_bins: Vec<GapBin>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MegafaceEmbeddings {
    pub probes: EmbeddingsInfo,
    pub distractors: EmbeddingsInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MegafaceMetrics {
    /// One entry per distractor set, in increasing size.
    pub sizes: Vec<crate::protocol::megaface::SizeResult>,
    /// Rank-1 with 1,000,000 distractors, when evaluated (the paper-table number).
    pub rank1_at_1m: Option<f64>,
    pub bootstrap: crate::protocol::fgnet::SubjectBootstrap,
}

/// results.json of a MegaFace run (`kind` = "megaface_identification").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MegafaceResults {
    pub schema: String,
    pub schema_version: u32,
    pub kind: String,
    pub software: Software,
    pub benchmark: BenchmarkInfo,
    pub protocol: MegafaceProtocolInfo,
    pub embeddings: MegafaceEmbeddings,
    pub counts: crate::protocol::megaface::ProbeCounts,
    pub metrics: MegafaceMetrics,
}

/// The pooling switches as recorded in results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IjbPoolingInfo {
    #[serde(flatten)]
    pub switches: crate::protocol::ijb::Pooling,
    pub rule: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IjbProtocolInfo {
    pub name: String,
    /// "strict" (1:1 TAR and 1:N TPIR are reported under every rule, each entry names its rule).
    pub mode: String,
    /// `sum` when the mirrored embeddings are pooled, else `none`.
    pub flip_fusion: Fusion,
    pub pooling: IjbPoolingInfo,
    pub far_targets: Vec<f64>,
    pub fpir_targets: Vec<f64>,
    pub cmc_ranks: Vec<u32>,
    pub legacy_fars: Vec<f64>,
    pub score: String,
    pub accept_rule: String,
    pub open_set_rule: String,
}

/// results.json of an IJB-B/C run (`kind` = "ijb").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IjbResults {
    pub schema: String,
    pub schema_version: u32,
    pub kind: String,
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub stages: Vec<(String, f64)>,
    pub total_seconds: f64,
    pub threads: usize,
}

/// How the protocol of a manifest run was obtained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestProtocolInfo {
    /// "protocol directory" (`--protocol-dir`) or "built for this run" (default seed).
    pub source: String,
    pub seed: u64,
    pub age_tolerance: u32,
    /// Pairs file evaluated (file name) and the minimum age gap of its genuine pairs (0 = none).
    pub pairs_file: String,
    pub min_age_gap: u32,
}

/// The `manifest` section of a manifest run's results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestRunInfo {
    pub file: crate::protocol::manifest::lists::ManifestFingerprint,
    pub protocol: ManifestProtocolInfo,
    /// Text columns of the manifest (`group` first, then extra columns).
    pub columns: Vec<String>,
    pub has_ages: bool,
}

/// results.json of `aifr-eval run --manifest`: a pair-verification result (same keys, so reports
/// and the gate read it like any benchmark) plus the manifest, identification and strata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestResults {
    #[serde(flatten)]
    pub verification: VerificationResults,
    pub manifest: ManifestRunInfo,
    pub identification: crate::protocol::manifest::ManifestIdentification,
    /// One breakdown per column: `group` (when present), then each `--stratify` column.
    pub strata: Vec<crate::protocol::manifest::Stratification>,
}

/// The `kind` field of each run kind (manifest runs are `pair_verification` with a `manifest`
/// section, so that tools reading only the verification keys read them too).
pub mod kind {
    pub const PAIR_VERIFICATION: &str = "pair_verification";
    pub const FGNET: &str = "fgnet_identification";
    pub const IJB: &str = "ijb";
    pub const MEGAFACE: &str = "megaface_identification";
}

/// One results.json, typed: what every reader (reports, `compare`, the gate) works from. Reading
/// checks the schema and version and the whole structure of the kind, so a damaged or foreign
/// file is refused with the field at fault; writing produces exactly the bytes the run wrote.
#[derive(Debug, Clone)]
pub enum Results {
    Pairs(VerificationResults),
    Manifest(Box<ManifestResults>),
    Fgnet(FgnetResults),
    Ijb(IjbResults),
    Megaface(MegafaceResults),
}

impl Results {
    /// The `kind` field as written.
    pub fn kind(&self) -> &str {
        match self {
            Results::Pairs(r) => &r.kind,
            Results::Manifest(r) => &r.verification.kind,
            Results::Fgnet(r) => &r.kind,
            Results::Ijb(r) => &r.kind,
            Results::Megaface(r) => &r.kind,
        }
    }

    pub fn benchmark(&self) -> &BenchmarkInfo {
        match self {
            Results::Pairs(r) => &r.benchmark,
            Results::Manifest(r) => &r.verification.benchmark,
            Results::Fgnet(r) => &r.benchmark,
            Results::Ijb(r) => &r.benchmark,
            Results::Megaface(r) => &r.benchmark,
        }
    }

    /// The bootstrap parameters the run's intervals were drawn with; IJB runs have no bootstrap.
    pub fn bootstrap_spec(&self) -> Option<&crate::metrics::bootstrap::BootstrapSpec> {
        match self {
            Results::Pairs(r) => Some(&r.metrics.bootstrap.spec),
            Results::Manifest(r) => Some(&r.verification.metrics.bootstrap.spec),
            Results::Fgnet(r) => Some(&r.metrics.bootstrap.spec),
            Results::Ijb(_) => None,
            Results::Megaface(r) => Some(&r.metrics.bootstrap.spec),
        }
    }

    /// The pair-verification part of a pair or manifest run (accuracy, folds, bootstrap
    /// intervals, pair scores); None for the identification kinds.
    pub fn verification(&self) -> Option<&VerificationResults> {
        match self {
            Results::Pairs(r) => Some(r),
            Results::Manifest(r) => Some(&r.verification),
            Results::Fgnet(_) | Results::Ijb(_) | Results::Megaface(_) => None,
        }
    }

    /// The demographic differentials the run has, one per attribute (docs/protocols.md §11):
    /// pair and manifest runs' `metrics.differentials`, FG-NET's age bands; none for IJB and
    /// MegaFace.
    pub fn differentials(&self) -> &[crate::metrics::differentials::Differentials] {
        match self {
            Results::Pairs(r) => &r.metrics.differentials,
            Results::Manifest(r) => &r.verification.metrics.differentials,
            Results::Fgnet(r) => {
                r.metrics.verification.as_ref().and_then(|v| v.differentials.as_ref()).map_or(&[], std::slice::from_ref)
            }
            Results::Ijb(_) | Results::Megaface(_) => &[],
        }
    }

    /// What a kind calls itself in messages.
    pub fn kind_label(&self) -> &'static str {
        match self {
            Results::Pairs(_) => "pair verification",
            Results::Manifest(_) => "manifest",
            Results::Fgnet(_) => "FG-NET identification",
            Results::Ijb(_) => "IJB",
            Results::Megaface(_) => "MegaFace identification",
        }
    }

    /// Reads a results.json value: schema, version and kind first (clear messages for foreign
    /// files), then the kind's full structure.
    pub fn from_value(value: serde_json::Value) -> Result<Self, String> {
        if value.get("schema").and_then(|v| v.as_str()) != Some(SCHEMA) {
            return Err("not an aifr-eval results.json (schema field missing or different)".into());
        }
        let version = value.get("schema_version").and_then(|v| v.as_u64());
        if version != Some(SCHEMA_VERSION as u64) {
            let shown = version.map_or_else(|| "missing".to_string(), |v| v.to_string());
            return Err(format!("results schema version {shown} is not supported (this build reads {SCHEMA_VERSION})"));
        }
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value, kind: &str) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| format!("not a valid {kind} result: {e}"))
        }
        Ok(match kind.as_str() {
            kind::PAIR_VERIFICATION if value.get("manifest").is_some() => {
                Results::Manifest(Box::new(typed(value, "manifest")?))
            }
            kind::PAIR_VERIFICATION => Results::Pairs(typed(value, &kind)?),
            kind::FGNET => Results::Fgnet(typed(value, &kind)?),
            kind::IJB => Results::Ijb(typed(value, &kind)?),
            kind::MEGAFACE => Results::Megaface(typed(value, &kind)?),
            other => {
                return Err(format!(
                    "unknown run kind {other:?} (known: {}, {}, {}, {})",
                    kind::PAIR_VERIFICATION,
                    kind::FGNET,
                    kind::IJB,
                    kind::MEGAFACE
                ))
            }
        })
    }
}

impl Serialize for Results {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Results::Pairs(r) => r.serialize(s),
            Results::Manifest(r) => r.serialize(s),
            Results::Fgnet(r) => r.serialize(s),
            Results::Ijb(r) => r.serialize(s),
            Results::Megaface(r) => r.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Results {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Results::from_value(value).map_err(serde::de::Error::custom)
    }
}

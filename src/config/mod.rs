//! The dataset registry (`datasets.toml`) and protocol parameters (`protocols/*.toml`).
//! Both are compiled in as defaults and can be replaced by files, so the binary works anywhere.

use crate::error::{Error, Result};
use crate::metrics::FoldMode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_DATASETS: &str = include_str!("../../datasets.toml");
pub const PAIR_VERIFICATION: &str = include_str!("../../protocols/pair_verification.toml");
pub const FGNET: &str = include_str!("../../protocols/fgnet.toml");
pub const IJB: &str = include_str!("../../protocols/ijb.toml");
pub const MEGAFACE: &str = include_str!("../../protocols/megaface.toml");

/// The layout of a benchmark; what each one needs and runs is its row in
/// [`crate::dataset::adapter`].
pub use crate::dataset::adapter::Format;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    pub title: String,
    pub format: Format,
    pub protocol: String,
    pub root: String,
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    pub source: String,
    pub datasets: BTreeMap<String, DatasetEntry>,
}

impl Registry {
    pub fn builtin() -> Result<Self> {
        Self::parse(DEFAULT_DATASETS, "<built-in datasets.toml>")
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, source: &str) -> Result<Self> {
        let datasets: BTreeMap<String, DatasetEntry> =
            toml::from_str(text).map_err(|e| Error::Config(format!("{source}: {e}")))?;
        for (name, d) in &datasets {
            for role in d.format.adapter().eval_roles {
                if !d.files.contains_key(*role) {
                    return Err(Error::Config(format!(
                        "{source}: dataset '{name}' (format {:?}) needs a '{role}' entry in files",
                        d.format
                    )));
                }
            }
        }
        Ok(Registry { source: source.to_string(), datasets })
    }

    pub fn get(&self, name: &str) -> Result<&DatasetEntry> {
        self.datasets.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.datasets.keys().map(|s| s.as_str()).collect();
            Error::Config(format!("unknown benchmark '{name}' in {}; known: {}", self.source, names.join(", ")))
        })
    }
}

/// One file of a dataset, resolved against the data directory.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    pub role: String,
    pub path: PathBuf,
    pub present: bool,
    pub needed_for_eval: bool,
}

impl DatasetEntry {
    pub fn root_in(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.root)
    }

    pub fn file(&self, data_dir: &Path, role: &str) -> Option<PathBuf> {
        self.files.get(role).map(|rel| self.root_in(data_dir).join(rel))
    }

    pub fn status(&self, data_dir: &Path) -> Vec<FileStatus> {
        self.files
            .iter()
            .map(|(role, rel)| {
                let path = self.root_in(data_dir).join(rel);
                FileStatus {
                    role: role.clone(),
                    present: path.exists(),
                    needed_for_eval: self.format.adapter().eval_roles.contains(&role.as_str()),
                    path,
                }
            })
            .collect()
    }
}

/// Flip-fusion rule (docs/protocols.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlipChoice {
    /// `sum` when the embeddings include mirrored images, otherwise `none`.
    Auto,
    /// normalize(e + e_flip), raw embeddings summed (insightface).
    Sum,
    /// normalize([e, e_flip]), raw embeddings concatenated.
    Concat,
    /// The image's own embedding only (FaceX-Zoo).
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PairProtocol {
    pub name: String,
    pub description: String,
    pub folds: usize,
    pub far_targets: Vec<f64>,
    pub default_mode: FoldMode,
    pub flip: BTreeMap<String, FlipChoice>,
    #[serde(default)]
    pub age_gap: AgeGapConfig,
    #[serde(default)]
    pub differentials: DifferentialsConfig,
}

/// Age-gap analysis parameters (protocols/*.toml `[age_gap]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgeGapConfig {
    pub operating_far: f64,
    pub bins: Vec<crate::metrics::age_gap::GapBin>,
}

impl Default for AgeGapConfig {
    fn default() -> Self {
        AgeGapConfig { operating_far: 1e-3, bins: crate::metrics::age_gap::default_bins() }
    }
}

/// Demographic-differential parameters (protocols/pair_verification.toml `[differentials]`,
/// docs/protocols.md §11). A protocol file without the table gets the built-in values.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DifferentialsConfig {
    /// FMR targets, one global threshold each (strict rule on all pairs).
    pub far_targets: Vec<f64>,
    /// FDR's weight of the FMR discrepancy.
    pub fdr_alpha: f64,
    /// GARBE's weight of the FMR Gini coefficient.
    pub garbe_alpha: f64,
    /// Age bands for runs whose images carry ages (named, inclusive, `hi` omitted = open-ended).
    pub age_bands: Vec<crate::metrics::differentials::AgeBand>,
    /// Reference group per attribute (`subset = "Caucasian"`, `age_band = "adults"`, a column).
    #[serde(default)]
    pub reference: BTreeMap<String, String>,
}

impl Default for DifferentialsConfig {
    fn default() -> Self {
        DifferentialsConfig {
            far_targets: vec![1e-4, 1e-3, 1e-2],
            fdr_alpha: 0.5,
            garbe_alpha: 0.5,
            age_bands: crate::metrics::differentials::default_age_bands(),
            reference: [("age_band", "adults"), ("subset", "Caucasian")]
                .into_iter()
                .map(|(a, g)| (a.to_string(), g.to_string()))
                .collect(),
        }
    }
}

impl DifferentialsConfig {
    /// The metric parameters for one attribute.
    pub fn params_for(&self, attribute: &str) -> crate::metrics::differentials::DifferentialParams {
        crate::metrics::differentials::DifferentialParams {
            far_targets: self.far_targets.clone(),
            fdr_alpha: self.fdr_alpha,
            garbe_alpha: self.garbe_alpha,
            reference: self.reference.get(attribute).cloned(),
        }
    }

    fn check(&self, source: &str) -> Result<()> {
        if let Some(f) = self.far_targets.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return Err(Error::Config(format!("{source}: [differentials] FMR target {f} is not in (0, 1]")));
        }
        for (name, a) in [("fdr_alpha", self.fdr_alpha), ("garbe_alpha", self.garbe_alpha)] {
            if !(0.0..=1.0).contains(&a) {
                return Err(Error::Config(format!("{source}: [differentials] {name} = {a} is not in [0, 1]")));
            }
        }
        if let Some(b) = self.age_bands.iter().find(|b| b.hi.is_some_and(|hi| hi < b.lo)) {
            return Err(Error::Config(format!("{source}: age band '{}' ends before it starts", b.name)));
        }
        for (i, a) in self.age_bands.iter().enumerate() {
            if let Some(b) = self.age_bands[i + 1..]
                .iter()
                .find(|b| b.name == a.name || b.lo <= a.hi.unwrap_or(u32::MAX) && a.lo <= b.hi.unwrap_or(u32::MAX))
            {
                return Err(Error::Config(format!(
                    "{source}: age bands '{}' and '{}' overlap or share a name; each age belongs to one band",
                    a.name, b.name
                )));
            }
        }
        Ok(())
    }
}

impl PairProtocol {
    pub fn builtin() -> Result<Self> {
        Self::parse(PAIR_VERIFICATION, "<built-in protocols/pair_verification.toml>")
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, source: &str) -> Result<Self> {
        let p: PairProtocol = toml::from_str(text).map_err(|e| Error::Config(format!("{source}: {e}")))?;
        if p.folds < 2 {
            return Err(Error::Config(format!("{source}: folds must be at least 2, found {}", p.folds)));
        }
        let far = p.age_gap.operating_far;
        if !(far > 0.0 && far <= 1.0) || p.age_gap.bins.is_empty() {
            return Err(Error::Config(format!(
                "{source}: [age_gap] needs operating_far in (0, 1] and at least one bin"
            )));
        }
        if let Some(b) = p.age_gap.bins.iter().find(|b| b.hi.is_some_and(|hi| hi < b.lo)) {
            return Err(Error::Config(format!("{source}: age-gap bin {}..{:?} ends before it starts", b.lo, b.hi)));
        }
        if let Some(f) = p.far_targets.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return Err(Error::Config(format!("{source}: FAR target {f} is not in (0, 1]")));
        }
        p.differentials.check(source)?;
        Ok(p)
    }

    pub fn flip_for(&self, mode: FoldMode) -> FlipChoice {
        let key = match mode {
            FoldMode::Strict => "strict",
            FoldMode::Insightface => "insightface",
            FoldMode::Facexzoo => "facexzoo",
        };
        self.flip.get(key).copied().unwrap_or(FlipChoice::Auto)
    }
}

/// FG-NET protocol parameters (protocols/fgnet.toml).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FgnetProtocol {
    pub name: String,
    pub description: String,
    pub far_targets: Vec<f64>,
    pub age_groups: Vec<crate::metrics::age_gap::GapBin>,
    pub flip: FlipChoice,
    pub age_gap: AgeGapConfig,
    #[serde(default)]
    pub differentials: DifferentialsConfig,
}

impl FgnetProtocol {
    pub fn builtin() -> Result<Self> {
        Self::parse(FGNET, "<built-in protocols/fgnet.toml>")
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, source: &str) -> Result<Self> {
        let p: FgnetProtocol = toml::from_str(text).map_err(|e| Error::Config(format!("{source}: {e}")))?;
        if let Some(f) = p.far_targets.iter().chain([&p.age_gap.operating_far]).find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return Err(Error::Config(format!("{source}: FAR {f} is not in (0, 1]")));
        }
        if p.age_groups.is_empty() || p.age_gap.bins.is_empty() {
            return Err(Error::Config(format!("{source}: age_groups and [age_gap] bins must not be empty")));
        }
        p.differentials.check(source)?;
        Ok(p)
    }
}

/// Template pooling switches of protocols/ijb.toml `[pooling]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IjbPoolingConfig {
    pub flip: FlipChoice,
    pub normalize_images: bool,
    pub detector_weight: bool,
}

/// IJB-B/C protocol parameters (protocols/ijb.toml).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IjbProtocol {
    pub name: String,
    pub description: String,
    pub far_targets: Vec<f64>,
    pub fpir_targets: Vec<f64>,
    pub cmc_ranks: Vec<u32>,
    pub legacy_fars: Vec<f64>,
    pub pooling: IjbPoolingConfig,
}

impl IjbProtocol {
    pub fn builtin() -> Result<Self> {
        Self::parse(IJB, "<built-in protocols/ijb.toml>")
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, source: &str) -> Result<Self> {
        let p: IjbProtocol = toml::from_str(text).map_err(|e| Error::Config(format!("{source}: {e}")))?;
        if let Some(f) = p.far_targets.iter().chain(&p.fpir_targets).find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return Err(Error::Config(format!("{source}: FAR/FPIR target {f} is not in (0, 1]")));
        }
        if let Some(f) = p.legacy_fars.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return Err(Error::Config(format!("{source}: legacy FAR {f} is not in (0, 1]")));
        }
        if p.cmc_ranks.contains(&0) {
            return Err(Error::Config(format!("{source}: CMC ranks start at 1")));
        }
        if p.pooling.flip == FlipChoice::Concat {
            return Err(Error::Config(format!(
                "{source}: IJB pooling sums the mirrored embedding (flip = \"sum\"), \"concat\" is not defined"
            )));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_files_parse() {
        let r = Registry::builtin().unwrap();
        for name in [
            "lfw",
            "agedb30",
            "calfw",
            "cplfw",
            "cfp_fp",
            "cfp_ff",
            "ijbb",
            "ijbc",
            "megaface_fgnet",
            "megaface_facescrub",
            "fgnet",
            "agedb_5",
            "agedb_10",
            "agedb_20",
            "agedb_30",
            "cacd_vs",
        ] {
            assert!(r.datasets.contains_key(name), "{name}");
        }
        let p = PairProtocol::builtin().unwrap();
        assert_eq!(p.folds, 10);
        assert_eq!(FgnetProtocol::builtin().unwrap().age_groups.len(), 4);
        assert_eq!(p.flip_for(FoldMode::Insightface), FlipChoice::Sum);
        let ijb = IjbProtocol::builtin().unwrap();
        assert_eq!((ijb.pooling.normalize_images, ijb.pooling.detector_weight), (false, true));
        assert_eq!(ijb.far_targets.len(), 6);
    }

    #[test]
    fn unknown_benchmark_lists_known_ones() {
        let e = Registry::builtin().unwrap().get("lfx").unwrap_err().to_string();
        assert!(e.contains("unknown benchmark 'lfx'") && e.contains("lfw"), "{e}");
    }

    #[test]
    fn bad_registry_is_a_config_error() {
        let e = Registry::parse("[x]\ntitle='t'\nformat='lfw_pairs'\nprotocol='p'\nroot='r'\nfiles={}\n", "f.toml")
            .unwrap_err();
        assert!(e.to_string().contains("needs a 'pairs' entry"), "{e}");
        assert!(Registry::parse("[x]\nformat='nope'", "f.toml").is_err());
    }

    /// A protocol file's [differentials] is checked: targets, α weights and age bands.
    #[test]
    fn bad_differentials_are_config_errors() {
        let builtin = PairProtocol::builtin().unwrap();
        assert_eq!(builtin.differentials, DifferentialsConfig::default());
        let with = |table: &str| {
            let head = PAIR_VERIFICATION.split("[differentials]").next().unwrap();
            let tail = PAIR_VERIFICATION.split("# Flip fusion per mode").nth(1).unwrap();
            let text = format!("{head}{table}\n# Flip fusion per mode{tail}");
            PairProtocol::parse(&text, "p.toml").map(|_| ()).unwrap_err().to_string()
        };
        let base = "far_targets = [1e-3]\nfdr_alpha = 0.5\ngarbe_alpha = 0.5\n";
        let e = with(&format!(
            "[differentials]\n{}age_bands = [{{ name = 'a', lo = 0, hi = 20 }}, {{ name = 'b', lo = 20 }}]\n",
            base
        ));
        assert!(e.contains("age bands 'a' and 'b' overlap"), "{e}");
        let e = with(&format!("[differentials]\n{}age_bands = [{{ name = 'a', lo = 9, hi = 3 }}]\n", base));
        assert!(e.contains("ends before it starts"), "{e}");
        let e = with("[differentials]\nfar_targets = [0]\nfdr_alpha = 0.5\ngarbe_alpha = 0.5\nage_bands = []\n");
        assert!(e.contains("FMR target 0 is not in (0, 1]"), "{e}");
        let e = with("[differentials]\nfar_targets = [1e-3]\nfdr_alpha = 1.5\ngarbe_alpha = 0.5\nage_bands = []\n");
        assert!(e.contains("fdr_alpha = 1.5 is not in [0, 1]"), "{e}");
    }
}

/// MegaFace Challenge 1 parameters (protocols/megaface.toml).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MegafaceProtocol {
    pub name: String,
    pub description: String,
    pub far_targets: Vec<f64>,
    pub devkit_probes: usize,
    pub cmc_ranks: Vec<u64>,
    pub flip: FlipChoice,
    pub jitter: f64,
    pub jitter_seed: u64,
    pub age_groups: Vec<crate::metrics::age_gap::GapBin>,
    pub age_gap: AgeGapConfig,
}

impl MegafaceProtocol {
    pub fn builtin() -> Result<Self> {
        Self::parse(MEGAFACE, "<built-in protocols/megaface.toml>")
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, source: &str) -> Result<Self> {
        let p: MegafaceProtocol = toml::from_str(text).map_err(|e| Error::Config(format!("{source}: {e}")))?;
        if let Some(f) = p.far_targets.iter().find(|f| !(**f > 0.0 && **f < 1.0)) {
            return Err(Error::Config(format!("{source}: FAR target {f} is not in (0, 1)")));
        }
        if p.cmc_ranks.contains(&0) {
            return Err(Error::Config(format!("{source}: cmc_ranks are 1-based; 0 is not a rank")));
        }
        if !(p.jitter >= 0.0 && p.jitter.is_finite()) {
            return Err(Error::Config(format!("{source}: jitter must be a finite number >= 0")));
        }
        if p.age_groups.is_empty() || p.age_gap.bins.is_empty() {
            return Err(Error::Config(format!("{source}: age_groups and [age_gap] bins must not be empty")));
        }
        Ok(p)
    }
}

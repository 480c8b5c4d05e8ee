//! The table of on-disk formats: for each [`Format`] (the `format` of a `datasets.toml` entry),
//! one [`Adapter`] row saying which files it needs, which protocol evaluates it, how its pairs are
//! read, how the images to embed are found, and what `aifr-eval datasets` says about its files.
//! Everything else dispatches on these fields, never on the format itself, so a new format is a
//! new row (plus its reader).

use super::{agedb, bin_pairs, cacd_vs, calfw, lfw, rfw, PairBenchmark};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The layout a benchmark is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    LfwPairs,
    CalfwPairs,
    InsightfaceBin,
    Ijb,
    Megaface,
    Fgnet,
    /// A user's collection listed in a manifest (`aifr-eval run --manifest`).
    Manifest,
    /// AgeDB images with an official protocol `.mat` (dataset/agedb.rs).
    AgedbMat,
    /// CACD-VS: one directory of `<pair id>_<0|1>.jpg` (dataset/cacd_vs.rs).
    CacdVs,
    /// RFW's release: four subsets' pairs lists under `test/txts` (dataset/rfw.rs).
    Rfw,
}

/// What a pair reader gets: the file of the format's first evaluation role, the fold count of
/// the protocol (for layouts that store no folds), and the path of any other role.
pub struct PairInput<'a> {
    pub path: &'a Path,
    pub folds: usize,
    pub role: &'a dyn Fn(&str) -> Option<std::path::PathBuf>,
}

/// Which protocol family evaluates a format (docs/protocols.md).
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// Pair verification (§1): `read` gives the pairs and folds. With `listing`, the protocol is
    /// the directory listing itself, which the results fingerprint.
    Pairs { read: fn(&PairInput) -> Result<PairBenchmark>, listing: bool },
    /// FG-NET leave-one-person-out (§5.3).
    Fgnet,
    /// IJB-B/C templates, 1:1 and 1:N (§2).
    Ijb,
    /// MegaFace, evaluated per distractor set by `aifr-eval megaface` (§4).
    Megaface,
    /// Manifests are run with `aifr-eval run --manifest` (§8), not from the registry.
    Manifest,
}

/// How the images to embed are listed (`aifr-eval embed`, `run --model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    /// `<images>/<key>` for every image the pair list names.
    PairKeys,
    /// Every image of the `bin` pack, keyed by position.
    Pack,
    /// Every image of the FG-NET `images` directory.
    FgnetDir,
    /// IJB: the crops of `faces` under `images`, aligned with `landmarks`.
    IjbCrops,
}

/// One format's row of the table.
#[derive(Debug)]
pub struct Adapter {
    pub format: Format,
    /// File roles needed to evaluate from precomputed embeddings.
    pub eval_roles: &'static [&'static str],
    /// File roles used in evaluation when present, and what for (`aifr-eval datasets`).
    pub optional_eval_roles: &'static [&'static str],
    pub optional_use: &'static str,
    pub protocol: Protocol,
    /// `None`: embeddings have to be computed elsewhere and passed with `--embeddings`.
    pub images: Option<Images>,
    /// Why a run has no age-gap breakdown, for layouts known to carry no ages.
    pub no_ages: Option<&'static str>,
}

impl Adapter {
    /// Whether `aifr-eval run <benchmark>` evaluates this format.
    pub fn supported(&self) -> bool {
        !matches!(self.protocol, Protocol::Manifest)
    }
}

const fn pairs(
    format: Format,
    roles: &'static [&'static str],
    read: fn(&PairInput) -> Result<PairBenchmark>,
) -> Adapter {
    Adapter {
        format,
        eval_roles: roles,
        optional_eval_roles: &[],
        optional_use: "",
        protocol: Protocol::Pairs { read, listing: false },
        images: Some(Images::PairKeys),
        no_ages: None,
    }
}

const READ_CACD_VS: fn(&PairInput) -> Result<PairBenchmark> = |i| cacd_vs::read_dir(i.path);

/// The table, one row per [`Format`] (checked by a test).
static ADAPTERS: [Adapter; 10] = [
    pairs(Format::LfwPairs, &["pairs"], |i| lfw::read_pairs(i.path)),
    pairs(Format::CalfwPairs, &["pairs"], |i| calfw::read_pairs(i.path)),
    Adapter {
        images: Some(Images::Pack),
        ..pairs(Format::InsightfaceBin, &["bin"], |i| bin_pairs::read_pairs(i.path, i.folds))
    },
    // The images are checked against the protocol when they are there (embeddings alone suffice).
    pairs(Format::AgedbMat, &["protocol"], |i| {
        agedb::read_protocol(i.path, (i.role)("images").filter(|d| d.is_dir()).as_deref())
    }),
    Adapter {
        protocol: Protocol::Pairs { read: READ_CACD_VS, listing: true },
        no_ages: Some(
            "CACD-VS names its images by pair number only (0000_0.jpg) and ships no ages: no age-gap breakdown (supply ages with --ages)",
        ),
        ..pairs(Format::CacdVs, &["images"], READ_CACD_VS)
    },
    Adapter {
        no_ages: Some("RFW ships no ages: its differentials are by subset only (supply ages with --ages for age bands)"),
        ..pairs(Format::Rfw, &["txts"], |i| rfw::read_release(i.path, i.folds))
    },
    Adapter {
        format: Format::Fgnet,
        eval_roles: &["images"],
        optional_eval_roles: &[],
        optional_use: "",
        protocol: Protocol::Fgnet,
        images: Some(Images::FgnetDir),
        no_ages: None,
    },
    Adapter {
        format: Format::Ijb,
        eval_roles: &["faces", "pairs", "landmarks"],
        optional_eval_roles: &["gallery1", "gallery2", "probes"],
        optional_use: "1:N evaluation, optional",
        protocol: Protocol::Ijb,
        images: Some(Images::IjbCrops),
        no_ages: None,
    },
    Adapter {
        format: Format::Megaface,
        eval_roles: &["probes", "distractors"],
        optional_eval_roles: &[],
        optional_use: "",
        protocol: Protocol::Megaface,
        images: None,
        no_ages: None,
    },
    Adapter {
        format: Format::Manifest,
        eval_roles: &["manifest"],
        optional_eval_roles: &[],
        optional_use: "",
        protocol: Protocol::Manifest,
        images: None,
        no_ages: None,
    },
];

impl Format {
    /// This format's row of the table.
    pub fn adapter(self) -> &'static Adapter {
        ADAPTERS.iter().find(|a| a.format == self).unwrap_or_else(|| unreachable!("{self:?} has a row (tested)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every format has exactly one row, and every row a role to read first.
    #[test]
    fn every_format_has_one_row() {
        let all = [
            Format::LfwPairs,
            Format::CalfwPairs,
            Format::InsightfaceBin,
            Format::Ijb,
            Format::Megaface,
            Format::Fgnet,
            Format::Manifest,
            Format::AgedbMat,
            Format::CacdVs,
            Format::Rfw,
        ];
        assert_eq!(ADAPTERS.len(), all.len());
        for f in all {
            assert_eq!(ADAPTERS.iter().filter(|a| a.format == f).count(), 1, "{f:?}");
            assert!(!f.adapter().eval_roles.is_empty(), "{f:?}");
        }
        assert!(!Format::Manifest.adapter().supported() && Format::Ijb.adapter().supported());
    }
}

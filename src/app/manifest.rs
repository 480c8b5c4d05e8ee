//! `aifr-eval manifest check|build|export-demo` and `aifr-eval run --manifest`.

use super::{
    file_fingerprint, finish_run, open_run_embeddings, pair_protocol, verification_params, Clock, Env, Evaluation,
    RunReport, RunRequest,
};
use crate::config::Format;
use crate::dataset::manifest::{summarise, Manifest, ManifestSummary};
use crate::error::{Error, Result};
use crate::protocol::manifest::build::{build_pairs, BuildSpec, Cohort, GalleryChoice, PairList, Split};
use crate::protocol::manifest::lists::{
    pairs_file_name, read_description, read_pairs, read_split, write_protocol, ManifestFingerprint, ProtocolDescription,
};
use crate::protocol::manifest::{column_differentials, identification, stratify};
use crate::protocol::verification;
use crate::report::terminal::{manifest_lines, verification_table};
use crate::run::dir::OutDir;
use crate::run::results::{
    BenchmarkInfo, EmbeddingsInfo, ManifestProtocolInfo, ManifestResults, ManifestRunInfo, ProtocolInfo, Software,
    VerificationResults, SCHEMA, SCHEMA_VERSION,
};
use std::path::{Path, PathBuf};

/// The default seed of protocols built for a run without `--protocol-dir`.
pub const DEFAULT_SEED: u64 = 0;
/// Leave-one-image-out compares every image with every other: above this many images it is
/// skipped unless asked for.
pub const DEFAULT_LOO_MAX_IMAGES: usize = 20_000;

/// `aifr-eval manifest check`: reads and validates the manifest, looks for its files under
/// `root` (default: the manifest's directory) unless `check_files` is false. Missing files are
/// an error (after the summary, which the caller prints from the returned value).
pub fn check(path: &Path, root: Option<&Path>, check_files: bool) -> Result<(Manifest, ManifestSummary)> {
    let m = Manifest::read(path)?;
    let root = root.map(Path::to_path_buf).unwrap_or_else(|| default_root(path));
    let summary = summarise(&m, check_files.then_some(root.as_path()));
    Ok((m, summary))
}

/// Dataset root when none is given: the manifest's directory.
pub fn default_root(manifest: &Path) -> PathBuf {
    manifest.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| ".".into())
}

/// Builds every pair list (plain + one per gap) and the identification splits.
pub fn build_all(m: &Manifest, spec: &BuildSpec) -> Result<(Vec<PairList>, Vec<Split>)> {
    if spec.folds < 2 {
        return Err(Error::Config("--folds must be at least 2 (identity-disjoint k-fold accuracy)".into()));
    }
    if spec.min_age_gaps.contains(&0) {
        return Err(Error::Config("--min-age-gap must be at least 1 year (the plain pairs.txt has no minimum)".into()));
    }
    let cohort = Cohort::new(m);
    if cohort.identities.len() < spec.folds {
        return Err(Error::Invalid(format!(
            "{} has {} identities, fewer than the {} folds; use fewer --folds",
            m.source.display(),
            cohort.identities.len(),
            spec.folds
        )));
    }
    let folds = cohort.folds(spec.folds, spec.seed);
    let mut lists = vec![build_pairs(&cohort, &folds, spec, 0)?];
    for &gap in &spec.min_age_gaps {
        lists.push(build_pairs(&cohort, &folds, spec, gap)?);
    }
    let choices: &[GalleryChoice] =
        if m.ages.is_some() { &[GalleryChoice::Youngest, GalleryChoice::Oldest] } else { &[GalleryChoice::First] };
    let splits = choices.iter().map(|&c| cohort.split(c)).collect::<Result<Vec<_>>>()?;
    Ok((lists, splits))
}

/// `aifr-eval manifest build`: writes the protocol files into `out`.
pub fn build(manifest: &Path, out: &Path, spec: &BuildSpec) -> Result<ProtocolDescription> {
    let m = Manifest::read(manifest)?;
    let (lists, splits) = build_all(&m, spec)?;
    write_protocol(out, &m, spec, &lists, &splits)
}

/// `aifr-eval run --manifest`.
#[derive(Debug, Clone)]
pub struct ManifestRunRequest {
    pub manifest: PathBuf,
    /// Built by `aifr-eval manifest build`; None = build into `<out>/protocol` with `seed`.
    pub protocol_dir: Option<PathBuf>,
    /// A pairs file to evaluate instead of the protocol's (pairs.txt layout; LFW lines accepted).
    pub pairs: Option<PathBuf>,
    /// Evaluate `pairs_min_gap_<G>.txt` instead of `pairs.txt`.
    pub min_age_gap: Option<u32>,
    pub gallery: Option<GalleryChoice>,
    pub stratify: Vec<String>,
    pub seed: u64,
    pub pairs_per_fold: Option<usize>,
    pub age_tolerance: u32,
    pub loo_max_images: usize,
    /// Embeddings, mode, flip, protocol file and output directory as for any benchmark
    /// (`benchmark`, `ages` and `per_subject_models` do not apply).
    pub run: RunRequest,
}

fn fingerprint_by_name(role: &str, path: &Path) -> Result<crate::run::results::FileFingerprint> {
    let base = path.parent().unwrap_or(Path::new(""));
    file_fingerprint(role, path, base)
}

pub fn run_manifest(env: &Env, req: &ManifestRunRequest) -> Result<RunReport> {
    let out = OutDir::begin(&req.run.out_dir)?;
    finish_run(out, evaluate_manifest(env, req)?)
}

/// A manifest run's evaluation; nothing of the run is written, only the protocol it builds when
/// `protocol_dir` is `None` (into `<out_dir>/protocol`, kept with the run).
pub fn evaluate_manifest(env: &Env, req: &ManifestRunRequest) -> Result<Evaluation> {
    let r = &req.run;
    if r.per_subject_models || r.ages.is_some() {
        return Err(Error::Config(
            "with --manifest, ages come from its 'age' column and there is one model: drop --ages/--loo-embeddings"
                .into(),
        ));
    }
    let mut clock = Clock::new();
    let protocol = pair_protocol(r.protocol_file.as_deref())?;
    let m = Manifest::read(&req.manifest)?;
    // The protocol: read from a directory built before, or built now (and kept with the run).
    let (dir, desc, source) = match &req.protocol_dir {
        Some(d) => (d.clone(), read_description(d, &m)?, "protocol directory"),
        None => {
            let spec = BuildSpec {
                seed: req.seed,
                folds: protocol.folds,
                pairs_per_fold: req.pairs_per_fold,
                min_age_gaps: req.min_age_gap.into_iter().collect(),
                age_tolerance: req.age_tolerance,
            };
            let (lists, splits) = build_all(&m, &spec)?;
            let d = r.out_dir.join("protocol");
            let desc = write_protocol(&d, &m, &spec, &lists, &splits)?;
            (d, desc, "built for this run")
        }
    };
    let gap = req.min_age_gap.unwrap_or(0);
    let pairs_path = match &req.pairs {
        Some(p) => p.clone(),
        None => {
            let p = dir.join(pairs_file_name(gap));
            if !p.exists() {
                let have: Vec<String> =
                    desc.files.iter().filter(|f| f.role == "pairs").map(|f| f.file.clone()).collect();
                return Err(Error::Missing(format!(
                    "{} does not exist (the protocol directory holds {}); build it with `aifr-eval manifest build {} --min-age-gap {gap}`",
                    p.display(),
                    have.join(", "),
                    req.manifest.display()
                )));
            }
            p
        }
    };
    let bench = read_pairs(&pairs_path, &m)?;
    let choice = req.gallery.unwrap_or(if m.ages.is_some() { GalleryChoice::Youngest } else { GalleryChoice::First });
    let (gallery, probes, gallery_path, probes_path) = read_split(&dir, choice.name(), &m)?;
    let files = vec![
        fingerprint_by_name("manifest", &req.manifest)?,
        fingerprint_by_name("pairs", &pairs_path)?,
        fingerprint_by_name("gallery", &gallery_path)?,
        fingerprint_by_name("probes", &probes_path)?,
    ];
    clock.lap("read benchmark");

    let store = open_run_embeddings(env, &r.embeddings, r.keys.as_deref(), r.flip_embeddings.as_deref(), None)?;
    clock.lap("open embeddings");
    let params = verification_params(&protocol, r.mode, r.flip, &store)?;
    let (mode, fusion) = (params.mode, params.fusion);
    let outcome = verification::evaluate(&bench, &store, &params)?;
    clock.lap("verification");
    let ident = identification(
        &m,
        &store,
        fusion,
        choice.name(),
        &gallery,
        &probes,
        &protocol.age_gap.bins,
        req.loo_max_images,
    )?;
    clock.lap("identification");
    let index = m.row_index();
    let row = |k: u32| index[bench.keys[k as usize].as_str()];
    let pair_rows: Vec<(u32, u32)> = bench.pairs.iter().map(|p| (row(p.a), row(p.b))).collect();
    let mut columns: Vec<String> = m.text_column("group").map(|c| c.name.clone()).into_iter().collect();
    for c in &req.stratify {
        if !columns.contains(c) {
            columns.push(c.clone());
        }
    }
    let strata = columns
        .iter()
        .map(|c| stratify(&m, c, &outcome, &pair_rows, &protocol.age_gap, &ident))
        .collect::<Result<Vec<_>>>()?;
    let mut outcome = outcome;
    for c in &columns {
        let d = column_differentials(&m, c, &outcome, &pair_rows, &protocol.differentials)?;
        outcome.metrics.differentials.push(d);
    }
    clock.lap("strata");

    let file = ManifestFingerprint::of(&m)?;
    let results = ManifestResults {
        verification: VerificationResults {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            kind: crate::run::results::kind::PAIR_VERIFICATION.into(),
            software: Software::current(),
            benchmark: BenchmarkInfo {
                name: format!("manifest:{}", file.file),
                title: format!("{} ({} images, {} identities)", file.file, m.len(), m.identities()),
                format: Format::Manifest,
                files,
            },
            protocol: ProtocolInfo::pairs(
                if gap == 0 { "manifest_pairs".into() } else { format!("manifest_pairs_min_gap_{gap}") },
                mode,
                fusion,
                bench.folds,
                protocol.far_targets.clone(),
            ),
            embeddings: EmbeddingsInfo::of(&store),
            counts: outcome.counts,
            metrics: outcome.metrics.clone(),
        },
        manifest: ManifestRunInfo {
            file,
            protocol: ManifestProtocolInfo {
                source: source.into(),
                seed: desc.seed,
                age_tolerance: desc.age_tolerance,
                pairs_file: pairs_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                min_age_gap: gap,
            },
            columns: m.text_columns.iter().map(|c| c.name.clone()).collect(),
            has_ages: m.ages.is_some(),
        },
        identification: ident.result,
        strata,
    };
    let mut table = verification_table(&results.verification);
    table.push_str(&manifest_lines(&results));
    Ok(Evaluation {
        results: crate::run::results::Results::Manifest(Box::new(results)),
        curves: Some(outcome.curves),
        pair_scores: Some(outcome.pairs),
        cmc_curves: None,
        search_outcomes: None,
        table,
        clock,
    })
}

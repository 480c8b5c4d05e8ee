//! `aifr-eval run ijbb|ijbc`: template pooling, 1:1 verification and 1:N identification.

use super::{
    check_eval_files, file_fingerprint, finish_run, open_run_embeddings, Clock, Env, Evaluation, RunReport, RunRequest,
};
use crate::config::{FlipChoice, IjbProtocol};
use crate::dataset::ijb::IjbFiles;
use crate::error::{Error, Result};
use crate::report::terminal::ijb_table;
use crate::run::dir::OutDir;
use crate::run::results::{
    BenchmarkInfo, EmbeddingsInfo, IjbPoolingInfo, IjbProtocolInfo, IjbResults, Software, SCHEMA, SCHEMA_VERSION,
};
use crate::score::fusion::Fusion;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The IJB release files of a registry entry; the 1:N lists are used when all three exist.
fn ijb_files(env: &Env, name: &str, entry: &crate::config::DatasetEntry) -> Result<IjbFiles> {
    check_eval_files(env, name, entry)?;
    let file = |role: &str| entry.file(&env.data_dir, role).unwrap_or_default();
    let one_n: Vec<PathBuf> =
        ["gallery1", "gallery2", "probes"].iter().filter_map(|r| entry.file(&env.data_dir, r)).collect();
    let present = one_n.iter().filter(|p| p.exists()).count();
    let one_n = match (one_n.len(), present) {
        (3, 3) => Some([one_n[0].clone(), one_n[1].clone(), one_n[2].clone()]),
        (_, 0) => None,
        _ => {
            let missing: Vec<String> = one_n.iter().filter(|p| !p.exists()).map(|p| p.display().to_string()).collect();
            return Err(Error::Missing(format!(
                "benchmark '{name}': 1:N needs all three lists (gallery1, gallery2, probes); missing {}",
                missing.join(", ")
            )));
        }
    };
    Ok(IjbFiles { faces: file("faces"), landmarks: file("landmarks"), pairs: file("pairs"), one_n })
}

/// Gallery name from a 1:N list file name: `ijbc_1N_gallery_G1.csv` → `G1`.
fn gallery_name(path: &Path, fallback: &'static str) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit('_').next())
        .filter(|s| !s.is_empty())
        .unwrap_or(fallback)
        .to_string()
}

/// IJB-B/C: template pooling, 1:1 verification and 1:N identification.
pub fn run_ijb(env: &Env, req: &RunRequest) -> Result<RunReport> {
    let out = OutDir::begin(&req.out_dir)?;
    finish_run(out, evaluate_ijb(env, req)?)
}

/// IJB's evaluation, written nowhere (`req.out_dir` is not used).
pub fn evaluate_ijb(env: &Env, req: &RunRequest) -> Result<Evaluation> {
    use crate::protocol::ijb::{self, IjbParams, Pooling};
    let mut clock = Clock::new();
    if req.per_subject_models || req.mode.is_some() || req.ages.is_some() {
        return Err(Error::Config(
            "IJB reports every rule side by side and has no ages or per-subject models: drop --mode/--ages/--loo-embeddings".into(),
        ));
    }
    let protocol = match &req.protocol_file {
        Some(p) => IjbProtocol::from_file(p)?,
        None => IjbProtocol::builtin()?,
    };
    let entry = env.registry.get(&req.benchmark)?;
    let files = ijb_files(env, &req.benchmark, entry)?;
    let names = match &files.one_n {
        Some([g1, g2, _]) => [gallery_name(g1, "G1"), gallery_name(g2, "G2")],
        None => ["G1".to_string(), "G2".to_string()],
    };
    let release = crate::dataset::ijb::read_release(&files, [names[0].as_str(), names[1].as_str()])?;
    clock.lap("read benchmark");
    let prints =
        release.sources.iter().map(|(role, p)| file_fingerprint(role, p, &env.data_dir)).collect::<Result<Vec<_>>>()?;
    clock.lap("fingerprint files");
    let store = open_run_embeddings(env, &req.embeddings, req.keys.as_deref(), req.flip_embeddings.as_deref(), None)?;
    let made_by = crate::embed::meta::EmbedMeta::of_store(&store)?;
    if let Some(m) = made_by.as_ref().filter(|m| !m.skipped_images.is_empty()) {
        // Dropping a crop would silently change its template: refuse rather than guess.
        return Err(Error::Config(format!(
            "{} image(s) of {} could not be embedded (first: {}); IJB templates need every crop: fix or replace \
             them and embed again without --skip-bad-images",
            m.skipped_images.len(),
            store.display_path().display(),
            m.skipped_images[0].key
        )));
    }
    clock.lap("open embeddings");
    let flip = match req.flip.unwrap_or(protocol.pooling.flip) {
        FlipChoice::Auto => store.has_flip(),
        FlipChoice::Sum => true,
        FlipChoice::None => false,
        FlipChoice::Concat => {
            return Err(Error::Config("IJB pooling sums the mirrored embedding: use --flip sum or none".into()))
        }
    };
    let pooling = Pooling {
        flip,
        normalize_images: protocol.pooling.normalize_images,
        detector_weight: protocol.pooling.detector_weight,
    };
    let params = IjbParams {
        pooling,
        far_targets: protocol.far_targets.clone(),
        fpir_targets: protocol.fpir_targets.clone(),
        cmc_ranks: protocol.cmc_ranks.clone(),
        legacy_fars: protocol.legacy_fars.clone(),
    };
    let outcome = ijb::evaluate(&release, &store, &params)?;
    for (stage, secs) in &outcome.stages {
        clock.stages.push((stage.clone(), *secs));
    }
    clock.last = Instant::now();
    let results = IjbResults {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        kind: crate::run::results::kind::IJB.into(),
        software: Software::current(),
        benchmark: BenchmarkInfo { name: req.benchmark.clone(), title: entry.title.clone(), format: entry.format, files: prints },
        protocol: IjbProtocolInfo {
            name: protocol.name.clone(),
            mode: "strict".into(),
            flip_fusion: if flip { Fusion::Sum } else { Fusion::None },
            pooling: IjbPoolingInfo {
                switches: pooling,
                rule: "f_i = (e_i + e_i_flip if flip) / ||.|| if normalize_images, times the detector score if detector_weight (raw embeddings); media = mean of its images; template = sum of its medias, L2-normalised".into(),
            },
            far_targets: protocol.far_targets.clone(),
            fpir_targets: protocol.fpir_targets.clone(),
            cmc_ranks: protocol.cmc_ranks.clone(),
            legacy_fars: protocol.legacy_fars.clone(),
            score: "cosine similarity of the L2-normalised template features (f32 dot product)".into(),
            accept_rule: "1:1: same iff score >= threshold (both TAR rules report their threshold)".into(),
            open_set_rule: "strict: FPIR threshold by bob's rule on each non-mated probe's highest gallery score, accept mate score >= threshold; compat=ijb_evals: threshold = sorted non-mated maxima at max(floor(N*FPIR)-1, 0), accept >; both require the mate to score strictly above every non-mate (rank 1); CMC ranks count ties against the mate".into(),
        },
        embeddings: EmbeddingsInfo::of(&store).with_provenance(made_by.as_ref(), None),
        counts: outcome.counts,
        metrics: outcome.metrics,
    };
    // 15.7 M pairs would make a 600 MB pair_scores.npy: IJB runs keep none.
    let table = ijb_table(&results);
    Ok(Evaluation {
        results: crate::run::results::Results::Ijb(results),
        curves: Some(outcome.curves),
        pair_scores: None,
        cmc_curves: None,
        search_outcomes: outcome.search_outcomes,
        table,
        clock,
    })
}

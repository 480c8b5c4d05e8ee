//! `aifr-eval run fgnet`: leave-one-image-out identification and all-pairs verification.

use super::{
    finish_run, listing_fingerprint, open_embeddings, open_run_embeddings, Clock, Env, Evaluation, RunReport,
    RunRequest,
};
use crate::config::FgnetProtocol;
use crate::dataset::fgnet;
use crate::error::{Error, Result};
use crate::metrics::FoldMode;
use crate::protocol::fgnet as fgnet_protocol;
use crate::protocol::verification::{self};
use crate::report::terminal::fgnet_table;
use crate::run::dir::OutDir;
use crate::run::results::Results;
use crate::run::results::{
    BenchmarkInfo, EmbeddingsInfo, FgnetProtocolInfo, FgnetResults, Software, SCHEMA, SCHEMA_VERSION,
};
use crate::store::EmbeddingStore;
use std::path::Path;

/// The store of the model trained without FG-NET subject `id`: `<id>.aifrstore`, or `<id>.npy`
/// (+ `<id>_flip.npy`) with the shared `keys.txt`, in `dir`.
fn open_subject_store(env: &Env, dir: &Path, keys: &Path, id: u32) -> Result<EmbeddingStore> {
    let store = dir.join(format!("{id:03}.aifrstore"));
    if store.exists() {
        return env.checked(EmbeddingStore::open(&store)?);
    }
    let npy = dir.join(format!("{id:03}.npy"));
    if !npy.exists() {
        return Err(Error::Missing(format!(
            "no embeddings for held-out subject {id:03} in {} (expected {id:03}.npy with keys.txt, or {id:03}.aifrstore)",
            dir.display()
        )));
    }
    let flip = dir.join(format!("{id:03}_flip.npy"));
    open_embeddings(env, &npy, Some(keys), flip.exists().then_some(flip.as_path()), None)
}

/// FG-NET: leave-one-image-out rank-1 and all-pairs verification with age breakdowns.
pub fn run_fgnet(env: &Env, req: &RunRequest) -> Result<RunReport> {
    let out = OutDir::begin(&req.out_dir)?;
    finish_run(out, evaluate_fgnet(env, req)?)
}

/// FG-NET's evaluation, written nowhere (`req.out_dir` is not used).
pub fn evaluate_fgnet(env: &Env, req: &RunRequest) -> Result<Evaluation> {
    let mut clock = Clock::new();
    let protocol = match &req.protocol_file {
        Some(p) => FgnetProtocol::from_file(p)?,
        None => FgnetProtocol::builtin()?,
    };
    if req.mode.is_some() || req.ages.is_some() {
        return Err(Error::Config(
            "FG-NET takes ages from its file names and has no k-fold mode: drop --mode/--ages".into(),
        ));
    }
    let entry = env.registry.get(&req.benchmark)?;
    let dir = entry
        .file(&env.data_dir, "images")
        .ok_or_else(|| Error::Config(format!("dataset '{}' has no 'images' entry", req.benchmark)))?;
    if !dir.exists() {
        return Err(Error::Missing(format!(
            "benchmark '{}' needs the FG-NET image directory {} (set --data-dir or AIFR_DATA_DIR)",
            req.benchmark,
            dir.display()
        )));
    }
    let bench = fgnet::read_dir(&dir)?;
    let keys: Vec<String> = bench.images.iter().map(|i| i.key.clone()).collect();
    let files = vec![listing_fingerprint("images", &dir, &keys, &env.data_dir)?];
    clock.lap("read benchmark");
    let (outcome, embeddings, fusion) = if req.per_subject_models {
        let dir = req.embeddings.file("one model per held-out subject (--loo-embeddings)")?;
        let keys = dir.join("keys.txt");
        // Every model's store fingerprint, in subject order: together they identify the inputs.
        let prints = std::sync::Mutex::new(Vec::new());
        let store_for = |id: u32| -> Result<EmbeddingStore> {
            let store = open_subject_store(env, dir, &keys, id)?;
            if let Ok(mut p) = prints.lock() {
                p.push(store.fingerprint());
            }
            Ok(store)
        };
        let first = open_subject_store(env, dir, &keys, bench.images[0].subject)?;
        let fusion = verification::resolve_fusion(req.flip.unwrap_or(protocol.flip), FoldMode::Strict, &first)?;
        let outcome = fgnet_protocol::evaluate_per_subject(&bench, store_for, &protocol, fusion)?;
        let mut info = EmbeddingsInfo::of(&first);
        let joined = prints.into_inner().unwrap_or_default().join("\n");
        info.fingerprint = blake3::hash(joined.as_bytes()).to_hex().to_string();
        (outcome, info, fusion)
    } else {
        let store =
            open_run_embeddings(env, &req.embeddings, req.keys.as_deref(), req.flip_embeddings.as_deref(), None)?;
        let made_by = crate::embed::meta::EmbedMeta::of_store(&store)?;
        let mut bench = bench.clone();
        let skipped = crate::embed::skipped::exclude_from_fgnet(&mut bench, made_by.as_ref());
        let fusion = verification::resolve_fusion(req.flip.unwrap_or(protocol.flip), FoldMode::Strict, &store)?;
        let info = EmbeddingsInfo::of(&store).with_provenance(made_by.as_ref(), skipped);
        (fgnet_protocol::evaluate(&bench, &store, &protocol, fusion)?, info, fusion)
    };
    clock.lap("score and metrics");
    let results = FgnetResults {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        kind: crate::run::results::kind::FGNET.into(),
        software: Software::current(),
        benchmark: BenchmarkInfo { name: req.benchmark.clone(), title: entry.title.clone(), format: entry.format, files },
        protocol: FgnetProtocolInfo {
            name: protocol.name.clone(),
            mode: "strict".into(),
            flip_fusion: fusion,
            far_targets: protocol.far_targets.clone(),
            age_groups: protocol.age_groups.clone(),
            score: "cosine similarity of L2-normalised (fused) embeddings".into(),
            accept_rule: "rank-1 hit iff the best mate scores strictly above every other subject's image; verification: same iff score >= threshold".into(),
        },
        embeddings,
        counts: outcome.counts,
        metrics: outcome.metrics,
    };
    let table = fgnet_table(&results);
    Ok(Evaluation {
        results: Results::Fgnet(results),
        curves: outcome.curves,
        pair_scores: None,
        cmc_curves: None,
        search_outcomes: Some(outcome.searches),
        table,
        clock,
    })
}

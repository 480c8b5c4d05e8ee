//! `aifr-eval run <pair benchmark>`: LFW family, `.bin` packs, AgeDB protocols, CACD-VS.

use super::{
    finish_run, load_pair_benchmark, open_run_embeddings, pair_protocol, resolve_ages, verification_params, Clock, Env,
    Evaluation, RunReport, RunRequest,
};
use crate::error::{Error, Result};
use crate::protocol::verification;
use crate::report::terminal::verification_table;
use crate::run::dir::OutDir;
use crate::run::results::Results;
use crate::run::results::{
    BenchmarkInfo, EmbeddingsInfo, ProtocolInfo, Software, VerificationResults, SCHEMA, SCHEMA_VERSION,
};

pub fn run_pairs(env: &Env, req: &RunRequest) -> Result<RunReport> {
    let out = OutDir::begin(&req.out_dir)?;
    finish_run(out, evaluate_pairs(env, req)?)
}

/// A pair benchmark's evaluation, written nowhere (`req.out_dir` is not used).
pub fn evaluate_pairs(env: &Env, req: &RunRequest) -> Result<Evaluation> {
    if req.per_subject_models {
        return Err(Error::Config("one model per held-out subject (--loo-embeddings) applies to FG-NET only".into()));
    }
    let mut clock = Clock::new();
    let protocol = pair_protocol(req.protocol_file.as_deref())?;
    let (mut bench, files) = load_pair_benchmark(env, &req.benchmark, protocol.folds)?;
    bench.ages = resolve_ages(&bench, req.ages.as_deref())?;
    clock.lap("read benchmark");
    let row_order = bench.keys_are_row_order.then_some(bench.keys.as_slice());
    let store =
        open_run_embeddings(env, &req.embeddings, req.keys.as_deref(), req.flip_embeddings.as_deref(), row_order)?;
    // A store the network made may lack images skipped as unreadable: their pairs are excluded.
    let made_by = crate::embed::meta::EmbedMeta::of_store(&store)?;
    let skipped = crate::embed::skipped::exclude_from_pairs(&mut bench, made_by.as_ref());
    clock.lap("open embeddings");
    let params = verification_params(&protocol, req.mode, req.flip, &store)?;
    let (mode, fusion) = (params.mode, params.fusion);
    let mut outcome = verification::evaluate(&bench, &store, &params)?;
    clock.lap("score and metrics");
    let entry = env.registry.get(&req.benchmark)?;
    if outcome.metrics.age_gap.is_none() {
        outcome.metrics.age_gap_unavailable = entry.format.adapter().no_ages.map(Into::into);
    }
    let results = VerificationResults {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        kind: crate::run::results::kind::PAIR_VERIFICATION.into(),
        software: Software::current(),
        benchmark: BenchmarkInfo {
            name: req.benchmark.clone(),
            title: entry.title.clone(),
            format: entry.format,
            files,
        },
        protocol: ProtocolInfo::pairs(protocol.name.clone(), mode, fusion, bench.folds, protocol.far_targets.clone()),
        embeddings: EmbeddingsInfo::of(&store).with_provenance(made_by.as_ref(), skipped),
        counts: outcome.counts,
        metrics: outcome.metrics,
    };
    let table = verification_table(&results);
    Ok(Evaluation {
        results: Results::Pairs(results),
        curves: Some(outcome.curves),
        pair_scores: Some(outcome.pairs),
        cmc_curves: None,
        search_outcomes: None,
        table,
        clock,
    })
}

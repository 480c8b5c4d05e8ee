//! `aifr-eval gate` as the library exposes it: real demo runs (generated once per test process),
//! perturbed copies written as run directories, and every verdict, error and rendering.

use aifr_eval::app::{run_pairs, Env, RunRequest};
use aifr_eval::config::Registry;
use aifr_eval::gate::{gate, update_baseline, GateConfig, GateOutcome, GateRow, Verdict};
use aifr_eval::metrics::bootstrap::resample_stats;
use aifr_eval::metrics::{FoldMode, SortedPairs};
use aifr_eval::run::dir::{read_pair_scores, write_pair_scores, PairScores, RunData};
use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;

/// One run directory's files, in memory.
#[derive(Clone)]
struct Files {
    results: Value,
    curves: Option<Vec<u8>>,
    pairs: Option<PairScores>,
}

struct Demo {
    strict: Files,
    facexzoo: Files,
}

fn read_run(dir: &Path) -> Files {
    Files {
        results: serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap(),
        curves: Some(std::fs::read(dir.join("curves.json")).unwrap()),
        pairs: Some(read_pair_scores(&dir.join("pair_scores.npy")).unwrap()),
    }
}

/// Runs the demo benchmark of `seed` in `mode` (as `aifr-eval demo` does) under `dir`.
fn demo_run(dir: &Path, seed: u64, modes: &[Option<FoldMode>]) -> Vec<Files> {
    let spec = aifr_eval::demo::DemoSpec { seed, ..Default::default() };
    let files = aifr_eval::demo::generate(&spec, &dir.join("data")).unwrap();
    let env = Env {
        data_dir: files.data_dir.clone(),
        registry: Registry::builtin().unwrap(),
        cache_dir: dir.join("cache"),
        trust_store: false,
    };
    modes
        .iter()
        .enumerate()
        .map(|(i, mode)| {
            let out = dir.join(format!("run{i}"));
            let req = RunRequest {
                benchmark: "lfw".into(),
                embeddings: files.embeddings.clone().into(),
                per_subject_models: false,
                keys: Some(files.keys.clone()),
                flip_embeddings: Some(files.flip_embeddings.clone()),
                mode: *mode,
                flip: None,
                protocol_file: None,
                ages: Some(files.ages.clone()),
                out_dir: out.clone(),
            };
            run_pairs(&env, &req).unwrap();
            read_run(&out)
        })
        .collect()
}

/// The seed-7 demo in strict and facexzoo mode, generated once per test process.
fn demo() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let mut runs = demo_run(tmp.path(), 7, &[None, Some(FoldMode::Facexzoo)]);
        let facexzoo = runs.pop().unwrap();
        Demo { strict: runs.pop().unwrap(), facexzoo }
    })
}

fn write_run(dir: &Path, f: &Files) -> RunData {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("results.json"), aifr_eval::io::to_json(&f.results)).unwrap();
    if let Some(c) = &f.curves {
        std::fs::write(dir.join("curves.json"), c).unwrap();
    }
    if let Some(p) = &f.pairs {
        write_pair_scores(&dir.join("pair_scores.npy"), p).unwrap();
    }
    RunData::load(dir).unwrap()
}

/// Rewrites the gated numbers of results.json from the pair scores, as a run on them would.
fn recompute(results: &mut Value, p: &PairScores) {
    let k = results["protocol"]["folds"].as_u64().unwrap() as usize;
    let fars: Vec<f64> =
        results["protocol"]["far_targets"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let folds: Vec<usize> = p.fold.iter().map(|&f| f as usize).collect();
    let sorted = SortedPairs::new(&p.score, &p.genuine, &folds, k).unwrap();
    let stats = resample_stats(&sorted, &p.correct, &fars, None);
    let fold_acc: Vec<f64> = (0..k)
        .map(|f| {
            let idx: Vec<usize> = (0..p.fold.len()).filter(|&i| folds[i] == f).collect();
            idx.iter().filter(|&&i| p.correct[i]).count() as f64 / idx.len() as f64
        })
        .collect();
    let m = &mut results["metrics"];
    m["accuracy"]["mean"] = (fold_acc.iter().sum::<f64>() / k as f64).into();
    m["accuracy"]["fold_accuracies"] = fold_acc.into();
    m["roc"]["auc"] = stats.auc.into();
    m["roc"]["eer"]["eer"] = stats.eer.into();
    for e in m["tar_at_far"].as_array_mut().unwrap() {
        if e["rule"] == "strict" && e["available"] == true {
            let i = fars.iter().position(|f| Some(*f) == e["far_target"].as_f64()).unwrap();
            e["tar"] = stats.tar[i].into();
        }
    }
}

/// The base run with its pair scores changed by `f` (correct flags re-derived from each fold's
/// strict threshold, accept iff score >= t) and results.json recomputed to match.
fn perturbed(base: &Files, f: impl Fn(&mut PairScores, &[f64])) -> Files {
    let mut out = base.clone();
    let thresholds: Vec<f64> = base.results["metrics"]["accuracy"]["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let p = out.pairs.as_mut().unwrap();
    f(p, &thresholds);
    for i in 0..p.score.len() {
        p.correct[i] = (p.score[i] >= thresholds[p.fold[i] as usize]) == p.genuine[i];
    }
    recompute(&mut out.results, p);
    out
}

/// A real regression: every 4th genuine pair's score lowered by 0.15.
fn worse(base: &Files) -> Files {
    perturbed(base, |p, _| {
        for i in (0..p.score.len()).filter(|&i| p.genuine[i]).step_by(4) {
            p.score[i] -= 0.15;
        }
    })
}

/// Noise: the two genuine pairs closest above their fold's threshold pushed just below it
/// (two more errors in 6,000 pairs).
fn nudged(base: &Files) -> Files {
    perturbed(base, |p, t| {
        let mut near: Vec<usize> =
            (0..p.score.len()).filter(|&i| p.genuine[i] && p.score[i] >= t[p.fold[i] as usize]).collect();
        near.sort_by(|&a, &b| {
            let m = |i: usize| p.score[i] - t[p.fold[i] as usize];
            m(a).total_cmp(&m(b))
        });
        for &i in &near[..2] {
            p.score[i] = t[p.fold[i] as usize] - 1e-4;
        }
    })
}

fn row<'a>(o: &'a GateOutcome, metric: &str) -> &'a GateRow {
    o.rows.iter().find(|r| r.metric == metric).unwrap_or_else(|| panic!("no row {metric} in\n{}", o.table()))
}

fn builtin() -> GateConfig {
    GateConfig::builtin().unwrap()
}

/// Two run directories (baseline, current) in a fresh temporary directory.
fn pair_of_runs(base: &Files, cur: &Files) -> (tempfile::TempDir, RunData, RunData) {
    let tmp = tempfile::tempdir().unwrap();
    let b = write_run(&tmp.path().join("baseline"), base);
    let c = write_run(&tmp.path().join("current"), cur);
    (tmp, b, c)
}

/// Minimal XML well-formedness: one root, balanced and properly nested tags, quoted attributes
/// without `<`, and no `&` that does not start a known entity or character reference.
fn check_xml(xml: &str) -> Result<(), String> {
    fn entities_ok(s: &str) -> Result<(), String> {
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            rest = &rest[i + 1..];
            let end = rest.find(';').ok_or_else(|| format!("unterminated entity near {rest:.20}"))?;
            let name = &rest[..end];
            let ok = ["amp", "lt", "gt", "quot", "apos"].contains(&name)
                || name.strip_prefix('#').is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if !ok {
                return Err(format!("bad entity &{name};"));
            }
        }
        Ok(())
    }
    let mut rest = xml.strip_prefix("<?xml").ok_or("no XML declaration")?;
    rest = &rest[rest.find("?>").ok_or("unterminated declaration")? + 2..];
    let (mut stack, mut roots) = (Vec::<String>::new(), 0);
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        if text.contains("]]>") {
            return Err("]]> in text".into());
        }
        entities_ok(text)?;
        rest = &rest[i + 1..];
        // The tag ends at the first '>' outside quotes.
        let mut quote = None;
        let end = rest
            .char_indices()
            .find(|&(_, c)| match quote {
                Some(q) if c == q => {
                    quote = None;
                    false
                }
                Some(_) => false,
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    false
                }
                None => c == '>',
            })
            .map(|(i, _)| i)
            .ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name.trim()) {
                return Err(format!("mismatched </{name}>"));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("bad tag name in <{tag}>"));
        }
        // Attributes: name="value" (or '…'), values without '<'.
        let mut attrs = body[name.len()..].trim();
        while !attrs.is_empty() {
            let eq = attrs.find('=').ok_or_else(|| format!("attribute without value in <{tag}>"))?;
            let q = attrs[eq + 1..].chars().next().ok_or("missing quote")?;
            if q != '"' && q != '\'' {
                return Err(format!("unquoted attribute in <{tag}>"));
            }
            let value_end = attrs[eq + 2..].find(q).ok_or("unterminated attribute")? + eq + 2;
            let value = &attrs[eq + 2..value_end];
            if value.contains('<') {
                return Err(format!("'<' in attribute value {value:?}"));
            }
            entities_ok(value)?;
            attrs = attrs[value_end + 1..].trim_start();
        }
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name);
        }
    }
    if !rest.trim().is_empty() || !stack.is_empty() || roots != 1 {
        return Err(format!("unbalanced document: open {stack:?}, {roots} roots, trailing {rest:?}"));
    }
    Ok(())
}

/// A key of the differentials (docs/protocols.md §11), gated beside the whole run's metrics.
fn is_differential(key: &str) -> bool {
    ["fdr@", "garbe@", "fnmr@", "fmr@"].iter().any(|p| key.starts_with(p))
}

#[test]
fn identical_runs_pass_with_every_metric_unchanged() {
    let base = &demo().strict;
    let (_tmp, b, c) = pair_of_runs(base, base);
    let o = gate(&c, &b, &builtin()).unwrap();
    assert!(o.passed(), "{}", o.table());
    assert_eq!(o.exit_code(), 0);
    // accuracy, auc, eer and six strict TAR targets (1e-6…1e-4 unavailable with 3,000 impostors),
    // then the age-band differentials: FDR, GARBE and each band's FNMR and FMR per FMR target.
    assert_eq!(o.rows.iter().filter(|r| !is_differential(&r.metric)).count(), 9);
    assert_eq!(o.rows.iter().filter(|r| is_differential(&r.metric)).count(), 3 * (2 + 4 * 2));
    for m in ["fdr@far=1e-3@age_band", "garbe@far=1e-2@age_band", "fnmr@far=1e-3@age_band=adults"] {
        assert_eq!(row(&o, m).verdict, Verdict::Unchanged, "{m}");
    }
    let r = row(&o, "fmr@far=1e-3@age_band=children");
    assert_eq!(r.verdict, Verdict::Skipped);
    assert!(r.note.contains("no impostor pairs in the group"), "{}", r.note);
    for m in ["accuracy", "auc", "eer", "tar@far=1e-3", "tar@far=1e-2", "tar@far=1e-1"] {
        let r = row(&o, m);
        assert_eq!(r.verdict, Verdict::Unchanged, "{m}: {}", r.note);
        assert_eq!(r.diff, Some(0.0));
        assert_eq!(r.interval, Some((0.0, 0.0)));
        // results.json and pair_scores.npy of a real run agree (no "disagree" note).
        assert!(r.note.is_empty(), "{m}: {}", r.note);
    }
    for m in ["tar@far=1e-6", "tar@far=1e-5", "tar@far=1e-4"] {
        let r = row(&o, m);
        assert_eq!(r.verdict, Verdict::Skipped);
        assert!(r.note.contains("below 1/N_impostor"), "{}", r.note);
    }
    assert!(o.notes.is_empty(), "{:?}", o.notes);
    let md = o.markdown();
    assert!(md.starts_with("## ✅ aifr-eval gate passed"), "{md}");
    assert!(check_xml(&o.junit_xml()).is_ok());

    // results.json and pair_scores.npy of a facexzoo-mode run agree as well (no bootstrap needed
    // to check that: tolerance-only rules).
    let fx = &demo().facexzoo;
    let (_t, b, c) = pair_of_runs(fx, fx);
    let loose = GateConfig::parse("[defaults]\nrequire_significant = false\n", "test").unwrap();
    assert!(gate(&c, &b, &loose).unwrap().passed());
}

#[test]
fn noise_level_change_passes_and_significance_is_what_decides_at_zero_tolerance() {
    let base = &demo().strict;
    let noisy = nudged(base);
    let (_tmp, b, c) = pair_of_runs(base, &noisy);
    let acc_diff = noisy.results["metrics"]["accuracy"]["mean"].as_f64().unwrap()
        - base.results["metrics"]["accuracy"]["mean"].as_f64().unwrap();
    assert!((acc_diff + 2.0 / 6000.0).abs() < 1e-12, "the fixture should cost exactly two pairs, got {acc_diff}");

    let o = gate(&c, &b, &builtin()).unwrap();
    assert!(o.passed(), "{}", o.table());
    let acc = row(&o, "accuracy");
    assert_eq!(acc.verdict, Verdict::Unchanged);
    assert!(acc.note.contains("within tolerance"), "{}", acc.note);

    // Zero tolerance: worse, but two pairs are not a significant difference.
    let strict = GateConfig::parse("[defaults]\ntolerance = 0.0\nrequire_significant = true\n", "test").unwrap();
    let o = gate(&c, &b, &strict).unwrap();
    let acc = row(&o, "accuracy");
    assert_eq!(acc.verdict, Verdict::Unchanged, "{}", o.table());
    assert!(acc.note.contains("includes 0: not significant"), "{}", acc.note);
    let (lo, hi) = acc.interval.unwrap();
    assert!(lo < 0.0 && hi >= 0.0, "[{lo}, {hi}]");

    // Zero tolerance without the significance test: any worsening fails.
    let naive = GateConfig::parse("[defaults]\ntolerance = 0.0\nrequire_significant = false\n", "test").unwrap();
    let o = gate(&c, &b, &naive).unwrap();
    assert_eq!(row(&o, "accuracy").verdict, Verdict::Regressed, "{}", o.table());
    assert!(!o.passed());
}

#[test]
fn real_regression_fails_in_every_rendering() {
    let base = &demo().strict;
    let (_tmp, b, c) = pair_of_runs(base, &worse(base));
    let o = gate(&c, &b, &builtin()).unwrap();
    assert!(!o.passed(), "{}", o.table());
    assert_eq!(o.exit_code(), aifr_eval::error::exit::REGRESSION);
    for m in ["accuracy", "auc", "eer", "tar@far=1e-2"] {
        let r = row(&o, m);
        assert_eq!(r.verdict, Verdict::Regressed, "{m}: {}\n{}", r.note, o.table());
        let (lo, hi) = r.interval.unwrap();
        // The interval lies on the worse side: below 0, or above 0 for EER.
        assert!(if m == "eer" { lo > 0.0 } else { hi < 0.0 }, "{m} [{lo}, {hi}]");
        assert!(r.note.contains("excludes 0"), "{}", r.note);
    }
    let acc = row(&o, "accuracy");
    assert!(acc.diff.unwrap() < -0.01, "{:?}", acc.diff);

    let table = o.table();
    assert!(table.contains("FAILED") && table.contains("REGRESSED"), "{table}");
    let md = o.markdown();
    assert!(md.starts_with("## ❌ aifr-eval gate failed"), "{md}");
    let baseline_acc = format!("| accuracy | {:.6} |", acc.baseline.unwrap());
    assert!(md.contains(&baseline_acc) && md.contains("❌ regressed"), "{md}");
    let xml = o.junit_xml();
    check_xml(&xml).unwrap();
    assert!(xml.contains("<testsuite name=\"aifr-eval gate\""), "{xml}");
    let accuracy_case = xml.split("<testcase").find(|c| c.contains("name=\"accuracy\"")).unwrap();
    assert!(accuracy_case.contains("<failure message=\"regressed: worse by"), "{accuracy_case}");
    assert_eq!(xml.matches("<testcase ").count(), o.rows.len());
    assert_eq!(xml.matches("<failure ").count(), o.count(Verdict::Regressed));
    assert_eq!(xml.matches("<skipped ").count(), o.count(Verdict::Skipped));
    let skipped_whole_run =
        o.rows.iter().filter(|r| !is_differential(&r.metric) && r.verdict == Verdict::Skipped).count();
    assert_eq!(skipped_whole_run, 3);
}

#[test]
fn improvement_passes_as_improved() {
    let base = &demo().strict;
    // The regressed run as the baseline: the real run is an improvement over it.
    let (_tmp, b, c) = pair_of_runs(&worse(base), base);
    let o = gate(&c, &b, &builtin()).unwrap();
    assert!(o.passed(), "{}", o.table());
    for m in ["accuracy", "auc", "eer"] {
        assert_eq!(row(&o, m).verdict, Verdict::Improved, "{m}\n{}", o.table());
    }
    assert!(o.markdown().contains("⬆️ improved"));
}

#[test]
fn mismatched_runs_are_errors_not_passes() {
    let d = demo();
    let expect_err = |b: &Files, c: &Files, needle: &str| {
        let (_tmp, b, c) = pair_of_runs(b, c);
        let e = gate(&c, &b, &builtin()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(needle) && msg.contains("cannot gate"), "expected '{needle}' in: {msg}");
        assert_eq!(e.exit_code(), aifr_eval::error::exit::INVALID_INPUT, "{msg}");
        // Exact mode refuses the same inputs.
        assert!(gate(&c, &b, &GateConfig::exact()).is_err());
    };
    // A real run in another k-fold mode (`aifr-eval demo --mode facexzoo`).
    expect_err(&d.strict, &d.facexzoo, "differ in mode");
    let edited = |ptr: &str, v: Value| {
        let mut f = d.strict.clone();
        *f.results.pointer_mut(ptr).unwrap() = v;
        f
    };
    expect_err(&d.strict, &edited("/protocol/name", "other_protocol".into()), "differ in protocol");
    expect_err(&d.strict, &edited("/benchmark/name", "calfw".into()), "differ in benchmark");
    expect_err(&d.strict, &edited("/protocol/flip_fusion", "none".into()), "differ in flip fusion");

    // results.json stale next to new pair scores: the significance test would describe other
    // data than the reported numbers, so the gate refuses instead of passing on results.json.
    let stale = Files { results: d.strict.results.clone(), ..worse(&d.strict) };
    let (_tmp, b, c) = pair_of_runs(&d.strict, &stale);
    let e = gate(&c, &b, &builtin()).unwrap_err();
    assert!(e.to_string().contains("not from the same run") && e.to_string().contains("current"), "{e}");
    assert_eq!(e.exit_code(), aifr_eval::error::exit::INVALID_INPUT);

    // Same file hashes but other pairs (identities differ): the paired comparison refuses.
    let mut regrouped = d.strict.clone();
    regrouped.pairs.as_mut().unwrap().cluster.reverse();
    let (_tmp, b, c) = pair_of_runs(&d.strict, &regrouped);
    let msg = gate(&c, &b, &builtin()).unwrap_err().to_string();
    assert!(msg.contains("not evaluated on the same pairs"), "{msg}");
}

#[test]
fn another_benchmark_instance_is_refused() {
    // `aifr-eval demo --seed 8`: the same benchmark name and protocol, other pairs.
    let tmp = tempfile::tempdir().unwrap();
    let other = demo_run(tmp.path(), 8, &[None]).pop().unwrap();
    let (_t, b, c) = pair_of_runs(&demo().strict, &other);
    let msg = gate(&c, &b, &builtin()).unwrap_err().to_string();
    assert!(msg.contains("different benchmark files") && msg.contains("lfw/pairs.txt"), "{msg}");
    // Even without pair scores (tolerance-only gating) it is refused.
    let strip = |f: &Files| Files { pairs: None, ..f.clone() };
    let (_t, b, c) = pair_of_runs(&strip(&demo().strict), &strip(&other));
    assert!(gate(&c, &b, &builtin()).is_err());
}

#[test]
fn without_pair_scores_only_tolerances_apply() {
    let base = &demo().strict;
    let bad = worse(base);
    let (_tmp, b, c) = pair_of_runs(base, &Files { pairs: None, ..bad });
    let o = gate(&c, &b, &builtin()).unwrap();
    assert!(
        o.notes.iter().any(|n| n.contains("no pair_scores.npy in current") && n.contains("tolerances only")),
        "{:?}",
        o.notes
    );
    let acc = row(&o, "accuracy");
    assert_eq!(acc.verdict, Verdict::Regressed);
    assert_eq!(acc.interval, None);
    assert!(acc.note.contains("significance not tested"), "{}", acc.note);
    assert!(o.markdown().contains("**Notes**"));
}

#[test]
fn exact_mode_lists_every_path_that_differs() {
    let base = &demo().strict;
    let (_tmp, b, c) = pair_of_runs(base, base);
    let o = gate(&c, &b, &GateConfig::exact()).unwrap();
    assert!(o.passed(), "{}", o.table());
    assert_eq!(
        o.rows.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>(),
        ["results.json", "curves.json", "pair_scores.npy"]
    );
    assert!(o.differences.is_empty());

    // `software` (the build's version and commit) is the one thing ignored.
    let mut f = base.clone();
    f.results["software"]["version"] = "9.9.9".into();
    f.results["software"]["commit"] = "abc".into();
    let (_t, b, c) = pair_of_runs(base, &f);
    assert!(gate(&c, &b, &GateConfig::exact()).unwrap().passed());

    // One fold accuracy moved by one pair, and one pair score by one ulp.
    let mut f = base.clone();
    let old = f.results["metrics"]["accuracy"]["fold_accuracies"][3].as_f64().unwrap();
    f.results["metrics"]["accuracy"]["fold_accuracies"][3] = (old + 1.0 / 600.0).into();
    let p = f.pairs.as_mut().unwrap();
    p.score[17] = f64::from_bits(p.score[17].to_bits() + 1);
    let (_t, b, c) = pair_of_runs(base, &f);
    let o = gate(&c, &b, &GateConfig::exact()).unwrap();
    assert!(!o.passed());
    assert_eq!(o.exit_code(), aifr_eval::error::exit::REGRESSION);
    let paths: Vec<&str> = o.differences.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["metrics.accuracy.fold_accuracies[3]", "pair_scores[17].score"]);
    assert_eq!(row(&o, "results.json").verdict, Verdict::Changed);
    assert_eq!(row(&o, "curves.json").verdict, Verdict::Unchanged);
    let table = o.table();
    let line = format!("metrics.accuracy.fold_accuracies[3]: {old:?} → {:?}", old + 1.0 / 600.0);
    assert!(table.contains(&line), "{line} not in\n{table}");
    let md = o.markdown();
    assert!(
        md.starts_with("## ❌ aifr-eval gate (exact) failed") && md.contains("`metrics.accuracy.fold_accuracies[3]`"),
        "{md}"
    );
    let xml = o.junit_xml();
    check_xml(&xml).unwrap();
    assert_eq!(xml.matches("<failure ").count(), 2, "{xml}");

    // A run that stops writing a companion file has changed; a key that appears is listed too.
    let mut f = base.clone();
    f.curves = None;
    f.results["metrics"]["new_metric"] = serde_json::json!({"value": 1.5});
    let (_t, b, c) = pair_of_runs(base, &f);
    let o = gate(&c, &b, &builtin().with_exact(true)).unwrap();
    assert_eq!(row(&o, "curves.json").verdict, Verdict::Changed);
    let paths: Vec<&str> = o.differences.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["metrics.new_metric.value", "curves.json"]);
    assert_eq!(o.differences[0].baseline, "(absent)");
}

#[test]
fn junit_escapes_every_string_and_stays_well_formed() {
    let nasty = "a <b> & \"c\" 'd' | \u{1} e\nf";
    let o = GateOutcome {
        current: "runs/<new>&".into(),
        baseline: "base\"line".into(),
        exact: false,
        confidence: 0.95,
        rows: vec![
            GateRow {
                metric: "acc<&\">".into(),
                baseline: Some(0.9),
                current: Some(0.8),
                diff: Some(-0.1),
                interval: Some((-0.12, -0.08)),
                tolerance: Some(0.002),
                higher_is_better: true,
                verdict: Verdict::Regressed,
                note: format!("note {nasty}"),
            },
            GateRow {
                metric: "tar@far=1e-6".into(),
                baseline: None,
                current: None,
                diff: None,
                interval: None,
                tolerance: Some(0.005),
                higher_is_better: true,
                verdict: Verdict::Skipped,
                note: "<&\">".into(),
            },
        ],
        differences: vec![],
        notes: vec![nasty.into()],
    };
    let xml = o.junit_xml();
    check_xml(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert!(xml.contains("name=\"acc&lt;&amp;&quot;&gt;\""), "{xml}");
    assert!(xml.contains("<skipped message=\"&lt;&amp;&quot;&gt;\"/>"), "{xml}");
    assert!(xml.contains("value=\"runs/&lt;new&gt;&amp;\""), "{xml}");
    assert!(!xml.contains('\u{1}'), "control characters cannot appear in XML 1.0");
    assert!(xml.contains("e&#10;f"), "newlines in attributes survive as references: {xml}");
    // The checker itself rejects what it should.
    assert!(check_xml("<?xml version=\"1.0\"?><a><b></a></b>").is_err());
    assert!(check_xml("<?xml version=\"1.0\"?><a x=\"<\"/>").is_err());
    assert!(check_xml("<?xml version=\"1.0\"?><a>&</a>").is_err());
    // Markdown keeps the table intact: no raw '|' or '<' from strings.
    let md = o.markdown();
    let line = md.lines().find(|l| l.starts_with("| acc")).unwrap();
    let pipes = line.char_indices().filter(|&(i, c)| c == '|' && !line[..i].ends_with('\\')).count();
    assert_eq!(pipes, 9, "{line}");
    assert!(!line.contains('<'), "{line}");
}

#[test]
fn configuration_lookup_and_validation() {
    let cfg = builtin();
    assert!(!cfg.exact);
    assert_eq!(cfg.rule("accuracy").tolerance, 0.002);
    assert_eq!(cfg.rule("auc").tolerance, 0.0005);
    assert_eq!(cfg.rule("eer").tolerance, 0.002);
    assert_eq!(cfg.rule("tar@far=1e-3").tolerance, 0.005);
    assert!(cfg.rule("tar@far=1e-3").require_significant);

    let text = "exact = true\n[defaults]\ntolerance = 0.01\n[metrics.\"tar@far=0.0001\"]\ntolerance = 0.02\nrequire_significant = false\n[metrics.eer]\nenabled = false\n";
    let cfg = GateConfig::parse(text, "mine.toml").unwrap();
    assert!(cfg.exact);
    let r = cfg.rule("tar@far=1e-4");
    assert_eq!((r.tolerance, r.require_significant), (0.02, false));
    assert_eq!(cfg.rule("tar@far=1e-3").tolerance, 0.01);
    assert_eq!(cfg.rule("accuracy").tolerance, 0.01);
    assert!(!cfg.rule("eer").enabled);

    for (bad, needle) in [
        ("[metrics.acuracy]\ntolerance = 0.1\n", "unknown metric"),
        ("[metrics.\"tar@far=2\"]\ntolerance = 0.1\n", "unknown metric"),
        ("[defaults]\ntolerance = -0.1\n", "tolerance must be"),
        ("[metrics.auc]\ntolerence = 0.1\n", "unknown field"),
        ("exact = \"yes\"\n", "mine.toml"),
    ] {
        let e = GateConfig::parse(bad, "mine.toml").unwrap_err();
        assert!(e.to_string().contains(needle) && e.to_string().contains("mine.toml"), "{bad}: {e}");
        assert_eq!(e.exit_code(), aifr_eval::error::exit::USAGE);
    }
    let e = GateConfig::from_file(Path::new("/nonexistent/gate.toml")).unwrap_err();
    assert_eq!(e.exit_code(), aifr_eval::error::exit::MISSING_INPUT);

    // A disabled metric is reported as skipped (runs without pair scores: no bootstrap needed).
    let base = &demo().strict;
    let strip = |f: &Files| Files { pairs: None, ..f.clone() };
    let (_tmp, b, c) = pair_of_runs(&strip(base), &strip(&worse(base)));
    let o = gate(&c, &b, &cfg.with_exact(false)).unwrap();
    let eer = row(&o, "eer");
    assert_eq!(eer.verdict, Verdict::Skipped);
    assert!(eer.note.contains("disabled in mine.toml"), "{}", eer.note);
}

#[test]
fn update_baseline_copies_the_run_and_drops_stale_companions() {
    let base = &demo().strict;
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    write_run(&run, base);
    std::fs::write(run.join("timings.json"), "{}").unwrap();
    let baseline = tmp.path().join("ci/baseline");
    update_baseline(&run, &baseline).unwrap();
    for f in ["results.json", "curves.json", "pair_scores.npy"] {
        assert_eq!(std::fs::read(run.join(f)).unwrap(), std::fs::read(baseline.join(f)).unwrap(), "{f}");
    }
    assert!(!baseline.join("timings.json").exists(), "timings are not deterministic and not part of a baseline");
    let names: Vec<String> =
        std::fs::read_dir(&baseline).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 3, "no temporary files left: {names:?}");
    // The copied baseline gates the run as identical (exact).
    let o = gate(&RunData::load(&run).unwrap(), &RunData::load(&baseline).unwrap(), &GateConfig::exact()).unwrap();
    assert!(o.passed(), "{}", o.table());

    // A run without curves: the baseline's old curves.json must not survive next to new results.
    let run2 = tmp.path().join("run2");
    write_run(&run2, &Files { curves: None, ..base.clone() });
    update_baseline(&run2, &baseline).unwrap();
    assert!(!baseline.join("curves.json").exists());
    assert!(baseline.join("pair_scores.npy").exists());

    // A broken run never becomes the baseline, and the baseline is left as it was.
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("results.json"), "{ not json").unwrap();
    let before = std::fs::read(baseline.join("results.json")).unwrap();
    let e = update_baseline(&broken, &baseline).unwrap_err();
    assert_eq!(e.exit_code(), aifr_eval::error::exit::INVALID_INPUT);
    assert_eq!(std::fs::read(baseline.join("results.json")).unwrap(), before);
    let e = update_baseline(&tmp.path().join("missing"), &baseline).unwrap_err();
    assert_eq!(e.exit_code(), aifr_eval::error::exit::MISSING_INPUT);
}

//! `aifr-eval gate`: is a run worse than its baseline? A regression gate for CI.
//!
//! Two modes:
//! * statistical (default): accuracy, AUC, EER and strict TAR@FAR each regress when they get worse
//!   by more than a tolerance AND (when configured and both runs have pair scores) the paired
//!   cluster-bootstrap interval of the difference excludes zero on the worse side; rules in
//!   `gate.toml` (embedded, overridable);
//! * exact: every value of results.json (except `software`), curves.json and pair_scores.npy must
//!   be bit-identical, so any code change that moves any number fails the project's own CI.
//!
//! Unusable input (different benchmark, protocol, mode, pairs; unreadable files) is an `Err`,
//! never a pass. Outputs are deterministic: no timestamps anywhere.

mod exact;
mod metrics;
mod render;

use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::metrics::bootstrap::resample_stats;
use crate::metrics::{SortedPairs, TarRule};
use crate::report::compare::{check_comparable, paired_differences, paired_rank1_differences, MetricDiff};
use crate::run::dir::{RunData, SEARCH_OUTCOMES_FILE};
use crate::run::results::Results;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in configuration (`gate.toml` at the repository root).
pub const DEFAULT_GATE_TOML: &str = include_str!("../../gate.toml");

/// Fallbacks for keys no table sets (documented in gate.toml).
const FALLBACK_TOLERANCE: f64 = 0.0;
const FALLBACK_REQUIRE_SIGNIFICANT: bool = true;

/// Changes this close to the tolerance count as equal to it: `0.9785 − 0.9765` is
/// `0.0020000000000000018` in binary, and "worse by exactly the tolerance" must pass.
const TOLERANCE_SLACK: f64 = 1e-12;

/// results.json vs numbers recomputed from pair_scores.npy: equal up to summation order.
const CONSISTENCY_SLACK: f64 = 1e-9;

/// One table of gate.toml (`[defaults]`, `[metrics.<name>]`); unset keys fall through.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTable {
    pub tolerance: Option<f64>,
    pub require_significant: Option<bool>,
    pub enabled: Option<bool>,
}

/// The rule that applies to one metric, after lookup.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricRule {
    pub tolerance: f64,
    pub require_significant: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    exact: bool,
    #[serde(default)]
    defaults: RuleTable,
    #[serde(default)]
    metrics: BTreeMap<String, RuleTable>,
}

/// Gate configuration: mode and per-metric rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GateConfig {
    /// Exact mode (`--exact`): bit-identical outputs required; the rules below are not used.
    pub exact: bool,
    pub defaults: RuleTable,
    /// Keyed `accuracy`, `auc`, `eer`, `tar@far` or `tar@far=<FAR>`.
    pub metrics: BTreeMap<String, RuleTable>,
    /// Where the configuration came from, for messages.
    pub source: String,
}

impl GateConfig {
    /// The embedded gate.toml.
    pub fn builtin() -> Result<Self> {
        Self::parse(DEFAULT_GATE_TOML, "<built-in gate.toml>")
    }

    /// A configuration file, replacing the built-in one as a whole.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Exact mode (for the project's own CI): no rules needed.
    pub fn exact() -> Self {
        GateConfig { exact: true, source: "--exact".into(), ..Default::default() }
    }

    /// The same configuration with exact mode switched on or off (for `--exact`).
    pub fn with_exact(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }

    /// Parses gate.toml text; `source` names it in error messages.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| Error::Config(format!("{source}: {e}")))?;
        let check = |name: &str, t: &RuleTable| -> Result<()> {
            match t.tolerance {
                Some(x) if !(x.is_finite() && x >= 0.0) => {
                    Err(Error::Config(format!("{source}: [{name}] tolerance must be a finite number >= 0, found {x}")))
                }
                _ => Ok(()),
            }
        };
        check("defaults", &raw.defaults)?;
        for (key, table) in &raw.metrics {
            if metrics::Key::parse(key).is_none() {
                return Err(Error::Config(format!(
                    "{source}: unknown metric [metrics.\"{key}\"]; expected [RULE:]FAMILY[=TARGET][@SCOPE] with FAMILY one of {}, TARGET a number in (0, 1] (tar@far, tpir@fpir), e.g. \"tar@far=1e-4\", \"rank1@1m\" (docs/gate.md)",
                    metrics::FAMILIES.join(", ")
                )));
            }
            check(&format!("metrics.\"{key}\""), table)?;
        }
        Ok(GateConfig { exact: raw.exact, defaults: raw.defaults, metrics: raw.metrics, source: source.into() })
    }

    /// The rule for a metric key (`accuracy`, `tar@far=1e-4`, `ijb_evals:tpir@fpir=1e-2@G1`, …),
    /// first match winning: the key's own table; without its rule prefix; the same family and
    /// target without scope (targets compared as numbers, so "tar@far=0.0001" configures 1e-4);
    /// the family's table; `[defaults]`; the fallbacks.
    pub fn rule(&self, metric: &str) -> MetricRule {
        let mut chain: Vec<&RuleTable> = Vec::new();
        chain.extend(self.metrics.get(metric));
        if let Some(k) = metrics::Key::parse(metric) {
            if k.rule.is_some() {
                let bare = metric.split_once(':').map_or(metric, |(_, rest)| rest);
                chain.extend(self.metrics.get(bare));
            }
            if let Some(target) = k.target {
                chain.extend(
                    self.metrics
                        .iter()
                        .filter(|(key, _)| {
                            metrics::Key::parse(key).is_some_and(|c| {
                                c.rule.is_none()
                                    && c.family == k.family
                                    && c.target == Some(target)
                                    && c.scope.is_none()
                            })
                        })
                        .map(|(_, t)| t),
                );
            }
            chain.extend(self.metrics.get(k.family));
        }
        chain.push(&self.defaults);
        MetricRule {
            tolerance: chain.iter().find_map(|t| t.tolerance).unwrap_or(FALLBACK_TOLERANCE),
            require_significant: chain
                .iter()
                .find_map(|t| t.require_significant)
                .unwrap_or(FALLBACK_REQUIRE_SIGNIFICANT),
            enabled: chain.iter().find_map(|t| t.enabled).unwrap_or(true),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improved,
    Unchanged,
    Regressed,
    /// Not compared (unavailable in a run, or disabled); never fails.
    Skipped,
    /// Exact mode: some value differs at all; fails.
    Changed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::Regressed => "regressed",
            Verdict::Skipped => "skipped",
            Verdict::Changed => "changed",
        }
    }

    pub fn fails(self) -> bool {
        matches!(self, Verdict::Regressed | Verdict::Changed)
    }
}

/// One gated metric (or, in exact mode, one compared file).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateRow {
    /// `accuracy`, `auc`, `eer`, `tar@far=1e-3`; exact mode: `results.json`, `curves.json`, `pair_scores.npy`.
    pub metric: String,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// current − baseline.
    pub diff: Option<f64>,
    /// Paired bootstrap interval of `diff` (both runs have pair scores).
    pub interval: Option<(f64, f64)>,
    pub tolerance: Option<f64>,
    pub higher_is_better: bool,
    pub verdict: Verdict,
    /// Why: the change against tolerance and interval, or why the metric was skipped.
    pub note: String,
}

/// Exact mode: one value that differs, rendered as JSON (`(absent)` where a side lacks it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathDiff {
    /// Which file row (`GateRow::metric`) it belongs to.
    pub file: String,
    /// e.g. `metrics.accuracy.fold_accuracies[3]`, `pair_scores[17].score`.
    pub path: String,
    pub baseline: String,
    pub current: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateOutcome {
    pub current: String,
    pub baseline: String,
    pub exact: bool,
    /// Confidence level of the intervals (the baseline's bootstrap setting).
    pub confidence: f64,
    pub rows: Vec<GateRow>,
    /// Exact mode: every value that differs, in file order.
    pub differences: Vec<PathDiff>,
    /// Run-level remarks (e.g. significance not tested because pair scores are missing).
    pub notes: Vec<String>,
}

impl GateOutcome {
    /// No metric regressed (and, in exact mode, nothing changed).
    pub fn passed(&self) -> bool {
        !self.rows.iter().any(|r| r.verdict.fails())
    }

    /// Process exit code: `exit::OK`, or `exit::REGRESSION` when the gate fails.
    pub fn exit_code(&self) -> i32 {
        if self.passed() {
            crate::error::exit::OK
        } else {
            crate::error::exit::REGRESSION
        }
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == verdict).count()
    }

    /// Compact text for the terminal.
    pub fn table(&self) -> String {
        render::table(self)
    }

    /// GitHub-flavoured Markdown for a CI job summary or PR comment.
    pub fn markdown(&self) -> String {
        render::markdown(self)
    }

    /// JUnit XML: one `<testsuite name="aifr-eval gate">`, one `<testcase>` per row.
    pub fn junit_xml(&self) -> String {
        render::junit_xml(self)
    }
}

/// Refuses runs on different benchmark files: `check_comparable` only looks at names, and two
/// instances of one benchmark (e.g. demos with different seeds) share a name.
fn check_same_benchmark_files(baseline: &RunData, current: &RunData) -> Result<()> {
    let prints = |run: &RunData| -> Vec<(String, String)> {
        run.results.benchmark().files.iter().map(|f| (f.path.clone(), f.blake3.clone())).collect()
    };
    let (b, c) = (prints(baseline), prints(current));
    if b != c {
        let show = |v: &[(String, String)]| {
            v.iter().map(|(p, h)| format!("{p} blake3 {}", h.get(..12).unwrap_or(h))).collect::<Vec<_>>().join(", ")
        };
        return Err(Error::Invalid(format!(
            "cannot gate: {} and {} were evaluated on different benchmark files ({} vs {}): not the same benchmark",
            baseline.dir.display(),
            current.dir.display(),
            show(&b),
            show(&c)
        )));
    }
    Ok(())
}

use metrics::Reading;

/// Which metrics to gate, with each run's reading, in the baseline's order: every number the
/// baseline's kind gates (gate/metrics.rs), looked up in the current run by its key.
fn readings(baseline: &Results, current: &Results, current_name: &str) -> Vec<(String, bool, Reading, Reading)> {
    let cur = metrics::gated(current);
    metrics::gated(baseline)
        .into_iter()
        .map(|b| {
            let c = cur
                .iter()
                .find(|c| c.key == b.key)
                .map_or_else(|| Err(format!("{current_name} has no {}", b.key)), |c| c.value.clone());
            (b.key, b.higher_is_better, b.value, c)
        })
        .collect()
}

/// Pair-score statistics of both runs, or why there are none.
enum Paired {
    /// Intervals for the metrics the paired bootstrap covers; `uncovered` says why the others
    /// have none.
    Diffs {
        diffs: Vec<MetricDiff>,
        uncovered: String,
    },
    Unavailable(String),
}

fn fmt_iv(lo: f64, hi: f64) -> String {
    format!("[{lo:+.6}, {hi:+.6}]")
}

/// The verdict for one metric with both readings present.
fn judge(
    name: &str,
    higher: bool,
    (b, c): (f64, f64),
    rule: MetricRule,
    md: Option<&MetricDiff>,
    paired: &Paired,
    confidence: f64,
) -> GateRow {
    let diff = c - b;
    // Positive = worse, in the metric's units.
    let worse = if higher { -diff } else { diff };
    let interval = md.map(|m| (m.lo, m.hi)).filter(|(lo, hi)| lo.is_finite() && hi.is_finite());
    let pct = format!("{:.0}%", confidence * 100.0);
    let mut notes = Vec::new();
    let beyond = worse.abs() > rule.tolerance + TOLERANCE_SLACK;
    let verdict = if !beyond {
        if diff != 0.0 {
            notes.push(format!("within tolerance ({:+.6})", diff));
        }
        Verdict::Unchanged
    } else {
        let (word, candidate) = if worse > 0.0 { ("worse", Verdict::Regressed) } else { ("better", Verdict::Improved) };
        let head = format!("{word} by {:.6} (> tolerance {:.6})", worse.abs(), rule.tolerance);
        if !rule.require_significant {
            notes.push(format!("{head}; significance not required"));
            candidate
        } else if let Some((lo, hi)) = interval {
            // Interval entirely on the side of the change (strictly: touching 0 is not enough).
            let toward_change = if diff > 0.0 { lo > 0.0 } else { hi < 0.0 };
            if toward_change {
                notes.push(format!("{head}; {pct} interval of Δ {} excludes 0", fmt_iv(lo, hi)));
                candidate
            } else {
                notes
                    .push(format!("{head} but the {pct} interval of Δ {} includes 0: not significant", fmt_iv(lo, hi)));
                Verdict::Unchanged
            }
        } else {
            let why = match paired {
                Paired::Unavailable(why) => why.clone(),
                Paired::Diffs { uncovered, .. } => uncovered.clone(),
            };
            notes.push(format!("{head}; significance not tested ({why})"));
            candidate
        }
    };
    GateRow {
        metric: name.to_string(),
        baseline: Some(b),
        current: Some(c),
        diff: Some(diff),
        interval,
        tolerance: Some(rule.tolerance),
        higher_is_better: higher,
        verdict,
        note: notes.join("; "),
    }
}

/// Refuses a run whose results.json and pair_scores.npy disagree (one of them stale or edited):
/// the displayed numbers would come from one file and the significance test from the other, so a
/// regression visible in the pair scores could pass. Recomputes each gated number from the pairs.
/// Only pair and manifest runs are checked: the other kinds are gated on tolerances alone and
/// their pair scores, if a directory had any, are never read.
fn check_consistent(run: &RunData) -> Result<()> {
    let Some(p) = &run.pairs else { return Ok(()) };
    let Some(v) = run.results.verification() else { return Ok(()) };
    let path = &run.results_path;
    let folds = v.protocol.folds;
    let far_targets = &v.protocol.far_targets;
    let fold_idx: Vec<usize> = p.fold.iter().map(|&f| f as usize).collect();
    let sorted = SortedPairs::new(&p.score, &p.genuine, &fold_idx, folds)
        .map_err(|e| Error::data(&run.dir.join("pair_scores.npy"), format!("does not fit results.json: {e}")))?;
    let full = resample_stats(&sorted, &p.correct, far_targets, None);
    // results.json's accuracy is the mean of the fold accuracies (folds may differ in size).
    let (mut hits, mut sizes) = (vec![0usize; folds], vec![0usize; folds]);
    for (&f, &c) in fold_idx.iter().zip(&p.correct) {
        sizes[f] += 1;
        hits[f] += c as usize;
    }
    let used: Vec<f64> = (0..folds).filter(|&f| sizes[f] > 0).map(|f| hits[f] as f64 / sizes[f] as f64).collect();
    let accuracy = used.iter().sum::<f64>() / used.len().max(1) as f64;
    let m = &v.metrics;
    let mut expected = vec![
        ("metrics.accuracy.mean".to_string(), Some(m.accuracy.spread.mean), accuracy),
        ("metrics.roc.auc".to_string(), Some(m.roc.auc), full.auc),
        ("metrics.roc.eer.eer".to_string(), m.roc.eer.as_ref().map(|e| e.eer), full.eer),
    ];
    for e in m.tar_at_far.iter().filter(|e| e.rule == TarRule::Strict) {
        if let Some(i) = far_targets.iter().position(|&f| f == e.far_target) {
            let written = e.tar.filter(|_| e.available);
            expected.push((format!("strict TAR at FAR {:e}", e.far_target), written, full.tar[i]));
        }
    }
    for (what, written, from_pairs) in expected {
        // Compare only what both files define (NaN from the pairs = undefined there).
        if let (Some(w), true) = (written, from_pairs.is_finite()) {
            if (w - from_pairs).abs() > CONSISTENCY_SLACK {
                return Err(Error::data(
                    path,
                    format!(
                        "{what} is {w} but pair_scores.npy beside it gives {from_pairs}: the two files are not from the same run (re-run the evaluation)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Gates `current` against `baseline`. `Err` when the runs are not comparable or unreadable.
pub fn gate(current: &RunData, baseline: &RunData, cfg: &GateConfig) -> Result<GateOutcome> {
    check_comparable(baseline, current).map_err(|e| match e {
        Error::Invalid(m) => Error::Invalid(format!("cannot gate: {m}")),
        other => other,
    })?;
    check_same_benchmark_files(baseline, current)?;
    if !cfg.exact {
        // Exact mode compares both files as they are; the statistical gate needs them to agree.
        check_consistent(baseline)?;
        check_consistent(current)?;
    }
    let confidence = baseline.results.bootstrap_spec().map_or(0.95, |s| s.confidence);
    let mut outcome = GateOutcome {
        current: current.dir.display().to_string(),
        baseline: baseline.dir.display().to_string(),
        exact: cfg.exact,
        confidence,
        rows: Vec::new(),
        differences: Vec::new(),
        notes: Vec::new(),
    };
    if cfg.exact {
        exact::compare(current, baseline, &mut outcome)?;
        return Ok(outcome);
    }
    let (base_model, cur_model) = (&baseline.results, &current.results);
    let rows = readings(base_model, cur_model, &current.name());
    let wants_significance = rows.iter().any(|(name, ..)| {
        let r = cfg.rule(name);
        r.enabled && r.require_significant
    });
    let paired = match (base_model, &baseline.pairs, &current.pairs) {
        // Identification runs keep per-search outcomes for their rank-1 numbers.
        (Results::Fgnet(_) | Results::Ijb(_) | Results::Megaface(_), _, _) => {
            let uncovered = "only rank-1 keeps per-search outcomes; TAR and TPIR are gated on tolerance".to_string();
            match (&baseline.outcomes, &current.outcomes) {
                (Some(_), Some(_)) if wants_significance => {
                    Paired::Diffs { diffs: paired_rank1_differences(baseline, current)?, uncovered }
                }
                (Some(_), Some(_)) => Paired::Unavailable("no rule requires significance".into()),
                (b, c) => {
                    let missing: Vec<String> = [(b.is_none(), baseline), (c.is_none(), current)]
                        .iter()
                        .filter(|(m, _)| *m)
                        .map(|(_, r)| r.name())
                        .collect();
                    let why = format!("no {SEARCH_OUTCOMES_FILE} in {}", missing.join(" and "));
                    outcome.notes.push(format!("{why}: tolerances only, no paired significance test"));
                    Paired::Unavailable(why)
                }
            }
        }
        // Only pay for the bootstrap when a rule uses it.
        (Results::Pairs(_) | Results::Manifest(_), Some(_), Some(_)) if wants_significance => Paired::Diffs {
            diffs: paired_differences(baseline, current)?,
            uncovered: "the bootstrap interval is undefined for this metric".into(),
        },
        (Results::Pairs(_) | Results::Manifest(_), Some(_), Some(_)) => {
            Paired::Unavailable("no rule requires significance".into())
        }
        (Results::Pairs(_) | Results::Manifest(_), b, c) => {
            let missing: Vec<String> = [(b.is_none(), baseline), (c.is_none(), current)]
                .iter()
                .filter(|(m, _)| *m)
                .map(|(_, r)| r.name())
                .collect();
            let why = format!("no pair_scores.npy in {}", missing.join(" and "));
            outcome.notes.push(format!("{why}: tolerances only, no paired significance test"));
            Paired::Unavailable(why)
        }
    };
    for (name, higher, b, c) in rows {
        let rule = cfg.rule(&name);
        let skipped = |note: String| GateRow {
            metric: name.clone(),
            baseline: b.as_ref().ok().copied(),
            current: c.as_ref().ok().copied(),
            diff: None,
            interval: None,
            tolerance: Some(rule.tolerance),
            higher_is_better: higher,
            verdict: Verdict::Skipped,
            note,
        };
        let row = match (&b, &c) {
            _ if !rule.enabled => skipped(format!("disabled in {}", cfg.source)),
            (Err(why), _) => skipped(format!("baseline: {why}")),
            (_, Err(why)) => skipped(format!("current: {why}")),
            (Ok(bv), Ok(cv)) => {
                let md = match &paired {
                    Paired::Diffs { diffs, .. } => diffs.iter().find(|m| m.metric == name),
                    Paired::Unavailable(_) => None,
                };
                judge(&name, higher, (*bv, *cv), rule, md, &paired, confidence)
            }
        };
        outcome.rows.push(row);
    }
    Ok(outcome)
}

/// Files of a run directory that make up a baseline (timings.json is not deterministic).
const BASELINE_FILES: [&str; 5] =
    ["cmc_curves.json", "curves.json", "pair_scores.npy", SEARCH_OUTCOMES_FILE, "results.json"];

/// Makes `current_dir`'s run the baseline: copies results.json, curves.json and pair_scores.npy
/// (each atomically; results.json last, since its presence marks a complete run directory) and
/// removes baseline companions the current run lacks, so no stale file pairs with new results.
pub fn update_baseline(current_dir: &Path, baseline_dir: &Path) -> Result<()> {
    // Loading validates the run, so a broken directory never becomes the baseline.
    let run = RunData::load(current_dir)?;
    if baseline_dir.is_file() {
        return Err(Error::Config(format!(
            "baseline {} is a file; give the baseline directory",
            baseline_dir.display()
        )));
    }
    for name in BASELINE_FILES {
        let (src, dst) = (run.dir.join(name), baseline_dir.join(name));
        if src.exists() {
            let bytes = std::fs::read(&src).map_err(|e| Error::read(&src, e))?;
            write_atomic(&dst, &bytes)?;
        } else if dst.exists() {
            std::fs::remove_file(&dst).map_err(|e| Error::write(&dst, e))?;
        }
    }
    Ok(())
}

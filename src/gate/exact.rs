//! Exact mode: every value of results.json (except `software`, which names the build), curves.json
//! and pair_scores.npy must be bit-identical to the baseline. Lists every path that differs.

use super::{GateOutcome, GateRow, PathDiff, Verdict};
use crate::error::{Error, Result};
use crate::protocol::curves::CmcCurves;
use crate::run::dir::{PairScores, RunData};
use serde_json::Value;

const ABSENT: &str = "(absent)";

/// `parent.key`, or `parent["odd key"]` when the key is not a plain identifier.
fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        _ => format!("{parent}[{}]", Value::String(key.to_string())),
    }
}

/// Compact JSON of a value, shortened when it is a large container.
fn show(v: Option<&Value>) -> String {
    let Some(v) = v else { return ABSENT.into() };
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(119).collect::<String>())
    } else {
        s
    }
}

/// Equal leaves; floats compared by bits (so 0.0 and -0.0, which JSON prints differently, differ).
fn same_leaf(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
        }
        _ => a == b,
    }
}

/// Appends every differing leaf under `path`; a side that lacks a container counts as absent at
/// each of the other side's leaves.
fn diff_json(file: &str, path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<PathDiff>) {
    let push = |out: &mut Vec<PathDiff>| {
        out.push(PathDiff { file: file.into(), path: path.into(), baseline: show(a), current: show(b) })
    };
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff_json(file, &child(path, k), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                diff_json(file, &format!("{path}[{i}]"), x.get(i), y.get(i), out);
            }
        }
        (Some(Value::Object(x)), None) | (None, Some(Value::Object(x))) if !x.is_empty() => {
            let (mut keys, absent_left) = (x.keys().collect::<Vec<_>>(), a.is_none());
            keys.sort();
            for k in keys {
                let v = x.get(k);
                let (l, r) = if absent_left { (None, v) } else { (v, None) };
                diff_json(file, &child(path, k), l, r, out);
            }
        }
        (Some(Value::Array(x)), None) | (None, Some(Value::Array(x))) if !x.is_empty() => {
            let absent_left = a.is_none();
            for (i, v) in x.iter().enumerate() {
                let (l, r) = if absent_left { (None, Some(v)) } else { (Some(v), None) };
                diff_json(file, &format!("{path}[{i}]"), l, r, out);
            }
        }
        (Some(x), Some(y)) if same_leaf(x, y) => {}
        _ => push(out),
    }
}

fn diff_pairs(file: &str, a: &PairScores, b: &PairScores, out: &mut Vec<PathDiff>) {
    if a.score.len() != b.score.len() {
        out.push(PathDiff {
            file: file.into(),
            path: "pair_scores.rows".into(),
            baseline: a.score.len().to_string(),
            current: b.score.len().to_string(),
        });
    }
    for i in 0..a.score.len().min(b.score.len()) {
        let mut col = |name: &str, x: String, y: String, same: bool| {
            if !same {
                out.push(PathDiff {
                    file: file.into(),
                    path: format!("pair_scores[{i}].{name}"),
                    baseline: x,
                    current: y,
                });
            }
        };
        let (s, t) = (a.score[i], b.score[i]);
        col("score", format!("{s:?}"), format!("{t:?}"), s.to_bits() == t.to_bits());
        let (g, h) = (a.genuine[i], b.genuine[i]);
        col("genuine", g.to_string(), h.to_string(), g == h);
        let (f, e) = (a.fold[i], b.fold[i]);
        col("fold", f.to_string(), e.to_string(), f == e);
        let (c, d) = (a.cluster[i], b.cluster[i]);
        col("cluster", c.to_string(), d.to_string(), c == d);
        let (k, l) = (a.correct[i], b.correct[i]);
        col("correct", k.to_string(), l.to_string(), k == l);
    }
}

/// The row of one compared file: no numbers, just a verdict and why.
fn bare_row(file: &str, verdict: Verdict, note: String) -> GateRow {
    GateRow {
        metric: file.into(),
        baseline: None,
        current: None,
        diff: None,
        interval: None,
        tolerance: None,
        higher_is_better: true,
        verdict,
        note,
    }
}

fn file_row(file: &str, diffs: &[PathDiff], clean_note: &str) -> GateRow {
    let n = diffs.len();
    let note = match n {
        0 => clean_note.into(),
        1 => "1 value differs".into(),
        _ => format!("{n} values differ"),
    };
    bare_row(file, if n == 0 { Verdict::Unchanged } else { Verdict::Changed }, note)
}

/// A companion file present in at most one run: compared only when the baseline has it (the
/// committed baseline decides what is checked), and a run that stops writing it has changed.
fn one_sided_row(file: &str, base_has: bool, cur_has: bool, diffs: &mut Vec<PathDiff>) -> GateRow {
    let (verdict, note) = match (base_has, cur_has) {
        (true, _) => {
            diffs.push(PathDiff {
                file: file.into(),
                path: file.into(),
                baseline: "present".into(),
                current: ABSENT.into(),
            });
            (Verdict::Changed, "in the baseline but not in the current run".to_string())
        }
        (false, true) => (Verdict::Skipped, "not in the baseline: not compared".to_string()),
        (false, false) => (Verdict::Skipped, "in neither run".to_string()),
    };
    bare_row(file, verdict, note)
}

fn to_value(run: &RunData, c: &crate::run::dir::Curves) -> Result<Value> {
    serde_json::to_value(c).map_err(|e| Error::data(&run.dir.join("curves.json"), format!("cannot re-encode: {e}")))
}

pub(super) fn compare(current: &RunData, baseline: &RunData, out: &mut GateOutcome) -> Result<()> {
    let without_software = |v: &Value| {
        let mut v = v.clone();
        if let Value::Object(m) = &mut v {
            m.remove("software");
        }
        v
    };
    // The files as written, not the typed model: a key the model does not know is a difference too.
    let raw = |run: &RunData| -> Result<Value> { crate::io::read_json(&run.results_path) };
    let (base_raw, cur_raw) = (raw(baseline)?, raw(current)?);
    let mut diffs = Vec::new();
    let file = "results.json";
    diff_json(file, "", Some(&without_software(&base_raw)), Some(&without_software(&cur_raw)), &mut diffs);
    out.rows.push(file_row(file, &diffs, "identical (software ignored)"));
    out.differences.append(&mut diffs);

    let file = "curves.json";
    match (&baseline.curves, &current.curves) {
        (Some(b), Some(c)) => {
            let (b, c) = (to_value(baseline, b)?, to_value(current, c)?);
            diff_json(file, "curves", Some(&b), Some(&c), &mut diffs);
            out.rows.push(file_row(file, &diffs, "identical"));
            out.differences.append(&mut diffs);
        }
        (b, c) => {
            out.rows.push(one_sided_row(file, b.is_some(), c.is_some(), &mut diffs));
            out.differences.append(&mut diffs);
        }
    }

    // MegaFace runs keep their CMC curves in their own file.
    let file = crate::protocol::curves::CMC_CURVES_FILE;
    match (CmcCurves::load(&baseline.dir)?, CmcCurves::load(&current.dir)?) {
        (Some(b), Some(c)) => {
            let enc = |run: &RunData, v: &CmcCurves| {
                serde_json::to_value(v).map_err(|e| Error::data(&run.dir.join(file), format!("cannot re-encode: {e}")))
            };
            diff_json(file, "curves", Some(&enc(baseline, &b)?), Some(&enc(current, &c)?), &mut diffs);
            out.rows.push(file_row(file, &diffs, "identical"));
            out.differences.append(&mut diffs);
        }
        (None, None) => {}
        (b, c) => {
            out.rows.push(one_sided_row(file, b.is_some(), c.is_some(), &mut diffs));
            out.differences.append(&mut diffs);
        }
    }

    let file = "pair_scores.npy";
    match (&baseline.pairs, &current.pairs) {
        (Some(b), Some(c)) => {
            diff_pairs(file, b, c, &mut diffs);
            out.rows.push(file_row(file, &diffs, "identical"));
            out.differences.append(&mut diffs);
        }
        (b, c) => {
            out.rows.push(one_sided_row(file, b.is_some(), c.is_some(), &mut diffs));
            out.differences.append(&mut diffs);
        }
    }
    Ok(())
}

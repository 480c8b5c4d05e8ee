//! A paper-style results table (Markdown and LaTeX): one row per model, the columns age-invariant
//! face-recognition papers report.
//!
//! Where each column comes from (benchmark names compared lower-case with everything but letters
//! and digits removed, so `agedb_30`, `AgeDB-30` and `agedb30` are the same):
//!
//! | column | benchmark.name | value |
//! |---|---|---|
//! | LFW | `lfw` | `metrics.accuracy.mean` |
//! | AgeDB-30 | `agedb30`, `agedb` | `metrics.accuracy.mean` |
//! | IJB-B / IJB-C TAR@FAR=1e-4, 1e-5 | `ijbb` / `ijbc` | `metrics.tar_at_far[i].tar` where `far_target` is 1e-4 (1e-5), `rule` is `"strict"` and `available` is not false |
//! | MegaFace-FGNet rank-1@1M | `megafacefgnet`, `fgnetmegaface` | `metrics.rank1_at_1m` |
//!
//! All values are fractions in results.json and printed as percentages with two decimals.
//!
//! Rows: runs with the same model label (top-level `model`, or `embeddings.model`, a string) share a
//! row named after it. Without a label, runs with the same `embeddings.fingerprint` share a row
//! named after the first run's directory (a fingerprint covers one embedding store, so different
//! benchmarks of one unlabelled model land on separate rows). When several runs of a row fill the
//! same column, the first in input order wins.

use crate::run::dir::RunData;
use serde_json::Value;
use std::fmt::Write;

/// A column of the paper table and how a run fills it.
struct Column {
    markdown: &'static str,
    benchmarks: &'static [&'static str],
    value: fn(&Value) -> Option<f64>,
}

fn accuracy(r: &Value) -> Option<f64> {
    r.pointer("/metrics/accuracy/mean").and_then(Value::as_f64)
}

fn strict_tar(r: &Value, far: f64) -> Option<f64> {
    r.pointer("/metrics/tar_at_far")?.as_array()?.iter().find_map(|e| {
        let target = e["far_target"].as_f64()?;
        let matches = (target - far).abs() <= far * 1e-9 && e["rule"] == "strict" && e["available"] != false;
        if matches {
            e["tar"].as_f64()
        } else {
            None
        }
    })
}

const COLUMNS: [Column; 7] = [
    Column { markdown: "LFW", benchmarks: &["lfw"], value: accuracy },
    Column { markdown: "AgeDB-30", benchmarks: &["agedb30", "agedb"], value: accuracy },
    Column { markdown: "IJB-B TAR@FAR=1e-4", benchmarks: &["ijbb"], value: |r| strict_tar(r, 1e-4) },
    Column { markdown: "IJB-B TAR@FAR=1e-5", benchmarks: &["ijbb"], value: |r| strict_tar(r, 1e-5) },
    Column { markdown: "IJB-C TAR@FAR=1e-4", benchmarks: &["ijbc"], value: |r| strict_tar(r, 1e-4) },
    Column { markdown: "IJB-C TAR@FAR=1e-5", benchmarks: &["ijbc"], value: |r| strict_tar(r, 1e-5) },
    Column {
        markdown: "MegaFace-FGNet rank-1@1M",
        benchmarks: &["megafacefgnet", "fgnetmegaface"],
        value: |r| r.pointer("/metrics/rank1_at_1m").and_then(Value::as_f64),
    },
];

fn normalise(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

fn model_label(r: &Value) -> Option<String> {
    [r.pointer("/model"), r.pointer("/embeddings/model")]
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().filter(|s| !s.trim().is_empty()).map(str::to_string))
}

/// One table row: its label and a value per column.
fn rows(runs: &[RunData]) -> Vec<(String, Vec<Option<f64>>)> {
    let mut keys: Vec<String> = Vec::new();
    let mut out: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for run in runs {
        let r = &run.results;
        let (key, label) = match model_label(r) {
            Some(m) => (format!("model:{m}"), m),
            None => match r.pointer("/embeddings/fingerprint").and_then(Value::as_str) {
                Some(fp) => (format!("fingerprint:{fp}"), run.name()),
                None => (format!("dir:{}", run.dir.display()), run.name()),
            },
        };
        let i = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                out.push((label, vec![None; COLUMNS.len()]));
                out.len() - 1
            }
        };
        let bench = normalise(r.pointer("/benchmark/name").and_then(Value::as_str).unwrap_or(""));
        for (c, col) in COLUMNS.iter().enumerate() {
            if out[i].1[c].is_none() && col.benchmarks.contains(&bench.as_str()) {
                out[i].1[c] = (col.value)(r).filter(|v| v.is_finite());
            }
        }
    }
    out
}

fn escape_markdown(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' => {
                o.push('\\');
                o.push(c);
            }
            '\n' | '\r' => o.push(' '),
            _ => o.push(c),
        }
    }
    o
}

/// Escapes LaTeX's special characters in text mode.
pub fn escape_latex(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str(r"\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                o.push('\\');
                o.push(c);
            }
            '~' => o.push_str(r"\textasciitilde{}"),
            '^' => o.push_str(r"\textasciicircum{}"),
            '<' => o.push_str(r"\textless{}"),
            '>' => o.push_str(r"\textgreater{}"),
            '\n' | '\r' => o.push(' '),
            _ => o.push(c),
        }
    }
    o
}

/// The paper table as (Markdown, LaTeX). Values are percentages; "–" where a benchmark was not run.
pub fn paper_table(runs: &[RunData]) -> (String, String) {
    let rows = rows(runs);
    let cell = |v: &Option<f64>, missing: &str| v.map_or(missing.to_string(), |x| format!("{:.2}", 100.0 * x));

    let mut md = String::new();
    md.push_str("| Model |");
    for c in &COLUMNS {
        let _ = write!(md, " {} |", c.markdown);
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(COLUMNS.len()));
    md.push('\n');
    for (label, values) in &rows {
        let _ = write!(md, "| {} |", escape_markdown(label));
        for v in values {
            let _ = write!(md, " {} |", cell(v, "–"));
        }
        md.push('\n');
    }
    md.push_str("\nAll values in %. LFW, AgeDB-30: 10-fold verification accuracy (mean). IJB-B/C: TAR at the given FAR (strict rule). MegaFace-FGNet: rank-1 identification with 1M distractors. –: not evaluated.\n");

    let mut tex = String::new();
    tex.push_str("% Generated by aifr-eval. Needs \\usepackage{booktabs}. All values in %; -- = not evaluated.\n");
    tex.push_str("\\begin{tabular}{lrrrrrrr}\n\\toprule\n");
    tex.push_str(
        "Model & LFW & AgeDB-30 & \\multicolumn{2}{c}{IJB-B TAR@FAR} & \\multicolumn{2}{c}{IJB-C TAR@FAR} & MegaFace-FGNet \\\\\n",
    );
    tex.push_str("\\cmidrule(lr){4-5} \\cmidrule(lr){6-7}\n");
    tex.push_str(" & & & $10^{-4}$ & $10^{-5}$ & $10^{-4}$ & $10^{-5}$ & rank-1@1M \\\\\n\\midrule\n");
    for (label, values) in &rows {
        tex.push_str(&escape_latex(label));
        for v in values {
            let _ = write!(tex, " & {}", cell(v, "--"));
        }
        tex.push_str(" \\\\\n");
    }
    tex.push_str("\\bottomrule\n\\end{tabular}\n");
    (md, tex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn run(dir: &str, results: Value) -> RunData {
        RunData { dir: PathBuf::from(dir), results, curves: None, pairs: None }
    }

    #[test]
    fn groups_by_model_and_fills_columns() {
        let runs = vec![
            run(
                "r/a-lfw",
                json!({"model": "ArcFace_R100", "benchmark": {"name": "lfw"}, "metrics": {"accuracy": {"mean": 0.99833}}}),
            ),
            run(
                "r/a-agedb",
                json!({"model": "ArcFace_R100", "benchmark": {"name": "agedb_30"}, "metrics": {"accuracy": {"mean": 0.9815}}}),
            ),
            run(
                "r/b_ijbc",
                json!({"embeddings": {"fingerprint": "ff"}, "benchmark": {"name": "IJB-C"}, "metrics": {"tar_at_far": [
                {"far_target": 1e-4, "rule": "insightface_nearest", "available": true, "tar": 0.5},
                {"far_target": 1e-4, "rule": "strict", "available": true, "tar": 0.9712},
                {"far_target": 1e-5, "rule": "strict", "available": false, "tar": null}]}}),
            ),
        ];
        let (md, tex) = paper_table(&runs);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[2], "| ArcFace\\_R100 | 99.83 | 98.15 | – | – | – | – | – |");
        assert_eq!(lines[3], "| b\\_ijbc | – | – | – | – | 97.12 | – | – |");
        assert!(tex.contains("ArcFace\\_R100 & 99.83 & 98.15 & -- & -- & -- & -- & -- \\\\"));
        assert!(tex.contains("b\\_ijbc & -- & -- & -- & -- & 97.12 & -- & -- \\\\"));
    }

    #[test]
    fn latex_escaping() {
        assert_eq!(
            escape_latex("a_b&c%d$e#f{g}h~i^j\\k"),
            "a\\_b\\&c\\%d\\$e\\#f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j\\textbackslash{}k"
        );
    }
}

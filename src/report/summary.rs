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
//! When a run has per-group accuracy (RFW's subsets), a second table follows, as the RFW papers
//! print it: one column per group (`metrics.group_accuracy.groups[i].mean`), `Avg` and `STD`
//! (`over_groups.mean`, `over_groups.std`), and the FDR of the group differentials at FMR 1e-3
//! (`metrics.differentials[…].at[…].summary.fdr`, not a percentage), one row per such run.
//!
//! Rows: runs with the same `embeddings.fingerprint` share a row named after the first run's
//! directory (a fingerprint covers one embedding store, so different benchmarks of one model land
//! on separate rows); a MegaFace run, with two stores, gets a row of its own. When several runs of
//! a row fill the same column, the first in input order wins.

use crate::metrics::TarRule;
use crate::run::dir::RunData;
use crate::run::results::Results;
use std::fmt::Write;

/// A column of the paper table and how a run fills it.
struct Column {
    markdown: &'static str,
    benchmarks: &'static [&'static str],
    value: fn(&Results) -> Option<f64>,
}

fn accuracy(r: &Results) -> Option<f64> {
    r.verification().map(|v| v.metrics.accuracy.spread.mean)
}

fn strict_tar(r: &Results, far: f64) -> Option<f64> {
    let entries = match r {
        Results::Pairs(v) => &v.metrics.tar_at_far,
        Results::Manifest(m) => &m.verification.metrics.tar_at_far,
        Results::Ijb(x) => &x.metrics.tar_at_far,
        // FG-NET's and MegaFace's TAR are not the 1:1 benchmark numbers of the table.
        Results::Fgnet(_) | Results::Megaface(_) => return None,
    };
    entries.iter().find_map(|e| {
        let matches = (e.far_target - far).abs() <= far * 1e-9 && e.rule == TarRule::Strict && e.available;
        if matches {
            e.tar
        } else {
            None
        }
    })
}

fn rank1_at_1m(r: &Results) -> Option<f64> {
    match r {
        Results::Megaface(m) => m.metrics.rank1_at_1m,
        Results::Pairs(_) | Results::Manifest(_) | Results::Fgnet(_) | Results::Ijb(_) => None,
    }
}

/// The embedding store a run evaluated (MegaFace runs have two and none here).
fn fingerprint(r: &Results) -> Option<&str> {
    match r {
        Results::Pairs(v) => Some(&v.embeddings.fingerprint),
        Results::Manifest(m) => Some(&m.verification.embeddings.fingerprint),
        Results::Fgnet(x) => Some(&x.embeddings.fingerprint),
        Results::Ijb(x) => Some(&x.embeddings.fingerprint),
        Results::Megaface(_) => None,
    }
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
        value: rank1_at_1m,
    },
];

fn normalise(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// One table row: its label and a value per column.
fn rows(runs: &[RunData]) -> Vec<(String, Vec<Option<f64>>)> {
    let mut keys: Vec<String> = Vec::new();
    let mut out: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for run in runs {
        let r = &run.results;
        let key = match fingerprint(r) {
            Some(fp) => format!("fingerprint:{fp}"),
            None => format!("dir:{}", run.dir.display()),
        };
        let i = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                out.push((run.name(), vec![None; COLUMNS.len()]));
                out.len() - 1
            }
        };
        let bench = normalise(&r.benchmark().name);
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
    if let Some((gmd, gtex)) = group_table(runs) {
        md.push('\n');
        md.push_str(&gmd);
        tex.push('\n');
        tex.push_str(&gtex);
    }
    (md, tex)
}

/// FMR target of the FDR column of the group table.
const GROUP_TABLE_FMR: f64 = 1e-3;

/// The per-group accuracy table (RFW) of the runs that have one, or None.
fn group_table(runs: &[RunData]) -> Option<(String, String)> {
    let with: Vec<(&RunData, &crate::protocol::verification::VerificationMetrics)> = runs
        .iter()
        .filter_map(|r| r.results.verification().map(|v| (r, &v.metrics)))
        .filter(|(_, m)| m.group_accuracy.is_some())
        .collect();
    let first = with.first()?.1.group_accuracy.as_ref()?;
    let groups: Vec<&str> = first.groups.iter().map(|g| g.group.as_str()).collect();
    let pct = |x: f64| x.is_finite().then(|| format!("{:.2}", 100.0 * x));
    let mut md = format!("| Model ({}) |", escape_markdown(&first.attribute));
    let mut tex = format!(
        "\\begin{{tabular}}{{l{}}}\n\\toprule\nModel & {} & Avg & STD & FDR \\\\\n\\midrule\n",
        "r".repeat(groups.len() + 3),
        groups.iter().map(|g| escape_latex(g)).collect::<Vec<_>>().join(" & ")
    );
    for g in &groups {
        let _ = write!(md, " {} |", escape_markdown(g));
    }
    let _ = writeln!(md, " Avg | STD | FDR@FMR={GROUP_TABLE_FMR:e} |");
    md.push_str("|---|");
    md.push_str(&"---:|".repeat(groups.len() + 3));
    md.push('\n');
    for (run, m) in &with {
        let Some(g) = &m.group_accuracy else { continue };
        let mut cells: Vec<Option<String>> = groups
            .iter()
            .map(|name| g.groups.iter().find(|x| x.group == *name).and_then(|x| pct(x.spread.mean)))
            .collect();
        cells.push(pct(g.over_groups.mean));
        cells.push(pct(g.over_groups.std));
        cells.push(
            m.differentials
                .iter()
                .find(|d| d.attribute == g.attribute)
                .and_then(|d| d.at.iter().find(|a| (a.far_target - GROUP_TABLE_FMR).abs() <= GROUP_TABLE_FMR * 1e-9))
                .and_then(|a| a.summary.as_ref()?.fdr)
                .map(|f| format!("{f:.4}")),
        );
        let row = |missing: &str, sep: &str| {
            cells.iter().map(|c| c.clone().unwrap_or_else(|| missing.into())).collect::<Vec<_>>().join(sep)
        };
        let _ = writeln!(md, "| {} | {} |", escape_markdown(&run.name()), row("–", " | "));
        let _ = writeln!(tex, "{} & {} \\\\", escape_latex(&run.name()), row("--", " & "));
    }
    md.push_str("\nAccuracy in %: each group's own 10-fold accuracy (mean), their mean (Avg) and population standard deviation (STD); FDR: Fairness Discrepancy Rate of the groups' FMR and FNMR at one global threshold (1 = no discrepancy).\n");
    tex.push_str("\\bottomrule\n\\end{tabular}\n");
    Some((md, tex))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::dir::test_run as run;
    use serde_json::json;

    #[test]
    fn groups_by_fingerprint_and_fills_columns() {
        let runs = vec![
            run("r/a_lfw", |v| v["metrics"]["accuracy"]["mean"] = json!(0.99833)),
            run("r/a-agedb", |v| {
                v["benchmark"]["name"] = json!("agedb_30");
                v["metrics"]["accuracy"]["mean"] = json!(0.9815);
            }),
            run("r/b_ijbc", |v| {
                v["benchmark"]["name"] = json!("IJB-C");
                v["embeddings"]["fingerprint"] = json!("ff");
                v["metrics"]["tar_at_far"] = json!([
                {"far_target": 1e-4, "rule": "insightface_nearest", "available": true, "tar": 0.5, "far": 1e-4, "threshold": 0.3, "false_accepts": 1, "note": null},
                {"far_target": 1e-4, "rule": "strict", "available": true, "tar": 0.9712, "far": 1e-4, "threshold": 0.3, "false_accepts": 1, "note": null},
                {"far_target": 1e-5, "rule": "strict", "available": false, "tar": null, "far": null, "threshold": null, "false_accepts": null, "note": "n/a"}]);
            }),
        ];
        let (md, tex) = paper_table(&runs);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[2], "| a\\_lfw | 99.83 | 98.15 | – | – | – | – | – |");
        assert_eq!(lines[3], "| b\\_ijbc | – | – | – | – | 97.12 | – | – |");
        assert!(tex.contains("a\\_lfw & 99.83 & 98.15 & -- & -- & -- & -- & -- \\\\"));
        assert!(tex.contains("b\\_ijbc & -- & -- & -- & -- & 97.12 & -- & -- \\\\"));
    }

    #[test]
    fn per_group_accuracy_gets_its_own_table() {
        let groups = json!({"attribute": "subset", "groups": [
            {"group": "African", "pairs": 6000, "fold_accuracies": [0.95], "mean": 0.95, "std": 0.0, "se": 0.0},
            {"group": "Asian", "pairs": 6000, "fold_accuracies": [0.97], "mean": 0.97, "std": 0.0, "se": 0.0}],
            "over_groups": {"mean": 0.96, "std": 0.01, "se": 0.01}});
        let runs = vec![
            run("r/plain", |_| {}),
            run("r/rfw", |v| {
                v["benchmark"]["name"] = json!("rfw");
                v["embeddings"]["fingerprint"] = json!("rr");
                v["metrics"]["group_accuracy"] = groups.clone();
            }),
        ];
        let (md, tex) = paper_table(&runs);
        assert!(md.contains("| Model (subset) | African | Asian | Avg | STD | FDR@FMR=1e-3 |"), "{md}");
        assert!(md.contains("| rfw | 95.00 | 97.00 | 96.00 | 1.00 | – |"), "{md}");
        assert!(tex.contains("rfw & 95.00 & 97.00 & 96.00 & 1.00 & -- \\\\"), "{tex}");
        assert!(!paper_table(&runs[..1]).0.contains("Model (subset)"), "no group table without group accuracy");
    }

    #[test]
    fn latex_escaping() {
        assert_eq!(
            escape_latex("a_b&c%d$e#f{g}h~i^j\\k"),
            "a\\_b\\&c\\%d\\$e\\#f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j\\textbackslash{}k"
        );
    }
}

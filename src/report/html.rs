//! Human-readable reports: one self-contained HTML page (inline CSS, no JavaScript, images by
//! relative path) for one run or a side-by-side comparison of several, plus PNG charts and the
//! paper-style summary table.
//!
//! Every string that comes from a dataset, a results file or the user (titles, paths, keys,
//! directory names, labels) goes through `escape_html`. The page has no timestamps, so the same
//! inputs give byte-identical output.

use super::charts::{self, AgeGapPoint, AgeGapSeries, RocSeries};
use super::compare::{paired_differences, MetricDiff};
use super::summary;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::run::dir::RunData;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Escapes `&`, `<`, `>`, `"` and `'` so any string is safe in element text and quoted attributes.
mod manifest;

pub fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Writes the report of pair-verification, manifest, FG-NET and IJB runs (`super::write_report`
/// checks the arguments and sends MegaFace runs to their own page).
///
/// One run: `out_dir/<index_name>`, `roc.png`, `det.png`, `scores.png`. Several runs: ROC and DET
/// overlay all runs, tables are side by side with differences against the first run, and each run
/// gets `scores-<i>.png`. Both also write `summary.md` and `summary.tex` (the paper table).
pub(super) fn write_report(runs: &[RunData], out_dir: &Path, index_name: &str) -> Result<Vec<PathBuf>> {
    // FG-NET runs carry their verification part under metrics.verification: present it where
    // the pair-verification tables and charts look.
    let views: Vec<RunData> =
        runs.iter().map(|r| RunData { results: verification_view(&r.results), ..r.clone() }).collect();
    let runs = views.as_slice();
    let names = display_names(runs);
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = out_dir.join(name);
        write_atomic(&path, bytes)?;
        written.push(path);
        Ok(())
    };

    let charts = build_charts(runs, &names);
    for c in charts.iter_all() {
        if let Ok(img) = &c.image {
            put(&img.file, &img.png)?;
        }
    }
    let (md, tex) = summary::paper_table(runs);
    put("summary.md", md.as_bytes())?;
    put("summary.tex", tex.as_bytes())?;
    let page =
        if runs.len() == 1 { single_page(&runs[0], &names[0], &charts) } else { multi_page(runs, &names, &charts) };
    put(index_name, page.as_bytes())?;
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Names, numbers and JSON access

/// Run names for headings and legends: the directory name, widened to parent/name (then the full
/// path, then a number) where two runs would otherwise look the same.
pub(super) fn display_names(runs: &[RunData]) -> Vec<String> {
    let tail = |d: &Path, k: usize| -> String {
        let parts: Vec<String> = d.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        parts[parts.len().saturating_sub(k)..].join("/")
    };
    type Naming<'a> = Box<dyn Fn(&RunData) -> String + 'a>;
    let candidates: [Naming<'_>; 3] =
        [Box::new(|r| r.name()), Box::new(|r| tail(&r.dir, 2)), Box::new(|r| r.dir.display().to_string())];
    for f in &candidates {
        let names: Vec<String> = runs.iter().map(f).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() == names.len() {
            return names;
        }
    }
    runs.iter().enumerate().map(|(i, r)| format!("{} #{}", r.name(), i + 1)).collect()
}

pub(super) fn num(v: &Value, ptr: &str) -> Option<f64> {
    v.pointer(ptr).and_then(Value::as_f64).filter(|x| x.is_finite())
}

pub(super) fn int(v: &Value, ptr: &str) -> Option<u64> {
    v.pointer(ptr).and_then(Value::as_u64)
}

/// A JSON scalar as text (strings unquoted); None for null or absent.
pub(super) fn text(v: &Value, ptr: &str) -> Option<String> {
    match v.pointer(ptr)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Escaped text of a JSON field, or a dash.
pub(super) fn field(v: &Value, ptr: &str) -> String {
    text(v, ptr).map_or_else(|| DASH.to_string(), |s| escape_html(&s))
}

const DASH: &str = "–";

pub(super) fn pct(x: f64) -> String {
    format!("{:.3}%", 100.0 * x)
}

pub(super) fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or_else(|| DASH.to_string(), f)
}

fn far_label(x: f64) -> String {
    format!("{x:e}")
}

fn same_far(a: f64, b: f64) -> bool {
    (a - b).abs() <= a.abs().max(b.abs()) * 1e-9
}

/// One `metrics.tar_at_far` entry.
#[derive(Debug, Clone)]
struct TarEntry {
    far_target: f64,
    rule: String,
    tar: Option<f64>,
    far: Option<f64>,
    threshold: Option<f64>,
    false_accepts: Option<u64>,
    note: Option<String>,
}

fn tar_entries(r: &Value) -> Vec<TarEntry> {
    let Some(list) = r.pointer("/metrics/tar_at_far").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let available = e["available"].as_bool().unwrap_or(true);
            Some(TarEntry {
                far_target: e["far_target"].as_f64()?,
                rule: e["rule"].as_str().unwrap_or("strict").to_string(),
                tar: e["tar"].as_f64().filter(|_| available),
                far: e["far"].as_f64(),
                threshold: e["threshold"].as_f64(),
                false_accepts: e["false_accepts"].as_u64(),
                note: e["note"].as_str().map(str::to_string),
            })
        })
        .collect()
}

/// FAR targets in first-seen order.
fn far_targets(entries: &[TarEntry]) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for e in entries {
        if !out.iter().any(|&f| same_far(f, e.far_target)) {
            out.push(e.far_target);
        }
    }
    out
}

fn find_tar<'a>(entries: &'a [TarEntry], far: f64, rule: &str) -> Option<&'a TarEntry> {
    entries.iter().find(|e| e.rule == rule && same_far(e.far_target, far))
}

/// Bootstrap interval (lo, hi) of a metric, when the run has one.
fn ci(r: &Value, metric: &str) -> Option<(f64, f64)> {
    let b = r.pointer("/metrics/bootstrap")?.get(metric)?;
    Some((b["lo"].as_f64()?, b["hi"].as_f64()?))
}

fn tar_ci(r: &Value, far: f64, rule: &str) -> Option<(f64, f64)> {
    r.pointer("/metrics/bootstrap/tar_at_far")?.as_array()?.iter().find_map(|e| {
        let hit = e["rule"].as_str().unwrap_or("strict") == rule && same_far(e["far_target"].as_f64()?, far);
        if hit {
            Some((e["lo"].as_f64()?, e["hi"].as_f64()?))
        } else {
            None
        }
    })
}

fn confidence(r: &Value) -> f64 {
    num(r, "/metrics/bootstrap/confidence").unwrap_or(0.95)
}

fn pct_ci(r: &Value, iv: Option<(f64, f64)>) -> String {
    iv.map_or_else(String::new, |(lo, hi)| {
        format!(" <span class=\"ci\">{:.0}% CI [{}, {}]</span>", 100.0 * confidence(r), pct(lo), pct(hi))
    })
}

/// "97.850% ± 0.187 (SE)" as the reference tools print it.
fn accuracy_text(r: &Value) -> String {
    let Some(mean) = num(r, "/metrics/accuracy/mean") else {
        return DASH.into();
    };
    let spread = text(r, "/metrics/accuracy/reported_spread").unwrap_or_else(|| "se".into());
    let (pm, label) =
        if spread == "std" { (num(r, "/metrics/accuracy/std"), "std") } else { (num(r, "/metrics/accuracy/se"), "SE") };
    match pm {
        Some(pm) => format!("{} ± {:.3} ({label})", pct(mean), 100.0 * pm),
        None => pct(mean),
    }
}

fn eer_text(r: &Value) -> String {
    match (num(r, "/metrics/roc/eer/eer"), num(r, "/metrics/roc/eer/threshold")) {
        (Some(e), Some(t)) => format!("{} at threshold {t:.4}", pct(e)),
        (Some(e), None) => pct(e),
        _ => DASH.into(),
    }
}

fn score_axis(r: &Value) -> &'static str {
    let score = text(r, "/protocol/score").unwrap_or_default().to_ascii_lowercase();
    if score.contains("cosine") {
        "Cosine similarity"
    } else {
        "Score"
    }
}

// ---------------------------------------------------------------------------------------------
// Charts

pub(super) struct Image {
    pub(super) file: String,
    pub(super) png: Vec<u8>,
}

/// A chart that was drawn, or why not.
pub(super) struct Chart {
    pub(super) alt: String,
    pub(super) caption: String,
    pub(super) image: std::result::Result<Image, String>,
}

struct Charts {
    roc: Chart,
    det: Chart,
    /// One per run, in run order.
    scores: Vec<Chart>,
    /// TAR by age gap, when any run knows its images' ages.
    age_gap: Option<Chart>,
    /// IJB 1:N TPIR against FPIR, for a single run with 1:N results.
    open_set: Option<Chart>,
}

impl Charts {
    fn iter_all(&self) -> impl Iterator<Item = &Chart> {
        [&self.roc, &self.det].into_iter().chain(&self.scores).chain(&self.age_gap).chain(&self.open_set)
    }
}

/// (bin label, TAR, interval) rows of a run's age-gap breakdown.
fn age_gap_rows(r: &Value) -> Option<Vec<AgeGapPoint>> {
    let bins = r.pointer("/metrics/age_gap/bins")?.as_array()?;
    Some(
        bins.iter()
            .map(|b| {
                let lo = b["lo"].as_u64().unwrap_or(0);
                let label = match b["hi"].as_u64() {
                    Some(hi) => format!("{lo}–{hi}"),
                    None => format!("{lo}+"),
                };
                let tar = b["tar"].as_f64().map(|t| {
                    let iv = &b["tar_interval"];
                    (t, iv["lo"].as_f64().unwrap_or(f64::NAN), iv["hi"].as_f64().unwrap_or(f64::NAN))
                });
                (label, tar)
            })
            .collect(),
    )
}

fn age_gap_chart(runs: &[RunData], names: &[String]) -> Option<Chart> {
    let series: Vec<AgeGapSeries> = runs
        .iter()
        .zip(names)
        .filter_map(|(run, name)| Some(AgeGapSeries { label: name.clone(), bins: age_gap_rows(&run.results)? }))
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(chart(
        "TAR at a fixed threshold against the age gap of the pair",
        "Genuine pairs accepted at one threshold chosen on all pairs (strict rule at the operating FAR), by the age gap between the two images; bars are 95% bootstrap intervals over identities.".into(),
        "age_gap.png".into(),
        charts::age_gap_chart(&series, "Verification across age gaps"),
    ))
}

/// The age-gap table of one run.
fn age_gap_table(out: &mut String, r: &Value) {
    let Some(bins) = r.pointer("/metrics/age_gap/bins").and_then(Value::as_array) else {
        if let Some(why) = r.pointer("/metrics/age_gap_unavailable").and_then(Value::as_str) {
            let _ = writeln!(out, "<h2>Age gap</h2>\n<p>Unavailable: {}</p>", escape_html(why));
        }
        return;
    };
    let _ = writeln!(
        out,
        "<h2>Age gap</h2>\n<p>Threshold {} chosen on all pairs at FAR {} (strict rule); {} pair(s) outside every bin.</p>",
        field(r, "/metrics/age_gap/threshold"),
        field(r, "/metrics/age_gap/operating_far"),
        field(r, "/metrics/age_gap/unbinned")
    );
    out.push_str("<table>\n<thead><tr><th>age gap (years)</th><th>genuine</th><th>impostor</th><th>TAR</th><th>95% CI</th><th>FAR</th><th>accuracy</th><th>mean genuine score</th></tr></thead>\n<tbody>\n");
    for b in bins {
        let lo = b["lo"].as_u64().unwrap_or(0);
        let label = b["hi"].as_u64().map_or(format!("{lo}+"), |hi| format!("{lo}–{hi}"));
        let ci = match (b["tar_interval"]["lo"].as_f64(), b["tar_interval"]["hi"].as_f64()) {
            (Some(l), Some(h)) => format!("[{}, {}]", pct(l), pct(h)),
            _ => DASH.into(),
        };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{label}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{ci}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            field(b, "/n_genuine"),
            field(b, "/n_impostor"),
            opt(b["tar"].as_f64(), pct),
            opt(b["far"].as_f64(), pct),
            opt(b["accuracy"].as_f64(), pct),
            opt(b["mean_genuine_score"].as_f64(), |x| format!("{x:.4}"))
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

pub(super) fn chart(alt: &str, caption: String, file: String, png: Result<Vec<u8>>) -> Chart {
    Chart { alt: alt.into(), caption, image: png.map(|png| Image { file, png }).map_err(|e| e.to_string()) }
}

fn build_charts(runs: &[RunData], names: &[String]) -> Charts {
    let series: Vec<RocSeries<'_>> = runs
        .iter()
        .zip(names)
        .filter_map(|(run, name)| {
            let curves = run.curves.as_ref()?;
            let r = &run.results;
            let entries = tar_entries(r);
            Some(RocSeries {
                label: name.clone(),
                roc: &curves.roc,
                n_impostor: int(r, "/counts/impostor").unwrap_or(0),
                n_genuine: int(r, "/counts/genuine").unwrap_or(0),
                points: entries
                    .iter()
                    .filter(|e| e.rule == "strict")
                    .filter_map(|e| Some((e.far?, e.tar?)))
                    .filter(|p| p.0 > 0.0)
                    .collect(),
                eer: num(r, "/metrics/roc/eer/eer"),
            })
        })
        .collect();
    let missing = runs.len() - series.len();
    let no_curves =
        || Err(Error::Missing("no curves.json in the run directory (re-run the evaluation to get charts)".into()));
    let note = if missing > 0 && !series.is_empty() {
        format!(" {missing} run(s) without curves.json are not drawn.")
    } else {
        String::new()
    };
    let single = runs.len() == 1;
    let title = |what: &str| {
        if single {
            let bench = text(&runs[0].results, "/benchmark/name").unwrap_or_default();
            format!("{what} — {} ({bench})", names[0])
        } else {
            format!("{what} — {} runs", runs.len())
        }
    };
    let (roc_png, det_png) = if series.is_empty() {
        (no_curves(), no_curves())
    } else {
        (charts::roc_chart(&series, &title("ROC")), charts::det_chart(&series, &title("DET")))
    };
    let roc = chart(
        "ROC curve: true accept rate against false accept rate (log scale)",
        format!("ROC over the exact score vertices; dots mark the TAR@FAR operating points (strict rule). FAR below 1/N impostor pairs cannot be measured and is not drawn.{note}"),
        "roc.png".into(),
        roc_png,
    );
    let det = chart(
        "DET curve: false reject rate against false accept rate (both log scale)",
        format!("Detection error trade-off (FRR = 1 − TAR); crosses mark the equal error rate.{note}"),
        "det.png".into(),
        det_png,
    );
    let scores = runs
        .iter()
        .zip(names)
        .enumerate()
        .map(|(i, (run, name))| {
            let file = if single { "scores.png".to_string() } else { format!("scores-{}.png", i + 1) };
            let png = match &run.curves {
                Some(c) => charts::score_histogram_chart(c, &format!("Score distributions — {name}"), score_axis(&run.results)),
                None => no_curves(),
            };
            chart(
                "Histograms of genuine and impostor scores with the marked thresholds",
                "Genuine and impostor score histograms, each normalised to its own number of pairs; dashed lines are the marked thresholds (accept iff score ≥ threshold).".into(),
                file,
                png,
            )
        })
        .collect();
    let open_set = if single { open_set_figure(&runs[0], &names[0]) } else { None };
    Charts { roc, det, scores, age_gap: age_gap_chart(runs, names), open_set }
}

fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    let be = |r: std::ops::Range<usize>| png.get(r).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
    Some((be(16..20)?, be(20..24)?))
}

pub(super) fn figure(out: &mut String, c: &Chart) {
    match &c.image {
        Ok(img) => {
            let size = png_size(&img.png).map_or_else(String::new, |(w, h)| format!(" width=\"{w}\" height=\"{h}\""));
            let _ = writeln!(
                out,
                "<figure><img src=\"{}\" alt=\"{}\"{size}><figcaption>{}</figcaption></figure>",
                escape_html(&img.file),
                escape_html(&c.alt),
                escape_html(&c.caption)
            );
        }
        Err(why) => {
            let _ = writeln!(out, "<p class=\"note\">{} not drawn: {}</p>", escape_html(&c.alt), escape_html(why));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Page pieces

const CSS: &str = r#"
:root{color-scheme:light}
body{font-family:"DejaVu Sans",system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1120px;padding:24px 28px 48px;color:#1b1b1b;background:#fff;line-height:1.45}
h1{font-size:1.65em;margin:0 0 4px}
h2{font-size:1.25em;margin:34px 0 10px;border-bottom:1px solid #d8d8d8;padding-bottom:4px}
h3{font-size:1.05em;margin:20px 0 6px}
p.sub{margin:0;color:#555}
table{border-collapse:collapse;margin:8px 0 14px;font-size:.9em}
th,td{border:1px solid #d4d4d4;padding:4px 9px;text-align:left;vertical-align:top}
thead th{background:#eef1f4}
th[scope=row]{background:#f7f8f9;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ci,.delta{display:block;font-size:.85em;color:#555;white-space:nowrap}
.better{color:#0a7a3d}.worse{color:#b3261e}
code{font-family:"DejaVu Sans Mono",ui-monospace,Menlo,Consolas,monospace;font-size:.88em;word-break:break-all}
figure{margin:18px 0}
figure img{max-width:100%;height:auto;border:1px solid #e2e2e2}
figcaption{color:#555;font-size:.88em;margin-top:4px}
.note{background:#fff8e1;border-left:4px solid #e0a800;padding:6px 10px}
.muted{color:#666}
details{margin:10px 0}
summary{cursor:pointer;font-weight:600}
footer{margin-top:40px;color:#777;font-size:.85em}
"#;

pub(super) fn page_start(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape_html(title)
    );
}

pub(super) fn page_end(out: &mut String) {
    let _ = write!(
        out,
        "<footer>Written by aifr-eval {} from results.json and curves.json. Numbers are those of the results files; the page has no timestamp so the same runs always give the same report.</footer>\n</body>\n</html>\n",
        escape_html(env!("CARGO_PKG_VERSION"))
    );
}

/// A two-column table of (already escaped) label/value rows.
pub(super) fn kv_table(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table class=\"kv\">\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th scope=\"row\">{}</th><td>{v}</td></tr>", escape_html(k));
    }
    out.push_str("</table>\n");
}

fn bootstrap_text(r: &Value) -> String {
    let Some(b) = r.pointer("/metrics/bootstrap").filter(|b| b.is_object()) else {
        return "<span class=\"muted\">not in this results file</span>".into();
    };
    let unit = b["unit"].as_str().unwrap_or("?");
    let units = if unit == "identity" { "identities".to_string() } else { format!("{unit}s") };
    let mut s = format!(
        "{:.0}% percentile intervals, {} resamples of {} {}, seed {}",
        100.0 * confidence(r),
        field(r, "/metrics/bootstrap/resamples"),
        field(r, "/metrics/bootstrap/clusters"),
        escape_html(&units),
        field(r, "/metrics/bootstrap/seed"),
    );
    if let Some(note) = text(r, "/metrics/bootstrap/note") {
        let _ = write!(s, "<br><span class=\"muted\">{}</span>", escape_html(&note));
    }
    s
}

fn is_fgnet(r: &Value) -> bool {
    r["kind"] == "fgnet_identification"
}

fn is_ijb(r: &Value) -> bool {
    r["kind"] == "ijb"
}

/// The TPIR/FPIR chart of an IJB run (from curves.json), when it has 1:N results.
fn open_set_figure(run: &RunData, name: &str) -> Option<Chart> {
    let curves = run.curves.as_ref()?.open_set.as_ref()?;
    let galleries = run.results.pointer("/metrics/identification/galleries")?.as_array()?;
    let points: Vec<Vec<(f64, f64)>> = galleries
        .iter()
        .map(|g| {
            g["tpir_at_fpir"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|e| e["rule"] == "strict")
                        .filter_map(|e| Some((e["fpir"].as_f64()?, e["tpir"].as_f64()?)))
                        .filter(|p| p.0 > 0.0)
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    Some(chart(
        "Open-set identification: TPIR against FPIR (log scale), one line per gallery",
        "TPIR (mate at rank 1 and accepted) against FPIR (non-mated probes whose best gallery score is accepted), strict rule, over every threshold; dots mark the TPIR@FPIR operating points.".into(),
        "tpir_fpir.png".into(),
        charts::open_set_chart(curves, &points, &format!("TPIR / FPIR — {name}")),
    ))
}

/// The 1:N tables of an IJB run: per gallery TPIR@FPIR under both rules and CMC, the mean over
/// galleries, and the legacy merged-gallery numbers, labelled as such.
fn ijb_identification_section(out: &mut String, r: &Value) {
    let id = &r["metrics"]["identification"];
    out.push_str("<h2>1:N open-set identification</h2>\n");
    if !id.is_object() {
        let _ = writeln!(out, "<p class=\"muted\">Not evaluated: {}</p>", field(r, "/metrics/identification_note"));
        return;
    }
    let _ = writeln!(out, "<p>{}</p>", field(r, "/protocol/open_set_rule"));
    out.push_str("<table>\n<thead><tr><th rowspan=\"2\">gallery</th><th rowspan=\"2\">FPIR target</th><th colspan=\"3\">strict</th><th colspan=\"3\">compat=ijb_evals</th></tr>\n<tr><th>TPIR</th><th>achieved FPIR</th><th>threshold</th><th>TPIR</th><th>achieved FPIR</th><th>threshold</th></tr></thead>\n<tbody>\n");
    for g in id["galleries"].as_array().into_iter().flatten() {
        let entries = g["tpir_at_fpir"].as_array().cloned().unwrap_or_default();
        let mut targets: Vec<f64> = entries.iter().filter_map(|e| e["fpir_target"].as_f64()).collect();
        targets.sort_by(f64::total_cmp);
        targets.dedup();
        for t in targets {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{} <span class=\"muted\">({} templates; {} mated, {} non-mated probes)</span></th><td class=\"num\">{}</td>",
                field(g, "/name"),
                field(g, "/templates"),
                field(g, "/mated_probes"),
                field(g, "/nonmated_probes"),
                far_label(t)
            );
            for rule in ["strict", "ijb_evals"] {
                let e = entries
                    .iter()
                    .find(|e| e["rule"] == rule && e["fpir_target"].as_f64().is_some_and(|x| same_far(x, t)));
                match e.filter(|e| e["available"] == true) {
                    Some(e) => {
                        let _ = write!(
                            out,
                            "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                            opt(e["tpir"].as_f64(), pct),
                            opt(e["fpir"].as_f64(), |x| format!("{x:.2e}")),
                            opt(e["threshold"].as_f64(), |x| format!("{x:.4}"))
                        );
                    }
                    None => {
                        let _ = write!(
                            out,
                            "<td class=\"num\">n/a</td><td class=\"num\">{DASH}</td><td class=\"num\">{DASH}</td>"
                        );
                    }
                }
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</tbody>\n</table>\n");
    let mean: Vec<String> = id["mean_tpir_at_fpir"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["rule"] == "ijb_evals")
        .map(|e| format!("FPIR {}: {}", opt(e["fpir_target"].as_f64(), far_label), opt(e["tpir"].as_f64(), pct)))
        .collect();
    let _ = writeln!(
        out,
        "<p>Mean TPIR over the galleries (compat=ijb_evals, as insightface prints it): {}</p>",
        escape_html(&mean.join("; "))
    );
    let cmc_text = |v: &Value| -> String {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "rank-{} {} ({}/{})",
                    field(p, "/rank"),
                    opt(p["rate"].as_f64(), pct),
                    field(p, "/hits"),
                    field(p, "/probes")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str("<table>\n<thead><tr><th>CMC</th><th>rank-k hit rate (ties count against the mate)</th></tr></thead>\n<tbody>\n");
    for g in id["galleries"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{} (mated probes)</th><td>{}</td></tr>",
            field(g, "/name"),
            escape_html(&cmc_text(&g["cmc"]))
        );
    }
    let _ = writeln!(
        out,
        "<tr><th scope=\"row\">all galleries (hits / all probes)</th><td>{}</td></tr>",
        escape_html(&cmc_text(&id["cmc"]))
    );
    out.push_str("</tbody>\n</table>\n");
    let l = &id["legacy"];
    let _ = writeln!(
        out,
        "<h3>Legacy merged-gallery numbers (not comparable)</h3>\n<p class=\"note\">{}</p>",
        field(l, "/label")
    );
    if l["available"] == true {
        let pts: Vec<String> = l["points"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "'FAR' {}: TPR {} (k = {}, threshold {})",
                    field(p, "/legacy_far"),
                    opt(p["tpr"].as_f64(), pct),
                    field(p, "/k"),
                    opt(p["threshold"].as_f64(), |x| format!("{x:.4}"))
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<p>{} gallery templates, {} probes. CMC: {}.<br>{}</p>",
            field(l, "/gallery_templates"),
            field(l, "/probes"),
            escape_html(&cmc_text(&l["cmc"])),
            escape_html(&pts.join("; "))
        );
    } else {
        let _ = writeln!(out, "<p class=\"muted\">Not available: {}</p>", field(l, "/note"));
    }
}

/// FG-NET results with the all-pairs verification mapped onto the pair-verification fields.
fn verification_view(r: &Value) -> Value {
    if !is_fgnet(r) {
        return r.clone();
    }
    let mut v = r.clone();
    let ver = &r["metrics"]["verification"];
    v["metrics"]["tar_at_far"] = ver["tar_at_far"].clone();
    v["metrics"]["roc"] = serde_json::json!({ "auc": ver["auc"], "eer": ver["eer"] });
    v["metrics"]["age_gap"] = ver["age_gap"].clone();
    let (g, i) =
        (r["counts"]["genuine_pairs"].as_u64().unwrap_or(0), r["counts"]["impostor_pairs"].as_u64().unwrap_or(0));
    v["counts"]["genuine"] = g.into();
    v["counts"]["impostor"] = i.into();
    v["counts"]["pairs"] = (g + i).into();
    v
}

/// Rank-1 tables of an FG-NET run.
fn identification_section(out: &mut String, r: &Value) {
    let id = &r["metrics"]["identification"];
    let ci = match (id["rank1_interval"]["lo"].as_f64(), id["rank1_interval"]["hi"].as_f64()) {
        (Some(l), Some(h)) => format!(" <span class=\"ci\">95% CI [{}, {}] over subjects</span>", pct(l), pct(h)),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "<h2>Leave-one-image-out identification</h2>\n<p>Rank-1 <b>{}</b>{ci} — {} probes with a mate ({} of {} subjects' images; {} without a mate excluded). A tie between the best mate and the best impostor counts as a miss.</p>",
        opt(id["rank1"].as_f64(), pct),
        field(r, "/counts/probes"),
        field(r, "/counts/images"),
        field(r, "/counts/subjects"),
        field(r, "/counts/excluded")
    );
    for (title, key) in [("probe age (years)", "by_age_group"), ("age gap to the nearest mate (years)", "by_gap")] {
        gap_table(out, title, &id[key]);
    }
}

/// Rank-1 per age group or age-gap bin (FG-NET and manifest identification).
fn gap_table(out: &mut String, title: &str, rows: &Value) {
    let Some(rows) = rows.as_array() else { return };
    let _ = writeln!(
        out,
        "<table>\n<thead><tr><th>{title}</th><th>probes</th><th>hits</th><th>rank-1</th></tr></thead>\n<tbody>"
    );
    for g in rows {
        let lo = g["lo"].as_u64().unwrap_or(0);
        let label = g["hi"].as_u64().map_or(format!("{lo}+"), |hi| format!("{lo}–{hi}"));
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{label}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            field(g, "/probes"),
            field(g, "/hits"),
            opt(g["rank1"].as_f64(), pct)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn summary_rows(r: &Value) -> Vec<(&'static str, String)> {
    let counts = format!(
        "{} pairs ({} genuine, {} impostor), {} distinct images",
        field(r, "/counts/pairs"),
        field(r, "/counts/genuine"),
        field(r, "/counts/impostor"),
        field(r, "/counts/images")
    );
    let acc = format!(
        "{}<span class=\"ci\">std {}, SE {} (percentage points)</span>{}",
        escape_html(&accuracy_text(r)),
        opt(num(r, "/metrics/accuracy/std"), |x| format!("{:.3}", 100.0 * x)),
        opt(num(r, "/metrics/accuracy/se"), |x| format!("{:.3}", 100.0 * x)),
        pct_ci(r, ci(r, "accuracy"))
    );
    let auc = format!(
        "{}{}",
        opt(num(r, "/metrics/roc/auc"), |x| format!("{x:.6}")),
        ci(r, "auc").map_or_else(String::new, |(lo, hi)| format!(
            " <span class=\"ci\">{:.0}% CI [{lo:.6}, {hi:.6}]</span>",
            100.0 * confidence(r)
        ))
    );
    let eer = format!("{}{}", escape_html(&eer_text(r)), pct_ci(r, ci(r, "eer")));
    let embeddings = format!(
        "{} × {} {}, mirrored views: {}<br><code>{}</code>",
        field(r, "/embeddings/count"),
        field(r, "/embeddings/dim"),
        field(r, "/embeddings/dtype"),
        match r.pointer("/embeddings/has_flip").and_then(Value::as_bool) {
            Some(true) => "yes",
            Some(false) => "no",
            None => DASH,
        },
        field(r, "/embeddings/fingerprint")
    );
    let benchmark = format!(
        "{} <span class=\"muted\">({}, format {})</span>",
        field(r, "/benchmark/title"),
        field(r, "/benchmark/name"),
        field(r, "/benchmark/format")
    );
    let protocol = format!(
        "{}; mode <b>{}</b>, fold mode {}, flip fusion <b>{}</b>, {} folds",
        field(r, "/protocol/name"),
        field(r, "/protocol/mode"),
        field(r, "/protocol/fold_mode"),
        field(r, "/protocol/flip_fusion"),
        field(r, "/protocol/folds")
    );
    let folds = text(r, "/counts/folds").or_else(|| text(r, "/protocol/folds")).unwrap_or_else(|| "k".into());
    vec![
        ("Benchmark", benchmark),
        ("Protocol", protocol),
        ("Score", format!("{}; {}", field(r, "/protocol/score"), field(r, "/protocol/accept_rule"))),
        ("Counts", counts),
        (if folds == "10" { "10-fold accuracy" } else { "k-fold accuracy" }, acc),
        ("AUC", auc),
        ("EER", eer),
        ("XNorm", opt(num(r, "/metrics/xnorm"), |x| format!("{x:.4}"))),
        ("Bootstrap", bootstrap_text(r)),
        ("Embeddings", embeddings),
        (
            "Software",
            format!(
                "{} {} <span class=\"muted\">commit {}</span>",
                field(r, "/software/name"),
                field(r, "/software/version"),
                field(r, "/software/commit")
            ),
        ),
    ]
}

const RULES: [(&str, &str); 2] = [("strict", "strict"), ("insightface_nearest", "insightface nearest")];

fn tar_table(out: &mut String, r: &Value) {
    let entries = tar_entries(r);
    if entries.is_empty() {
        out.push_str("<p class=\"muted\">No TAR@FAR entries in this results file.</p>\n");
        return;
    }
    out.push_str("<table>\n<thead>\n<tr><th rowspan=\"2\">FAR target</th>");
    for (_, title) in RULES {
        let _ = write!(out, "<th colspan=\"4\">TAR ({title} rule)</th>");
    }
    out.push_str("<th rowspan=\"2\">Note</th></tr>\n<tr>");
    for _ in RULES {
        out.push_str("<th>TAR</th><th>achieved FAR</th><th>threshold</th><th>false accepts</th>");
    }
    out.push_str("</tr>\n</thead>\n<tbody>\n");
    for far in far_targets(&entries) {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", far_label(far));
        let mut notes: Vec<String> = Vec::new();
        for (rule, _) in RULES {
            let e = find_tar(&entries, far, rule);
            match e.and_then(|e| e.tar.map(|t| (e, t))) {
                Some((e, tar)) => {
                    let _ = write!(
                        out,
                        "<td class=\"num\">{}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                        pct(tar),
                        pct_ci(r, tar_ci(r, far, rule)),
                        opt(e.far, |x| format!("{x:.2e}")),
                        e.threshold.map_or_else(|| "+∞".to_string(), |x| format!("{x:.4}")),
                        e.false_accepts.map_or_else(|| DASH.to_string(), |x| x.to_string()),
                    );
                }
                None => {
                    let _ = write!(out, "<td class=\"num\">n/a</td><td class=\"num\">{DASH}</td><td class=\"num\">{DASH}</td><td class=\"num\">{DASH}</td>");
                }
            }
            if let Some(n) = e.and_then(|e| e.note.clone()) {
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
        }
        let notes: Vec<String> = notes.iter().map(|n| escape_html(n)).collect();
        let _ = writeln!(out, "<td>{}</td></tr>", notes.join("<br>"));
    }
    out.push_str("</tbody>\n</table>\n");
}

fn fold_values(r: &Value, key: &str) -> Vec<Option<f64>> {
    r.pointer(&format!("/metrics/accuracy/{key}"))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn fold_table(out: &mut String, r: &Value) {
    let acc = fold_values(r, "fold_accuracies");
    if acc.is_empty() {
        out.push_str("<p class=\"muted\">No per-fold accuracies in this results file.</p>\n");
        return;
    }
    let th = fold_values(r, "thresholds");
    let mode = text(r, "/metrics/accuracy/mode").unwrap_or_default();
    let th_title = if mode.contains("insightface") { "threshold (distance)" } else { "threshold (score)" };
    let _ =
        writeln!(out, "<table>\n<thead><tr><th>fold</th><th>accuracy</th><th>{th_title}</th></tr></thead>\n<tbody>");
    for (i, a) in acc.iter().enumerate() {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            i + 1,
            opt(*a, pct),
            opt(th.get(i).copied().flatten(), |x| format!("{x:.4}"))
        );
    }
    let _ = writeln!(
        out,
        "</tbody>\n<tfoot><tr><th scope=\"row\">mean</th><td class=\"num\">{}</td><td></td></tr></tfoot>\n</table>",
        escape_html(&accuracy_text(r))
    );
}

pub(super) fn files_table(out: &mut String, r: &Value) {
    let Some(files) = r.pointer("/benchmark/files").and_then(Value::as_array).filter(|f| !f.is_empty()) else {
        return;
    };
    out.push_str("<table>\n<thead><tr><th>role</th><th>path (in the data directory)</th><th>bytes</th><th>BLAKE3</th></tr></thead>\n<tbody>\n");
    for f in files {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td><code>{}</code></td></tr>",
            field(f, "/role"),
            field(f, "/path"),
            field(f, "/bytes"),
            field(f, "/blake3")
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn single_page(run: &RunData, name: &str, charts: &Charts) -> String {
    let r = &run.results;
    let mut out = String::new();
    let bench = text(r, "/benchmark/title").or_else(|| text(r, "/benchmark/name")).unwrap_or_default();
    page_start(&mut out, &format!("{name} — aifr-eval report"));
    let _ = writeln!(
        out,
        "<header><h1>{}</h1><p class=\"sub\">{} · mode {} · flip fusion {} · <code>{}</code></p></header>",
        escape_html(name),
        escape_html(&bench),
        field(r, "/protocol/mode"),
        field(r, "/protocol/flip_fusion"),
        escape_html(&run.dir.display().to_string())
    );
    out.push_str("<h2>Summary</h2>\n");
    if is_fgnet(r) {
        // No folds, no XNorm: drop rows that would only say "–".
        let protocol = format!(
            "{}; leave-one-image-out identification and all-pairs verification, flip fusion <b>{}</b>",
            field(r, "/protocol/name"),
            field(r, "/protocol/flip_fusion")
        );
        let rows: Vec<_> = summary_rows(r)
            .into_iter()
            .filter(|(k, _)| !k.contains("fold accuracy") && *k != "XNorm")
            .map(|(k, v)| if k == "Protocol" { (k, protocol.clone()) } else { (k, v) })
            .collect();
        kv_table(&mut out, &rows);
        identification_section(&mut out, r);
    } else if is_ijb(r) {
        let p = &r["protocol"]["pooling"];
        let protocol = format!(
            "{}; template pooling: flip <b>{}</b>, normalise images <b>{}</b>, detector-score weight <b>{}</b> <span class=\"muted\">({})</span>",
            field(r, "/protocol/name"),
            field(p, "/flip"),
            field(p, "/normalize_images"),
            field(p, "/detector_weight"),
            field(p, "/rule")
        );
        let counts = format!(
            "{} pairs ({} genuine, {} impostor); {} templates, {} medias, {} images",
            field(r, "/counts/pairs"),
            field(r, "/counts/genuine"),
            field(r, "/counts/impostor"),
            field(r, "/counts/templates"),
            field(r, "/counts/medias"),
            field(r, "/counts/images")
        );
        let rows: Vec<_> = summary_rows(r)
            .into_iter()
            .filter(|(k, _)| !k.contains("fold accuracy") && *k != "XNorm" && *k != "Bootstrap")
            .map(|(k, v)| match k {
                "Protocol" => (k, protocol.clone()),
                "Counts" => (k, counts.clone()),
                _ => (k, v),
            })
            .collect();
        kv_table(&mut out, &rows);
    } else {
        kv_table(&mut out, &summary_rows(r));
    }
    out.push_str("<h2>TAR at fixed FAR</h2>\n");
    tar_table(&mut out, r);
    out.push_str("<h2>Charts</h2>\n");
    for c in charts.iter_all() {
        figure(&mut out, c);
    }
    if is_ijb(r) {
        ijb_identification_section(&mut out, r);
    }
    age_gap_table(&mut out, r);
    manifest::sections(&mut out, r);
    if !is_fgnet(r) && !is_ijb(r) {
        out.push_str("<h2>Per-fold accuracy</h2>\n");
        fold_table(&mut out, r);
    }
    out.push_str("<h2>Benchmark files</h2>\n");
    files_table(&mut out, r);
    page_end(&mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Several runs

/// Paired bootstrap differences b − a (metric names `accuracy`, `auc`, `eer`, `tar@far=<target>`),
/// or why they are unavailable: the report still renders without them.
fn paired(a: &RunData, b: &RunData) -> std::result::Result<Vec<MetricDiff>, String> {
    paired_differences(a, b).map_err(|e| e.to_string())
}

/// Readable name of a paired-difference metric key.
fn metric_title(key: &str) -> String {
    match key {
        "accuracy" => "k-fold accuracy".into(),
        "auc" => "AUC".into(),
        "eer" => "EER".into(),
        _ => match key.strip_prefix("tar@far=") {
            Some(far) => format!("TAR@FAR={far} (strict)"),
            None => key.into(),
        },
    }
}

/// How a metric's values and differences are printed.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A rate: values in %, differences in percentage points.
    Rate,
    /// AUC: six decimals.
    Plain,
}

fn fmt_value(kind: Kind, x: f64) -> String {
    match kind {
        Kind::Rate => pct(x),
        Kind::Plain => format!("{x:.6}"),
    }
}

fn fmt_diff(kind: Kind, d: f64) -> String {
    match kind {
        Kind::Rate => format!("{:+.3} pp", 100.0 * d),
        Kind::Plain => format!("{d:+.6}"),
    }
}

/// A numeric comparison row.
struct MetricRow {
    label: String,
    /// Name in the paired differences.
    key: String,
    kind: Kind,
    /// Whether higher is better (for colouring intervals that exclude zero).
    higher_better: bool,
    values: Vec<Option<f64>>,
    /// Each run's own bootstrap interval.
    ci: Vec<Option<(f64, f64)>>,
}

fn metric_rows(runs: &[RunData]) -> Vec<MetricRow> {
    let mut rows = vec![
        MetricRow {
            label: "k-fold accuracy (mean)".into(),
            key: "accuracy".into(),
            kind: Kind::Rate,
            higher_better: true,
            values: runs.iter().map(|r| num(&r.results, "/metrics/accuracy/mean")).collect(),
            ci: runs.iter().map(|r| ci(&r.results, "accuracy")).collect(),
        },
        MetricRow {
            label: "AUC".into(),
            key: "auc".into(),
            kind: Kind::Plain,
            higher_better: true,
            values: runs.iter().map(|r| num(&r.results, "/metrics/roc/auc")).collect(),
            ci: runs.iter().map(|r| ci(&r.results, "auc")).collect(),
        },
        MetricRow {
            label: "EER".into(),
            key: "eer".into(),
            kind: Kind::Rate,
            higher_better: false,
            values: runs.iter().map(|r| num(&r.results, "/metrics/roc/eer/eer")).collect(),
            ci: runs.iter().map(|r| ci(&r.results, "eer")).collect(),
        },
    ];
    let entries: Vec<Vec<TarEntry>> = runs.iter().map(|r| tar_entries(&r.results)).collect();
    let mut fars: Vec<f64> = Vec::new();
    for f in entries.iter().flat_map(|e| far_targets(e)) {
        if !fars.iter().any(|&g| same_far(f, g)) {
            fars.push(f);
        }
    }
    for (rule, title) in RULES {
        for &far in &fars {
            let values: Vec<Option<f64>> = entries.iter().map(|e| find_tar(e, far, rule).and_then(|e| e.tar)).collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            rows.push(MetricRow {
                label: format!("TAR@FAR={} ({title})", far_label(far)),
                key: if rule == "strict" { format!("tar@far={far:e}") } else { String::new() },
                kind: Kind::Rate,
                higher_better: true,
                values,
                ci: runs.iter().map(|r| tar_ci(&r.results, far, rule)).collect(),
            });
        }
    }
    rows
}

fn multi_page(runs: &[RunData], names: &[String], charts: &Charts) -> String {
    let mut out = String::new();
    page_start(&mut out, &format!("Comparison of {} runs — aifr-eval report", runs.len()));
    let _ = writeln!(
        out,
        "<header><h1>Comparison of {} runs</h1><p class=\"sub\">Differences are against run 1 ({}).</p></header>",
        runs.len(),
        escape_html(&names[0])
    );

    out.push_str("<h2>Runs</h2>\n<table>\n<thead><tr><th>#</th><th>run</th><th>directory</th><th>benchmark</th><th>mode</th><th>flip fusion</th><th>pairs</th><th>embeddings fingerprint</th></tr></thead>\n<tbody>\n");
    for (i, (run, name)) in runs.iter().zip(names).enumerate() {
        let r = &run.results;
        let fp = text(r, "/embeddings/fingerprint")
            .map_or_else(|| DASH.to_string(), |f| escape_html(&f.chars().take(16).collect::<String>()));
        let _ = writeln!(
            out,
            "<tr><td class=\"num\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td><code>{fp}…</code></td></tr>",
            i + 1,
            escape_html(name),
            escape_html(&run.dir.display().to_string()),
            field(r, "/benchmark/name"),
            field(r, "/protocol/mode"),
            field(r, "/protocol/flip_fusion"),
            field(r, "/counts/pairs"),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    let benches: Vec<Option<String>> = runs.iter().map(|r| text(&r.results, "/benchmark/name")).collect();
    if benches.iter().any(|b| *b != benches[0]) {
        out.push_str("<p class=\"note\">The runs are on different benchmarks: their numbers are not directly comparable and no paired differences are computed.</p>\n");
    }

    // Paired differences against run 1, per later run.
    let diffs: Vec<std::result::Result<Vec<MetricDiff>, String>> =
        runs[1..].iter().map(|b| paired(&runs[0], b)).collect();

    out.push_str("<h2>Metrics side by side</h2>\n<table>\n<thead><tr><th>metric</th>");
    for (i, name) in names.iter().enumerate() {
        let _ = write!(out, "<th>{}. {}</th>", i + 1, escape_html(name));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let text_row = |out: &mut String, label: &str, cell: &dyn Fn(&Value) -> String| {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", escape_html(label));
        for run in runs {
            let _ = write!(out, "<td>{}</td>", cell(&run.results));
        }
        out.push_str("</tr>\n");
    };
    text_row(&mut out, "benchmark", &|r| field(r, "/benchmark/title"));
    text_row(&mut out, "mode / flip fusion", &|r| {
        format!("{} / {}", field(r, "/protocol/mode"), field(r, "/protocol/flip_fusion"))
    });
    text_row(&mut out, "pairs (genuine / impostor)", &|r| {
        format!("{} ({} / {})", field(r, "/counts/pairs"), field(r, "/counts/genuine"), field(r, "/counts/impostor"))
    });
    text_row(&mut out, "k-fold accuracy ± spread", &|r| escape_html(&accuracy_text(r)));
    for row in metric_rows(runs) {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", escape_html(&row.label));
        let base = row.values[0];
        for (j, v) in row.values.iter().enumerate() {
            let own_ci = row.ci[j];
            let mut cell = opt(*v, |x| fmt_value(row.kind, x));
            if let Some((lo, hi)) = own_ci {
                let _ = write!(
                    cell,
                    "<span class=\"ci\">CI [{}, {}]</span>",
                    fmt_value(row.kind, lo),
                    fmt_value(row.kind, hi)
                );
            }
            if j > 0 {
                let paired_diff = diffs[j - 1]
                    .as_ref()
                    .ok()
                    .and_then(|d| d.iter().find(|d| !row.key.is_empty() && d.metric == row.key));
                match (paired_diff, base, v) {
                    (Some(d), _, _) => {
                        let excludes_zero = d.lo > 0.0 || d.hi < 0.0;
                        let class = match (excludes_zero, (d.diff > 0.0) == row.higher_better) {
                            (false, _) => "delta",
                            (true, true) => "delta better",
                            (true, false) => "delta worse",
                        };
                        let _ = write!(
                            cell,
                            "<span class=\"{class}\">Δ {} [{}, {}]</span>",
                            fmt_diff(row.kind, d.diff),
                            fmt_diff(row.kind, d.lo),
                            fmt_diff(row.kind, d.hi)
                        );
                    }
                    (None, Some(a), Some(b)) => {
                        let _ = write!(cell, "<span class=\"delta\">Δ {}</span>", fmt_diff(row.kind, b - a));
                    }
                    _ => {}
                }
            }
            let _ = write!(out, "<td class=\"num\">{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out.push_str("<p class=\"muted\">CI: each run's own bootstrap interval. Δ: difference against run 1; with [lo, hi] it is the paired bootstrap interval of the difference (both runs resampled with the same identities), coloured when it excludes zero.</p>\n");

    out.push_str("<h2>Paired differences against run 1</h2>\n");
    for (j, d) in diffs.iter().enumerate() {
        let _ = writeln!(out, "<h3>{}. {} − 1. {}</h3>", j + 2, escape_html(&names[j + 1]), escape_html(&names[0]));
        match d {
            Ok(d) if !d.is_empty() => {
                out.push_str("<table>\n<thead><tr><th>metric</th><th>run 1</th><th>this run</th><th>difference</th><th>interval</th></tr></thead>\n<tbody>\n");
                for d in d {
                    let kind = if d.metric == "auc" { Kind::Plain } else { Kind::Rate };
                    let _ = writeln!(
                        out,
                        "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">[{}, {}]</td></tr>",
                        escape_html(&metric_title(&d.metric)),
                        fmt_value(kind, d.a),
                        fmt_value(kind, d.b),
                        fmt_diff(kind, d.diff),
                        fmt_diff(kind, d.lo),
                        fmt_diff(kind, d.hi)
                    );
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Ok(_) => out.push_str("<p class=\"muted\">No metrics to compare.</p>\n"),
            Err(why) => {
                let _ = writeln!(out, "<p class=\"note\">Not available: {}</p>", escape_html(why));
            }
        }
    }

    out.push_str("<h2>Charts</h2>\n");
    figure(&mut out, &charts.roc);
    figure(&mut out, &charts.det);
    for (i, c) in charts.scores.iter().enumerate() {
        let _ = writeln!(out, "<h3>{}. {}</h3>", i + 1, escape_html(&names[i]));
        figure(&mut out, c);
    }
    if let Some(c) = &charts.age_gap {
        figure(&mut out, c);
    }

    out.push_str("<h2>Per-fold accuracy</h2>\n<table>\n<thead><tr><th>fold</th>");
    for (i, name) in names.iter().enumerate() {
        let _ = write!(out, "<th>{}. {}</th>", i + 1, escape_html(name));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let folds: Vec<Vec<Option<f64>>> = runs.iter().map(|r| fold_values(&r.results, "fold_accuracies")).collect();
    for k in 0..folds.iter().map(Vec::len).max().unwrap_or(0) {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", k + 1);
        for f in &folds {
            let _ = write!(out, "<td class=\"num\">{}</td>", opt(f.get(k).copied().flatten(), pct));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n<tfoot><tr><th scope=\"row\">mean</th>");
    for run in runs {
        let _ = write!(out, "<td class=\"num\">{}</td>", escape_html(&accuracy_text(&run.results)));
    }
    out.push_str("</tr></tfoot>\n</table>\n");

    out.push_str("<h2>Run details</h2>\n");
    for (i, (run, name)) in runs.iter().zip(names).enumerate() {
        let _ = writeln!(out, "<details>\n<summary>{}. {}</summary>", i + 1, escape_html(name));
        kv_table(&mut out, &summary_rows(&run.results));
        tar_table(&mut out, &run.results);
        fold_table(&mut out, &run.results);
        files_table(&mut out, &run.results);
        out.push_str("</details>\n");
    }
    page_end(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape_html("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(escape_html("a & b \"c\""), "a &amp; b &quot;c&quot;");
        assert_eq!(escape_html("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn duplicate_directory_names_are_widened() {
        let run = |d: &str| RunData { dir: PathBuf::from(d), results: Value::Null, curves: None, pairs: None };
        let names = display_names(&[run("reports/a/lfw"), run("reports/b/lfw")]);
        assert_eq!(names, ["a/lfw", "b/lfw"]);
        let names = display_names(&[run("x/lfw"), run("x/lfw")]);
        assert_eq!(names, ["lfw #1", "lfw #2"]);
    }

    #[test]
    fn rejects_index_names_with_directories() {
        let run = RunData { dir: PathBuf::from("r"), results: Value::Null, curves: None, pairs: None };
        let dir = std::env::temp_dir();
        assert!(crate::report::write_report(std::slice::from_ref(&run), &dir, "../x.html").is_err());
        assert!(crate::report::write_report(&[], &dir, "index.html").is_err());
    }
}

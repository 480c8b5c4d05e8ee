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
use crate::metrics::age_gap::AgeGapBreakdown;
use crate::metrics::bootstrap::Interval;
use crate::metrics::identification::GroupRank1;
use crate::metrics::open_set::{self, FpirRule};
use crate::metrics::{Eer, FoldMode, TarAtFar, TarRule};
use crate::protocol::verification::BootstrapSummary;
use crate::run::dir::RunData;
use crate::run::results::{
    BenchmarkInfo, EmbeddingsInfo, FgnetResults, IjbResults, Results, Software, VerificationResults,
};
use crate::score::fusion::Fusion;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Escapes `&`, `<`, `>`, `"` and `'` so any string is safe in element text and quoted attributes.
mod differentials;
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
    let names = display_names(runs);
    let views = runs.iter().map(View::of).collect::<Result<Vec<_>>>()?;
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = out_dir.join(name);
        write_atomic(&path, bytes)?;
        written.push(path);
        Ok(())
    };

    let charts = build_charts(&views, &names);
    for c in charts.files() {
        if let Ok(img) = &c.image {
            put(&img.file, &img.png)?;
        }
    }
    let (md, tex) = summary::paper_table(runs);
    put("summary.md", md.as_bytes())?;
    put("summary.tex", tex.as_bytes())?;
    let page =
        if views.len() == 1 { single_page(&views[0], &names[0], &charts) } else { multi_page(&views, &names, &charts) };
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

/// A field as the page shows a results.json value: strings as they are, numbers as results.json
/// writes them, None for null.
pub(super) fn json_text<T: Serialize + ?Sized>(v: &T) -> Option<String> {
    match serde_json::to_value(v).ok()? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Escaped text of a field, or a dash.
pub(super) fn field<T: Serialize + ?Sized>(v: &T) -> String {
    json_text(v).map_or_else(|| DASH.to_string(), |s| escape_html(&s))
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

/// The protocol fields every kind on this page shows.
struct ProtocolView<'a> {
    name: &'a str,
    mode: &'a str,
    flip_fusion: Fusion,
    score: &'a str,
    accept_rule: &'a str,
}

/// What the verification page shows of one run, whatever its kind: FG-NET's all-pairs
/// verification and IJB's 1:1 results stand where a pair benchmark's numbers are, and what a kind
/// lacks (accuracy, folds, XNorm, intervals) is shown as absent.
struct View<'a> {
    run: &'a RunData,
    software: &'a Software,
    benchmark: &'a BenchmarkInfo,
    protocol: ProtocolView<'a>,
    embeddings: &'a EmbeddingsInfo,
    /// Pairs, genuine, impostor.
    counts: (usize, usize, usize),
    images: usize,
    auc: Option<f64>,
    eer: Option<&'a Eer>,
    tar: &'a [TarAtFar],
    age_gap: Option<&'a AgeGapBreakdown>,
}

/// The common fields of the three protocol records (distinct types with the same names).
macro_rules! protocol_view {
    ($p:expr) => {
        ProtocolView {
            name: &$p.name,
            mode: &$p.mode,
            flip_fusion: $p.flip_fusion,
            score: &$p.score,
            accept_rule: &$p.accept_rule,
        }
    };
}

impl<'a> View<'a> {
    fn of(run: &'a RunData) -> Result<Self> {
        let pairs = |v: &'a VerificationResults| View {
            run,
            software: &v.software,
            benchmark: &v.benchmark,
            protocol: protocol_view!(v.protocol),
            embeddings: &v.embeddings,
            counts: (v.counts.pairs, v.counts.genuine, v.counts.impostor),
            images: v.counts.images,
            auc: Some(v.metrics.roc.auc),
            eer: v.metrics.roc.eer.as_ref(),
            tar: &v.metrics.tar_at_far,
            age_gap: v.metrics.age_gap.as_ref(),
        };
        Ok(match &run.results {
            Results::Pairs(v) => pairs(v),
            Results::Manifest(m) => pairs(&m.verification),
            Results::Fgnet(r) => {
                let ver = r.metrics.verification.as_ref();
                let (g, i) = (r.counts.genuine_pairs, r.counts.impostor_pairs);
                View {
                    run,
                    software: &r.software,
                    benchmark: &r.benchmark,
                    protocol: protocol_view!(r.protocol),
                    embeddings: &r.embeddings,
                    counts: (g + i, g, i),
                    images: r.counts.images,
                    auc: ver.map(|v| v.auc),
                    eer: ver.and_then(|v| v.eer.as_ref()),
                    tar: ver.map_or(&[], |v| v.tar_at_far.as_slice()),
                    age_gap: ver.map(|v| &v.age_gap),
                }
            }
            Results::Ijb(r) => View {
                run,
                software: &r.software,
                benchmark: &r.benchmark,
                protocol: protocol_view!(r.protocol),
                embeddings: &r.embeddings,
                counts: (r.counts.pairs, r.counts.genuine, r.counts.impostor),
                images: r.counts.images,
                auc: Some(r.metrics.roc.auc),
                eer: r.metrics.roc.eer.as_ref(),
                tar: &r.metrics.tar_at_far,
                age_gap: None,
            },
            // `super::write_report` sends MegaFace runs to their own page.
            Results::Megaface(_) => {
                return Err(Error::Invalid(format!(
                    "{} is a MegaFace run: it has its own report page",
                    run.dir.display()
                )))
            }
        })
    }

    /// Accuracy, folds, XNorm and bootstrap intervals: pair and manifest runs only.
    fn pairs(&self) -> Option<&'a VerificationResults> {
        self.run.results.verification()
    }
}

/// A TAR@FAR entry's TAR, when the target was measurable.
fn tar_value(e: &TarAtFar) -> Option<f64> {
    e.tar.filter(|_| e.available)
}

/// FAR targets in first-seen order.
fn far_targets(entries: &[TarAtFar]) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for e in entries {
        if !out.iter().any(|&f| same_far(f, e.far_target)) {
            out.push(e.far_target);
        }
    }
    out
}

fn find_tar(entries: &[TarAtFar], far: f64, rule: TarRule) -> Option<&TarAtFar> {
    entries.iter().find(|e| e.rule == rule && same_far(e.far_target, far))
}

/// Bootstrap interval (lo, hi) of a metric, when the run has one.
fn ci(v: &View, metric: fn(&BootstrapSummary) -> &Interval) -> Option<(f64, f64)> {
    v.pairs().map(|p| metric(&p.metrics.bootstrap)).map(|i| (i.lo, i.hi))
}

fn tar_ci(v: &View, far: f64, rule: TarRule) -> Option<(f64, f64)> {
    let p = v.pairs()?;
    let e = p.metrics.bootstrap.tar_at_far.iter().find(|e| e.rule == rule && same_far(e.far_target, far))?;
    Some((e.interval.lo, e.interval.hi))
}

fn confidence(v: &View) -> f64 {
    v.run.results.bootstrap_spec().map_or(0.95, |s| s.confidence)
}

fn pct_ci(v: &View, iv: Option<(f64, f64)>) -> String {
    iv.map_or_else(String::new, |(lo, hi)| {
        format!(" <span class=\"ci\">{:.0}% CI [{}, {}]</span>", 100.0 * confidence(v), pct(lo), pct(hi))
    })
}

/// "97.850% ± 0.187 (SE)" as the reference tools print it.
fn accuracy_text(v: &View) -> String {
    let Some(acc) = v.pairs().map(|p| &p.metrics.accuracy) else {
        return DASH.into();
    };
    let (pm, label) = if acc.reported_spread == "std" { (acc.spread.std, "std") } else { (acc.spread.se, "SE") };
    format!("{} ± {:.3} ({label})", pct(acc.spread.mean), 100.0 * pm)
}

fn eer_text(v: &View) -> String {
    match v.eer {
        Some(e) => format!("{} at threshold {:.4}", pct(e.eer), e.threshold),
        None => DASH.into(),
    }
}

fn score_axis(v: &View) -> &'static str {
    if v.protocol.score.to_ascii_lowercase().contains("cosine") {
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
    /// A single pair or manifest run's differentials (shown in their own section).
    differentials: Vec<Chart>,
}

impl Charts {
    /// The charts of the "Charts" section.
    fn iter_all(&self) -> impl Iterator<Item = &Chart> {
        [&self.roc, &self.det].into_iter().chain(&self.scores).chain(&self.age_gap).chain(&self.open_set)
    }

    /// Every chart the page has, to be written beside it.
    fn files(&self) -> impl Iterator<Item = &Chart> {
        self.iter_all().chain(&self.differentials)
    }
}

/// (bin label, TAR, interval) rows of an age-gap breakdown.
fn age_gap_rows(a: &AgeGapBreakdown) -> Vec<AgeGapPoint> {
    a.bins
        .iter()
        .map(|b| {
            let tar = b.tar.map(|t| {
                let (lo, hi) = b.tar_interval.map_or((f64::NAN, f64::NAN), |iv| (iv.lo, iv.hi));
                (t, lo, hi)
            });
            (b.bin.label(), tar)
        })
        .collect()
}

fn age_gap_chart(runs: &[View], names: &[String]) -> Option<Chart> {
    let series: Vec<AgeGapSeries> = runs
        .iter()
        .zip(names)
        .filter_map(|(v, name)| Some(AgeGapSeries { label: name.clone(), bins: age_gap_rows(v.age_gap?) }))
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
fn age_gap_table(out: &mut String, v: &View) {
    let Some(a) = v.age_gap else {
        if let Some(why) = v.pairs().and_then(|p| p.metrics.age_gap_unavailable.as_deref()) {
            let _ = writeln!(out, "<h2>Age gap</h2>\n<p>Unavailable: {}</p>", escape_html(why));
        }
        return;
    };
    let _ = writeln!(
        out,
        "<h2>Age gap</h2>\n<p>Threshold {} chosen on all pairs at FAR {} (strict rule); {} pair(s) outside every bin.</p>",
        field(&a.threshold),
        field(&a.operating_far),
        field(&a.unbinned)
    );
    out.push_str("<table>\n<thead><tr><th>age gap (years)</th><th>genuine</th><th>impostor</th><th>TAR</th><th>95% CI</th><th>FAR</th><th>accuracy</th><th>mean genuine score</th></tr></thead>\n<tbody>\n");
    for b in &a.bins {
        let ci = match b.tar_interval {
            Some(iv) => format!("[{}, {}]", pct(iv.lo), pct(iv.hi)),
            None => DASH.into(),
        };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{ci}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            b.bin.label(),
            field(&b.n_genuine),
            field(&b.n_impostor),
            opt(b.tar, pct),
            opt(b.far, pct),
            opt(b.accuracy, pct),
            opt(b.mean_genuine_score, |x| format!("{x:.4}"))
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

pub(super) fn chart(alt: &str, caption: String, file: String, png: Result<Vec<u8>>) -> Chart {
    Chart { alt: alt.into(), caption, image: png.map(|png| Image { file, png }).map_err(|e| e.to_string()) }
}

fn build_charts(runs: &[View], names: &[String]) -> Charts {
    let series: Vec<RocSeries<'_>> = runs
        .iter()
        .zip(names)
        .filter_map(|(v, name)| {
            let curves = v.run.curves.as_ref()?;
            Some(RocSeries {
                label: name.clone(),
                roc: &curves.roc,
                n_impostor: v.counts.2 as u64,
                n_genuine: v.counts.1 as u64,
                points: v
                    .tar
                    .iter()
                    .filter(|e| e.rule == TarRule::Strict)
                    .filter_map(|e| Some((e.far?, tar_value(e)?)))
                    .filter(|p| p.0 > 0.0)
                    .collect(),
                eer: v.eer.map(|e| e.eer),
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
            let bench = &runs[0].benchmark.name;
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
        .map(|(i, (v, name))| {
            let file = if single { "scores.png".to_string() } else { format!("scores-{}.png", i + 1) };
            let png = match &v.run.curves {
                Some(c) => charts::score_histogram_chart(c, &format!("Score distributions — {name}"), score_axis(v)),
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
    let open_set = match &runs[0].run.results {
        Results::Ijb(r) if single => open_set_figure(runs[0].run, r, &names[0]),
        Results::Ijb(_) | Results::Pairs(_) | Results::Manifest(_) | Results::Fgnet(_) | Results::Megaface(_) => None,
    };
    let differentials = if single { differentials::charts(runs[0].run.results.differentials()) } else { Vec::new() };
    Charts { roc, det, scores, age_gap: age_gap_chart(runs, names), open_set, differentials }
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

fn bootstrap_text(v: &View) -> String {
    let (unit, clusters, spec, note) = match &v.run.results {
        Results::Pairs(r) => {
            let b = &r.metrics.bootstrap;
            (&b.unit, b.clusters, &b.spec, b.note.as_deref())
        }
        Results::Manifest(r) => {
            let b = &r.verification.metrics.bootstrap;
            (&b.unit, b.clusters, &b.spec, b.note.as_deref())
        }
        Results::Fgnet(r) => {
            let b = &r.metrics.bootstrap;
            (&b.unit, b.clusters, &b.spec, None)
        }
        Results::Megaface(r) => {
            let b = &r.metrics.bootstrap;
            (&b.unit, b.clusters, &b.spec, None)
        }
        Results::Ijb(_) => return "<span class=\"muted\">not in this results file</span>".into(),
    };
    let units = if unit == "identity" { "identities".to_string() } else { format!("{unit}s") };
    let mut s = format!(
        "{:.0}% percentile intervals, {} resamples of {} {}, seed {}",
        100.0 * confidence(v),
        field(&spec.resamples),
        field(&clusters),
        escape_html(&units),
        field(&spec.seed),
    );
    if let Some(note) = note {
        let _ = write!(s, "<br><span class=\"muted\">{}</span>", escape_html(note));
    }
    s
}

/// The TPIR/FPIR chart of an IJB run (from curves.json), when it has 1:N results.
fn open_set_figure(run: &RunData, r: &IjbResults, name: &str) -> Option<Chart> {
    let curves = run.curves.as_ref()?.open_set.as_ref()?;
    let galleries = &r.metrics.identification.as_ref()?.galleries;
    let points: Vec<Vec<(f64, f64)>> = galleries
        .iter()
        .map(|g| {
            g.tpir_at_fpir
                .iter()
                .filter(|e| e.rule == FpirRule::Strict)
                .filter_map(|e| Some((e.fpir?, e.tpir?)))
                .filter(|p| p.0 > 0.0)
                .collect()
        })
        .collect();
    Some(chart(
        "Open-set identification: TPIR against FPIR (log scale), one line per gallery",
        "TPIR (mate at rank 1 and accepted) against FPIR (non-mated probes whose best gallery score is accepted), strict rule, over every threshold; dots mark the TPIR@FPIR operating points.".into(),
        "tpir_fpir.png".into(),
        charts::open_set_chart(curves, &points, &format!("TPIR / FPIR — {name}")),
    ))
}

/// "rank-1 97.000% (97/100), …" of a CMC.
fn cmc_text(points: &[open_set::CmcPoint]) -> String {
    points
        .iter()
        .map(|p| format!("rank-{} {} ({}/{})", field(&p.rank), pct(p.rate), field(&p.hits), field(&p.probes)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The 1:N tables of an IJB run: per gallery TPIR@FPIR under both rules and CMC, the mean over
/// galleries, and the legacy merged-gallery numbers, labelled as such.
fn ijb_identification_section(out: &mut String, r: &IjbResults) {
    out.push_str("<h2>1:N open-set identification</h2>\n");
    let Some(id) = &r.metrics.identification else {
        let _ = writeln!(out, "<p class=\"muted\">Not evaluated: {}</p>", field(&r.metrics.identification_note));
        return;
    };
    let _ = writeln!(out, "<p>{}</p>", field(&r.protocol.open_set_rule));
    out.push_str("<table>\n<thead><tr><th rowspan=\"2\">gallery</th><th rowspan=\"2\">FPIR target</th><th colspan=\"3\">strict</th><th colspan=\"3\">compat=ijb_evals</th></tr>\n<tr><th>TPIR</th><th>achieved FPIR</th><th>threshold</th><th>TPIR</th><th>achieved FPIR</th><th>threshold</th></tr></thead>\n<tbody>\n");
    for g in &id.galleries {
        let mut targets: Vec<f64> = g.tpir_at_fpir.iter().map(|e| e.fpir_target).collect();
        targets.sort_by(f64::total_cmp);
        targets.dedup();
        for t in targets {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{} <span class=\"muted\">({} templates; {} mated, {} non-mated probes)</span></th><td class=\"num\">{}</td>",
                field(&g.name),
                field(&g.templates),
                field(&g.mated_probes),
                field(&g.nonmated_probes),
                far_label(t)
            );
            for rule in [FpirRule::Strict, FpirRule::IjbEvals] {
                let e = g.tpir_at_fpir.iter().find(|e| e.rule == rule && same_far(e.fpir_target, t));
                match e.filter(|e| e.available) {
                    Some(e) => {
                        let _ = write!(
                            out,
                            "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                            opt(e.tpir, pct),
                            opt(e.fpir, |x| format!("{x:.2e}")),
                            opt(e.threshold, |x| format!("{x:.4}"))
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
    let mean: Vec<String> = id
        .mean_tpir_at_fpir
        .iter()
        .filter(|e| e.rule == FpirRule::IjbEvals)
        .map(|e| format!("FPIR {}: {}", far_label(e.fpir_target), opt(e.tpir, pct)))
        .collect();
    let _ = writeln!(
        out,
        "<p>Mean TPIR over the galleries (compat=ijb_evals, as insightface prints it): {}</p>",
        escape_html(&mean.join("; "))
    );
    out.push_str("<table>\n<thead><tr><th>CMC</th><th>rank-k hit rate (ties count against the mate)</th></tr></thead>\n<tbody>\n");
    for g in &id.galleries {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{} (mated probes)</th><td>{}</td></tr>",
            field(&g.name),
            escape_html(&cmc_text(&g.cmc))
        );
    }
    let _ = writeln!(
        out,
        "<tr><th scope=\"row\">all galleries (hits / all probes)</th><td>{}</td></tr>",
        escape_html(&cmc_text(&id.cmc))
    );
    out.push_str("</tbody>\n</table>\n");
    let l = &id.legacy;
    let _ = writeln!(
        out,
        "<h3>Legacy merged-gallery numbers (not comparable)</h3>\n<p class=\"note\">{}</p>",
        field(&l.label)
    );
    if l.available {
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|p| {
                format!(
                    "'FAR' {}: TPR {} (k = {}, threshold {})",
                    field(&p.legacy_far),
                    opt(p.tpr, pct),
                    field(&p.k),
                    opt(p.threshold, |x| format!("{x:.4}"))
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<p>{} gallery templates, {} probes. CMC: {}.<br>{}</p>",
            field(&l.gallery_templates),
            field(&l.probes),
            escape_html(&cmc_text(&l.cmc)),
            escape_html(&pts.join("; "))
        );
    } else {
        let _ = writeln!(out, "<p class=\"muted\">Not available: {}</p>", field(&l.note));
    }
}

/// Rank-1 tables of an FG-NET run.
fn identification_section(out: &mut String, r: &FgnetResults) {
    let id = &r.metrics.identification;
    let ci = match id.rank1_interval {
        Some(iv) => format!(" <span class=\"ci\">95% CI [{}, {}] over subjects</span>", pct(iv.lo), pct(iv.hi)),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "<h2>Leave-one-image-out identification</h2>\n<p>Rank-1 <b>{}</b>{ci} — {} probes with a mate ({} of {} subjects' images; {} without a mate excluded). A tie between the best mate and the best impostor counts as a miss.</p>",
        opt(id.rank1, pct),
        field(&r.counts.probes),
        field(&r.counts.images),
        field(&r.counts.subjects),
        field(&r.counts.excluded)
    );
    gap_table(out, "probe age (years)", &id.by_age_group);
    gap_table(out, "age gap to the nearest mate (years)", &id.by_gap);
}

/// Rank-1 per age group or age-gap bin (FG-NET and manifest identification).
fn gap_table(out: &mut String, title: &str, rows: &[GroupRank1]) {
    let _ = writeln!(
        out,
        "<table>\n<thead><tr><th>{title}</th><th>probes</th><th>hits</th><th>rank-1</th></tr></thead>\n<tbody>"
    );
    for g in rows {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            g.group.label(),
            field(&g.probes),
            field(&g.hits),
            opt(g.rank1, pct)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn summary_rows(v: &View) -> Vec<(&'static str, String)> {
    let p = v.pairs();
    let counts = format!(
        "{} pairs ({} genuine, {} impostor), {} distinct images",
        field(&v.counts.0),
        field(&v.counts.1),
        field(&v.counts.2),
        field(&v.images)
    );
    let acc = format!(
        "{}<span class=\"ci\">std {}, SE {} (percentage points)</span>{}",
        escape_html(&accuracy_text(v)),
        opt(p.map(|p| p.metrics.accuracy.spread.std), |x| format!("{:.3}", 100.0 * x)),
        opt(p.map(|p| p.metrics.accuracy.spread.se), |x| format!("{:.3}", 100.0 * x)),
        pct_ci(v, ci(v, |b| &b.accuracy))
    );
    let auc = format!(
        "{}{}",
        opt(v.auc, |x| format!("{x:.6}")),
        ci(v, |b| &b.auc).map_or_else(String::new, |(lo, hi)| format!(
            " <span class=\"ci\">{:.0}% CI [{lo:.6}, {hi:.6}]</span>",
            100.0 * confidence(v)
        ))
    );
    let eer = format!("{}{}", escape_html(&eer_text(v)), pct_ci(v, ci(v, |b| &b.eer)));
    let e = v.embeddings;
    let embeddings = format!(
        "{} × {} {}, mirrored views: {}<br><code>{}</code>",
        field(&e.count),
        field(&e.dim),
        field(&e.dtype),
        if e.has_flip { "yes" } else { "no" },
        field(&e.fingerprint)
    );
    let b = v.benchmark;
    let benchmark =
        format!("{} <span class=\"muted\">({}, format {})</span>", field(&b.title), field(&b.name), field(&b.format));
    let protocol = format!(
        "{}; mode <b>{}</b>, fold mode {}, flip fusion <b>{}</b>, {} folds",
        field(v.protocol.name),
        field(v.protocol.mode),
        field(&p.map(|p| p.protocol.fold_mode)),
        field(&v.protocol.flip_fusion),
        field(&p.map(|p| p.protocol.folds))
    );
    let folds = p.map_or_else(|| "k".to_string(), |p| p.counts.folds.to_string());
    vec![
        ("Benchmark", benchmark),
        ("Protocol", protocol),
        ("Score", format!("{}; {}", field(v.protocol.score), field(v.protocol.accept_rule))),
        ("Counts", counts),
        (if folds == "10" { "10-fold accuracy" } else { "k-fold accuracy" }, acc),
        ("AUC", auc),
        ("EER", eer),
        ("XNorm", opt(p.map(|p| p.metrics.xnorm), |x| format!("{x:.4}"))),
        ("Bootstrap", bootstrap_text(v)),
        ("Embeddings", embeddings),
        (
            "Software",
            format!(
                "{} {} <span class=\"muted\">commit {}</span>",
                field(&v.software.name),
                field(&v.software.version),
                field(&v.software.commit)
            ),
        ),
    ]
}

const RULES: [(TarRule, &str); 2] = [(TarRule::Strict, "strict"), (TarRule::InsightfaceNearest, "insightface nearest")];

fn tar_table(out: &mut String, v: &View) {
    let entries = v.tar;
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
    for far in far_targets(entries) {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", far_label(far));
        let mut notes: Vec<String> = Vec::new();
        for (rule, _) in RULES {
            let e = find_tar(entries, far, rule);
            match e.and_then(|e| tar_value(e).map(|t| (e, t))) {
                Some((e, tar)) => {
                    let _ = write!(
                        out,
                        "<td class=\"num\">{}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                        pct(tar),
                        pct_ci(v, tar_ci(v, far, rule)),
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

/// Per-fold accuracies (pair and manifest runs; empty for the other kinds).
fn fold_accuracies<'a>(v: &View<'a>) -> &'a [f64] {
    v.pairs().map_or(&[], |p| p.metrics.accuracy.fold_accuracies.as_slice())
}

fn fold_table(out: &mut String, v: &View) {
    let (Some(p), false) = (v.pairs(), fold_accuracies(v).is_empty()) else {
        out.push_str("<p class=\"muted\">No per-fold accuracies in this results file.</p>\n");
        return;
    };
    let acc = &p.metrics.accuracy;
    let th_title = if acc.mode == FoldMode::Insightface { "threshold (distance)" } else { "threshold (score)" };
    let _ =
        writeln!(out, "<table>\n<thead><tr><th>fold</th><th>accuracy</th><th>{th_title}</th></tr></thead>\n<tbody>");
    for (i, a) in acc.fold_accuracies.iter().enumerate() {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            i + 1,
            pct(*a),
            opt(acc.thresholds.get(i).copied(), |x| format!("{x:.4}"))
        );
    }
    let _ = writeln!(
        out,
        "</tbody>\n<tfoot><tr><th scope=\"row\">mean</th><td class=\"num\">{}</td><td></td></tr></tfoot>\n</table>",
        escape_html(&accuracy_text(v))
    );
}

pub(super) fn files_table(out: &mut String, b: &BenchmarkInfo) {
    if b.files.is_empty() {
        return;
    }
    out.push_str("<table>\n<thead><tr><th>role</th><th>path (in the data directory)</th><th>bytes</th><th>BLAKE3</th></tr></thead>\n<tbody>\n");
    for f in &b.files {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td><code>{}</code></td></tr>",
            field(&f.role),
            field(&f.path),
            field(&f.bytes),
            field(&f.blake3)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn single_page(v: &View, name: &str, charts: &Charts) -> String {
    let run = v.run;
    let mut out = String::new();
    page_start(&mut out, &format!("{name} — aifr-eval report"));
    let _ = writeln!(
        out,
        "<header><h1>{}</h1><p class=\"sub\">{} · mode {} · flip fusion {} · <code>{}</code></p></header>",
        escape_html(name),
        escape_html(&v.benchmark.title),
        field(v.protocol.mode),
        field(&v.protocol.flip_fusion),
        escape_html(&run.dir.display().to_string())
    );
    out.push_str("<h2>Summary</h2>\n");
    match &run.results {
        Results::Fgnet(r) => {
            // No folds, no XNorm: drop rows that would only say "–".
            let protocol = format!(
                "{}; leave-one-image-out identification and all-pairs verification, flip fusion <b>{}</b>",
                field(&r.protocol.name),
                field(&r.protocol.flip_fusion)
            );
            let rows: Vec<_> = summary_rows(v)
                .into_iter()
                .filter(|(k, _)| !k.contains("fold accuracy") && *k != "XNorm")
                .map(|(k, v)| if k == "Protocol" { (k, protocol.clone()) } else { (k, v) })
                .collect();
            kv_table(&mut out, &rows);
            identification_section(&mut out, r);
        }
        Results::Ijb(r) => {
            let p = &r.protocol.pooling;
            let protocol = format!(
                "{}; template pooling: flip <b>{}</b>, normalise images <b>{}</b>, detector-score weight <b>{}</b> <span class=\"muted\">({})</span>",
                field(&r.protocol.name),
                field(&p.switches.flip),
                field(&p.switches.normalize_images),
                field(&p.switches.detector_weight),
                field(&p.rule)
            );
            let c = &r.counts;
            let counts = format!(
                "{} pairs ({} genuine, {} impostor); {} templates, {} medias, {} images",
                field(&c.pairs),
                field(&c.genuine),
                field(&c.impostor),
                field(&c.templates),
                field(&c.medias),
                field(&c.images)
            );
            let rows: Vec<_> = summary_rows(v)
                .into_iter()
                .filter(|(k, _)| !k.contains("fold accuracy") && *k != "XNorm" && *k != "Bootstrap")
                .map(|(k, v)| match k {
                    "Protocol" => (k, protocol.clone()),
                    "Counts" => (k, counts.clone()),
                    _ => (k, v),
                })
                .collect();
            kv_table(&mut out, &rows);
        }
        Results::Pairs(_) | Results::Manifest(_) | Results::Megaface(_) => kv_table(&mut out, &summary_rows(v)),
    }
    out.push_str("<h2>TAR at fixed FAR</h2>\n");
    tar_table(&mut out, v);
    out.push_str("<h2>Charts</h2>\n");
    for c in charts.iter_all() {
        figure(&mut out, c);
    }
    match &run.results {
        Results::Ijb(r) => ijb_identification_section(&mut out, r),
        Results::Pairs(_) | Results::Manifest(_) | Results::Fgnet(_) | Results::Megaface(_) => {}
    }
    age_gap_table(&mut out, v);
    if let Some(g) = v.pairs().and_then(|p| p.metrics.group_accuracy.as_ref()) {
        differentials::group_accuracy(&mut out, g);
    }
    differentials::section(&mut out, run.results.differentials(), &charts.differentials);
    match &run.results {
        Results::Pairs(_) => {}
        Results::Manifest(m) => manifest::sections(&mut out, m),
        Results::Fgnet(_) | Results::Ijb(_) | Results::Megaface(_) => {}
    }
    match &run.results {
        Results::Pairs(_) | Results::Manifest(_) => {
            out.push_str("<h2>Per-fold accuracy</h2>\n");
            fold_table(&mut out, v);
        }
        Results::Fgnet(_) | Results::Ijb(_) | Results::Megaface(_) => {}
    }
    out.push_str("<h2>Benchmark files</h2>\n");
    files_table(&mut out, v.benchmark);
    page_end(&mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Several runs

/// Paired bootstrap differences b − a (metric names `accuracy`, `auc`, `eer`, `tar@far=<target>`),
/// or why they are unavailable: the report still renders without them.
fn paired(a: &View, b: &View) -> std::result::Result<Vec<MetricDiff>, String> {
    paired_differences(a.run, b.run).map_err(|e| e.to_string())
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

fn metric_rows(runs: &[View]) -> Vec<MetricRow> {
    let mut rows = vec![
        MetricRow {
            label: "k-fold accuracy (mean)".into(),
            key: "accuracy".into(),
            kind: Kind::Rate,
            higher_better: true,
            values: runs.iter().map(|v| v.pairs().map(|p| p.metrics.accuracy.spread.mean)).collect(),
            ci: runs.iter().map(|v| ci(v, |b| &b.accuracy)).collect(),
        },
        MetricRow {
            label: "AUC".into(),
            key: "auc".into(),
            kind: Kind::Plain,
            higher_better: true,
            values: runs.iter().map(|v| v.auc).collect(),
            ci: runs.iter().map(|v| ci(v, |b| &b.auc)).collect(),
        },
        MetricRow {
            label: "EER".into(),
            key: "eer".into(),
            kind: Kind::Rate,
            higher_better: false,
            values: runs.iter().map(|v| v.eer.map(|e| e.eer)).collect(),
            ci: runs.iter().map(|v| ci(v, |b| &b.eer)).collect(),
        },
    ];
    let mut fars: Vec<f64> = Vec::new();
    for f in runs.iter().flat_map(|v| far_targets(v.tar)) {
        if !fars.iter().any(|&g| same_far(f, g)) {
            fars.push(f);
        }
    }
    for (rule, title) in RULES {
        for &far in &fars {
            let values: Vec<Option<f64>> =
                runs.iter().map(|v| find_tar(v.tar, far, rule).and_then(tar_value)).collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            rows.push(MetricRow {
                label: format!("TAR@FAR={} ({title})", far_label(far)),
                key: if rule == TarRule::Strict { format!("tar@far={far:e}") } else { String::new() },
                kind: Kind::Rate,
                higher_better: true,
                values,
                ci: runs.iter().map(|v| tar_ci(v, far, rule)).collect(),
            });
        }
    }
    rows
}

fn multi_page(runs: &[View], names: &[String], charts: &Charts) -> String {
    let mut out = String::new();
    page_start(&mut out, &format!("Comparison of {} runs — aifr-eval report", runs.len()));
    let _ = writeln!(
        out,
        "<header><h1>Comparison of {} runs</h1><p class=\"sub\">Differences are against run 1 ({}).</p></header>",
        runs.len(),
        escape_html(&names[0])
    );

    out.push_str("<h2>Runs</h2>\n<table>\n<thead><tr><th>#</th><th>run</th><th>directory</th><th>benchmark</th><th>mode</th><th>flip fusion</th><th>pairs</th><th>embeddings fingerprint</th></tr></thead>\n<tbody>\n");
    for (i, (v, name)) in runs.iter().zip(names).enumerate() {
        let fp = escape_html(&v.embeddings.fingerprint.chars().take(16).collect::<String>());
        let _ = writeln!(
            out,
            "<tr><td class=\"num\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td><code>{fp}…</code></td></tr>",
            i + 1,
            escape_html(name),
            escape_html(&v.run.dir.display().to_string()),
            field(&v.benchmark.name),
            field(v.protocol.mode),
            field(&v.protocol.flip_fusion),
            field(&v.counts.0),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    let benches: Vec<&str> = runs.iter().map(|v| v.benchmark.name.as_str()).collect();
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
    let text_row = |out: &mut String, label: &str, cell: &dyn Fn(&View) -> String| {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", escape_html(label));
        for v in runs {
            let _ = write!(out, "<td>{}</td>", cell(v));
        }
        out.push_str("</tr>\n");
    };
    text_row(&mut out, "benchmark", &|v| field(&v.benchmark.title));
    text_row(&mut out, "mode / flip fusion", &|v| {
        format!("{} / {}", field(v.protocol.mode), field(&v.protocol.flip_fusion))
    });
    text_row(&mut out, "pairs (genuine / impostor)", &|v| {
        format!("{} ({} / {})", field(&v.counts.0), field(&v.counts.1), field(&v.counts.2))
    });
    text_row(&mut out, "k-fold accuracy ± spread", &|v| escape_html(&accuracy_text(v)));
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
    let folds: Vec<&[f64]> = runs.iter().map(fold_accuracies).collect();
    for k in 0..folds.iter().map(|f| f.len()).max().unwrap_or(0) {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", k + 1);
        for f in &folds {
            let _ = write!(out, "<td class=\"num\">{}</td>", opt(f.get(k).copied(), pct));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n<tfoot><tr><th scope=\"row\">mean</th>");
    for v in runs {
        let _ = write!(out, "<td class=\"num\">{}</td>", escape_html(&accuracy_text(v)));
    }
    out.push_str("</tr></tfoot>\n</table>\n");

    out.push_str("<h2>Run details</h2>\n");
    for (i, (v, name)) in runs.iter().zip(names).enumerate() {
        let _ = writeln!(out, "<details>\n<summary>{}. {}</summary>", i + 1, escape_html(name));
        kv_table(&mut out, &summary_rows(v));
        tar_table(&mut out, v);
        fold_table(&mut out, v);
        files_table(&mut out, v.benchmark);
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
        let run = |d: &str| crate::run::dir::test_run(d, |_| {});
        let names = display_names(&[run("reports/a/lfw"), run("reports/b/lfw")]);
        assert_eq!(names, ["a/lfw", "b/lfw"]);
        let names = display_names(&[run("x/lfw"), run("x/lfw")]);
        assert_eq!(names, ["lfw #1", "lfw #2"]);
    }

    #[test]
    fn rejects_index_names_with_directories() {
        let run = crate::run::dir::test_run("r", |_| {});
        let dir = std::env::temp_dir();
        assert!(crate::report::write_report(std::slice::from_ref(&run), &dir, "../x.html").is_err());
        assert!(crate::report::write_report(&[], &dir, "index.html").is_err());
    }
}

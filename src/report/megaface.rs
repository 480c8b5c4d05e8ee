//! MegaFace output: the CMC curves file, the terminal table and the HTML page (CMC per distractor
//! size, rank-1 against the number of distractors, TAR@FAR under both rules, FGNet age gaps).

use super::charts::{cmc_chart, rank1_vs_distractors_chart, CmcSeries};
use super::html::{
    chart, display_names, escape_html, field, figure, files_table, kv_table, opt, page_end, page_start, pct, Chart,
};
use super::summary;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::metrics::TarRule;
use crate::protocol::megaface::SizeResult;
use crate::run::dir::RunData;
use crate::run::results::{MegafaceResults, Results};
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn opt_pct(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |v| format!("{:.3}%", 100.0 * v))
}

pub fn terminal_table(r: &MegafaceResults) -> String {
    let c = &r.counts;
    let mut s = String::new();
    let _ = writeln!(s, "{} — {}", r.benchmark.name, r.benchmark.title);
    let _ = writeln!(
        s,
        "  {} probe images of {} identities: {} searches (ordered pairs), {} genuine pairs; cleaning {}, flip fusion {}",
        c.images,
        c.identities,
        c.searches,
        c.genuine_pairs,
        r.protocol.cleaning.name(),
        r.protocol.flip_fusion.name()
    );
    let fars: Vec<f64> = r.protocol.far_targets.clone();
    let mut head = format!("  {:>11} {:>9} {:>9} {:>9}", "distractors", "rank-1", "rank-5", "rank-10");
    for f in &fars {
        let _ = write!(head, " {:>14}", format!("TAR@{f:e}"));
    }
    let _ = writeln!(s, "{head}   (TAR: strict / compat=devkit)");
    for z in &r.metrics.sizes {
        let at = |k: u64| z.cmc.iter().find(|p| p.rank == k).map(|p| p.identification_rate);
        let mut line =
            format!("  {:>11} {:>9} {:>9} {:>9}", z.label, opt_pct(z.rank1), opt_pct(at(5)), opt_pct(at(10)));
        for &f in &fars {
            let cell = |rule: TarRule| {
                z.tar_at_far
                    .iter()
                    .find(|t| t.rule == rule && t.far_target == f)
                    .and_then(|t| t.tar)
                    .map_or("n/a".to_string(), |v| format!("{:.2}", 100.0 * v))
            };
            let _ =
                write!(line, " {:>14}", format!("{}/{}", cell(TarRule::Strict), cell(TarRule::DevkitPositivesFirst)));
        }
        let _ = writeln!(s, "{line}");
    }
    if let Some(z) = r.metrics.sizes.last() {
        if let Some(age) = &z.age {
            for (title, groups) in [("age gap", &age.by_gap), ("query age", &age.by_query_age)] {
                let cells: Vec<String> =
                    groups.iter().map(|g| format!("{} {} ({})", g.group.label(), opt_pct(g.rank1), g.probes)).collect();
                let _ = writeln!(s, "  rank-1 @{} by {title:<9} {}", z.label, cells.join("  "));
            }
        }
    }
    s
}

fn tar_cell(size: &SizeResult, far: f64, rule: TarRule) -> String {
    let found = size.tar_at_far.iter().find(|t| t.rule == rule && (t.far_target - far).abs() <= 1e-12 * far);
    match found {
        Some(t) if t.available => {
            let tar = opt(t.tar, pct);
            let fa = t.false_accepts.map_or(String::new(), |n| format!("{n} false accepts"));
            format!("{tar}<span class=\"ci\">{fa}</span>")
        }
        Some(_) => "unavailable<span class=\"ci\">FAR below 1/N</span>".into(),
        None => "–".into(),
    }
}

fn size_table(out: &mut String, r: &MegafaceResults) {
    out.push_str("<h3>Identification</h3>\n<table>\n<thead><tr><th>distractors</th><th>rank-1 (95% CI)</th><th>rank-5</th><th>rank-10</th><th>worst rank</th></tr></thead>\n<tbody>\n");
    for z in &r.metrics.sizes {
        let at = |k: u64| z.cmc.iter().find(|p| p.rank == k).map(|p| p.identification_rate);
        let ci = match z.rank1_interval {
            Some(iv) => format!("<span class=\"ci\">[{}, {}]</span>", pct(iv.lo), pct(iv.hi)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}{ci}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            field(&z.label),
            opt(z.rank1, pct),
            opt(at(5), pct),
            opt(at(10), pct),
            field(&z.worst_rank)
        );
    }
    out.push_str("</tbody>\n</table>\n<h3>Verification: TAR at fixed FAR</h3>\n<table>\n<thead><tr><th>distractors</th><th>rule (negatives)</th>");
    for f in &r.protocol.far_targets {
        let _ = write!(out, "<th>FAR={f:e}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for z in &r.metrics.sizes {
        for (rule, title, n) in [
            (TarRule::Strict, "strict", z.impostors_strict),
            (TarRule::DevkitPositivesFirst, "compat=devkit", z.impostors_devkit),
        ] {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td>{title}<span class=\"ci\">{} impostor scores</span></td>",
                field(&z.label),
                field(&n)
            );
            for &f in &r.protocol.far_targets {
                let _ = write!(out, "<td class=\"num\">{}</td>", tar_cell(z, f, rule));
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</tbody>\n</table>\n");
}

fn age_tables(out: &mut String, r: &MegafaceResults) {
    let Some((z, age)) = r.metrics.sizes.iter().rev().find_map(|z| Some((z, z.age.as_ref()?))) else {
        return;
    };
    let _ = writeln!(
        out,
        "<h2>Rank-1 by age (FGNet, {} distractors)</h2>\n<p>Ages from the FG-NET file names (<code>001A02.JPG</code> = subject 1 at age 2). Each search is one ordered pair (query, mate).</p>",
        field(&z.label)
    );
    for (title, groups) in
        [("Age gap between query and mate (years)", &age.by_gap), ("Age of the query (years)", &age.by_query_age)]
    {
        let _ = writeln!(out, "<h3>{title}</h3>\n<table>\n<thead><tr><th>group</th><th>searches</th><th>rank-1</th></tr></thead>\n<tbody>");
        for g in groups {
            let _ = writeln!(
                out,
                "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                g.group.label(),
                field(&g.probes),
                opt(g.rank1, pct)
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
}

/// The MegaFace results of a run (`super::write_report` sends only MegaFace runs here).
fn megaface(run: &RunData) -> Result<&MegafaceResults> {
    match &run.results {
        Results::Megaface(r) => Ok(r),
        Results::Pairs(_) | Results::Manifest(_) | Results::Fgnet(_) | Results::Ijb(_) => Err(Error::Invalid(format!(
            "{} is a {} run, not a MegaFace run",
            run.dir.display(),
            run.results.kind_label()
        ))),
    }
}

fn charts(runs: &[RunData], results: &[&MegafaceResults], names: &[String]) -> Result<Vec<Chart>> {
    let mut out = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let Some(curves) = &run.cmc else {
            continue;
        };
        let series: Vec<CmcSeries> = curves
            .curves
            .iter()
            .map(|c| CmcSeries {
                label: format!("{} distractors", crate::dataset::megaface::size_label(c.distractors)),
                points: c.points.iter().map(|&(k, v)| (k as f64, v)).collect(),
            })
            .collect();
        let title = if runs.len() == 1 { "CMC".to_string() } else { format!("CMC — {}", names[i]) };
        out.push(chart(
            "CMC curves",
            format!(
                "{title}: identification rate against rank, one curve per distractor set (exact at the plotted steps)."
            ),
            format!("cmc-{}.png", i + 1),
            cmc_chart(&series, &title),
        ));
    }
    let series: Vec<CmcSeries> = results
        .iter()
        .zip(names)
        .map(|(r, name)| CmcSeries {
            label: name.clone(),
            points: r.metrics.sizes.iter().filter_map(|z| Some((f64::from(z.distractors), z.rank1?))).collect(),
        })
        .collect();
    out.push(chart(
        "rank-1 against distractors",
        "Rank-1 identification rate against the number of distractors.".into(),
        "rank1-distractors.png".into(),
        rank1_vs_distractors_chart(&series, "Rank-1 vs distractors"),
    ));
    Ok(out)
}

/// The report of one or several MegaFace runs.
pub fn write_report(runs: &[RunData], out_dir: &Path, index_name: &str) -> Result<Vec<PathBuf>> {
    let results = runs.iter().map(megaface).collect::<Result<Vec<_>>>()?;
    let names = display_names(runs);
    let charts = charts(runs, &results, &names)?;
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = out_dir.join(name);
        write_atomic(&path, bytes)?;
        written.push(path);
        Ok(())
    };
    for c in &charts {
        if let Ok(img) = &c.image {
            put(&img.file, &img.png)?;
        }
    }
    let (md, tex) = summary::paper_table(runs);
    put("summary.md", md.as_bytes())?;
    put("summary.tex", tex.as_bytes())?;
    let mut page = String::new();
    let title = if runs.len() == 1 { names[0].clone() } else { format!("{} MegaFace runs", runs.len()) };
    page_start(&mut page, &title);
    let _ = writeln!(page, "<header><h1>{}</h1></header>", escape_html(&title));
    for (r, name) in results.iter().zip(&names) {
        if runs.len() > 1 {
            let _ = writeln!(page, "<h2>{}</h2>", escape_html(name));
        }
        let rows = [
            ("Benchmark", format!("{} — {}", field(&r.benchmark.name), field(&r.benchmark.title))),
            ("Probe set", field(&r.protocol.probe_set)),
            (
                "Probes",
                format!(
                    "{} images of {} identities; {} searches (ordered same-identity pairs); {} genuine pairs",
                    field(&r.counts.images),
                    field(&r.counts.identities),
                    field(&r.counts.searches),
                    field(&r.counts.genuine_pairs)
                ),
            ),
            ("Cleaning", format!("{} ({} probe images replaced)", field(&r.protocol.cleaning), field(&r.counts.cleaned))),
            ("Flip fusion", field(&r.protocol.flip_fusion)),
            ("Score", field(&r.protocol.score)),
            ("Rank rule", field(&r.protocol.rank_rule)),
            (
                "Verification",
                format!(
                    "positives: same-identity probe pairs; negatives: all probe × distractor scores (strict) or those of the first {} probes (compat=devkit, positives first among ties)",
                    field(&r.protocol.devkit_probes)
                ),
            ),
            ("Embeddings", format!("probes <code>{}</code>; distractors <code>{}</code>", field(&r.embeddings.probes.fingerprint), field(&r.embeddings.distractors.fingerprint))),
        ];
        kv_table(&mut page, &rows);
        page.push_str("<h2>Identification and verification per distractor set</h2>\n");
        size_table(&mut page, r);
        age_tables(&mut page, r);
        page.push_str("<h2>Benchmark files</h2>\n");
        files_table(&mut page, &r.benchmark);
    }
    page.push_str("<h2>Charts</h2>\n");
    for c in &charts {
        figure(&mut page, c);
    }
    page_end(&mut page);
    put(index_name, page.as_bytes())?;
    Ok(written)
}

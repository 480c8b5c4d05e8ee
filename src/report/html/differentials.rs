//! The demographic-differentials section of a pair or manifest run (docs/protocols.md §11): per
//! attribute, charts of each group's FNMR and FMR at one global threshold with their intervals,
//! each group's impostor score tail, and the tables at every FMR target.

use super::{chart, escape_html, field, figure, opt, pct, Chart, DASH};
use crate::metrics::differentials::{Differentials, DifferentialsAt, CROSS_GROUP};
use crate::report::charts::{self, AgeGapSeries, CategoryAxes, TailSeries};
use std::fmt::Write;

/// The target the charts show: the highest measurable one (the most errors to compare).
fn chart_target(d: &Differentials) -> Option<&DifferentialsAt> {
    d.at.iter().rfind(|a| a.available && a.summary.is_some())
}

/// Three charts per attribute (`fnmr-<i>.png`, `fmr-<i>.png`, `tails-<i>.png`, i from 1).
pub(super) fn charts(all: &[Differentials]) -> Vec<Chart> {
    let mut out = Vec::new();
    for (i, d) in all.iter().enumerate() {
        let n = i + 1;
        if let Some(at) = chart_target(d) {
            let t = at.threshold.unwrap_or(f64::NAN);
            for (file, rate, what) in [("fnmr", true, "FNMR"), ("fmr", false, "FMR")] {
                let bins = at
                    .groups
                    .iter()
                    .map(|g| {
                        let (value, iv) = if rate { (g.fnmr, g.fnmr_interval) } else { (g.fmr, g.fmr_interval) };
                        let point = value.map(|v| iv.map_or((v, f64::NAN, f64::NAN), |iv| (v, iv.lo, iv.hi)));
                        (g.group.clone(), point)
                    })
                    .collect::<Vec<_>>();
                let top = bins
                    .iter()
                    .filter_map(|b| b.1)
                    .map(|(v, _, hi)| if hi.is_finite() { hi } else { v })
                    .fold(0.0, f64::max);
                let series = [AgeGapSeries { label: format!("{what} at threshold {t:.4}"), bins }];
                let axes = CategoryAxes {
                    x_desc: &d.attribute,
                    y_desc: if rate { "FNMR (genuine pairs rejected)" } else { "FMR (impostor pairs accepted)" },
                    y_max: if top > 0.0 { (top * 1.15).min(1.0) } else { 0.01 },
                    note: "vertical bars: 95% bootstrap interval over identities",
                };
                let title =
                    format!("{what} by {} at one threshold (FMR {:e} on all pairs)", d.attribute, at.far_target);
                out.push(chart(
                    &format!("{what} of each {} at one global threshold", d.attribute),
                    format!(
                        "{what} of each {} at the one threshold {t:.4} that the strict rule gives for FMR {:e} on all pairs; a group without {} pairs is not drawn.",
                        d.attribute,
                        at.far_target,
                        if rate { "genuine" } else { "impostor" }
                    ),
                    format!("{file}-{n}.png"),
                    charts::category_chart(&series, &title, &axes),
                ));
            }
        }
        let tails: Vec<TailSeries> = d
            .impostor_tails
            .iter()
            .filter(|t| !t.points.is_empty())
            .map(|t| TailSeries {
                label: t.group.clone(),
                points: t.points.iter().map(|p| (p.fmr, p.threshold)).collect(),
            })
            .collect();
        let global: Vec<(f64, f64)> = d.at.iter().filter_map(|a| Some((a.far_target, a.threshold?))).collect();
        out.push(chart(
            &format!("Impostor score tail of each {}", d.attribute),
            format!(
                "For each {}, the score that a fraction FMR of its own impostor pairs reach (the strict rule on the group's impostors); crosses are the global thresholds. A group whose curve lies above the crosses is falsely matched more often than the target at the global threshold.",
                d.attribute
            ),
            format!("tails-{n}.png"),
            charts::impostor_tail_chart(&tails, &global, &format!("Impostor score tails by {}", d.attribute)),
        ));
    }
    out
}

fn ci(iv: Option<crate::metrics::bootstrap::Interval>) -> String {
    iv.map_or_else(String::new, |iv| format!("<span class=\"ci\">[{}, {}]</span>", pct(iv.lo), pct(iv.hi)))
}

fn num(x: Option<f64>, digits: usize) -> String {
    opt(x, |v| format!("{v:.digits$}"))
}

/// The section: the charts (already written by the caller), then one table per target.
pub(super) fn section(out: &mut String, all: &[Differentials], charts: &[Chart]) {
    if all.is_empty() {
        return;
    }
    out.push_str("<h2>Demographic differentials</h2>\n<p>Error rates of each group of people at <b>one global threshold</b> per FMR target (strict rule on all pairs), as a deployment would run it; the per-group threshold is shown for contrast only. A pair belongs to a group when both its images do; pairs across groups are reported apart. FDR = 1 − (α·max FMR difference + (1 − α)·max FNMR difference), 1 = no discrepancy; GARBE = α·Gini(FMR) + (1 − α)·Gini(FNMR), 0 = equal rates (docs/protocols.md §11).</p>\n");
    let mut charts = charts.iter();
    for d in all {
        let reference =
            d.reference.as_deref().map_or_else(String::new, |r| format!(", reference group <b>{}</b>", escape_html(r)));
        let _ = writeln!(
            out,
            "<h3>By {}</h3>\n<p>{} groups{reference}; FDR α = {}, GARBE α = {}; {} pair(s) with an image in no group.</p>",
            escape_html(&d.attribute),
            field(&d.groups.len()),
            field(&d.fdr_alpha),
            field(&d.garbe_alpha),
            field(&d.ungrouped_pairs)
        );
        let n_charts = if chart_target(d).is_some() { 3 } else { 1 };
        for c in charts.by_ref().take(n_charts) {
            figure(out, c);
        }
        for at in &d.at {
            table(out, d, at);
        }
    }
}

fn table(out: &mut String, d: &Differentials, at: &DifferentialsAt) {
    let (Some(t), Some(s)) = (at.threshold, &at.summary) else {
        let _ = writeln!(
            out,
            "<p>FMR {}: unavailable ({}).</p>",
            field(&at.far_target),
            escape_html(at.note.as_deref().unwrap_or("not measurable"))
        );
        return;
    };
    let with_ref = d.reference.is_some();
    let _ = writeln!(
        out,
        "<p>FMR target {}: threshold <b>{t:.6}</b> (FMR achieved on all pairs {}). FNMR max/min {} · FMR max/min {} · FDR <b>{}</b> {} · GARBE <b>{}</b> {}</p>",
        field(&at.far_target),
        opt(at.fmr, pct),
        num(s.fnmr.max_min_ratio, 2),
        num(s.fmr.max_min_ratio, 2),
        num(s.fdr, 4),
        s.fdr_interval.map_or_else(String::new, |iv| format!("<span class=\"ci\">[{:.4}, {:.4}]</span>", iv.lo, iv.hi)),
        num(s.garbe, 4),
        s.garbe_interval.map_or_else(String::new, |iv| format!("<span class=\"ci\">[{:.4}, {:.4}]</span>", iv.lo, iv.hi)),
    );
    let ratio_heads = if with_ref { "<th>FNMR / ref</th><th>FMR / ref</th>" } else { "" };
    let _ = writeln!(
        out,
        "<table>\n<thead><tr><th>{}</th><th>genuine</th><th>false non-matches</th><th>FNMR (95% CI)</th><th>impostor</th><th>false matches</th><th>FMR (95% CI)</th><th>own threshold</th>{ratio_heads}</tr></thead>\n<tbody>",
        escape_html(&d.attribute)
    );
    for g in &at.groups {
        let ratios = if with_ref {
            format!(
                "<td class=\"num\">{}</td><td class=\"num\">{}</td>",
                num(g.fnmr_ratio_to_reference, 2),
                num(g.fmr_ratio_to_reference, 2)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}{}</td><td class=\"num\">{}</td>{ratios}</tr>",
            escape_html(&g.group),
            field(&g.n_genuine),
            field(&g.false_non_matches),
            opt(g.fnmr, pct),
            ci(g.fnmr_interval),
            field(&g.n_impostor),
            field(&g.false_matches),
            opt(g.fmr, pct),
            ci(g.fmr_interval),
            num(g.own_threshold, 4)
        );
    }
    if let Some(c) = &at.cross_group {
        let blank = if with_ref { "<td></td><td></td>" } else { "" };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{CROSS_GROUP}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}{}</td><td class=\"num\">{DASH}</td>{blank}</tr>",
            field(&c.n_genuine),
            field(&c.false_non_matches),
            opt(c.fnmr, pct),
            field(&c.n_impostor),
            field(&c.false_matches),
            opt(c.fmr, pct),
            ci(c.fmr_interval)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Each group's own k-fold accuracy (RFW's subsets), with the mean and std over the groups.
pub(super) fn group_accuracy(out: &mut String, g: &crate::protocol::verification::GroupAccuracy) {
    let _ = writeln!(
        out,
        "<h2>Accuracy by {}</h2>\n<p>Each {} evaluated as its own benchmark (its pairs, its folds, its k-fold thresholds), as the RFW papers print it; mean {} and standard deviation {} over the {} groups. These per-group thresholds differ: the differentials below use one threshold for all.</p>",
        escape_html(&g.attribute),
        escape_html(&g.attribute),
        pct(g.over_groups.mean),
        pct(g.over_groups.std),
        field(&g.groups.len())
    );
    out.push_str("<table>\n<thead><tr><th>group</th><th>pairs</th><th>accuracy (mean of folds)</th><th>std over folds</th></tr></thead>\n<tbody>\n");
    for x in &g.groups {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape_html(&x.group),
            field(&x.pairs),
            pct(x.spread.mean),
            pct(x.spread.std)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

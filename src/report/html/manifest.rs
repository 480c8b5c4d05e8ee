//! Report sections of a manifest run (`aifr-eval run --manifest`): closed-set and
//! leave-one-image-out identification, and every result by `group` and `--stratify` column.

use super::{escape_html, field, gap_table, opt, pct};
use serde_json::Value;
use std::fmt::Write;

fn rank1_text(v: &Value, unit: &str) -> String {
    let ci = match (v["rank1_interval"]["lo"].as_f64(), v["rank1_interval"]["hi"].as_f64()) {
        (Some(l), Some(h)) => format!(" <span class=\"ci\">95% CI [{}, {}] over {unit}</span>", pct(l), pct(h)),
        _ => String::new(),
    };
    format!("<b>{}</b>{ci}", opt(v["rank1"].as_f64(), pct))
}

/// Nothing for other runs.
pub(super) fn sections(out: &mut String, r: &Value) {
    let id = &r["identification"];
    if id.is_object() {
        out.push_str("<h2>Identification</h2>\n");
        let _ = writeln!(
            out,
            "<p>Closed set, gallery = the <b>{}</b> image of each of {} identities, {} probes: rank-1 {}. A tie between the best mate and the best impostor counts as a miss.</p>",
            escape_html(id["split"]["gallery"].as_str().unwrap_or("?")),
            field(id, "/split/gallery_images"),
            field(id, "/gallery_rank1/probes"),
            rank1_text(&id["gallery_rank1"], "identities")
        );
        gap_table(out, "age gap probe–gallery (years)", &id["gallery_rank1"]["by_gap"]);
        if id["leave_one_out"].is_object() {
            let _ = writeln!(
                out,
                "<p>Leave-one-image-out over the whole collection, {} probes with a mate: rank-1 {}.</p>",
                field(id, "/leave_one_out/probes"),
                rank1_text(&id["leave_one_out"], "identities")
            );
            gap_table(out, "age gap to the nearest mate (years)", &id["leave_one_out"]["by_gap"]);
        }
        if let Some(note) = id["note"].as_str() {
            let _ = writeln!(out, "<p class=\"muted\">{}</p>", escape_html(note));
        }
    }
    let Some(strata) = r["strata"].as_array() else { return };
    for st in strata {
        let _ = writeln!(
            out,
            "<h2>By {}</h2>\n<p>TAR, FAR and accuracy at score {} (strict rule at FAR {} on all pairs); k-fold accuracy at each fold's threshold. A pair belongs to a value when both its images do, else to (mixed); a probe to its own image's value.</p>",
            escape_html(st["column"].as_str().unwrap_or("?")),
            opt(st["threshold"].as_f64(), |x| format!("{x:.4}")),
            opt(st["operating_far"].as_f64(), |x| format!("{x:e}"))
        );
        out.push_str("<table>\n<thead><tr><th>value</th><th>images</th><th>genuine</th><th>impostor</th><th>TAR</th><th>TAR 95% CI</th><th>FAR</th><th>accuracy</th><th>k-fold accuracy</th><th>gallery rank-1</th><th>LOO rank-1</th></tr></thead>\n<tbody>\n");
        for x in st["strata"].as_array().into_iter().flatten() {
            let ci = match (x["tar_interval"]["lo"].as_f64(), x["tar_interval"]["hi"].as_f64()) {
                (Some(l), Some(h)) => format!("[{}, {}]", pct(l), pct(h)),
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{ci}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape_html(x["value"].as_str().unwrap_or("?")),
                field(x, "/images"),
                field(x, "/n_genuine"),
                field(x, "/n_impostor"),
                opt(x["tar"].as_f64(), pct),
                opt(x["far"].as_f64(), pct),
                opt(x["accuracy"].as_f64(), pct),
                opt(x["kfold_accuracy"].as_f64(), pct),
                opt(x["gallery_rank1"]["rank1"].as_f64(), pct),
                opt(x["leave_one_out_rank1"]["rank1"].as_f64(), pct)
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
}

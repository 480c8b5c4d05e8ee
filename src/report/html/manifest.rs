//! Report sections of a manifest run (`aifr-eval run --manifest`): closed-set and
//! leave-one-image-out identification, and every result by `group` and `--stratify` column.

use super::{escape_html, field, gap_table, opt, pct};
use crate::metrics::bootstrap::Interval;
use crate::run::results::ManifestResults;
use std::fmt::Write;

fn rank1_text(rank1: Option<f64>, interval: Option<Interval>, unit: &str) -> String {
    let ci = match interval {
        Some(iv) => format!(" <span class=\"ci\">95% CI [{}, {}] over {unit}</span>", pct(iv.lo), pct(iv.hi)),
        None => String::new(),
    };
    format!("<b>{}</b>{ci}", opt(rank1, pct))
}

pub(super) fn sections(out: &mut String, r: &ManifestResults) {
    let id = &r.identification;
    out.push_str("<h2>Identification</h2>\n");
    let g = &id.gallery_rank1;
    let _ = writeln!(
        out,
        "<p>Closed set, gallery = the <b>{}</b> image of each of {} identities, {} probes: rank-1 {}. A tie between the best mate and the best impostor counts as a miss.</p>",
        escape_html(&id.split.gallery),
        field(&id.split.gallery_images),
        field(&g.probes),
        rank1_text(g.rank1, g.rank1_interval, "identities")
    );
    if let Some(by_gap) = &g.by_gap {
        gap_table(out, "age gap probe–gallery (years)", by_gap);
    }
    if let Some(loo) = &id.leave_one_out {
        let _ = writeln!(
            out,
            "<p>Leave-one-image-out over the whole collection, {} probes with a mate: rank-1 {}.</p>",
            field(&loo.probes),
            rank1_text(loo.rank1, loo.rank1_interval, "identities")
        );
        if let Some(by_gap) = &loo.by_gap {
            gap_table(out, "age gap to the nearest mate (years)", by_gap);
        }
    }
    if let Some(note) = &id.note {
        let _ = writeln!(out, "<p class=\"muted\">{}</p>", escape_html(note));
    }
    for st in &r.strata {
        let _ = writeln!(
            out,
            "<h2>By {}</h2>\n<p>TAR, FAR and accuracy at score {:.4} (strict rule at FAR {:e} on all pairs); k-fold accuracy at each fold's threshold. A pair belongs to a value when both its images do, else to (mixed); a probe to its own image's value.</p>",
            escape_html(&st.column),
            st.threshold,
            st.operating_far
        );
        out.push_str("<table>\n<thead><tr><th>value</th><th>images</th><th>genuine</th><th>impostor</th><th>TAR</th><th>TAR 95% CI</th><th>FAR</th><th>accuracy</th><th>k-fold accuracy</th><th>gallery rank-1</th><th>LOO rank-1</th></tr></thead>\n<tbody>\n");
        for x in &st.strata {
            let ci = match x.tar_interval {
                Some(iv) => format!("[{}, {}]", pct(iv.lo), pct(iv.hi)),
                None => "–".into(),
            };
            let _ = writeln!(
                out,
                "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{ci}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape_html(&x.value),
                field(&x.images),
                field(&x.n_genuine),
                field(&x.n_impostor),
                opt(x.tar, pct),
                opt(x.far, pct),
                opt(x.accuracy, pct),
                opt(x.kfold_accuracy, pct),
                opt(x.gallery_rank1.rank1, pct),
                opt(x.leave_one_out_rank1.as_ref().and_then(|c| c.rank1), pct)
            );
        }
        out.push_str("</tbody>\n</table>\n");
        for (what, spread) in [
            ("gallery rank-1", st.rank1_miss_spread.as_ref()),
            ("leave-one-image-out rank-1", st.leave_one_out_miss_spread.as_ref()),
        ] {
            if let Some(m) = spread {
                let _ = writeln!(
                    out,
                    "<p>Miss rate of the {what} (1 − rank-1) over {} values: highest {} ({}), lowest {} ({}), max/min {}, Gini {} (docs/protocols.md §11.6).</p>",
                    field(&m.groups),
                    opt(m.max, pct),
                    escape_html(m.max_group.as_deref().unwrap_or("–")),
                    opt(m.min, pct),
                    escape_html(m.min_group.as_deref().unwrap_or("–")),
                    opt(m.max_min_ratio, |x| format!("{x:.2}")),
                    opt(m.gini, |x| format!("{x:.4}"))
                );
            }
        }
    }
}

//! A compact human-readable summary of a verification result.

use crate::metrics::age_gap::AgeGapBreakdown;
use crate::metrics::{TarAtFar, TarRule};
use crate::run::results::{FgnetResults, IjbResults, VerificationResults};
use std::fmt::Write;

fn pct(x: f64) -> String {
    format!("{:.3}%", 100.0 * x)
}

pub fn verification_table(r: &VerificationResults) -> String {
    let m = &r.metrics;
    let c = &r.counts;
    let mut s = String::new();
    let _ = writeln!(s, "{} — {}", r.benchmark.name, r.benchmark.title);
    let _ = writeln!(
        s,
        "  {} pairs ({} genuine, {} impostor), {} images, {} folds; mode {}, flip fusion {}",
        c.pairs,
        c.genuine,
        c.impostor,
        c.images,
        c.folds,
        r.protocol.mode,
        r.protocol.flip_fusion.name()
    );
    let a = &m.accuracy;
    let (pm, label) = if a.reported_spread == "std" { (a.spread.std, "std") } else { (a.spread.se, "SE") };
    let _ = writeln!(
        s,
        "  {}-fold accuracy  {} ± {:.3} ({label})   [std {:.3}, SE {:.3}]",
        c.folds,
        pct(a.spread.mean),
        100.0 * pm,
        100.0 * a.spread.std,
        100.0 * a.spread.se
    );
    let b = &m.bootstrap;
    let _ = writeln!(
        s,
        "  {:.0}% bootstrap CI over {} {}: accuracy [{}, {}]   AUC [{:.6}, {:.6}]",
        100.0 * b.spec.confidence,
        b.clusters,
        if b.unit == "identity" { "identities" } else { "pairs" },
        pct(b.accuracy.lo),
        pct(b.accuracy.hi),
        b.auc.lo,
        b.auc.hi
    );
    let eer = m.roc.eer.map(|e| format!("{} at score {:.4}", pct(e.eer), e.threshold)).unwrap_or_else(|| "n/a".into());
    let _ = writeln!(s, "  AUC {:.6}   EER {eer}   XNorm {:.4}", m.roc.auc, m.xnorm);
    tar_lines(&mut s, &m.tar_at_far, &r.protocol.far_targets, c.impostor);
    if let Some(g) = &m.age_gap {
        age_gap_lines(&mut s, g);
    }
    if let Some(why) = &m.age_gap_unavailable {
        let _ = writeln!(s, "  age gap   unavailable: {why}");
    }
    if let Some(g) = &m.group_accuracy {
        group_accuracy_lines(&mut s, g);
    }
    for d in &m.differentials {
        differentials_lines(&mut s, d);
    }
    s
}

fn opt_pct(x: Option<f64>) -> String {
    x.map(pct).unwrap_or_else(|| "n/a".into())
}

fn opt_num(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "n/a".into())
}

/// Each group's own k-fold accuracy, then mean and std over the groups (RFW's table).
fn group_accuracy_lines(s: &mut String, g: &crate::protocol::verification::GroupAccuracy) {
    let cells: Vec<String> = g.groups.iter().map(|x| format!("{} {}", x.group, pct(x.spread.mean))).collect();
    let _ = writeln!(s, "  by {}: {}", g.attribute, cells.join("   "));
    let _ = writeln!(
        s,
        "  by {}: mean {} ± {:.3} (std over {} groups)",
        g.attribute,
        pct(g.over_groups.mean),
        100.0 * g.over_groups.std,
        g.groups.len()
    );
}

/// Per group FMR/FNMR at each global threshold, cross-group FMR and the summary measures.
pub fn differentials_lines(s: &mut String, d: &crate::metrics::differentials::Differentials) {
    let reference = d.reference.as_deref().map(|r| format!(", reference {r}")).unwrap_or_default();
    let _ = writeln!(
        s,
        "  differentials by {} ({} groups{reference}; FDR α={}, GARBE α={})",
        d.attribute,
        d.groups.len(),
        d.fdr_alpha,
        d.garbe_alpha
    );
    for at in &d.at {
        let (Some(t), Some(summary)) = (at.threshold, &at.summary) else {
            let why = at.note.as_deref().unwrap_or("not measurable");
            let _ = writeln!(s, "    FMR {:e}: n/a ({why})", at.far_target);
            continue;
        };
        let _ = writeln!(s, "    FMR {:e}: threshold {t:.4}", at.far_target);
        let _ = writeln!(
            s,
            "      {:<14} {:>9} {:>22} {:>9} {:>22} {:>10}",
            "group", "genuine", "FNMR", "impostor", "FMR", "own t"
        );
        for g in &at.groups {
            let _ = writeln!(
                s,
                "      {:<14} {:>9} {:>22} {:>9} {:>22} {:>10}",
                crate::io::excerpt(&g.group),
                g.n_genuine,
                format!("{} ({})", opt_pct(g.fnmr), g.false_non_matches),
                g.n_impostor,
                format!("{} ({})", opt_pct(g.fmr), g.false_matches),
                opt_num(g.own_threshold, 4)
            );
        }
        if let Some(c) = at.cross_group.as_ref().filter(|c| c.n_genuine + c.n_impostor > 0) {
            let _ = writeln!(
                s,
                "      {:<14} {:>9} {:>22} {:>9} {:>22}",
                crate::metrics::differentials::CROSS_GROUP,
                c.n_genuine,
                format!("{} ({})", opt_pct(c.fnmr), c.false_non_matches),
                c.n_impostor,
                format!("{} ({})", opt_pct(c.fmr), c.false_matches)
            );
        }
        let _ = writeln!(
            s,
            "      max/min FNMR {}  FMR {}   FDR {}   GARBE {}",
            opt_num(summary.fnmr.max_min_ratio, 2),
            opt_num(summary.fmr.max_min_ratio, 2),
            opt_num(summary.fdr, 4),
            opt_num(summary.garbe, 4)
        );
    }
}

/// TAR@FAR under both rules, one line per target.
fn tar_lines(s: &mut String, tar_at_far: &[TarAtFar], far_targets: &[f64], n_impostor: usize) {
    let _ = writeln!(s, "  {:<9} {:<40} TAR (insightface nearest)", "FAR", "TAR (strict)");
    for far in far_targets {
        let cell = |rule: TarRule| -> String {
            let Some(t) = tar_at_far.iter().find(|t| t.rule == rule && t.far_target == *far) else {
                return String::new();
            };
            match (t.tar, t.far, t.false_accepts) {
                (Some(tar), Some(f), Some(fa)) => {
                    let th = t.threshold.map(|x| format!("{x:.4}")).unwrap_or_else(|| "+inf".into());
                    format!("{} (FAR {f:.2e}, {fa} FA, t={th})", pct(tar))
                }
                _ => format!("n/a (< 1/{n_impostor})"),
            }
        };
        let _ = writeln!(
            s,
            "  {:<9} {:<40} {}",
            format!("{far:e}"),
            cell(TarRule::Strict),
            cell(TarRule::InsightfaceNearest)
        );
    }
}

/// Summary of an IJB-B/C run: 1:1 TAR table, then 1:N per gallery.
pub fn ijb_table(r: &IjbResults) -> String {
    use crate::metrics::open_set::FpirRule;
    let (c, m) = (&r.counts, &r.metrics);
    let mut s = String::new();
    let _ = writeln!(s, "{} — {}", r.benchmark.name, r.benchmark.title);
    let p = &r.protocol.pooling.switches;
    let _ = writeln!(
        s,
        "  {} images, {} templates, {} medias; {} pairs ({} genuine, {} impostor); pooling: flip {}, normalise images {}, detector weight {}",
        c.images, c.templates, c.medias, c.pairs, c.genuine, c.impostor, p.flip, p.normalize_images, p.detector_weight
    );
    let eer = m.roc.eer.map(|e| format!("{} at score {:.4}", pct(e.eer), e.threshold)).unwrap_or_else(|| "n/a".into());
    let _ = writeln!(s, "  1:1  AUC {:.6}   EER {eer}", m.roc.auc);
    tar_lines(&mut s, &m.tar_at_far, &r.protocol.far_targets, c.impostor);
    let Some(id) = &m.identification else {
        let _ = writeln!(s, "  1:N  not evaluated: {}", m.identification_note.as_deref().unwrap_or("no 1:N lists"));
        return s;
    };
    let _ = writeln!(
        s,
        "  1:N  {:<10} {:<7} {:<34} {:<34} CMC rank-1/5/10",
        "gallery", "FPIR", "TPIR (strict)", "TPIR (ijb_evals)"
    );
    for g in &id.galleries {
        for (i, &t) in r.protocol.fpir_targets.iter().enumerate() {
            let cell = |rule: FpirRule| -> String {
                match g.tpir_at_fpir.iter().find(|x| x.rule == rule && x.fpir_target == t) {
                    Some(x) if x.available => format!(
                        "{} ({} FA, t={:.4})",
                        x.tpir.map(pct).unwrap_or_default(),
                        x.false_alarms.unwrap_or(0),
                        x.threshold.unwrap_or(f64::NAN)
                    ),
                    _ => "n/a".into(),
                }
            };
            let cmc =
                if i == 0 { g.cmc.iter().map(|p| pct(p.rate)).collect::<Vec<_>>().join(" / ") } else { String::new() };
            let name = if i == 0 { format!("{} ({})", g.name, g.templates) } else { String::new() };
            let _ = writeln!(
                s,
                "       {:<10} {:<7} {:<34} {:<34} {cmc}",
                name,
                format!("{t:e}"),
                cell(FpirRule::Strict),
                cell(FpirRule::IjbEvals)
            );
        }
    }
    let mean: Vec<String> = id
        .mean_tpir_at_fpir
        .iter()
        .filter(|x| x.rule == FpirRule::IjbEvals)
        .map(|x| format!("{:e}: {}", x.fpir_target, x.tpir.map(pct).unwrap_or_else(|| "n/a".into())))
        .collect();
    let _ = writeln!(s, "       mean TPIR (ijb_evals)  {}", mean.join("  "));
    let cmc: Vec<String> = id.cmc.iter().map(|p| format!("rank-{} {}", p.rank, pct(p.rate))).collect();
    let _ = writeln!(s, "       CMC over all {} probes  {}", c.probes.unwrap_or(0), cmc.join("  "));
    let l = &id.legacy;
    if l.available {
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|p| format!("{}: {}", p.legacy_far, p.tpr.map(pct).unwrap_or_else(|| "n/a".into())))
            .collect();
        let ranks: Vec<String> = l.cmc.iter().map(|p| format!("rank-{} {}", p.rank, pct(p.rate))).collect();
        let _ = writeln!(
            s,
            "  legacy ijb_1n.py (merged gallery, 'FAR' per probe, not comparable): {}; {}",
            ranks.join(" "),
            pts.join("  ")
        );
    } else {
        let _ = writeln!(s, "  legacy ijb_1n.py: not available ({})", l.note.as_deref().unwrap_or(""));
    }
    s
}

fn age_gap_lines(s: &mut String, g: &AgeGapBreakdown) {
    let _ = writeln!(
        s,
        "  age gap   TAR at score {:.4} (FAR {:e} on all pairs)   genuine/impostor pairs",
        g.threshold, g.operating_far
    );
    for b in &g.bins {
        let ci = b.tar_interval.map(|i| format!("[{}, {}]", pct(i.lo), pct(i.hi))).unwrap_or_default();
        let tar = b.tar.map(pct).unwrap_or_else(|| "n/a".into());
        let _ = writeln!(s, "  {:<9} {:<9} {:<22} {}/{}", b.bin.label(), tar, ci, b.n_genuine, b.n_impostor);
    }
}

/// Summary of an FG-NET run.
pub fn fgnet_table(r: &FgnetResults) -> String {
    let (c, m) = (&r.counts, &r.metrics);
    let mut s = String::new();
    let _ = writeln!(s, "{} — {}", r.benchmark.name, r.benchmark.title);
    let _ = writeln!(
        s,
        "  {} images of {} subjects; {} probes ({} without a mate excluded); flip fusion {}",
        c.images,
        c.subjects,
        c.probes,
        c.excluded,
        r.protocol.flip_fusion.name()
    );
    let id = &m.identification;
    let ci =
        id.rank1_interval.map(|i| format!("  95% CI [{}, {}] over subjects", pct(i.lo), pct(i.hi))).unwrap_or_default();
    let _ = writeln!(s, "  leave-one-image-out rank-1  {}{ci}", id.rank1.map(pct).unwrap_or_else(|| "n/a".into()));
    for (title, groups) in [("probe age", &id.by_age_group), ("gap to mate", &id.by_gap)] {
        let cells: Vec<String> = groups
            .iter()
            .map(|g| format!("{} {} ({})", g.group.label(), g.rank1.map(pct).unwrap_or_else(|| "n/a".into()), g.probes))
            .collect();
        let _ = writeln!(s, "  rank-1 by {title:<12} {}", cells.join("  "));
    }
    let Some(v) = &m.verification else {
        let _ = writeln!(
            s,
            "  ({}: all-pairs verification is not defined, a pair of two subjects has no single model)",
            m.models
        );
        return s;
    };
    let eer = v.eer.map(|e| pct(e.eer)).unwrap_or_else(|| "n/a".into());
    let _ = writeln!(
        s,
        "  all-pairs verification ({} genuine, {} impostor): AUC {:.6}  EER {eer}",
        c.genuine_pairs, c.impostor_pairs, v.auc
    );
    for t in v.tar_at_far.iter().filter(|t| t.rule == TarRule::Strict && t.available) {
        let _ = writeln!(s, "    TAR@FAR={:e} (strict)  {}", t.far_target, t.tar.map(pct).unwrap_or_default());
    }
    age_gap_lines(&mut s, &v.age_gap);
    if let Some(d) = &v.differentials {
        differentials_lines(&mut s, d);
    }
    s
}

/// The identification and stratified lines of a manifest run (after its verification table).
pub fn manifest_lines(r: &crate::run::results::ManifestResults) -> String {
    let mut s = String::new();
    let id = &r.identification;
    let g = &id.gallery_rank1;
    let ci = |iv: Option<crate::metrics::bootstrap::Interval>| {
        iv.map(|i| format!("  95% CI [{}, {}] over identities", pct(i.lo), pct(i.hi))).unwrap_or_default()
    };
    let _ = writeln!(
        s,
        "  closed-set rank-1 (gallery = {} image of each of {} identities, {} probes)  {}{}",
        id.split.gallery,
        id.split.gallery_images,
        g.probes,
        opt_pct(g.rank1),
        ci(g.rank1_interval)
    );
    if let Some(l) = &id.leave_one_out {
        let _ = writeln!(
            s,
            "  leave-one-image-out rank-1 ({} probes with a mate)  {}{}",
            l.probes,
            opt_pct(l.rank1),
            ci(l.rank1_interval)
        );
    }
    if let Some(note) = &id.note {
        let _ = writeln!(s, "  ({note})");
    }
    for (title, groups) in [("gallery rank-1 by gap", g.by_gap.as_ref())] {
        if let Some(groups) = groups {
            let cells: Vec<String> =
                groups.iter().map(|x| format!("{} {} ({})", x.group.label(), opt_pct(x.rank1), x.probes)).collect();
            let _ = writeln!(s, "  {title}  {}", cells.join("  "));
        }
    }
    for st in &r.strata {
        let _ = writeln!(
            s,
            "  by {:<10} TAR/FAR at score {:.4} (FAR {:e} on all pairs), k-fold accuracy, rank-1",
            st.column, st.threshold, st.operating_far
        );
        let _ = writeln!(
            s,
            "    {:<16} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
            "value", "images", "gen/imp", "TAR", "FAR", "k-fold", "gallery", "LOO"
        );
        for x in &st.strata {
            let _ = writeln!(
                s,
                "    {:<16} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
                x.value,
                x.images,
                format!("{}/{}", x.n_genuine, x.n_impostor),
                opt_pct(x.tar),
                opt_pct(x.far),
                opt_pct(x.kfold_accuracy),
                opt_pct(x.gallery_rank1.rank1),
                x.leave_one_out_rank1.as_ref().map_or("n/a".into(), |l| opt_pct(l.rank1))
            );
        }
        for (what, spread) in
            [("gallery", st.rank1_miss_spread.as_ref()), ("LOO", st.leave_one_out_miss_spread.as_ref())]
        {
            if let Some(m) = spread {
                let _ = writeln!(
                    s,
                    "    rank-1 miss rate ({what}) over {} values: max {} ({}), min {} ({}), max/min {}, Gini {}",
                    m.groups,
                    opt_pct(m.max),
                    m.max_group.as_deref().unwrap_or("–"),
                    opt_pct(m.min),
                    m.min_group.as_deref().unwrap_or("–"),
                    opt_num(m.max_min_ratio, 2),
                    opt_num(m.gini, 4)
                );
            }
        }
    }
    s
}

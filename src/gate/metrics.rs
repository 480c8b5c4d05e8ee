//! Which numbers the gate compares, for every run kind, read off the typed run model. Each kind
//! is one arm of an exhaustive `match`: a new kind does not compile until it says what it gates.
//!
//! Metric keys (also the keys of gate.toml's `[metrics."…"]` tables, docs/gate.md):
//! `[RULE:]FAMILY[=TARGET][@SCOPE]`, e.g. `accuracy`, `tar@far=1e-4`, `nearest:tar@far=1e-4`,
//! `tpir@fpir=1e-2@G1`, `ijb_evals:tpir@fpir=1e-2@mean`, `rank1@1m`, `rank1@age=0-9`,
//! `stratum_tar@camera=indoor`, and the differentials `fnmr@far=1e-3@subset=African`,
//! `fmr@far=1e-3@age_band=elderly`, `fdr@far=1e-3@subset`, `garbe@far=1e-3@subset`. Without a rule
//! prefix a TAR/TPIR is the strict rule's.

use crate::metrics::open_set::{FpirRule, TpirAtFpir};
use crate::metrics::{TarAtFar, TarRule};
use crate::protocol::outcomes::group_label;
use crate::protocol::verification::{RocSummary, VerificationMetrics};
use crate::run::results::Results;

/// A metric's value in one run, or why there is none (a reason to skip it).
pub(super) type Reading = std::result::Result<f64, String>;

/// One gated number of one run.
pub(super) struct Gated {
    pub key: String,
    pub higher_is_better: bool,
    pub value: Reading,
}

/// Metric families a gate.toml table may name.
pub(super) const FAMILIES: [&str; 11] = [
    "accuracy",
    "auc",
    "eer",
    "tar@far",
    "tpir@fpir",
    "rank1",
    "stratum_tar",
    "fnmr@far",
    "fmr@far",
    "fdr@far",
    "garbe@far",
];

/// Families with a target (`FAMILY=TARGET`).
const TARGETED: [&str; 6] = ["tar@far", "tpir@fpir", "fnmr@far", "fmr@far", "fdr@far", "garbe@far"];

/// A metric key taken apart.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Key<'a> {
    pub rule: Option<&'a str>,
    pub family: &'a str,
    pub target: Option<f64>,
    pub scope: Option<&'a str>,
}

impl<'a> Key<'a> {
    /// Parses a key; `None` when its family is unknown or its target is not a number in (0, 1].
    pub fn parse(key: &'a str) -> Option<Self> {
        let (rule, rest) = match key.split_once(':') {
            Some((r, rest)) if !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                (Some(r), rest)
            }
            _ => (None, key),
        };
        for family in TARGETED {
            if let Some(after) = rest.strip_prefix(family) {
                return match after.strip_prefix('=') {
                    Some(t) => {
                        let (target, scope) = t.split_once('@').map_or((t, None), |(t, s)| (t, Some(s)));
                        let target: f64 = target.trim().parse().ok()?;
                        (target > 0.0 && target <= 1.0).then_some(Key {
                            rule,
                            family,
                            target: Some(target),
                            scope: scope.filter(|s| !s.is_empty()),
                        })
                    }
                    None if after.is_empty() => Some(Key { rule, family, target: None, scope: None }),
                    None => None,
                };
            }
        }
        let (family, scope) = rest.split_once('@').map_or((rest, None), |(f, s)| (f, Some(s)));
        let family = FAMILIES.iter().find(|f| **f == family)?;
        Some(Key { rule, family, target: None, scope: scope.filter(|s| !s.is_empty()) })
    }
}

/// Every number the gate compares in `r`, in report order.
pub(super) fn gated(r: &Results) -> Vec<Gated> {
    let mut out = Vec::new();
    match r {
        Results::Pairs(v) => verification(&mut out, &v.metrics),
        Results::Manifest(m) => {
            verification(&mut out, &m.verification.metrics);
            let id = &m.identification;
            push(&mut out, "rank1@gallery".into(), true, opt(id.gallery_rank1.rank1, "no gallery probes"));
            match &id.leave_one_out {
                Some(l) => push(&mut out, "rank1@leave_one_out".into(), true, opt(l.rank1, "no probes with a mate")),
                None => push(&mut out, "rank1@leave_one_out".into(), true, Err("not evaluated".into())),
            }
            for s in &m.strata {
                for st in &s.strata {
                    let scope = format!("{}={}", s.column, st.value);
                    push(
                        &mut out,
                        format!("stratum_tar@{scope}"),
                        true,
                        opt(st.tar, "no genuine pairs in the stratum"),
                    );
                    push(
                        &mut out,
                        format!("rank1@{scope}"),
                        true,
                        opt(st.gallery_rank1.rank1, "no probes in the stratum"),
                    );
                }
            }
        }
        Results::Fgnet(f) => {
            let id = &f.metrics.identification;
            push(&mut out, "rank1".into(), true, opt(id.rank1, "no probe has a mate"));
            for g in &id.by_age_group {
                push(
                    &mut out,
                    format!("rank1@age={}", group_label(&g.group)),
                    true,
                    opt(g.rank1, "no probes in the group"),
                );
            }
            if let Some(v) = &f.metrics.verification {
                roc(&mut out, v.auc, v.eer.map(|e| e.eer));
                tars(&mut out, &v.tar_at_far, &[TarRule::Strict], None);
            }
        }
        Results::Ijb(i) => {
            roc_summary(&mut out, &i.metrics.roc);
            tars(&mut out, &i.metrics.tar_at_far, &[TarRule::Strict, TarRule::InsightfaceNearest], None);
            if let Some(id) = &i.metrics.identification {
                for g in &id.galleries {
                    tpirs(&mut out, &g.tpir_at_fpir, &g.name);
                    let rank1 = g.cmc.iter().find(|c| c.rank == 1).map(|c| c.rate);
                    push(&mut out, format!("rank1@{}", g.name), true, opt(rank1, "no rank-1 point in the CMC"));
                }
                for m in &id.mean_tpir_at_fpir {
                    let key = tpir_key(m.rule, m.fpir_target, "mean");
                    push(&mut out, key, true, opt(m.tpir, "not available in every gallery"));
                }
                let rank1 = id.cmc.iter().find(|c| c.rank == 1).map(|c| c.rate);
                push(&mut out, "rank1".into(), true, opt(rank1, "no rank-1 point in the CMC"));
            }
        }
        Results::Megaface(m) => {
            for s in &m.metrics.sizes {
                push(&mut out, format!("rank1@{}", s.label), true, opt(s.rank1, "no rank-1 (no searches)"));
                tars(&mut out, &s.tar_at_far, &[TarRule::Strict], Some(&s.label));
            }
        }
    }
    for d in r.differentials() {
        differentials(&mut out, d);
    }
    out
}

fn push(out: &mut Vec<Gated>, key: String, higher_is_better: bool, value: Reading) {
    out.push(Gated { key, higher_is_better, value });
}

fn opt(v: Option<f64>, why: &str) -> Reading {
    match v {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(why.to_string()),
    }
}

fn verification(out: &mut Vec<Gated>, m: &VerificationMetrics) {
    push(out, "accuracy".into(), true, opt(Some(m.accuracy.spread.mean), "no accuracy"));
    roc_summary(out, &m.roc);
    tars(out, &m.tar_at_far, &[TarRule::Strict], None);
}

/// Per group FNMR and FMR, and FDR and GARBE over the groups, at each global threshold
/// (docs/protocols.md §11).
fn differentials(out: &mut Vec<Gated>, d: &crate::metrics::differentials::Differentials) {
    for at in &d.at {
        let target = at.far_target;
        let unavailable = || Err(at.note.clone().unwrap_or_else(|| "not measurable".into()));
        let summary = at.summary.as_ref();
        let fdr = summary.map_or_else(unavailable, |s| opt(s.fdr, "undefined (fewer than two groups with both rates)"));
        push(out, format!("fdr@far={target:e}@{}", d.attribute), true, fdr);
        let garbe =
            summary.map_or_else(unavailable, |s| opt(s.garbe, "undefined (fewer than two groups with both rates)"));
        push(out, format!("garbe@far={target:e}@{}", d.attribute), false, garbe);
        for name in &d.groups {
            let g = at.groups.iter().find(|g| &g.group == name);
            let scope = format!("{}={name}", d.attribute);
            let fnmr = g.map_or_else(unavailable, |g| opt(g.fnmr, "no genuine pairs in the group"));
            push(out, format!("fnmr@far={target:e}@{scope}"), false, fnmr);
            let fmr = g.map_or_else(unavailable, |g| opt(g.fmr, "no impostor pairs in the group"));
            push(out, format!("fmr@far={target:e}@{scope}"), false, fmr);
        }
    }
}

fn roc_summary(out: &mut Vec<Gated>, r: &RocSummary) {
    roc(out, r.auc, r.eer.map(|e| e.eer));
}

fn roc(out: &mut Vec<Gated>, auc: f64, eer: Option<f64>) {
    push(out, "auc".into(), true, opt(Some(auc), "no AUC"));
    // EER is null when all scores are equal (schema): skipped rather than refused.
    push(out, "eer".into(), false, opt(eer, "no EER (all scores equal)"));
}

fn tars(out: &mut Vec<Gated>, entries: &[TarAtFar], rules: &[TarRule], scope: Option<&str>) {
    for rule in rules {
        for t in entries.iter().filter(|t| t.rule == *rule) {
            let prefix = match rule {
                TarRule::Strict => "",
                TarRule::InsightfaceNearest => "nearest:",
                TarRule::DevkitPositivesFirst => "devkit:",
            };
            let scope = scope.map_or(String::new(), |s| format!("@{s}"));
            let key = format!("{prefix}tar@far={:e}{scope}", t.far_target);
            let value = match (t.available, t.tar) {
                (true, Some(x)) if x.is_finite() => Ok(x),
                _ => Err(t.note.clone().unwrap_or_else(|| "not available".into())),
            };
            push(out, key, true, value);
        }
    }
}

fn tpir_key(rule: FpirRule, target: f64, scope: &str) -> String {
    let prefix = match rule {
        FpirRule::Strict => "",
        FpirRule::IjbEvals => "ijb_evals:",
    };
    format!("{prefix}tpir@fpir={target:e}@{scope}")
}

fn tpirs(out: &mut Vec<Gated>, entries: &[TpirAtFpir], gallery: &str) {
    for t in entries {
        let value = match (t.available, t.tpir) {
            (true, Some(x)) if x.is_finite() => Ok(x),
            _ => Err(t.note.clone().unwrap_or_else(|| "not available".into())),
        };
        push(out, tpir_key(t.rule, t.fpir_target, gallery), true, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_into_rule_family_target_and_scope() {
        let k = Key::parse("ijb_evals:tpir@fpir=1e-2@G1").unwrap();
        assert_eq!(k, Key { rule: Some("ijb_evals"), family: "tpir@fpir", target: Some(0.01), scope: Some("G1") });
        let k = Key::parse("tar@far=0.0001").unwrap();
        assert_eq!(k, Key { rule: None, family: "tar@far", target: Some(1e-4), scope: None });
        assert_eq!(Key::parse("tar@far").unwrap().target, None);
        assert_eq!(Key::parse("rank1@age=0-9").unwrap().scope, Some("age=0-9"));
        assert_eq!(Key::parse("stratum_tar@camera=a:b").unwrap().scope, Some("camera=a:b"));
        let k = Key::parse("fnmr@far=1e-3@subset=African").unwrap();
        assert_eq!(k, Key { rule: None, family: "fnmr@far", target: Some(1e-3), scope: Some("subset=African") });
        assert_eq!(Key::parse("garbe@far=1e-2@age_band").unwrap().family, "garbe@far");
        for bad in ["tar@far=0", "tar@far=2", "tar@far=x", "tar@farx", "precision", "rank2@1m", "fdr@far=0"] {
            assert_eq!(Key::parse(bad), None, "{bad}");
        }
    }
}

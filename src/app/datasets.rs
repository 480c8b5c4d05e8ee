//! `aifr-eval datasets`: every benchmark of the registry, whether it can run, and each of its
//! files, present or missing, with what it is needed for (from the format's adapter row).

use super::Env;
use std::fmt::Write;

/// The listing, as printed.
pub fn listing(env: &Env) -> String {
    let mut out = String::new();
    let mut line = |s: std::fmt::Arguments| {
        let _ = writeln!(out, "{s}");
    };
    line(format_args!("data directory: {}   (registry: {})", env.data_dir.display(), env.registry.source));
    for (name, d) in &env.registry.datasets {
        let adapter = d.format.adapter();
        let status = d.status(&env.data_dir);
        let missing_eval = status.iter().any(|s| s.needed_for_eval && !s.present);
        let state = if !adapter.supported() {
            "protocol not implemented yet"
        } else if !missing_eval {
            "ready"
        } else {
            "missing files"
        };
        line(format_args!("{name:<20} {state:<30} {}", d.title));
        for s in &status {
            let mark = if s.present { "ok     " } else { "MISSING" };
            let use_ = if s.needed_for_eval {
                "evaluation"
            } else if adapter.optional_eval_roles.contains(&s.role.as_str()) {
                adapter.optional_use
            } else {
                "embedding images"
            };
            line(format_args!("    {mark} {:<12} {}  (needed for {use_})", s.role, s.path.display()));
        }
    }
    out
}

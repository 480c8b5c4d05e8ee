//! Helpers shared by the benchmarks (included with `#[path]`; not a bench target itself).
#![allow(dead_code)] // each bench uses some of them

/// Peak resident set (VmHWM) of this process in MiB, NaN where /proc is unavailable.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A file of the repository: under the source tree the bench was built from, or, when the
/// binary runs elsewhere (a copied bench binary on a GPU machine), under the working directory.
pub fn repo_file(rel: &str) -> std::path::PathBuf {
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if built.exists() {
        built
    } else {
        std::path::PathBuf::from(rel)
    }
}

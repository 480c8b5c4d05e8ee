//! Records the git commit the binary is built from, for `aifr-eval --version` (a result can then
//! be traced to the code that computed it). Outside a git checkout (a source tarball) the commit
//! is "unknown".
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AIFR_EVAL_COMMIT={commit}");
    // Rebuilt when HEAD moves (a commit, a checkout), not on every edit of the index.
    let head = std::path::Path::new(".git/HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(text) = std::fs::read_to_string(head) {
            if let Some(r) = text.strip_prefix("ref: ") {
                println!("cargo:rerun-if-changed=.git/{}", r.trim());
            }
        }
        println!("cargo:rerun-if-changed=.git/packed-refs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

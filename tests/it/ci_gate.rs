//! The project's own regression gate: `aifr-eval demo` must reproduce the committed baseline
//! bit for bit, so a change to any metric code that moves any number fails CI until the
//! baseline is deliberately updated:
//!
//!     cargo run -- demo && cargo run -- gate reports/demo --baseline tests/baselines/demo --update

use std::path::PathBuf;
use std::process::Command;

#[test]
fn demo_matches_the_committed_baseline_exactly() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::demo();
    let bin = crate::support::EXE;
    let md = dir.path().join("gate.md");
    let junit = dir.path().join("gate.xml");
    let gate = Command::new(bin)
        .arg("gate")
        .arg(out)
        .arg("--baseline")
        .arg(root.join("tests/baselines/demo"))
        .arg("--exact")
        .arg("--markdown")
        .arg(&md)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&gate.stdout);
    assert_eq!(
        gate.status.code(),
        Some(0),
        "the demo no longer reproduces tests/baselines/demo:\n{table}\n{}\nIf the change is intended, update the baseline:\n  cargo run -- demo && cargo run -- gate reports/demo --baseline tests/baselines/demo --update",
        String::from_utf8_lossy(&gate.stderr)
    );
    assert!(std::fs::read_to_string(&md).unwrap().contains("✅"));
    assert!(std::fs::read_to_string(&junit).unwrap().contains("<testsuite"));
}

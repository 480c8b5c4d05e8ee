//! What every test area shares: the binary under test, the repository's data folders, and one
//! `aifr-eval demo` run that the tests reading demo output look at instead of each running its own.

pub mod nets;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `aifr-eval` binary cargo built for this test run.
pub const EXE: &str = env!("CARGO_BIN_EXE_aifr-eval");

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the real data kept in `tests/data/` (see `tests/data/PROVENANCE.md`).
pub fn data(rel: &str) -> PathBuf {
    let p = repo().join("tests/data").join(rel);
    assert!(p.exists(), "{} is missing: tests/data/ is part of the repository", p.display());
    p
}

/// Thread count of the shared demo run: fixed, so that the determinism test can compare a run
/// at another count against it whatever the machine's core count is.
pub const SHARED_DEMO_THREADS: &str = "3";

/// The output folder of one `aifr-eval demo` run, made on first use and shared by the tests
/// (read only: a test that changes files copies them first).
pub fn demo() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-demo");
        if out.exists() {
            std::fs::remove_dir_all(&out).unwrap();
        }
        let o = Command::new(EXE)
            .args(["demo", "--out"])
            .arg(&out)
            .env("RAYON_NUM_THREADS", SHARED_DEMO_THREADS)
            .output()
            .unwrap();
        assert!(o.status.success(), "aifr-eval demo failed: {}", String::from_utf8_lossy(&o.stderr));
        out
    })
}

/// A test that needs something a fresh clone cannot have without a download (the dlib weights
/// from PyPI, Debian's chromium) prints SKIP and passes; under CI=true `.ci/run` has installed
/// it, so its absence fails the test instead of hiding it.
pub fn skip_unless_ci(what: &str) {
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{what} (CI=true: .ci/run should have installed it)");
    eprintln!("SKIP: {what}");
}

/// Copies a folder tree (files and folders only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

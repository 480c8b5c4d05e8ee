//! The binary as users run it: every documented command, and every kind of bad input giving a
//! clear message and the documented exit code, with no partial output.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(crate::support::EXE);
    c.env_remove("AIFR_DATA_DIR").env_remove("AIFR_DATASETS").env_remove("AIFR_CACHE_DIR");
    c
}

fn run(args: &[&str], dir: &Path) -> Output {
    bin().args(args).current_dir(dir).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_npy(path: &Path, rows: usize, cols: usize, data: &[f32]) {
    aifr_eval::store::import::write_npy_f32(path, rows, cols, data).unwrap();
}

/// A tiny LFW-layout benchmark: 2 folds × (2 matched + 2 mismatched), 2-D embeddings.
struct Tiny {
    dir: tempfile::TempDir,
}

impl Tiny {
    fn new() -> Tiny {
        let dir = tempfile::tempdir().unwrap();
        let lfw = dir.path().join("data/lfw");
        std::fs::create_dir_all(&lfw).unwrap();
        std::fs::write(
            lfw.join("pairs.txt"),
            "2\t2\nA\t1\t2\nB\t1\t2\nA\t1\tB\t1\nA\t2\tB\t2\nC\t1\t2\nD\t1\t2\nC\t1\tD\t1\nC\t2\tD\t2\n",
        )
        .unwrap();
        let t = Tiny { dir };
        t.embeddings(&[
            [1.0, 0.1],
            [0.9, 0.2],
            [0.1, 1.0],
            [0.2, 0.8],
            [1.0, -0.2],
            [0.8, -0.1],
            [-0.3, 1.0],
            [-0.2, 0.9],
        ]);
        t
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn keys(&self) -> Vec<String> {
        ["A", "B", "C", "D"].iter().flat_map(|n| (1..=2).map(move |i| format!("{n}/{n}_{i:04}.jpg"))).collect()
    }

    fn embeddings(&self, rows: &[[f32; 2]]) {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        write_npy(&self.path().join("emb.npy"), rows.len(), 2, &flat);
        let keys = self.keys()[..rows.len()].join("\n") + "\n";
        std::fs::write(self.path().join("keys.txt"), keys).unwrap();
    }

    fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "run",
            "lfw",
            "--data-dir",
            "data",
            "--cache-dir",
            "cache",
            "--embeddings",
            "emb.npy",
            "--keys",
            "keys.txt",
            "--out",
            "out",
        ];
        args.extend_from_slice(extra);
        run(&args, self.path())
    }
}

#[test]
fn run_writes_results_and_table() {
    let t = Tiny::new();
    let o = t.run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // Hand-checked: fold 0's threshold (trained on fold 1) accepts impostor A2-B2 (cos 0.447).
    assert!(out.contains("2-fold accuracy  87.500%"), "{out}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("out/results.json")).unwrap()).unwrap();
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["counts"]["pairs"], 8);
    assert_eq!(r["protocol"]["flip_fusion"], "none");
    assert_eq!(r["metrics"]["accuracy"]["fold_accuracies"], serde_json::json!([0.75, 1.0]));
    assert_eq!(r["benchmark"]["files"][0]["path"], "lfw/pairs.txt");
    assert!(t.path().join("out/timings.json").exists());
}

#[test]
fn malformed_pairs_line_names_file_and_line() {
    let t = Tiny::new();
    std::fs::write(t.path().join("data/lfw/pairs.txt"), "2\t2\nA\t1\t2\nB\t1\n").unwrap();
    let o = t.run(&[]);
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(e.contains("pairs.txt:3: expected a matched pair"), "{e}");
    assert!(!t.path().join("out/results.json").exists());
}

#[test]
fn missing_keys_are_counted_and_listed() {
    let t = Tiny::new();
    t.embeddings(&[[1.0, 0.1], [0.9, 0.2], [0.1, 1.0], [0.2, 0.8], [1.0, -0.2]]);
    let o = t.run(&[]);
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(e.contains("3 of the 8 images the benchmark references are not in the embeddings"), "{e}");
    assert!(e.contains("'C/C_0002.jpg'"), "{e}");
}

#[test]
fn nan_and_zero_norm_embeddings_are_refused() {
    let t = Tiny::new();
    let mut rows = [[1.0, 0.1], [0.9, 0.2], [0.1, 1.0], [0.2, 0.8], [1.0, -0.2], [0.8, -0.1], [-0.3, 1.0], [-0.2, 0.9]];
    rows[3] = [f32::NAN, 1.0];
    t.embeddings(&rows);
    let o = t.run(&[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("row 3 (key 'B/B_0002.jpg') has a non-finite value"), "{}", stderr(&o));
    rows[3] = [0.0, 0.0];
    t.embeddings(&rows);
    let o = t.run(&[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("zero-norm"), "{}", stderr(&o));
}

#[test]
fn flip_dimension_mismatch_is_refused() {
    let t = Tiny::new();
    write_npy(&t.path().join("flip.npy"), 8, 3, &[1.0; 24]);
    let o = t.run(&["--flip-embeddings", "flip.npy"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("are 8×3 but embeddings"), "{}", stderr(&o));
    // Asking for fusion without flips is a clear error too.
    let o = t.run(&["--flip", "sum"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("needs embeddings of the mirrored images"), "{}", stderr(&o));
}

#[test]
fn empty_class_is_refused() {
    // The real small_lfw.bin holds 10 genuine pairs and no impostors: no threshold can be chosen.
    let p = crate::support::data("small_lfw.bin");
    let t = Tiny::new();
    let root = t.path().join("data/faces_emore");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(p, root.join("agedb_30.bin")).unwrap();
    let rows: Vec<f32> = (0..40).map(|i| 1.0 + (i % 7) as f32).collect();
    write_npy(&t.path().join("bin.npy"), 20, 2, &rows);
    let o = run(
        &["run", "agedb30", "--data-dir", "data", "--cache-dir", "cache", "--embeddings", "bin.npy", "--out", "out"],
        t.path(),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no impostor pairs"), "{}", stderr(&o));
    assert!(!t.path().join("out/results.json").exists());
}

#[test]
fn ages_file_problems_are_clear_errors() {
    let t = Tiny::new();
    std::fs::write(t.path().join("ages.txt"), "A/A_0001.jpg 30\nA/A_0002.jpg thirty\n").unwrap();
    let o = t.run(&["--ages", "ages.txt"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("ages.txt:2: age must be a whole number"), "{}", stderr(&o));
    std::fs::write(t.path().join("ages.txt"), "A/A_0001.jpg 30\nA/A_0002.jpg 31\n").unwrap();
    let o = t.run(&["--ages", "ages.txt"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("6 of the benchmark's 8 images have no age"), "{}", stderr(&o));
    let all: String = t.keys().iter().enumerate().map(|(i, k)| format!("{k} {}\n", 20 + 5 * i)).collect();
    std::fs::write(t.path().join("ages.txt"), all).unwrap();
    let o = t.run(&["--ages", "ages.txt", "--protocol-file", "p.toml"]);
    assert_eq!(o.status.code(), Some(4), "missing protocol file: {}", stderr(&o));
    std::fs::write(
        t.path().join("p.toml"),
        "name='p'\ndescription='d'\nfolds=2\nfar_targets=[0.5]\ndefault_mode='strict'\n[flip]\n[age_gap]\noperating_far=0.25\nbins=[{lo=0,hi=4},{lo=5}]\n",
    )
    .unwrap();
    let o = t.run(&["--ages", "ages.txt", "--protocol-file", "p.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("out/results.json")).unwrap()).unwrap();
    let bins = r["metrics"]["age_gap"]["bins"].as_array().unwrap();
    // Matched pairs are consecutive images (ages 5 apart): all four fall in the 5+ bin.
    assert_eq!((bins[0]["n_genuine"].as_u64(), bins[1]["n_genuine"].as_u64()), (Some(0), Some(4)));
}

#[test]
fn demo_runs_fgnet_and_fgnet_inputs_are_checked() {
    let d = crate::support::demo();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("fgnet/results.json")).unwrap()).unwrap();
    assert_eq!(r["kind"], "fgnet_identification");
    assert_eq!(r["counts"]["subjects"], 82);
    let rank1 = r["metrics"]["identification"]["rank1"].as_f64().unwrap();
    assert!((0.8..=1.0).contains(&rank1), "{rank1}");
    // Degradation with the age gap shows in the all-pairs verification too.
    let bins = r["metrics"]["verification"]["age_gap"]["bins"].as_array().unwrap();
    assert!(bins[0]["tar"].as_f64().unwrap() > bins[4]["tar"].as_f64().unwrap());
    assert!(d.join("fgnet/report.html").exists());

    // The same pairs in the .bin layout (AgeDB-30 slot, rows in pack order, ages by index) give
    // the same numbers as the LFW layout; only the bootstrap unit differs (a pack names no identities).
    let read = |p: &str| -> serde_json::Value { serde_json::from_slice(&std::fs::read(d.join(p)).unwrap()).unwrap() };
    let (lfw, bin) = (read("results.json"), read("agedb30/results.json"));
    for m in ["accuracy", "roc", "tar_at_far", "xnorm"] {
        assert_eq!(lfw["metrics"][m], bin["metrics"][m], "{m}");
    }
    assert_eq!(lfw["metrics"]["age_gap"]["bins"][0]["n_genuine"], bin["metrics"]["age_gap"]["bins"][0]["n_genuine"]);
    assert_eq!(bin["metrics"]["bootstrap"]["unit"], "pair");

    // The checks below edit the data: they work on a copy of the shared demo's inputs.
    let dir = tempfile::tempdir().unwrap();
    crate::support::copy_dir(&d.join("data"), &dir.path().join("d/data"));

    let base = [
        "run",
        "fgnet",
        "--data-dir",
        "d/data",
        "--embeddings",
        "d/data/embeddings/fgnet.npy",
        "--keys",
        "d/data/embeddings/fgnet_keys.txt",
        "--out",
        "o",
    ];
    std::fs::write(dir.path().join("d/data/FGNET/images/portrait.JPG"), b"").unwrap();
    let o = run(&base, dir.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("'portrait.JPG' is not named like FG-NET's"), "{}", stderr(&o));
    std::fs::remove_file(dir.path().join("d/data/FGNET/images/portrait.JPG")).unwrap();
    std::fs::write(dir.path().join("d/data/FGNET/images/099A10.JPG"), b"").unwrap();
    let o = run(&base, dir.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 of the 955 images the benchmark references are not in the embeddings"),
        "{}",
        stderr(&o)
    );
    let o = run(&["run", "fgnet", "--data-dir", "nowhere", "--embeddings", "d/data/embeddings/fgnet.npy"], dir.path());
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    std::fs::remove_file(dir.path().join("d/data/FGNET/images/099A10.JPG")).unwrap();

    // One model per held-out subject: with 82 identical models the identification must be
    // exactly the single-model one; verification is not defined and is absent.
    let loo = dir.path().join("loo");
    std::fs::create_dir(&loo).unwrap();
    let emb = dir.path().join("d/data/embeddings");
    std::os::unix::fs::symlink(emb.join("fgnet_keys.txt"), loo.join("keys.txt")).unwrap();
    for s in 1..=82 {
        std::os::unix::fs::symlink(emb.join("fgnet.npy"), loo.join(format!("{s:03}.npy"))).unwrap();
        std::os::unix::fs::symlink(emb.join("fgnet_flip.npy"), loo.join(format!("{s:03}_flip.npy"))).unwrap();
    }
    let o = run(
        &["run", "fgnet", "--data-dir", "d/data", "--loo-embeddings", "loo", "--cache-dir", "c", "--out", "l"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let l: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("l/results.json")).unwrap()).unwrap();
    assert_eq!(l["metrics"]["identification"], r["metrics"]["identification"]);
    assert_eq!(l["metrics"]["models"], "one model per held-out subject");
    assert!(l["metrics"].get("verification").is_none());
    assert!(!dir.path().join("l/curves.json").exists());
    assert!(dir.path().join("l/report.html").exists());
    std::fs::remove_file(loo.join("042.npy")).unwrap();
    let o = run(
        &["run", "fgnet", "--data-dir", "d/data", "--loo-embeddings", "loo", "--cache-dir", "c", "--out", "l"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("no embeddings for held-out subject 042"), "{}", stderr(&o));
    let o = run(&["run", "lfw", "--data-dir", "d/data", "--loo-embeddings", "loo"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn unwritable_output_directory_leaves_nothing() {
    let t = Tiny::new();
    std::fs::write(t.path().join("out"), "a file where the output directory should be").unwrap();
    let o = t.run(&[]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
}

#[test]
fn missing_files_and_unknown_benchmarks() {
    let t = Tiny::new();
    let o = run(&["run", "agedb30", "--data-dir", "data", "--embeddings", "emb.npy"], t.path());
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("agedb_30.bin (bin)"), "{}", stderr(&o));
    let o = run(&["run", "nope", "--embeddings", "emb.npy"], t.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown benchmark 'nope'"), "{}", stderr(&o));
    let o = t.run(&["--mode", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["run", "lfw", "--data-dir", "data", "--embeddings", "absent.npy", "--keys", "keys.txt"], t.path());
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
}

#[test]
fn datasets_lists_present_and_missing_files() {
    let t = Tiny::new();
    let o = run(&["datasets", "--data-dir", "data"], t.path());
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("lfw ") && out.contains("ready"), "{out}");
    assert!(out.contains("MISSING bin") && out.contains("agedb_30.bin"), "{out}");
    // Every format is evaluated now (IJB included): a missing IJB release names its meta files.
    assert!(out.contains("ijbc_face_tid_mid.txt") && !out.contains("not implemented"), "{out}");
}

#[test]
fn demo_is_deterministic_across_thread_counts() {
    // The shared demo ran at support::SHARED_DEMO_THREADS threads; this one at a single thread.
    let dir = tempfile::tempdir().unwrap();
    let o =
        bin().args(["demo", "--out", "demo1"]).env("RAYON_NUM_THREADS", "1").current_dir(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let shared = crate::support::demo();
    // The differentials' bootstraps too: RFW by subset, FG-NET by age band.
    for run in ["rfw", "fgnet"] {
        let [a, b] = [dir.path().join("demo1"), shared.to_path_buf()]
            .map(|d| std::fs::read(d.join(run).join("results.json")).unwrap());
        assert!(a == b, "{run}/results.json differs between 1 and {} threads", crate::support::SHARED_DEMO_THREADS);
    }
    let mut outputs = Vec::new();
    for d in [dir.path().join("demo1"), shared.to_path_buf()] {
        outputs.push(std::fs::read(d.join("results.json")).unwrap());
    }
    assert_eq!(
        outputs[0],
        outputs[1],
        "results.json differs between 1 and {} threads",
        crate::support::SHARED_DEMO_THREADS
    );
    let r: serde_json::Value = serde_json::from_slice(&outputs[0]).unwrap();
    let acc = r["metrics"]["accuracy"]["mean"].as_f64().unwrap();
    assert!((0.9..0.995).contains(&acc), "demo accuracy {acc} should be realistic, not trivial");
}

#[test]
fn import_and_verify_store() {
    let t = Tiny::new();
    let o = run(&["import", "--embeddings", "emb.npy", "--keys", "keys.txt", "-o", "s.aifrstore"], t.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["verify-store", "s.aifrstore"], t.path());
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok — 8 rows × 2"));
    let o = run(&["run", "lfw", "--data-dir", "data", "--embeddings", "s.aifrstore", "--out", "o2"], t.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let mut bytes = std::fs::read(t.path().join("s.aifrstore")).unwrap();
    bytes[4096 + 5] ^= 0x01; // a data byte: only the content hash can notice
    std::fs::write(t.path().join("s.aifrstore"), &bytes).unwrap();
    let o = run(&["verify-store", "s.aifrstore"], t.path());
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("content hash mismatch"), "{}", stderr(&o));
    // `run` checks the hash before trusting the numbers; --trust-store skips the check.
    let o = run(&["run", "lfw", "--data-dir", "data", "--embeddings", "s.aifrstore", "--out", "o3"], t.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("content hash mismatch"), "{}", stderr(&o));
    assert!(!t.path().join("o3").exists());
    let args = ["run", "lfw", "--data-dir", "data", "--embeddings", "s.aifrstore", "--out", "o3", "--trust-store"];
    assert!(run(&args, t.path()).status.success());
}

/// Every file of a run directory with its bytes (the lock file aside, which only holds a pid).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != aifr_eval::run::dir::LOCK_FILE)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_second_run_into_the_same_directory_is_refused_not_interleaved() {
    use aifr_eval::io::lock::{FileLock, Wait};
    let t = Tiny::new();
    let lock_path = t.path().join("out").join(aifr_eval::run::dir::LOCK_FILE);
    let held = FileLock::acquire(&lock_path, "a run directory", Wait::Refuse).unwrap();
    let o = t.run(&[]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("is being written by another aifr-eval process"), "{e}");
    assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    assert!(!t.path().join("out/results.json").exists());
    drop(held);
    assert!(t.run(&[]).status.success());
}

#[test]
fn first_runs_sharing_one_cache_all_succeed_and_share_one_store() {
    let t = Tiny::new();
    // Started together, all on a cache none of them has filled yet.
    let cache = t.path().join("shared-cache");
    let spawned: Vec<_> = (0..4)
        .map(|i| {
            bin()
                .args(["run", "lfw", "--data-dir", "data", "--embeddings", "emb.npy", "--keys", "keys.txt"])
                .arg("--cache-dir")
                .arg(&cache)
                .args(["--out", &format!("par{i}")])
                .current_dir(t.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in spawned {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let first = std::fs::read(t.path().join("par0/results.json")).unwrap();
    for i in 1..4 {
        assert_eq!(std::fs::read(t.path().join(format!("par{i}/results.json"))).unwrap(), first);
    }
    let stores: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".aifrstore"))
        .collect();
    assert_eq!(stores.len(), 1);
}

#[test]
fn a_run_that_fails_to_write_leaves_the_previous_run_as_it_was() {
    use std::os::unix::process::CommandExt;
    let t = Tiny::new();
    assert!(t.run(&[]).status.success());
    let out = t.path().join("out");
    let before = snapshot(&out);
    assert!(before.iter().any(|(n, _)| n == "results.json") && before.iter().any(|(n, _)| n == "roc.png"));
    // The same run in another mode with files capped at 4 KiB, as on a full disk: the store is
    // reused from the cache, but the charts cannot be written.
    let mut c = bin();
    c.args(["run", "lfw", "--data-dir", "data", "--cache-dir", "cache", "--embeddings", "emb.npy"])
        .args(["--keys", "keys.txt", "--out", "out", "--mode", "insightface", "--flip", "none"])
        .current_dir(t.path());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: 4096, rlim_max: 4096 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    assert_eq!(snapshot(&out), before, "a failed run changed the previous run's directory");
}

#[test]
fn real_lfw_pairs_file_has_6000_pairs_in_10_folds() {
    let p = crate::support::data("lfw_pairs.txt");
    let b = aifr_eval::dataset::lfw::read_pairs(&p).unwrap();
    assert_eq!(b.pairs.len(), 6000);
    assert_eq!(b.folds, 10);
    assert_eq!(b.keys.len(), 7701, "distinct images");
    for fold in 0..10 {
        let f: Vec<_> = b.pairs.iter().filter(|x| x.fold == fold).collect();
        assert_eq!(f.iter().filter(|x| x.genuine).count(), 300);
        assert_eq!(f.iter().filter(|x| !x.genuine).count(), 300);
    }
    // No identity appears in two folds.
    let mut owner = std::collections::HashMap::new();
    for x in &b.pairs {
        for k in [x.a, x.b] {
            let name = b.keys[k as usize].split('/').next().unwrap().to_string();
            assert_eq!(*owner.entry(name).or_insert(x.fold), x.fold);
        }
    }
}

#[test]
fn real_small_lfw_bin_reads_as_pairs() {
    let p = crate::support::data("small_lfw.bin");
    let b = aifr_eval::dataset::bin_pairs::read_pairs(&p, 10).unwrap();
    assert_eq!((b.keys.len(), b.pairs.len()), (20, 10));
    assert!(b.pairs.iter().all(|x| x.genuine));
    assert_eq!(b.pairs.iter().map(|x| x.fold).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
}

#[test]
fn truncated_and_corrupt_bin_are_refused() {
    let p = crate::support::data("small_lfw.bin");
    let t = Tiny::new();
    let root = t.path().join("data/faces_emore");
    std::fs::create_dir_all(&root).unwrap();
    let bytes = std::fs::read(p).unwrap();
    std::fs::write(root.join("agedb_30.bin"), &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&["run", "agedb30", "--data-dir", "data", "--embeddings", "emb.npy"], t.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("agedb_30.bin: not a valid insightface .bin pack"), "{}", stderr(&o));
    std::fs::write(root.join("agedb_30.bin"), b"\x80\x04garbage").unwrap();
    let o = run(&["run", "agedb30", "--data-dir", "data", "--embeddings", "emb.npy"], t.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

/// `--version` says whether this is a CUDA (or ONNX) build: the first thing to check on a GPU box.
#[test]
fn version_names_the_build_features() {
    let o = bin().arg("--version").output().unwrap();
    assert!(o.status.success());
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(v.starts_with(concat!("aifr-eval ", env!("CARGO_PKG_VERSION"), " (features: ")), "{v}");
    assert_eq!(v.contains("cuda"), cfg!(feature = "cuda"), "{v}");
    assert_eq!(v.contains("onnx"), cfg!(feature = "onnx"), "{v}");
}

#[test]
fn every_file_a_run_writes_is_known_to_the_run_directory() {
    // A run replaces or removes the previous run's files by name (run::dir::is_run_output): a
    // report file missing from that list would survive into a run that does not write it.
    let demo = crate::support::demo();
    let mut runs = 0;
    for dir in std::iter::once(demo.to_path_buf()).chain(std::fs::read_dir(demo).unwrap().map(|e| e.unwrap().path())) {
        if !dir.join("results.json").exists() {
            continue;
        }
        runs += 1;
        for e in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_file() && !name.starts_with('.') {
                assert!(aifr_eval::run::dir::is_run_output(&name), "{} is not a known run output", e.path().display());
            }
            assert!(!name.starts_with(".aifr-staging-"), "staging left in {}", dir.display());
        }
    }
    assert_eq!(runs, 8);
}
